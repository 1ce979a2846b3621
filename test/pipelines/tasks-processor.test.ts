/**
 * The generic processor with more than one task (issue 14): a task that fails next to one that made results
 * leaves the study done with the failure recorded in its decision; when every selected task fails the job
 * fails (retried, then dead-lettered) as a failing study did before tasks. brain-tumour-mr's acceptance is
 * forced here (the test study has no tumour sequences) with a model this node does not have, so its real run()
 * fails ("model brain-tumour missing").
 */
import * as fs from 'fs';
import { brainTumourMr } from '../../src/pipelines/brain-tumour-mr';
import { startTestNode, waitFor, TestNode } from '../helpers/node';
import { ADMIN_TOKEN, strokeStudy, stow, tinyModelsDir } from '../admin/helpers';

let t: TestNode;

beforeAll(async () => {
  t = await startTestNode({
    admin: { token: ADMIN_TOKEN },
    inference: { modelsDir: tinyModelsDir() },
    queue: { maxAttempts: 1 },
    routes: [
      { name: 'both', match: { calledAeTitle: 'BOTH' }, tasks: ['stroke-mr', { task: 'brain-tumour-mr', when: { present: ['DWI'] } }], quietPeriodSeconds: 0.5 },
      { name: 'tumour-only', tasks: ['brain-tumour-mr'], quietPeriodSeconds: 0.5 },
    ],
  });
  jest.spyOn(brainTumourMr, 'accept').mockImplementation(() => ({ run: true, plan: { model: 'brain-tumour', present: ['T1C'], missing: ['FLAIR', 'T1', 'T2'] } }));
}, 60000);

afterAll(async () => {
  jest.restoreAllMocks();
  await t?.stop();
});

const finished = async (n: number) =>
  waitFor(async () => (await t.node.queue.list({ states: ['done', 'not_processed', 'failed', 'dead'] })).length >= n, 60000, `${n} job(s) finished`);

test('one task fails, the other made results: done, the failure in its decision and the note', async () => {
  // STOW-RS has no called AE: commit through the store with one, as the DIMSE receiver does
  const s = strokeStudy();
  for (const b of s.files) {
    const tmp = t.node.store.tempPath();
    fs.writeFileSync(tmp, b);
    await t.node.store.commit(tmp, { sourceAe: 'MRI', calledAe: 'BOTH' });
  }
  await finished(1);
  const job = (await t.node.queue.list())[0];
  expect(job.route).toBe('both');
  expect(job.state).toBe('done');
  const o = job.outcome as { tasks: { task: string; run: boolean; ran: boolean; error?: string; outputs?: unknown[] }[]; note: string; outputs: { task: string }[] };
  const d = Object.fromEntries(o.tasks.map((x) => [x.task, x]));
  expect(d['stroke-mr']).toMatchObject({ run: true, ran: true });
  expect(d['brain-tumour-mr']).toMatchObject({ run: true, ran: false, error: expect.stringMatching(/model brain-tumour missing/) });
  expect(o.note).toMatch(/failed: brain-tumour-mr: model brain-tumour missing/);
  expect(new Set(o.outputs.map((x) => x.task))).toEqual(new Set(['stroke-mr']));
}, 90000);

test('every selected task fails: the job fails as before', async () => {
  const s = strokeStudy();
  expect(await stow(t.node.app, s.files)).toBe(200); // no called AE → route tumour-only
  await finished(2);
  const job = (await t.node.queue.list()).find((j) => j.studyUid === s.study.studyInstanceUid)!;
  expect(job.route).toBe('tumour-only');
  expect(['failed', 'dead']).toContain(job.state);
  expect(job.error).toMatch(/brain-tumour-mr: model brain-tumour missing/);
}, 90000);
