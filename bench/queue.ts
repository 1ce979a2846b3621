/**
 * Shared queue (BullMQ/Redis) benchmark, `BENCH_ONLY=queue`:
 *  1. throughput: studies per minute with 1 and with 2 worker processes (real default DWI+ADC model shaspec-realbg,
 *     one onnxruntime thread per worker), one receiver process, a real redis-server (AOF on). The
 *     studies are queued while the workers are paused, then the workers are resumed and timed until
 *     the last study is done: processing throughput, not arrival pacing.
 *  2. queue overhead per study: the queue operations one study costs (note each instance's
 *     arrival, claim, read the instance references, complete), timed in one process against the
 *     same Redis, and against the embedded SQLite queue for comparison.
 *  3. results hand-off (worker process → sender process through Redis): the worker's handOff() of
 *     one study's results, and the time until a sender has committed them into its outbox.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseConfig } from '../src/config/load';
import { EmbeddedQueue, JobQueue, StabilityRule } from '../src/jobs/queue';
import { RedisQueue } from '../src/jobs/redis-queue';
import { EgressService } from '../src/egress/egress';
import { RedisHandoff } from '../src/egress/redis-handoff';
import { openDb } from '../src/store/db';
import { StoredInstance } from '../src/types';
import { freePort } from '../test/harness/ports';
import { spawnManaged, ManagedProcess } from '../test/harness/proc';
import { startRedis, RedisHandle } from '../test/harness/redis';
import { stowBody } from '../test/helpers/node';
import { benchStudy } from './phantom';

const TOKEN = 'bench-admin-token-0123456789abcdef';

function studyFiles(size: number, slices: number): Buffer[] {
  const { dwi, adc } = benchStudy({ size, slices, lesion: { rows: size / 14, columns: size / 18, slices: 3 }, pixelSpacingMm: 230 / size, origin: [-115, -115, -40] });
  return [...dwi.files, ...adc.files].map((f) => f.part10);
}

async function waitUntil(cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out: ${what}`);
}

interface Proc {
  http: string;
  proc: ManagedProcess;
}

async function startNode(work: string, name: string, roles: string[], redisPort: number, prefix: string, models: string): Promise<Proc> {
  const port = await freePort();
  const cfgFile = path.join(work, `${name}.json`);
  fs.writeFileSync(
    cfgFile,
    JSON.stringify({
      nodeName: name,
      roles,
      storage: { dir: path.join(work, 'shared', name), minFreeMb: 1, fsync: false },
      dimse: { enabled: false },
      http: { port },
      admin: { token: TOKEN },
      inference: { modelsDir: models, intraOpThreads: 1 },
      routes: [{ name: 'stroke', quietPeriodSeconds: 1 }],
      queue: { backend: 'redis', redis: { port: redisPort, prefix } },
      logLevel: 'warn',
    }),
  );
  const main = path.resolve(__dirname, '..', 'src', 'main.js');
  const logFile = path.join(work, `${name}.log`);
  const proc = spawnManaged(process.execPath, [main], { env: { ...process.env, STROKE_NODE_CONFIG: cfgFile, STROKE_NODE_LOG_SILENT: '0' }, logFile });
  const http = `http://127.0.0.1:${port}`;
  await waitUntil(
    async () => {
      if (proc.exited()) throw new Error(`${name} exited: ${proc.tail()}`);
      return (await fetch(`${http}/healthz`).then((r) => r.status).catch(() => 0)) === 200;
    },
    120_000,
    `${name} up`,
  );
  return { http, proc };
}

const act = (p: Proc, a: 'pause' | 'resume') => fetch(`${p.http}/admin/api/actions/${a}`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' }, body: '{}' });

async function throughput(redis: RedisHandle, workers: number, studies: Buffer[][], models: string): Promise<Record<string, number>> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-queue-'));
  const prefix = `bench${workers}-${Date.now()}`;
  const procs: Proc[] = [];
  const reader = new RedisQueue(openDb(path.join(work, 'reader')), parseConfig({ storage: { dir: path.join(work, 'reader') }, queue: { backend: 'redis', redis: { port: redis.port, prefix } } }));
  try {
    const recv = await startNode(work, 'recv', ['receiver'], redis.port, prefix, models);
    procs.push(recv);
    const ws: Proc[] = [];
    for (let i = 0; i < workers; i++) ws.push(await startNode(work, `w${i + 1}`, ['worker', 'sender'], redis.port, prefix, models));
    procs.push(...ws);
    for (const w of ws) await act(w, 'pause');
    for (const files of studies) {
      const { body, contentType } = stowBody(files.map((b) => ({ body: b })));
      const r = await fetch(`${recv.http}/dicom-web/studies`, { method: 'POST', body, headers: { 'Content-Type': contentType } });
      if (r.status !== 200) throw new Error(`STOW ${r.status}`);
    }
    await waitUntil(async () => (await reader.counts()).ready === studies.length, 60_000, 'all studies ready');
    const t0 = Date.now();
    for (const w of ws) await act(w, 'resume');
    await waitUntil(async () => {
      const c = await reader.counts();
      return c.done + c.not_processed + c.dead === studies.length;
    }, 1_800_000, 'all studies processed');
    const seconds = (Date.now() - t0) / 1000;
    const c = await reader.counts();
    if (c.done !== studies.length) throw new Error(`only ${c.done}/${studies.length} done: ${JSON.stringify(c)}`);
    const jobs = await reader.list({ limit: 1000 });
    const byWorker: Record<string, number> = {};
    for (const j of jobs) byWorker[j.worker ?? '?'] = (byWorker[j.worker ?? '?'] ?? 0) + 1;
    const ms = jobs.map((j) => (j.finishedAt ?? 0) - (j.startedAt ?? 0)).sort((a, b) => a - b);
    return { workers, studies: studies.length, seconds: Number(seconds.toFixed(1)), studiesPerMinute: Number(((studies.length / seconds) * 60).toFixed(2)), medianJobMs: ms[Math.floor(ms.length / 2)], ...Object.fromEntries(Object.entries(byWorker).map(([k, v]) => [`jobsOn_${k}`, v])) };
  } finally {
    await reader.close();
    await Promise.all(procs.map((p) => p.proc.stop(10_000)));
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Queue operations of one study of `instances` instances, per backend, in one process. */
async function overhead(q: JobQueue, studies: number, instances: number): Promise<Record<string, number>> {
  const rules = new Map<string, StabilityRule>([['stroke', { route: 'stroke', quietPeriodMs: 100, requiredSeries: [], priority: 'urgent' }]]);
  await q.start?.({ rules, roles: { receiver: true, worker: true, sender: false } });
  const note: number[] = [];
  const handle: number[] = [];
  const dispatch: number[] = [];
  for (let s = 0; s < studies; s++) {
    const uid = `1.2.826.0.1.3680043.10.999.${Date.now()}.${s}`;
    let t = performance.now();
    let last = Date.now();
    for (let i = 0; i < instances; i++) {
      const ref: StoredInstance = { sopInstanceUid: `${uid}.${i}`, sopClassUid: '1.2.840.10008.5.1.4.1.1.4', studyInstanceUid: uid, seriesInstanceUid: `${uid}.1`, transferSyntaxUid: '1.2.840.10008.1.2.1', path: `/shared/store/${uid}/${i}.dcm`, bytes: 135_000, receivedAt: new Date().toISOString(), sourceAe: 'BENCH' };
      last = Date.now();
      await q.noteArrival(uid, 'stroke', i % 2 ? 'ADC' : 'DWI', 'urgent', last, ref);
    }
    note.push(performance.now() - t);
    // wait out the quiet period (not overhead), then claim as soon as it is offered
    let job;
    for (;;) {
      await q.promoteStable(rules, Date.now());
      job = await q.claim(Date.now());
      if (job) break;
      await new Promise((r) => setTimeout(r, 2));
    }
    dispatch.push(Date.now() - last - 100);
    t = performance.now();
    if (q.instances) await q.instances(job);
    await q.complete(job.id, 'done', { ok: true });
    handle.push(performance.now() - t);
  }
  await q.close?.();
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  return {
    instancesPerStudy: instances,
    noteArrivalsMsPerStudy: Number(med(note).toFixed(1)),
    noteArrivalMsPerInstance: Number((med(note) / instances).toFixed(3)),
    claimReadCompleteMs: Number(med(handle).toFixed(2)),
    handOffLatencyMsAfterQuietPeriod: med(dispatch),
  };
}

/**
 * Worker → sender hand-off of one study's results (3 files: SEG-, SR- and SC-sized DICOM files on
 * disk), median of `n`: the worker's handOff() (until Redis has the job) and the time until the
 * sender process (here: a second RedisHandoff with its own database) has committed the rows into its
 * outbox. The sender's egress is not started: this is the hand-off, not the network send.
 */
async function handoffOverhead(redisPort: number, n: number): Promise<Record<string, number>> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-handoff-'));
  const prefix = `ho${Date.now()}`;
  const cfg = (name: string) =>
    parseConfig({
      nodeName: name,
      storage: { dir: path.join(work, name) },
      destinations: [{ name: 'pacs', type: 'dimse', host: '127.0.0.1', port: 9, calledAeTitle: 'PACS' }],
      queue: { backend: 'redis', redis: { port: redisPort, prefix } },
    });
  const wCfg = cfg('w');
  const sCfg = cfg('s');
  fs.mkdirSync(sCfg.storage.dir, { recursive: true });
  const db = openDb(sCfg.storage.dir);
  const egress = new EgressService({ db, destinations: sCfg.destinations, settings: sCfg.egress, callingAeTitle: 'STROKEAI' });
  const worker = new RedisHandoff(wCfg);
  const sender = new RedisHandoff(sCfg);
  sender.startSending(egress);
  const files = studyFiles(64, 3).slice(0, 3).map((b, i) => {
    const p = path.join(work, `result-${i}.dcm`);
    fs.writeFileSync(p, b);
    return { path: p };
  });
  const handOff: number[] = [];
  const committed: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      // the same files each time (a row reset in the outbox); each hand-off has its own id
      const t0 = performance.now();
      await worker.handOff([{ files, destinations: ['pacs'] }], { job: i + 1, studyUid: `bench.${i}` });
      handOff.push(performance.now() - t0);
      const taken = () => (db.prepare('SELECT COUNT(*) AS n FROM egress_handoff').get() as { n: number }).n;
      while (taken() < i + 1) {
        if (performance.now() - t0 > 30_000) throw new Error('hand-off not committed by the sender within 30 s');
        await new Promise((r) => setTimeout(r, 1));
      }
      committed.push(performance.now() - t0);
    }
  } finally {
    await sender.close();
    await worker.close();
    db.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  return { filesPerStudy: files.length, workerHandOffMs: Number(med(handOff).toFixed(1)), untilInSenderOutboxMs: Number(med(committed).toFixed(1)), samples: n };
}

export async function benchQueue(): Promise<Record<string, unknown>> {
  const modelsDir = path.resolve(__dirname, '..', '..', 'models');
  const models = fs.existsSync(path.join(modelsDir, 'shaspec-realbg.json')) ? modelsDir : path.resolve('models');
  if (!fs.existsSync(path.join(models, 'shaspec-realbg.json'))) return { skipped: 'models/shaspec-realbg.json not found' };
  const n = Number(process.env.BENCH_QUEUE_STUDIES ?? 12);
  const size = Number(process.env.BENCH_QUEUE_SIZE ?? 128);
  const slices = Number(process.env.BENCH_QUEUE_SLICES ?? 20);
  const studies = Array.from({ length: n }, () => studyFiles(size, slices));
  const redis = await startRedis({ appendfsync: 'everysec' });
  try {
    const one = await throughput(redis, 1, studies, models);
    const two = await throughput(redis, 2, studies.map(() => studyFiles(size, slices)), models);
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-queue-ovh-'));
    const redisOvh = await overhead(new RedisQueue(openDb(path.join(work, 'r')), parseConfig({ storage: { dir: path.join(work, 'r') }, routes: [{ name: 'stroke' }], queue: { backend: 'redis', redis: { port: redis.port, prefix: `ovh${Date.now()}` } } })), 20, slices * 2);
    const embeddedOvh = await overhead(new EmbeddedQueue(openDb(path.join(work, 'e'))), 20, slices * 2);
    const resultsHandoff = await handoffOverhead(redis.port, 20);
    fs.rmSync(work, { recursive: true, force: true });
    return {
      description: `${n} DWI+ADC studies (${slices} slices each, ${size}x${size}, real shaspec-realbg model, 1 onnxruntime thread per worker) queued while the workers were paused, then processed; one receiver process, redis-server with AOF (appendfsync everysec); ${os.cpus().length} CPU cores shared with other work (load average before: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')})`,
      oneWorker: one,
      twoWorkers: two,
      ratio: Number((two.studiesPerMinute / one.studiesPerMinute).toFixed(2)),
      overheadPerStudy: { redis: redisOvh, embedded: embeddedOvh },
      resultsHandoffWorkerToSender: resultsHandoff,
    };
  } finally {
    await redis.stop();
  }
}
