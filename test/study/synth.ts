/**
 * Small synthetic DICOM series for the study-stage tests, written with the project's writePart10.
 * Each slice is a classic single-frame CT or MR image; pixel values are chosen by the caller.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { newUid, NaturalDataset, writePart10, TransferSyntax } from '../../src/dicom/dcmjs';
import { StoredInstance } from '../../src/types';

export interface SliceSpec {
  position: [number, number, number];
  orientation?: number[];
  pixelSpacing?: (number | string)[];
  rows?: number;
  columns?: number;
  /** Stored values (row-major). */
  pixels: Int16Array;
  instanceNumber: number;
  bValue?: number;
  gradient?: [number, number, number];
  rescaleSlope?: number;
  rescaleIntercept?: number;
  imageType?: string[];
  extra?: NaturalDataset;
}

export interface SeriesSpec {
  modality: 'CT' | 'MR';
  sopClassUid?: string;
  seriesDescription?: string;
  extra?: NaturalDataset;
  slices: SliceSpec[];
  transferSyntaxUid?: string;
}

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `study-${prefix}-`));
}

export function writeSeries(dir: string, spec: SeriesSpec, studyUid: string = newUid()): StoredInstance[] {
  const seriesUid = newUid();
  const forUid = newUid();
  const sopClassUid = spec.sopClassUid ?? (spec.modality === 'CT' ? '1.2.840.10008.5.1.4.1.1.2' : '1.2.840.10008.5.1.4.1.1.4');
  return spec.slices.map((s) => {
    const rows = s.rows ?? 8;
    const columns = s.columns ?? 8;
    const sop = newUid();
    const ds: NaturalDataset = {
      _vrMap: { PixelData: 'OW' },
      SOPClassUID: sopClassUid,
      SOPInstanceUID: sop,
      StudyInstanceUID: studyUid,
      SeriesInstanceUID: seriesUid,
      FrameOfReferenceUID: forUid,
      Modality: spec.modality,
      SeriesDescription: spec.seriesDescription ?? 'synthetic',
      Manufacturer: 'SYNTHETIC',
      PatientID: 'SYNTH',
      ImageType: s.imageType ?? ['ORIGINAL', 'PRIMARY', 'AXIAL'],
      InstanceNumber: s.instanceNumber,
      ImagePositionPatient: s.position,
      ImageOrientationPatient: s.orientation ?? [1, 0, 0, 0, 1, 0],
      PixelSpacing: s.pixelSpacing ?? [1, 1],
      SliceThickness: 2,
      Rows: rows,
      Columns: columns,
      SamplesPerPixel: 1,
      PhotometricInterpretation: 'MONOCHROME2',
      BitsAllocated: 16,
      BitsStored: 16,
      HighBit: 15,
      PixelRepresentation: 1,
      RescaleSlope: s.rescaleSlope ?? 1,
      RescaleIntercept: s.rescaleIntercept ?? 0,
      ...(spec.extra ?? {}),
      ...(s.extra ?? {}),
      PixelData: [s.pixels.buffer.slice(s.pixels.byteOffset, s.pixels.byteOffset + s.pixels.byteLength)],
    };
    if (s.bValue !== undefined) ds.DiffusionBValue = s.bValue;
    if (s.gradient) ds.DiffusionGradientOrientation = s.gradient;
    const file = path.join(dir, `${sop}.dcm`);
    const ts = spec.transferSyntaxUid ?? TransferSyntax.ExplicitVRLittleEndian;
    fs.writeFileSync(file, writePart10(ds, ts));
    return {
      sopInstanceUid: sop,
      sopClassUid,
      studyInstanceUid: studyUid,
      seriesInstanceUid: seriesUid,
      transferSyntaxUid: ts,
      path: file,
      bytes: fs.statSync(file).size,
      receivedAt: new Date().toISOString(),
      sourceAe: 'TEST',
    };
  });
}

/** A filled 8x8 slice. */
export function filled(value: number, n = 64): Int16Array {
  return new Int16Array(n).fill(value);
}

/** Deterministic shuffle (so a failure is reproducible). */
export function shuffle<T>(xs: T[], seed = 7): T[] {
  const a = [...xs];
  let s = seed;
  for (let i = a.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Stored instances of every file under a folder of the shared real data. */
export function instancesIn(dir: string): StoredInstance[] {
  const out: StoredInstance[] = [];
  const walk = (d: string): void => {
    for (const f of fs.readdirSync(d).sort()) {
      const p = path.join(d, f);
      if (fs.statSync(p).isDirectory()) walk(p);
      else
        out.push({
          sopInstanceUid: '',
          sopClassUid: '',
          studyInstanceUid: '',
          seriesInstanceUid: '',
          transferSyntaxUid: '',
          path: p,
          bytes: fs.statSync(p).size,
          receivedAt: new Date().toISOString(),
          sourceAe: 'TEST',
        });
    }
  };
  walk(dir);
  return out;
}

export const SHARED_DATA = process.env.STROKE_SHARED_DATA ?? path.resolve(__dirname, '../../../shared/data');
export const DICOM_DATA = path.join(SHARED_DATA, 'dicom');
