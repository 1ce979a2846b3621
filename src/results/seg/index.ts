/**
 * Binary DICOM Segmentation (SOP Class 1.2.840.10008.5.1.4.1.1.66.4), built attribute by attribute
 * (dcmjs's own Segmentation derivation re-sorts frames and injects defaults: not used).
 *
 * Frames: one per source slice per segment, empty ones included, ordered segment-major then by
 * position along the normal. Each frame references its source by the Volume's sliceSources entry
 * (SOPInstanceUID, + frame number for multi-frame sources), never by list order of the headers, and
 * the writer refuses a slice whose source header lies elsewhere than the volume's slice position.
 */
import { newUid, str, num, writePart10, type NaturalDataset } from '../../dicom/dcmjs';
import type { Volume } from '../../types';
import { CodedConcept, Codes, codeSeq, rgbToDicomLab, type Rgb } from '../codes';
import {
  checkSliceMapping,
  copyPatientStudy,
  ds,
  formatMl,
  headerFor,
  lo,
  referencedSeriesSequence,
  sourceImageItem,
  validateDeployment,
  type DeploymentOptions,
} from '../common';
import {
  contributingEquipmentItem,
  dicomDateTime,
  isValidUid,
  provenanceSummary,
  purposeFor,
  validateProvenance,
  type Provenance,
} from '../provenance';

export const SEG_SOP_CLASS_UID = '1.2.840.10008.5.1.4.1.1.66.4';

/** One segment (label value k in the mask → SegmentNumber k). */
export interface SegmentDescription {
  /** SegmentLabel (LO), e.g. "Ischaemic lesion". */
  label: string;
  /** SegmentDescription (LO), optional. */
  description?: string;
  category: CodedConcept;
  type: CodedConcept;
  anatomicRegion?: CodedConcept;
  /** Display colour (sRGB), written as RecommendedDisplayCIELabValue. */
  color: Rgb;
  algorithmName: string;
  algorithmVersion: string;
  /** AlgorithmParameters (LT), optional: e.g. "threshold=0.5". */
  algorithmParameters?: string;
}

/**
 * CT-only studies: the lesion is segmented on a SYNTHETIC DWI computed from the CT, which does not
 * show every infarct. These say so where a viewer shows them (each fits LO's 64 characters), so an
 * empty segmentation is not read as "no infarct".
 */
export const SYNTHETIC_SEG_CONTENT_DESCRIPTION = 'AI lesion SEG on SYNTHETIC image; empty does not exclude infarct';
export const SYNTHETIC_INFARCT_SEGMENT_DESCRIPTION = 'SYNTHETIC input: an empty segment does not exclude infarct';

/** The stroke lesion segment as DESIGN.md specifies it. */
export function ischaemicLesionSegment(algorithmName: string, algorithmVersion: string): SegmentDescription {
  return {
    label: 'Ischaemic lesion',
    category: Codes.MorphologicallyAbnormalStructure,
    type: Codes.Infarct,
    anatomicRegion: Codes.Brain,
    color: { r: 255, g: 64, b: 32 },
    algorithmName,
    algorithmVersion,
  };
}

export interface SegOptions {
  seriesNumber?: number;
  /**
   * SeriesDescription; "{volume}" is replaced by the total segmented volume ("12.3 mL").
   * Default "AI lesion SEG {volume}", prefixed "SYNTHETIC-INPUT " when provenance.synthetic.
   */
  seriesDescription?: string;
  /** ContentLabel (CS: upper case, digits, space, underscore; <= 16). Default "AI_LESION". */
  contentLabel?: string;
  contentDescription?: string;
  instanceNumber?: number;
  /** Give these to make a retry produce the same object (idempotent re-send). */
  seriesInstanceUid?: string;
  sopInstanceUid?: string;
  /** Creation time (default now). */
  now?: Date;
  /** SliceThickness for PixelMeasuresSequence; default: the first source's, else the slice spacing. */
  sliceThickness?: number;
  /** Max distance between a source slice's own IPP and the volume's position (mm); default 0.01. */
  geometryToleranceMm?: number;
}

export interface SegInput {
  source: Volume;
  /** Label map on the source grid (slice-major, as Volume.data): 0 = background, k = segment k. */
  mask: Uint8Array;
  /** Source headers by SOPInstanceUID (every instance in source.sliceSources). */
  sourceHeaders: Map<string, NaturalDataset>;
  segments: SegmentDescription[];
  provenance: Provenance;
  deployment: DeploymentOptions;
  options?: SegOptions;
}

export interface SegResult {
  part10: Buffer;
  sopInstanceUid: string;
  seriesInstanceUid: string;
  /** Volume of each segment (mL), index k-1 for segment k. */
  segmentVolumesMl: number[];
  numberOfFrames: number;
}

const CS_RE = /^[A-Z0-9_ ]{1,16}$/;

/**
 * Pack binary frames into 1-bit PixelData (PS3.5 8.1.1: bits in order, least significant bit first,
 * frames concatenated without padding; the whole value padded to an even length).
 */
export function packBits(frames: Uint8Array[], pixelsPerFrame: number): Uint8Array {
  const totalBits = frames.length * pixelsPerFrame;
  let nBytes = Math.ceil(totalBits / 8);
  if (nBytes % 2) nBytes++;
  const out = new Uint8Array(nBytes);
  let bit = 0;
  for (const f of frames) {
    if (f.length !== pixelsPerFrame) throw new Error('frame size mismatch');
    for (let i = 0; i < pixelsPerFrame; i++, bit++) {
      if (f[i]) out[bit >> 3] |= 1 << (bit & 7);
    }
  }
  return out;
}

/** Inverse of packBits (for readers and tests). */
export function unpackBits(data: Uint8Array, nFrames: number, pixelsPerFrame: number): Uint8Array[] {
  const frames: Uint8Array[] = [];
  let bit = 0;
  for (let f = 0; f < nFrames; f++) {
    const fr = new Uint8Array(pixelsPerFrame);
    for (let i = 0; i < pixelsPerFrame; i++, bit++) fr[i] = (data[bit >> 3] >> (bit & 7)) & 1;
    frames.push(fr);
  }
  return frames;
}

function validateSegment(s: SegmentDescription, i: number): void {
  if (!s.label || s.label.length > 64) throw new Error(`segment ${i + 1}: SegmentLabel empty or longer than 64`);
  for (const c of [s.category, s.type, s.anatomicRegion]) {
    if (c !== undefined && !(c instanceof CodedConcept)) throw new Error(`segment ${i + 1}: codes must be CodedConcept instances`);
  }
  if (!s.algorithmName || !s.algorithmVersion) throw new Error(`segment ${i + 1}: algorithm name/version required for AUTOMATIC segments`);
}

export function buildSegDataset(input: SegInput): { dataset: NaturalDataset; segmentVolumesMl: number[] } {
  const { source, mask, sourceHeaders, segments, provenance, deployment } = input;
  const o = input.options ?? {};
  validateProvenance(provenance);
  validateDeployment(deployment);
  const g = source.geometry;
  const { rows, columns, slices } = g;
  const ppf = rows * columns;
  if (mask.length !== ppf * slices) throw new Error(`mask has ${mask.length} voxels, the source grid ${ppf * slices}`);
  if (source.sliceSources.length !== slices) throw new Error(`sliceSources has ${source.sliceSources.length} entries for ${slices} slices`);
  if (g.slicePositions.length !== slices) throw new Error(`slicePositions has ${g.slicePositions.length} entries for ${slices} slices`);
  if (!isValidUid(g.frameOfReferenceUid)) throw new Error('source volume has no valid FrameOfReferenceUID');
  if (segments.length < 1 || segments.length > 255) throw new Error('1..255 segments required');
  segments.forEach(validateSegment);
  for (let i = 0; i < mask.length; i++) {
    if (mask[i] > segments.length) throw new Error(`mask value ${mask[i]} has no segment description`);
  }
  const seenSource = new Set<string>();
  for (const s of source.sliceSources) {
    const key = `${s.sopInstanceUid}#${s.frameNumber ?? 0}`;
    if (seenSource.has(key)) throw new Error(`two slices claim the same source ${key}`);
    seenSource.add(key);
  }
  checkSliceMapping(sourceHeaders, source.sliceSources, g.slicePositions, o.geometryToleranceMm ?? 0.01);

  const firstHeader = headerFor(sourceHeaders, source.sliceSources[0]);
  const contentLabel = o.contentLabel ?? 'AI_LESION';
  if (!CS_RE.test(contentLabel)) throw new Error(`ContentLabel "${contentLabel}" is not a valid CS (A-Z 0-9 _ space, <= 16)`);
  const now = o.now ?? new Date();
  const t = dicomDateTime(now);

  // Frames, segment-major, slices ascending along the normal.
  const voxelMl = (g.pixelSpacing[0] * g.pixelSpacing[1] * g.sliceSpacing) / 1000;
  const counts = new Array<number>(segments.length).fill(0);
  for (let i = 0; i < mask.length; i++) if (mask[i]) counts[mask[i] - 1]++;
  const segmentVolumesMl = counts.map((c) => c * voxelMl);
  const totalMl = segmentVolumesMl.reduce((a, b) => a + b, 0);

  const frames: Uint8Array[] = [];
  const perFrame: NaturalDataset[] = [];
  const summary = provenanceSummary(provenance);
  const derivationDescription = lo(
    provenance.synthetic
      ? `AI segmentation of a SYNTHETIC image (${provenance.modelName} ${provenance.modelVersion})`
      : `AI segmentation (${provenance.modelName} ${provenance.modelVersion})`,
  );
  segments.forEach((_, k) => {
    const segNo = k + 1;
    for (let z = 0; z < slices; z++) {
      const f = new Uint8Array(ppf);
      const off = z * ppf;
      for (let i = 0; i < ppf; i++) f[i] = mask[off + i] === segNo ? 1 : 0;
      frames.push(f);
      const src = source.sliceSources[z];
      const ipp = g.slicePositions[z];
      perFrame.push({
        DerivationImageSequence: [
          {
            DerivationDescription: derivationDescription,
            DerivationCodeSequence: codeSeq(Codes.Segmentation),
            SourceImageSequence: [sourceImageItem(src, 'YES')],
          },
        ],
        FrameContentSequence: [{ DimensionIndexValues: [segNo, z + 1] }],
        PlanePositionSequence: [{ ImagePositionPatient: ipp.map(ds) }],
        SegmentIdentificationSequence: [{ ReferencedSegmentNumber: segNo }],
      });
    }
  });

  const thickness = o.sliceThickness ?? num(firstHeader, 'SliceThickness') ?? sharedSliceThickness(firstHeader) ?? g.sliceSpacing;
  const dimOrgUid = newUid();
  const volText = formatMl(totalMl);
  const seriesDescription = lo(
    // CT only (lesion on a synthetic DWI): an empty or small result must not be read as "no infarct".
    (o.seriesDescription ?? (provenance.synthetic ? 'SYNTHETIC-INPUT AI lesion SEG {volume}; infarct not excluded' : 'AI lesion SEG {volume}')).replace(
      '{volume}',
      volText,
    ),
  );
  const comments = [
    provenance.synthetic ? 'Segmentation computed on a SYNTHETIC (AI-generated) image, not an acquired one.' : '',
    `Segmented volume ${segments.map((s, i) => `${s.label}: ${formatMl(segmentVolumesMl[i])}`).join(', ')}.`,
    summary,
    provenance.postprocessing ?? '',
    deployment.disclaimer ?? '',
  ]
    .filter(Boolean)
    .join(' ');

  const ds0: NaturalDataset = {
    ...copyPatientStudy(firstHeader),
    // SOP Common
    SOPClassUID: SEG_SOP_CLASS_UID,
    SOPInstanceUID: o.sopInstanceUid ?? newUid(),
    InstanceCreationDate: t.date,
    InstanceCreationTime: t.time,
    // General Series / Segmentation Series
    Modality: 'SEG',
    SeriesInstanceUID: o.seriesInstanceUid ?? newUid(),
    SeriesNumber: o.seriesNumber ?? 901,
    SeriesDate: t.date,
    SeriesTime: t.time,
    SeriesDescription: seriesDescription,
    // Frame of Reference
    FrameOfReferenceUID: g.frameOfReferenceUid,
    PositionReferenceIndicator: str(firstHeader, 'PositionReferenceIndicator') ?? '',
    // General + Enhanced General Equipment
    Manufacturer: lo(deployment.manufacturer),
    ManufacturerModelName: lo(deployment.manufacturerModelName),
    DeviceSerialNumber: lo(deployment.deviceSerialNumber ?? '1'),
    SoftwareVersions: lo(deployment.softwareVersions),
    // General Image / Segmentation Image
    ImageType: ['DERIVED', 'PRIMARY'],
    InstanceNumber: o.instanceNumber ?? 1,
    ContentLabel: contentLabel,
    ContentDescription: lo(o.contentDescription ?? (provenance.synthetic ? SYNTHETIC_SEG_CONTENT_DESCRIPTION : 'AI lesion segmentation')),
    ContentCreatorName: deployment.contentCreatorName ?? '',
    ContentDate: t.date,
    ContentTime: t.time,
    ImageComments: comments,
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: rows,
    Columns: columns,
    BitsAllocated: 1,
    BitsStored: 1,
    HighBit: 0,
    PixelRepresentation: 0,
    LossyImageCompression: '00',
    SegmentationType: 'BINARY',
    SegmentsOverlap: 'NO',
    SegmentSequence: segments.map((s, k) => {
      const item: NaturalDataset = {
        SegmentNumber: k + 1,
        SegmentLabel: lo(s.label),
        SegmentAlgorithmType: 'AUTOMATIC',
        SegmentAlgorithmName: lo(s.algorithmName),
        SegmentationAlgorithmIdentificationSequence: [
          {
            AlgorithmFamilyCodeSequence: codeSeq(Codes.ArtificialIntelligence),
            AlgorithmName: lo(s.algorithmName),
            AlgorithmVersion: lo(s.algorithmVersion),
            ...(s.algorithmParameters ? { AlgorithmParameters: s.algorithmParameters } : {}),
          },
        ],
        SegmentedPropertyCategoryCodeSequence: codeSeq(s.category),
        SegmentedPropertyTypeCodeSequence: codeSeq(s.type),
        RecommendedDisplayCIELabValue: rgbToDicomLab(s.color),
      };
      if (s.description) item.SegmentDescription = lo(s.description);
      else if (provenance.synthetic && s.type.value === Codes.Infarct.value && s.type.scheme === Codes.Infarct.scheme) item.SegmentDescription = SYNTHETIC_INFARCT_SEGMENT_DESCRIPTION;
      if (s.anatomicRegion) item.AnatomicRegionSequence = codeSeq(s.anatomicRegion);
      return item;
    }),
    // Multi-frame Functional Groups
    NumberOfFrames: frames.length,
    SharedFunctionalGroupsSequence: [
      {
        PlaneOrientationSequence: [{ ImageOrientationPatient: [...g.rowCosines, ...g.columnCosines].map(ds) }],
        PixelMeasuresSequence: [
          {
            PixelSpacing: g.pixelSpacing.map(ds),
            SliceThickness: ds(thickness),
            SpacingBetweenSlices: ds(g.sliceSpacing),
          },
        ],
      },
    ],
    PerFrameFunctionalGroupsSequence: perFrame,
    // Multi-frame Dimension
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: dimOrgUid }],
    DimensionOrganizationType: '3D',
    DimensionIndexSequence: [
      {
        DimensionOrganizationUID: dimOrgUid,
        DimensionIndexPointer: 0x0062000b, // ReferencedSegmentNumber
        FunctionalGroupPointer: 0x0062000a, // SegmentIdentificationSequence
        DimensionDescriptionLabel: 'ReferencedSegmentNumber',
      },
      {
        DimensionOrganizationUID: dimOrgUid,
        DimensionIndexPointer: 0x00200032, // ImagePositionPatient
        FunctionalGroupPointer: 0x00209113, // PlanePositionSequence
        DimensionDescriptionLabel: 'ImagePositionPatient',
      },
    ],
    // Common Instance Reference
    ReferencedSeriesSequence: referencedSeriesSequence(source.sliceSources),
    ContributingEquipmentSequence: [
      contributingEquipmentItem(provenance, purposeFor(false), {
        manufacturer: deployment.manufacturer,
        institutionName: deployment.institutionName,
        stationName: deployment.stationName,
      }, now),
    ],
    PixelData: [packBits(frames, ppf).buffer],
    _vrMap: { PixelData: 'OB' },
  };
  if (deployment.institutionName) ds0.InstitutionName = lo(deployment.institutionName);
  if (deployment.stationName) ds0.StationName = deployment.stationName.slice(0, 16);
  return { dataset: ds0, segmentVolumesMl };
}

function sharedSliceThickness(h: NaturalDataset): number | undefined {
  const shared = (h.SharedFunctionalGroupsSequence as NaturalDataset[] | undefined)?.[0];
  const pm = (shared?.PixelMeasuresSequence as NaturalDataset[] | undefined)?.[0];
  return pm ? num(pm, 'SliceThickness') : undefined;
}

/** Build and serialise the SEG (Explicit VR Little Endian): the Part 10 bytes. */
export function writeSeg(input: SegInput): Buffer {
  return buildSeg(input).part10;
}

/** Same as writeSeg, with the UIDs and segment volumes the caller needs for the SR and the logs. */
export function buildSeg(input: SegInput): SegResult {
  const { dataset, segmentVolumesMl } = buildSegDataset(input);
  return {
    part10: writePart10(dataset),
    sopInstanceUid: String(dataset.SOPInstanceUID),
    seriesInstanceUid: String(dataset.SeriesInstanceUID),
    segmentVolumesMl,
    numberOfFrames: Number(dataset.NumberOfFrames),
  };
}
