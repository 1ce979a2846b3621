/**
 * The BullMQ/Redis backend in one process against a real Redis: the same node code as the embedded
 * default, with `queue.backend: redis`. Stability timer in Redis (rescheduled by each arrival),
 * late instances → a linked job, retries then dead-letter, operator retry, operator reprocess (a new job
 * linked to the latest, marked manual in its outcome).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openDb } from '../../src/store/db';
import { parseConfig } from '../../src/config/load';
import { RedisQueue } from '../../src/jobs/redis-queue';
import { StabilityRule } from '../../src/jobs/queue';
import { startRedis, RedisHandle } from '../harness/redis';
import { sleep } from '../harness/ports';
import { startTestNode, TestNode, waitFor } from '../helpers/node';
import { strokeStudy, tinyModelsDir, stow } from '../admin/helpers';
import type { StoredInstance } from '../../src/types';

jest.setTimeout(120_000);

let redis: RedisHandle;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

function queueFor(prefix: string, extra: Record<string, unknown> = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rq-'));
  const config = parseConfig({ storage: { dir }, queue: { backend: 'redis', redis: { port: redis.port, prefix }, ...extra } });
  const db = openDb(dir);
  return { q: new RedisQueue(db, config), db, dir };
}

const ref = (sop: string, study: string): StoredInstance => ({
  sopInstanceUid: sop,
  sopClassUid: '1.2.840.10008.5.1.4.1.1.4',
  studyInstanceUid: study,
  seriesInstanceUid: `${study}.1`,
  transferSyntaxUid: '1.2.840.10008.1.2.1',
  path: `/shared/${sop}.dcm`,
  bytes: 1,
  receivedAt: new Date().toISOString(),
  sourceAe: 'T',
});

describe('RedisQueue (BullMQ) against a real Redis', () => {
  test('two queue clients noting one study: one job, timer pushed back by each arrival, late instance → linked job', async () => {
    const rules = new Map<string, StabilityRule>([['default', { route: 'default', quietPeriodMs: 800, requiredSeries: [], priority: 'urgent' }]]);
    const a = queueFor('t1');
    const b = queueFor('t1', {});
    const roles = { receiver: true, worker: false, sender: false };
    await a.q.start({ rules, roles });
    await b.q.start({ rules, roles });
    try {
      const t0 = Date.now();
      for (let i = 0; i < 6; i++) {
        await (i % 2 ? a : b).q.noteArrival('S1', 'default', 'OTHER', 'urgent', undefined, ref(`S1.${i}`, 'S1'));
        await sleep(300); // each gap is shorter than the quiet period: the timer must keep moving
      }
      await b.q.noteArrival('S1', 'default', 'OTHER', 'urgent', undefined, ref('S1.0', 'S1')); // same instance again (other receiver)
      const lastAt = Date.now();
      expect((await a.q.list({ states: ['ready'] })).length).toBe(0);
      await waitFor(async () => (await a.q.list({ states: ['ready'] })).length === 1, 10_000, 'job ready');
      const readyAfter = Date.now() - lastAt;
      expect(readyAfter).toBeGreaterThanOrEqual(700);
      const all = await a.q.list();
      expect(all).toHaveLength(1);
      expect(all[0]).toMatchObject({ state: 'ready', instanceCount: 6, handoff: 'quiet-period' });
      expect(all[0].readyAt! - t0).toBeGreaterThan(6 * 300);
      expect((await a.q.instances(all[0])).map((i) => i.sopInstanceUid).sort()).toEqual([0, 1, 2, 3, 4, 5].map((i) => `S1.${i}`));
      // hand-off happened: a late instance opens a new job linked to the first, covering the whole study
      const late = await a.q.noteArrival('S1', 'default', 'OTHER', 'urgent', undefined, ref('S1.late', 'S1'));
      expect(late.id).not.toBe(all[0].id);
      expect(late.previousJobId).toBe(all[0].id);
      expect((await a.q.instances(late)).length).toBe(7);
      // retention on a receiver asks the shared queue before deleting a study's files
      expect(await a.q.hasOpenJob('S1')).toBe(true);
      expect(await a.q.hasOpenJob('no.such.study')).toBe(false);
    } finally {
      await a.q.close();
      await b.q.close();
    }
  });

  test('a failing job is retried with backoff, then dead-lettered; an operator retry queues it again', async () => {
    const rules = new Map<string, StabilityRule>([['default', { route: 'default', quietPeriodMs: 200, requiredSeries: [], priority: 'urgent' }]]);
    const w = queueFor('t2', { maxAttempts: 2, backoffSeconds: 0.2 });
    await w.q.start({ rules, roles: { receiver: true, worker: true, sender: false } });
    try {
      const j = await w.q.noteArrival('S2', 'default', 'OTHER', 'urgent', undefined, ref('S2.1', 'S2'));
      let claimed;
      await waitFor(async () => !!(claimed = await w.q.claim()), 10_000, 'first claim');
      expect(claimed!.id).toBe(j.id);
      expect(claimed!.attempts).toBe(1);
      expect((await w.q.fail(j.id, 'model crashed')).state).toBe('ready');
      expect(await w.q.claim()).toBeUndefined(); // backing off
      await waitFor(async () => !!(claimed = await w.q.claim()), 10_000, 'second claim');
      expect(claimed!.attempts).toBe(2);
      const dead = await w.q.fail(j.id, 'model crashed again');
      expect(dead).toMatchObject({ state: 'dead', error: 'model crashed again' });
      expect((await w.q.counts()).dead).toBe(1);
      expect(await w.q.retry(j.id)).toBe(true);
      await waitFor(async () => !!(claimed = await w.q.claim()), 10_000, 'claim after operator retry');
      expect(claimed!.id).toBe(j.id);
      await w.q.complete(j.id, 'done', { ok: true });
      expect(await w.q.get(j.id)).toMatchObject({ state: 'done', outcome: { ok: true } });
      expect(await w.q.hasOpenJob('S2')).toBe(false);
    } finally {
      await w.q.close();
    }
  });

  test('operator reprocess: a new job linked to the latest, ready at once, refused while a job of the study is open', async () => {
    const rules = new Map<string, StabilityRule>([['default', { route: 'default', quietPeriodMs: 200, requiredSeries: [], priority: 'urgent' }]]);
    const w = queueFor('t5');
    await w.q.start({ rules, roles: { receiver: true, worker: true, sender: false } });
    try {
      const j = await w.q.noteArrival('S5', 'default', 'OTHER', 'urgent', undefined, ref('S5.1', 'S5'));
      await w.q.noteArrival('S5', 'default', 'OTHER', 'urgent', undefined, ref('S5.2', 'S5'));
      // still collecting: no reprocess (the embedded backend refuses too)
      expect(await w.q.reprocess('S5', 'default', 'urgent', 2)).toBeUndefined();
      let claimed;
      await waitFor(async () => !!(claimed = await w.q.claim()), 10_000, 'first claim');
      expect(claimed!.id).toBe(j.id);
      expect(await w.q.reprocess('S5', 'default', 'urgent', 2)).toBeUndefined(); // running
      await w.q.complete(j.id, 'done', { first: true });
      const r = await w.q.reprocess('S5', 'default', 'urgent', 2);
      expect(r).toMatchObject({ state: 'ready', previousJobId: j.id, handoff: 'operator-reprocess', instanceCount: 2, studyUid: 'S5', route: 'default' });
      expect(r!.id).not.toBe(j.id);
      expect(await w.q.hasOpenJob('S5')).toBe(true);
      expect(await w.q.reprocess('S5', 'default', 'urgent', 2)).toBeUndefined(); // the reprocess itself is open
      // the first job and its outcome stay as they were
      expect(await w.q.get(j.id)).toMatchObject({ state: 'done', outcome: { first: true }, handoff: 'quiet-period' });
      // the worker takes the new job with the whole study's references
      await waitFor(async () => !!(claimed = await w.q.claim()), 10_000, 'claim of the reprocess job');
      expect(claimed!).toMatchObject({ id: r!.id, state: 'running', handoff: 'operator-reprocess', attempts: 1 });
      expect((await w.q.instances(claimed!)).map((i) => i.sopInstanceUid).sort()).toEqual(['S5.1', 'S5.2']);
      await w.q.complete(r!.id, 'done', { second: true });
      expect(await w.q.hasOpenJob('S5')).toBe(false);
      // a later instance links to the reprocess job (the study's latest)
      const late = await w.q.noteArrival('S5', 'default', 'OTHER', 'urgent', undefined, ref('S5.3', 'S5'));
      expect(late.previousJobId).toBe(r!.id);
      expect((await w.q.instances(late)).length).toBe(3);
    } finally {
      await w.q.close();
    }
  });

  test('a worker takes only routes whose models it can run, urgent routes first; it publishes its execution provider', async () => {
    const routes = [
      { name: 'research', priority: 'research' },
      { name: 'stroke', priority: 'urgent' },
      { name: 'ct', priority: 'urgent' },
    ];
    const rules = new Map<string, StabilityRule>(routes.map((r) => [r.name, { route: r.name, quietPeriodMs: 100, requiredSeries: [], priority: r.priority as 'urgent' }]));
    const w = queueFor('t4', {});
    // the same config as a deployment: every process lists every route
    const cfg = parseConfig({ nodeName: 'gpu-1', storage: { dir: w.dir }, routes, queue: { backend: 'redis', redis: { port: redis.port, prefix: 't4' } } });
    const q = new RedisQueue(w.db, cfg);
    await q.start({
      rules,
      roles: { receiver: true, worker: true, sender: false },
      cannotRun: (r) => (r.name === 'ct' ? 'no ct2dwi model here' : undefined),
      executionProvider: 'webgpu',
    });
    try {
      const ct = await q.noteArrival('CT1', 'ct', 'CT', 'urgent', undefined, ref('CT1.1', 'CT1'));
      const research = await q.noteArrival('R1', 'research', 'OTHER', 'research', undefined, ref('R1.1', 'R1'));
      const stroke = await q.noteArrival('S4', 'stroke', 'DWI', 'urgent', undefined, ref('S4.1', 'S4'));
      // handed on = closed and queued in BullMQ (the job record turns ready a moment before)
      const handed: number[] = [];
      await waitFor(async () => handed.push(...(await q.promoteStable(rules)).map((j) => j.id)) === 3, 10_000, 'three jobs handed on');
      expect((await q.counts()).ready).toBe(3);
      expect((await q.claim())!.id).toBe(stroke.id); // urgent before research, though it came last
      expect((await q.claim())!.id).toBe(research.id);
      expect(await q.claim()).toBeUndefined(); // the ct job waits for a worker that can run it
      expect((await q.get(ct.id))!.state).toBe('ready');
      expect(await q.workers()).toEqual([expect.objectContaining({ node: 'gpu-1', routes: ['stroke', 'research'], executionProvider: 'webgpu' })]);
    } finally {
      await q.close();
      await w.q.close();
    }
  });

  test('a whole node on the Redis backend processes a STOW-RS study end to end', async () => {
    let t: TestNode | undefined;
    try {
      t = await startTestNode({
        inference: { modelsDir: tinyModelsDir() },
        routes: [{ name: 'default', quietPeriodSeconds: 1 }],
        queue: { backend: 'redis', redis: { port: redis.port, prefix: 't3' } },
      });
      expect(t.node.queue.backend).toBe('redis');
      const s = strokeStudy();
      expect(await stow(t.node.app, s.files)).toBe(200);
      await waitFor(async () => (await t!.node.queue.counts()).done === 1, 30_000, 'study done');
      const [job] = await t.node.queue.list();
      expect(job).toMatchObject({ state: 'done', instanceCount: 6 });
      expect(job.outcome).toMatchObject({ decision: 'lesion', availability: { available: { DWI: true, ADC: true } } });
      // Admin "Reprocess study": a new job linked to this one, marked manual; this job's outcome stays.
      const rp = await t.node.reprocess(job.studyUid);
      if (!rp.ok) throw new Error(`reprocess refused: ${rp.error}`);
      expect(rp.job.id).not.toBe(job.id);
      expect(rp.job).toMatchObject({ previousJobId: job.id, handoff: 'operator-reprocess' });
      await waitFor(async () => (await t!.node.queue.counts()).done === 2, 30_000, 'reprocess done');
      const again = (await t.node.queue.get(rp.job.id))!;
      expect(again).toMatchObject({ state: 'done', instanceCount: 6 });
      expect(again.outcome).toMatchObject({ decision: 'lesion', manualReprocess: { previousJobId: job.id } });
      const first = (await t.node.queue.get(job.id))!;
      expect(first).toMatchObject({ state: 'done', handoff: job.handoff });
      expect((first.outcome as Record<string, unknown>).manualReprocess).toBeUndefined();
    } finally {
      await t?.stop();
    }
  });
});
