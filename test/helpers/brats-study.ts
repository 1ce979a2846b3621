/**
 * Test helper: a BraTS 2018 case (../shared/data/brats2018/<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz,
 * 240x240x155 @ 1 mm, co-registered, skull-stripped) written as a real-looking clinical DICOM MR study,
 * in memory (and, when asked, into a temp dir: never into the repo, the data must not be committed).
 *
 * - One series per sequence (FLAIR, T1, T1C, T2; any subset), MR Image Storage, 16-bit unsigned,
 *   one instance a slice, one StudyInstanceUID and one FrameOfReferenceUID for the study.
 * - Clinical geometry: `sliceThickness` mm axial slices (default 5), each the mean of that many
 *   consecutive 1 mm slices, `slices` of them (default 30, centred in the 155); in-plane matrix 240
 *   (native 1 mm) or any other N per series (bilinear over the same 240 mm field of view, pixel
 *   spacing 240/N), so the series differ the way clinical series do and exercise the common grid.
 * - ImagePositionPatient / ImageOrientationPatient from the NIfTI affine (sform, else qform), RAS →
 *   LPS; rows follow NIfTI j, columns NIfTI i; slices ascend along the DICOM normal (reversed from k
 *   when the affine's handedness asks for it).
 * - Acquisition tags a sequence classifier reads: ScanningSequence, SequenceVariant, ScanOptions,
 *   MRAcquisitionType, RepetitionTime, EchoTime, InversionTime (FLAIR 2500 ms), EchoTrainLength,
 *   FlipAngle, SequenceName, ContrastBolusAgent "Gadobutrol" (+ route, volume, ingredient) on T1C only,
 *   ImageType ORIGINAL\PRIMARY\M\ND, SeriesDescription / ProtocolName like "AX T2 FLAIR".
 * - De-identified placeholder patient attributes (PatientIdentityRemoved YES, method stated).
 * - The truth: the expert labels on each written grid (0 bg, 1 necrotic / non-enhancing core,
 *   2 oedema, 3 enhancing = BraTS 4), nearest neighbour: the label at the centre of each thick slice
 *   (its middle 1 mm slice) and of each pixel.
 */
import * as fs from 'fs';
import * as path from 'path';
import { newUid, writePart10, type NaturalDataset } from '../../src/dicom/dcmjs';
import type { SliceSource, StoredInstance, Vec3, Volume } from '../../src/types';
import { rasToLps, readNifti, voxelToRas, type Nifti } from './nifti';
import { MR_IMAGE_STORAGE, newStudyContext, type StudyContext, type WrittenInstance, type WrittenSeries } from './series-writer';

export type BratsSequence = 'FLAIR' | 'T1' | 'T1C' | 'T2';
export const BRATS_SEQUENCES: readonly BratsSequence[] = ['FLAIR', 'T1', 'T1C', 'T2'];
const FILE_SUFFIX: Record<BratsSequence, string> = { FLAIR: 'flair', T1: 't1', T1C: 't1ce', T2: 't2' };

/** The four TEST-split cases (split fixed for issue 14). */
export const BRATS_TEST_CASES = ['Brats18_2013_23_1', 'Brats18_CBICA_ALU_1', 'Brats18_TCIA02_370_1', 'Brats18_TCIA10_639_1'] as const;

export function bratsRoot(): string {
  const shared = process.env.STROKE_SHARED_DATA ?? path.resolve(__dirname, '../../../shared/data');
  return path.join(shared, 'brats2018');
}

export function bratsCaseAvailable(caseId: string, root = bratsRoot()): boolean {
  return ['flair', 't1', 't1ce', 't2', 'seg'].every((s) => fs.existsSync(path.join(root, caseId, `${caseId}_${s}.nii.gz`)));
}

/** Acquisition attributes of each sequence (a plausible 1.5 T protocol). */
const ACQ: Record<BratsSequence, { description: string; seriesNumber: number; tags: NaturalDataset }> = {
  FLAIR: {
    description: 'AX T2 FLAIR',
    seriesNumber: 3,
    tags: {
      ScanningSequence: ['SE', 'IR'],
      SequenceVariant: ['SK', 'SP', 'MP'],
      ScanOptions: 'IR',
      SequenceName: '*tir2d1_16',
      RepetitionTime: '9000',
      EchoTime: '81',
      InversionTime: '2500',
      EchoTrainLength: 16,
      FlipAngle: '150',
    },
  },
  T1: {
    description: 'AX T1 SE',
    seriesNumber: 4,
    tags: {
      ScanningSequence: 'SE',
      SequenceVariant: 'SP',
      ScanOptions: '',
      SequenceName: '*se2d1',
      RepetitionTime: '500',
      EchoTime: '10',
      EchoTrainLength: 1,
      FlipAngle: '90',
    },
  },
  T2: {
    description: 'AX T2 TSE',
    seriesNumber: 5,
    tags: {
      ScanningSequence: 'SE',
      SequenceVariant: ['SK', 'SP'],
      ScanOptions: '',
      SequenceName: '*tse2d1_15',
      RepetitionTime: '4000',
      EchoTime: '100',
      EchoTrainLength: 15,
      FlipAngle: '150',
    },
  },
  T1C: {
    description: 'AX T1 SE +C',
    seriesNumber: 7,
    tags: {
      ScanningSequence: 'SE',
      SequenceVariant: 'SP',
      ScanOptions: '',
      SequenceName: '*se2d1',
      RepetitionTime: '500',
      EchoTime: '10',
      EchoTrainLength: 1,
      FlipAngle: '90',
      ContrastBolusAgent: 'Gadobutrol',
      ContrastBolusRoute: 'IV',
      ContrastBolusVolume: '7.5',
      ContrastBolusIngredient: 'GADOLINIUM',
    },
  },
};

export interface BratsStudyOptions {
  caseId: string;
  /** Sequences to write (default all four). */
  sequences?: BratsSequence[];
  /** In-plane matrix per sequence (default 240 = native 1 mm). */
  matrix?: Partial<Record<BratsSequence, number>>;
  /** Slice thickness = spacing, mm (a whole number of the 1 mm source slices). Default 5. */
  sliceThickness?: number;
  /** Number of thick slices (default 30). */
  slices?: number;
  /** First 1 mm source slice (k) used; default centres the slab in the volume. */
  firstSourceSlice?: number;
  /** InstanceNumber vs position; 'shuffled' also shuffles the order of `files`. Default ascending. */
  instanceOrder?: 'ascending' | 'descending' | 'shuffled';
  study?: StudyContext;
  /** Write <outDir>/<sequence>/<SOPInstanceUID>.dcm (a temp dir: never the repo). */
  outDir?: string;
  root?: string;
}

export interface BratsSeries extends WrittenSeries {
  sequence: BratsSequence;
  /** Labels 0..3 on this series' grid (volume.geometry), slice-major ascending along the normal. */
  truth: Uint8Array;
}

export interface BratsStudy {
  caseId: string;
  study: StudyContext;
  series: Partial<Record<BratsSequence, BratsSeries>>;
  /** Written series in the order FLAIR, T1, T1C, T2 (those requested). */
  list: BratsSeries[];
}

const fmt = (x: number): string => String(Number(x.toPrecision(10)));
const norm = (v: Vec3): Vec3 => {
  const l = Math.hypot(v[0], v[1], v[2]);
  return [v[0] / l, v[1] / l, v[2] / l];
};
const cross = (a: Vec3, b: Vec3): Vec3 => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const dot = (a: Vec3, b: Vec3): number => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

function order(n: number, how: BratsStudyOptions['instanceOrder'], seed: number): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  if (how === 'descending') return idx.reverse();
  if (how === 'shuffled') {
    let s = seed;
    for (let i = n - 1; i > 0; i--) {
      s = (s * 1103515245 + 12345) & 0x7fffffff;
      const j = s % (i + 1);
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
  }
  return idx;
}

/** Window from the 1st..99.5th percentile of the non-zero values. */
function windowOf(values: Uint16Array): [number, number] {
  const nz: number[] = [];
  for (let i = 0; i < values.length; i += 7) if (values[i] > 0) nz.push(values[i]);
  if (nz.length === 0) return [500, 1000];
  nz.sort((a, b) => a - b);
  const lo = nz[Math.floor(nz.length * 0.01)];
  const hi = nz[Math.min(nz.length - 1, Math.floor(nz.length * 0.995))];
  return [Math.round((lo + hi) / 2), Math.max(1, Math.round(hi - lo))];
}

interface Slab {
  /** Thick-slice index z (ascending along the DICOM normal) → first 1 mm source slice k. */
  kStart: number[];
  thickness: number;
}

function slabOf(nz: number, opts: BratsStudyOptions, kAscending: boolean): Slab {
  const t = opts.sliceThickness ?? 5;
  if (!Number.isInteger(t) || t < 1) throw new Error('sliceThickness must be a whole number of 1 mm slices');
  const n = opts.slices ?? 30;
  const first = opts.firstSourceSlice ?? Math.floor((nz - n * t) / 2);
  if (first < 0 || first + n * t > nz) throw new Error(`${n} slices of ${t} mm from k=${first} do not fit in ${nz} source slices`);
  const ks = Array.from({ length: n }, (_, z) => first + z * t);
  return { kStart: kAscending ? ks : ks.reverse(), thickness: t };
}

/**
 * Resample one thick slice in-plane onto an N x N grid over the same field of view (bilinear for
 * images, nearest for labels). Source index of target pixel centre q: (q + 0.5) * n0/N - 0.5.
 */
function resamplePlane(src: Float32Array, n0x: number, n0y: number, nx: number, ny: number, nearest: boolean): Float32Array {
  if (nx === n0x && ny === n0y) return src;
  // per-axis source indices and weights, computed once
  const axis = (n0: number, n: number): { i0: Int32Array; i1: Int32Array; f: Float32Array } => {
    const i0 = new Int32Array(n);
    const i1 = new Int32Array(n);
    const f = new Float32Array(n);
    for (let q = 0; q < n; q++) {
      const x = Math.min(n0 - 1, Math.max(0, (q + 0.5) * (n0 / n) - 0.5));
      if (nearest) {
        i0[q] = i1[q] = Math.round(x);
      } else {
        i0[q] = Math.floor(x);
        i1[q] = Math.min(n0 - 1, i0[q] + 1);
        f[q] = x - i0[q];
      }
    }
    return { i0, i1, f };
  };
  const ax = axis(n0x, nx);
  const ay = axis(n0y, ny);
  const out = new Float32Array(nx * ny);
  for (let r = 0; r < ny; r++) {
    const row0 = ay.i0[r] * n0x;
    const row1 = ay.i1[r] * n0x;
    const fy = ay.f[r];
    for (let c = 0; c < nx; c++) {
      const x0 = ax.i0[c];
      const x1 = ax.i1[c];
      const fx = ax.f[c];
      const top = src[row0 + x0] + fx * (src[row0 + x1] - src[row0 + x0]);
      const bottom = src[row1 + x0] + fx * (src[row1 + x1] - src[row1 + x0]);
      out[r * nx + c] = top + fy * (bottom - top);
    }
  }
  return out;
}

/** Write the case as a DICOM study. */
export function writeBratsStudy(opts: BratsStudyOptions): BratsStudy {
  const root = opts.root ?? bratsRoot();
  const caseId = opts.caseId;
  const dir = path.join(root, caseId);
  const sequences = opts.sequences ?? [...BRATS_SEQUENCES];
  const shortId = caseId.replace(/^Brats18_/, '');
  const study =
    opts.study ??
    newStudyContext({
      patientName: `BRATS^${shortId}`,
      patientId: `BRATS-${shortId}`.slice(0, 64),
      accessionNumber: `BT${shortId.replace(/[^0-9]/g, '')}`.slice(0, 16),
      studyId: '1',
    });
  const seg = readNifti(path.join(dir, `${caseId}_seg.nii.gz`));
  const [nx0, ny0, nz0] = seg.dims;

  // Geometry from the affine (RAS → LPS): columns along i, rows along j, thick slices along k.
  const o = rasToLps(voxelToRas(seg, 0, 0, 0));
  const di = rasToLps(voxelToRas(seg, 1, 0, 0)).map((v, a) => v - o[a]) as Vec3;
  const dj = rasToLps(voxelToRas(seg, 0, 1, 0)).map((v, a) => v - o[a]) as Vec3;
  const dk = rasToLps(voxelToRas(seg, 0, 0, 1)).map((v, a) => v - o[a]) as Vec3;
  const rowCos = norm(di); // direction of increasing column index
  const colCos = norm(dj); // direction of increasing row index
  const normal = cross(rowCos, colCos);
  const kAscending = dot(normal, dk) > 0;
  const si = Math.hypot(...di);
  const sj = Math.hypot(...dj);
  const sk = Math.hypot(...dk);
  const slab = slabOf(nz0, opts, kAscending);
  const nSlices = slab.kStart.length;
  const spacing = slab.thickness * sk;

  // Truth labels on the native in-plane grid: the middle 1 mm slice of each thick slice.
  const ppf0 = nx0 * ny0;
  const labelPlane = (z: number): Float32Array => {
    const k = slab.kStart[z] + Math.floor(slab.thickness / 2);
    const p = new Float32Array(ppf0);
    for (let i = 0; i < ppf0; i++) {
      const v = seg.data[k * ppf0 + i];
      p[i] = v === 4 ? 3 : v;
    }
    return p;
  };

  const out: BratsStudy = { caseId, study, series: {}, list: [] };
  sequences.forEach((sequence, si0) => {
    const img: Nifti = readNifti(path.join(dir, `${caseId}_${FILE_SUFFIX[sequence]}.nii.gz`));
    if (img.dims.join() !== seg.dims.join()) throw new Error(`${sequence}: dims ${img.dims} differ from the labels' ${seg.dims}`);
    const N = opts.matrix?.[sequence] ?? nx0;
    const Ny = Math.round((N * ny0 * sj) / (nx0 * si)); // same field of view in both directions
    const ps: [number, number] = [(ny0 * sj) / Ny, (nx0 * si) / N]; // [row spacing, column spacing]
    // first pixel centre, in native voxel index units
    const i0 = 0.5 * (nx0 / N) - 0.5;
    const j0 = 0.5 * (ny0 / Ny) - 0.5;
    const ppf = N * Ny;
    const pixels = new Uint16Array(ppf * nSlices);
    const truth = new Uint8Array(ppf * nSlices);
    const positions: Vec3[] = [];
    for (let z = 0; z < nSlices; z++) {
      const k0 = slab.kStart[z];
      const mean = new Float32Array(ppf0);
      for (let t = 0; t < slab.thickness; t++) {
        const off = (k0 + t) * ppf0;
        for (let i = 0; i < ppf0; i++) mean[i] += img.data[off + i] / slab.thickness;
      }
      const plane = resamplePlane(mean, nx0, ny0, N, Ny, false);
      for (let i = 0; i < ppf; i++) pixels[z * ppf + i] = Math.max(0, Math.min(65535, Math.round(plane[i])));
      const lab = resamplePlane(labelPlane(z), nx0, ny0, N, Ny, true);
      for (let i = 0; i < ppf; i++) truth[z * ppf + i] = lab[i];
      const kc = k0 + (slab.thickness - 1) / 2; // centre of the thick slice
      positions.push(rasToLps(voxelToRas(seg, i0, j0, kc)));
    }
    const [wc, ww] = windowOf(pixels);
    const acq = ACQ[sequence];
    const seriesInstanceUid = newUid();
    const files: WrittenInstance[] = [];
    const headers = new Map<string, NaturalDataset>();
    const sliceSources: SliceSource[] = new Array(nSlices);
    const vol = new Float32Array(ppf * nSlices);
    for (let i = 0; i < vol.length; i++) vol[i] = pixels[i];
    order(nSlices, opts.instanceOrder, 4242 + si0).forEach((z, k) => {
      const sopInstanceUid = newUid();
      const p = positions[z];
      const px = pixels.slice(z * ppf, (z + 1) * ppf);
      const ds: NaturalDataset = {
        SpecificCharacterSet: 'ISO_IR 100',
        SOPClassUID: MR_IMAGE_STORAGE,
        SOPInstanceUID: sopInstanceUid,
        ImageType: ['ORIGINAL', 'PRIMARY', 'M', 'ND'],
        StudyDate: study.studyDate,
        SeriesDate: study.studyDate,
        AcquisitionDate: study.studyDate,
        ContentDate: study.studyDate,
        StudyTime: study.studyTime,
        SeriesTime: study.studyTime,
        ContentTime: study.studyTime,
        AccessionNumber: study.accessionNumber,
        Modality: 'MR',
        Manufacturer: 'SIEMENS',
        ManufacturerModelName: 'Avanto',
        ReferringPhysicianName: '',
        StudyDescription: 'MRI BRAIN WITH AND WITHOUT CONTRAST',
        SeriesDescription: acq.description,
        ProtocolName: acq.description,
        PatientName: study.patientName,
        PatientID: study.patientId,
        PatientBirthDate: '',
        PatientSex: 'O',
        PatientIdentityRemoved: 'YES',
        DeidentificationMethod: 'BraTS 2018 public data; placeholder DICOM patient attributes',
        StudyInstanceUID: study.studyInstanceUid,
        SeriesInstanceUID: seriesInstanceUid,
        StudyID: study.studyId,
        SeriesNumber: acq.seriesNumber,
        AcquisitionNumber: 1,
        InstanceNumber: k + 1,
        PatientOrientation: '',
        PatientPosition: 'HFS',
        BodyPartExamined: 'BRAIN',
        ImagePositionPatient: p.map(fmt),
        ImageOrientationPatient: [...rowCos, ...colCos].map(fmt),
        FrameOfReferenceUID: study.frameOfReferenceUid,
        PositionReferenceIndicator: '',
        SliceLocation: fmt(dot(p, normal)),
        SliceThickness: fmt(spacing),
        SpacingBetweenSlices: fmt(spacing),
        MRAcquisitionType: '2D',
        MagneticFieldStrength: '1.5',
        ImagingFrequency: '63.676',
        ImagedNucleus: '1H',
        NumberOfAverages: '1',
        PercentSampling: '100',
        PercentPhaseFieldOfView: '100',
        PixelBandwidth: '150',
        ...acq.tags,
        ImageComments: `Test data derived from BraTS 2018 case ${caseId} (co-registered, skull-stripped), not acquired this way.`,
        SamplesPerPixel: 1,
        PhotometricInterpretation: 'MONOCHROME2',
        Rows: Ny,
        Columns: N,
        PixelSpacing: ps.map(fmt),
        BitsAllocated: 16,
        BitsStored: 16,
        HighBit: 15,
        PixelRepresentation: 0,
        WindowCenter: String(wc),
        WindowWidth: String(ww),
        PixelData: [px.buffer.slice(px.byteOffset, px.byteOffset + px.byteLength)],
        _vrMap: { PixelData: 'OW' },
      };
      headers.set(sopInstanceUid, ds);
      sliceSources[z] = { sopInstanceUid, sopClassUid: MR_IMAGE_STORAGE, seriesInstanceUid };
      files.push({ sopInstanceUid, sliceIndex: z, part10: writePart10(ds) });
    });
    const volume: Volume = {
      kind: sequence,
      geometry: {
        rows: Ny,
        columns: N,
        slices: nSlices,
        pixelSpacing: ps,
        sliceSpacing: spacing,
        rowCosines: rowCos,
        columnCosines: colCos,
        normal,
        slicePositions: positions,
        frameOfReferenceUid: study.frameOfReferenceUid,
        warnings: [],
      },
      data: vol,
      sliceSources,
      seriesInstanceUid,
      seriesDescription: acq.description,
    };
    const s: BratsSeries = { sequence, seriesInstanceUid, sopClassUid: MR_IMAGE_STORAGE, files, headers, volume, truth };
    if (opts.outDir) {
      const d = path.join(opts.outDir, sequence);
      fs.mkdirSync(d, { recursive: true });
      for (const f of files) {
        f.path = path.join(d, `${f.sopInstanceUid}.dcm`);
        fs.writeFileSync(f.path, f.part10);
      }
    }
    out.series[sequence] = s;
    out.list.push(s);
  });
  return out;
}

/**
 * The written study as the store's records of its files (what assembleStudy takes), series by series in
 * study.list order; the study must have been written with outDir. Any written study works (the liver helper uses it).
 */
export function bratsStoredInstances(study: { study: StudyContext; list: WrittenSeries[] }, sourceAe = 'TEST'): StoredInstance[] {
  return study.list.flatMap((s) =>
    s.files.map((f) => {
      if (!f.path) throw new Error(`bratsStoredInstances: ${f.sopInstanceUid} was not written to disk (writeBratsStudy without outDir)`);
      return {
        sopInstanceUid: f.sopInstanceUid,
        sopClassUid: s.sopClassUid,
        studyInstanceUid: study.study.studyInstanceUid,
        seriesInstanceUid: s.seriesInstanceUid,
        transferSyntaxUid: '1.2.840.10008.1.2.1',
        path: f.path,
        bytes: f.part10.length,
        receivedAt: new Date().toISOString(),
        sourceAe,
      };
    }),
  );
}
