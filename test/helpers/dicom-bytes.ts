/**
 * Hand-made DICOM bytes for hostile-input tests (Explicit VR Little Endian): well-formed elements,
 * and the malformed shapes a hostile or broken sender produces (deep nesting, huge declared
 * lengths, truncation, trailing garbage). No library in between, so the bytes are exactly these.
 */
import * as crypto from 'crypto';

const LONG = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT', 'SV', 'UV']);
export const EXPLICIT_LE = '1.2.840.10008.1.2.1';
export const CT_IMAGE = '1.2.840.10008.5.1.4.1.1.2';
export const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';

function tagBytes(tag: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(tag >>> 16, 0);
  b.writeUInt16LE(tag & 0xffff, 2);
  return b;
}

/** One Explicit VR LE element (value padded to even length: UI with NUL, text with space). */
export function el(tag: number, vr: string, value: Buffer | string | number, len?: number): Buffer {
  let v: Buffer;
  if (typeof value === 'number') {
    v = Buffer.alloc(vr === 'UL' ? 4 : 2);
    if (vr === 'UL') v.writeUInt32LE(value, 0);
    else v.writeUInt16LE(value, 0);
  } else if (typeof value === 'string') {
    v = Buffer.from(value, 'latin1');
    if (v.length & 1) v = Buffer.concat([v, Buffer.from([vr === 'UI' ? 0 : 0x20])]);
  } else v = value.length & 1 ? Buffer.concat([value, Buffer.alloc(1)]) : value;
  const n = len ?? v.length;
  if (LONG.has(vr)) {
    const h = Buffer.alloc(8);
    h.write(vr, 0, 'latin1');
    h.writeUInt32LE(n >>> 0, 4);
    return Buffer.concat([tagBytes(tag), h, v]);
  }
  const h = Buffer.alloc(4);
  h.write(vr, 0, 'latin1');
  h.writeUInt16LE(n, 2);
  return Buffer.concat([tagBytes(tag), h, v]);
}

/** A sequence of undefined length holding these items (each an undefined-length item). */
export function seqUndefined(tag: number, items: Buffer[]): Buffer {
  const parts = [tagBytes(tag), Buffer.from('SQ\0\0', 'latin1'), Buffer.from([0xff, 0xff, 0xff, 0xff])];
  for (const it of items) parts.push(Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]), it, Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0]));
  parts.push(Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]));
  return Buffer.concat(parts);
}

/** A sequence of defined length holding defined-length items. */
export function seqDefined(tag: number, items: Buffer[]): Buffer {
  const body = Buffer.concat(
    items.map((it) => {
      const h = Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0, 0, 0, 0]);
      h.writeUInt32LE(it.length, 4);
      return Buffer.concat([h, it]);
    }),
  );
  return el(tag, 'SQ', body);
}

/** `depth` undefined-length sequences, each inside the previous one's only item. */
export function nestedSequences(depth: number, tag = 0x00081140): Buffer {
  const open = Buffer.concat([tagBytes(tag), Buffer.from('SQ\0\0', 'latin1'), Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff])]);
  const close = Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0, 0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
  const parts: Buffer[] = [];
  for (let i = 0; i < depth; i++) parts.push(open);
  for (let i = 0; i < depth; i++) parts.push(close);
  return Buffer.concat(parts);
}

export const newUid = (): string => `2.25.${BigInt('0x' + crypto.randomBytes(15).toString('hex')).toString()}`;

export interface ImageSpec {
  sopClassUid?: string;
  sopInstanceUid?: string;
  studyUid?: string;
  seriesUid?: string;
  rows?: number;
  columns?: number;
  /** Elements placed before StudyInstanceUID (sorted by the caller: tags between (0008,0018) and (0020,000D)). */
  beforeUids?: Buffer[];
  /** Declared PixelData length (default: the real length). */
  pixelLength?: number;
  /** Pixel bytes actually sent (default rows × columns × 2). */
  pixels?: Buffer;
}

/** A small, valid 16-bit monochrome image data set (no file meta). */
export function imageDataset(s: ImageSpec = {}): { dataset: Buffer; sopInstanceUid: string; sopClassUid: string; seriesUid: string } {
  const rows = s.rows ?? 16;
  const columns = s.columns ?? 16;
  const sopInstanceUid = s.sopInstanceUid ?? newUid();
  const sopClassUid = s.sopClassUid ?? SECONDARY_CAPTURE;
  const seriesUid = s.seriesUid ?? newUid();
  const pixels = s.pixels ?? Buffer.alloc(rows * columns * 2, 7);
  const dataset = Buffer.concat([
    el(0x00080016, 'UI', sopClassUid),
    el(0x00080018, 'UI', sopInstanceUid),
    el(0x00080060, 'CS', 'OT'),
    el(0x00100020, 'LO', 'HOSTILE-TEST'),
    ...(s.beforeUids ?? []),
    el(0x0020000d, 'UI', s.studyUid ?? newUid()),
    el(0x0020000e, 'UI', seriesUid),
    el(0x00200011, 'IS', '1'),
    el(0x00280002, 'US', 1),
    el(0x00280004, 'CS', 'MONOCHROME2'),
    el(0x00280010, 'US', rows),
    el(0x00280011, 'US', columns),
    el(0x00280100, 'US', 16),
    el(0x00280101, 'US', 16),
    el(0x00280102, 'US', 15),
    el(0x00280103, 'US', 0),
    el(0x7fe00010, 'OW', pixels, s.pixelLength),
  ]);
  return { dataset, sopInstanceUid, sopClassUid, seriesUid };
}

/** Preamble, DICM and file meta (Explicit VR LE) in front of a data set. */
export function part10(dataset: Buffer, m: { sopClassUid: string; sopInstanceUid: string; transferSyntaxUid?: string }): Buffer {
  const body = Buffer.concat([
    el(0x00020001, 'OB', Buffer.from([0, 1])),
    el(0x00020002, 'UI', m.sopClassUid),
    el(0x00020003, 'UI', m.sopInstanceUid),
    el(0x00020010, 'UI', m.transferSyntaxUid ?? EXPLICIT_LE),
    el(0x00020012, 'UI', '1.2.3.4'),
  ]);
  const head = Buffer.alloc(132);
  head.write('DICM', 128, 'latin1');
  return Buffer.concat([head, el(0x00020000, 'UL', body.length), body, dataset]);
}

/** A whole valid Part 10 image. */
export function imageFile(s: ImageSpec = {}): { file: Buffer; dataset: Buffer; sopInstanceUid: string; sopClassUid: string; seriesUid: string } {
  const d = imageDataset(s);
  return { ...d, file: part10(d.dataset, d) };
}
