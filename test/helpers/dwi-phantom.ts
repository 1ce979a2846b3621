/**
 * A DWI phantom study in the fixture format of models/training/phantoms.py write_fixture (dwi/b0/adc .u16.gz,
 * mask.u8.gz, meta.json) as the node's Volumes: the trace DWI (with its b-value), the b0 and the ADC on one grid.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { Volume, VolumeGeometry } from '../../src/types';

export interface DwiPhantom {
  name: string;
  meta: { rows: number; columns: number; slices: number; pixelSpacing: [number, number]; sliceSpacing: number; bValue: number; imageOrientationPatient: number[]; imagePositionPatientFirst: number[]; seed: number; split: string };
  dwi: Volume;
  b0: Volume;
  adc: Volume;
  truth: Uint8Array;
}

function readU16(file: string): Float32Array {
  const b = zlib.gunzipSync(fs.readFileSync(file));
  const out = new Float32Array(b.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = b.readUInt16LE(2 * i);
  return out;
}

export function loadDwiPhantom(dir: string): DwiPhantom {
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as DwiPhantom['meta'];
  const iop = meta.imageOrientationPatient;
  const rowCos: [number, number, number] = [iop[0], iop[1], iop[2]];
  const colCos: [number, number, number] = [iop[3], iop[4], iop[5]];
  const normal: [number, number, number] = [
    rowCos[1] * colCos[2] - rowCos[2] * colCos[1],
    rowCos[2] * colCos[0] - rowCos[0] * colCos[2],
    rowCos[0] * colCos[1] - rowCos[1] * colCos[0],
  ];
  const p0 = meta.imagePositionPatientFirst;
  const geometry: VolumeGeometry = {
    rows: meta.rows,
    columns: meta.columns,
    slices: meta.slices,
    pixelSpacing: meta.pixelSpacing,
    sliceSpacing: meta.sliceSpacing,
    rowCosines: rowCos,
    columnCosines: colCos,
    normal,
    slicePositions: Array.from({ length: meta.slices }, (_, z) => [p0[0] + normal[0] * z * meta.sliceSpacing, p0[1] + normal[1] * z * meta.sliceSpacing, p0[2] + normal[2] * z * meta.sliceSpacing] as [number, number, number]),
    frameOfReferenceUid: '1.2.826.0.1.3680043.10.1.1',
    warnings: [],
  };
  const src = (s: string) => Array.from({ length: meta.slices }, (_, z) => ({ sopInstanceUid: `1.2.3.${s}.${z + 1}`, sopClassUid: '1.2.840.10008.5.1.4.1.1.4', seriesInstanceUid: `1.2.3.${s}` }));
  const vol = (kind: Volume['kind'], file: string, s: string, bValue?: number): Volume => ({ kind, geometry, data: readU16(path.join(dir, file)), sliceSources: src(s), seriesInstanceUid: `1.2.3.${s}`, bValue });
  const mask = zlib.gunzipSync(fs.readFileSync(path.join(dir, 'mask.u8.gz')));
  return {
    name: path.basename(dir),
    meta,
    dwi: vol('DWI', 'dwi.u16.gz', '1', meta.bValue),
    b0: vol('DWI', 'b0.u16.gz', '2', 0),
    adc: vol('ADC', 'adc.u16.gz', '3'),
    truth: new Uint8Array(mask.buffer, mask.byteOffset, mask.length),
  };
}
