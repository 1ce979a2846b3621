/**
 * Liver results (task liver-ct-mr, issue 16): a two-segment binary DICOM SEG and a TID 1500 measurement SR.
 *
 * Input: the acquired series the labels lie on (its Volume with sliceSources, and its headers by SOPInstanceUID),
 * the post-processed label volume on that grid (0 background, 1 liver, 2 liver tumour), the measurements
 * (pipelines/liver-ct-mr/measure.ts), provenance.
 *
 * SEG (the generic writer seg/: every frame on its exact source slice by SOPInstanceUID, empty frames written,
 * ReferencedSeriesSequence and per-frame DerivationImageSequence filled in). Segments do not overlap:
 *   1 "Liver"        category (123037004, SCT, "Anatomical Structure"), type (10200004, SCT, "Liver")           brown
 *                    (liver parenchyma: the liver without its tumours; cysts are liver, as in LiTS)
 *   2 "Liver tumour" category (49755003, SCT, "Morphologically Abnormal Structure"), type (108369006, SCT,
 *                    "Neoplasm"), anatomic region (10200004, SCT, "Liver")                                       green
 *
 * SR: TID 1500. TID 1411 Volumetric ROI groups for segment 1 (liver parenchyma) and segment 2 (tumour burden: total
 * volume and the number of tumours); TID 1501 groups (no image reference: they span several segments or part of
 * one) for the whole liver (1 + 2) and for each tumour (26-connected component of segment 2): its volume, its
 * longest axial diameter ((103339001, SCT, "Long Axis"), mm), and a comment with its centroid, its position inside
 * the segmented liver (thirds right-to-left / top-to-bottom of the mask's extent) and location. No
 * Couinaud segment is reported: it is defined by the hepatic and portal veins, which the model does not segment.
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
  numItem,
  segmentedVolumeItem,
  text,
  uidref,
  type MeasurementSrResult,
} from './sr';

export const LiverLabel = { liver: 1, tumour: 2 } as const;

/** Where no Couinaud segment is reported, the SR and the docs say why in these words. */
export const NO_COUINAUD =
  'Location: no Couinaud segment reported (the segments are defined by the hepatic and portal veins, which this model does not segment; none is guessed).';

/** One tumour as the SR reports it (pipelines/liver-ct-mr/measure.ts TumourMeasurement). */
export interface LiverTumourReport {
  index: number;
  ml: number;
  longestAxialDiameterMm: number;
  /** 0-based slice (ascending along the normal) of the longest axial diameter. */
  diameterSlice: number;
  centroidLpsMm?: [number, number, number];
  /** Where it lies inside the segmented liver, in words (not a Couinaud segment). */
  location?: { text: string };
}

export interface LiverResultInput {
  source: Volume;
  /** 0 background, 1 liver, 2 liver tumour on source's grid. */
  labels: Uint8Array;
  sourceHeaders: Map<string, NaturalDataset>;
  modality: 'CT' | 'MR';
  /** What the series is, in words (e.g. "portal-venous CT"), for the SR. */
  seriesKind: string;
  liverMl: number;
  tumourMl: number;
  tumours: LiverTumourReport[];
  /** Sentences for the SR's Qualitative Evaluations (caveats, post-processing, acceptance). */
  notes?: string[];
  algorithmName: string;
  algorithmVersion: string;
  provenance: Provenance;
  deployment: DeploymentOptions;
  options?: { seg?: SegOptions; sr?: { seriesNumber?: number; seriesDescription?: string; seriesInstanceUid?: string; now?: Date } };
}

export interface LiverResults {
  seg: SegResult;
  sr: MeasurementSrResult;
}

export function liverSegments(algorithmName: string, algorithmVersion: string): SegmentDescription[] {
  const algo = { algorithmName, algorithmVersion };
  return [
    { ...algo, label: 'Liver', description: 'liver parenchyma (liver without its tumours; cysts included)', category: Codes.AnatomicalStructure, type: Codes.Liver, color: { r: 170, g: 110, b: 60 } },
    {
      ...algo,
      label: 'Liver tumour',
      description: 'all liver tumours (each 26-connected part is one tumour in the SR)',
      category: Codes.MorphologicallyAbnormalStructure,
      type: Codes.Neoplasm,
      anatomicRegion: Codes.Liver,
      color: { r: 0, g: 220, b: 80 },
    },
  ];
}

const r1 = (x: number): string => x.toFixed(1);

export function buildLiverSeg(input: LiverResultInput): SegResult {
  const o = input.options?.seg ?? {};
  const { dataset } = buildSegDataset({
    source: input.source,
    mask: input.labels,
    sourceHeaders: input.sourceHeaders,
    segments: liverSegments(input.algorithmName, input.algorithmVersion),
    provenance: input.provenance,
    deployment: input.deployment,
    options: {
      seriesNumber: 921,
      contentLabel: 'AI_LIVER',
      ...o,
      seriesDescription: o.seriesDescription ?? `AI liver SEG ${r1(input.liverMl)} mL, ${input.tumours.length} tumour(s)`,
      contentDescription: o.contentDescription ?? `AI liver and liver tumours (${input.modality})`,
    },
  });
  const head = [
    `Liver ${formatMl(input.liverMl)} (parenchyma + tumours); ${input.tumours.length} tumour(s), ${formatMl(input.tumourMl)} in all.`,
    ...(input.notes ?? []).filter((n) => /phantom/i.test(n)),
  ];
  dataset.ImageComments = `${head.join(' ')} ${String(dataset.ImageComments ?? '')}`.trim();
  return {
    part10: writePart10(dataset),
    sopInstanceUid: String(dataset.SOPInstanceUID),
    seriesInstanceUid: String(dataset.SeriesInstanceUID),
    segmentVolumesMl: [input.liverMl - input.tumourMl, input.tumourMl],
    numberOfFrames: Number(dataset.NumberOfFrames),
  };
}

export function buildLiverSr(input: LiverResultInput, seg: { sopInstanceUid: string; seriesInstanceUid: string }): { dataset: NaturalDataset } {
  const { provenance, deployment } = input;
  validateProvenance(provenance);
  validateDeployment(deployment);
  if (!isValidUid(seg.sopInstanceUid) || !isValidUid(seg.seriesInstanceUid)) throw new Error('SEG UIDs are not valid UIDs');
  const slices = input.source.sliceSources;
  if (!slices.length) throw new Error('no source slices');
  const sourceHeader = input.sourceHeaders.get(slices[0].sopInstanceUid);
  if (!sourceHeader) throw new Error(`no source header for ${slices[0].sopInstanceUid}`);
  const o = input.options?.sr ?? {};
  const now = o.now ?? new Date();
  const bySeries = instancesBySeries(slices);
  const segs = liverSegments(input.algorithmName, input.algorithmVersion);

  const algorithm = (): NaturalDataset[] => [
    codeItem('HAS CONCEPT MOD', Codes.FindingSite, Codes.Liver),
    text('HAS CONCEPT MOD', Codes.AlgorithmName, lo(input.algorithmName)),
    text('HAS CONCEPT MOD', Codes.AlgorithmVersion, lo(input.algorithmVersion)),
  ];
  const tracking = (label: string): NaturalDataset[] => [
    text('HAS OBS CONTEXT', Codes.TrackingIdentifier, lo(label)),
    uidref('HAS OBS CONTEXT', Codes.TrackingUniqueIdentifier, newUid()),
  ];
  const refSegment = (n: number): NaturalDataset =>
    item('CONTAINS', 'IMAGE', Codes.ReferencedSegment, {
      ReferencedSOPSequence: [{ ReferencedSOPClassUID: SEG_SOP_CLASS_UID, ReferencedSOPInstanceUID: seg.sopInstanceUid, ReferencedSegmentNumber: n }],
    });
  const sourceSeries = uidref('CONTAINS', Codes.SourceSeriesForSegmentation, slices[0].seriesInstanceUid);
  const mm = (name: typeof Codes.LongAxis, v: number) => numItem(name, v, Codes.Millimeter);

  const groups: NaturalDataset[] = [
    // TID 1411: segment 1
    container('CONTAINS', Codes.MeasurementGroup, [
      ...tracking('Liver parenchyma (without tumours)'),
      codeItem('CONTAINS', Codes.Finding, Codes.Liver),
      refSegment(1),
      sourceSeries,
      ...algorithm(),
      segmentedVolumeItem(Codes.Volume, Math.max(0, input.liverMl - input.tumourMl)),
    ]),
    // TID 1411: segment 2, the tumour burden and the count
    container('CONTAINS', Codes.MeasurementGroup, [
      ...tracking('Liver tumours (all)'),
      codeItem('CONTAINS', Codes.Finding, Codes.Neoplasm),
      refSegment(2),
      sourceSeries,
      ...algorithm(),
      segmentedVolumeItem(Codes.Volume, input.tumourMl),
      numItem(Codes.NumberOfLiverTumours, input.tumours.length, Codes.NoUnits),
    ]),
    // TID 1501: the whole liver (segments 1 + 2)
    container('CONTAINS', Codes.MeasurementGroup, [
      ...tracking('Liver (parenchyma + tumours)'),
      codeItem('CONTAINS', Codes.Finding, Codes.Liver),
      ...algorithm(),
      segmentedVolumeItem(Codes.Volume, input.liverMl),
      text('CONTAINS', Codes.Comment, `Sum of segments 1 (${segs[0].label}) + 2 (${segs[1].label}) of segmentation ${seg.sopInstanceUid}.`),
    ]),
    // TID 1501: one group a tumour
    ...input.tumours.map((t) =>
      container('CONTAINS', Codes.MeasurementGroup, [
        ...tracking(`Liver tumour ${t.index}`),
        codeItem('CONTAINS', Codes.Finding, Codes.Neoplasm),
        ...algorithm(),
        segmentedVolumeItem(Codes.Volume, t.ml),
        mm(Codes.LongAxis, t.longestAxialDiameterMm),
        text(
          'CONTAINS',
          Codes.Comment,
          [
            `Tumour ${t.index}: 26-connected part of segment 2 (${segs[1].label}) of segmentation ${seg.sopInstanceUid}.`,
            `Longest axial diameter ${r1(t.longestAxialDiameterMm)} mm on source slice ${t.diameterSlice + 1} of ${slices.length} (SOP ${slices[t.diameterSlice]?.sopInstanceUid ?? '?'}), voxel centres + one pixel.`,
            t.centroidLpsMm ? `Centroid (patient LPS) ${t.centroidLpsMm.map(r1).join(', ')} mm.` : '',
            t.location ? `Position: ${t.location.text}.` : '',
            NO_COUINAUD,
          ]
            .filter(Boolean)
            .join(' '),
        ),
      ]),
    ),
  ];

  const evaluations = [
    ...(input.notes ?? []),
    `Series: ${input.seriesKind} (series ${slices[0].seriesInstanceUid}); voxel ${ds(input.source.geometry.pixelSpacing[0] * input.source.geometry.pixelSpacing[1] * input.source.geometry.sliceSpacing)} mm3.`,
    `Liver ${formatMl(input.liverMl)}; ${input.tumours.length} tumour(s)${input.tumours.length ? `: ${input.tumours.map((t) => `${t.index}) ${formatMl(t.ml)}, ${r1(t.longestAxialDiameterMm)} mm`).join('; ')}` : ''}.`,
    NO_COUINAUD,
    provenanceSummary(provenance),
    provenance.postprocessing ?? '',
    deployment.disclaimer ?? '',
  ].filter(Boolean);

  const content = measurementReportContent({
    provenance,
    deployment,
    procedure: input.modality === 'CT' ? Codes.ComputedTomography : Codes.MagneticResonanceImaging,
    bySeries,
    groups,
    evaluations,
  });
  const dataset = measurementReportDataset({
    sourceHeader,
    bySeries,
    seg: { sopInstanceUid: seg.sopInstanceUid, seriesInstanceUid: seg.seriesInstanceUid, sopClassUid: SEG_SOP_CLASS_UID },
    content,
    provenance,
    deployment,
    now,
    seriesInstanceUid: o.seriesInstanceUid,
    seriesNumber: o.seriesNumber ?? 922,
    seriesDescription: o.seriesDescription ?? `AI liver measurements ${r1(input.liverMl)} mL, ${input.tumours.length} tumour(s)`,
  });
  return { dataset };
}

/** SEG and SR together (the SR references the SEG's segments). */
export function writeLiverResults(input: LiverResultInput): LiverResults {
  const seg = buildLiverSeg(input);
  const { dataset } = buildLiverSr(input, seg);
  return { seg, sr: measurementSrResult(dataset) };
}
