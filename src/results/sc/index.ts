/**
 * Secondary Capture series: the synthetic DWI (16-bit grayscale) and the optional "overlay" series
 * (RGB, lesion outline burned in) for viewers without SEG support.
 *
 * One SC Image Storage instance (1.2.840.10008.5.1.4.1.1.7) per slice, each carrying the source
 * slice's ImagePositionPatient / ImageOrientationPatient / PixelSpacing / SliceThickness and the
 * source FrameOfReferenceUID (Standard Extended SOP Class attributes): viewers and PACS that sort and
 * place single-frame instances by IPP (OHIF, Orthanc's viewers, most PACS) stack the slices in the
 * right order and orientation. Rationale in README.md.
 */
import { newUid, writePart10, str, type NaturalDataset } from '../../dicom/dcmjs';
import type { SliceSource, Vec3, Volume } from '../../types';
import { copyPatientStudy, ds, formatMl, headerFor, lo, sourceImageItem, validateDeployment, type DeploymentOptions } from '../common';
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
import { burnBannerGray, burnTextRgb, placeBanner, type BannerPlacement } from './font';

export const SC_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.7';
export const SYNTHETIC_BANNER = 'AI-GENERATED - NOT ACQUIRED';

/** Image Pixel attributes of the 16-bit unsigned grayscale SC series (synthetic DWI here, synthetic MR / fused). */
export const GRAY16_PIXELS: NaturalDataset = {
  SamplesPerPixel: 1,
  PhotometricInterpretation: 'MONOCHROME2',
  BitsAllocated: 16,
  BitsStored: 16,
  HighBit: 15,
  PixelRepresentation: 0,
};

export interface ScInstance {
  sopInstanceUid: string;
  /** Slice index (ascending along the normal) of the volume this instance shows. */
  sliceIndex: number;
  part10: Buffer;
}

export interface ScSeriesResult {
  seriesInstanceUid: string;
  sopClassUid: string;
  instances: ScInstance[];
  /** Headers (no pixel data) by SOPInstanceUID: a SEG of the synthetic images can reference them. */
  headers: Map<string, NaturalDataset>;
  /** The written series as a Volume (same geometry, sliceSources = these instances). */
  volume: Volume;
  /** Where the banner was burned (same on every slice). */
  banner: BannerPlacement;
}

export interface ScOptions {
  seriesNumber?: number;
  seriesDescription?: string;
  seriesInstanceUid?: string;
  /**
   * General Series Modality. Default for the overlay SC: "OT". Default for the synthetic image: the
   * source series' Modality (e.g. "CT"), which is what PS3.3 C.7.3.1.1.1 asks for ("type of equipment
   * that originally acquired the data used to create the images"); "OT" made OHIF 3.13 disable its
   * segmentation panel for the series (it excludes SM/OT/DOC/ECG), so the SEG on the synthetic DWI
   * loaded without its segment being listed.
   */
  modality?: string;
  now?: Date;
}

export interface SyntheticScInput {
  /** The synthetic DWI on the source (CT) grid: geometry of the CT, sliceSources = the CT slices. */
  image: Volume;
  /** Source (CT) headers by SOPInstanceUID. */
  sourceHeaders: Map<string, NaturalDataset>;
  provenance: Provenance;
  deployment: DeploymentOptions;
  /** What the synthesis did, for DerivationDescription; default from the provenance. */
  derivationDescription?: string;
  options?: ScOptions;
}

export interface OverlayScInput {
  /** The image the lesion is shown on (acquired or synthetic DWI), with its sliceSources. */
  image: Volume;
  /** Lesion mask on the image grid (non-zero = lesion). */
  mask: Uint8Array;
  /** Lesion volume to print (mL); default computed from the mask. */
  lesionVolumeMl?: number;
  sourceHeaders: Map<string, NaturalDataset>;
  provenance: Provenance;
  deployment: DeploymentOptions;
  options?: ScOptions & { outlineRgb?: [number, number, number]; textRgb?: [number, number, number] };
}

/** Patient orientation letters of a direction cosine vector (PatientOrientation), largest component first. */
export function orientationLetters(v: Vec3): string {
  const axes: Array<[number, string, string]> = [
    [v[0], 'L', 'R'],
    [v[1], 'P', 'A'],
    [v[2], 'H', 'F'],
  ];
  return axes
    .filter(([c]) => Math.abs(c) > 1e-4)
    .sort((a, b) => Math.abs(b[0]) - Math.abs(a[0]))
    .map(([c, pos, neg]) => (c > 0 ? pos : neg))
    .join('');
}

/** Percentile of the non-zero finite values (sampled for speed). */
function percentiles(data: Float32Array, ps: number[]): number[] {
  const step = Math.max(1, Math.floor(data.length / 200000));
  const vals: number[] = [];
  for (let i = 0; i < data.length; i += step) if (Number.isFinite(data[i]) && data[i] > 0) vals.push(data[i]);
  if (vals.length === 0) return ps.map(() => 0);
  vals.sort((a, b) => a - b);
  return ps.map((p) => vals[Math.min(vals.length - 1, Math.floor((p / 100) * (vals.length - 1)))]);
}

interface SeriesCommon {
  dataset: NaturalDataset;
  sliceHeader: (z: number) => NaturalDataset;
}

function checkVolume(v: Volume): void {
  const g = v.geometry;
  if (v.data.length !== g.rows * g.columns * g.slices) throw new Error(`image has ${v.data.length} voxels, the grid ${g.rows * g.columns * g.slices}`);
  if (v.sliceSources.length !== g.slices || g.slicePositions.length !== g.slices) throw new Error('sliceSources/slicePositions do not match the slice count');
  if (!isValidUid(g.frameOfReferenceUid)) throw new Error('image volume has no valid FrameOfReferenceUID');
}

/**
 * What an SC series says about itself; the rest of its series-level header comes from the first source slice
 * (patient/study, body part, slice thickness, position reference), the image geometry, the model's provenance
 * and the deployment. The values are written as given (the caller truncates / cleans them).
 */
export interface ScSeriesFields {
  modality: string;
  seriesInstanceUid: string;
  seriesNumber: number;
  seriesDescription: string;
  conversionType: 'SYN' | 'WSD';
  syntheticData: boolean;
  /** ContributingEquipmentSequence purpose: Synthesizing Equipment (true) or the processing purpose (false). */
  synthesized: boolean;
  /** BodyPartExamined when the source slice has none. */
  bodyPartDefault: string;
  derivationDescription: string;
  imageComments: string;
  now: Date;
}

/**
 * The series-level attributes of an SC series on a source grid (SC Equipment, SC Image, the Standard Extended
 * plane attributes, ContributingEquipmentSequence), shared by the synthetic DWI / overlay series here and the
 * synthetic MR / fused series (../synthetic-mr.ts). No pixel module: the callers' pixel formats differ.
 */
export function scSeriesDataset(
  image: Volume,
  first: NaturalDataset,
  provenance: Provenance,
  deployment: DeploymentOptions,
  f: ScSeriesFields,
): NaturalDataset {
  const g = image.geometry;
  const t = dicomDateTime(f.now);
  const thickness = Number(str(first, 'SliceThickness') ?? g.sliceSpacing) || g.sliceSpacing;
  const dataset: NaturalDataset = {
    ...copyPatientStudy(first),
    SOPClassUID: SC_IMAGE_STORAGE,
    InstanceCreationDate: t.date,
    InstanceCreationTime: t.time,
    Modality: f.modality,
    SeriesInstanceUID: f.seriesInstanceUid,
    SeriesNumber: f.seriesNumber,
    SeriesDate: t.date,
    SeriesTime: t.time,
    SeriesDescription: f.seriesDescription,
    Manufacturer: lo(deployment.manufacturer),
    ManufacturerModelName: lo(provenance.modelName),
    SoftwareVersions: [lo(provenance.modelVersion), lo(`${provenance.nodeName} ${provenance.nodeVersion}`)],
    DeviceSerialNumber: lo(deployment.deviceSerialNumber ?? '1'),
    DeviceUID: deviceUidForModel(provenance),
    ConversionType: f.conversionType,
    SecondaryCaptureDeviceManufacturer: lo(deployment.manufacturer),
    SecondaryCaptureDeviceManufacturerModelName: lo(deployment.manufacturerModelName),
    SecondaryCaptureDeviceSoftwareVersions: lo(deployment.softwareVersions),
    DateOfSecondaryCapture: t.date,
    TimeOfSecondaryCapture: t.time,
    ContentDate: t.date,
    ContentTime: t.time,
    ImageType: ['DERIVED', 'SECONDARY'],
    BodyPartExamined: str(first, 'BodyPartExamined') ?? f.bodyPartDefault,
    SyntheticData: f.syntheticData ? 'YES' : 'NO',
    BurnedInAnnotation: 'YES',
    LossyImageCompression: '00',
    DerivationDescription: f.derivationDescription,
    ImageComments: f.imageComments,
    PatientOrientation: [orientationLetters(g.rowCosines), orientationLetters(g.columnCosines)],
    ImageOrientationPatient: [...g.rowCosines, ...g.columnCosines].map(ds),
    PixelSpacing: g.pixelSpacing.map(ds),
    SliceThickness: ds(thickness),
    SpacingBetweenSlices: ds(g.sliceSpacing),
    FrameOfReferenceUID: g.frameOfReferenceUid,
    PositionReferenceIndicator: str(first, 'PositionReferenceIndicator') ?? '',
    Rows: g.rows,
    Columns: g.columns,
    ContributingEquipmentSequence: [
      contributingEquipmentItem(provenance, purposeFor(f.synthesized), {
        manufacturer: deployment.manufacturer,
        institutionName: deployment.institutionName,
        stationName: deployment.stationName,
      }, f.now),
    ],
  };
  if (deployment.institutionName) dataset.InstitutionName = lo(deployment.institutionName);
  if (deployment.stationName) dataset.StationName = deployment.stationName.slice(0, 16);
  return dataset;
}

/** The per-instance attributes of slice z of an SC series on the image grid: a new SOPInstanceUID and its plane position. */
export function scSliceAttributes(image: Volume, z: number): NaturalDataset {
  const g = image.geometry;
  const p = g.slicePositions[z];
  return {
    SOPInstanceUID: newUid(),
    InstanceNumber: z + 1,
    ImagePositionPatient: p.map(ds),
    SliceLocation: ds(p[0] * g.normal[0] + p[1] * g.normal[1] + p[2] * g.normal[2]),
  };
}

/** Attributes shared by every instance of an SC series. */
function seriesCommon(
  image: Volume,
  headers: Map<string, NaturalDataset>,
  provenance: Provenance,
  deployment: DeploymentOptions,
  o: ScOptions,
  kind: { synthesized: boolean; conversionType: 'SYN' | 'WSD'; syntheticData: boolean; description: string; comments: string; derivation: string },
): SeriesCommon {
  validateProvenance(provenance);
  validateDeployment(deployment);
  checkVolume(image);
  const first = headerFor(headers, image.sliceSources[0]);
  const dataset = scSeriesDataset(image, first, provenance, deployment, {
    modality: o.modality ?? 'OT',
    seriesInstanceUid: o.seriesInstanceUid ?? newUid(),
    seriesNumber: o.seriesNumber ?? (kind.conversionType === 'SYN' ? 902 : 903),
    seriesDescription: lo(o.seriesDescription ?? kind.description),
    conversionType: kind.conversionType,
    syntheticData: kind.syntheticData,
    synthesized: kind.synthesized,
    bodyPartDefault: 'HEAD',
    derivationDescription: kind.derivation.slice(0, 1024),
    imageComments: kind.comments,
    now: o.now ?? new Date(),
  });
  const sliceHeader = (z: number): NaturalDataset => {
    const src: SliceSource = image.sliceSources[z];
    headerFor(headers, src); // every source must be known
    return { ...dataset, ...scSliceAttributes(image, z), SourceImageSequence: [sourceImageItem(src, 'YES')] };
  };
  return { dataset, sliceHeader };
}

function finish(image: Volume, seriesUid: string, instances: ScInstance[], headers: Map<string, NaturalDataset>, banner: BannerPlacement): ScSeriesResult {
  const volume: Volume = {
    ...image,
    sliceSources: instances.map((i) => ({ sopInstanceUid: i.sopInstanceUid, sopClassUid: SC_IMAGE_STORAGE, seriesInstanceUid: seriesUid })),
    seriesInstanceUid: seriesUid,
    computed: true,
  };
  return { seriesInstanceUid: seriesUid, sopClassUid: SC_IMAGE_STORAGE, instances, headers, volume, banner };
}

/**
 * Map float values to stored uint16: integers already in 0..65535 are kept; anything else is scaled
 * linearly so the maximum becomes 4095 (negative values clipped to 0). Returns the factor used.
 */
export function toStoredU16(data: Float32Array): { stored: Uint16Array; scale: number } {
  let max = 0;
  let integral = true;
  let min = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (!Number.isFinite(v)) continue;
    if (v > max) max = v;
    if (v < min) min = v;
    if (integral && v !== Math.round(v)) integral = false;
  }
  const scale = integral && min >= 0 && max <= 65535 ? 1 : max > 0 ? 4095 / max : 1;
  const stored = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    stored[i] = Number.isFinite(v) && v > 0 ? Math.min(65535, Math.round(v * scale)) : 0;
  }
  return { stored, scale };
}

/** The synthetic DWI as a 16-bit Secondary Capture series with the "AI-GENERATED" banner burned in. */
export function writeSyntheticSc(input: SyntheticScInput): ScSeriesResult {
  const { image, provenance } = input;
  if (!provenance.synthetic) throw new Error('writeSyntheticSc: provenance.synthetic must be true for a synthetic image');
  const g = image.geometry;
  const summary = provenanceSummary(provenance);
  const derivation =
    input.derivationDescription ??
    `SYNTHETIC diffusion-weighted image computed by ${provenance.modelName} ${provenance.modelVersion} from CT series ${provenance.sourceSeriesUids.join(', ')}; not acquired by an MR scanner.`;
  const comments = [`SYNTHETIC IMAGE (AI-generated DWI, not acquired).`, summary, input.deployment.disclaimer ?? ''].filter(Boolean).join(' ');
  const sourceModality = str(headerFor(input.sourceHeaders, image.sliceSources[0]), 'Modality');
  const options: ScOptions = { ...(input.options ?? {}), modality: input.options?.modality ?? sourceModality ?? 'OT' };
  const { sliceHeader } = seriesCommon(image, input.sourceHeaders, provenance, input.deployment, options, {
    synthesized: true,
    conversionType: 'SYN',
    syntheticData: true,
    description: `SYNTHETIC DWI (AI) ${provenance.modelName}`,
    comments,
    derivation,
  });
  const { stored } = toStoredU16(image.data);
  let maxStored = 1;
  for (let i = 0; i < stored.length; i++) if (stored[i] > maxStored) maxStored = stored[i];
  const [p1, p99] = percentiles(new Float32Array(stored), [1, 99.5]);
  const banner = placeBanner(SYNTHETIC_BANNER, g.rows, g.columns);
  const ppf = g.rows * g.columns;
  const instances: ScInstance[] = [];
  const headers = new Map<string, NaturalDataset>();
  let seriesUid = '';
  for (let z = 0; z < g.slices; z++) {
    const frame = stored.slice(z * ppf, (z + 1) * ppf);
    burnBannerGray(frame, g.rows, g.columns, banner, maxStored, 0);
    const h = sliceHeader(z);
    seriesUid = String(h.SeriesInstanceUID);
    const full: NaturalDataset = {
      ...h,
      ...GRAY16_PIXELS,
      WindowCenter: ds(Math.max(1, (p1 + Math.max(p99, p1 + 2)) / 2)),
      WindowWidth: ds(Math.max(2, Math.max(p99, p1 + 2) - p1)),
      PixelData: [frame.buffer],
      _vrMap: { PixelData: 'OW' },
    };
    instances.push({ sopInstanceUid: String(h.SOPInstanceUID), sliceIndex: z, part10: writePart10(full) });
    headers.set(String(h.SOPInstanceUID), h);
  }
  return finish(image, seriesUid, instances, headers, banner);
}

/**
 * The "overlay" series: each slice of the image windowed to 8-bit RGB, the lesion outline burned in,
 * with "AI-GENERATED" and the lesion volume in mL. For viewers that cannot display SEG.
 */
export function writeOverlaySc(input: OverlayScInput): ScSeriesResult {
  const { image, mask, provenance } = input;
  const g = image.geometry;
  const ppf = g.rows * g.columns;
  if (mask.length !== ppf * g.slices) throw new Error(`mask has ${mask.length} voxels, the grid ${ppf * g.slices}`);
  let n = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) n++;
  const ml = input.lesionVolumeMl ?? (n * g.pixelSpacing[0] * g.pixelSpacing[1] * g.sliceSpacing) / 1000;
  const volText = formatMl(ml);
  const o = input.options ?? {};
  const summary = provenanceSummary(provenance);
  const comments = [
    `AI-GENERATED overlay: lesion outline burned into ${provenance.synthetic ? 'a SYNTHETIC' : 'the acquired'} DWI. Lesion volume ${volText}.`,
    summary,
    input.deployment.disclaimer ?? '',
  ].filter(Boolean).join(' ');
  const { sliceHeader } = seriesCommon(image, input.sourceHeaders, provenance, input.deployment, o, {
    synthesized: false,
    conversionType: 'WSD',
    syntheticData: provenance.synthetic,
    description: `AI lesion overlay ${volText}${provenance.synthetic ? ' SYNTHETIC' : ''}`,
    comments,
    derivation: `Lesion outline of the AI segmentation (${provenance.modelName} ${provenance.modelVersion}) burned into the image for display; not for measurement.`,
  });
  const [lo1, hi] = percentiles(image.data, [1, 99.5]);
  const lo0 = Math.min(lo1, hi);
  const span = Math.max(1e-6, hi - lo0);
  const outline = o.outlineRgb ?? [255, 0, 0];
  const textRgb = o.textRgb ?? [255, 255, 0];
  const bannerText = `AI-GENERATED${provenance.synthetic ? ' SYNTHETIC' : ''} - LESION ${volText}`;
  const banner = placeBanner(bannerText, g.rows, g.columns, 2);
  const instances: ScInstance[] = [];
  const headers = new Map<string, NaturalDataset>();
  let seriesUid = '';
  for (let z = 0; z < g.slices; z++) {
    const rgb = new Uint8Array(ppf * 3);
    const off = z * ppf;
    for (let i = 0; i < ppf; i++) {
      const v = image.data[off + i];
      const gray = Number.isFinite(v) ? Math.max(0, Math.min(255, Math.round(((v - lo0) / span) * 255))) : 0;
      rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = gray;
    }
    for (let r = 0; r < g.rows; r++) {
      for (let c = 0; c < g.columns; c++) {
        const i = r * g.columns + c;
        if (!mask[off + i]) continue;
        const edge =
          r === 0 || c === 0 || r === g.rows - 1 || c === g.columns - 1 ||
          !mask[off + i - 1] || !mask[off + i + 1] || !mask[off + i - g.columns] || !mask[off + i + g.columns];
        if (edge) rgb.set(outline, i * 3);
      }
    }
    burnTextRgb(rgb, g.rows, g.columns, banner, textRgb);
    const h = sliceHeader(z);
    seriesUid = String(h.SeriesInstanceUID);
    const full: NaturalDataset = {
      ...h,
      SamplesPerPixel: 3,
      PhotometricInterpretation: 'RGB',
      PlanarConfiguration: 0,
      BitsAllocated: 8,
      BitsStored: 8,
      HighBit: 7,
      PixelRepresentation: 0,
      PixelData: [rgb.buffer],
      _vrMap: { PixelData: 'OB' },
    };
    instances.push({ sopInstanceUid: String(h.SOPInstanceUID), sliceIndex: z, part10: writePart10(full) });
    headers.set(String(h.SOPInstanceUID), h);
  }
  return finish(image, seriesUid, instances, headers, banner);
}
