/**
 * Synthetic MR sequences (brats-m2dn) and the fused image (brats-nslf) of the brain-tumour task, written as
 * labelled image series in the study (issue 15; DESIGN.md "DICOM conventions for outputs": the synthetic DWI
 * rules apply).
 *
 * SOP class: Secondary Capture Image Storage (1.2.840.10008.5.1.4.1.1.7), one 16-bit MONOCHROME2 instance per
 * slice of the reference (acquired) series the image lies on, with that slice's ImagePositionPatient,
 * ImageOrientationPatient, PixelSpacing and the study's FrameOfReferenceUID (the Standard Extended SOP Class
 * attributes the synthetic DWI uses too), so a viewer stacks it in slice order and scrolls it with the acquired
 * series. Why not MR Image Storage or Enhanced MR: both require the acquisition description (ScanningSequence,
 * SequenceVariant, EchoTime, RepetitionTime, ...; Enhanced MR the MR Pulse Sequence and per-frame MR timing
 * macros), which a synthesised image does not have: any value would be invented or copied from another sequence,
 * and a PACS hanging protocol would then treat the image as an acquired T1c / FLAIR. SC has ConversionType SYN
 * ("synthetic image") for exactly this, and the same writer family already shows in OHIF (test/ohif).
 *
 * Every instance: SyntheticData YES, ImageType DERIVED\SECONDARY, ConversionType SYN, BurnedInAnnotation YES
 * (the "AI-GENERATED - NOT ACQUIRED" banner is burned into the pixels), ContributingEquipmentSequence with purpose
 * (109100, DCM, "Synthesizing Equipment") naming the model (ManufacturerModelName, SoftwareVersions, DeviceUID
 * from its sha256), DerivationDescription, SeriesDescription and ImageComments saying "AI-generated, not
 * acquired" and which sequence (or which sequences were fused, and how), SourceImageSequence → the acquired
 * slices at this position (the reference slice, and the nearest slice of every other acquired series parallel to
 * it), ReferencedSeriesSequence → the same instances grouped by series, and the provenance summary.
 *
 * Intensities: the models work in `zscore-brain` units (clip [-5, 5], 0 outside the brain). Stored value =
 * round(400 (z + 5)) + 1 inside the brain (1..4001), 0 outside, RescaleSlope / RescaleIntercept are not written
 * (SC without the Modality LUT keeps viewers on the stored values); WindowCenter / WindowWidth from the 1st and
 * 99.5th percentile of the brain so it displays like an MR image. The numbers are not the scanner's: a z-score
 * image has no absolute MR intensity (README.md).
 */
import { newUid, str, writePart10, type NaturalDataset } from '../dicom/dcmjs';
import type { SliceSource, Vec3, Volume } from '../types';
import { ds, headerFor, referencedSeriesSequence, sourceImageItem, validateDeployment, type DeploymentOptions } from './common';
import { isValidUid, provenanceSummary, truncate, validateProvenance, type Provenance } from './provenance';
import { GRAY16_PIXELS, orientationLetters, SC_IMAGE_STORAGE, scSeriesDataset, scSliceAttributes, SYNTHETIC_BANNER } from './sc';
import { burnBannerGray, placeBanner, type BannerPlacement } from './sc/font';
import type { TumourSequence } from './tumour';

/** Display names of the sequences in descriptions ("T1C" → "T1C", kept upper case as DICOM descriptions are). */
const SEQ_NAME: Record<TumourSequence, string> = { FLAIR: 'FLAIR', T1: 'T1', T1C: 'T1C', T2: 'T2' };

/** An acquired series the image was computed from: its own geometry and slices. */
export interface AcquiredSource {
  sequence: TumourSequence;
  volume: Volume;
}

interface CommonInput {
  /**
   * The image in zscore-brain units on the reference grid: geometry = the reference series' geometry, sliceSources
   * = the reference series' slices (one output instance per slice, in this order).
   */
  image: Volume;
  /** Brain mask on the same grid (non-zero = brain); voxels outside are stored as 0. Default: image != 0. */
  brainMask?: Uint8Array;
  /** The acquired series the image came from (the reference first or anywhere; at least one). */
  sources: AcquiredSource[];
  /** Headers of the source instances by SOPInstanceUID (every reference slice at least). */
  sourceHeaders: Map<string, NaturalDataset>;
  provenance: Provenance;
  deployment: DeploymentOptions;
  options?: { seriesNumber?: number; seriesInstanceUid?: string; now?: Date };
}

export interface SyntheticSequenceInput extends CommonInput {
  /** The sequence the image stands in for. */
  sequence: TumourSequence;
  /** Sampler in words for DerivationDescription, e.g. "DDIM 10 steps, eta 0, seed 1". */
  method?: string;
  /** What the model's own test split measured for this sequence (ImageComments), e.g. the lesion lost on it. */
  qualityNote?: string;
}

export interface FusedInput extends CommonInput {
  /** The acquired sequences fused (the fused image combines these only). */
  fusedFrom: TumourSequence[];
  /** The fusion method in words for the description, e.g. "weighted avg". */
  method: string;
}

export interface SyntheticMrInstance {
  sopInstanceUid: string;
  sliceIndex: number;
  part10: Buffer;
}

export interface SyntheticMrSeries {
  seriesInstanceUid: string;
  sopClassUid: string;
  seriesDescription: string;
  instances: SyntheticMrInstance[];
  /** Headers (no pixel data) by SOPInstanceUID. */
  headers: Map<string, NaturalDataset>;
  banner: BannerPlacement;
  /** Stored = round(scale * (z - offset)) + 1 inside the brain: scale 400, offset -5. */
  mapping: { scale: number; offset: number };
  window: { center: number; width: number };
}

/** z-score → stored value: 0 is reserved for outside the brain. */
export const Z_SCALE = 400;
export const Z_OFFSET = -5;
export function storedFromZ(z: number): number {
  const c = Math.max(-5, Math.min(5, Number.isFinite(z) ? z : 0));
  return Math.round(Z_SCALE * (c - Z_OFFSET)) + 1;
}
/** The z-score a stored value stands for (inverse of storedFromZ within 1/400). */
export function zFromStored(v: number): number {
  return (v - 1) / Z_SCALE + Z_OFFSET;
}

/** "SYNTHETIC T1C (AI-generated, not acquired) brats-m2dn" (LO: 64 characters). */
export function syntheticDescription(sequence: TumourSequence, modelName: string): string {
  return truncate(`SYNTHETIC ${SEQ_NAME[sequence]} (AI-generated, not acquired) ${modelName}`, 64);
}

/** "FUSED FLAIR+T2 weighted avg brats-nslf (AI, not acquired)" within 64 characters, the model name always kept. */
export function fusedDescription(fusedFrom: TumourSequence[], method: string, modelName: string): string {
  const seqs = fusedFrom.map((q) => SEQ_NAME[q]).join('+');
  for (const tail of [' (AI, not acquired)', ' (AI)', '']) {
    const s = `FUSED ${seqs} ${method} ${modelName}${tail}`;
    if (s.length <= 64) return s;
  }
  return truncate(`FUSED ${seqs} ${modelName}`, 64);
}

const dot = (a: Vec3, b: Vec3): number => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

/**
 * The acquired slices at reference slice z: the reference's own, and for every other source series parallel to
 * it (|normal · normal| > 0.99) the nearest slice when it lies within one of its slice spacings.
 */
function sourcesAt(ref: Volume, z: number, sources: AcquiredSource[]): SliceSource[] {
  const out: SliceSource[] = [ref.sliceSources[z]];
  const p = ref.geometry.slicePositions[z];
  for (const s of sources) {
    const v = s.volume;
    if (v.seriesInstanceUid === ref.sliceSources[z].seriesInstanceUid) continue;
    const g = v.geometry;
    if (Math.abs(dot(g.normal, ref.geometry.normal)) < 0.99) continue;
    const d = dot(p, g.normal);
    let best = -1;
    let bestD = Infinity;
    g.slicePositions.forEach((q, k) => {
      const e = Math.abs(dot(q, g.normal) - d);
      if (e < bestD) {
        bestD = e;
        best = k;
      }
    });
    if (best >= 0 && bestD <= Math.max(g.sliceSpacing, 1e-3) && v.sliceSources[best]) out.push(v.sliceSources[best]);
  }
  return out;
}

function percentile(sorted: Uint16Array | number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * (sorted.length - 1)))];
}

function writeSeries(
  input: CommonInput,
  text: { description: string; comments: string; derivation: string },
): SyntheticMrSeries {
  const { image, provenance, deployment } = input;
  validateProvenance(provenance);
  validateDeployment(deployment);
  if (!provenance.synthetic) throw new Error('synthetic MR / fused series: provenance.synthetic must be true (the image is AI-generated)');
  const g = image.geometry;
  const ppf = g.rows * g.columns;
  if (image.data.length !== ppf * g.slices) throw new Error(`image has ${image.data.length} voxels, the grid ${ppf * g.slices}`);
  if (image.sliceSources.length !== g.slices || g.slicePositions.length !== g.slices) throw new Error('sliceSources/slicePositions do not match the slice count');
  if (!isValidUid(g.frameOfReferenceUid)) throw new Error('image volume has no valid FrameOfReferenceUID');
  if (input.brainMask && input.brainMask.length !== image.data.length) throw new Error('brainMask does not match the image grid');
  if (!input.sources.length) throw new Error('no acquired source series');

  // stored values and window
  const stored = new Uint16Array(image.data.length);
  const inBrain: number[] = [];
  for (let i = 0; i < stored.length; i++) {
    const inside = input.brainMask ? input.brainMask[i] !== 0 : image.data[i] !== 0;
    if (!inside) continue;
    stored[i] = storedFromZ(image.data[i]);
    if (i % 7 === 0) inBrain.push(stored[i]);
  }
  inBrain.sort((a, b) => a - b);
  const lo1 = inBrain.length ? percentile(inBrain, 1) : storedFromZ(-2);
  const hi = inBrain.length ? percentile(inBrain, 99.5) : storedFromZ(3);
  const width = Math.max(2, hi - lo1);
  const center = lo1 + width / 2;
  const bannerFg = Math.max(storedFromZ(5), hi);

  const first = headerFor(input.sourceHeaders, image.sliceSources[0]);
  const o = input.options ?? {};
  const seriesUid = o.seriesInstanceUid ?? newUid();
  const common: NaturalDataset = {
    ...scSeriesDataset(image, first, provenance, deployment, {
      // the source's modality (MR): PS3.3 C.7.3.1.1.1 asks for the equipment that acquired the data used
      modality: str(first, 'Modality') ?? 'MR',
      seriesInstanceUid: seriesUid,
      seriesNumber: o.seriesNumber ?? 913,
      seriesDescription: text.description,
      conversionType: 'SYN',
      syntheticData: true,
      synthesized: true,
      bodyPartDefault: 'BRAIN',
      derivationDescription: truncate(text.derivation, 1024),
      imageComments: truncate(text.comments, 10240),
      now: o.now ?? new Date(),
    }),
    ...GRAY16_PIXELS,
    WindowCenter: ds(Math.round(center)),
    WindowWidth: ds(Math.round(width)),
  };

  const banner = placeBanner(SYNTHETIC_BANNER, g.rows, g.columns);
  const instances: SyntheticMrInstance[] = [];
  const headers = new Map<string, NaturalDataset>();
  for (let z = 0; z < g.slices; z++) {
    headerFor(input.sourceHeaders, image.sliceSources[z]); // every reference slice must be known
    const refs = sourcesAt(image, z, input.sources);
    const h: NaturalDataset = {
      ...common,
      ...scSliceAttributes(image, z),
      SourceImageSequence: refs.map((r) => sourceImageItem(r, r.seriesInstanceUid === image.sliceSources[z].seriesInstanceUid ? 'YES' : 'NO')),
      ReferencedSeriesSequence: referencedSeriesSequence(refs),
    };
    const frame = stored.slice(z * ppf, (z + 1) * ppf);
    burnBannerGray(frame, g.rows, g.columns, banner, bannerFg, 0);
    const full: NaturalDataset = { ...h, PixelData: [frame.buffer], _vrMap: { PixelData: 'OW' } };
    instances.push({ sopInstanceUid: String(h.SOPInstanceUID), sliceIndex: z, part10: writePart10(full) });
    headers.set(String(h.SOPInstanceUID), h);
  }
  return {
    seriesInstanceUid: seriesUid,
    sopClassUid: SC_IMAGE_STORAGE,
    seriesDescription: text.description,
    instances,
    headers,
    banner,
    mapping: { scale: Z_SCALE, offset: Z_OFFSET },
    window: { center: Math.round(center), width: Math.round(width) },
  };
}

function sourceList(sources: AcquiredSource[]): string {
  return sources.map((s) => `${SEQ_NAME[s.sequence]} ${s.volume.seriesInstanceUid}`).join(', ');
}

/** A missing sequence synthesised by brats-m2dn, as a labelled SC series on the reference grid. */
export function writeSyntheticSequence(input: SyntheticSequenceInput): SyntheticMrSeries {
  const p = input.provenance;
  const name = SEQ_NAME[input.sequence];
  const description = syntheticDescription(input.sequence, p.modelName);
  const derivation =
    `SYNTHETIC ${name}: AI-generated, not acquired. Synthesised by ${p.modelName} ${p.modelVersion} (sha256 ${p.modelSha256.toLowerCase()})` +
    `${input.method ? `, ${input.method}` : ''} from the acquired ${input.sources.map((s) => SEQ_NAME[s.sequence]).join(', ')} ` +
    `(series ${sourceList(input.sources)}), zscore-brain units stored as 400 (z + 5) + 1, 0 outside the brain mask. ` +
    `It may show or hide findings the true ${name} would not: do not read it as an acquired ${name}.`;
  const comments = [
    `SYNTHETIC ${name} (AI-generated, not acquired).`,
    input.qualityNote ?? '',
    provenanceSummary(p),
    input.deployment.disclaimer ?? '',
  ].filter(Boolean).join(' ');
  return writeSeries(input, { description, comments, derivation });
}

/** The fused image of the acquired sequences (brats-nslf), as a labelled SC series on the reference grid. */
export function writeFusedSeries(input: FusedInput): SyntheticMrSeries {
  const p = input.provenance;
  if (!input.fusedFrom.length) throw new Error('fused series: no acquired sequence fused');
  const seqs = input.fusedFrom.map((q) => SEQ_NAME[q]).join('+');
  const description = fusedDescription(input.fusedFrom, input.method, p.modelName);
  const derivation =
    `FUSED image of the acquired ${seqs} (${input.method}, voxel-wise weights predicted by ${p.modelName} ${p.modelVersion}, ` +
    `sha256 ${p.modelSha256.toLowerCase()}): AI-generated, not acquired; series ${sourceList(input.sources)}. ` +
    `zscore-brain units stored as 400 (z + 5) + 1, 0 outside the brain mask.`;
  const comments = [`FUSED ${seqs} (AI-generated, not acquired; ${input.method}).`, provenanceSummary(p), input.deployment.disclaimer ?? '']
    .filter(Boolean)
    .join(' ');
  return writeSeries(input, { description, comments, derivation });
}
