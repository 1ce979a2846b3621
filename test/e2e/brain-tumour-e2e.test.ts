/**
 * Brain tumour task end to end with the real Orthanc peer and the committed models: a BraTS TEST-split case
 * (Brats18_TCIA02_370_1) written as a clinical DICOM study (5 mm slices, T2 on its own 256² matrix) is stored
 * in Orthanc, Orthanc sends it to the node by C-STORE (T1 missing), the node runs brain-tumour-mr on a route
 * that lists it, and the three-segment SEG and the SR come back into the same study in Orthanc, dciodvfy
 * clean, with the tumour where the expert labels have it. The same case with all four sequences by STOW-RS.
 * And the default route (no tasks configured) does not run the tumour task on this study, and says why.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { seq, str, type NaturalDataset } from '../../src/dicom/dcmjs';
import { storescu } from '../harness/dcmtk';
import { OrthancHandle, startOrthanc } from '../harness/orthanc';
import { freePort } from '../harness/ports';
import { bratsCaseAvailable, writeBratsStudy, type BratsStudy } from '../helpers/brats-study';
import { dciodvfy } from '../helpers/dciodvfy';
import { startTestNode, stowBody, TestNode, waitFor } from '../helpers/node';
import { segAndSrInOrthanc, type E2eOutcome } from '../helpers/orthanc-results';
import { diceOf, MODELS_DIR, modelReady, segToLabels, WT } from '../helpers/tumour-seg';

const CASE = 'Brats18_TCIA02_370_1';
const ready = bratsCaseAvailable(CASE) && modelReady('brats-shaspec');
const maybe = ready ? describe : describe.skip;
/** Whole-tumour Dice floor: brain-tumour-task.test.ts measures this case (a whole-brain mask gives ~0.14). */
const WT_FLOOR = 0.5;


maybe('brain tumour study end to end through the real Orthanc', () => {
  let t: TestNode;
  let pacs: OrthancHandle;
  let work: string;

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tumour-e2e-'));
    const nodePort = await freePort();
    pacs = await startOrthanc({ aet: 'ORTHANC', modalities: { NODE: ['STROKEAI', '127.0.0.1', nodePort] } });
    t = await startTestNode({
      dimse: { port: nodePort, allowAnyCaller: false, allowedPeers: ['ORTHANC', 'STORESCU'].map((aeTitle) => ({ aeTitle })) },
      destinations: [{ name: 'orthanc', type: 'dimse', host: '127.0.0.1', port: pacs.dicomPort, calledAeTitle: 'ORTHANC' }],
      routes: [
        // a site's stroke route: no tasks configured → the default tasks (stroke only)
        { name: 'stroke', match: { callingAeTitle: 'STORESCU' }, quietPeriodSeconds: 2, destinations: ['orthanc'] },
        { name: 'tumour', tasks: ['brain-tumour-mr'], quietPeriodSeconds: 2, destinations: ['orthanc'] },
      ],
      inference: { modelsDir: MODELS_DIR },
    });
  }, 180000);

  afterAll(async () => {
    await t?.stop();
    await pacs?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  async function waitJobs(n: number): Promise<void> {
    await waitFor(async () => (await t.node.queue.list({ states: ['done', 'not_processed', 'failed', 'dead'] })).length >= n, 240000, `${n} job(s) finished`);
    await (t.node as unknown as { egress: { sendNow(): Promise<void> } }).egress.sendNow();
  }
  const finished = async () => (await t.node.queue.list({ states: ['done', 'not_processed', 'failed', 'dead'] })).length;

  const resultsInOrthanc = (studyUid: string) => segAndSrInOrthanc(pacs, studyUid);

  function checkResults(r: { seg: { b: Buffer; ds: NaturalDataset }; sr: { b: Buffer; ds: NaturalDataset } }, study: BratsStudy, refSeq: 'T1C' | 'FLAIR'): number {
    expect(dciodvfy(r.seg.b).errors).toEqual([]);
    expect(dciodvfy(r.sr.b).errors).toEqual([]);
    const seg = r.seg.ds;
    expect(str(seg, 'StudyInstanceUID')).toBe(study.study.studyInstanceUid);
    expect(str(r.sr.ds, 'StudyInstanceUID')).toBe(study.study.studyInstanceUid);
    expect(str(seg, 'FrameOfReferenceUID')).toBe(study.study.frameOfReferenceUid);
    const segments = seq(seg, 'SegmentSequence');
    expect(segments.map((s) => str(s, 'SegmentLabel'))).toEqual(['Necrotic / non-enhancing tumour core', 'Peritumoural oedema', 'Enhancing tumour']);
    const ref = study.series[refSeq]!;
    expect(seq(seg, 'ReferencedSeriesSequence').map((s) => str(s, 'SeriesInstanceUID'))).toEqual([ref.seriesInstanceUid]);
    expect(JSON.stringify(r.sr.ds)).toContain(str(seg, 'SOPInstanceUID')!);
    const wt = diceOf(segToLabels(seg, ref), ref.truth, WT);
    expect(wt).toBeGreaterThan(WT_FLOOR);
    return wt;
  }

  test('C-STORE from Orthanc, T1 missing, T2 at 256²: SEG (three segments) and SR back in the same study', async () => {
    const study = writeBratsStudy({ caseId: CASE, sequences: ['FLAIR', 'T1C', 'T2'], matrix: { T2: 256 } });
    for (const s of study.list) for (const f of s.files) await pacs.uploadFile(f.part10);
    const before = await finished();
    await pacs.storeToModality('NODE', await pacs.findStudies({ StudyInstanceUID: study.study.studyInstanceUid }));
    await waitJobs(before + 1);
    const job = (await t.node.queue.list()).find((j) => j.studyUid === study.study.studyInstanceUid)!;
    expect(job.state).toBe('done');
    const o = job.outcome as E2eOutcome;
    expect(o.route).toBe('tumour');
    expect(o.decision).toBe('brain-tumour');
    expect(o.model?.name).toBe('brats-shaspec');
    const d = o.tasks.find((x) => x.task === 'brain-tumour-mr')!;
    expect(d).toMatchObject({ run: true, ran: true });
    expect(d.reason).toMatch(/without T1/);
    expect(o.note).toMatch(/missing T1/);
    expect(o.tasks.find((x) => x.task === 'stroke-mr')).toMatchObject({ listed: false, run: false });
    for (const k of ['assemble', 'grid', 'brainMask', 'inference', 'encode']) expect(o.timingsMs[k]).toBeGreaterThan(0);
    const wt = checkResults(await resultsInOrthanc(study.study.studyInstanceUid), study, 'T1C');
    console.log(`C-STORE FLAIR+T1C+T2: WT Dice ${wt.toFixed(3)}, ${JSON.stringify(d.measurements)}, timings ${JSON.stringify(o.timingsMs)}`);
  }, 360000);

  test('STOW-RS with all four sequences: SEG and SR in Orthanc', async () => {
    const study = writeBratsStudy({ caseId: CASE, sequences: ['FLAIR', 'T1', 'T1C', 'T2'], matrix: { T2: 256 } });
    const before = await finished();
    const { body, contentType } = stowBody(study.list.flatMap((s) => s.files.map((f) => ({ body: f.part10 }))));
    const res = await fetch(`${t.httpUrl}/dicom-web/studies`, { method: 'POST', headers: { 'Content-Type': contentType, Accept: 'application/dicom+json' }, body });
    expect(res.status).toBe(200);
    await waitJobs(before + 1);
    const job = (await t.node.queue.list()).find((j) => j.studyUid === study.study.studyInstanceUid)!;
    expect(job.state).toBe('done');
    const o = job.outcome as E2eOutcome;
    expect(o.route).toBe('tumour');
    expect(o.note).not.toMatch(/missing/);
    const wt = checkResults(await resultsInOrthanc(study.study.studyInstanceUid), study, 'T1C');
    console.log(`STOW four: WT Dice ${wt.toFixed(3)}, timings ${JSON.stringify(o.timingsMs)}`);
  }, 360000);

  test('the default route (no tasks configured) does not run the tumour task on it, and says why', async () => {
    const study = writeBratsStudy({ caseId: CASE, sequences: ['FLAIR', 'T1', 'T1C', 'T2'], slices: 6, outDir: path.join(work, 'default') });
    const before = await finished();
    const r = await storescu('127.0.0.1', t.dimsePort, study.list.flatMap((s) => s.files.map((f) => f.path!)), { callingAet: 'STORESCU', calledAet: 'STROKEAI' });
    expect(r.files.every((f) => f.outcome === 'success')).toBe(true);
    await waitJobs(before + 1);
    const job = (await t.node.queue.list()).find((j) => j.studyUid === study.study.studyInstanceUid)!;
    expect(job.state).toBe('not_processed');
    const o = job.outcome as E2eOutcome;
    expect(o.route).toBe('stroke');
    expect(o.outputs).toEqual([]);
    const d = o.tasks.find((x) => x.task === 'brain-tumour-mr')!;
    expect(d).toMatchObject({ listed: false, run: false });
    expect(d.reason).toMatch(/not listed in route "stroke" tasks \(stroke-mr, stroke-ct\)/);
    expect(o.reason).toMatch(/nothing usable/);
  }, 240000);
});
