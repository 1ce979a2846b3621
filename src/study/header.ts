/**
 * Header reading: one parsed header an instance (no PixelData) and one FrameInfo a frame, with the
 * per-frame attributes that classification and volume assembly need. Enhanced multi-frame objects
 * are read from their per-frame and shared functional groups; classic objects from the top level.
 * Vendor private tags are found through their private creator, never by a fixed element number.
 */
import * as fs from 'fs';
import { StoredInstance, Vec3 } from '../types';
import { NaturalDataset, num, nums, readPart10, seq, str, strs } from '../dicom/dcmjs';

export interface FrameInfo {
  sopInstanceUid: string;
  sopClassUid: string;
  seriesInstanceUid: string;
  /** 1-based frame number for multi-frame instances, undefined for single-frame ones. */
  frameNumber?: number;
  /** 0-based index into the instance's decoded frames. */
  frameIndex: number;
  instanceNumber: number;
  rows: number;
  columns: number;
  position?: Vec3;
  orientation?: number[];
  pixelSpacing?: [number, number];
  sliceThickness?: number;
  rescaleSlope: number;
  rescaleIntercept: number;
  /** ImageType, or FrameType for enhanced objects, upper case. */
  imageType: string[];
  bValue?: number;
  /** Which tag gave the b-value (for the reasons shown to admins). */
  bValueSource?: string;
  gradient?: Vec3;
  /** ISOTROPIC / DIRECTIONAL / BMATRIX / NONE (DiffusionDirectionality), when sent. */
  directionality?: string;
  acquisitionTime?: string;
  /** Siemens mosaic: this frame is tile `index` of a tilesPerRow x tilesPerRow mosaic image. */
  mosaic?: { index: number; tilesPerRow: number; mosaicColumns: number };
}

export interface InstanceHeader {
  instance: StoredInstance;
  transferSyntaxUid: string;
  /** The dataset without PixelData. */
  ds: NaturalDataset;
  frames: FrameInfo[];
  /** Why the header could not be used, when it could not. */
  error?: string;
}

// ---------- private tags ----------

/** ArrayBuffer test that also holds across realms (jest sandboxes, worker threads). */
function isArrayBuffer(v: unknown): v is ArrayBuffer {
  return v instanceof ArrayBuffer || Object.prototype.toString.call(v) === '[object ArrayBuffer]';
}

function asText(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (isArrayBuffer(v)) return Buffer.from(v).toString('latin1').replace(/\0+$/, '').trim();
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1').trim();
  if (Array.isArray(v)) return v.map((x) => asText(x) ?? '').join('\\');
  return String(v).trim();
}

/** Raw value of private element (group, creator, low byte), found through its private creator block. */
export function privateRaw(ds: NaturalDataset, group: number, creator: string, elementLow: number): unknown {
  const g = group.toString(16).toUpperCase().padStart(4, '0');
  for (let block = 0x10; block <= 0xff; block++) {
    const key = g + block.toString(16).toUpperCase().padStart(4, '0');
    const c = asText(ds[key]);
    if (c === undefined) continue;
    if (c.toUpperCase() === creator.toUpperCase()) {
      const ek = g + block.toString(16).toUpperCase().padStart(2, '0') + elementLow.toString(16).toUpperCase().padStart(2, '0');
      return ds[ek];
    }
  }
  return undefined;
}

/** Private element as numbers (handles IS/DS/FL read with an explicit VR and UN read as bytes). */
export function privateNums(ds: NaturalDataset, group: number, creator: string, elementLow: number, binaryFloat = false): number[] {
  const v = privateRaw(ds, group, creator, elementLow);
  if (v === undefined || v === null) return [];
  const first = Array.isArray(v) ? v[0] : v;
  if (isArrayBuffer(first) && binaryFloat) {
    const n = Math.floor(first.byteLength / 4);
    const dv = new DataView(first);
    return Array.from({ length: n }, (_, i) => dv.getFloat32(i * 4, true));
  }
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
  const t = asText(v);
  if (!t) return [];
  return t
    .split('\\')
    .map((x) => Number(x.trim()))
    .filter((x) => Number.isFinite(x));
}

// ---------- Siemens CSA header (SV10) ----------

/** Parse a Siemens CSA header (format SV10 or the older unversioned one) into name → string values. */
export function parseCsa(v: unknown): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const first = Array.isArray(v) ? v[0] : v;
  if (!isArrayBuffer(first)) return out;
  const b = Buffer.from(first);
  if (b.length < 16) return out;
  let p = 0;
  if (b.toString('latin1', 0, 4) === 'SV10') p = 8;
  const nTags = b.readUInt32LE(p);
  p += 8;
  if (nTags < 1 || nTags > 1000) return out;
  for (let t = 0; t < nTags && p + 84 <= b.length; t++) {
    const name = b.toString('latin1', p, p + 64).split('\0')[0];
    const nItems = b.readInt32LE(p + 76);
    p += 84;
    const values: string[] = [];
    for (let i = 0; i < nItems && p + 16 <= b.length; i++) {
      const len = b.readInt32LE(p + 4);
      p += 16;
      if (len < 0 || p + len > b.length) return out;
      const s = b.toString('latin1', p, p + len).split('\0')[0].trim();
      if (s !== '') values.push(s);
      p += Math.ceil(len / 4) * 4;
    }
    out.set(name, values);
  }
  return out;
}

// ---------- functional groups ----------

function fgItem(ds: NaturalDataset, frameIdx: number, seqName: string): NaturalDataset | undefined {
  const pf = seq(ds, 'PerFrameFunctionalGroupsSequence')[frameIdx];
  const a = pf ? seq(pf, seqName)[0] : undefined;
  if (a) return a;
  const sh = seq(ds, 'SharedFunctionalGroupsSequence')[0];
  return sh ? seq(sh, seqName)[0] : undefined;
}

function vec3(a: number[]): Vec3 | undefined {
  return a.length >= 3 && a.slice(0, 3).every((x) => Number.isFinite(x)) ? [a[0], a[1], a[2]] : undefined;
}

export function isMultiFrameFunctional(ds: NaturalDataset): boolean {
  return seq(ds, 'PerFrameFunctionalGroupsSequence').length > 0;
}

/** GE stores b in (0043,1039)[0], sometimes offset by 1e9 (or multiples) as a flag. */
export function geBValue(raw: number): number {
  return raw >= 1e9 ? raw % 1e9 : raw;
}

interface DiffusionAttrs {
  bValue?: number;
  bValueSource?: string;
  gradient?: Vec3;
  directionality?: string;
}

function classicDiffusion(ds: NaturalDataset): DiffusionAttrs {
  const out: DiffusionAttrs = {};
  const b = num(ds, 'DiffusionBValue');
  if (b !== undefined) {
    out.bValue = b;
    out.bValueSource = 'DiffusionBValue (0018,9087)';
  }
  const dir = ds.DiffusionDirectionality;
  if (dir !== undefined) out.directionality = str(ds, 'DiffusionDirectionality');
  const g = vec3(nums(ds, 'DiffusionGradientOrientation'));
  if (g) out.gradient = g;
  const dgs = seq(ds, 'DiffusionGradientDirectionSequence')[0];
  if (!out.gradient && dgs) out.gradient = vec3(nums(dgs, 'DiffusionGradientOrientation'));
  const manufacturer = (str(ds, 'Manufacturer') ?? '').toUpperCase();

  // GE: (0043,1039) "GEMS_PARM_01" first value = b (with the 1e9 flag quirk); gradient (0019,10BB..BD).
  if (out.bValue === undefined || manufacturer.includes('GE')) {
    const ge = privateNums(ds, 0x0043, 'GEMS_PARM_01', 0x39);
    if (ge.length > 0 && out.bValue === undefined) {
      out.bValue = geBValue(ge[0]);
      out.bValueSource = 'GE private (0043,1039)[0]';
    }
    if (!out.gradient) {
      const x = privateNums(ds, 0x0019, 'GEMS_ACQU_01', 0xbb)[0];
      const y = privateNums(ds, 0x0019, 'GEMS_ACQU_01', 0xbc)[0];
      const z = privateNums(ds, 0x0019, 'GEMS_ACQU_01', 0xbd)[0];
      if ([x, y, z].every((q) => q !== undefined && Number.isFinite(q))) out.gradient = [x, y, z];
    }
  }
  // Siemens classic: (0019,100C) "SIEMENS MR HEADER" B_value, (0019,100E) gradient; else CSA B_value.
  if (out.bValue === undefined) {
    const s = privateNums(ds, 0x0019, 'SIEMENS MR HEADER', 0x0c);
    if (s.length > 0) {
      out.bValue = s[0];
      out.bValueSource = 'Siemens private (0019,100C) B_value';
      if (!out.gradient) out.gradient = vec3(privateNums(ds, 0x0019, 'SIEMENS MR HEADER', 0x0e, true));
    }
  }
  if (out.bValue === undefined) {
    const csa = parseCsa(privateRaw(ds, 0x0029, 'SIEMENS CSA HEADER', 0x10));
    const bv = csa.get('B_value');
    if (bv && bv.length > 0 && Number.isFinite(Number(bv[0]))) {
      out.bValue = Number(bv[0]);
      out.bValueSource = 'Siemens CSA image header B_value';
      const gd = csa.get('DiffusionGradientDirection');
      if (!out.gradient && gd && gd.length >= 3) out.gradient = vec3(gd.map(Number));
    }
  }
  // Philips: (2001,1003) "Philips Imaging DD 001" FL b-value.
  if (out.bValue === undefined) {
    const ph = privateNums(ds, 0x2001, 'Philips Imaging DD 001', 0x03, true);
    if (ph.length > 0) {
      out.bValue = ph[0];
      out.bValueSource = 'Philips private (2001,1003)';
    }
  }
  return out;
}

/**
 * Siemens mosaic (classic single-frame, ImageType ...\\MOSAIC): NumberOfImagesInMosaic tiles in a
 * ceil(sqrt(n)) square. ImagePositionPatient refers to the whole mosaic: the first tile's corner is
 * IPP + rowCos·(Cm−Ct)/2·Δc + colCos·(Rm−Rt)/2·Δr; tiles follow the CSA SliceNormalVector at
 * SpacingBetweenSlices (as dcm2niix and nibabel do). Frames that cannot be untiled are returned as
 * one frame flagged by an impossible geometry (no position), so the stack is rejected with a reason.
 */
function mosaicFrames(ds: NaturalDataset, base: FrameInfo): FrameInfo[] {
  const csa = parseCsa(privateRaw(ds, 0x0029, 'SIEMENS CSA HEADER', 0x10));
  const nCsa = Number((csa.get('NumberOfImagesInMosaic') ?? [])[0]);
  const nPriv = privateNums(ds, 0x0019, 'SIEMENS MR HEADER', 0x0a)[0];
  const n = Number.isFinite(nCsa) && nCsa > 0 ? nCsa : nPriv;
  const o = base.orientation ?? [];
  const ps = base.pixelSpacing;
  if (!n || n < 1 || !base.position || o.length < 6 || !ps) return [{ ...base, position: undefined }];
  const tiles = Math.ceil(Math.sqrt(n));
  const tr = base.rows / tiles;
  const tc = base.columns / tiles;
  if (!Number.isInteger(tr) || !Number.isInteger(tc)) return [{ ...base, position: undefined }];
  const rc: Vec3 = [o[0], o[1], o[2]];
  const cc: Vec3 = [o[3], o[4], o[5]];
  const dx = ((base.columns - tc) / 2) * ps[1];
  const dy = ((base.rows - tr) / 2) * ps[0];
  const p0: Vec3 = [0, 1, 2].map((i) => (base.position as Vec3)[i] + rc[i] * dx + cc[i] * dy) as Vec3;
  const snv = (csa.get('SliceNormalVector') ?? []).map(Number);
  const normal: Vec3 =
    snv.length >= 3 && snv.every((x) => Number.isFinite(x))
      ? [snv[0], snv[1], snv[2]]
      : [rc[1] * cc[2] - rc[2] * cc[1], rc[2] * cc[0] - rc[0] * cc[2], rc[0] * cc[1] - rc[1] * cc[0]];
  const spacing = num(ds, 'SpacingBetweenSlices') ?? base.sliceThickness ?? 0;
  return Array.from({ length: n }, (_, k) => ({
    ...base,
    rows: tr,
    columns: tc,
    position: [0, 1, 2].map((i) => p0[i] + k * spacing * normal[i]) as Vec3,
    mosaic: { index: k, tilesPerRow: tiles, mosaicColumns: base.columns },
  }));
}

/** Frames of one instance from its parsed dataset (exported for tests and re-use). */
export function instanceFrames(inst: StoredInstance, ds: NaturalDataset): FrameInfo[] {
  const sopInstanceUid = str(ds, 'SOPInstanceUID') ?? inst.sopInstanceUid;
  const sopClassUid = str(ds, 'SOPClassUID') ?? inst.sopClassUid;
  const seriesInstanceUid = str(ds, 'SeriesInstanceUID') ?? inst.seriesInstanceUid;
  const rows = num(ds, 'Rows') ?? 0;
  const columns = num(ds, 'Columns') ?? 0;
  const instanceNumber = num(ds, 'InstanceNumber') ?? 0;
  const nFrames = Math.max(1, num(ds, 'NumberOfFrames') ?? 1);
  const topImageType = strs(ds, 'ImageType').map((x) => x.toUpperCase());

  if (!isMultiFrameFunctional(ds)) {
    const base: FrameInfo = {
      sopInstanceUid,
      sopClassUid,
      seriesInstanceUid,
      frameIndex: 0,
      instanceNumber,
      rows,
      columns,
      position: vec3(nums(ds, 'ImagePositionPatient')),
      orientation: nums(ds, 'ImageOrientationPatient'),
      pixelSpacing: ((): [number, number] | undefined => {
        const ps = nums(ds, 'PixelSpacing');
        return ps.length >= 2 ? [ps[0], ps[1]] : undefined;
      })(),
      sliceThickness: num(ds, 'SliceThickness'),
      rescaleSlope: num(ds, 'RescaleSlope') ?? 1,
      rescaleIntercept: num(ds, 'RescaleIntercept') ?? 0,
      imageType: topImageType,
      acquisitionTime: str(ds, 'AcquisitionTime'),
      ...classicDiffusion(ds),
    };
    if (nFrames === 1 && topImageType.includes('MOSAIC')) return mosaicFrames(ds, base);
    if (nFrames === 1) return [base];
    // Classic multi-frame without functional groups: frames share the geometry (no positions a frame).
    return Array.from({ length: nFrames }, (_, i) => ({ ...base, frameIndex: i, frameNumber: i + 1 }));
  }

  const frames: FrameInfo[] = [];
  for (let i = 0; i < nFrames; i++) {
    const pos = fgItem(ds, i, 'PlanePositionSequence');
    const ori = fgItem(ds, i, 'PlaneOrientationSequence');
    const pm = fgItem(ds, i, 'PixelMeasuresSequence');
    const pvt = fgItem(ds, i, 'PixelValueTransformationSequence');
    const diff = fgItem(ds, i, 'MRDiffusionSequence');
    const ft =
      fgItem(ds, i, 'MRImageFrameTypeSequence') ?? fgItem(ds, i, 'CTImageFrameTypeSequence') ?? fgItem(ds, i, 'FrameTypeSequence');
    const fc = fgItem(ds, i, 'FrameContentSequence');
    const ps = pm ? nums(pm, 'PixelSpacing') : [];
    const d: DiffusionAttrs = {};
    if (diff) {
      const b = num(diff, 'DiffusionBValue');
      if (b !== undefined) {
        d.bValue = b;
        d.bValueSource = 'MRDiffusionSequence DiffusionBValue (0018,9087) per frame';
      }
      d.directionality = str(diff, 'DiffusionDirectionality');
      const dg = seq(diff, 'DiffusionGradientDirectionSequence')[0];
      if (dg) d.gradient = vec3(nums(dg, 'DiffusionGradientOrientation'));
    }
    const frameType = ft ? strs(ft, 'FrameType').map((x) => x.toUpperCase()) : [];
    frames.push({
      sopInstanceUid,
      sopClassUid,
      seriesInstanceUid,
      frameIndex: i,
      frameNumber: i + 1,
      instanceNumber,
      rows,
      columns,
      position: pos ? vec3(nums(pos, 'ImagePositionPatient')) : undefined,
      orientation: ori ? nums(ori, 'ImageOrientationPatient') : undefined,
      pixelSpacing: ps.length >= 2 ? [ps[0], ps[1]] : undefined,
      sliceThickness: pm ? num(pm, 'SliceThickness') : undefined,
      rescaleSlope: (pvt ? num(pvt, 'RescaleSlope') : undefined) ?? num(ds, 'RescaleSlope') ?? 1,
      rescaleIntercept: (pvt ? num(pvt, 'RescaleIntercept') : undefined) ?? num(ds, 'RescaleIntercept') ?? 0,
      imageType: frameType.length ? frameType : topImageType,
      acquisitionTime: fc ? str(fc, 'FrameAcquisitionDateTime') : undefined,
      ...d,
    });
  }
  return frames;
}

/** Read one instance's header (stops before PixelData). Never throws: errors are returned. */
export function readHeader(inst: StoredInstance): InstanceHeader {
  try {
    const buf = fs.readFileSync(inst.path);
    const p = readPart10(buf, { untilPixelData: true });
    const ds = p.dataset;
    delete ds.PixelData;
    return { instance: inst, transferSyntaxUid: p.transferSyntaxUid || inst.transferSyntaxUid, ds, frames: instanceFrames(inst, ds) };
  } catch (e) {
    return {
      instance: inst,
      transferSyntaxUid: inst.transferSyntaxUid,
      ds: {},
      frames: [],
      error: `unreadable instance: ${(e as Error).message}`,
    };
  }
}
