/**
 * The issue 15 stage wired into brain-tumour-mr run(): a BraTS TEST case (Brats18_TCIA02_370_1) with T1C and FLAIR
 * missing comes back with the SEG, the SR, a synthetic T1C and a synthetic FLAIR series and one fused series, each
 * one instance per reference slice, dciodvfy clean; segmentWith with-synthesis re-segments and the SR lists the
 * synthesised sequences; a 0.001 s budget sends the SEG/SR without synthetic or fused series and says why.
 * (12 slices of 5 mm: the CPUs here are shared; the e2e test runs the clinical 30.)
 *
 * The synthesis and fusion models here are the tiny random-weight stand-ins with the brats-m2dn / brats-nslf ONNX
 * interfaces (test/fixtures/*-tiny; the sampler arithmetic is checked against Python in
 * brain-tumour-synthesis.test.ts): this test is about the wiring, the labelling and the budget, not image quality.
 * The segmentation model is the real brats-shaspec.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseConfig } from '../../src/config/load';
import { nums, readPart10, seq, str } from '../../src/dicom/dcmjs';
import { ModelRegistry } from '../../src/models/registry';
import { brainTumourMr } from '../../src/pipelines/brain-tumour-mr';
import type { TaskRunResult } from '../../src/pipelines/task';
import { assembleStudy } from '../../src/study';
import type { StoredInstance } from '../../src/types';
import { bratsCaseAvailable, bratsStoredInstances, writeBratsStudy, type BratsStudy } from '../helpers/brats-study';
import { dciodvfy } from '../helpers/dciodvfy';
import { synthesisModelsDir } from '../helpers/synthesis-models';
import { modelReady } from '../helpers/tumour-seg';

const CASE = 'Brats18_TCIA02_370_1';
const ready = bratsCaseAvailable(CASE) && modelReady('brats-shaspec');
const maybe = ready ? describe : describe.skip;

let work: string;
let registry: ModelRegistry;
let study: BratsStudy;
let instances: StoredInstance[];

beforeAll(async () => {
  if (!ready) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'synth-task-'));
  registry = new ModelRegistry({ dir: synthesisModelsDir().dir, providers: ['cpu'], intraOpThreads: 1 });
  await registry.loadAll();
  study = writeBratsStudy({ caseId: CASE, sequences: ['T1', 'T2'], matrix: { T2: 256 }, slices: 12, outDir: path.join(work, 'study') });
  instances = bratsStoredInstances(study);
}, 120000);

afterAll(async () => {
  await registry?.close();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

async function run(brainTumour: Record<string, unknown> = {}): Promise<{ result: TaskRunResult; timings: Record<string, number> }> {
  const config = parseConfig({ nodeName: 'synth-task-test', brainTumour }, 'test');
  const r = parseConfig({ routes: [{ name: 'tumour', tasks: ['brain-tumour-mr'], destinations: [] }] }, 'test').routes[0];
  const assembled = await assembleStudy(instances);
  const a = brainTumourMr.accept(assembled.availability, r, registry);
  if (!a.run) throw new Error(`not accepted: ${a.reason}`);
  const timings: Record<string, number> = {};
  const result = await brainTumourMr.run({
    deps: { config, registry, nodeVersion: 'test', resultsDir: work },
    job: { id: 1, studyUid: study.study.studyInstanceUid },
    route: r,
    study: assembled,
    plan: a.plan,
    timings,
    tStart: performance.now(),
  });
  return { result, timings };
}

function srText(result: TaskRunResult): string {
  return JSON.stringify(readPart10(result.objects.find((o) => o.kind === 'SR')!.part10).dataset);
}

maybe('brain-tumour-mr with T1C and FLAIR missing: synthetic and fused series', () => {
  test('SEG, SR, synthetic T1C and FLAIR, one fused series; labelled, on the reference slices, dciodvfy clean', async () => {
    const { result, timings } = await run();
    expect(registry.isReady('brats-m2dn')).toBe(true);
    expect(registry.isReady('brats-nslf')).toBe(true);
    const kinds = result.objects.map((o) => o.kind);
    expect(kinds.filter((k) => k === 'SEG')).toHaveLength(1);
    expect(kinds.filter((k) => k === 'SR')).toHaveLength(1);
    const bySeries = new Map<string, Buffer[]>();
    for (const o of result.objects.filter((o) => o.kind === 'SYNTHETIC_MR' || o.kind === 'FUSED_MR')) bySeries.set(o.series, [...(bySeries.get(o.series) ?? []), o.part10]);
    expect(bySeries.size).toBe(3);
    const ref = study.series.T2 ?? study.series.T1; // reference: FLAIR/T1C absent → T2 (REFERENCE_ORDER)
    const refSlices = new Map(ref!.files.map((f) => [f.sopInstanceUid, readPart10(f.part10).dataset]));
    const descriptions: string[] = [];
    for (const [, bufs] of bySeries) {
      expect(bufs).toHaveLength(ref!.files.length);
      const first = readPart10(bufs[0]).dataset;
      descriptions.push(String(first.SeriesDescription));
      for (const b of [bufs[0], bufs[Math.floor(bufs.length / 2)], bufs[bufs.length - 1]]) expect(dciodvfy(b).errors).toEqual([]);
      for (const b of bufs) {
        const d = readPart10(b).dataset;
        expect(d.SyntheticData).toBe('YES');
        expect(d.StudyInstanceUID).toBe(study.study.studyInstanceUid);
        const src = refSlices.get(String(seq(d, 'SourceImageSequence')[0].ReferencedSOPInstanceUID));
        expect(src).toBeDefined();
        const a = nums(d, 'ImagePositionPatient');
        nums(src!, 'ImagePositionPatient').forEach((v, k) => expect(a[k]).toBeCloseTo(v, 3));
        expect(str(d, 'FrameOfReferenceUID')).toBe(str(src!, 'FrameOfReferenceUID'));
      }
    }
    expect(descriptions.sort()).toEqual([
      'FUSED T1+T2 weighted avg brats-nslf (AI, not acquired)',
      'SYNTHETIC FLAIR (AI-generated, not acquired) brats-m2dn',
      'SYNTHETIC T1C (AI-generated, not acquired) brats-m2dn',
    ]);
    const o = result.outcome as Record<string, any>;
    expect(o.synthesis.sequences.sort()).toEqual(['FLAIR', 'T1C']);
    expect(o.synthesis.steps).toBe(3);
    expect(o.synthesis.samplingMs).toBeGreaterThan(0);
    expect(Object.keys(o.synthesis.perSequenceMs).sort()).toEqual(['FLAIR', 'T1C']);
    expect(o.synthesis.totalMs).toBeGreaterThanOrEqual(o.synthesis.samplingMs);
    expect(o.synthesis.segmentWith).toBe('acquired-only'); // no measured route in the stand-in manifest
    expect(o.fusion.fusedFrom).toEqual(['T1', 'T2']);
    expect(o.fusion.meanWeights.T1 + o.fusion.meanWeights.T2).toBeCloseTo(1, 2);
    expect(o.fusion.meanWeights.FLAIR).toBe(0);
    expect(timings.synthesis).toBeGreaterThan(0);
    expect(timings.fusion).toBeGreaterThan(0);
    expect(result.models.map((m) => m.name)).toEqual(['brats-shaspec', 'brats-m2dn', 'brats-nslf']);
    // the SR says the segmentation did without, and that synthetic series were sent
    const sr = srText(result);
    expect(sr).toContain('No sequence was synthesised');
    expect(sr).toContain('synthetic FLAIR, T1C sent as series');
  });

  test('segmentWith with-synthesis: the SR lists T1C and FLAIR as synthesised', async () => {
    const { result } = await run({ synthesis: { segmentWith: 'with-synthesis' } });
    const o = result.outcome as Record<string, any>;
    expect(o.synthesis.segmentWith).toBe('with-synthesis');
    const sr = srText(result);
    expect(sr).toMatch(/synthesised FLAIR, T1C/);
    expect(sr).not.toContain('No sequence was synthesised');
    expect(dciodvfy(result.objects.find((x) => x.kind === 'SEG')!.part10).errors).toEqual([]);
    expect(dciodvfy(result.objects.find((x) => x.kind === 'SR')!.part10).errors).toEqual([]);
  });

  test('budget 0.001 s: SEG and SR only, the outcome and the SR say why', async () => {
    const { result } = await run({ synthesis: { budgetSeconds: 0.001 } });
    expect(result.objects.map((o) => o.kind).sort()).toEqual(['SEG', 'SR']);
    const o = result.outcome as Record<string, any>;
    expect(o.synthesis.sequences).toEqual([]);
    expect(o.synthesis.skipped).toMatch(/time budget of 0\.001 s exceeded/);
    expect(o.fusion.skipped).toMatch(/time budget/);
    expect(result.notes.join(' ')).toMatch(/budget/);
    expect(srText(result)).toMatch(/time budget of 0\.001 s exceeded/);
  });

});
