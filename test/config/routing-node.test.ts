/**
 * Tag routing through a running node (issue 19): instances sent by STOW-RS are routed at arrival on their
 * headers (first matching route wins), a study no route matches is kept but not processed, and instances of a
 * study that matches only once a later series arrives are all processed on that route.
 */
import { StoredInstance } from '../../src/types';
import { StudyJob } from '../../src/jobs/queue';
import { Route } from '../../src/config/schema';
import { el, newUid, part10 } from '../helpers/dicom-bytes';
import { TestNode, startTestNode, stowBody, waitFor } from '../helpers/node';

const MR = '1.2.840.10008.5.1.4.1.1.4';
const CT = '1.2.840.10008.5.1.4.1.1.2';

/** A small image with the routing attributes (elements in tag order). */
function image(o: { study: string; series: string; modality: string; studyDescription?: string; seriesDescription?: string; bodyPart?: string }): Buffer {
  const sop = newUid();
  const cls = o.modality === 'CT' ? CT : MR;
  const ds = Buffer.concat([
    el(0x00080016, 'UI', cls),
    el(0x00080018, 'UI', sop),
    el(0x00080060, 'CS', o.modality),
    ...(o.studyDescription ? [el(0x00081030, 'LO', o.studyDescription)] : []),
    ...(o.seriesDescription ? [el(0x0008103e, 'LO', o.seriesDescription)] : []),
    el(0x00100020, 'LO', 'ROUTING-TEST'),
    ...(o.bodyPart ? [el(0x00180015, 'CS', o.bodyPart)] : []),
    el(0x0020000d, 'UI', o.study),
    el(0x0020000e, 'UI', o.series),
    el(0x00200011, 'IS', '1'),
    el(0x00280002, 'US', 1),
    el(0x00280004, 'CS', 'MONOCHROME2'),
    el(0x00280010, 'US', 8),
    el(0x00280011, 'US', 8),
    el(0x00280100, 'US', 16),
    el(0x00280101, 'US', 16),
    el(0x00280102, 'US', 15),
    el(0x00280103, 'US', 0),
    el(0x7fe00010, 'OW', Buffer.alloc(128, 3)),
  ]);
  return part10(ds, { sopClassUid: cls, sopInstanceUid: sop });
}

let t: TestNode;
const processed: { route: string; study: string; instances: number }[] = [];

beforeAll(async () => {
  t = await startTestNode({
    routes: [
      { name: 'ct-head', match: { all: [{ field: 'Modality', equals: 'CT' }, { field: 'BodyPartExamined', in: ['HEAD', 'BRAIN'] }] }, quietPeriodSeconds: 0.5 },
      { name: 'tumour', match: { field: 'StudyDescription', matches: 'tumou?r' }, quietPeriodSeconds: 0.5, tasks: ['brain-tumour-mr'] },
      { name: 'diffusion', match: { field: 'SeriesDescription', matches: 'diff' }, quietPeriodSeconds: 0.5 },
    ],
  });
  t.node.setProcessor(async (job: StudyJob, instances: StoredInstance[], route: Route) => {
    processed.push({ route: route.name, study: job.studyUid, instances: instances.length });
    return { state: 'not_processed', outcome: { reason: 'test processor' } };
  });
}, 60000);

afterAll(async () => {
  await t?.stop();
});

async function stow(files: Buffer[]): Promise<void> {
  const { body, contentType } = stowBody(files.map((b) => ({ body: b })));
  const res = await fetch(`${t.httpUrl}/dicom-web/studies`, { method: 'POST', headers: { 'Content-Type': contentType }, body });
  expect(res.status).toBe(200);
}

test('routes by Modality + BodyPartExamined and by StudyDescription; first match wins', async () => {
  const ct = newUid();
  const ctSeries = newUid();
  await stow([image({ study: ct, series: ctSeries, modality: 'CT', bodyPart: 'HEAD', studyDescription: 'CT head tumour?' }), image({ study: ct, series: ctSeries, modality: 'CT', bodyPart: 'HEAD' })]);
  const mr = newUid();
  await stow([image({ study: mr, series: newUid(), modality: 'MR', studyDescription: 'MR Brain TUMOUR follow-up', seriesDescription: 'ep2d_diff' })]);
  await waitFor(() => processed.some((p) => p.study === ct) && processed.some((p) => p.study === mr), 20000, 'both studies processed');
  // The CT's description also matches "tumour": ct-head comes first in the list, so it wins.
  expect(processed.find((p) => p.study === ct)).toEqual({ route: 'ct-head', study: ct, instances: 2 });
  expect(processed.find((p) => p.study === mr)?.route).toBe('tumour');
}, 30000);

test('a study no route matches is kept, not processed', async () => {
  const knee = newUid();
  await stow([image({ study: knee, series: newUid(), modality: 'MR', studyDescription: 'MR knee', bodyPart: 'KNEE' })]);
  await new Promise((r) => setTimeout(r, 1500));
  expect(processed.some((p) => p.study === knee)).toBe(false);
  expect(t.node.store.listStudy(knee)).toHaveLength(1);
  expect((await t.node.queue.list()).some((j) => j.studyUid === knee)).toBe(false);
}, 20000);

test('instances held until a later series makes a route match are processed with it', async () => {
  const study = newUid();
  const t2 = newUid();
  await stow([image({ study, series: t2, modality: 'MR', seriesDescription: 't2_tse_tra' }), image({ study, series: t2, modality: 'MR', seriesDescription: 't2_tse_tra' })]);
  await new Promise((r) => setTimeout(r, 300));
  await stow([image({ study, series: newUid(), modality: 'MR', seriesDescription: 'ep2d_diff_trace' })]);
  await waitFor(() => processed.some((p) => p.study === study), 20000, 'held study processed');
  expect(processed.find((p) => p.study === study)).toEqual({ route: 'diffusion', study, instances: 3 });
}, 30000);
