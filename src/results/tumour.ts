/**
 * Brain tumour results (task brain-tumour-mr): a three-segment binary DICOM SEG and a TID 1500
 * measurement SR.
 *
 * Input: the reference series the label volume lies on (an acquired series: its `Volume` with
 * `sliceSources`, and its headers by SOPInstanceUID, exactly as the stroke SEG gets them), the label
 * volume on that grid (0 background, 1 necrotic / non-enhancing tumour core, 2 peritumoural oedema,
 * 3 enhancing tumour: the BraTS labels 1, 2, 4 renumbered), the voxel volume, provenance, and which
 * of FLAIR / T1 / T1C / T2 were present, missing, and synthesised.
 *
 * SEG: the generic writer (seg/), so every frame sits on its exact source slice by SOPInstanceUID,
 * empty frames are written, the slice-to-source mapping is verified against each source's own IPP,
 * ReferencedSeriesSequence and per-frame DerivationImageSequence are filled in. Segments (codes: see
 * `Codes.NonEnhancingLesion` etc. in codes.ts, PS3.16 CID 7169):
 *   1 "Necrotic / non-enhancing tumour core" (C81175, NCIt, "Non-Enhancing Lesion")  red
 *   2 "Peritumoural oedema"                  (79654002, SCT, "Edema")                green
 *   3 "Enhancing tumour"                     (C113842, NCIt, "Enhancing Lesion")     yellow
 * (the usual BraTS figure colours: NCR/NET red, ED green, ET yellow), category (49755003, SCT,
 * "Morphologically Abnormal Structure") and anatomic region (12738006, SCT, "Brain") as for stroke.
 *
 * SR: TID 1500, one TID 1411 Volumetric ROI measurement group per sub-region, each referencing exactly
 * one segment (TID 1411 row "Referenced Segment": one segmentation object, a single selected segment).
 * The whole tumour (segments 1+2+3) and the tumour core (1+3) span several segments, so they are TID
 * 1501 "Measurement and Qualitative Evaluation Group" items (TID 1500 row 9): no image reference,
 * tracking identifier, Finding "Neoplasm", the volume (TID 300), and a Comment naming the summed
 * segments of the SEG. Volumes in mL (UCUM "ml"), method "Sum of segmented voxel volumes". The sequences
 * used / missing / synthesised are written as Algorithm Parameters in every group and as comments in
 * Qualitative Evaluations.
 */
import { newUid, writePart10, type NaturalDataset } from '../dicom/dcmjs';
import type { Volume } from '../types';
import { Codes } from './codes';
import { ds, formatMl, lo, validateDeployment, type DeploymentOptions } from './common';
import { isValidUid, provenanceSummary, validateProvenance, type Provenance } from './provenance';
import { buildSegDataset, SEG_SOP_CLASS_UID, type SegmentDescription, type SegOptions, type SegResult } from './seg';
import {
  codeItem,
  container,
  instancesBySeries,
  item,
  measurementReportContent,
  measurementReportDataset,
  measurementSrResult,
  segmentedVolumeItem,
  text,
  uidref,
  type MeasurementSrResult,
} from './sr';

export type TumourSequence = 'FLAIR' | 'T1' | 'T1C' | 'T2';
export const TUMOUR_SEQUENCES: readonly TumourSequence[] = ['FLAIR', 'T1', 'T1C', 'T2'];

/** Label values of the label volume the writers take. */
export const TumourLabel = { core: 1, oedema: 2, enhancing: 3 } as const;

/** The three sub-region segments, SegmentNumber = label value. */
export function brainTumourSegments(algorithmName: string, algorithmVersion: string, algorithmParameters?: string): SegmentDescription[] {
  const common = {
    category: Codes.MorphologicallyAbnormalStructure,
    anatomicRegion: Codes.Brain,
    algorithmName,
    algorithmVersion,
    ...(algorithmParameters ? { algorithmParameters } : {}),
  };
  return [
    { ...common, label: 'Necrotic / non-enhancing tumour core', description: 'BraTS label 1 (NCR/NET)', type: Codes.NonEnhancingLesion, color: { r: 255, g: 0, b: 0 } },
    { ...common, label: 'Peritumoural oedema', description: 'BraTS label 2 (ED)', type: Codes.Edema, color: { r: 0, g: 200, b: 0 } },
    { ...common, label: 'Enhancing tumour', description: 'BraTS label 4 (ET)', type: Codes.EnhancingLesion, color: { r: 255, g: 230, b: 0 } },
  ];
}

export interface TumourSequences {
  /** Acquired sequences the model was given. */
  present: TumourSequence[];
  /** Sequences the study lacked: the model ran without them (ShaSpec fills in their features). */
  missing: TumourSequence[];
  /** Sequences given to the model as AI-synthesised images rather than acquired ones (default none). */
  synthesised?: TumourSequence[];
  /** SeriesInstanceUID of each present sequence's series, for the SR's comments. */
  seriesUids?: Partial<Record<TumourSequence, string>>;
}

export interface TumourVolumes {
  /** Necrotic / non-enhancing core (label 1), oedema (2), enhancing (3), mL. */
  core: number;
  oedema: number;
  enhancing: number;
  /** 1 + 2 + 3. */
  wholeTumour: number;
  /** 1 + 3. */
  tumourCore: number;
  /** Voxel counts per label 1..3. */
  voxels: [number, number, number];
  voxelVolumeMm3: number;
}

export interface TumourResultInput {
  /** The reference (acquired) series the labels lie on: geometry + sliceSources. */
  source: Volume;
  /** Label volume on source's grid (slice-major as Volume.data): 0..3 (see TumourLabel). */
  labels: Uint8Array;
  /** Source headers by SOPInstanceUID (every instance in source.sliceSources). */
  sourceHeaders: Map<string, NaturalDataset>;
  /**
   * Volume of one voxel (mm³). Default: pixel spacing x slice spacing of the source grid. When given it
   * must agree with the grid within 1 % (a mismatch means the labels are not on this grid).
   */
  voxelVolumeMm3?: number;
  sequences: TumourSequences;
  /** Further sentences for the SR's Qualitative Evaluations (e.g. synthetic series sent or not sent, and why). */
  notes?: string[];
  algorithmName: string;
  algorithmVersion: string;
  provenance: Provenance;
  deployment: DeploymentOptions;
  options?: {
    seg?: SegOptions;
    sr?: { seriesNumber?: number; seriesDescription?: string; seriesInstanceUid?: string; now?: Date };
  };
}

export interface TumourResults {
  seg: SegResult;
  sr: MeasurementSrResult;
  volumes: TumourVolumes;
}

function checkSequences(s: TumourSequences): void {
  const all = [...s.present, ...s.missing];
  for (const q of [...all, ...(s.synthesised ?? [])]) {
    if (!TUMOUR_SEQUENCES.includes(q)) throw new Error(`unknown tumour sequence "${q}"`);
  }
  if (new Set(all).size !== all.length) throw new Error('a sequence is listed both present and missing, or twice');
  if (s.present.length === 0) throw new Error('no sequence present: the tumour model needs at least one');
  for (const q of s.synthesised ?? []) {
    if (s.missing.includes(q)) throw new Error(`sequence ${q} is listed missing and synthesised: a synthesised sequence is given to the model, list it present`);
    if (!s.present.includes(q)) throw new Error(`synthesised sequence ${q} is not listed present`);
  }
}

const order = (qs: TumourSequence[]): TumourSequence[] => TUMOUR_SEQUENCES.filter((q) => qs.includes(q));

/** "present FLAIR, T2; missing T1, T1C; synthesised none" — the sequence part of Algorithm Parameters. */
export function sequencesText(s: TumourSequences): string {
  const list = (qs: TumourSequence[] | undefined): string => (qs && qs.length ? order(qs).join(', ') : 'none');
  return `sequences present ${list(s.present)}; missing ${list(s.missing)}; synthesised ${list(s.synthesised)}`;
}

/** Voxel counts and volumes of the sub-regions and the composite regions. */
export function tumourVolumes(labels: Uint8Array, voxelVolumeMm3: number): TumourVolumes {
  if (!Number.isFinite(voxelVolumeMm3) || voxelVolumeMm3 <= 0) throw new Error(`voxel volume ${voxelVolumeMm3} mm³ is not positive`);
  const n: [number, number, number] = [0, 0, 0];
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i];
    if (v === 0) continue;
    if (v > 3) throw new Error(`label value ${v} at voxel ${i}: tumour labels are 0..3 (BraTS 4 must be renumbered 3)`);
    n[v - 1]++;
  }
  const ml = (c: number): number => (c * voxelVolumeMm3) / 1000;
  return {
    core: ml(n[0]),
    oedema: ml(n[1]),
    enhancing: ml(n[2]),
    wholeTumour: ml(n[0] + n[1] + n[2]),
    tumourCore: ml(n[0] + n[2]),
    voxels: n,
    voxelVolumeMm3,
  };
}

function voxelVolumeOf(input: TumourResultInput): number {
  const g = input.source.geometry;
  const grid = g.pixelSpacing[0] * g.pixelSpacing[1] * g.sliceSpacing;
  const v = input.voxelVolumeMm3 ?? grid;
  if (Math.abs(v - grid) > 0.01 * grid) {
    throw new Error(`voxel volume ${v} mm³ differs from the reference grid's ${grid.toFixed(4)} mm³: the labels are not on this grid`);
  }
  return v;
}

function synthNote(s: TumourSequences): string {
  const syn = order(s.synthesised ?? []);
  return syn.length
    ? `SYNTHESISED SEQUENCE(S) USED: ${syn.join(', ')} given to the model as AI-generated image(s), not acquired.`
    : '';
}

/** The SEG (three segments on the reference series' exact slices). */
export function buildTumourSeg(input: TumourResultInput): { seg: SegResult; volumes: TumourVolumes } {
  checkSequences(input.sequences);
  const voxelVolumeMm3 = voxelVolumeOf(input);
  const volumes = tumourVolumes(input.labels, voxelVolumeMm3);
  const o = input.options?.seg ?? {};
  const syn = order(input.sequences.synthesised ?? []);
  const synTag = syn.length ? ` (synth ${syn.join('+')})` : '';
  const { dataset } = buildSegDataset({
    source: input.source,
    mask: input.labels,
    sourceHeaders: input.sourceHeaders,
    segments: brainTumourSegments(input.algorithmName, input.algorithmVersion, sequencesText(input.sequences)),
    provenance: input.provenance,
    deployment: input.deployment,
    options: {
      seriesNumber: 911,
      contentLabel: 'AI_TUMOUR',
      ...o,
      seriesDescription: o.seriesDescription ?? `${input.provenance.synthetic ? 'SYNTHETIC-INPUT ' : ''}AI tumour SEG WT {volume}${synTag}`,
      contentDescription:
        o.contentDescription ??
        `AI brain tumour sub-regions${input.provenance.synthetic ? ' on SYNTHETIC image' : ''}${syn.length ? `; synthesised ${syn.join(', ')}` : ''}`,
    },
  });
  // SEG-level notes: the sequences (and any synthesised one) ahead of the generic comments.
  const notes = [
    synthNote(input.sequences),
    `Brain tumour sub-regions; ${sequencesText(input.sequences)}.`,
    `Whole tumour ${formatMl(volumes.wholeTumour)}, tumour core ${formatMl(volumes.tumourCore)}.`,
  ].filter(Boolean);
  dataset.ImageComments = `${notes.join(' ')} ${String(dataset.ImageComments ?? '')}`.trim();
  const seg: SegResult = {
    part10: writePart10(dataset),
    sopInstanceUid: String(dataset.SOPInstanceUID),
    seriesInstanceUid: String(dataset.SeriesInstanceUID),
    segmentVolumesMl: [volumes.core, volumes.oedema, volumes.enhancing],
    numberOfFrames: Number(dataset.NumberOfFrames),
  };
  return { seg, volumes };
}

/** The TID 1500 measurement report for a tumour SEG written by buildTumourSeg. */
export function buildTumourSr(
  input: TumourResultInput,
  seg: { sopInstanceUid: string; seriesInstanceUid: string },
  volumes: TumourVolumes,
): { dataset: NaturalDataset } {
  const { provenance, deployment, sequences } = input;
  validateProvenance(provenance);
  validateDeployment(deployment);
  checkSequences(sequences);
  if (!isValidUid(seg.sopInstanceUid) || !isValidUid(seg.seriesInstanceUid)) throw new Error('SEG UIDs are not valid UIDs');
  const slices = input.source.sliceSources;
  if (slices.length === 0) throw new Error('no source slices');
  const sourceHeader = input.sourceHeaders.get(slices[0].sopInstanceUid);
  if (!sourceHeader) throw new Error(`no source header for ${slices[0].sopInstanceUid}`);
  const o = input.options?.sr ?? {};
  const now = o.now ?? new Date();

  const bySeries = instancesBySeries(slices);

  const params = sequencesText(sequences);
  const segs = brainTumourSegments(input.algorithmName, input.algorithmVersion);
  const algorithm = (): NaturalDataset[] => [
    codeItem('HAS CONCEPT MOD', Codes.FindingSite, Codes.Brain),
    text('HAS CONCEPT MOD', Codes.AlgorithmName, lo(input.algorithmName)),
    text('HAS CONCEPT MOD', Codes.AlgorithmVersion, lo(input.algorithmVersion)),
    text('HAS CONCEPT MOD', Codes.AlgorithmParameters, params),
  ];
  const tracking = (label: string): NaturalDataset[] => [
    text('HAS OBS CONTEXT', Codes.TrackingIdentifier, lo(label)),
    uidref('HAS OBS CONTEXT', Codes.TrackingUniqueIdentifier, newUid()),
  ];
  /** TID 1411 Volumetric ROI Measurements: one segment of the SEG (row 7 allows a single segment). */
  const roiGroup = (segmentNumber: number, ml: number): NaturalDataset => {
    const s = segs[segmentNumber - 1];
    return container('CONTAINS', Codes.MeasurementGroup, [
      ...tracking(s.label),
      codeItem('CONTAINS', Codes.Finding, s.type),
      item('CONTAINS', 'IMAGE', Codes.ReferencedSegment, {
        ReferencedSOPSequence: [
          { ReferencedSOPClassUID: SEG_SOP_CLASS_UID, ReferencedSOPInstanceUID: seg.sopInstanceUid, ReferencedSegmentNumber: segmentNumber },
        ],
      }),
      uidref('CONTAINS', Codes.SourceSeriesForSegmentation, slices[0].seriesInstanceUid),
      ...algorithm(),
      segmentedVolumeItem(Codes.Volume, ml),
    ]);
  };
  /**
   * TID 1501 Measurement and Qualitative Evaluation Group for a region made of several segments: no image
   * reference (TID 1411 cannot hold more than one segment); a Comment says which segments were summed.
   */
  const compositeGroup = (label: string, segmentNumbers: number[], ml: number): NaturalDataset =>
    container('CONTAINS', Codes.MeasurementGroup, [
      ...tracking(label),
      codeItem('CONTAINS', Codes.Finding, Codes.Neoplasm),
      ...algorithm(),
      segmentedVolumeItem(Codes.Volume, ml),
      text(
        'CONTAINS',
        Codes.Comment,
        `Sum of segments ${segmentNumbers.map((k) => `${k} (${segs[k - 1].label})`).join(' + ')} of segmentation ${seg.sopInstanceUid}.`,
      ),
    ]);
  const groups = [
    roiGroup(1, volumes.core),
    roiGroup(2, volumes.oedema),
    roiGroup(3, volumes.enhancing),
    compositeGroup('Whole tumour (core + oedema + enhancing)', [1, 2, 3], volumes.wholeTumour),
    compositeGroup('Tumour core (core + enhancing)', [1, 3], volumes.tumourCore),
  ];

  const seriesOf = (q: TumourSequence): string => {
    const uid = sequences.seriesUids?.[q];
    return uid ? ` (series ${uid})` : '';
  };
  const missing = order(sequences.missing);
  const evaluations = [
    synthNote(sequences),
    provenance.synthetic ? 'Measured on a SYNTHETIC (AI-generated) image, not an acquired one.' : '',
    `Sequences present: ${order(sequences.present).map((q) => `${q}${seriesOf(q)}`).join(', ')}.`,
    missing.length
      ? `Sequences missing, the model ran without them: ${missing.join(', ')}.`
      : 'No sequence missing: the model had FLAIR, T1, T1C and T2.',
    (sequences.synthesised ?? []).length ? '' : 'No sequence was synthesised.',
    ...(input.notes ?? []),
    `Segmentation on series ${slices[0].seriesInstanceUid}; voxel ${ds(volumes.voxelVolumeMm3)} mm3.`,
    provenanceSummary(provenance),
    provenance.postprocessing ?? '',
    deployment.disclaimer ?? '',
  ].filter(Boolean);

  const content = measurementReportContent({ provenance, deployment, procedure: Codes.MagneticResonanceImaging, bySeries, groups, evaluations });
  const syn = order(sequences.synthesised ?? []);
  const dataset = measurementReportDataset({
    sourceHeader,
    bySeries,
    seg: { sopInstanceUid: seg.sopInstanceUid, seriesInstanceUid: seg.seriesInstanceUid, sopClassUid: SEG_SOP_CLASS_UID },
    content,
    provenance,
    deployment,
    now,
    seriesInstanceUid: o.seriesInstanceUid,
    seriesNumber: o.seriesNumber ?? 914,
    seriesDescription:
      o.seriesDescription ??
      `${provenance.synthetic ? 'SYNTHETIC-INPUT ' : ''}AI tumour measurements WT ${volumes.wholeTumour.toFixed(1)} mL${syn.length ? ` (synth ${syn.join('+')})` : ''}`,
  });
  return { dataset };
}

/** SEG and SR together (the SR references the SEG's segments). */
export function writeTumourResults(input: TumourResultInput): TumourResults {
  const { seg, volumes } = buildTumourSeg(input);
  const { dataset } = buildTumourSr(input, seg, volumes);
  return {
    seg,
    sr: measurementSrResult(dataset),
    volumes,
  };
}
