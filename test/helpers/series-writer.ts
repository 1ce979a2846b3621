/**
 * Test helper: writes an in-memory volume (or a phantom from fixtures/phantoms/<case>/) as a classic
 * single-frame MR or CT series of Part 10 files, with consistent UIDs (one study shared by every
 * series written with the same StudyContext), correct IPP/IOP/PixelSpacing/SliceThickness,
 * DiffusionBValue and ImageType. Returns the files, the headers and the matching `Volume`
 * (sliceSources ascending along the normal), so end-to-end tests can send phantom studies to the
 * node and compare what comes back.
 *
 * Phantom format (fixtures/phantoms/<case>/): meta.json {rows, columns, slices, pixelSpacing,
 * sliceThickness, sliceSpacing, bValue, imageOrientationPatient, imagePositionPatientFirst, ...} and
 * gzipped raw little-endian `dwi.u16.gz`, `adc.u16.gz`, `b0.u16.gz`, `mask.u8.gz` (slice-major,
 * row-major, slices ascending along the normal).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { newUid, writePart10, type NaturalDataset } from '../../src/dicom/dcmjs';
import type { SliceSource, Vec3, Volume, VolumeKind } from '../../src/types';

export const MR_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.4';
export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';

/** Shared by every series of one study. Patient values are synthetic. */
export interface StudyContext {
  studyInstanceUid: string;
  frameOfReferenceUid: string;
  patientName: string;
  patientId: string;
  studyDate: string;
  studyTime: string;
  accessionNumber: string;
  studyId: string;
}

export function newStudyContext(overrides: Partial<StudyContext> = {}): StudyContext {
  return {
    studyInstanceUid: newUid(),
    frameOfReferenceUid: newUid(),
    patientName: 'PHANTOM^STROKE',
    patientId: 'PHANTOM001',
    studyDate: '20260101',
    studyTime: '120000',
    accessionNumber: 'ACC0001',
    studyId: '1',
    ...overrides,
  };
}

export type SeriesKind = 'DWI' | 'B0' | 'ADC' | 'TRACEW' | 'CT';

export interface SeriesSpec {
  kind: SeriesKind;
  rows: number;
  columns: number;
  slices: number;
  /** [row spacing, column spacing] mm. */
  pixelSpacing: [number, number];
  sliceThickness: number;
  sliceSpacing: number;
  /** Row cosines then column cosines. */
  imageOrientationPatient: [number, number, number, number, number, number];
  /** IPP of the first slice (lowest along the normal). */
  imagePositionPatientFirst: Vec3;
  /** Stored values, slice-major (z ascending along the normal), row-major. CT: signed HU. */
  data: Uint16Array | Int16Array;
  bValue?: number;
  seriesDescription?: string;
  seriesNumber?: number;
  /** Order of InstanceNumber vs position (tests of sorting): default ascending. */
  instanceOrder?: 'ascending' | 'descending' | 'shuffled';
  /** Override ImageType. */
  imageType?: string[];
  /** Attributes set on every instance after the defaults (undefined deletes one), e.g. BodyPartExamined. */
  tags?: NaturalDataset;
}

export interface WrittenInstance {
  sopInstanceUid: string;
  /** Index of the slice (ascending along the normal) this instance holds. */
  sliceIndex: number;
  part10: Buffer;
  /** Set when writeSeriesToDir wrote it. */
  path?: string;
}

export interface WrittenSeries {
  seriesInstanceUid: string;
  sopClassUid: string;
  files: WrittenInstance[];
  headers: Map<string, NaturalDataset>;
  volume: Volume;
}

function cross(a: Vec3, b: Vec3): Vec3 {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

function defaultImageType(kind: SeriesKind): string[] {
  switch (kind) {
    case 'DWI':
    case 'B0':
      return ['ORIGINAL', 'PRIMARY', 'DIFFUSION', 'NONE'];
    case 'TRACEW':
      return ['ORIGINAL', 'PRIMARY', 'DIFFUSION', 'TRACEW'];
    case 'ADC':
      return ['DERIVED', 'PRIMARY', 'DIFFUSION', 'ADC'];
    case 'CT':
      return ['ORIGINAL', 'PRIMARY', 'AXIAL'];
  }
}

function volumeKind(kind: SeriesKind): VolumeKind {
  return kind === 'B0' ? 'DWI' : kind;
}

function order(n: number, how: SeriesSpec['instanceOrder']): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  if (how === 'descending') return idx.reverse();
  if (how === 'shuffled') {
    // deterministic shuffle (LCG) so failures reproduce
    let s = 12345;
    for (let i = n - 1; i > 0; i--) {
      s = (s * 1103515245 + 12345) & 0x7fffffff;
      const j = s % (i + 1);
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
  }
  return idx;
}

const fmt = (x: number): string => String(Number(x.toPrecision(10)));

/** Write one series in memory. */
export function writeSeries(spec: SeriesSpec, study: StudyContext): WrittenSeries {
  const { rows, columns, slices } = spec;
  const ppf = rows * columns;
  if (spec.data.length !== ppf * slices) throw new Error(`data has ${spec.data.length} values, expected ${ppf * slices}`);
  const isCt = spec.kind === 'CT';
  const sopClassUid = isCt ? CT_IMAGE_STORAGE : MR_IMAGE_STORAGE;
  const seriesInstanceUid = newUid();
  const iop = spec.imageOrientationPatient;
  const rowCos: Vec3 = [iop[0], iop[1], iop[2]];
  const colCos: Vec3 = [iop[3], iop[4], iop[5]];
  const normal = cross(rowCos, colCos);
  const positions: Vec3[] = [];
  for (let z = 0; z < slices; z++) {
    const d = z * spec.sliceSpacing;
    positions.push([
      spec.imagePositionPatientFirst[0] + d * normal[0],
      spec.imagePositionPatientFirst[1] + d * normal[1],
      spec.imagePositionPatientFirst[2] + d * normal[2],
    ]);
  }
  const instanceOrder = order(slices, spec.instanceOrder);
  const files: WrittenInstance[] = [];
  const headers = new Map<string, NaturalDataset>();
  const sliceSources: SliceSource[] = new Array(slices);
  const vol = new Float32Array(ppf * slices);
  const signed = spec.data instanceof Int16Array;
  instanceOrder.forEach((z, k) => {
    const sopInstanceUid = newUid();
    const pixels = spec.data.slice(z * ppf, (z + 1) * ppf);
    for (let i = 0; i < ppf; i++) vol[z * ppf + i] = pixels[i];
    const p = positions[z];
    const ds: NaturalDataset = {
      SpecificCharacterSet: 'ISO_IR 100',
      SOPClassUID: sopClassUid,
      SOPInstanceUID: sopInstanceUid,
      ImageType: spec.imageType ?? defaultImageType(spec.kind),
      StudyDate: study.studyDate,
      SeriesDate: study.studyDate,
      ContentDate: study.studyDate,
      StudyTime: study.studyTime,
      SeriesTime: study.studyTime,
      ContentTime: study.studyTime,
      AccessionNumber: study.accessionNumber,
      Modality: isCt ? 'CT' : 'MR',
      Manufacturer: 'PHANTOM',
      ReferringPhysicianName: '',
      StudyDescription: 'Stroke phantom',
      SeriesDescription: spec.seriesDescription ?? `${spec.kind}${spec.bValue !== undefined ? ` b${spec.bValue}` : ''}`,
      PatientName: study.patientName,
      PatientID: study.patientId,
      PatientBirthDate: '',
      PatientSex: 'O',
      StudyInstanceUID: study.studyInstanceUid,
      SeriesInstanceUID: seriesInstanceUid,
      StudyID: study.studyId,
      SeriesNumber: spec.seriesNumber ?? 1,
      InstanceNumber: k + 1,
      PatientOrientation: '',
      PatientPosition: 'HFS',
      BodyPartExamined: 'HEAD',
      ImageLaterality: 'U',
      ImagePositionPatient: p.map(fmt),
      ImageOrientationPatient: iop.map(fmt),
      FrameOfReferenceUID: study.frameOfReferenceUid,
      PositionReferenceIndicator: '',
      SliceLocation: fmt(p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2]),
      SliceThickness: fmt(spec.sliceThickness),
      SpacingBetweenSlices: fmt(spec.sliceSpacing),
      SamplesPerPixel: 1,
      PhotometricInterpretation: 'MONOCHROME2',
      Rows: rows,
      Columns: columns,
      PixelSpacing: spec.pixelSpacing.map(fmt),
      BitsAllocated: 16,
      BitsStored: 16,
      HighBit: 15,
      PixelRepresentation: signed ? 1 : 0,
      PixelData: [pixels.buffer.slice(pixels.byteOffset, pixels.byteOffset + pixels.byteLength)],
      _vrMap: { PixelData: 'OW' },
    };
    if (isCt) {
      Object.assign(ds, { RescaleIntercept: '0', RescaleSlope: '1', RescaleType: 'HU', KVP: '120', AcquisitionNumber: 1 });
    } else {
      Object.assign(ds, {
        ScanningSequence: 'EP',
        SequenceVariant: 'SK',
        ScanOptions: '',
        MRAcquisitionType: '2D',
        RepetitionTime: '5000',
        EchoTime: '80',
        EchoTrainLength: 1,
        MagneticFieldStrength: '1.5',
        AcquisitionNumber: 1,
      });
      if (spec.bValue !== undefined) ds.DiffusionBValue = spec.bValue;
    }
    for (const [k, v] of Object.entries(spec.tags ?? {})) {
      if (v === undefined) delete ds[k];
      else ds[k] = v;
    }
    headers.set(sopInstanceUid, ds);
    sliceSources[z] = { sopInstanceUid, sopClassUid, seriesInstanceUid };
    files.push({ sopInstanceUid, sliceIndex: z, part10: writePart10(ds) });
  });
  const volume: Volume = {
    kind: volumeKind(spec.kind),
    geometry: {
      rows,
      columns,
      slices,
      pixelSpacing: [spec.pixelSpacing[0], spec.pixelSpacing[1]],
      sliceSpacing: spec.sliceSpacing,
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
    seriesDescription: spec.seriesDescription,
  };
  if (spec.bValue !== undefined) volume.bValue = spec.bValue;
  return { seriesInstanceUid, sopClassUid, files, headers, volume };
}

/** Write a series' files as <dir>/<SOPInstanceUID>.dcm (paths set on the returned files). */
export function writeSeriesToDir(series: WrittenSeries, dir: string): WrittenSeries {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of series.files) {
    f.path = path.join(dir, `${f.sopInstanceUid}.dcm`);
    fs.writeFileSync(f.path, f.part10);
  }
  return series;
}

// ---- phantoms ----

export interface PhantomMeta {
  rows: number;
  columns: number;
  slices: number;
  pixelSpacing: [number, number];
  sliceThickness: number;
  sliceSpacing: number;
  bValue: number;
  imageOrientationPatient: [number, number, number, number, number, number];
  imagePositionPatientFirst: Vec3;
  [k: string]: unknown;
}

export interface Phantom {
  name: string;
  meta: PhantomMeta;
  dwi?: Uint16Array;
  adc?: Uint16Array;
  b0?: Uint16Array;
  mask?: Uint8Array;
}

export function phantomsRoot(): string {
  return process.env.STROKE_PHANTOMS ?? path.resolve(__dirname, '../../fixtures/phantoms');
}

function readGz(file: string): Buffer | undefined {
  if (!fs.existsSync(file)) return undefined;
  return zlib.gunzipSync(fs.readFileSync(file));
}

function u16(buf: Buffer | undefined, n: number, what: string): Uint16Array | undefined {
  if (!buf) return undefined;
  if (buf.length !== n * 2) throw new Error(`${what}: ${buf.length} bytes, expected ${n * 2}`);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = buf.readUInt16LE(i * 2);
  return out;
}

/** Load fixtures/phantoms/<name>/ (throws if meta.json is missing). */
export function loadPhantom(name: string, root = phantomsRoot()): Phantom {
  const dir = path.join(root, name);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as PhantomMeta;
  const n = meta.rows * meta.columns * meta.slices;
  const maskBuf = readGz(path.join(dir, 'mask.u8.gz'));
  if (maskBuf && maskBuf.length !== n) throw new Error(`mask: ${maskBuf.length} bytes, expected ${n}`);
  return {
    name,
    meta,
    dwi: u16(readGz(path.join(dir, 'dwi.u16.gz')), n, 'dwi'),
    adc: u16(readGz(path.join(dir, 'adc.u16.gz')), n, 'adc'),
    b0: u16(readGz(path.join(dir, 'b0.u16.gz')), n, 'b0'),
    mask: maskBuf ? new Uint8Array(maskBuf) : undefined,
  };
}

export interface PhantomStudy {
  study: StudyContext;
  dwi?: WrittenSeries;
  adc?: WrittenSeries;
  b0?: WrittenSeries;
  mask?: Uint8Array;
  meta: PhantomMeta;
}

/** Write a phantom as an MR study (DWI b=meta.bValue, b0, ADC), optionally to <outDir>/<series>/. */
export function writePhantomStudy(
  phantom: Phantom,
  opts: { outDir?: string; study?: StudyContext; include?: Array<'dwi' | 'adc' | 'b0'> } = {},
): PhantomStudy {
  const study = opts.study ?? newStudyContext();
  const m = phantom.meta;
  const include = opts.include ?? ['dwi', 'adc', 'b0'];
  const base = {
    rows: m.rows,
    columns: m.columns,
    slices: m.slices,
    pixelSpacing: m.pixelSpacing,
    sliceThickness: m.sliceThickness,
    sliceSpacing: m.sliceSpacing,
    imageOrientationPatient: m.imageOrientationPatient,
    imagePositionPatientFirst: m.imagePositionPatientFirst,
  };
  const out: PhantomStudy = { study, mask: phantom.mask, meta: m };
  const mk = (key: 'dwi' | 'adc' | 'b0', kind: SeriesKind, data: Uint16Array | undefined, extra: Partial<SeriesSpec>): void => {
    if (!include.includes(key) || !data) return;
    const s = writeSeries({ ...base, kind, data, ...extra }, study);
    out[key] = opts.outDir ? writeSeriesToDir(s, path.join(opts.outDir, key)) : s;
  };
  mk('b0', 'B0', phantom.b0, { bValue: 0, seriesNumber: 2, seriesDescription: 'ep2d_diff b0' });
  mk('dwi', 'TRACEW', phantom.dwi, { bValue: m.bValue, seriesNumber: 3, seriesDescription: `ep2d_diff TRACEW b${m.bValue}` });
  mk('adc', 'ADC', phantom.adc, { seriesNumber: 4, seriesDescription: 'ep2d_diff ADC' });
  return out;
}
