/**
 * Provenance written into every object the node sends back (DESIGN.md "Provenance on every output").
 *
 * Where it goes (all standard places, see README.md):
 *  - SOP Common Module ContributingEquipmentSequence (0018,A001): one item for this node + model, with
 *    PurposeOfReferenceCodeSequence (109100 "Synthesizing Equipment" for synthetic images, 109102
 *    "Processing Equipment" otherwise), Manufacturer, ManufacturerModelName = model name,
 *    SoftwareVersions = [node version, model version], DeviceUID derived from the model's sha256
 *    (so it changes with every model), ContributionDateTime and ContributionDescription = the
 *    readable summary below;
 *  - the readable summary also in ImageComments (SEG, SC) / DerivationDescription (SEG frames, SC)
 *    and as TEXT content items in the SR.
 */
import { createHash } from 'crypto';
import type { NaturalDataset } from '../dicom/dcmjs';
import { CodedConcept, Codes, codeSeq } from './codes';

export interface Provenance {
  /** Name of this node deployment/software, e.g. "stroke-ai-dicom-node". */
  nodeName: string;
  /** Software version of the node, e.g. "0.1.0". */
  nodeVersion: string;
  modelName: string;
  modelVersion: string;
  /** sha256 of the ONNX file actually run (64 hex digits). */
  modelSha256: string;
  /** onnxruntime execution provider used, e.g. "cpu", "webgpu", "cuda". */
  executionProvider: string;
  /** SeriesInstanceUIDs of the series the result was computed from. */
  sourceSeriesUids: string[];
  /** Wall time of the processing (pre-processing + inference + post-processing), ms. */
  processingMs: number;
  /** True when the result is, or was computed from, a synthetic image (e.g. CT→DWI synthesis). */
  synthetic: boolean;
  /** What the post-processing of the model's mask did (rules, thresholds, what each removed), in words. */
  postprocessing?: string;
}

const UID_RE = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;

export function isValidUid(uid: string): boolean {
  return typeof uid === 'string' && uid.length > 0 && uid.length <= 64 && UID_RE.test(uid);
}

/** Throws on a provenance record that would produce invalid or misleading DICOM. */
export function validateProvenance(p: Provenance): void {
  const need = ['nodeName', 'nodeVersion', 'modelName', 'modelVersion', 'executionProvider'] as const;
  for (const k of need) {
    if (typeof p[k] !== 'string' || p[k].trim() === '') throw new Error(`provenance.${k} is empty`);
  }
  if (!/^[0-9a-f]{64}$/i.test(p.modelSha256)) throw new Error('provenance.modelSha256 is not 64 hex digits');
  if (!Array.isArray(p.sourceSeriesUids) || p.sourceSeriesUids.length === 0) {
    throw new Error('provenance.sourceSeriesUids is empty');
  }
  for (const u of p.sourceSeriesUids) if (!isValidUid(u)) throw new Error(`provenance.sourceSeriesUids: invalid UID "${u}"`);
  if (!Number.isFinite(p.processingMs) || p.processingMs < 0) throw new Error('provenance.processingMs is not a non-negative number');
  if (typeof p.synthetic !== 'boolean') throw new Error('provenance.synthetic is not a boolean');
}

/**
 * A DeviceUID (0018,1002) for the model: 2.25.<first 128 bits of sha256(name, version, file sha256)>.
 * Deterministic (the same model always gets the same UID) and different for every model file.
 */
export function deviceUidForModel(p: Pick<Provenance, 'modelName' | 'modelVersion' | 'modelSha256'>): string {
  const h = createHash('sha256').update(`${p.modelName}\u0000${p.modelVersion}\u0000${p.modelSha256.toLowerCase()}`).digest();
  return `2.25.${BigInt('0x' + h.subarray(0, 16).toString('hex')).toString(10)}`;
}

/** The readable one-paragraph summary (fits ST, 1024 chars, for the usual 1–3 source series). */
export function provenanceSummary(p: Provenance): string {
  const parts = [
    `${p.synthetic ? 'SYNTHETIC INPUT. ' : ''}Produced by ${p.nodeName} ${p.nodeVersion}`,
    `model ${p.modelName} ${p.modelVersion} (sha256 ${p.modelSha256.toLowerCase()})`,
    `execution provider ${p.executionProvider}`,
    `processing ${Math.round(p.processingMs)} ms`,
    `source series ${p.sourceSeriesUids.join(', ')}`,
  ];
  const s = parts.join('; ') + '.';
  return s.length <= 1024 ? s : s.slice(0, 1021) + '...';
}

/** DICOM DT for "now" (UTC offset included so the value is unambiguous). */
export function dicomDateTime(d: Date): { date: string; time: string; dt: string } {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const date = `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}`;
  const time = `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}000`;
  return { date, time, dt: `${date}${time}+0000` };
}

export interface EquipmentIdentity {
  manufacturer: string;
  institutionName?: string;
  stationName?: string;
  deviceSerialNumber?: string;
}

/** One ContributingEquipmentSequence item describing this node and the model it ran. */
export function contributingEquipmentItem(
  p: Provenance,
  purpose: CodedConcept,
  equipment: EquipmentIdentity,
  when: Date,
): NaturalDataset {
  const item: NaturalDataset = {
    PurposeOfReferenceCodeSequence: codeSeq(purpose),
    Manufacturer: equipment.manufacturer,
    ManufacturerModelName: truncate(p.modelName, 64),
    SoftwareVersions: [truncate(`${p.nodeName} ${p.nodeVersion}`, 64), truncate(`${p.modelName} ${p.modelVersion}`, 64)],
    DeviceUID: deviceUidForModel(p),
    ContributionDateTime: dicomDateTime(when).dt,
    ContributionDescription: provenanceSummary(p),
  };
  if (equipment.institutionName) item.InstitutionName = truncate(equipment.institutionName, 64);
  if (equipment.stationName) item.StationName = truncate(equipment.stationName, 16);
  if (equipment.deviceSerialNumber) item.DeviceSerialNumber = truncate(equipment.deviceSerialNumber, 64);
  return item;
}

/** Purpose code for the equipment item: synthesizing for synthetic images, processing otherwise. */
export function purposeFor(synthesized: boolean): CodedConcept {
  return synthesized ? Codes.SynthesizingEquipment : Codes.ProcessingEquipment;
}

export function truncate(s: string, max: number): string {
  return s.length <= max ? s : s.slice(0, max);
}
