/**
 * What the task benches share: the BraTS TEST-split case brain-tumour.ts and brain-tumour-synthesis.ts time
 * (../shared/data/brats2018, never committed) and where it lies, the repository root (for models/), the median, and
 * timeTaskRuns (one task timed per stage as the processor runs it; brain-tumour.ts, liver.ts).
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Config, Route } from '../src/config/schema';
import type { ModelRegistry } from '../src/models/registry';
import type { Task } from '../src/pipelines/task';
import { assembleStudy } from '../src/study';
import type { StoredInstance } from '../src/types';

export const BRATS_BENCH_CASE = 'Brats18_TCIA02_370_1';

/** The repository root: the nearest folder above this file with a package.json (bench/ or dist/bench/). */
export function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

/** The BraTS 2018 folder: $STROKE_SHARED_DATA/brats2018, else ../shared/data/brats2018 beside the repository. */
export function bratsBenchRoot(): string {
  return path.join(process.env.STROKE_SHARED_DATA ?? path.resolve(repoRoot(), '..', 'shared', 'data'), 'brats2018');
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
export const r0 = (x: number): number => Math.round(x);

/**
 * One task, timed as the processor runs it, `runs` times on the same stored instances: assemble (parse, classify),
 * accept, then run() (which adds its own stage times). Per run: wall ms per stage, `total`, and `cpuTotal` (process
 * user + system CPU ms of the whole run); the median per stage over the runs; the last run's measurements.
 */
export async function timeTaskRuns<P>(opts: {
  task: Task<P>;
  instances: StoredInstance[];
  studyUid: string;
  route: Route;
  config: Config;
  registry: ModelRegistry;
  workDir: string;
  runs: number;
  stages: readonly string[];
}): Promise<{ medianMs: Record<string, number>; runsMs: Record<string, number>[]; measurements: Record<string, number | undefined> }> {
  const { task, instances, route, config, registry } = opts;
  const per: Record<string, number>[] = [];
  let measurements: Record<string, number | undefined> = {};
  for (let i = 0; i < opts.runs; i++) {
    const timings: Record<string, number> = {};
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const assembled = await assembleStudy(instances);
    timings.assemble = performance.now() - t0;
    const a = task.accept(assembled.availability, route, registry);
    if (!a.run) throw new Error(`${task.id} not accepted: ${a.reason}`);
    const res = await task.run({
      deps: { config, registry, nodeVersion: 'bench', resultsDir: opts.workDir },
      job: { id: i + 1, studyUid: opts.studyUid },
      route,
      study: assembled,
      plan: a.plan,
      timings,
      tStart: t0,
    });
    timings.total = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    timings.cpuTotal = (cpu.user + cpu.system) / 1000;
    per.push(timings);
    measurements = res.measurements;
  }
  return {
    medianMs: Object.fromEntries([...opts.stages, 'total', 'cpuTotal'].map((k) => [k, r0(median(per.map((p) => p[k] ?? 0)))])),
    runsMs: per.map((p) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, r0(v)]))),
    measurements,
  };
}
