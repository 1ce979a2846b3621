/**
 * Issue 15, CPU time of the synthetic series stage on this machine: the BraTS TEST-split case Brats18_TCIA02_370_1
 * (never committed) written as a clinical DICOM study of 256² x 30 slices of 5 mm with T1C and FLAIR missing (T1 and
 * T2 acquired). Each run: assemble, the acquired-only segmentation (segmentTumour, brats-shaspec), then the stage
 * alone (synthesisStage: brats-m2dn DDIM over the 30 slices at the manifest's default steps, the two synthetic
 * series, brats-nslf fusion, the fused series), with its wall time per part and its process CPU time (user +
 * system). Per sequence: M2DN samples the missing sequences jointly, so a sequence's time = half the joint
 * sampling + its own encoding. Median of `runs`. Also the same with BENCH_SYNTH_STEPS (e.g. 25) when set.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseConfig } from '../src/config/load';
import { ModelRegistry } from '../src/models/registry';
import { segmentTumour, type TumourSequence } from '../src/pipelines/brain-tumour-mr';
import { synthesisStage } from '../src/pipelines/brain-tumour-mr/synthetic-series';
import { assembleStudy } from '../src/study';
import type { Volume } from '../src/types';
import { bratsCaseAvailable, bratsStoredInstances, writeBratsStudy } from '../test/helpers/brats-study';
import { bratsBenchRoot, BRATS_BENCH_CASE as CASE, median, r0, repoRoot } from './brats-bench';

export async function benchBrainTumourSynthesis(runs = 2): Promise<Record<string, unknown>> {
  const root = bratsBenchRoot();
  if (!bratsCaseAvailable(CASE, root)) return { skipped: `BraTS case ${CASE} not found under ${root}` };
  const registry = new ModelRegistry({ dir: path.join(repoRoot(), 'models'), providers: ['cpu'], intraOpThreads: 1 });
  await registry.loadAll();
  for (const m of ['brats-shaspec', 'brats-m2dn', 'brats-nslf']) {
    if (!registry.isReady(m)) return { skipped: `model ${m} not ready: ${registry.get(m)?.state.lastError ?? 'not in models/'}` };
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-synth-'));
  const variants: Record<string, unknown>[] = [];
  try {
    const study = writeBratsStudy({ caseId: CASE, root, sequences: ['T1', 'T2'], matrix: { T1: 256, T2: 256 }, slices: 30, outDir: path.join(work, 'study') });
    const instances = bratsStoredInstances(study, 'BENCH');
    const stepsList: (number | undefined)[] = [undefined, ...(process.env.BENCH_SYNTH_STEPS ? [Number(process.env.BENCH_SYNTH_STEPS)] : [])];
    for (const steps of stepsList) {
      const config = parseConfig({ nodeName: 'bench', brainTumour: { synthesis: { budgetSeconds: 3600, ...(steps ? { steps } : {}) } } }, 'bench');
      const per: Record<string, number>[] = [];
      let last: Awaited<ReturnType<typeof synthesisStage>> | undefined;
      for (let i = 0; i < runs; i++) {
        const assembled = await assembleStudy(instances);
        const vols: Partial<Record<TumourSequence, Volume>> = { T1: assembled.volumes.T1, T2: assembled.volumes.T2 };
        const seg = await segmentTumour(registry, 'brats-shaspec', vols, {});
        const timings: Record<string, number> = {};
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        const r = await synthesisStage({ deps: { config, registry, nodeVersion: 'bench', resultsDir: work }, headers: assembled.headers, seg, vols, segModel: 'brats-shaspec', timings, tStart: t0 });
        const cpu = process.cpuUsage(cpu0);
        if (r.synthesis.skipped || r.fusion.skipped) throw new Error(`stage incomplete: ${r.synthesis.skipped ?? ''} ${r.fusion.skipped ?? ''}`);
        per.push({
          stageWall: performance.now() - t0,
          stageCpu: (cpu.user + cpu.system) / 1000,
          preprocess: timings.synthesisPreprocess ?? 0,
          sampling: r.synthesis.samplingMs ?? 0,
          encodeT1C: r.synthesis.series.find((s) => s.sequence === 'T1C')?.encodeMs ?? 0,
          encodeFLAIR: r.synthesis.series.find((s) => s.sequence === 'FLAIR')?.encodeMs ?? 0,
          perSequenceT1C: r.synthesis.perSequenceMs?.T1C ?? 0,
          perSequenceFLAIR: r.synthesis.perSequenceMs?.FLAIR ?? 0,
          fusionInference: r.fusion.inferenceMs ?? 0,
          fusionEncode: r.fusion.series?.encodeMs ?? 0,
        });
        last = r;
      }
      const keys = Object.keys(per[0]);
      variants.push({
        steps: last?.synthesis.steps,
        medianMs: Object.fromEntries(keys.map((k) => [k, r0(median(per.map((p) => p[k])))])),
        runsMs: per.map((p) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, r0(v)]))),
        segmentWith: last?.synthesis.segmentWith,
      });
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    await registry.close();
  }
  return {
    description: `BraTS TEST case ${CASE}, T1 + T2 acquired (256² x 30 slices of 5 mm), T1C and FLAIR synthesised by brats-m2dn (DDIM) and one fused series by brats-nslf, onnxruntime-node CPU 1 intra-op thread; the synthetic-series stage alone (after the segmentation): wall ms per part and process CPU ms (stageCpu), median of ${runs}`,
    runs,
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    variants,
  };
}
