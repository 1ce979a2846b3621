/**
 * Issue 15 end to end through the real Orthanc: the BraTS TEST-split case Brats18_TCIA02_370_1 written as a clinical
 * study (5 mm, 30 slices, T2 on its own 256² matrix) with T1C and FLAIR missing is stored in Orthanc, Orthanc sends
 * it to the node by C-STORE, the node runs brain-tumour-mr (route lists it) and sends back into the same study: the
 * tumour SEG, the SR, a synthetic T1C series, a synthetic FLAIR series and one fused series, every instance
 * dciodvfy clean, each series one instance per reference (T2) slice on the reference's positions and frame of
 * reference, labelled synthetic (SyntheticData YES, "AI-generated, not acquired", Synthesizing Equipment).
 *
 * Models: brats-shaspec and, when committed, the trained brats-m2dn / brats-nslf (else the tiny stand-ins with the
 * same interfaces: the printed line says which).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { nums, readPart10, seq, str, type NaturalDataset } from '../../src/dicom/dcmjs';
import { OrthancHandle, startOrthanc } from '../harness/orthanc';
import { freePort } from '../harness/ports';
import { bratsCaseAvailable, writeBratsStudy } from '../helpers/brats-study';
import { dciodvfy } from '../helpers/dciodvfy';
import { startTestNode, TestNode, waitFor } from '../helpers/node';
import { synthesisModelsDir } from '../helpers/synthesis-models';
import { modelReady } from '../helpers/tumour-seg';

const CASE = 'Brats18_TCIA02_370_1';
const SEG_CLASS = '1.2.840.10008.5.1.4.1.1.66.4';
const SC_CLASS = '1.2.840.10008.5.1.4.1.1.7';
const SR_CLASSES = ['1.2.840.10008.5.1.4.1.1.88.22', '1.2.840.10008.5.1.4.1.1.88.33', '1.2.840.10008.5.1.4.1.1.88.34'];
const ready = bratsCaseAvailable(CASE) && modelReady('brats-shaspec');
const maybe = ready ? describe : describe.skip;

maybe('brain tumour study with T1C and FLAIR missing: synthetic and fused series through the real Orthanc', () => {
  let t: TestNode;
  let pacs: OrthancHandle;
  let work: string;
  let which: { m2dn: string; nslf: string };

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'synth-e2e-'));
    const models = synthesisModelsDir({ real: true });
    which = { m2dn: models.m2dn, nslf: models.nslf };
    const nodePort = await freePort();
    pacs = await startOrthanc({ aet: 'ORTHANC', modalities: { NODE: ['STROKEAI', '127.0.0.1', nodePort] } });
    t = await startTestNode({
      dimse: { port: nodePort, allowAnyCaller: false, allowedPeers: [{ aeTitle: 'ORTHANC' }] },
      destinations: [{ name: 'orthanc', type: 'dimse', host: '127.0.0.1', port: pacs.dicomPort, calledAeTitle: 'ORTHANC' }],
      routes: [{ name: 'tumour', tasks: ['brain-tumour-mr'], quietPeriodSeconds: 2, destinations: ['orthanc'] }],
      inference: { modelsDir: models.dir },
      brainTumour: { synthesis: { budgetSeconds: 600 } },
    });
  }, 180000);

  afterAll(async () => {
    await t?.stop();
    await pacs?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('C-STORE from Orthanc: SEG, SR, synthetic T1C, synthetic FLAIR and a fused series back in the same study', async () => {
    const study = writeBratsStudy({ caseId: CASE, sequences: ['T1', 'T2'], matrix: { T2: 256 } });
    for (const s of study.list) for (const f of s.files) await pacs.uploadFile(f.part10);
    const acquired = study.list.reduce((n, s) => n + s.files.length, 0);
    await pacs.storeToModality('NODE', await pacs.findStudies({ StudyInstanceUID: study.study.studyInstanceUid }));
    await waitFor(async () => (await t.node.queue.list({ states: ['done', 'not_processed', 'failed', 'dead'] })).length >= 1, 540000, 'job finished');
    await (t.node as unknown as { egress: { sendNow(): Promise<void> } }).egress.sendNow();
    const job = (await t.node.queue.list()).find((j) => j.studyUid === study.study.studyInstanceUid)!;
    expect(job.state).toBe('done');
    const o = job.outcome as Record<string, any>;
    expect(o.decision).toBe('brain-tumour');
    expect(o.synthesis.sequences.sort()).toEqual(['FLAIR', 'T1C']);
    expect(o.fusion.fusedFrom).toEqual(['T1', 'T2']);

    const ref = study.series.T2!; // FLAIR and T1C absent: T2 is the reference (REFERENCE_ORDER)
    const S = ref.files.length;
    let parsed: { b: Buffer; ds: NaturalDataset }[] = [];
    await waitFor(
      async () => {
        const studies = await pacs.findStudies({ StudyInstanceUID: study.study.studyInstanceUid });
        if (studies.length !== 1) return false;
        const instances = await pacs.get<{ ID: string }[]>(`/studies/${studies[0]}/instances`);
        if (instances.length < acquired + 2 + 3 * S) return false;
        const files = await Promise.all(instances.map(async (i) => Buffer.from(await (await fetch(`${pacs.httpUrl}/instances/${i.ID}/file`)).arrayBuffer())));
        parsed = files.map((b) => ({ b, ds: readPart10(b).dataset }));
        return true;
      },
      120000,
      'SEG, SR and three SC series in Orthanc',
      1000,
    );
    const results = parsed.filter((x) => !study.list.some((s) => s.seriesInstanceUid === str(x.ds, 'SeriesInstanceUID')));
    expect(results.filter((x) => str(x.ds, 'SOPClassUID') === SEG_CLASS)).toHaveLength(1);
    expect(results.filter((x) => SR_CLASSES.includes(String(str(x.ds, 'SOPClassUID'))))).toHaveLength(1);
    const sc = results.filter((x) => str(x.ds, 'SOPClassUID') === SC_CLASS);
    const bySeries = new Map<string, { b: Buffer; ds: NaturalDataset }[]>();
    for (const x of sc) bySeries.set(String(str(x.ds, 'SeriesInstanceUID')), [...(bySeries.get(String(str(x.ds, 'SeriesInstanceUID'))) ?? []), x]);
    const descriptions = [...bySeries.values()].map((v) => String(str(v[0].ds, 'SeriesDescription'))).sort();
    expect(descriptions).toEqual([
      'FUSED T1+T2 weighted avg brats-nslf (AI, not acquired)',
      'SYNTHETIC FLAIR (AI-generated, not acquired) brats-m2dn',
      'SYNTHETIC T1C (AI-generated, not acquired) brats-m2dn',
    ]);
    const refPos = new Map(ref.files.map((f) => [f.sopInstanceUid, ref.volume.geometry.slicePositions[f.sliceIndex]]));
    let errors = 0;
    for (const [, xs] of bySeries) {
      expect(xs).toHaveLength(S);
      const srcUids = new Set<string>();
      for (const x of xs) {
        const d = x.ds;
        expect(str(d, 'StudyInstanceUID')).toBe(study.study.studyInstanceUid);
        expect(str(d, 'FrameOfReferenceUID')).toBe(study.study.frameOfReferenceUid);
        expect(d.SyntheticData).toBe('YES');
        expect(d.ImageType).toEqual(['DERIVED', 'SECONDARY']);
        expect(d.BurnedInAnnotation).toBe('YES');
        expect(String(d.ImageComments)).toMatch(/AI-generated, not acquired/);
        expect(seq(seq(d, 'ContributingEquipmentSequence')[0], 'PurposeOfReferenceCodeSequence')[0].CodeValue).toBe('109100');
        const src = String(seq(d, 'SourceImageSequence')[0].ReferencedSOPInstanceUID);
        srcUids.add(src);
        const p = refPos.get(src)!;
        expect(p).toBeDefined();
        nums(d, 'ImagePositionPatient').forEach((v, k) => expect(v).toBeCloseTo(p[k], 3));
        errors += dciodvfy(x.b).errors.length;
      }
      expect(srcUids.size).toBe(S); // one instance per reference slice
    }
    expect(errors).toBe(0);
    for (const x of results.filter((y) => str(y.ds, 'SOPClassUID') !== SC_CLASS)) expect(dciodvfy(x.b).errors).toEqual([]);
    console.log(
      `synthesis e2e (m2dn ${which.m2dn}, nslf ${which.nslf}): sampling ${o.synthesis.samplingMs} ms (${o.synthesis.steps} steps, ${S} slices), ` +
        `per sequence ${JSON.stringify(o.synthesis.perSequenceMs)}, fusion ${o.fusion.inferenceMs} ms, stage total ${o.synthesis.totalMs} ms, ` +
        `segmentWith ${o.synthesis.segmentWith} (${o.synthesis.segmentWithReason}); timings ${JSON.stringify(o.timingsMs)}`,
    );
  }, 600000);
});
