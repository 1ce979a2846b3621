/**
 * Brain tumour task (issue 14), CPU time per stage on this machine: a BraTS TEST-split case
 * (Brats18_TCIA02_370_1, ../shared/data/brats2018, never committed) written as a clinical DICOM study of
 * four 256² series, 30 slices of 5 mm each (test/helpers/brats-study.ts), and the same study with two
 * sequences missing (FLAIR + T1C only). Each run: assemble (parse the files, classify, load the volumes:
 * study/), then the task's run() with the committed model (default brats-shaspec): grid (common grid),
 * brainMask, preprocess (zscore-brain, model grid), inference (onnxruntime, CPU, 1 intra-op thread),
 * postprocess (softmax, back to the slices, argmax), encode (SEG + SR). Wall time per stage and the
 * process CPU time (user + system) of the whole run; median of `runs`.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseConfig } from '../src/config/load';
import { ModelRegistry } from '../src/models/registry';
import { brainTumourMr } from '../src/pipelines/brain-tumour-mr';
import { assembleStudy } from '../src/study';
import { bratsCaseAvailable, bratsStoredInstances, writeBratsStudy, type BratsSequence } from '../test/helpers/brats-study';
import { bratsBenchRoot, BRATS_BENCH_CASE as CASE, repoRoot, timeTaskRuns } from './brats-bench';

const STAGES = ['assemble', 'grid', 'brainMask', 'preprocess', 'inference', 'postprocess', 'encode'] as const;

export async function benchBrainTumour(runs = 3): Promise<Record<string, unknown>> {
  const root = bratsBenchRoot();
  if (!bratsCaseAvailable(CASE, root)) return { skipped: `BraTS case ${CASE} not found under ${root}` };
  const modelsDir = path.join(repoRoot(), 'models');
  const model = process.env.BENCH_TUMOUR_MODEL ?? 'brats-shaspec';
  const registry = new ModelRegistry({ dir: modelsDir, providers: ['cpu'], intraOpThreads: 1 });
  await registry.loadAll();
  if (!registry.isReady(model)) return { skipped: `model ${model} not ready: ${registry.get(model)?.state.lastError ?? 'not in models/'}` };
  // the synthetic / fused series (issue 15) are measured by bench/brain-tumour-synthesis.ts: off here, so these stages stay the segmentation's
  const config = parseConfig(
    { nodeName: 'bench', routes: [{ name: 'tumour', tasks: ['brain-tumour-mr'], destinations: [], models: { brainTumour: model } }], brainTumour: { synthesis: { enabled: false }, fusion: { enabled: false } } },
    'bench',
  );
  const route = config.routes[0];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-tumour-'));
  const scenarios: Record<string, unknown>[] = [];
  try {
    for (const [name, sequences] of [
      ['four sequences', ['FLAIR', 'T1', 'T1C', 'T2']],
      ['two missing (FLAIR + T1C)', ['FLAIR', 'T1C']],
    ] as [string, BratsSequence[]][]) {
      const study = writeBratsStudy({ caseId: CASE, root, sequences, matrix: { FLAIR: 256, T1: 256, T1C: 256, T2: 256 }, slices: 30, outDir: path.join(work, name.replace(/\W+/g, '-')) });
      const instances = bratsStoredInstances(study, 'BENCH');
      const probe = brainTumourMr.accept((await assembleStudy(instances)).availability, route, registry);
      if (!probe.run) {
        scenarios.push({ name, sequences, skipped: probe.reason });
        continue;
      }
      const timed = await timeTaskRuns({ task: brainTumourMr, instances, studyUid: study.study.studyInstanceUid, route, config, registry, workDir: work, runs, stages: STAGES });
      scenarios.push({
        name,
        sequences,
        slices: 30,
        matrix: 256,
        medianMs: timed.medianMs,
        runsMs: timed.runsMs,
        wholeTumourMl: timed.measurements.wholeTumourMl,
      });
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return {
    description: `BraTS TEST case ${CASE} as a clinical DICOM study, 256² x 30 slices of 5 mm per series; task brain-tumour-mr with ${model} on CPU (onnxruntime-node, 1 intra-op thread); wall ms per stage and process CPU ms (cpuTotal) of the whole run, median of ${runs}`,
    model,
    runs,
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    scenarios,
  };
}
