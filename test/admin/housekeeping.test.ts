/**
 * Housekeeping driven with a controlled clock: retention never deletes a study whose results are
 * not all sent (or whose job is still open), orphan result folders, outbox sweep (against a real
 * storescp), model self-test on the built-in phantom, disk watermark, and the cron schedule.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { EgressService } from '../../src/egress/egress';
import { Housekeeping, HousekeepingTask, selfTestPhantom } from '../../src/jobs/housekeeping';
import type { StabilityRule } from '../../src/jobs/queue';
import type { BuiltNode } from '../../src/wiring';
import { startStorescp } from '../harness/dcmtk';
import { freePort } from '../harness/ports';
import { startTestNode, waitFor, TestNode } from '../helpers/node';
import { strokeStudy, stow, tinyModelsDir } from './helpers';

const DAY = 86_400_000;
const NO_SCHEDULE: Record<HousekeepingTask, null> = { retention: null, 'outbox-sweep': null, 'model-selftest': null, 'disk-check': null };

describe('retention with a controlled clock', () => {
  let t: TestNode;
  let node: BuiltNode;
  let clock = Date.now();
  let hk: Housekeeping;
  const rules = new Map<string, StabilityRule>([['default', { route: 'default', quietPeriodMs: 0, requiredSeries: [], priority: 'urgent' }]]);

  beforeAll(async () => {
    t = await startTestNode({
      storage: { retentionDays: 7 },
      inference: { modelsDir: tinyModelsDir([]) },
      // long quiet period: the node's own scheduler leaves the jobs to this test
      routes: [{ name: 'default', quietPeriodSeconds: 3600 }],
    });
    node = t.node as BuiltNode;
    node.paused = true; // the test moves the jobs itself
    hk = new Housekeeping({ node, registry: node.registry, egress: node.egress, now: () => clock, schedules: NO_SCHEDULE });
  });
  afterAll(() => t.stop());

  /** A received study whose job finished with two result files queued for 'pacs' in the given states. */
  async function finishedStudy(rowStates: ('sent' | 'dead' | 'pending' | 'failed')[], finish = true) {
    const s = strokeStudy();
    expect(await stow(node.app, s.files)).toBe(200);
    const uid = s.study.studyInstanceUid;
    const instancePaths = node.store.listStudy(uid).map((i) => i.path);
    expect(instancePaths).toHaveLength(6);
    await node.queue.promoteStable(rules, Date.now() + 1);
    const job = (await node.queue.list({ states: ['ready'] })).find((j) => j.studyUid === uid)!;
    const resultsDir = path.join(t.dir, 'results', `job-${job.id}`);
    const outputs = rowStates.map((_, i) => {
      const p = path.join(resultsDir, `SEG-${i}.dcm`);
      return { kind: 'SEG', sopInstanceUid: `${uid}.9${i}`, seriesInstanceUid: `${uid}.8`, path: p };
    });
    fs.mkdirSync(resultsDir, { recursive: true });
    for (const o of outputs) fs.writeFileSync(o.path, 'result');
    if (finish) {
      await node.queue.claim(Date.now() + 1);
      await node.queue.complete(job.id, 'done', { outputs });
    }
    const ids = node.egress.outbox.enqueue(
      outputs.map((o) => ({ path: o.path, sopInstanceUid: o.sopInstanceUid, sopClassUid: '1.2.840.10008.5.1.4.1.1.66.4', studyInstanceUid: uid, seriesInstanceUid: o.seriesInstanceUid, transferSyntaxUid: '1.2.840.10008.1.2.1' })),
      ['pacs'],
    );
    ids.forEach((id, i) => setRow(id, rowStates[i]));
    return { uid, job, resultsDir, instancePaths, rowIds: ids };
  }

  function setRow(id: number, state: 'sent' | 'dead' | 'pending' | 'failed'): void {
    const ob = node.egress.outbox;
    if (state === 'pending') return;
    ob.markSending([id]);
    if (state === 'sent') ob.markSent(id, 0);
    else ob.markFailed(id, 'association rejected', { nextAttemptAt: Date.now() + DAY, maxAttempts: 8, dead: state === 'dead' });
  }

  const jobRows = (uid: string) => (node.db.prepare('SELECT COUNT(*) AS n FROM jobs WHERE study_uid = ?').get(uid) as { n: number }).n;
  const outboxRows = (uid: string) => node.egress.outbox.list({ studyInstanceUid: uid }).length;

  test('deletes an old, fully delivered study; keeps studies with unsent (dead, pending, failed) results or an open job', async () => {
    const delivered = await finishedStudy(['sent', 'sent']);
    const dead = await finishedStudy(['sent', 'dead']);
    const pending = await finishedStudy(['pending']);
    const failed = await finishedStudy(['failed', 'sent']);
    const open = await finishedStudy(['sent'], false); // job still 'ready'

    clock = Date.now() + 6 * DAY; // younger than retentionDays: nothing goes
    let run = await hk.runOnce('retention');
    expect(run.ok).toBe(true);
    expect(run.summary).toMatchObject({ studiesDeleted: 0 });
    expect(node.store.count()).toBe(30);

    clock = Date.now() + 8 * DAY;
    run = await hk.runOnce('retention');
    expect(run.summary).toMatchObject({ studiesDeleted: 1, instancesDeleted: 6, resultFoldersDeleted: 1, outboxRowsDeleted: 2, jobsDeleted: 1, keptUnsent: 3, keptActive: 1 });

    // the delivered study is gone: files, index rows, results, outbox rows, job
    expect(node.store.listStudy(delivered.uid)).toHaveLength(0);
    for (const p of delivered.instancePaths) expect(fs.existsSync(p)).toBe(false);
    expect(fs.existsSync(delivered.resultsDir)).toBe(false);
    expect(outboxRows(delivered.uid)).toBe(0);
    expect(jobRows(delivered.uid)).toBe(0);

    // every other study is intact, results included
    for (const kept of [dead, pending, failed, open]) {
      expect(node.store.listStudy(kept.uid)).toHaveLength(6);
      for (const p of kept.instancePaths) expect(fs.existsSync(p)).toBe(true);
      expect(fs.readdirSync(kept.resultsDir).length).toBeGreaterThan(0);
      expect(outboxRows(kept.uid)).toBe(kept.rowIds.length);
      expect(jobRows(kept.uid)).toBe(1);
    }

    // once the operator's retry got the dead row through, the study may go
    node.egress.outbox.retry(dead.rowIds[1]);
    setRow(dead.rowIds[1], 'sent');
    run = await hk.runOnce('retention');
    expect(run.summary).toMatchObject({ studiesDeleted: 1, keptUnsent: 2, keptActive: 1 });
    expect(node.store.listStudy(dead.uid)).toHaveLength(0);
    expect(fs.existsSync(dead.resultsDir)).toBe(false);
    expect(node.store.listStudy(pending.uid)).toHaveLength(6);
  });

  test('orphan result folders older than the cut-off go, recent ones and ones with unsent rows stay', async () => {
    const results = path.join(t.dir, 'results');
    const oldOrphan = path.join(results, 'job-90001');
    const newOrphan = path.join(results, 'job-90002');
    const unsentOrphan = path.join(results, 'job-90003');
    for (const d of [oldOrphan, newOrphan, unsentOrphan]) {
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(path.join(d, 'SEG-x.dcm'), 'x');
    }
    node.egress.outbox.enqueue(
      [{ path: path.join(unsentOrphan, 'SEG-x.dcm'), sopInstanceUid: '1.2.3.4.90003', sopClassUid: '1.2.840.10008.5.1.4.1.1.66.4', studyInstanceUid: '1.2.3.4.90003', seriesInstanceUid: '1.2.3.4.90003.1', transferSyntaxUid: '1.2.840.10008.1.2.1' }],
      ['pacs'],
    );
    clock = Date.now() + 8 * DAY;
    const mtime = new Date(Date.now() + 2 * DAY); // newer than the cut-off
    fs.utimesSync(newOrphan, mtime, mtime);
    const run = await hk.runOnce('retention');
    expect(run.summary.orphanResultFoldersDeleted).toBe(1);
    expect(fs.existsSync(oldOrphan)).toBe(false);
    expect(fs.existsSync(newOrphan)).toBe(true);
    expect(fs.existsSync(unsentOrphan)).toBe(true);
  });

  test("a sender's copies of handed-over results go once all their rows are sent; a worker-only process keeps its results while hand-offs wait", async () => {
    const results = path.join(t.dir, 'results');
    const sentCopy = path.join(results, 'handoff-results-1-aaa');
    const unsentCopy = path.join(results, 'handoff-results-2-bbb');
    const workerResults = path.join(results, 'job-90010'); // no local job row: as on a worker of the shared queue
    for (const d of [sentCopy, unsentCopy, workerResults]) {
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(path.join(d, 'SEG-y.dcm'), 'y');
    }
    const row = (dir: string, n: number) => ({ path: path.join(dir, 'SEG-y.dcm'), sopInstanceUid: `1.2.3.4.9001${n}`, sopClassUid: '1.2.840.10008.5.1.4.1.1.66.4', studyInstanceUid: `1.2.3.4.9001${n}`, seriesInstanceUid: '1.2.3.4.90010.1', transferSyntaxUid: '1.2.840.10008.1.2.1' });
    const [sentId] = node.egress.outbox.enqueue([row(sentCopy, 1)], ['pacs']);
    node.egress.outbox.markSending([sentId]);
    node.egress.outbox.markSent(sentId, 0, null);
    node.egress.outbox.enqueue([row(unsentCopy, 2)], ['pacs']);
    clock = Date.now() + 8 * DAY;

    // a worker-only process while a hand-off is still waiting in Redis: nothing goes
    let waiting = '1 result hand-off(s) not yet taken by a sender';
    const worker = new Housekeeping({ node, registry: node.registry, egress: node.egress, now: () => clock, schedules: NO_SCHEDULE, keepResults: async () => waiting || undefined });
    expect((await worker.runOnce('retention')).summary.orphanResultFoldersDeleted).toBe(0);
    expect([sentCopy, unsentCopy, workerResults].every((d) => fs.existsSync(d))).toBe(true);
    // all taken: the sent copy and the worker's own results go, the copy with an unsent row stays
    waiting = '';
    expect((await worker.runOnce('retention')).summary.orphanResultFoldersDeleted).toBe(2);
    expect(fs.existsSync(sentCopy)).toBe(false);
    expect(fs.existsSync(workerResults)).toBe(false);
    expect(fs.existsSync(unsentCopy)).toBe(true);
  });

  test('each run is recorded for the admin page; concurrent calls share one run', async () => {
    const [a, b] = await Promise.all([hk.runOnce('disk-check'), hk.runOnce('disk-check')]);
    expect(a).toBe(b);
    expect(hk.lastRuns()['disk-check']).toBe(a);
    expect(hk.lastRuns().retention?.ok).toBe(true);
  });
});

describe('outbox sweep, self-test, disk', () => {
  test('the outbox sweep sends due rows (egress worker not running) to a real storescp', async () => {
    const port = await freePort();
    const scpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hk-scp-'));
    const scp = await startStorescp(path.join(scpDir, 'in'), port, 'PACS');
    const t = await startTestNode({
      destinations: [{ name: 'pacs', type: 'dimse', host: '127.0.0.1', port, calledAeTitle: 'PACS' }],
      inference: { modelsDir: tinyModelsDir([]) },
    });
    try {
      const egress = new EgressService({ db: t.node.db, destinations: t.config.destinations, settings: t.config.egress, callingAeTitle: 'STROKEAI' });
      const hk = new Housekeeping({ node: t.node, registry: (t.node as BuiltNode).registry, egress, schedules: NO_SCHEDULE });
      const s = strokeStudy();
      const file = path.join(scpDir, 'result.dcm');
      fs.writeFileSync(file, s.files[0]);
      // stop the node's own worker so only the sweep can send
      await (t.node as BuiltNode).egress.stop();
      const [id] = egress.enqueue([{ path: file }], ['pacs']);
      expect(egress.outbox.get(id)!.state).toBe('pending');
      const run = await hk.runOnce('outbox-sweep');
      expect(run).toMatchObject({ ok: true, summary: { destinations: 1, outbox: 0, dead: 0 } });
      expect(egress.outbox.get(id)!.state).toBe('sent');
      expect(scp.receivedFiles()).toHaveLength(1);
    } finally {
      await t.stop();
      await scp.stop();
      fs.rmSync(scpDir, { recursive: true, force: true });
    }
  });

  test('model self-test: the tiny model finds the phantom lesion (pass); a model with a wrong ADC scaling in its manifest fails', async () => {
    const dir = tinyModelsDir([{ name: 'shaspec-realbg' }, { name: 'mis-scaled' }]);
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'mis-scaled.json'), 'utf8'));
    m.inputs.normalisation.ADC.factor = 0.01; // ADC ×10: every voxel looks like free water
    fs.writeFileSync(path.join(dir, 'mis-scaled.json'), JSON.stringify(m));
    const t = await startTestNode({ inference: { modelsDir: dir } });
    try {
      const node = t.node as BuiltNode;
      const hk = new Housekeeping({ node, registry: node.registry, egress: node.egress, schedules: NO_SCHEDULE, now: () => 1_800_000_000_000 });
      const run = await hk.runOnce('model-selftest');
      expect(run.summary).toEqual({ models: 2, passed: 1, failed: 1 });
      const byName = Object.fromEntries(hk.selfTests().map((r) => [r.model, r]));
      const lesion = selfTestPhantom().lesion.reduce((n, v) => n + v, 0);
      expect(byName['shaspec-realbg']).toMatchObject({ pass: true, expectedVoxels: lesion, at: 1_800_000_000_000 });
      expect(byName['shaspec-realbg'].dice).toBeGreaterThan(0.8);
      expect(byName['mis-scaled']).toMatchObject({ pass: false, lesionVoxels: 0, dice: 0 });
      expect(node.registry.states().find((s) => s.name === 'shaspec-realbg')!.inferences).toBe(1);
    } finally {
      await t.stop();
    }
  });

  test('disk check: below the watermark is "full" (logged), under twice the watermark "low", else "ok"', async () => {
    const t = await startTestNode({ inference: { modelsDir: tinyModelsDir([]) } });
    try {
      const node = t.node as BuiltNode;
      const free = node.store.freeMb();
      const hk = (minFreeMb: number) =>
        new Housekeeping({ node: { ...node, db: node.db, store: node.store, queue: node.queue, config: { ...node.config, storage: { ...node.config.storage, minFreeMb } } }, registry: node.registry, egress: node.egress, schedules: NO_SCHEDULE });
      expect((await hk(1).runOnce('disk-check')).summary.level).toBe('ok');
      expect((await hk(Math.ceil(free * 0.75)).runOnce('disk-check')).summary.level).toBe('low');
      const full = await hk(Math.ceil(free * 10)).runOnce('disk-check');
      expect(full.summary).toMatchObject({ level: 'full', minFreeMb: Math.ceil(free * 10) });
      expect(full.summary.freeMb).toBeGreaterThan(0);
    } finally {
      await t.stop();
    }
  });
});

describe('cron schedule', () => {
  test('the schedule triggers runOnce; stop() cancels it; a bad expression is refused at start', async () => {
    const t = await startTestNode({ inference: { modelsDir: tinyModelsDir([]) } });
    try {
      const node = t.node as BuiltNode;
      const hk = new Housekeeping({ node, registry: node.registry, egress: node.egress, schedules: { ...NO_SCHEDULE, 'disk-check': '* * * * * *' } });
      hk.start();
      expect(Object.keys(hk.nextRuns())).toEqual(['disk-check']);
      await waitFor(() => !!hk.lastRuns()['disk-check'], 5000, 'scheduled disk-check');
      await hk.stop();
      const at = hk.lastRuns()['disk-check']!.finishedAt;
      await new Promise((r) => setTimeout(r, 1500));
      expect(hk.lastRuns()['disk-check']!.finishedAt).toBe(at);
      const bad = new Housekeeping({ node, registry: node.registry, egress: node.egress, schedules: { ...NO_SCHEDULE, retention: 'every day' } });
      expect(() => bad.start()).toThrow(/invalid cron expression for retention/);
    } finally {
      await t.stop();
    }
  });
});
