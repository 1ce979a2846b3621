/**
 * Types that cross stage boundaries. Each stage owns its internals; this file is the contract
 * between ingest → study → pipelines → results → egress. Keep it small and documented.
 */

export type Vec3 = [number, number, number];

/** One instance as the store indexed it (pixel data stays on disk). */
export interface StoredInstance {
  sopInstanceUid: string;
  sopClassUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  transferSyntaxUid: string;
  /** Absolute path of the Part 10 file on disk. */
  path: string;
  bytes: number;
  receivedAt: string; // ISO 8601
  /** Calling AE title (DIMSE) or "STOW-RS" / the token subject for DICOMweb. */
  sourceAe: string;
}

/**
 * Geometry of a volume on its acquisition grid, in the DICOM patient coordinate system (LPS, mm).
 * Slices are sorted by position along the slice normal (ascending), never by InstanceNumber.
 */
export interface VolumeGeometry {
  rows: number;
  columns: number;
  slices: number;
  /** PixelSpacing as in DICOM: [spacing between rows (mm), spacing between columns (mm)]. */
  pixelSpacing: [number, number];
  /** Median distance between consecutive slice positions along the normal (mm). */
  sliceSpacing: number;
  /** ImageOrientationPatient split: direction of increasing column index, of increasing row index. */
  rowCosines: Vec3;
  columnCosines: Vec3;
  /** rowCosines × columnCosines. */
  normal: Vec3;
  /** ImagePositionPatient of each sorted slice (top-left voxel centre). */
  slicePositions: Vec3[];
  frameOfReferenceUid: string;
  /** Problems found while assembling (gantry tilt, uneven spacing, missing slices), human-readable. */
  warnings: string[];
}

/** The source of one slice of a volume: an instance, and for multi-frame objects a 1-based frame. */
export interface SliceSource {
  sopInstanceUid: string;
  sopClassUid: string;
  seriesInstanceUid: string;
  /** 1-based frame number inside a multi-frame instance; undefined for single-frame instances. */
  frameNumber?: number;
}

export type VolumeKind = 'DWI' | 'ADC' | 'TRACEW' | 'CT' | 'FLAIR' | 'T1' | 'T1C' | 'T2';

/**
 * A scalar volume, slice-major then row-major: value(z, r, c) = data[(z * rows + r) * columns + c].
 * Values are in physical units after RescaleSlope/Intercept (CT: HU; ADC: 10^-6 mm²/s; DWI: scanner units).
 */
export interface Volume {
  kind: VolumeKind;
  geometry: VolumeGeometry;
  data: Float32Array;
  /** sliceSources[z] is the instance (and frame) that slice z came from. */
  sliceSources: SliceSource[];
  /** For DWI: the b-value in s/mm². */
  bValue?: number;
  /** True when the node computed this volume (e.g. ADC from DWI, trace from directions). */
  computed?: boolean;
  seriesInstanceUid: string;
  seriesDescription?: string;
}

/** What a study offers the models, with the reasons behind each decision. */
export interface SeriesDecision {
  seriesInstanceUid: string;
  seriesDescription?: string;
  modality?: string;
  /** e.g. 'DWI', 'ADC', 'TRACEW', 'CT', 'FLAIR', 'T1', 'T1C', 'T2', 'IGNORED'. */
  classification: string;
  bValues?: number[];
  usable: boolean;
  /** Why: the tags that decided, or why it was rejected. */
  reason: string;
  instanceCount: number;
}

export interface AvailabilityRecord {
  studyInstanceUid: string;
  /** Which inputs are usable for models. */
  available: {
    DWI: boolean;
    ADC: boolean;
    CT: boolean;
    FLAIR: boolean;
    T1: boolean;
    T1C: boolean;
    T2: boolean;
    /** Liver task (src/study/abdomen.ts): a usable abdominal CT / abdominal MR series (optional: older records lack them). */
    CT_ABDOMEN?: boolean;
    MR_ABDOMEN?: boolean;
  };
  series: SeriesDecision[];
  /** The liver task's view of the study: every CT/MR series judged as an abdominal liver input, and the pick. */
  abdomen?: AbdomenAvailability;
  /** Why nothing (or something) could not be used, in words for the admin page. */
  notes: string[];
}

/** CT contrast phase / MR sequence of an abdominal series, as the liver task ranks them. */
export type AbdomenKind = 'CT_PORTAL_VENOUS' | 'CT_ARTERIAL' | 'CT_NON_CONTRAST' | 'CT_DELAYED' | 'MR_T1C' | 'MR_T2' | 'MR_T1';

/** One series judged as an abdominal liver input (src/study/abdomen.ts), with the reason in words. */
export interface AbdomenSeriesDecision {
  seriesInstanceUid: string;
  seriesDescription?: string;
  modality?: string;
  kind?: AbdomenKind;
  usable: boolean;
  reason: string;
  /** Slice thickness (mm) and slice count, for the pick. */
  sliceThicknessMm?: number;
  slices?: number;
}

export interface AbdomenAvailability {
  series: AbdomenSeriesDecision[];
  /** The series the liver task runs on, and why that one. */
  pick?: { seriesInstanceUid: string; modality: 'CT' | 'MR'; kind: AbdomenKind; reason: string };
  /** Study-level evidence (body part / descriptions) in words. */
  region: string;
}
