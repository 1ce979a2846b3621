/**
 * What the BraTS benches (brain-tumour.ts, brain-tumour-synthesis.ts) share: the TEST-split case they time
 * (../shared/data/brats2018, never committed), where it lies, the repository root (for models/) and the median.
 */
import * as fs from 'fs';
import * as path from 'path';

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
