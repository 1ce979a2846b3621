/**
 * Several machines, simulated by processes: a real Redis (AOF), two receiver processes, two
 * worker processes and one sender process, each `src/main.ts` started from its own configuration
 * file as an operator would, and a DCMTK storescp as the PACS. The processes' storage folders sit
 * under one "shared" folder (the shared filesystem of a deployment): workers read what receivers
 * wrote, the sender reads what workers wrote; only references go through Redis.
 *
 *  1. a study whose instances are split over both receivers is processed exactly once, complete,
 *     and its results reach the PACS through the separate sender process
 *  2. Redis killed (SIGKILL) and restarted from its append-only file: no job is lost
 *  3. a worker killed (SIGKILL) in the middle of a job: the other worker finishes it
 *  4. the sender killed (SIGKILL): results wait in Redis, and a sender started later sends them
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseConfig } from '../../src/config/load';
import { RedisQueue } from '../../src/jobs/redis-queue';
import { StudyJob } from '../../src/jobs/queue';
import { openDb } from '../../src/store/db';
import { startRedis, RedisHandle } from '../harness/redis';
import { freePort, sleep } from '../harness/ports';
import { ManagedProcess, spawnManaged } from '../harness/proc';
import { stowBody, waitFor } from '../helpers/node';
import { ADMIN_TOKEN, strokeStudy, tinyModelsDir } from '../admin/helpers';
import { startStorescp, StorescpHandle } from '../harness/dcmtk';
import { RedisHandoff } from '../../src/egress/redis-handoff';
import { chromium } from 'playwright-core';

jest.setTimeout(300_000);

const MAIN = path.resolve(__dirname, '../../src/main.ts');
const PREFIX = 'mn';
const QUIET_S = 2;

interface NodeProc {
  name: string;
  http: string;
  proc: ManagedProcess;
  configFile: string;
}

let redis: RedisHandle;
let root: string;
let models: string;
let reader: RedisQueue;
let readerHandoff: RedisHandoff;
let pacs: StorescpHandle;
const nodes: Record<string, NodeProc> = {};

async function startNodeProcess(name: string, roles: string[]): Promise<NodeProc> {
  const httpPort = await freePort();
  const cfg = {
    nodeName: name,
    roles,
    storage: { dir: path.join(root, 'shared', name), minFreeMb: 1, fsync: false },
    dimse: { enabled: false },
    http: { host: '127.0.0.1', port: httpPort },
    admin: { token: ADMIN_TOKEN },
    inference: { modelsDir: models, intraOpThreads: 1 },
    destinations: [{ name: 'pacs', type: 'dimse', host: '127.0.0.1', port: pacs.port, calledAeTitle: 'PACS' }],
    routes: [{ name: 'default', quietPeriodSeconds: QUIET_S, destinations: ['pacs'] }],
    egress: { initialBackoffSeconds: 1 },
    // a short lease so a dead worker's job is handed on within seconds in the test
    queue: { backend: 'redis', redis: { port: redis.port, prefix: PREFIX }, lockSeconds: 2, backoffSeconds: 1 },
    logLevel: 'info',
  };
  const configFile = path.join(root, `${name}.json`);
  fs.writeFileSync(configFile, JSON.stringify(cfg, null, 2));
  const logFile = path.join(root, `${name}.log`);
  // a restarted process appends to the same log: wait for one more "ready" than before
  const readyLines = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').match(/stroke-node ready/g)?.length ?? 0 : 0);
  const readyBefore = readyLines();
  const proc = spawnManaged(process.execPath, ['--import', 'tsx', MAIN], {
    env: { ...process.env, STROKE_NODE_CONFIG: configFile, STROKE_NODE_LOG_SILENT: '0' },
    logFile,
  });
  const n = { name, http: `http://127.0.0.1:${httpPort}`, proc, configFile };
  await waitFor(
    () => {
      if (proc.exited()) throw new Error(`${name} exited at start:\n${proc.tail()}`);
      return readyLines() > readyBefore;
    },
    90_000,
    `${name} ready`,
  );
  return n;
}

/** Log events of one node process (JSON lines on stderr/stdout). */
function events(n: NodeProc, event: string): Record<string, unknown>[] {
  return fs
    .readFileSync(n.proc.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes(`"${event}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((e) => e.event === event);
}

async function stowTo(n: NodeProc, files: Buffer[]): Promise<void> {
  const { body, contentType } = stowBody(files.map((b) => ({ body: b })));
  const r = await fetch(`${n.http}/dicom-web/studies`, { method: 'POST', body, headers: { 'Content-Type': contentType } });
  expect(r.status).toBe(200);
}

async function admin(n: NodeProc, action: 'pause' | 'resume'): Promise<void> {
  const r = await fetch(`${n.http}/admin/api/actions/${action}`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' }, body: '{}' });
  expect(r.status).toBe(200);
}

async function jobsOf(studyUid: string): Promise<StudyJob[]> {
  return (await reader.list({ limit: 500 })).filter((j) => j.studyUid === studyUid);
}

/** The job's result instances that reached the PACS (storescp names files <modality>.<SOPInstanceUID>). */
function atPacs(job: StudyJob): { outputs: number; received: number } {
  const outputs = ((job.outcome as { outputs?: { sopInstanceUid: string }[] }).outputs ?? []).map((o) => o.sopInstanceUid);
  const files = pacs.receivedFiles().map((f) => path.basename(f));
  return { outputs: outputs.length, received: files.filter((f) => outputs.some((s) => f.endsWith(`.${s}`))).length };
}

function processedCount(jobId: number): number {
  return [nodes.w1, nodes.w2].reduce((n, w) => n + events(w, 'study.processed').filter((e) => e.job === jobId).length, 0);
}

/** The worker logs 'study.processed' just after it records the job done: wait for the line, then count. */
async function processedOnce(jobId: number): Promise<number> {
  await waitFor(() => processedCount(jobId) >= 1, 10_000, `study.processed logged for job ${jobId}`);
  await sleep(300);
  return processedCount(jobId);
}

beforeAll(async () => {
  redis = await startRedis({ appendfsync: 'always' });
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'multinode-'));
  pacs = await startStorescp(path.join(root, 'pacs'), await freePort(), 'PACS');
  models = tinyModelsDir();
  // Start one at a time: this machine has two cores.
  nodes.r1 = await startNodeProcess('r1', ['receiver']);
  nodes.r2 = await startNodeProcess('r2', ['receiver']);
  nodes.w1 = await startNodeProcess('w1', ['worker']);
  nodes.w2 = await startNodeProcess('w2', ['worker']);
  nodes.s1 = await startNodeProcess('s1', ['sender']);
  const dir = path.join(root, 'reader');
  const readerConfig = parseConfig({ storage: { dir }, queue: { backend: 'redis', redis: { port: redis.port, prefix: PREFIX } } });
  reader = new RedisQueue(openDb(dir), readerConfig);
  readerHandoff = new RedisHandoff(readerConfig);
});

afterAll(async () => {
  await reader?.close();
  await readerHandoff?.close();
  await Promise.all(Object.values(nodes).map((n) => n.proc.stop(10_000)));
  await redis?.stop();
  await pacs?.stop();
  if (!process.env.KEEP_HARNESS_DIRS && root) fs.rmSync(root, { recursive: true, force: true });
});

describe('several receivers and workers on one Redis', () => {
  test('a study split across two receivers is processed exactly once, with all its instances', async () => {
    const s = strokeStudy();
    const uid = s.study.studyInstanceUid;
    // DWI and ADC instances interleaved over the two receivers, each gap shorter than the quiet period
    for (let i = 0; i < s.files.length; i++) {
      await stowTo(i % 2 ? nodes.r2 : nodes.r1, [s.files[i]]);
      await sleep(400);
    }
    // each receiver stored only its share
    const stored = (name: string) => fs.readdirSync(path.join(root, 'shared', name, 'instances'), { recursive: true }).filter((f) => String(f).endsWith('.dcm')).length;
    expect(stored('r1')).toBe(3);
    expect(stored('r2')).toBe(3);
    await waitFor(async () => (await jobsOf(uid)).some((j) => j.state === 'done'), 60_000, 'study processed');
    await sleep((QUIET_S + 2) * 1000); // a second job would show up in this time
    const jobs = await jobsOf(uid);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ state: 'done', instanceCount: 6, attempts: 1 });
    expect(jobs[0].outcome).toMatchObject({ decision: 'lesion', availability: { available: { DWI: true, ADC: true } } });
    expect(await processedOnce(jobs[0].id)).toBe(1);
    expect(['w1', 'w2']).toContain(jobs[0].worker);
    // the worker handed its results to the shared queue; the sender process sent them, once each
    expect(jobs[0].outcome).toMatchObject({ egressVia: 'shared', destinations: ['pacs'] });
    expect(atPacs(jobs[0]).outputs).toBeGreaterThanOrEqual(2); // SEG + SR
    await waitFor(() => atPacs(jobs[0]).received === atPacs(jobs[0]).outputs, 30_000, 'results at the PACS');
    expect(events(nodes.s1, 'egress.handoff_taken').filter((e) => e.job === jobs[0].id)).toHaveLength(1);
    expect(events(nodes[jobs[0].worker!], 'egress.handed_off').filter((e) => e.job === jobs[0].id)).toHaveLength(1);
  });

  test('Redis killed and restarted from its append-only file loses no job (ready, collecting, and one received while Redis was down)', async () => {
    await admin(nodes.w1, 'pause');
    await admin(nodes.w2, 'pause');
    const studies = [strokeStudy(), strokeStudy(), strokeStudy()];
    await stowTo(nodes.r1, studies[0].files);
    await stowTo(nodes.r2, studies[1].files);
    await waitFor(async () => (await reader.counts()).ready === 2, 30_000, 'two jobs ready');
    await stowTo(nodes.r1, studies[2].files); // its stability timer is a delayed job in Redis
    expect((await jobsOf(studies[2].study.studyInstanceUid))[0].state).toBe('collecting');

    await redis.kill();
    const whileDown = strokeStudy();
    await stowTo(nodes.r2, whileDown.files); // acknowledged: on disk, its arrival waits for Redis
    studies.push(whileDown);
    await sleep(1000);
    await redis.restart();

    await admin(nodes.w1, 'resume');
    await admin(nodes.w2, 'resume');
    for (const s of studies) {
      await waitFor(async () => (await jobsOf(s.study.studyInstanceUid)).some((j) => j.state === 'done'), 90_000, 'study processed after the Redis restart');
    }
    for (const s of studies) {
      const jobs = await jobsOf(s.study.studyInstanceUid);
      expect(jobs).toHaveLength(1);
      expect(jobs[0]).toMatchObject({ state: 'done', instanceCount: 6 });
      expect(await processedOnce(jobs[0].id)).toBe(1);
      // and their results went through the restarted Redis to the sender and on to the PACS
      await waitFor(() => atPacs(jobs[0]).received === atPacs(jobs[0]).outputs, 30_000, 'results at the PACS after the Redis restart');
    }
  });

  test('a worker killed (SIGKILL) in the middle of a job: the other worker finishes it', async () => {
    // Only w1 takes jobs until it is caught running one.
    await admin(nodes.w2, 'pause');
    let victim: StudyJob | undefined;
    for (let tries = 0; tries < 10 && !victim; tries++) {
      const s = strokeStudy();
      await stowTo(nodes.r1, s.files);
      const uid = s.study.studyInstanceUid;
      // polled back to back (a Redis round trip each), not every 100 ms: with the tiny test models a fast
      // machine can run the whole job between two 100 ms polls
      await waitFor(async () => (await jobsOf(uid)).some((j) => j.state === 'running' || j.state === 'done'), 30_000, 'job taken by w1', 0);
      process.kill(nodes.w1.proc.pid, 'SIGSTOP'); // freeze it where it is, then look
      const [j] = await jobsOf(uid);
      if (j.state === 'running' && j.worker === 'w1') victim = j;
      else process.kill(nodes.w1.proc.pid, 'SIGCONT'); // finished too fast: try another study
    }
    expect(victim).toBeDefined();
    process.kill(nodes.w1.proc.pid, 'SIGKILL');
    await nodes.w1.proc.stop(5000);
    expect(nodes.w1.proc.exited()?.signal).toBe('SIGKILL');
    expect(processedCount(victim!.id)).toBe(0);

    await admin(nodes.w2, 'resume');
    await waitFor(async () => (await reader.get(victim!.id))?.state === 'done', 60_000, 'job finished by w2');
    const done = (await reader.get(victim!.id))!;
    expect(done.worker).toBe('w2');
    expect(done.attempts).toBe(2); // started on w1, finished on w2
    expect(await processedOnce(victim!.id)).toBe(1);
    expect(events(nodes.w2, 'study.processed').filter((e) => e.job === victim!.id)).toHaveLength(1);
    expect(await jobsOf(victim!.studyUid)).toHaveLength(1);
  });

  test('the sender killed (SIGKILL): results wait in Redis, and a sender started later sends them', async () => {
    process.kill(nodes.s1.proc.pid, 'SIGKILL');
    await nodes.s1.proc.stop(5000);
    const s = strokeStudy();
    await stowTo(nodes.r2, s.files);
    const uid = s.study.studyInstanceUid;
    await waitFor(async () => (await jobsOf(uid)).some((j) => j.state === 'done'), 60_000, 'study processed with no sender running');
    const [job] = await jobsOf(uid);
    await sleep(1000);
    expect(atPacs(job).received).toBe(0);
    expect((await readerHandoff.counts()).waiting).toBeGreaterThanOrEqual(1);
    // the admin API of a worker shows the results waiting for a sender
    const q = (await (await fetch(`${nodes[job.worker!].http}/admin/api/queue`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { handoff: { waiting: number } };
    expect(q.handoff.waiting).toBeGreaterThanOrEqual(1);
    const metrics = await (await fetch(`${nodes[job.worker!].http}/metrics`)).text();
    expect(metrics).toMatch(/^stroke_node_egress_handoff_jobs\{state="waiting"\} [1-9]/m);
    // and so does its admin page, in Chromium: the shared queue's hand-offs, the study "handed to senders"
    const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
    try {
      const page = await browser.newPage();
      await page.goto(`${nodes[job.worker!].http}/admin/login`);
      await page.fill('#token', ADMIN_TOKEN);
      await page.click('#login-submit');
      const line = page.getByTestId('handoff-line');
      await line.waitFor({ state: 'visible', timeout: 15_000 });
      expect(await line.textContent()).toMatch(/Results for the sender processes \(shared queue\): [1-9]\d* waiting · 0 being taken · 0 failed/);
      await page.getByText('handed to senders').first().waitFor({ timeout: 15_000 });
    } finally {
      await browser.close();
    }

    nodes.s1 = await startNodeProcess('s1', ['sender']); // same configuration and storage folder
    await waitFor(() => atPacs(job).received === atPacs(job).outputs, 60_000, 'results sent by the restarted sender');
    await waitFor(async () => (await readerHandoff.counts()).waiting === 0, 10_000, 'nothing left waiting');
    expect(await readerHandoff.counts()).toMatchObject({ failed: 0, active: 0 });
  });
});
