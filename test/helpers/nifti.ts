/**
 * Test helper: a minimal NIfTI-1 reader (.nii or .nii.gz, single file "n+1"), enough for the BraTS
 * cases in ../shared/data/brats2018: header fields, the voxel-to-RAS affine (sform when
 * sform_code > 0, else qform from the quaternion, else pixdim scaling, as the NIfTI-1 standard
 * orders them), and the voxels as Float32 with scl_slope/scl_inter applied.
 *
 * Voxel order: i fastest, then j, then k: value(i, j, k) = data[(k * ny + j) * nx + i].
 * NIfTI world coordinates are RAS+ (x to the patient's Right→Left is -x); DICOM is LPS: see `rasToLps`.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as zlib from 'zlib';

export type Mat4 = [number[], number[], number[], number[]];

export interface Nifti {
  /** Dimensions nx, ny, nz (dim[1..3]); dim[4] > 1 is refused. */
  dims: [number, number, number];
  /** pixdim[1..3], mm. */
  pixdim: [number, number, number];
  datatype: number;
  qformCode: number;
  sformCode: number;
  /** Voxel index (i, j, k, 1) → RAS mm, row-major 4x4. */
  affine: Mat4;
  /** Values after scl_slope/scl_inter. */
  data: Float32Array;
}

const DATATYPES: Record<number, { bytes: number; read: (b: Buffer, o: number, le: boolean) => number }> = {
  2: { bytes: 1, read: (b, o) => b.readUInt8(o) },
  4: { bytes: 2, read: (b, o, le) => (le ? b.readInt16LE(o) : b.readInt16BE(o)) },
  8: { bytes: 4, read: (b, o, le) => (le ? b.readInt32LE(o) : b.readInt32BE(o)) },
  16: { bytes: 4, read: (b, o, le) => (le ? b.readFloatLE(o) : b.readFloatBE(o)) },
  64: { bytes: 8, read: (b, o, le) => (le ? b.readDoubleLE(o) : b.readDoubleBE(o)) },
  256: { bytes: 1, read: (b, o) => b.readInt8(o) },
  512: { bytes: 2, read: (b, o, le) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o)) },
  768: { bytes: 4, read: (b, o, le) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o)) },
};

type TypedCtor = new (buffer: ArrayBuffer, byteOffset: number, length: number) => ArrayLike<number>;
const TYPED: Record<number, TypedCtor> = {
  2: Uint8Array,
  4: Int16Array,
  8: Int32Array,
  16: Float32Array,
  64: Float64Array,
  256: Int8Array,
  512: Uint16Array,
  768: Uint32Array,
};

/** Parse a NIfTI-1 file already in memory (gzip detected by its magic bytes). */
export function parseNifti(raw: Buffer): Nifti {
  const buf = raw[0] === 0x1f && raw[1] === 0x8b ? zlib.gunzipSync(raw) : raw;
  if (buf.length < 348) throw new Error('NIfTI: shorter than its 348-byte header');
  let le = true;
  if (buf.readInt32LE(0) !== 348) {
    if (buf.readInt32BE(0) !== 348) throw new Error('NIfTI: sizeof_hdr is not 348 (not NIfTI-1)');
    le = false;
  }
  const i16 = (o: number): number => (le ? buf.readInt16LE(o) : buf.readInt16BE(o));
  const f32 = (o: number): number => (le ? buf.readFloatLE(o) : buf.readFloatBE(o));
  const magic = buf.toString('latin1', 344, 347);
  if (magic !== 'n+1') throw new Error(`NIfTI: magic "${magic}" (only single-file n+1 is read)`);
  const ndim = i16(40);
  const dims: [number, number, number] = [i16(42), i16(44), ndim >= 3 ? i16(46) : 1];
  if (ndim > 3 && i16(48) > 1) throw new Error('NIfTI: 4-D volumes are not read');
  const datatype = i16(70);
  const dt = DATATYPES[datatype];
  if (!dt) throw new Error(`NIfTI: datatype ${datatype} not supported`);
  const qfacRaw = f32(76);
  const pixdim: [number, number, number] = [f32(80), f32(84), f32(88)];
  const voxOffset = Math.max(352, Math.round(f32(108)));
  const slope = f32(112);
  const inter = f32(116);
  const qformCode = i16(252);
  const sformCode = i16(254);

  let affine: Mat4;
  if (sformCode > 0) {
    affine = [
      [f32(280), f32(284), f32(288), f32(292)],
      [f32(296), f32(300), f32(304), f32(308)],
      [f32(312), f32(316), f32(320), f32(324)],
      [0, 0, 0, 1],
    ];
  } else if (qformCode > 0) {
    const b = f32(256);
    const c = f32(260);
    const d = f32(264);
    const a = Math.sqrt(Math.max(0, 1 - (b * b + c * c + d * d)));
    const qfac = qfacRaw < 0 ? -1 : 1;
    const R = [
      [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
      [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
      [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
    ];
    const s = [pixdim[0], pixdim[1], pixdim[2] * qfac];
    affine = [
      [R[0][0] * s[0], R[0][1] * s[1], R[0][2] * s[2], f32(268)],
      [R[1][0] * s[0], R[1][1] * s[1], R[1][2] * s[2], f32(272)],
      [R[2][0] * s[0], R[2][1] * s[1], R[2][2] * s[2], f32(276)],
      [0, 0, 0, 1],
    ];
  } else {
    affine = [
      [pixdim[0], 0, 0, 0],
      [0, pixdim[1], 0, 0],
      [0, 0, pixdim[2], 0],
      [0, 0, 0, 1],
    ];
  }

  const n = dims[0] * dims[1] * dims[2];
  if (buf.length < voxOffset + n * dt.bytes) throw new Error(`NIfTI: ${buf.length} bytes, the voxels need ${voxOffset + n * dt.bytes}`);
  const data = new Float32Array(n);
  const scale = Number.isFinite(slope) && slope !== 0;
  const typed = le && os.endianness() === 'LE' ? TYPED[datatype] : undefined;
  if (typed) {
    // fast path: a view over an aligned copy of the voxel bytes (host and file both little-endian)
    const bytes = new Uint8Array(buf.buffer, buf.byteOffset + voxOffset, n * dt.bytes).slice();
    data.set(new typed(bytes.buffer, 0, n));
  } else {
    for (let v = 0; v < n; v++) data[v] = dt.read(buf, voxOffset + v * dt.bytes, le);
  }
  if (scale) {
    const b = Number.isFinite(inter) ? inter : 0;
    for (let v = 0; v < n; v++) data[v] = data[v] * slope + b;
  }
  return { dims, pixdim, datatype, qformCode, sformCode, affine, data };
}

export function readNifti(file: string): Nifti {
  return parseNifti(fs.readFileSync(file));
}

/** Voxel (i, j, k) → RAS mm. */
export function voxelToRas(n: Pick<Nifti, 'affine'>, i: number, j: number, k: number): [number, number, number] {
  const A = n.affine;
  return [0, 1, 2].map((r) => A[r][0] * i + A[r][1] * j + A[r][2] * k + A[r][3]) as [number, number, number];
}

/** RAS+ (NIfTI) ↔ LPS (DICOM): negate x and y. */
export function rasToLps(p: [number, number, number]): [number, number, number] {
  return [-p[0], -p[1], p[2]];
}
