/**
 * Held-out TEST evaluation of the CT→DWI generators through the node's own code path
 * (src/pipelines/synthesis.ts: brain mask from the CT, manifest pre-processing, ONNX on onnxruntime-node
 * cpu, back to the CT grid, stored scale), on the acquisition (CT) grid of each TEST-split phantom
 * (phantoms.build_ct_split("test", ...) writes them to cache/ct_test_acq/):
 *  - MSE, PSNR, SSIM over the brain (test/helpers/ct-phantom.ts dwiMetrics) against the true DWI;
 *  - lesion Dice of the lesion model (DWI only) on the synthetic DWI vs on the true DWI (both on the CT grid);
 *  - brain-mask Dice (node's CT brain mask vs the phantom's intracranial truth).
 *
 *   npx tsx models/training/eval_ct2dwi.ts [acqDir] [out.json] [models...]
 *   CT2DWI_SHARD=0/2 (and 1/2) ... part files, then CT2DWI_MERGE=part0.json,part1.json ... (parallel runs)
 *   CT2DWI_WRITE_EXPECTED=1 npx tsx models/training/eval_ct2dwi.ts fixtures/phantoms/ct out/fixture.json   (fixtures)
 */
import * as fs from 'fs';
import * as path from 'path';
import { ModelRegistry } from '../../src/models/registry';
import { ctBrainMask } from '../../src/pipelines/ct-brain-mask';
import { segmentLesion } from '../../src/pipelines/processor';
import { synthesiseDwi } from '../../src/pipelines/synthesis';
import { Vec3, Volume } from '../../src/types';
import { CtPhantom, dice, dwiMetrics, loadCtPhantom } from '../../test/helpers/ct-phantom';

export function ctPhantomVolume(p: CtPhantom): { ct: Volume; dwiTrue: Volume } {
  const m = p.meta;
  const iop = m.imageOrientationPatient;
  const rowCos: Vec3 = [iop[0], iop[1], iop[2]];
  const colCos: Vec3 = [iop[3], iop[4], iop[5]];
  const normal: Vec3 = [rowCos[1] * colCos[2] - rowCos[2] * colCos[1], rowCos[2] * colCos[0] - rowCos[0] * colCos[2], rowCos[0] * colCos[1] - rowCos[1] * colCos[0]];
  const positions: Vec3[] = [];
  for (let z = 0; z < m.slices; z++) positions.push([0, 1, 2].map((k) => m.imagePositionPatientFirst[k] + z * m.sliceSpacing * normal[k]) as Vec3);
  const geometry = {
    rows: m.rows, columns: m.columns, slices: m.slices, pixelSpacing: m.pixelSpacing, sliceSpacing: m.sliceSpacing,
    rowCosines: rowCos, columnCosines: colCos, normal, slicePositions: positions, frameOfReferenceUid: '1.2.3', warnings: [],
  };
  const sliceSources = positions.map((_, z) => ({ sopInstanceUid: `1.2.3.${z + 1}`, sopClassUid: '1.2.840.10008.5.1.4.1.1.2', seriesInstanceUid: '1.2.3' }));
  const ct: Volume = { kind: 'CT', geometry, data: Float32Array.from(p.ct), sliceSources, seriesInstanceUid: '1.2.3' };
  const dwiTrue: Volume = { kind: 'DWI', geometry, data: Float32Array.from(p.dwiTrue), sliceSources, seriesInstanceUid: '1.2.4', bValue: 1000 };
  return { ct, dwiTrue };
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};
const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);

async function main(): Promise<void> {
  const here = __dirname;
  const acq = process.argv[2] ?? path.join(here, 'cache/ct_test_acq');
  const outFile = process.argv[3] ?? path.join(here, 'out/ct2dwi-eval/test.json');
  const models = process.argv.slice(4).length ? process.argv.slice(4) : ['ct2dwi', 'ct2dwi-pix2pix'];
  const lesionModel = 'shaspec-missing';
  const reg = new ModelRegistry({ dir: process.env.CT2DWI_MODELS_DIR ?? path.resolve(here, '..'), providers: ['cpu'], intraOpThreads: 1 });
  await reg.loadAll();
  // CT2DWI_SHARD=i/n: only every n-th study from i (parallel runs); CT2DWI_MERGE=a.json,b.json: summarise those runs
  const [shard, shards] = (process.env.CT2DWI_SHARD ?? '0/1').split('/').map(Number);
  const merge = process.env.CT2DWI_MERGE ? process.env.CT2DWI_MERGE.split(',') : [];
  const dirs = merge.length
    ? []
    : fs.readdirSync(acq).filter((d) => fs.existsSync(path.join(acq, d, 'meta.json'))).sort((a, b) => Number(a.split('-')[1]) - Number(b.split('-')[1])).filter((_, i) => i % shards === shard);
  const perStudy: Record<string, unknown>[] = merge.flatMap((f) => JSON.parse(fs.readFileSync(f, 'utf8')).perStudy as Record<string, unknown>[]);
  perStudy.sort((a, b) => Number(String(a.study).split('-')[1]) - Number(String(b.study).split('-')[1]));
  for (const d of dirs) {
    const p = loadCtPhantom(path.join(acq, d));
    const { ct, dwiTrue } = ctPhantomVolume(p);
    const m = p.meta;
    const voxMl = (m.pixelSpacing[0] * m.pixelSpacing[1] * m.sliceSpacing) / 1000;
    const bm = ctBrainMask(ct);
    const row: Record<string, unknown> = { study: d, slices: m.slices, thickness: m.sliceThickness, kernel: m.convolutionKernel, lesionMl: m.lesionVolumeMl, brainMaskDice: dice(bm, p.brain) };
    // reference: a constant inside the node's CT brain mask (no anatomy at all; metrics are median-normalised)
    row.constant = dwiMetrics(Float32Array.from(bm, (v) => (v ? 1000 : 0)), p.dwiTrue, p.brain, m.rows, m.columns);
    const onTrue = await segmentLesion(reg, lesionModel, { DWI: dwiTrue }, {});
    row.diceTrue = m.lesionVoxels ? dice(onTrue.mask, p.mask) : undefined;
    row.fpMlTrue = m.lesionVoxels ? undefined : onTrue.mask.reduce((a, b) => a + b, 0) * voxMl;
    for (const name of models) {
      const t0 = performance.now();
      const s = await synthesiseDwi(reg, name, ct, {});
      const ms = performance.now() - t0;
      const im = dwiMetrics(s.dwi.data, p.dwiTrue, p.brain, m.rows, m.columns);
      const seg = await segmentLesion(reg, lesionModel, { DWI: s.dwi }, {});
      row[name] = {
        ...im,
        synthesisMs: Math.round(ms),
        diceSynthetic: m.lesionVoxels ? dice(seg.mask, p.mask) : undefined,
        fpMlSynthetic: m.lesionVoxels ? undefined : seg.mask.reduce((a, b) => a + b, 0) * voxMl,
      };
    }
    perStudy.push(row);
    console.log(JSON.stringify(row));
    if (process.env.CT2DWI_WRITE_EXPECTED === '1') {
      // fixtures: record what the node path measures on this phantom (the e2e and model tests compare to it)
      const metaFile = path.join(acq, d, 'meta.json');
      const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8'));
      const r4 = (x: unknown) => (typeof x === 'number' ? Math.round(x * 1e4) / 1e4 : undefined);
      meta.expected = Object.fromEntries(
        models.map((n) => {
          const r = row[n] as Record<string, number | undefined>;
          return [n, { psnr: r4(r.psnr), ssim: r4(r.ssim), mse: r4(r.mse), diceSynthetic: r4(r.diceSynthetic), diceTrue: r4(row.diceTrue) }];
        }),
      );
      meta.expectedNote = `measured by models/training/eval_ct2dwi.ts (node code path, onnxruntime-node cpu, lesion model ${lesionModel} DWI only) with the committed models`;
      fs.writeFileSync(metaFile, JSON.stringify(meta, null, 1) + '\n');
    }
  }
  const summary: Record<string, unknown> = { studies: perStudy.length, withLesion: perStudy.filter((r) => r.diceTrue !== undefined).length, lesionModel };
  const num = (xs: unknown[]) => xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  summary.brainMaskDice = { mean: mean(num(perStudy.map((r) => r.brainMaskDice))), min: Math.min(...num(perStudy.map((r) => r.brainMaskDice))) };
  summary.trueDwi = { diceMean: mean(num(perStudy.map((r) => r.diceTrue))), diceMedian: median(num(perStudy.map((r) => r.diceTrue))), fpMlMean: mean(num(perStudy.map((r) => r.fpMlTrue))), noLesionWithFp: num(perStudy.map((r) => r.fpMlTrue)).filter((v) => v > 0).length };
  {
    const rs = perStudy.map((r) => r.constant as Record<string, number>);
    summary.constant = { psnr: { mean: mean(rs.map((r) => r.psnr)) }, ssim: { mean: mean(rs.map((r) => r.ssim)) }, mse: { mean: mean(rs.map((r) => r.mse)) } };
  }
  for (const name of models) {
    const rs = perStudy.map((r) => r[name] as Record<string, number | undefined>);
    summary[name] = {
      mse: { mean: mean(num(rs.map((r) => r.mse))), median: median(num(rs.map((r) => r.mse))) },
      psnr: { mean: mean(num(rs.map((r) => r.psnr))), median: median(num(rs.map((r) => r.psnr))), min: Math.min(...num(rs.map((r) => r.psnr))) },
      ssim: { mean: mean(num(rs.map((r) => r.ssim))), median: median(num(rs.map((r) => r.ssim))), min: Math.min(...num(rs.map((r) => r.ssim))) },
      diceSynthetic: { mean: mean(num(rs.map((r) => r.diceSynthetic))), median: median(num(rs.map((r) => r.diceSynthetic))) },
      fpMlSynthetic: { mean: mean(num(rs.map((r) => r.fpMlSynthetic))), noLesionWithFp: num(rs.map((r) => r.fpMlSynthetic)).filter((v) => v > 0).length },
      synthesisMsMedian: median(num(rs.map((r) => r.synthesisMs))),
    };
  }
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, JSON.stringify({ summary, perStudy }, null, 1) + '\n');
  console.log(JSON.stringify(summary, null, 1));
  await reg.close();
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
