/**
 * Liver task (issue 16) end to end with the real Orthanc peer and the committed liver model: the committed CT and
 * MRI phantoms (test/fixtures/liver, synthetic, no patient data) written as an abdominal CT study (portal-venous,
 * BodyPartExamined ABDOMEN) and an abdominal MRI study (T1 post-contrast, gadolinium) are sent to the node (CT:
 * stored in Orthanc, Orthanc sends it by C-STORE; MRI: STOW-RS), a route matching BodyPartExamined ABDOMEN / LIVER
 * runs liver-ct-mr, and the two-segment SEG and the SR come back into the same study in Orthanc, dciodvfy clean,
 * each SEG frame on its own source slice, the liver where the phantom's truth has it.
 * And the task selection of the head protocols is unaffected: a brain MR study on a route that lists
 * brain-tumour-mr and liver-ct-mr gets the tumour task only (the liver task says why not), and the abdominal CT
 * arriving on the default (stroke) route gets nothing.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { seq, str } from '../../src/dicom/dcmjs';
import { storescu } from '../harness/dcmtk';
import { OrthancHandle, startOrthanc } from '../harness/orthanc';
import { freePort } from '../harness/ports';
import { bratsCaseAvailable, writeBratsStudy } from '../helpers/brats-study';
import { dciodvfy } from '../helpers/dciodvfy';
import { CT_PORTAL_TAGS, liverFixture, liverFixturesAvailable, writeAbdomenSeries, writeLiverFixtureStudy, type LiverFixtureStudy } from '../helpers/liver-study';
import { newStudyContext } from '../helpers/series-writer';
import { startTestNode, stowBody, TestNode, waitFor } from '../helpers/node';
import { segAndSrInOrthanc, type E2eOutcome } from '../helpers/orthanc-results';
import { diceOf, MODELS_DIR, modelReady, segToLabels } from '../helpers/tumour-seg';

const ready = liverFixturesAvailable() && modelReady('liver-aqcf');
const maybe = ready ? describe : describe.skip;
/**
 * Liver Dice floor on the phantoms (truth = the phantom's liver incl. tumours): liver-aqcf 0.1.0 gives 0.957 (CT) and
 * 0.962 (MRI) here (the smoke model 0.0.1: 0.887 / 0.871); the floor says the SEG lands on the liver through the
 * whole chain, not how good the model is (models/README.md has the TEST-set numbers).
 */
const LIVER_DICE_FLOOR = 0.85;


maybe('liver studies (CT and MRI) end to end through the real Orthanc', () => {
  let t: TestNode;
  let pacs: OrthancHandle;
  let work: string;

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'liver-e2e-'));
    const nodePort = await freePort();
    pacs = await startOrthanc({ aet: 'ORTHANC', modalities: { NODE: ['STROKEAI', '127.0.0.1', nodePort] } });
    t = await startTestNode({
      dimse: { port: nodePort, allowAnyCaller: false, allowedPeers: ['ORTHANC', 'STORESCU', 'NEURO'].map((aeTitle) => ({ aeTitle })) },
      destinations: [{ name: 'orthanc', type: 'dimse', host: '127.0.0.1', port: pacs.dicomPort, calledAeTitle: 'ORTHANC' }],
      routes: [
        // a site's stroke route for one modality's AE: default tasks (stroke only)
        { name: 'stroke', match: { callingAeTitle: 'STORESCU' }, quietPeriodSeconds: 2, destinations: ['orthanc'] },
        { name: 'neuro', match: { callingAeTitle: 'NEURO' }, tasks: ['brain-tumour-mr', 'liver-ct-mr'], quietPeriodSeconds: 2, destinations: ['orthanc'] },
        // the abdomen route of docs/routing.md
        { name: 'abdomen', match: { field: 'BodyPartExamined', in: ['ABDOMEN', 'LIVER', 'ABDOMENPELVIS'] }, tasks: ['liver-ct-mr'], quietPeriodSeconds: 2, destinations: ['orthanc'] },
      ],
      inference: { modelsDir: MODELS_DIR },
    });
  }, 180000);

  afterAll(async () => {
    await t?.stop();
    await pacs?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  const finished = async () => (await t.node.queue.list({ states: ['done', 'not_processed', 'failed', 'dead'] })).length;
  async function waitJobs(n: number): Promise<void> {
    await waitFor(async () => (await finished()) >= n, 240000, `${n} job(s) finished`);
    await (t.node as unknown as { egress: { sendNow(): Promise<void> } }).egress.sendNow();
  }
  async function jobOf(studyUid: string) {
    return (await t.node.queue.list()).filter((j) => j.studyUid === studyUid).sort((a, b) => b.id - a.id)[0];
  }

  const resultsInOrthanc = (studyUid: string) => segAndSrInOrthanc(pacs, studyUid);

  function checkResults(r: Awaited<ReturnType<typeof resultsInOrthanc>>, s: LiverFixtureStudy): number {
    expect(dciodvfy(r.seg.b).errors).toEqual([]);
    expect(dciodvfy(r.sr.b).errors).toEqual([]);
    const seg = r.seg.ds;
    expect(str(seg, 'StudyInstanceUID')).toBe(s.study.studyInstanceUid);
    expect(str(r.sr.ds, 'StudyInstanceUID')).toBe(s.study.studyInstanceUid);
    expect(str(seg, 'FrameOfReferenceUID')).toBe(s.study.frameOfReferenceUid);
    expect(seq(seg, 'SegmentSequence').map((x) => str(x, 'SegmentLabel'))).toEqual(['Liver', 'Liver tumour']);
    expect(seq(seg, 'ReferencedSeriesSequence').map((x) => str(x, 'SeriesInstanceUID'))).toEqual([s.series.seriesInstanceUid]);
    const srText = JSON.stringify(r.sr.ds);
    expect(srText).toContain(str(seg, 'SOPInstanceUID')!);
    expect(srText).toContain('PHANTOM-TRAINED MODEL');
    expect(srText).toContain('no Couinaud segment');
    // frames placed by their referenced SOP instance: liver (1 + 2) against the phantom's liver
    const dice = diceOf(segToLabels(seg, s.series), s.fixture.truth, [1, 2]);
    expect(dice).toBeGreaterThan(LIVER_DICE_FLOOR);
    return dice;
  }

  test('abdominal CT, C-STORE from Orthanc: liver SEG (two segments) and SR back in the same study', async () => {
    const s = writeLiverFixtureStudy('ct');
    for (const f of s.series.files) await pacs.uploadFile(f.part10);
    const before = await finished();
    await pacs.storeToModality('NODE', await pacs.findStudies({ StudyInstanceUID: s.study.studyInstanceUid }));
    await waitJobs(before + 1);
    const job = await jobOf(s.study.studyInstanceUid);
    expect(job.state).toBe('done');
    const o = job.outcome as E2eOutcome;
    expect(o.route).toBe('abdomen');
    expect(o.decision).toBe('liver');
    expect(o.model?.name).toBe('liver-aqcf');
    const d = o.tasks.find((x) => x.task === 'liver-ct-mr')!;
    expect(d).toMatchObject({ run: true, ran: true });
    expect(d.reason).toMatch(/portal-venous CT "ABD PORTAL VENOUS 3.0 STD"/);
    expect(o.availability.abdomen?.pick?.kind).toBe('CT_PORTAL_VENOUS');
    expect(o.tasks.find((x) => x.task === 'stroke-ct')).toMatchObject({ listed: false, run: false });
    for (const k of ['assemble', 'load', 'preprocess', 'inference', 'postprocess', 'encode']) expect(o.timingsMs[k]).toBeGreaterThan(0);
    const dice = checkResults(await resultsInOrthanc(s.study.studyInstanceUid), s);
    console.log(`CT C-STORE: liver Dice ${dice.toFixed(3)}, ${JSON.stringify(d.measurements)}, timings ${JSON.stringify(o.timingsMs)}`);
  }, 360000);

  test('abdominal MRI (T1 post-contrast), STOW-RS: SEG and SR in Orthanc', async () => {
    const s = writeLiverFixtureStudy('mr');
    const before = await finished();
    const { body, contentType } = stowBody(s.series.files.map((f) => ({ body: f.part10 })));
    const res = await fetch(`${t.httpUrl}/dicom-web/studies`, { method: 'POST', headers: { 'Content-Type': contentType, Accept: 'application/dicom+json' }, body });
    expect(res.status).toBe(200);
    await waitJobs(before + 1);
    const job = await jobOf(s.study.studyInstanceUid);
    expect(job.state).toBe('done');
    const o = job.outcome as E2eOutcome;
    expect(o.route).toBe('abdomen');
    expect(o.decision).toBe('liver');
    expect(o.availability.abdomen?.pick?.kind).toBe('MR_T1C');
    const dice = checkResults(await resultsInOrthanc(s.study.studyInstanceUid), s);
    console.log(`MRI STOW: liver Dice ${dice.toFixed(3)}, ${JSON.stringify(o.tasks.find((x) => x.task === 'liver-ct-mr')!.measurements)}, timings ${JSON.stringify(o.timingsMs)}`);
  }, 360000);

  test('the abdominal CT on the default (stroke) route gets nothing, and the liver task says it is not listed', async () => {
    const s = writeLiverFixtureStudy('ct', { outDir: path.join(work, 'ct-default') });
    const before = await finished();
    const r = await storescu('127.0.0.1', t.dimsePort, s.series.files.map((f) => f.path!), { callingAet: 'STORESCU', calledAet: 'STROKEAI' });
    expect(r.files.every((f) => f.outcome === 'success')).toBe(true);
    await waitJobs(before + 1);
    const job = await jobOf(s.study.studyInstanceUid);
    expect(job.state).toBe('not_processed');
    const o = job.outcome as E2eOutcome;
    expect(o.route).toBe('stroke');
    expect(o.outputs).toEqual([]);
    expect(o.tasks.find((x) => x.task === 'liver-ct-mr')).toMatchObject({ listed: false, run: false, reason: expect.stringMatching(/not listed in route "stroke" tasks \(stroke-mr, stroke-ct\)/) });
    expect(o.tasks.find((x) => x.task === 'stroke-ct')!.reason).toMatch(/no usable head CT/);
  }, 240000);

  test('an abdominal CT of 7 mm slices on the abdomen route is not processed, and the reason says why', async () => {
    const fx = liverFixture('ct');
    const study = newStudyContext({ patientName: 'PHANTOM^LIVER', patientId: 'LIVER-THICK' });
    const s = writeAbdomenSeries(
      { modality: 'CT', rows: fx.rows, columns: fx.columns, slices: 6, pixelSpacing: [fx.pixelSpacing, fx.pixelSpacing], sliceThickness: 7, sliceSpacing: 7, imagePositionPatientFirst: fx.firstIpp, data: fx.data.slice(0, 6 * fx.rows * fx.columns), seriesDescription: 'ABD PV 7mm', tags: CT_PORTAL_TAGS },
      study,
    );
    const before = await finished();
    const { body, contentType } = stowBody(s.files.map((f) => ({ body: f.part10 })));
    expect((await fetch(`${t.httpUrl}/dicom-web/studies`, { method: 'POST', headers: { 'Content-Type': contentType, Accept: 'application/dicom+json' }, body })).status).toBe(200);
    await waitJobs(before + 1);
    const job = await jobOf(study.studyInstanceUid);
    expect(job.state).toBe('not_processed');
    const o = job.outcome as E2eOutcome;
    expect(o.route).toBe('abdomen');
    expect(o.reason).toMatch(/^nothing usable: liver-ct-mr: no usable abdominal CT or MRI series \("ABD PV 7mm": BodyPartExamined ABDOMEN; portal-venous CT, slice thickness 7 mm thicker than 5 mm/);
  }, 240000);

  const brats = bratsCaseAvailable('Brats18_TCIA02_370_1') && modelReady('brats-shaspec') ? test : test.skip;
  brats('a brain MR study on a route listing brain-tumour-mr and liver-ct-mr gets the tumour task only', async () => {
    const study = writeBratsStudy({ caseId: 'Brats18_TCIA02_370_1', sequences: ['FLAIR', 'T1C'], slices: 6, outDir: path.join(work, 'neuro') });
    const before = await finished();
    const r = await storescu('127.0.0.1', t.dimsePort, study.list.flatMap((x) => x.files.map((f) => f.path!)), { callingAet: 'NEURO', calledAet: 'STROKEAI' });
    expect(r.files.every((f) => f.outcome === 'success')).toBe(true);
    await waitJobs(before + 1);
    const job = await jobOf(study.study.studyInstanceUid);
    const o = job.outcome as E2eOutcome;
    expect(o.route).toBe('neuro');
    expect(o.decision).toBe('brain-tumour');
    expect(o.tasks.find((x) => x.task === 'brain-tumour-mr')).toMatchObject({ run: true, ran: true });
    const liver = o.tasks.find((x) => x.task === 'liver-ct-mr')!;
    expect(liver).toMatchObject({ listed: true, run: false, inputsMissing: true });
    expect(liver.reason).toMatch(/no usable abdominal CT or MRI series .*BodyPartExamined BRAIN: a head\/neck examination/);
  }, 240000);
});
