/**
 * The outbox is durable: states survive a restart (a row caught mid-send goes back to pending),
 * enqueueing is idempotent per (destination, SOP instance), and a file that vanished is dead at once.
 * Real SQLite files in a temp dir; the delivery at the end goes to a real storescp.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Destination } from '../../src/config/schema';
import { EgressService } from '../../src/egress/egress';
import { Outbox } from '../../src/egress/outbox';
import { openDb } from '../../src/store/db';
import { geHeadCt } from '../harness/data';
import { startStorescp } from '../harness/dcmtk';
import { freePort, sleep } from '../harness/ports';

jest.setTimeout(60000);

const settings = { maxAttempts: 3, initialBackoffSeconds: 10, maxBackoffSeconds: 40 };
let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'outbox-test-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

it('reads the UIDs from the file header and enqueues one row per (file, destination)', () => {
  const db = openDb(tmp);
  const ob = new Outbox(db, () => 1000);
  const files = geHeadCt().slice(0, 2);
  const ids = ob.enqueue(files.map((p) => ({ path: p })), ['a', 'b']);
  expect(ids).toHaveLength(4);
  const rows = ob.list({ destination: 'a' });
  expect(rows).toHaveLength(2);
  expect(rows[0].sopClassUid).toBe('1.2.840.10008.5.1.4.1.1.2');
  expect(rows[0].studyInstanceUid).toMatch(/^[0-9.]+$/);
  expect(rows[0].transferSyntaxUid).toBe('1.2.840.10008.1.2.1');
  expect(rows.every((r) => r.state === 'pending' && r.attempts === 0 && r.createdAt === 1000)).toBe(true);
  // Same SOP instance again for the same destination: still one row.
  ob.enqueue([{ path: files[0] }], ['a']);
  expect(ob.list({ destination: 'a' })).toHaveLength(2);
  expect(ob.stats().map((s) => [s.destination, s.outboxSize])).toEqual([
    ['a', 2],
    ['b', 2],
  ]);
  db.close();
});

it('a row caught in "sending" by a crash is pending again after restart; other states are kept', () => {
  let db = openDb(tmp);
  let ob = new Outbox(db, () => 5000);
  const [a, b, c] = ob.enqueue(geHeadCt().slice(0, 3).map((p) => ({ path: p })), ['pacs']);
  ob.markSending([a, b, c]);
  ob.markSent(b, 0);
  ob.markFailed(c, 'Refused 0xA700: out of resources', { status: 0xa700, nextAttemptAt: 15000, maxAttempts: 3 });
  db.close(); // "crash" with row a still in sending

  db = openDb(tmp);
  ob = new Outbox(db, () => 6000);
  expect(ob.get(a)?.state).toBe('sending');
  expect(ob.recover()).toBe(1);
  expect(ob.get(a)).toMatchObject({ state: 'pending', attempts: 1, nextAttemptAt: 6000 });
  expect(ob.get(b)).toMatchObject({ state: 'sent', sentAt: 5000, lastStatus: 0 });
  expect(ob.get(c)).toMatchObject({ state: 'failed', lastStatus: 0xa700, lastError: 'Refused 0xA700: out of resources' });
  expect(ob.due(6000).map((r) => r.id)).toEqual([a]);
  expect(ob.due(15000).map((r) => r.id).sort()).toEqual([a, c].sort());
  // Operator retry only for rows that are not sent.
  expect(ob.retry(b)).toBe(false);
  expect(ob.retry(c)).toBe(true);
  expect(ob.get(c)).toMatchObject({ state: 'pending', attempts: 0 });
  db.close();
});

it('the destination backoff window holds back every row of that destination, not others', () => {
  const db = openDb(tmp);
  const ob = new Outbox(db, () => 0);
  ob.enqueue(geHeadCt().slice(0, 2).map((p) => ({ path: p })), ['down', 'up']);
  ob.destinationFailed('down', 'connection refused', 10000);
  expect(new Set(ob.due(5000).map((r) => r.destination))).toEqual(new Set(['up']));
  expect(ob.due(10000)).toHaveLength(4);
  db.close();
});

it('a file that disappeared is dead at once with a readable reason (retrying cannot help)', async () => {
  const db = openDb(path.join(tmp, 'node'));
  const copy = path.join(tmp, 'result.dcm');
  fs.copyFileSync(geHeadCt()[0], copy);
  const port = await freePort();
  const dest: Destination = { name: 'scp', type: 'dimse', host: '127.0.0.1', port, calledAeTitle: 'X', overlaySc: false };
  const eg = new EgressService({ db, destinations: [dest], settings, callingAeTitle: 'STROKEAI', jitter: 0 });
  eg.enqueue([{ path: copy }], ['scp']);
  fs.rmSync(copy);
  await eg.sendNow();
  const row = eg.outbox.list()[0];
  expect(row.state).toBe('dead');
  expect(row.lastError).toContain('file missing on disk');
  db.close();
});

it('after a restart the running service delivers what was left pending (real timer, storescp)', async () => {
  const nodeDir = path.join(tmp, 'node');
  let db = openDb(nodeDir);
  const files = geHeadCt().slice(0, 3);
  const port = await freePort();
  const dest: Destination = { name: 'scp', type: 'dimse', host: '127.0.0.1', port, calledAeTitle: 'ARCHIVE', overlaySc: false };
  const first = new EgressService({ db, destinations: [dest], settings, callingAeTitle: 'STROKEAI', jitter: 0 });
  first.enqueue(files.map((p) => ({ path: p })), ['scp']);
  first.outbox.markSending(first.outbox.list().map((r) => r.id)); // killed mid-batch
  db.close();

  const scp = await startStorescp(path.join(tmp, 'scp'), port, 'ARCHIVE');
  db = openDb(nodeDir);
  const second = new EgressService({ db, destinations: [dest], settings, callingAeTitle: 'STROKEAI', jitter: 0, tickMs: 50 });
  try {
    second.start();
    const deadline = Date.now() + 20000;
    while (second.stats()[0].sent < 3 && Date.now() < deadline) await sleep(50);
    expect(second.stats()[0]).toMatchObject({ sent: 3, outboxSize: 0 });
    expect(scp.receivedFiles()).toHaveLength(3);
  } finally {
    await second.stop();
    await scp.stop();
    db.close();
  }
});
