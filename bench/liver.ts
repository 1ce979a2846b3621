/**
 * Liver task (issue 16), CPU time per stage on this machine for a 512² x 100-slice abdominal CT: the real
 * TotalSegmentator example CT (../shared/data/abdomen-ct, Apache-2.0; 122 x 101 x 112 @ 3 mm) resampled in-plane
 * to 512 x 512 at 0.75 mm (384 mm field of view, bilinear, air outside) and cut to its upper 100 slices of 3 mm,
 * written as a portal-venous-tagged CT series (test/helpers/liver-study.ts). Each run: assemble (parse the files,
 * classify, pick the series), load (decode the 100 slices), then the task's run(): preprocess (window, 128² @ 3 mm
 * model grid), inference (onnxruntime, CPU, 1 intra-op thread), postprocess (probabilities back to 512², argmax,
 * largest component, small tumours), measure (volumes, longest axial diameters), encode (SEG + SR). Wall time per
 * stage and the process CPU time (user + system) of the whole run; median of `runs`. The MRI phantom fixture
 * (256² x 20) is timed the same way for comparison.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseConfig } from '../src/config/load';
import { ModelRegistry } from '../src/models/registry';
import { liverCtMr } from '../src/pipelines/liver-ct-mr';
import { bratsStoredInstances } from '../test/helpers/brats-study';
import { CT_PORTAL_TAGS, liverFixturesAvailable, writeAbdomenSeries, writeLiverFixtureStudy } from '../test/helpers/liver-study';
import { readNifti } from '../test/helpers/nifti';
import { newStudyContext, type StudyContext, type WrittenSeries } from '../test/helpers/series-writer';
import { repoRoot, timeTaskRuns } from './brats-bench';

const STAGES = ['assemble', 'load', 'preprocess', 'inference', 'postprocess', 'measure', 'encode'] as const;
const SIZE = 512;
const SLICES = 100;
const PIXEL = 0.75;

/** The shared abdominal CT (RAS NIfTI) as 512² x 100 axial LPS slices of HU, or why not. */
function abdomenCt512(): { hu: Int16Array; note: string } | { skipped: string } {
  const file = path.join(process.env.STROKE_SHARED_DATA ?? path.resolve(repoRoot(), '..', 'shared', 'data'), 'abdomen-ct', 'example_ct.nii.gz');
  if (!fs.existsSync(file)) return { skipped: `${file} not found` };
  const ct = readNifti(file);
  const [nx, ny, nz] = ct.dims;
  const [px, py] = ct.pixdim;
  if (nz < SLICES) return { skipped: `${file}: ${nz} slices, fewer than ${SLICES}` };
  const hu = new Int16Array(SIZE * SIZE * SLICES);
  // LPS column c runs right→left = reversed NIfTI i; row r runs anterior→posterior = reversed j (as test/pipelines/liver-real.test.ts)
  const at = (i: number, j: number, k: number): number => (i < 0 || j < 0 || i > nx - 1 || j > ny - 1 ? -1024 : ct.data[i + nx * (j + ny * k)]);
  for (let z = 0; z < SLICES; z++) {
    const k = nz - SLICES + z;
    for (let r = 0; r < SIZE; r++) {
      const y = ny - 1 - ((ny - 1) / 2 + ((r - (SIZE - 1) / 2) * PIXEL) / py);
      const j0 = Math.floor(y);
      const fy = y - j0;
      for (let c = 0; c < SIZE; c++) {
        const x = nx - 1 - ((nx - 1) / 2 + ((c - (SIZE - 1) / 2) * PIXEL) / px);
        const i0 = Math.floor(x);
        const fx = x - i0;
        const v =
          (1 - fy) * ((1 - fx) * at(i0, j0, k) + fx * at(i0 + 1, j0, k)) + fy * ((1 - fx) * at(i0, j0 + 1, k) + fx * at(i0 + 1, j0 + 1, k));
        hu[(z * SIZE + r) * SIZE + c] = Math.max(-1024, Math.round(v));
      }
    }
  }
  return { hu, note: `TotalSegmentator example CT ${nx}x${ny}x${nz} @ ${px} mm, slices ${nz - SLICES}-${nz - 1}, resampled to ${SIZE}² @ ${PIXEL} mm` };
}

export async function benchLiver(runs = 3): Promise<Record<string, unknown>> {
  const modelsDir = path.join(repoRoot(), 'models');
  const model = process.env.BENCH_LIVER_MODEL ?? 'liver-aqcf';
  const registry = new ModelRegistry({ dir: modelsDir, providers: ['cpu'], intraOpThreads: 1 });
  await registry.loadAll();
  if (!registry.isReady(model)) return { skipped: `model ${model} not ready: ${registry.get(model)?.state.lastError ?? 'not in models/'}` };
  const config = parseConfig({ nodeName: 'bench', routes: [{ name: 'abdomen', tasks: ['liver-ct-mr'], destinations: [], models: { liver: model } }] }, 'bench');
  const route = config.routes[0];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-liver-'));
  const scenarios: Record<string, unknown>[] = [];
  try {
    const inputs: { name: string; make: () => { study: StudyContext; series: WrittenSeries; note: string } | { skipped: string } }[] = [
      {
        name: `CT ${SIZE}² x ${SLICES} slices`,
        make: () => {
          const ct = abdomenCt512();
          if ('skipped' in ct) return ct;
          const study = newStudyContext({ patientName: 'BENCH^LIVER', patientId: 'BENCH-LIVER-CT' });
          const series = writeAbdomenSeries(
            {
              modality: 'CT',
              rows: SIZE,
              columns: SIZE,
              slices: SLICES,
              pixelSpacing: [PIXEL, PIXEL],
              sliceThickness: 3,
              sliceSpacing: 3,
              imagePositionPatientFirst: [-((SIZE - 1) / 2) * PIXEL, -((SIZE - 1) / 2) * PIXEL, 0],
              data: ct.hu,
              seriesDescription: 'ABD PORTAL VENOUS 3.0',
              tags: CT_PORTAL_TAGS,
            },
            study,
            path.join(work, 'ct512'),
          );
          return { study, series, note: ct.note };
        },
      },
      {
        name: 'MRI T1 post-contrast phantom 256² x 20 slices',
        make: () => {
          if (!liverFixturesAvailable()) return { skipped: 'test/fixtures/liver not found' };
          const f = writeLiverFixtureStudy('mr', { outDir: path.join(work, 'mr') });
          return { study: f.study, series: f.series, note: 'test/fixtures/liver/mr-phantom.nii.gz (TEST-split phantom)' };
        },
      },
    ];
    for (const input of inputs) {
      const made = input.make();
      if ('skipped' in made) {
        scenarios.push({ name: input.name, skipped: made.skipped });
        continue;
      }
      const instances = bratsStoredInstances({ study: made.study, list: [made.series] }, 'BENCH');
      const timed = await timeTaskRuns({ task: liverCtMr, instances, studyUid: made.study.studyInstanceUid, route, config, registry, workDir: work, runs, stages: STAGES });
      const g = made.series.volume.geometry;
      scenarios.push({
        name: input.name,
        source: made.note,
        matrix: [g.rows, g.columns, g.slices],
        ...timed,
      });
    }
  } finally {
    await registry.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
  return {
    description: `task liver-ct-mr with ${model} on CPU (onnxruntime-node, 1 intra-op thread): wall ms per stage and process CPU ms (cpuTotal) of the whole run, median of ${runs}; no GPU was lent for this work`,
    model,
    runs,
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    scenarios,
  };
}
