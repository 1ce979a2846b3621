/**
 * Building blocks shared by the SEG, SC and SR writers: deployment options, patient/study attribute
 * copying, references to source instances, text limits.
 */
import type { NaturalDataset } from '../dicom/dcmjs';
import { nums, seq, str } from '../dicom/dcmjs';
import type { SliceSource, Vec3 } from '../types';
import { Codes, codeSeq } from './codes';
import { truncate } from './provenance';

/** What the site configures for the objects the node writes (config/ fills this in). */
export interface DeploymentOptions {
  /** General Equipment Manufacturer of the objects written (e.g. the organisation running the node). */
  manufacturer: string;
  /** ManufacturerModelName of the node itself (the model name goes into ContributingEquipmentSequence). */
  manufacturerModelName: string;
  /** SoftwareVersions of the node (e.g. "0.1.0"). */
  softwareVersions: string;
  /** DeviceSerialNumber (Type 1 in the Enhanced General Equipment module of SEG); default "1". */
  deviceSerialNumber?: string;
  institutionName?: string;
  stationName?: string;
  /** ContentCreatorName (PN) for SEG; default empty (Type 2). */
  contentCreatorName?: string;
  /**
   * A clinical-use disclaimer appended to ImageComments / the SR, e.g. "NOT FOR CLINICAL USE".
   * Written only when set: the deployment decides, not a library default.
   */
  disclaimer?: string;
}

export function validateDeployment(d: DeploymentOptions): void {
  for (const k of ['manufacturer', 'manufacturerModelName', 'softwareVersions'] as const) {
    if (typeof d[k] !== 'string' || d[k].trim() === '') throw new Error(`deployment.${k} is empty`);
  }
}

/** Attributes of the Patient, Clinical Trial Subject, General Study and Patient Study modules. */
const PATIENT_STUDY_KEYS = [
  'SpecificCharacterSet',
  // Patient
  'PatientName',
  'PatientID',
  'IssuerOfPatientID',
  'IssuerOfPatientIDQualifiersSequence',
  'PatientBirthDate',
  'PatientSex',
  'OtherPatientIDsSequence',
  'PatientIdentityRemoved',
  'DeidentificationMethod',
  'DeidentificationMethodCodeSequence',
  // Clinical trial subject
  'ClinicalTrialSponsorName',
  'ClinicalTrialProtocolID',
  'ClinicalTrialProtocolName',
  'ClinicalTrialSiteID',
  'ClinicalTrialSiteName',
  'ClinicalTrialSubjectID',
  'ClinicalTrialSubjectReadingID',
  // General study
  'StudyInstanceUID',
  'StudyDate',
  'StudyTime',
  'ReferringPhysicianName',
  'StudyID',
  'AccessionNumber',
  'IssuerOfAccessionNumberSequence',
  'StudyDescription',
  // Patient study
  'PatientAge',
  'PatientSize',
  'PatientWeight',
] as const;

/** Type 2 attributes that must be present (empty when the source lacks them). */
const TYPE2 = ['PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex', 'StudyDate', 'StudyTime', 'ReferringPhysicianName', 'StudyID', 'AccessionNumber'];

function isEmptyValue(v: unknown): boolean {
  return v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0);
}

/** Copy patient and study attributes from a source header (values untouched, never logged). */
export function copyPatientStudy(src: NaturalDataset): NaturalDataset {
  const out: NaturalDataset = {};
  for (const k of PATIENT_STUDY_KEYS) {
    const v = src[k];
    if (!isEmptyValue(v)) out[k] = v;
  }
  // PatientAge is AS (nnnD/W/M/Y, 4 characters): a source holding anything else (the real Philips study has
  // "NA") would make every result object invalid; an age that is not one is left out (the attribute is Type 3).
  if (out.PatientAge !== undefined && !/^\d{3}[DWMY]$/.test(String(out.PatientAge).trim())) delete out.PatientAge;
  for (const k of TYPE2) if (!(k in out)) out[k] = '';
  // De-identified sources sometimes say PatientIdentityRemoved YES without the method (Type 1C then:
  // DeidentificationMethod or its code sequence). Keep the flag, which downstream data handling
  // relies on, and say truthfully that the method is unknown rather than writing an invalid object.
  if (
    String(out.PatientIdentityRemoved ?? '').toUpperCase() === 'YES' &&
    out.DeidentificationMethod === undefined &&
    out.DeidentificationMethodCodeSequence === undefined
  ) {
    out.DeidentificationMethod = 'UNKNOWN (not stated in the source instances)';
  }
  if (!out.StudyInstanceUID) throw new Error('source header has no StudyInstanceUID');
  return out;
}

/** The source header for a slice, or a readable error. */
export function headerFor(headers: Map<string, NaturalDataset>, src: SliceSource): NaturalDataset {
  const h = headers.get(src.sopInstanceUid);
  if (!h) throw new Error(`no source header for slice source instance ${src.sopInstanceUid}`);
  return h;
}

/**
 * ReferencedSeriesSequence (Common Instance Reference module): every distinct instance, grouped by
 * series, in first-seen order.
 */
export function referencedSeriesSequence(sources: SliceSource[]): NaturalDataset[] {
  const bySeries = new Map<string, Map<string, string>>();
  for (const s of sources) {
    let m = bySeries.get(s.seriesInstanceUid);
    if (!m) bySeries.set(s.seriesInstanceUid, (m = new Map()));
    if (!m.has(s.sopInstanceUid)) m.set(s.sopInstanceUid, s.sopClassUid);
  }
  return [...bySeries.entries()].map(([seriesUid, inst]) => ({
    SeriesInstanceUID: seriesUid,
    ReferencedInstanceSequence: [...inst.entries()].map(([uid, cls]) => ({
      ReferencedSOPClassUID: cls,
      ReferencedSOPInstanceUID: uid,
    })),
  }));
}

/** One SourceImageSequence item: instance (+ frame), purpose 121322. */
export function sourceImageItem(src: SliceSource, spatialLocationsPreserved?: 'YES' | 'NO'): NaturalDataset {
  const item: NaturalDataset = {
    ReferencedSOPClassUID: src.sopClassUid,
    ReferencedSOPInstanceUID: src.sopInstanceUid,
  };
  if (src.frameNumber !== undefined) item.ReferencedFrameNumber = [src.frameNumber];
  item.PurposeOfReferenceCodeSequence = codeSeq(Codes.SourceImageForProcessing);
  if (spatialLocationsPreserved) item.SpatialLocationsPreserved = spatialLocationsPreserved;
  return item;
}

/**
 * ImagePositionPatient the source itself records for a slice (single-frame: top level; multi-frame:
 * that frame's PlanePositionSequence, or the shared one). Undefined when the header has none.
 */
export function sourceSlicePosition(header: NaturalDataset, src: SliceSource): Vec3 | undefined {
  let ipp: number[] = [];
  if (src.frameNumber !== undefined) {
    const perFrame = seq(header, 'PerFrameFunctionalGroupsSequence')[src.frameNumber - 1];
    if (perFrame) ipp = nums(seq(perFrame, 'PlanePositionSequence')[0] ?? {}, 'ImagePositionPatient');
    if (ipp.length !== 3) {
      const shared = seq(header, 'SharedFunctionalGroupsSequence')[0];
      if (shared) ipp = nums(seq(shared, 'PlanePositionSequence')[0] ?? {}, 'ImagePositionPatient');
    }
  } else {
    ipp = nums(header, 'ImagePositionPatient');
  }
  return ipp.length === 3 && ipp.every(Number.isFinite) ? [ipp[0], ipp[1], ipp[2]] : undefined;
}

/**
 * Refuse a slice whose source instance/frame is not where the volume says it is: the guard against
 * a mask written onto the wrong source image (which dciodvfy cannot see).
 */
export function checkSliceMapping(
  headers: Map<string, NaturalDataset>,
  sources: SliceSource[],
  positions: Vec3[],
  toleranceMm: number,
): void {
  sources.forEach((src, z) => {
    const h = headerFor(headers, src);
    const sopClass = str(h, 'SOPClassUID');
    if (sopClass && sopClass !== src.sopClassUid) {
      throw new Error(`slice ${z}: sliceSources SOP class ${src.sopClassUid} differs from the header's ${sopClass}`);
    }
    const nFrames = Number(str(h, 'NumberOfFrames') ?? '1');
    if (src.frameNumber !== undefined && (src.frameNumber < 1 || src.frameNumber > nFrames)) {
      throw new Error(`slice ${z}: frame ${src.frameNumber} outside 1..${nFrames} of ${src.sopInstanceUid}`);
    }
    const p = sourceSlicePosition(h, src);
    if (!p) return;
    const q = positions[z];
    const d = Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]);
    if (d > toleranceMm) {
      throw new Error(
        `slice ${z}: source ${src.sopInstanceUid}${src.frameNumber ? ` frame ${src.frameNumber}` : ''} lies ${d.toFixed(3)} mm from the volume's slice position: slice-to-source mapping is wrong`,
      );
    }
  });
}

/** LO-safe text (64 chars, no backslash). */
export function lo(s: string): string {
  return truncate(s.replace(/\\/g, '/'), 64);
}

/** Format a DS value: at most 16 characters. */
export function ds(x: number): string {
  if (!Number.isFinite(x)) throw new Error(`DS value ${x} is not finite`);
  if (Number.isInteger(x) && Math.abs(x) < 1e15) return String(x);
  for (let p = 10; p >= 1; p--) {
    const s = String(Number(x.toPrecision(p)));
    if (s.length <= 16) return s;
  }
  return x.toExponential(6);
}

/** Volume in mL of a binary mask on a grid. */
export function maskVolumeMl(mask: Uint8Array, pixelSpacing: [number, number], sliceSpacing: number): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) n++;
  return (n * pixelSpacing[0] * pixelSpacing[1] * sliceSpacing) / 1000;
}

/** Human volume text, e.g. "12.3 mL". */
export function formatMl(ml: number): string {
  return `${ml < 10 ? ml.toFixed(2) : ml.toFixed(1)} mL`;
}
