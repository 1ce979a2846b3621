/**
 * TID 1500 Measurement Report as a Comprehensive SR (1.2.840.10008.5.1.4.1.1.88.33): the lesion
 * volume (mL, UCUM "ml") of a SEG segment and the volume with ADC below 620 x10^-6 mm²/s
 * (ischaemic core), in one TID 1411 Volumetric ROI measurement group that references the SEG segment
 * and the source series, with the algorithm identification (TID 4019) and a device observer (TID 1004).
 *
 * Comprehensive SR rather than Enhanced SR: dciodvfy validates it, Orthanc stores and renders it, and
 * it is the SOP class highdicom and dcmqi use for TID 1500.
 */
import { newUid, writePart10, str, type NaturalDataset } from '../../dicom/dcmjs';
import type { SliceSource } from '../../types';
import { CodedConcept, Codes, codeSeq } from '../codes';
import { copyPatientStudy, ds, lo, validateDeployment, type DeploymentOptions } from '../common';
import {
  contributingEquipmentItem,
  deviceUidForModel,
  dicomDateTime,
  isValidUid,
  provenanceSummary,
  purposeFor,
  validateProvenance,
  type Provenance,
} from '../provenance';

export const COMPREHENSIVE_SR = '1.2.840.10008.5.1.4.1.1.88.33';

/**
 * CT-only studies (infarct measured on a SYNTHETIC DWI computed from the CT): a TEXT item of the
 * report's Qualitative Evaluations, so an empty result is not read as "no infarct".
 */
export const SYNTHETIC_INFARCT_CAVEAT =
  'CT only: the lesion was segmented on a SYNTHETIC DWI computed from the CT, which does not show every infarct. ' +
  'An empty or small result (0 mL) must not be read as "no infarct": it does not exclude infarction. ' +
  'Review the CT and, where needed, an acquired MR DWI.';

export interface MeasurementSrInput {
  /** Any one source header (patient/study attributes are copied from it). */
  sourceHeader: NaturalDataset;
  /** The source slices the SEG was computed on (the Image Library and evidence list them). */
  sourceSlices: SliceSource[];
  seg: { sopInstanceUid: string; seriesInstanceUid: string; sopClassUid?: string; segmentNumber?: number };
  /** Label of the segment, used as Tracking Identifier. */
  findingLabel?: string;
  finding?: CodedConcept;
  findingSite?: CodedConcept;
  lesionVolumeMl: number;
  /**
   * Volume (mL) with ADC < 620 x10^-6 mm²/s: inside the lesion, or inside the brain; omitted when
   * no ADC was available (the SR then says so in its qualitative evaluations).
   */
  core?: { volumeMl: number; region: 'lesion' | 'brain' };
  /**
   * What the SR says about the core threshold: with `core`, how it was applied (e.g. the b-value of the ADC);
   * without, why no core volume is reported (e.g. the ADC comes from b = 2500, where the threshold does not apply).
   */
  coreNote?: string;
  algorithmName: string;
  algorithmVersion: string;
  provenance: Provenance;
  deployment: DeploymentOptions;
  procedureReported?: CodedConcept;
  options?: { seriesNumber?: number; seriesDescription?: string; seriesInstanceUid?: string; now?: Date; trackingUid?: string };
}

export interface MeasurementSrResult {
  part10: Buffer;
  sopInstanceUid: string;
  seriesInstanceUid: string;
}

// ---- SR content-item builders, shared by the stroke (this file) and tumour (../tumour.ts) reports ----
export type Rel = 'CONTAINS' | 'HAS OBS CONTEXT' | 'HAS CONCEPT MOD' | 'HAS ACQ CONTEXT' | 'INFERRED FROM';

export function item(rel: Rel, valueType: string, name: CodedConcept, value: NaturalDataset): NaturalDataset {
  return { RelationshipType: rel, ValueType: valueType, ConceptNameCodeSequence: codeSeq(name), ...value };
}
export const text = (rel: Rel, name: CodedConcept, v: string): NaturalDataset => item(rel, 'TEXT', name, { TextValue: v });
export const codeItem = (rel: Rel, name: CodedConcept, v: CodedConcept): NaturalDataset =>
  item(rel, 'CODE', name, { ConceptCodeSequence: codeSeq(v) });
export const uidref = (rel: Rel, name: CodedConcept, v: string): NaturalDataset => item(rel, 'UIDREF', name, { UID: v });
export function container(rel: Rel, name: CodedConcept, children: NaturalDataset[]): NaturalDataset {
  return item(rel, 'CONTAINER', name, { ContinuityOfContent: 'SEPARATE', ContentSequence: children });
}
export function numItem(name: CodedConcept, value: number, unit: CodedConcept, mods: NaturalDataset[] = []): NaturalDataset {
  if (!Number.isFinite(value) || value < 0) throw new Error(`measurement ${name.meaning}: ${value} is not a non-negative number`);
  const n = item('CONTAINS', 'NUM', name, {
    MeasuredValueSequence: [{ NumericValue: ds(Math.round(value * 1e4) / 1e4), MeasurementUnitsCodeSequence: codeSeq(unit) }],
  });
  if (mods.length) n.ContentSequence = mods;
  return n;
}
/** A volume in mL (UCUM "ml"), method "Sum of segmented voxel volumes". */
export function segmentedVolumeItem(name: CodedConcept, ml: number): NaturalDataset {
  return numItem(name, ml, Codes.Milliliter, [codeItem('HAS CONCEPT MOD', Codes.MeasurementMethod, Codes.SumOfSegmentedVoxelVolumes)]);
}

/** Distinct source instances (SOPInstanceUID -> SOPClassUID), grouped by series, in slice order. */
export function instancesBySeries(slices: SliceSource[]): Map<string, Map<string, string>> {
  const bySeries = new Map<string, Map<string, string>>();
  for (const s of slices) {
    let m = bySeries.get(s.seriesInstanceUid);
    if (!m) bySeries.set(s.seriesInstanceUid, (m = new Map()));
    m.set(s.sopInstanceUid, s.sopClassUid);
  }
  return bySeries;
}

/**
 * The document content of a TID 1500 report: language, device observer (TID 1004), procedure reported,
 * Image Library (every source instance), Imaging Measurements (the groups) and Qualitative Evaluations
 * (one Comment per evaluation, at most 1024 characters).
 */
export function measurementReportContent(args: {
  provenance: Provenance;
  deployment: DeploymentOptions;
  procedure: CodedConcept;
  bySeries: Map<string, Map<string, string>>;
  groups: NaturalDataset[];
  evaluations: string[];
}): NaturalDataset[] {
  const { provenance, deployment } = args;
  const images: NaturalDataset[] = [];
  for (const m of args.bySeries.values()) {
    for (const [uid, cls] of m) {
      images.push({
        RelationshipType: 'CONTAINS',
        ValueType: 'IMAGE',
        ReferencedSOPSequence: [{ ReferencedSOPClassUID: cls, ReferencedSOPInstanceUID: uid }],
      });
    }
  }
  return [
    codeItem('HAS CONCEPT MOD', Codes.LanguageOfContent, Codes.English),
    codeItem('HAS OBS CONTEXT', Codes.ObserverType, Codes.Device),
    uidref('HAS OBS CONTEXT', Codes.DeviceObserverUid, deviceUidForModel(provenance)),
    text('HAS OBS CONTEXT', Codes.DeviceObserverName, lo(provenance.nodeName)),
    text('HAS OBS CONTEXT', Codes.DeviceObserverManufacturer, lo(deployment.manufacturer)),
    text('HAS OBS CONTEXT', Codes.DeviceObserverModelName, lo(provenance.modelName)),
    codeItem('HAS CONCEPT MOD', Codes.ProcedureReported, args.procedure),
    container('CONTAINS', Codes.ImageLibrary, [container('CONTAINS', Codes.ImageLibraryGroup, images)]),
    container('CONTAINS', Codes.ImagingMeasurements, args.groups),
    container('CONTAINS', Codes.QualitativeEvaluations, args.evaluations.map((e) => text('CONTAINS', Codes.Comment, e.slice(0, 1024)))),
  ];
}

/**
 * The Comprehensive SR dataset of a TID 1500 report: patient/study from the source header, SR Document
 * Series / General / Content, the evidence (every source instance by series, then the SEG), contributing
 * equipment.
 */
export function measurementReportDataset(args: {
  sourceHeader: NaturalDataset;
  bySeries: Map<string, Map<string, string>>;
  seg: { sopInstanceUid: string; seriesInstanceUid: string; sopClassUid: string };
  content: NaturalDataset[];
  provenance: Provenance;
  deployment: DeploymentOptions;
  now: Date;
  seriesInstanceUid?: string;
  seriesNumber: number;
  seriesDescription: string;
}): NaturalDataset {
  const { provenance, deployment, seg, now } = args;
  const t = dicomDateTime(now);
  const evidenceSeries: NaturalDataset[] = [...args.bySeries.entries()].map(([seriesUid, m]) => ({
    SeriesInstanceUID: seriesUid,
    ReferencedSOPSequence: [...m.entries()].map(([uid, cls]) => ({ ReferencedSOPClassUID: cls, ReferencedSOPInstanceUID: uid })),
  }));
  evidenceSeries.push({
    SeriesInstanceUID: seg.seriesInstanceUid,
    ReferencedSOPSequence: [{ ReferencedSOPClassUID: seg.sopClassUid, ReferencedSOPInstanceUID: seg.sopInstanceUid }],
  });
  const dataset: NaturalDataset = {
    ...copyPatientStudy(args.sourceHeader),
    SOPClassUID: COMPREHENSIVE_SR,
    SOPInstanceUID: newUid(),
    InstanceCreationDate: t.date,
    InstanceCreationTime: t.time,
    Modality: 'SR',
    SeriesInstanceUID: args.seriesInstanceUid ?? newUid(),
    SeriesNumber: args.seriesNumber,
    SeriesDate: t.date,
    SeriesTime: t.time,
    SeriesDescription: lo(args.seriesDescription),
    ReferencedPerformedProcedureStepSequence: [],
    Manufacturer: lo(deployment.manufacturer),
    ManufacturerModelName: lo(deployment.manufacturerModelName),
    SoftwareVersions: lo(deployment.softwareVersions),
    InstanceNumber: 1,
    CompletionFlag: 'COMPLETE',
    VerificationFlag: 'UNVERIFIED',
    ContentDate: t.date,
    ContentTime: t.time,
    PerformedProcedureCodeSequence: [],
    CurrentRequestedProcedureEvidenceSequence: [
      { StudyInstanceUID: str(args.sourceHeader, 'StudyInstanceUID'), ReferencedSeriesSequence: evidenceSeries },
    ],
    ValueType: 'CONTAINER',
    ConceptNameCodeSequence: codeSeq(Codes.ImagingMeasurementReport),
    ContinuityOfContent: 'SEPARATE',
    ContentTemplateSequence: [{ MappingResource: 'DCMR', TemplateIdentifier: '1500' }],
    ContentSequence: args.content,
    ContributingEquipmentSequence: [
      contributingEquipmentItem(provenance, purposeFor(false), { manufacturer: deployment.manufacturer, institutionName: deployment.institutionName }, now),
    ],
  };
  if (deployment.institutionName) dataset.InstitutionName = lo(deployment.institutionName);
  return dataset;
}

/** The Part 10 bytes and UIDs of a report dataset. */
export function measurementSrResult(dataset: NaturalDataset): MeasurementSrResult {
  return {
    part10: writePart10(dataset),
    sopInstanceUid: String(dataset.SOPInstanceUID),
    seriesInstanceUid: String(dataset.SeriesInstanceUID),
  };
}

export function buildMeasurementSr(input: MeasurementSrInput): { dataset: NaturalDataset } {
  const { provenance, deployment, seg } = input;
  validateProvenance(provenance);
  validateDeployment(deployment);
  if (!isValidUid(seg.sopInstanceUid) || !isValidUid(seg.seriesInstanceUid)) throw new Error('SEG UIDs are not valid UIDs');
  if (input.sourceSlices.length === 0) throw new Error('no source slices');
  const o = input.options ?? {};
  const now = o.now ?? new Date();
  const segClass = seg.sopClassUid ?? '1.2.840.10008.5.1.4.1.1.66.4';
  const segmentNumber = seg.segmentNumber ?? 1;
  const modality = str(input.sourceHeader, 'Modality');
  const procedure = input.procedureReported ?? (modality === 'CT' ? Codes.ComputedTomography : Codes.MagneticResonanceImaging);

  const bySeries = instancesBySeries(input.sourceSlices);
  const coreItems: NaturalDataset[] = [];
  if (input.core) {
    coreItems.push(
      segmentedVolumeItem(input.core.region === 'lesion' ? Codes.LesionVolumeAdcBelow620 : Codes.BrainVolumeAdcBelow620, input.core.volumeMl),
    );
  }
  const group = container('CONTAINS', Codes.MeasurementGroup, [
    text('HAS OBS CONTEXT', Codes.TrackingIdentifier, lo(input.findingLabel ?? 'Ischaemic lesion')),
    uidref('HAS OBS CONTEXT', Codes.TrackingUniqueIdentifier, o.trackingUid ?? newUid()),
    codeItem('CONTAINS', Codes.Finding, input.finding ?? Codes.Infarct),
    item('CONTAINS', 'IMAGE', Codes.ReferencedSegment, {
      ReferencedSOPSequence: [{ ReferencedSOPClassUID: segClass, ReferencedSOPInstanceUID: seg.sopInstanceUid, ReferencedSegmentNumber: segmentNumber }],
    }),
    uidref('CONTAINS', Codes.SourceSeriesForSegmentation, input.sourceSlices[0].seriesInstanceUid),
    codeItem('HAS CONCEPT MOD', Codes.FindingSite, input.findingSite ?? Codes.Brain),
    text('HAS CONCEPT MOD', Codes.AlgorithmName, lo(input.algorithmName)),
    text('HAS CONCEPT MOD', Codes.AlgorithmVersion, lo(input.algorithmVersion)),
    segmentedVolumeItem(Codes.Volume, input.lesionVolumeMl),
    ...coreItems,
  ]);
  const evaluations = [
    provenance.synthetic ? 'Measured on a SYNTHETIC (AI-generated) image, not an acquired one.' : '',
    provenance.synthetic && (input.finding ?? Codes.Infarct).value === Codes.Infarct.value ? SYNTHETIC_INFARCT_CAVEAT : '',
    input.core ? (input.coreNote ?? '') : (input.coreNote ?? 'Ischaemic core volume (ADC < 620 x10-6 mm2/s) not reported: no ADC available.'),
    provenanceSummary(provenance),
    provenance.postprocessing ?? '',
    deployment.disclaimer ?? '',
  ].filter(Boolean);

  const content = measurementReportContent({ provenance, deployment, procedure, bySeries, groups: [group], evaluations });
  const volText = `${input.lesionVolumeMl.toFixed(1)} mL`;
  const dataset = measurementReportDataset({
    sourceHeader: input.sourceHeader,
    bySeries,
    seg: { sopInstanceUid: seg.sopInstanceUid, seriesInstanceUid: seg.seriesInstanceUid, sopClassUid: segClass },
    content,
    provenance,
    deployment,
    now,
    seriesInstanceUid: o.seriesInstanceUid,
    seriesNumber: o.seriesNumber ?? 904,
    seriesDescription: o.seriesDescription ?? `${provenance.synthetic ? 'SYNTHETIC-INPUT ' : ''}AI stroke measurements ${volText}`,
  });
  return { dataset };
}

export function writeMeasurementSr(input: MeasurementSrInput): MeasurementSrResult {
  return measurementSrResult(buildMeasurementSr(input).dataset);
}
