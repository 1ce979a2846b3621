/**
 * The shared hand-off of results from worker processes to sender processes (queue.backend: redis),
 * against a real Redis and a real DCMTK storescp as the destination: a worker-side RedisHandoff and
 * a sender-side one (each with its own SQLite database, as on two machines).
 *
 *  - results handed off by a worker are committed by the sender into its outbox and sent
 *  - the sender sends from its own copy: the worker's files may go once the hand-off is taken
 *  - a hand-off id committed once is not committed again (a redelivery after a crash)
 *  - a destination the sender does not know fails at once, is kept (failed), and an operator retry
 *    after the fix delivers it
 *  - a file the sender cannot see (shared storage lagging) is retried with backoff until it appears
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseConfig } from '../../src/config/load';
import { EgressService } from '../../src/egress/egress';
import { RedisHandoff } from '../../src/egress/redis-handoff';
import { readPart10 } from '../../src/dicom/dcmjs';
import { Db, openDb } from '../../src/store/db';
import { startStorescp, StorescpHandle } from '../harness/dcmtk';
import { freePort, sleep } from '../harness/ports';
import { RedisHandle, startRedis } from '../harness/redis';
import { waitFor } from '../helpers/node';
import { strokeStudy } from '../admin/helpers';

jest.setTimeout(120_000);

let redis: RedisHandle;
let scp: StorescpHandle;
let tmp: string;
const open: { close(): Promise<void> | void }[] = [];

beforeAll(async () => {
  redis = await startRedis();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'handoff-'));
  scp = await startStorescp(path.join(tmp, 'pacs'), await freePort(), 'PACS');
});
afterAll(async () => {
  await scp?.stop();
  await redis?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

const pacs = () => ({ name: 'pacs', type: 'dimse', host: '127.0.0.1', port: scp.port, calledAeTitle: 'PACS' });

function configFor(name: string, prefix: string, destinations: unknown[]) {
  return parseConfig({
    nodeName: name,
    storage: { dir: path.join(tmp, name) },
    destinations,
    routes: [{ name: 'default', destinations: (destinations as { name: string }[]).map((d) => d.name) }],
    egress: { maxAttempts: 6, initialBackoffSeconds: 0.3, maxBackoffSeconds: 2 },
    queue: { backend: 'redis', redis: { port: redis.port, prefix } },
  });
}

/** A sender process: its own database and outbox, draining to the configured destinations. */
function sender(name: string, prefix: string, destinations: unknown[], opts: { sending?: boolean } = {}): { egress: EgressService; handoff: RedisHandoff; db: Db; dir: string } {
  const config = configFor(name, prefix, destinations);
  fs.mkdirSync(config.storage.dir, { recursive: true });
  const db = openDb(config.storage.dir);
  const egress = new EgressService({ db, destinations: config.destinations, settings: config.egress, callingAeTitle: 'STROKEAI', jitter: 0, tickMs: 100 });
  if (opts.sending !== false) egress.start();
  const handoff = new RedisHandoff(config);
  handoff.startSending(egress);
  open.push({ close: () => egress.stop().then(() => void db.close()) }, handoff);
  return { egress, handoff, db, dir: config.storage.dir };
}

function worker(name: string, prefix: string): RedisHandoff {
  const h = new RedisHandoff(configFor(name, prefix, [pacs()]));
  open.push(h);
  return h;
}

/** Result-like files on the "shared" storage: a few instances of a phantom study. */
function resultFiles(n: number): { path: string; sop: string; study: string }[] {
  const s = strokeStudy();
  const dir = fs.mkdtempSync(path.join(tmp, 'results-'));
  return s.files.slice(0, n).map((b, i) => {
    const p = path.join(dir, `r${i}.dcm`);
    fs.writeFileSync(p, b);
    const ds = readPart10(b, { untilPixelData: true }).dataset;
    return { path: p, sop: String(ds.SOPInstanceUID), study: String(ds.StudyInstanceUID) };
  });
}

const received = (sops: string[]) => scp.receivedFiles().filter((f) => sops.some((s) => f.endsWith(s))).length;

test('results handed off by a worker are committed by a sender into its outbox and sent', async () => {
  const w = worker('w1', 'h1');
  const s = sender('s1', 'h1', [pacs()]);
  const files = resultFiles(3);
  await w.handOff([{ files: files.map((f) => ({ path: f.path })), destinations: ['pacs'] }], { job: 7, studyUid: files[0].study });
  await waitFor(() => received(files.map((f) => f.sop)) === 3, 30_000, 'three instances at storescp');
  await waitFor(() => s.egress.stats()[0].sent === 3, 10_000, 'outbox rows sent');
  const rows = s.egress.outbox.list({});
  expect(rows.map((r) => r.sopInstanceUid).sort()).toEqual(files.map((f) => f.sop).sort());
  expect(rows.every((r) => r.studyInstanceUid === files[0].study && r.state === 'sent')).toBe(true);
  await waitFor(async () => (await w.counts()).completed === 1, 10_000, 'hand-off completed in Redis');
  expect(await w.counts()).toMatchObject({ waiting: 0, active: 0, failed: 0 });
});

test("the sender sends from its own copy: the worker's result files may be deleted once the hand-off is taken", async () => {
  const w = worker('w5', 'h5');
  const s = sender('s5', 'h5', [pacs()], { sending: false }); // its egress does not run yet
  const files = resultFiles(2);
  await w.handOff([{ files: files.map((f) => ({ path: f.path })), destinations: ['pacs'] }], { job: 13, studyUid: files[0].study });
  await waitFor(() => s.egress.outbox.list({}).length === 2, 15_000, 'rows in the sender outbox');
  const rows = s.egress.outbox.list({});
  for (const r of rows) {
    expect(r.path.startsWith(path.join(s.dir, 'results', 'handoff-results-13-'))).toBe(true);
    const original = files.find((f) => f.sop === r.sopInstanceUid)!;
    expect(fs.readFileSync(r.path).equals(fs.readFileSync(original.path))).toBe(true);
  }
  for (const f of files) fs.rmSync(f.path); // the worker's retention ran
  await s.egress.sendNow();
  expect(received(files.map((f) => f.sop))).toBe(2);
  expect(s.egress.outbox.list({}).every((r) => r.state === 'sent')).toBe(true);
});

test('a hand-off id committed once is not committed again (redelivery after a crash between commit and acknowledgement)', async () => {
  const config = configFor('s-dup', 'h2', [pacs()]);
  fs.mkdirSync(config.storage.dir, { recursive: true });
  const db = openDb(config.storage.dir);
  open.push({ close: () => void db.close() });
  const egress = new EgressService({ db, destinations: config.destinations, settings: config.egress, callingAeTitle: 'STROKEAI' });
  const files = resultFiles(2);
  const groups = [{ files: files.map((f) => ({ path: f.path })), destinations: ['pacs'] }];
  expect(egress.enqueueGroups(groups, 'results-1-a')).toHaveLength(2);
  expect(egress.enqueueGroups(groups, 'results-1-a')).toBeNull();
  expect(egress.outbox.list({})).toHaveLength(2);
  // without an id (a worker+sender process's own results) a re-enqueue is a deliberate re-send
  expect(egress.enqueueGroups(groups)).toHaveLength(2);
});

test('a destination the sender does not know: failed at once with its name, kept, delivered by an operator retry once configured', async () => {
  const w = worker('w3', 'h3');
  const wrong = sender('s3-wrong', 'h3', [{ ...pacs(), name: 'other-pacs' }]);
  const files = resultFiles(2);
  await w.handOff([{ files: files.map((f) => ({ path: f.path })), destinations: ['pacs'] }], { job: 9, studyUid: files[0].study });
  await waitFor(async () => (await w.counts()).failed === 1, 15_000, 'hand-off failed');
  await sleep(1500); // an unrecoverable failure is not retried
  expect(await w.counts()).toMatchObject({ failed: 1, waiting: 0, delayed: 0, completed: 0 });
  expect(wrong.egress.outbox.list({})).toHaveLength(0);
  const failed = await (wrong.handoff as unknown as { q(): import('bullmq').Queue }).q().getFailed();
  expect(failed[0].failedReason).toMatch(/unknown egress destination\(s\): pacs: not configured on sender s3-wrong/);
  expect(failed[0].attemptsMade).toBe(1);

  // the operator fixes it: a sender with the destination, then "Retry failed hand-offs"
  await wrong.handoff.close();
  const right = sender('s3-right', 'h3', [pacs()]);
  expect(await right.handoff.retryFailed()).toBe(1);
  await waitFor(() => received(files.map((f) => f.sop)) === 2, 30_000, 'delivered after the retry');
  await waitFor(async () => (await w.counts()).completed === 1, 10_000, 'hand-off completed');
  // the PACS holds a file before its C-STORE response reaches the sender, which then marks the row sent
  await waitFor(() => right.egress.stats()[0].sent === 2, 10_000, 'outbox rows sent');
  const rows = right.egress.outbox.list({});
  expect(rows).toHaveLength(2);
  expect(rows.every((r) => r.state === 'sent')).toBe(true);
});

test('a result file the sender cannot see yet (shared storage lagging) is retried with backoff until it appears', async () => {
  const w = worker('w4', 'h4');
  const s = sender('s4', 'h4', [pacs()]);
  const files = resultFiles(2);
  const hidden = `${files[1].path}.later`;
  fs.renameSync(files[1].path, hidden);
  await w.handOff([{ files: files.map((f) => ({ path: f.path })), destinations: ['pacs'] }], { job: 11, studyUid: files[0].study });
  const q = (s.handoff as unknown as { q(): import('bullmq').Queue }).q();
  await waitFor(async () => ((await q.getDelayed())[0]?.attemptsMade ?? 0) >= 1, 15_000, 'first attempt failed, retry scheduled');
  const [delayed] = await q.getDelayed();
  expect(delayed.failedReason).toContain(`result file not readable on sender s4: ${files[1].path}`);
  expect(s.egress.outbox.list({})).toHaveLength(0); // nothing half-committed: both files or none
  fs.renameSync(hidden, files[1].path);
  await waitFor(() => received(files.map((f) => f.sop)) === 2, 30_000, 'both delivered once the file is there');
  expect(s.egress.outbox.list({})).toHaveLength(2);
});
