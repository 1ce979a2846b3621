/**
 * Issue 18 over DIMSE, as a hostile or broken peer would send it: deep nesting, pre-association
 * floods and half-open sockets, long but valid headers, truncated and impossible instances, and the
 * free-space floor crossed mid-instance. Each asserts the answer, the time to answer, that
 * /healthz stays fast meanwhile, and that nothing is left behind or lost.
 */
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { readPart10 } from '../../src/dicom/dcmjs';
import { geHeadCt } from '../harness/data';
import { echoscu } from '../harness/dcmtk';
import { sleep } from '../harness/ports';
import { el, imageDataset, nestedSequences, seqDefined, newUid, SECONDARY_CAPTURE } from '../helpers/dicom-bytes';
import { startTestNode, TestNode } from '../helpers/node';
import { RawScu } from '../helpers/raw-scu';

/** Poll /healthz every 50 ms while `during` runs; the slowest answer in ms. */
async function healthzWhile<T>(httpUrl: string, during: () => Promise<T>): Promise<{ result: T; slowestMs: number }> {
  let done = false;
  let slowest = 0;
  const poll = (async () => {
    while (!done) {
      const t0 = Date.now();
      const r = await fetch(`${httpUrl}/healthz`, { signal: AbortSignal.timeout(5000) }).catch(() => undefined);
      slowest = Math.max(slowest, r?.ok ? Date.now() - t0 : 5000);
      await sleep(50);
    }
  })();
  try {
    const result = await during();
    return { result, slowestMs: slowest };
  } finally {
    done = true;
    await poll;
  }
}

function tmpFiles(t: TestNode): string[] {
  return fs.readdirSync(path.join(t.dir, 'tmp'));
}

async function send(t: TestNode, dataset: Buffer, ids: { sopClassUid: string; sopInstanceUid: string }, pdv?: number) {
  const scu = await RawScu.associate(t.dimsePort, { sopClassUid: ids.sopClassUid });
  try {
    return await scu.store(dataset, ids, { pdv });
  } finally {
    await scu.release();
  }
}

/** Open a socket from `localAddress` and send `bytes`; resolves once connected and written. */
async function openSocket(port: number, localAddress: string, bytes: Buffer): Promise<{ socket: net.Socket; closedAt: Promise<number> }> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  socket.on('error', () => undefined);
  const closedAt = new Promise<number>((r) => socket.once('close', () => r(Date.now())));
  await new Promise<void>((r) => socket.once('connect', () => r()));
  socket.write(bytes);
  return { socket, closedAt };
}

describe('hostile DIMSE input', () => {
  let t: TestNode;
  beforeAll(async () => {
    t = await startTestNode({ dimse: { artimTimeoutSeconds: 2, maxPendingConnectionsPerIp: 4, maxPendingConnections: 12 } });
  });
  afterAll(async () => t?.stop());

  test('(1) 20,000 nested sequences before the UIDs: C000 in well under a second, /healthz fast throughout', async () => {
    const before = t.node.store.count();
    const d = imageDataset({ beforeUids: [nestedSequences(20000, 0x00081140)] });
    expect(d.dataset.length).toBeGreaterThan(600_000);
    const { result, slowestMs } = await healthzWhile(t.httpUrl, () => send(t, d.dataset, d));
    expect(result.status).toBe(0xc000);
    expect(result.errorComment).toMatch(/nested deeper than limits/);
    expect(result.ms).toBeLessThan(1000);
    expect(slowestMs).toBeLessThan(1000);
    expect(t.node.store.count()).toBe(before);
    expect(tmpFiles(t)).toEqual([]);
    // the same over STOW-RS (the store checks what a transport did not check as it streamed)
    const { stowBody } = await import('../helpers/node');
    const { part10 } = await import('../helpers/dicom-bytes');
    const body = stowBody([{ body: part10(d.dataset, d) }]);
    const t0 = Date.now();
    const r = await fetch(`${t.httpUrl}/dicom-web/studies`, { method: 'POST', headers: { 'Content-Type': body.contentType }, body: body.body });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(r.status).toBe(409);
    expect(r.headers.get('warning')).toMatch(/nested deeper than limits/);
  });

  test('(2) an A-ASSOCIATE-RQ claiming 15 MiB is cut off at the pre-association cap; 50 of them cost no memory', async () => {
    const rss0 = process.memoryUsage().rss;
    const header = Buffer.alloc(6);
    header[0] = 1;
    header.writeUInt32BE(15 << 20, 2);
    const socks = await Promise.all(Array.from({ length: 50 }, (_, i) => openSocket(t.dimsePort, `127.0.1.${1 + (i % 40)}`, Buffer.concat([header, Buffer.alloc(1 << 20, 0x41)]))));
    const t0 = Date.now();
    const closed = await Promise.all(socks.map((s) => s.closedAt));
    expect(Math.max(...closed) - t0).toBeLessThan(1500);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(150 << 20);
    expect(t.node.dimse!.pendingConnections).toBe(0);
  });

  test('(2) half-open sockets: a per-IP and a total cap, each closed by the ARTIM timer; other peers still served', async () => {
    // one IP opens 10 sockets sending a byte each: 4 are kept (per-IP cap), 6 closed at once
    const one = await Promise.all(Array.from({ length: 10 }, () => openSocket(t.dimsePort, '127.0.0.2', Buffer.from([1]))));
    const t0 = Date.now();
    await sleep(300);
    const state = await Promise.all(one.map((s) => Promise.race([s.closedAt.then(() => 'closed'), sleep(10).then(() => 'open')])));
    expect(state.filter((s) => s === 'open')).toHaveLength(4);
    // 12 IPs one socket each: the total cap (12) counts the 4 above, so 8 more are kept
    const many = await Promise.all(Array.from({ length: 12 }, (_, i) => openSocket(t.dimsePort, `127.0.2.${i + 1}`, Buffer.from([1]))));
    await sleep(300);
    const manyState = await Promise.all(many.map((s) => Promise.race([s.closedAt.then(() => 'closed'), sleep(10).then(() => 'open')])));
    expect(manyState.filter((s) => s === 'open')).toHaveLength(8);
    expect(t.node.dimse!.pendingConnections).toBe(12);
    // ARTIM (2 s here) closes every one of them, counted from the connection
    const closed = await Promise.all([...one, ...many].map((s) => s.closedAt));
    expect(Math.max(...closed) - t0).toBeLessThan(4500);
    expect(Math.max(...closed) - t0).toBeGreaterThan(1500);
    for (let i = 0; i < 20 && t.node.dimse!.pendingConnections > 0; i++) await sleep(50); // the node's side of the close
    expect(t.node.dimse!.pendingConnections).toBe(0);
    // a well-behaved peer is served all along
    expect((await echoscu('127.0.0.1', t.dimsePort, { callingAet: 'MODALITY', calledAet: 'STROKEAI' })).ok).toBe(true);
  });

  test('(3) valid instances with over 1 MiB before (0020,000E) are stored with their UIDs', async () => {
    const privateOb = imageDataset({ beforeUids: [el(0x00090010, 'LO', 'HOSTILE'), el(0x00091010, 'OB', Buffer.alloc(1_050_000, 0x5a))] });
    const items = Array.from({ length: 12000 }, () => Buffer.concat([el(0x00081150, 'UI', SECONDARY_CAPTURE), el(0x00081155, 'UI', newUid())]));
    // ReferencedImageSequence (0008,1140) sorts before the patient module: build it into the data set in order
    const refs = imageDataset();
    const refsDataset = Buffer.concat([el(0x00080016, 'UI', refs.sopClassUid), el(0x00080018, 'UI', refs.sopInstanceUid), seqDefined(0x00081140, items), refs.dataset.subarray(el(0x00080016, 'UI', refs.sopClassUid).length + el(0x00080018, 'UI', refs.sopInstanceUid).length)]);
    expect(refsDataset.length).toBeGreaterThan(1 << 20);
    for (const [d, dataset] of [
      [privateOb, privateOb.dataset],
      [refs, refsDataset],
    ] as const) {
      const r = await send(t, dataset, d);
      expect(r).toMatchObject({ status: 0 });
      const row = t.node.store.get(d.sopInstanceUid)!;
      expect(row.seriesInstanceUid).toBe(d.seriesUid);
      expect(readPart10(fs.readFileSync(row.path)).dataset.SeriesInstanceUID).toBe(d.seriesUid);
    }
  });

  test('(4) truncated instances at many offsets, impossible lengths and trailing zeros all get C000; nothing half-stored', async () => {
    const before = t.node.store.count();
    // a real GE CT slice (its data set, as storescu would send it) cut at 30 offsets
    const real = fs.readFileSync(geHeadCt()[3]);
    const p10 = readPart10(real, { untilPixelData: true });
    const metaEnd = 132 + 12 + real.readUInt32LE(140);
    const ts = p10.transferSyntaxUid;
    const sopClassUid = String(p10.dataset.SOPClassUID);
    const answers: number[] = [];
    const comments: string[] = [];
    for (let i = 1; i <= 30; i++) {
      const cut = Math.floor(((real.length - metaEnd) * i) / 31);
      const synth = imageDataset({ rows: 64, columns: 64 });
      const synthCut = synth.dataset.subarray(0, Math.floor((synth.dataset.length * i) / 31));
      const r = await send(t, synthCut, { sopClassUid: synth.sopClassUid, sopInstanceUid: synth.sopInstanceUid });
      answers.push(r.status);
      comments.push(r.errorComment ?? '');
      expect(ts).toBe('1.2.840.10008.1.2.1'); // the raw SCU proposes Explicit VR LE
      {
        const rr = await send(t, real.subarray(metaEnd, metaEnd + cut), { sopClassUid, sopInstanceUid: String(p10.dataset.SOPInstanceUID) });
        answers.push(rr.status);
        comments.push(rr.errorComment ?? '');
      }
    }
    expect(new Set(answers)).toEqual(new Set([0xc000]));
    // every refusal says why, in words (the issue found "undefined" and TypeError texts)
    for (const c of comments) expect(c).toMatch(/^[\x20-\x7e]{12,}$/);
    expect(comments.join('\n')).not.toMatch(/undefined|Cannot read properties/);
    // PixelData declaring 0xFFFFFFF0 bytes in a 9 kB instance
    const huge = imageDataset({ rows: 64, columns: 64, pixelLength: 0xfffffff0 });
    const h = await send(t, huge.dataset, huge);
    expect(h.status).toBe(0xc000);
    expect(h.errorComment).toMatch(/truncated: element \(7FE0,0010\)/);
    // a valid instance followed by 64 MB of zeros: refused at the first zero, the zeros never written
    const z = imageDataset();
    const zeros = Buffer.concat([z.dataset, Buffer.alloc(64 << 20)]);
    const scu2 = await RawScu.associate(t.dimsePort, { sopClassUid: z.sopClassUid });
    const sending = scu2.store(zeros, z, { pdv: 65536 });
    await sleep(150);
    const partial = tmpFiles(t).map((f) => fs.statSync(path.join(t.dir, 'tmp', f)).size);
    const zr = await sending;
    await scu2.release();
    expect(zr.status).toBe(0xc000);
    expect(zr.errorComment).toMatch(/cannot be in a data set/);
    expect(Math.max(0, ...partial)).toBeLessThan(1 << 20);
    expect(t.node.store.count()).toBe(before);
    expect(tmpFiles(t)).toEqual([]);
  });
});

describe('the free-space floor over DIMSE', () => {
  test('(6) crossed mid-instance: A700, the partial file removed, the node still answers', async () => {
    const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'stroke-floor-'));
    const s = fs.statfsSync(dir);
    const freeMb = (s.bavail * s.bsize) / (1024 * 1024);
    // the floor sits 64 MB below the free space now: a 160 MB instance crosses it half-way
    const t = await startTestNode({ storage: { minFreeMb: Math.floor(freeMb - 64), fsync: false } }, dir);
    try {
      const d = imageDataset({ rows: 4096, columns: 10240 }); // 80 Mpixel x 2 bytes = 160 MB
      const r = await send(t, d.dataset, d, 1 << 20);
      expect(r.status).toBe(0xa700);
      expect(r.ms).toBeLessThan(2000);
      expect(tmpFiles(t)).toEqual([]);
      expect(t.node.store.get(d.sopInstanceUid)).toBeUndefined();
      expect((await fetch(`${t.httpUrl}/healthz`)).ok).toBe(true);
    } finally {
      await t.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
