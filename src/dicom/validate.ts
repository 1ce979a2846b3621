/**
 * Structural check of a received Part 10 instance, fed its bytes as they arrive (both transports),
 * before anything is acknowledged (issue 18: "nothing malformed acknowledged").
 *
 * It walks every element header, never building a dataset, in time linear in the number of bytes
 * and in memory bounded by a few small values (values themselves are skipped, not buffered), so a
 * hostile sender cannot make it slow: no recursion (an explicit stack), nesting depth and element
 * count bounded by `limits`. It accepts an instance only if:
 *  - it starts with the 128-byte preamble, "DICM" and a file meta group (0002) naming a transfer syntax;
 *  - every element has a known VR (explicit syntaxes), lies inside the sequence or item around it,
 *    and the file ends exactly at the end of the last element (no truncation, no trailing garbage:
 *    a group 0000 or 0002 element in the data set is refused);
 *  - every sequence and item is closed (undefined lengths end with their delimiters);
 *  - uncompressed PixelData holds at least Rows × Columns × SamplesPerPixel × NumberOfFrames ×
 *    BitsAllocated / 8 bytes; encapsulated PixelData is a sequence of defined-length fragments (a
 *    Basic Offset Table item and at least one fragment) closed by a sequence delimiter;
 *  - it stays within the size, depth and element limits.
 *
 * Sequences in Implicit VR are recognised without a dictionary: a value of undefined length, or
 * one whose first four bytes are an Item tag, is walked as a sequence (so its depth counts too).
 *
 * `headerBytes` tells the store how far into the file the index attributes lie (every top-level
 * element up to (0020,0011)), so the header is read exactly that far, however long it is.
 */
import * as fs from 'fs';
import * as zlib from 'zlib';

export interface InstanceLimits {
  maxInstanceBytes: number;
  maxSequenceDepth: number;
  maxElements: number;
}

export const DEFAULT_INSTANCE_LIMITS: InstanceLimits = { maxInstanceBytes: 2048 * 1024 * 1024, maxSequenceDepth: 32, maxElements: 1_000_000 };

export type ValidationResult = { ok: true; headerBytes: number; transferSyntaxUid: string } | { ok: false; error: string };

const UNDEFINED = 0xffffffff;
const ITEM = 0xfffee000;
const ITEM_END = 0xfffee00d;
const SEQ_END = 0xfffee0dd;
const PIXEL_DATA = 0x7fe00010;
const LAST_INDEXED_TAG = 0x00200011;

const IMPLICIT_LE = '1.2.840.10008.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const EXPLICIT_BE = '1.2.840.10008.1.2.2';
const DEFLATED = new Set(['1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.8.1']);
/** Transfer syntaxes whose PixelData is native (not encapsulated). */
const NATIVE = new Set([IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, ...DEFLATED]);

/** Storage SOP classes that are images: an instance of one without pixel data is refused (a file cut short before it). */
const IMAGE_CLASSES = new Set(
  [
    '1', '1.1', '1.1.1', '1.1.2', '1.1.2.1', '1.1.3', '1.2', '1.2.1', '1.2.2', '1.2.1.1', '1.3', '1.3.1', // CR, DX, MG, IO
    '2', '2.1', '2.2', // CT, enhanced CT, legacy converted enhanced CT
    '3.1', '6.1', '6.2', // US
    '4', '4.1', '4.4', // MR, enhanced MR, legacy converted enhanced MR
    '7', '7.1', '7.2', '7.3', '7.4', // secondary capture, multi-frame SC
    '12.1', '12.1.1', '12.2', '12.2.1', // XA, XRF
    '20', '128', '128.1', '130', // NM, PET, legacy converted PET, enhanced PET
    '66.4', '481.1', // segmentation, RT image
  ].map((s) => `1.2.840.10008.5.1.4.1.1.${s}`),
);

const VRS = new Set('AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV'.split(' '));
/** Explicit-VR VRs with a 2-byte reserved field and a 4-byte length (PS3.5 §7.1.2). */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT', 'SV', 'UV']);

/** Top-level attributes whose values the pixel data check needs. */
const CAPTURED = new Map<number, string>([
  [0x00080016, 'SOPClassUID'],
  [0x00280002, 'SamplesPerPixel'],
  [0x00280004, 'PhotometricInterpretation'],
  [0x00280008, 'NumberOfFrames'],
  [0x00280010, 'Rows'],
  [0x00280011, 'Columns'],
  [0x00280100, 'BitsAllocated'],
]);

export function tagString(tag: number): string {
  const h = (tag >>> 0).toString(16).toUpperCase().padStart(8, '0');
  return `(${h.slice(0, 4)},${h.slice(4)})`;
}

class Invalid extends Error {}

interface Frame {
  kind: 'dataset' | 'item' | 'sequence' | 'fragments';
  /** Absolute offset where a defined-length container ends. */
  end?: number;
  /** The innermost defined end around (or at) this frame: nothing inside may pass it. */
  limit?: number;
  explicit: boolean;
  /** The tag that opened it (sequence / pixel data), for messages. */
  tag: number;
  fragments: number;
}

type Step = (b: Buffer) => void;

/**
 * Push-based validator: `push()` each chunk of the file in order, then `end()`. After the first
 * problem every push returns false and `error` says what it was (plain text, no data bytes).
 */
export class InstanceValidator {
  error?: string;
  private pos = 0;
  private received = 0;
  private elements = 0;
  private depth = 0;
  private skip = 0;
  private want = 132;
  private step: Step;
  private acc: Buffer[] = [];
  private accBytes = 0;
  private stack: Frame[] = [];
  private ts = '';
  private bigEndian = false;
  private inMeta = true;
  private headerBytes = 0;
  private sawDataset = false;
  private captured: Record<string, number> = {};
  /** YBR_FULL_422 / YBR_PARTIAL_422 native pixel data: two samples' worth of bytes per pixel, not three. */
  private ybr422 = false;
  private sopClass = '';
  private sawPixelData = false;
  /** The element whose value is being skipped or read (for "truncated inside …" messages). */
  private current?: { tag: number; end: number };
  /** Deflated data set: its compressed bytes, inflated and checked at end(). */
  private deflated?: Buffer[];

  constructor(
    private readonly limits: InstanceLimits = DEFAULT_INSTANCE_LIMITS,
    /** Start inside a data set of this encoding (the inflated body of a deflated file). */
    datasetOnly?: { explicit: boolean },
  ) {
    if (datasetOnly) {
      this.inMeta = false;
      this.ts = EXPLICIT_LE;
      this.stack.push({ kind: 'dataset', explicit: datasetOnly.explicit, tag: 0, fragments: 0 });
      this.want = 8;
      this.step = (b) => this.elementHeader(b);
    } else {
      this.step = (b) => this.preamble(b);
    }
  }

  /** Bytes the caller may skip without reading them (a value being stepped over). */
  get skippable(): number {
    return this.error || this.deflated ? 0 : this.skip;
  }

  /** Step over `n` ≤ skippable bytes without supplying them (a file reader seeking past values). */
  advance(n: number): void {
    if (this.error) return;
    try {
      this.skip -= n;
      this.pos += n;
      this.received += n;
      this.checkSize();
      if (this.skip === 0) this.skipped();
    } catch (e) {
      this.fail(e);
    }
  }

  push(chunk: Buffer): boolean {
    if (this.error) return false;
    try {
      this.received += chunk.length;
      this.checkSize();
      if (this.deflated) {
        this.deflated.push(chunk);
        return true;
      }
      let off = 0;
      while (off < chunk.length) {
        if (this.skip > 0) {
          const n = Math.min(this.skip, chunk.length - off);
          this.skip -= n;
          this.pos += n;
          off += n;
          if (this.skip === 0) this.skipped();
          continue;
        }
        const need = this.want - this.accBytes;
        const n = Math.min(need, chunk.length - off);
        this.acc.push(chunk.subarray(off, off + n));
        this.accBytes += n;
        off += n;
        if (this.accBytes < this.want) break;
        const b = this.acc.length === 1 ? this.acc[0] : Buffer.concat(this.acc);
        this.acc = [];
        this.accBytes = 0;
        this.pos += b.length;
        this.step(b);
        const deflated = this.deflated as Buffer[] | undefined;
        if (deflated) {
          if (off < chunk.length) deflated.push(chunk.subarray(off));
          return true;
        }
      }
      return true;
    } catch (e) {
      this.fail(e);
      return false;
    }
  }

  end(): ValidationResult {
    if (!this.error) {
      try {
        this.finish();
      } catch (e) {
        this.fail(e);
      }
    }
    return this.error ? { ok: false, error: this.error } : { ok: true, headerBytes: this.headerBytes, transferSyntaxUid: this.ts };
  }

  private fail(e: unknown): void {
    this.error = e instanceof Invalid ? e.message : `could not check the data set: ${(e as Error)?.message ?? String(e)}`;
    this.acc = [];
    this.deflated = undefined;
  }

  private checkSize(): void {
    if (this.received > this.limits.maxInstanceBytes) {
      throw new Invalid(`instance larger than limits.maxInstanceMb (${Math.round(this.limits.maxInstanceBytes / (1024 * 1024))} MB)`);
    }
  }

  private finish(): void {
    if (this.deflated) {
      const compressed = Buffer.concat(this.deflated);
      this.deflated = undefined;
      let body: Buffer;
      try {
        body = zlib.inflateRawSync(compressed, { maxOutputLength: Math.max(1, this.limits.maxInstanceBytes - this.pos) });
      } catch (e) {
        throw new Invalid(`deflated data set does not inflate: ${(e as Error).message}`);
      }
      const inner = new InstanceValidator(this.limits, { explicit: true });
      inner.push(body);
      const r = inner.end();
      if (!r.ok) throw new Invalid(r.error);
      this.headerBytes = this.received; // dcmjs inflates the whole data set to read the index
      return;
    }
    if (this.inMeta) {
      if (this.pos < 132) throw new Invalid(`not a readable DICOM Part 10 file: ${this.received} bytes, no 128-byte preamble and DICM prefix`);
      throw new Invalid('the file ends inside its file meta information (no data set)');
    }
    const strayPadding = this.skip === 0 && this.stack.length === 1 && this.acc.every((b) => b.every((x) => x === 0));
    if ((this.skip > 0 || this.accBytes > 0) && !strayPadding) {
      const c = this.current;
      if (c) throw new Invalid(`truncated: element ${tagString(c.tag)} ends at byte ${c.end}, the file at byte ${this.received}`);
      throw new Invalid(`truncated: the file ends inside an element header at byte ${this.received}`);
    }
    const open = this.stack.length > 1 ? this.stack[this.stack.length - 1] : undefined;
    if (open) {
      const what = open.kind === 'fragments' ? 'encapsulated pixel data' : open.kind === 'sequence' ? 'sequence' : 'item of sequence';
      throw new Invalid(`truncated: ${what} ${tagString(open.tag)} is not closed at the end of the file (byte ${this.received})`);
    }
    if (!this.sawDataset) throw new Invalid('no data set after the file meta information');
    if (!this.sawPixelData && (IMAGE_CLASSES.has(this.sopClass) || (this.captured.Rows && this.captured.Columns))) {
      throw new Invalid('an image without PixelData (7FE0,0010): the file ends before its pixels (truncated?)');
    }
  }

  // ---- the steps -------------------------------------------------------------------------------

  private preamble(b: Buffer): void {
    if (b.toString('latin1', 128, 132) !== 'DICM') throw new Invalid('not a readable DICOM Part 10 file: no DICM after the 128-byte preamble');
    this.want = 8;
    this.step = (h) => this.metaHeader(h);
  }

  private metaHeader(b: Buffer): void {
    const group = b.readUInt16LE(0);
    if (group !== 0x0002) {
      this.startDataset(b);
      return;
    }
    const tag = ((group << 16) | b.readUInt16LE(2)) >>> 0;
    const vr = b.toString('latin1', 4, 6);
    if (!VRS.has(vr)) throw new Invalid(`file meta element ${tagString(tag)} has an invalid VR`);
    this.countElement();
    const value = (len: number) => {
      if (len === UNDEFINED) throw new Invalid(`file meta element ${tagString(tag)} has an undefined length`);
      if (tag === 0x00020010) {
        if (len > 64) throw new Invalid('TransferSyntaxUID longer than 64 characters');
        this.readValue(tag, len, (v) => {
          this.ts = v.toString('latin1').replace(/[\0 ]+$/, '').trim();
          this.want = 8;
          this.step = (h) => this.metaHeader(h);
        });
      } else {
        this.skipValue(tag, len, () => {
          this.want = 8;
          this.step = (h) => this.metaHeader(h);
        });
      }
    };
    if (LONG_VRS.has(vr)) {
      this.want = 4;
      this.step = (l) => value(l.readUInt32LE(0));
    } else value(b.readUInt16LE(6));
  }

  private startDataset(firstHeader: Buffer): void {
    this.inMeta = false;
    if (!this.ts) throw new Invalid('file meta information has no TransferSyntaxUID (0002,0010)');
    if (!/^[0-9.]+$/.test(this.ts)) throw new Invalid('TransferSyntaxUID is not a UID');
    if (DEFLATED.has(this.ts)) {
      this.deflated = [firstHeader];
      return;
    }
    this.bigEndian = this.ts === EXPLICIT_BE;
    this.stack.push({ kind: 'dataset', explicit: this.ts !== IMPLICIT_LE, tag: 0, fragments: 0 });
    this.want = 8;
    this.step = (h) => this.elementHeader(h);
    this.elementHeader(firstHeader); // already read (and counted in pos) as a meta header
  }

  private get top(): Frame {
    return this.stack[this.stack.length - 1];
  }

  private u16(b: Buffer, o: number): number {
    return this.bigEndian ? b.readUInt16BE(o) : b.readUInt16LE(o);
  }

  private u32(b: Buffer, o: number, explicit: boolean): number {
    return this.bigEndian && explicit ? b.readUInt32BE(o) : b.readUInt32LE(o);
  }

  private countElement(): void {
    if (++this.elements > this.limits.maxElements) throw new Invalid(`more than limits.maxElements (${this.limits.maxElements}) data elements`);
  }

  /** Close every defined-length container that ends here; refuse one that was overrun. */
  private closeContainers(): void {
    for (;;) {
      const f = this.top;
      if (f.end === undefined || this.pos < f.end) return;
      if (this.pos > f.end) throw new Invalid(`an element runs past the end of ${f.kind === 'item' ? 'an item of' : 'sequence'} ${tagString(f.tag)}`);
      this.pop();
    }
  }

  private pop(): void {
    const f = this.stack.pop()!;
    if (f.kind === 'sequence') this.depth--;
    // a top-level sequence before the last indexed attribute: the header read must reach its end
    if (this.stack.length === 1 && f.tag <= LAST_INDEXED_TAG) this.headerBytes = Math.max(this.headerBytes, this.pos);
    if (f.kind === 'fragments') {
      if (f.tag === PIXEL_DATA && this.stack.length === 1 && f.fragments < 2) {
        throw new Invalid('encapsulated PixelData has no fragment after its Basic Offset Table');
      }
    }
  }

  private open(f: Omit<Frame, 'limit'>): void {
    const parentLimit = this.top?.limit;
    const limit = f.end !== undefined ? f.end : parentLimit;
    if (f.end !== undefined && parentLimit !== undefined && f.end > parentLimit) {
      throw new Invalid(`${f.kind === 'item' ? 'an item of' : 'sequence'} ${tagString(f.tag)} runs past the end of the container around it`);
    }
    if (f.kind === 'sequence' && ++this.depth > this.limits.maxSequenceDepth) {
      throw new Invalid(`sequences nested deeper than limits.maxSequenceDepth (${this.limits.maxSequenceDepth})`);
    }
    this.stack.push({ ...f, limit });
  }

  private nextHeader(): void {
    this.closeContainers();
    this.want = 8;
    const f = this.top;
    this.step = f.kind === 'sequence' ? (h) => this.itemHeader(h) : f.kind === 'fragments' ? (h) => this.fragmentHeader(h) : (h) => this.elementHeader(h);
  }

  private readTag(b: Buffer, explicit: boolean): number {
    const be = this.bigEndian && explicit;
    const g = be ? b.readUInt16BE(0) : b.readUInt16LE(0);
    const e = be ? b.readUInt16BE(2) : b.readUInt16LE(2);
    return ((g << 16) | e) >>> 0;
  }

  private elementHeader(b: Buffer): void {
    const f = this.top;
    const explicit = f.explicit;
    const tag = this.readTag(b, explicit);
    const start = this.pos - 8;
    if (tag === ITEM_END) {
      if (f.kind !== 'item' || f.end !== undefined) throw new Invalid(`item delimiter outside an undefined-length item at byte ${start}`);
      this.countElement();
      this.stack.pop();
      this.nextHeader();
      return;
    }
    if (tag === ITEM || tag === SEQ_END) throw new Invalid(`${tag === ITEM ? 'item' : 'sequence delimiter'} outside a sequence at byte ${start}`);
    const group = tag >>> 16;
    if (group === 0x0000 || group === 0x0002) {
      throw new Invalid(`element ${tagString(tag)} at byte ${start} cannot be in a data set (${group === 0 ? 'zero bytes or garbage after the data' : 'file meta element'})`);
    }
    this.countElement();
    if (f.kind === 'dataset') this.sawDataset = true;
    if (!explicit) {
      this.element(tag, 'UN?', this.u32(b, 4, false), start);
      return;
    }
    const vr = b.toString('latin1', 4, 6);
    if (!VRS.has(vr)) throw new Invalid(`element ${tagString(tag)} at byte ${start} has an invalid VR`);
    if (LONG_VRS.has(vr)) {
      this.want = 4;
      this.step = (l) => this.element(tag, vr, this.u32(l, 0, true), start);
    } else this.element(tag, vr, this.u16(b, 6), start);
  }

  /** An element's header was read (vr 'UN?' = implicit VR): open a container or take its value. */
  private element(tag: number, vr: string, len: number, start: number): void {
    const f = this.top;
    const topLevel = this.stack.length === 1;
    const implicit = vr === 'UN?';
    if (topLevel && tag <= LAST_INDEXED_TAG && len !== UNDEFINED) this.headerBytes = Math.max(this.headerBytes, this.pos + len);
    if (topLevel && (tag === PIXEL_DATA || tag === 0x7fe00008 || tag === 0x7fe00009)) this.sawPixelData = true;
    if (topLevel && tag === PIXEL_DATA) this.checkPixelData(len);
    if (len === UNDEFINED) {
      if (vr === 'SQ' || implicit && tag !== PIXEL_DATA) {
        this.open({ kind: 'sequence', explicit: f.explicit, tag, fragments: 0 });
      } else if (vr === 'UN') {
        // PS3.5 §6.2.2: UN of undefined length holds Implicit VR Little Endian items.
        this.open({ kind: 'sequence', explicit: false, tag, fragments: 0 });
      } else if (vr === 'OB' || vr === 'OW' || implicit) {
        this.open({ kind: 'fragments', explicit: f.explicit, tag, fragments: 0 });
      } else {
        throw new Invalid(`element ${tagString(tag)} (${vr}) has an undefined length`);
      }
      this.nextHeader();
      return;
    }
    this.checkWithin(tag, len);
    if (vr === 'SQ') {
      this.open({ kind: 'sequence', explicit: f.explicit, tag, end: this.pos + len, fragments: 0 });
      this.nextHeader();
      return;
    }
    if (implicit && len >= 8) {
      // No dictionary here: a value that starts with an Item tag is a sequence.
      this.want = 4;
      this.step = (p) => {
        this.pos -= 4;
        if (p.readUInt32LE(0) === 0xe000fffe) {
          this.open({ kind: 'sequence', explicit: false, tag, end: this.pos + len, fragments: 0 });
          this.nextHeader();
        } else {
          this.takeValue(tag, len);
        }
        this.replay(p);
      };
      return;
    }
    this.takeValue(tag, len);
  }

  /** Feed bytes already consumed back through the current step (after a peek). */
  private replay(p: Buffer): void {
    if (this.skip > 0) {
      const n = Math.min(this.skip, p.length);
      this.skip -= n;
      this.pos += n;
      if (this.skip === 0) this.skipped();
      if (n < p.length) this.replay(p.subarray(n));
      return;
    }
    this.acc.push(p);
    this.accBytes += p.length;
    if (this.accBytes >= this.want) {
      const all = Buffer.concat(this.acc);
      this.acc = [];
      this.accBytes = 0;
      const use = all.subarray(0, this.want);
      const rest = all.subarray(this.want);
      this.pos += use.length;
      this.step(use);
      if (rest.length) this.replay(rest);
    }
  }

  private checkWithin(tag: number, len: number): void {
    const limit = this.top.limit;
    if (limit !== undefined && this.pos + len > limit) {
      throw new Invalid(`element ${tagString(tag)} (${len} bytes) runs past the end of the sequence or item around it`);
    }
  }

  private takeValue(tag: number, len: number): void {
    const name = this.stack.length === 1 ? CAPTURED.get(tag) : undefined;
    if (name && len <= 64) {
      this.readValue(tag, len, (v) => {
        this.capture(name, v);
        this.afterValue();
      });
      return;
    }
    this.skipValue(tag, len, () => this.afterValue());
  }

  private capture(name: string, v: Buffer): void {
    if (name === 'SOPClassUID') {
      this.sopClass = v.toString('latin1').replace(/[\0 ]+$/, '');
    } else if (name === 'PhotometricInterpretation') {
      this.ybr422 = /^YBR_(FULL|PARTIAL)_422/.test(v.toString('latin1').trim());
    } else if (name === 'NumberOfFrames') {
      const n = parseInt(v.toString('latin1').replace(/\0/g, '').trim(), 10);
      if (Number.isFinite(n)) this.captured[name] = n;
    } else if (v.length >= 2) this.captured[name] = this.u16(v, 0);
  }

  private afterValue(): void {
    this.current = undefined;
    this.nextHeader();
  }

  /** A skipped value was stepped over to its end: run what skipValue() asked for next. */
  private skipped(): void {
    const then = this.afterSkip;
    this.afterSkip = undefined;
    this.current = undefined;
    if (then) then();
    else this.nextHeader();
  }

  private readValue(tag: number, len: number, then: (v: Buffer) => void): void {
    this.current = { tag, end: this.pos + len };
    if (len === 0) {
      then(Buffer.alloc(0));
      return;
    }
    this.want = len;
    this.step = then;
  }

  private skipValue(tag: number, len: number, then: () => void): void {
    this.current = { tag, end: this.pos + len };
    if (len === 0) {
      then();
      return;
    }
    this.skip = len;
    this.afterSkip = then;
  }

  private afterSkip?: () => void;

  private itemHeader(b: Buffer): void {
    const f = this.top;
    const tag = this.readTag(b, f.explicit);
    const len = this.u32(b, 4, f.explicit);
    const start = this.pos - 8;
    this.countElement();
    if (tag === SEQ_END) {
      if (f.end !== undefined) throw new Invalid(`sequence delimiter inside defined-length sequence ${tagString(f.tag)}`);
      this.pop();
      this.nextHeader();
      return;
    }
    if (tag !== ITEM) throw new Invalid(`sequence ${tagString(f.tag)}: expected an item at byte ${start}, found ${tagString(tag)}`);
    if (len === UNDEFINED) this.open({ kind: 'item', explicit: f.explicit, tag: f.tag, fragments: 0 });
    else {
      this.checkWithin(f.tag, len);
      this.open({ kind: 'item', explicit: f.explicit, tag: f.tag, end: this.pos + len, fragments: 0 });
    }
    this.nextHeader();
  }

  private fragmentHeader(b: Buffer): void {
    const f = this.top;
    const tag = this.readTag(b, f.explicit);
    const len = this.u32(b, 4, f.explicit);
    this.countElement();
    if (tag === SEQ_END) {
      this.pop();
      this.nextHeader();
      return;
    }
    if (tag !== ITEM) throw new Invalid(`encapsulated ${tagString(f.tag)}: expected a fragment item, found ${tagString(tag)}`);
    if (len === UNDEFINED) throw new Invalid(`encapsulated ${tagString(f.tag)}: a fragment has an undefined length`);
    this.checkWithin(f.tag, len);
    f.fragments++;
    this.skipValue(f.tag, len, () => this.afterValue());
  }

  private checkPixelData(len: number): void {
    const native = NATIVE.has(this.ts);
    if (len === UNDEFINED) {
      if (native) throw new Invalid(`PixelData has an undefined length in an uncompressed transfer syntax (${this.ts})`);
      return;
    }
    if (!native) throw new Invalid(`PixelData in a compressed transfer syntax (${this.ts}) must be encapsulated (undefined length)`);
    const { Rows: rows, Columns: cols, BitsAllocated: bits } = this.captured;
    if (!rows || !cols || !bits) throw new Invalid('PixelData without Rows, Columns and BitsAllocated');
    const spp = this.captured.SamplesPerPixel || 1;
    const frames = Math.max(1, this.captured.NumberOfFrames || 1);
    const pixels = rows * cols * spp * frames;
    const bytes = bits === 1 ? Math.ceil(pixels / 8) : pixels * Math.ceil(bits / 8);
    const needed = this.ybr422 && spp === 3 ? Math.floor((bytes * 2) / 3) : bytes;
    if (len < needed) {
      throw new Invalid(`PixelData has ${len} bytes, Rows × Columns × SamplesPerPixel × NumberOfFrames × BitsAllocated needs ${needed} (${rows}×${cols}×${spp}×${frames}×${bits} bits)`);
    }
  }
}

/** Check a whole file on disk (commits that were not checked as they streamed, start-up recovery). */
export function validateFile(file: string, limits: InstanceLimits = DEFAULT_INSTANCE_LIMITS): ValidationResult {
  const v = new InstanceValidator(limits);
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.allocUnsafe(1 << 20);
    let pos = 0;
    while (pos < size && !v.error) {
      const s = Math.min(v.skippable, size - pos);
      if (s > 0) {
        v.advance(s);
        pos += s;
        continue;
      }
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, size - pos), pos);
      if (n <= 0) break;
      v.push(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return v.end();
}
