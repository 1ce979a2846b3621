/**
 * The C-STORE hot path of the DIMSE receiver, below dcmjs-dimse: PDU reassembly, the command set
 * of a C-STORE-RQ, the C-STORE-RSP and the Part 10 file meta, each encoded by hand.
 *
 * Why (measured in bench/receive.ts, see bench/README.md): dcmjs-dimse parses every command and
 * encodes every response through dcmjs and a SmartBuffer (~1–2 ms each), and the file meta through
 * dcmjs was another ~1 ms per instance; the node spent ~10 ms of CPU per 512 kB instance where
 * storescp spends ~1 ms. Everything else (association negotiation, release, abort, C-ECHO, any
 * other command) stays with dcmjs-dimse.
 *
 * Command sets are always Implicit VR Little Endian, group 0000 (PS3.7 §6.3.1, §E.1).
 */

/** PDU types (PS3.8 §9.3.1). */
export const PduType = { AssociateRQ: 1, AssociateAC: 2, AssociateRJ: 3, PDataTF: 4, ReleaseRQ: 5, ReleaseRP: 6, Abort: 7 } as const;

/** Larger than any PDU a peer may send us (we announce at most 256 kB): a guard against garbage. */
export const MAX_ACCEPTED_PDU_BYTES = 16 << 20;

/**
 * Cuts a TCP byte stream into whole PDUs. Linear in the bytes received: a PDU inside one socket
 * chunk is a zero-copy view, a PDU spanning chunks is copied once (dcmjs-dimse re-concatenated the
 * partial PDU with every new chunk).
 */
export class PduReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(
    private readonly onPdu: (type: number, pdu: Buffer) => void,
    /** Largest PDU accepted now: small before an association is accepted (an A-ASSOCIATE-RQ), raised after. */
    public maxPduBytes = MAX_ACCEPTED_PDU_BYTES,
  ) {}

  /** Feed one socket chunk; calls onPdu for every complete PDU. Throws on an impossible length. */
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= 6) {
      const len = this.readLength();
      if (len > this.maxPduBytes) throw new Error(`PDU length ${len} exceeds ${this.maxPduBytes}`);
      const total = len + 6;
      if (this.buffered < total) return;
      const pdu = this.take(total);
      this.onPdu(pdu[0], pdu);
    }
  }

  private readLength(): number {
    const first = this.chunks[0];
    if (first.length >= 6) return first.readUInt32BE(2);
    const head = Buffer.alloc(6);
    let off = 0;
    for (const c of this.chunks) {
      off += c.copy(head, off, 0, Math.min(c.length, 6 - off));
      if (off === 6) break;
    }
    return head.readUInt32BE(2);
  }

  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0];
      const want = n - off;
      if (c.length <= want) {
        c.copy(out, off);
        off += c.length;
        this.chunks.shift();
      } else {
        c.copy(out, off, 0, want);
        this.chunks[0] = c.subarray(want);
        off += want;
      }
    }
    return out;
  }
}

/** One presentation data value of a P-DATA-TF PDU (PS3.8 §9.3.5.1). */
export interface Pdv {
  pcId: number;
  command: boolean;
  last: boolean;
  value: Buffer;
}

/** The PDVs of a whole P-DATA-TF PDU (views into it, no copies). Throws on a malformed PDU. */
export function readPdvs(pdu: Buffer): Pdv[] {
  const end = 6 + pdu.readUInt32BE(2);
  if (end > pdu.length) throw new Error('P-DATA-TF shorter than its length');
  const out: Pdv[] = [];
  let off = 6;
  while (off < end) {
    if (off + 6 > end) throw new Error('truncated PDV header');
    const len = pdu.readUInt32BE(off);
    if (len < 2 || off + 4 + len > end) throw new Error(`bad PDV length ${len}`);
    const mch = pdu[off + 5];
    out.push({ pcId: pdu[off + 4], command: (mch & 1) !== 0, last: (mch & 2) !== 0, value: pdu.subarray(off + 6, off + 4 + len) });
    off += 4 + len;
  }
  return out;
}

/** Command field values used here (PS3.7 §E.1). */
export const CommandField = { CStoreRQ: 0x0001, CStoreRSP: 0x8001, CEchoRQ: 0x0030 } as const;
/** (0000,0800) value meaning "no data set follows". */
export const NO_DATASET = 0x0101;

export interface CommandSet {
  commandField: number;
  messageId: number;
  dataSetType: number;
  affectedSopClassUid: string;
  affectedSopInstanceUid: string;
}

function uiString(b: Buffer): string {
  let end = b.length;
  while (end > 0 && (b[end - 1] === 0 || b[end - 1] === 0x20)) end--;
  let start = 0;
  while (start < end && b[start] === 0x20) start++;
  return b.toString('latin1', start, end);
}

/** Parse a command set (Implicit VR LE). Throws on a malformed one. */
export function parseCommandSet(buf: Buffer): CommandSet {
  const cmd: CommandSet = { commandField: -1, messageId: -1, dataSetType: NO_DATASET, affectedSopClassUid: '', affectedSopInstanceUid: '' };
  let off = 0;
  while (off + 8 <= buf.length) {
    const group = buf.readUInt16LE(off);
    const element = buf.readUInt16LE(off + 2);
    const len = buf.readUInt32LE(off + 4);
    off += 8;
    if (group !== 0x0000) throw new Error(`command set element (${group.toString(16)},${element.toString(16)}) outside group 0000`);
    if (len > buf.length - off) throw new Error('command set element longer than the command set');
    const v = buf.subarray(off, off + len);
    off += len;
    const us = () => (len >= 2 ? v.readUInt16LE(0) : -1);
    switch (element) {
      case 0x0002:
        cmd.affectedSopClassUid = uiString(v);
        break;
      case 0x0100:
        cmd.commandField = us();
        break;
      case 0x0110:
        cmd.messageId = us();
        break;
      case 0x0800:
        cmd.dataSetType = us();
        break;
      case 0x1000:
        cmd.affectedSopInstanceUid = uiString(v);
        break;
      default:
        break;
    }
  }
  if (off !== buf.length) throw new Error('trailing bytes after the command set');
  if (cmd.commandField < 0) throw new Error('command set without CommandField (0000,0100)');
  return cmd;
}

/** One Implicit VR LE element of group 0000 (value padded to even length with `pad`). */
function element(elementNo: number, value: Buffer, pad = 0x00): Buffer {
  const odd = value.length & 1;
  const b = Buffer.alloc(8 + value.length + odd, pad);
  b.writeUInt16LE(0x0000, 0);
  b.writeUInt16LE(elementNo, 2);
  b.writeUInt32LE(value.length + odd, 4);
  value.copy(b, 8);
  return b;
}

function us(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n & 0xffff, 0);
  return b;
}

function ul(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

/** A whole P-DATA-TF PDU carrying one PDV (message control header: bit 0 command, bit 1 last). */
export function pdvPdu(pcId: number, command: boolean, last: boolean, value: Buffer): Buffer {
  const pdu = Buffer.alloc(12 + value.length);
  pdu[0] = PduType.PDataTF;
  pdu.writeUInt32BE(6 + value.length, 2);
  pdu.writeUInt32BE(2 + value.length, 6);
  pdu[10] = pcId;
  pdu[11] = (command ? 1 : 0) | (last ? 2 : 0);
  value.copy(pdu, 12);
  return pdu;
}

/** A whole P-DATA-TF PDU carrying one complete command PDV. */
export function commandPdu(pcId: number, commandSet: Buffer): Buffer {
  return pdvPdu(pcId, true, true, commandSet);
}

/** A command set (group length first) from its elements, in ascending tag order. */
function commandSet(elements: Buffer[]): Buffer {
  const body = Buffer.concat(elements);
  return Buffer.concat([element(0x0000, ul(body.length)), body]);
}

/** The C-STORE-RSP for a request, as a ready-to-send P-DATA-TF PDU (PS3.7 §9.3.1.2). */
export function cStoreResponsePdu(pcId: number, req: CommandSet, status: number, errorComment?: string): Buffer {
  const els = [
    element(0x0002, Buffer.from(req.affectedSopClassUid, 'latin1')),
    element(0x0100, us(CommandField.CStoreRSP)),
    element(0x0120, us(req.messageId)),
    element(0x0800, us(NO_DATASET)),
    element(0x0900, us(status)),
  ];
  // ErrorComment (LO, ≤ 64 chars): only on failures.
  if (errorComment) els.push(element(0x0902, Buffer.from(errorComment.slice(0, 64), 'latin1'), 0x20));
  els.push(element(0x1000, Buffer.from(req.affectedSopInstanceUid, 'latin1')));
  return commandPdu(pcId, commandSet(els));
}

/** A command set with the given elements (tests, and re-wrapping a command for dcmjs-dimse). */
export function encodeCommandSet(fields: { commandField: number; messageId: number; affectedSopClassUid?: string; affectedSopInstanceUid?: string; dataSetType?: number }): Buffer {
  const els: Buffer[] = [];
  if (fields.affectedSopClassUid !== undefined) els.push(element(0x0002, Buffer.from(fields.affectedSopClassUid, 'latin1')));
  els.push(element(0x0100, us(fields.commandField)));
  els.push(element(0x0110, us(fields.messageId)));
  els.push(element(0x0800, us(fields.dataSetType ?? NO_DATASET)));
  if (fields.affectedSopInstanceUid !== undefined) els.push(element(0x1000, Buffer.from(fields.affectedSopInstanceUid, 'latin1')));
  return commandSet(els);
}

/** One Explicit VR LE element of group 0002 with a 2-byte length (UI, SH, AE, UL). */
function metaElement(elementNo: number, vr: string, value: Buffer, pad: number): Buffer {
  const odd = value.length & 1;
  const b = Buffer.alloc(8 + value.length + odd, pad);
  b.writeUInt16LE(0x0002, 0);
  b.writeUInt16LE(elementNo, 2);
  b.write(vr, 4, 'latin1');
  b.writeUInt16LE(value.length + odd, 6);
  value.copy(b, 8);
  return b;
}

/**
 * The Part 10 prefix (128-byte preamble, "DICM", file meta information in Explicit VR LE) of an
 * instance received over the network (PS3.10 §7.1).
 */
export function part10Prefix(m: {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  implementationClassUid: string;
  implementationVersionName: string;
  sourceAeTitle?: string;
}): Buffer {
  const version = Buffer.from([0x02, 0x00, 0x01, 0x00, 0x4f, 0x42, 0, 0, 2, 0, 0, 0, 0x00, 0x01]); // (0002,0001) OB 00\01
  const els = [
    version,
    metaElement(0x0002, 'UI', Buffer.from(m.sopClassUid, 'latin1'), 0x00),
    metaElement(0x0003, 'UI', Buffer.from(m.sopInstanceUid, 'latin1'), 0x00),
    metaElement(0x0010, 'UI', Buffer.from(m.transferSyntaxUid, 'latin1'), 0x00),
    metaElement(0x0012, 'UI', Buffer.from(m.implementationClassUid, 'latin1'), 0x00),
    metaElement(0x0013, 'SH', Buffer.from(m.implementationVersionName.slice(0, 16), 'latin1'), 0x20),
  ];
  if (m.sourceAeTitle) els.push(metaElement(0x0016, 'AE', Buffer.from(m.sourceAeTitle.slice(0, 16), 'latin1'), 0x20));
  const body = Buffer.concat(els);
  const groupLength = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x55, 0x4c, 4, 0, 0, 0, 0, 0]);
  groupLength.writeUInt32LE(body.length, 8);
  const head = Buffer.alloc(132);
  head.write('DICM', 128, 'latin1');
  return Buffer.concat([head, groupLength, body]);
}
