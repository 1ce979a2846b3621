/**
 * A bare DIMSE C-STORE SCU over a plain socket, for hostile-input tests: it sends whatever data set
 * bytes it is given (DCMTK's storescu parses files first, so it cannot send a truncated or
 * malformed one), and reports the C-STORE-RSP status and ErrorComment as they came back.
 */
import * as net from 'net';
import { CommandField, PduType, commandPdu, encodeCommandSet, pdvPdu } from '../../src/ingest/pdata';

const APP_CONTEXT = '1.2.840.10008.3.1.1.1';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

function item(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h[0] = type;
  h.writeUInt16BE(body.length, 2);
  return Buffer.concat([h, body]);
}

/** An A-ASSOCIATE-RQ PDU proposing one storage SOP class in Explicit VR Little Endian. */
export function associateRq(calledAe: string, callingAe: string, sopClassUid: string, transferSyntax = EXPLICIT_LE): Buffer {
  const fixed = Buffer.alloc(68, 0x20);
  fixed.writeUInt16BE(1, 0); // protocol version
  fixed.writeUInt16BE(0, 2);
  fixed.write(calledAe.padEnd(16), 4, 'latin1');
  fixed.write(callingAe.padEnd(16), 20, 'latin1');
  fixed.fill(0, 36, 68);
  const pc = item(0x20, Buffer.concat([Buffer.from([1, 0, 0, 0]), item(0x30, Buffer.from(sopClassUid)), item(0x40, Buffer.from(transferSyntax))]));
  const maxLen = Buffer.alloc(4);
  maxLen.writeUInt32BE(65536, 0);
  const user = item(0x50, Buffer.concat([item(0x51, maxLen), item(0x52, Buffer.from('1.2.3.4.5')), item(0x55, Buffer.from('RAWSCU'))]));
  const body = Buffer.concat([fixed, item(0x10, Buffer.from(APP_CONTEXT)), pc, user]);
  const pdu = Buffer.alloc(6);
  pdu[0] = PduType.AssociateRQ;
  pdu.writeUInt32BE(body.length, 2);
  return Buffer.concat([pdu, body]);
}

export interface StoreAnswer {
  status: number;
  errorComment?: string;
  /** ms from the last data byte sent to the response. */
  ms: number;
}

/** Read the status (0000,0900) and ErrorComment (0000,0902) of a command set. */
function statusOf(cmd: Buffer): { status: number; errorComment?: string } {
  let off = 0;
  let status = -1;
  let errorComment: string | undefined;
  while (off + 8 <= cmd.length) {
    const el = cmd.readUInt16LE(off + 2);
    const len = cmd.readUInt32LE(off + 4);
    const v = cmd.subarray(off + 8, off + 8 + len);
    if (el === 0x0900) status = v.readUInt16LE(0);
    if (el === 0x0902) errorComment = v.toString('latin1').trim();
    off += 8 + len;
  }
  return { status, errorComment };
}

export class RawScu {
  private buf = Buffer.alloc(0);
  private waiters: ((pdu: Buffer) => void)[] = [];
  private closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (c) => {
      this.buf = Buffer.concat([this.buf, c]);
      while (this.buf.length >= 6) {
        const n = this.buf.readUInt32BE(2) + 6;
        if (this.buf.length < n) break;
        const pdu = this.buf.subarray(0, n);
        this.buf = this.buf.subarray(n);
        this.waiters.shift()?.(pdu);
      }
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w(Buffer.alloc(0));
    });
    socket.on('error', () => undefined);
  }

  /** Connect and associate; throws if the association is not accepted. */
  static async associate(port: number, opts: { calledAe?: string; callingAe?: string; sopClassUid: string; localAddress?: string }): Promise<RawScu> {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: opts.localAddress });
    await new Promise<void>((res, rej) => {
      socket.once('connect', () => res());
      socket.once('error', rej);
    });
    socket.setNoDelay(true);
    const scu = new RawScu(socket);
    socket.write(associateRq(opts.calledAe ?? 'STROKEAI', opts.callingAe ?? 'RAWSCU', opts.sopClassUid));
    const ac = await scu.nextPdu(10000);
    if (ac[0] !== PduType.AssociateAC) {
      socket.destroy();
      throw new Error(`association not accepted (PDU type ${ac[0]})`);
    }
    return scu;
  }

  nextPdu(timeoutMs: number): Promise<Buffer> {
    if (this.closed) return Promise.resolve(Buffer.alloc(0));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no PDU within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((p) => {
        clearTimeout(t);
        resolve(p);
      });
    });
  }

  /** Send a C-STORE-RQ with these data set bytes (no file meta), in PDVs of `pdv` bytes; wait for the answer. */
  async store(dataset: Buffer, ids: { sopClassUid: string; sopInstanceUid: string }, opts: { pdv?: number; timeoutMs?: number } = {}): Promise<StoreAnswer> {
    const cmd = encodeCommandSet({ commandField: CommandField.CStoreRQ, messageId: 1, affectedSopClassUid: ids.sopClassUid, affectedSopInstanceUid: ids.sopInstanceUid, dataSetType: 0x0000 });
    this.socket.write(commandPdu(1, cmd));
    const size = opts.pdv ?? 16000;
    for (let o = 0; o < dataset.length || o === 0; o += size) {
      const part = dataset.subarray(o, o + size);
      const last = o + size >= dataset.length;
      if (!this.socket.write(pdvPdu(1, false, last, part))) await new Promise((r) => this.socket.once('drain', r));
      if (this.closed) throw new Error('association closed by the node while sending');
      if (last) break;
    }
    const t0 = Date.now();
    const rsp = await this.nextPdu(opts.timeoutMs ?? 60000);
    if (rsp.length === 0) throw new Error('association closed by the node before the C-STORE response');
    const cmdSet = rsp.subarray(12);
    return { ...statusOf(cmdSet), ms: Date.now() - t0 };
  }

  async release(): Promise<void> {
    if (this.closed) return;
    const rq = Buffer.alloc(10);
    rq[0] = PduType.ReleaseRQ;
    rq.writeUInt32BE(4, 2);
    this.socket.write(rq);
    await this.nextPdu(5000).catch(() => undefined);
    this.socket.destroy();
  }
}
