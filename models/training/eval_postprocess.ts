/**
 * The lesion post-processing (src/pipelines/lesion-postprocess.ts) measured through the node's own path: the model
 * runs as in the node (segmentLesion: manifest pre-processing, onnxruntime-node cpu, back to the acquisition grid),
 * then each rule alone and all together, scored per 3D study on the acquisition grid.
 *
 *   phantoms:   npx tsx eval_postprocess.ts phantoms <studies dir> <out.json> [variants.json]
 *   real scans: npx tsx eval_postprocess.ts real <out.json> [variants.json]
 *
 * Phantom studies come from dump_studies.py (VAL: threshold choice; TEST: report only). Metrics (ISLES 2022 as in
 * evaluate.py): Dice, lesion-wise F1 (26-connected; a truth lesion is found when a predicted voxel overlaps it),
 * false components per study (predicted components touching no truth voxel, every study), absolute volume
 * difference (mL), detection per truth-lesion size bin (< 0.1, 0.1-1, > 1 mL), no-lesion studies with any FP.
 * Real scans (no labelled infarct: Siemens XA30 volunteer with the scanner's and the node's maps, GE DWI with the
 * node's ADC, Philips Achieva with the scanner's ADC): marked mL and components, all false positive.
 * Raw model masks are cached under cache/pp-masks so that variants re-run in seconds.
 * PP_MODELS_DIR: read the models (ONNX + manifest) from another folder (a candidate not yet in models/); its raw
 * masks are cached apart (cache/pp-masks-<PP_CACHE_TAG>, the tag defaults to the folder's name).
 * PP_SAVE_FINAL=1: also write each study's mask after all rules (variant 'all') to cache/pp-final[-<tag>]/<model>/.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { ModelRegistry } from '../../src/models/registry';
import { segmentLesion } from '../../src/pipelines/processor';
import { DEFAULT_LESION_POSTPROCESS, LesionPostprocessOptions, components26, diffusionBrainMask, postprocessLesionMask } from '../../src/pipelines/lesion-postprocess';
import { Volume } from '../../src/types';
import { loadDwiPhantom } from '../../test/helpers/dwi-phantom';
import { realScans } from '../../test/helpers/real-volunteer';

const MODELS = (process.env.PP_MODELS ?? 'dual-encoder,unet2d-baseline,shaspec-missing').split(',');
const MODELS_DIR = process.env.PP_MODELS_DIR ? path.resolve(process.env.PP_MODELS_DIR) : path.resolve(__dirname, '..');
const TAG = process.env.PP_MODELS_DIR ? `-${process.env.PP_CACHE_TAG ?? path.basename(MODELS_DIR)}` : '';
const CACHE = path.join(__dirname, `cache/pp-masks${TAG}`);
const FINAL = process.env.PP_SAVE_FINAL === '1' ? path.join(__dirname, `cache/pp-final${TAG}`) : undefined;
/** PP_INPUTS=DWI: the model reads the DWI alone (the single-modality route's DWI-only path), and the rules get no ADC. */
const DWI_ONLY = process.env.PP_INPUTS === 'DWI';
/** PP_INPUTS=ADC: the model reads the ADC alone (ShaSpec's ADC-only path); the rules get no DWI / b0, so the brain
 * mask is skipped as in the node (the ADC-ratio and size rules still apply). */
const ADC_ONLY = process.env.PP_INPUTS === 'ADC';
const ONLY = DWI_ONLY ? '-dwionly' : ADC_ONLY ? '-adconly' : '';

type Variant = { name: string; opts: LesionPostprocessOptions };
const OFF: LesionPostprocessOptions = {
  brainMask: { ...DEFAULT_LESION_POSTPROCESS.brainMask, enabled: false },
  minComponent: { ...DEFAULT_LESION_POSTPROCESS.minComponent, enabled: false },
  restrictedDiffusion: { ...DEFAULT_LESION_POSTPROCESS.restrictedDiffusion, enabled: false },
};
function defaultVariants(): Variant[] {
  const D = DEFAULT_LESION_POSTPROCESS;
  return [
    { name: 'none', opts: OFF },
    { name: 'brain mask', opts: { ...OFF, brainMask: D.brainMask } },
    { name: 'min size', opts: { ...OFF, minComponent: D.minComponent } },
    { name: 'ADC ratio', opts: { ...OFF, restrictedDiffusion: D.restrictedDiffusion } },
    { name: 'all', opts: D },
  ];
}

async function rawMask(reg: ModelRegistry, model: string, key: string, vols: { DWI?: Volume; ADC?: Volume }): Promise<Uint8Array> {
  const f = path.join(CACHE, model, `${key}.u8.gz`);
  if (fs.existsSync(f)) return new Uint8Array(zlib.gunzipSync(fs.readFileSync(f)));
  const { mask } = await segmentLesion(reg, model, vols, {});
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, zlib.gzipSync(Buffer.from(mask)));
  return mask;
}

interface StudyScore {
  study: string;
  gtMl: number;
  predMl: number;
  dice?: number;
  lesionF1?: number;
  falseComponents: number;
  absVolDiffMl?: number;
  bins: { lt01: [number, number]; b01_1: [number, number]; gt1: [number, number] };
}

function score(name: string, pred: Uint8Array, gt: Uint8Array, v: Volume): StudyScore {
  const g = v.geometry;
  const vml = (g.pixelSpacing[0] * g.pixelSpacing[1] * g.sliceSpacing) / 1000;
  const P = components26(pred, g.slices, g.rows, g.columns);
  const G = components26(gt, g.slices, g.rows, g.columns);
  let inter = 0;
  let np = 0;
  let ng = 0;
  for (let i = 0; i < pred.length; i++) {
    np += pred[i];
    ng += gt[i];
    inter += pred[i] & gt[i];
  }
  const falseComponents = P.members.filter((c) => !c.some((i) => gt[i])).length;
  const bins: StudyScore['bins'] = { lt01: [0, 0], b01_1: [0, 0], gt1: [0, 0] };
  let tp = 0;
  for (const c of G.members) {
    const ml = c.length * vml;
    const found = c.some((i) => pred[i]);
    if (found) tp++;
    const b = ml < 0.1 ? bins.lt01 : ml <= 1 ? bins.b01_1 : bins.gt1;
    b[0] += found ? 1 : 0;
    b[1] += 1;
  }
  const s: StudyScore = { study: name, gtMl: ng * vml, predMl: np * vml, falseComponents, bins };
  if (ng) {
    const fn = G.members.length - tp;
    s.dice = (2 * inter) / (np + ng);
    s.lesionF1 = tp / (tp + (falseComponents + fn) / 2);
    s.absVolDiffMl = Math.abs(np - ng) * vml;
  }
  return s;
}

const mean = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN);
const med = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};
const r3 = (x: number) => Math.round(x * 1000) / 1000;

function summarise(rows: StudyScore[]) {
  const les = rows.filter((r) => r.dice !== undefined);
  const none = rows.filter((r) => r.dice === undefined);
  const bin = (k: keyof StudyScore['bins']) => {
    const f = rows.reduce((s, r) => s + r.bins[k][0], 0);
    const n = rows.reduce((s, r) => s + r.bins[k][1], 0);
    return { found: f, lesions: n, rate: n ? r3(f / n) : null };
  };
  return {
    lesionStudies: les.length,
    noLesionStudies: none.length,
    dice: r3(mean(les.map((r) => r.dice!))),
    diceMedian: r3(med(les.map((r) => r.dice!))),
    lesionF1: r3(mean(les.map((r) => r.lesionF1!))),
    falseComponentsPerStudy: r3(mean(rows.map((r) => r.falseComponents))),
    absVolDiffMl: r3(mean(les.map((r) => r.absVolDiffMl!))),
    absVolDiffMlMedian: r3(med(les.map((r) => r.absVolDiffMl!))),
    noLesionWithFp: `${none.filter((r) => r.predMl > 0).length}/${none.length}`,
    noLesionMeanFalseMl: r3(mean(none.map((r) => r.predMl))),
    detection: { '<0.1 mL': bin('lt01'), '0.1-1 mL': bin('b01_1'), '>1 mL': bin('gt1') },
  };
}

async function phantoms(dir: string, outFile: string, variants: Variant[]): Promise<void> {
  const reg = new ModelRegistry({ dir: MODELS_DIR, providers: ['cpu'], intraOpThreads: 1 });
  await reg.loadAll();
  const studies = fs.readdirSync(dir).filter((d) => fs.existsSync(path.join(dir, d, 'meta.json'))).sort((a, b) => Number(a.split('-').pop()) - Number(b.split('-').pop()));
  const split = path.basename(dir);
  const rows: Record<string, Record<string, StudyScore[]>> = {};
  /** real-background studies (real_backgrounds.py): which real scan each one's tissue is */
  const background = new Map<string, string>();
  for (const s of studies) {
    const ph = loadDwiPhantom(path.join(dir, s));
    const bg = (ph.meta as { background?: string }).background;
    if (bg) background.set(s, bg);
    const brains = new Map<string, Uint8Array>();
    const brainFor = (o: LesionPostprocessOptions) => {
      const k = `${o.brainMask.otsuFactor}/${o.brainMask.openingMm}/${o.brainMask.erodeMm}`;
      if (!brains.has(k)) brains.set(k, diffusionBrainMask(ph.b0, o.brainMask.openingMm, o.brainMask.erodeMm, o.brainMask.otsuFactor));
      return { mask: brains.get(k)!, source: 'b0' as const };
    };
    for (const model of MODELS) {
      const raw = await rawMask(reg, model, `${split}${ONLY}/${s}`, { DWI: ADC_ONLY ? undefined : ph.dwi, ADC: DWI_ONLY ? undefined : ph.adc });
      for (const v of variants) {
        const { mask } = ADC_ONLY
          ? postprocessLesionMask(raw, { ref: ph.adc, adc: ph.adc }, v.opts)
          : postprocessLesionMask(raw, { ref: ph.dwi, dwi: ph.dwi, b0: ph.b0, adc: DWI_ONLY ? undefined : ph.adc, brain: brainFor(v.opts) }, v.opts);
        ((rows[model] ??= {})[v.name] ??= []).push(score(s, mask, ph.truth, ph.dwi));
        if (FINAL && v.name === 'all') {
          const f = path.join(FINAL, model, `${split}${ONLY}`, `${s}.u8.gz`);
          fs.mkdirSync(path.dirname(f), { recursive: true });
          fs.writeFileSync(f, zlib.gzipSync(Buffer.from(mask)));
        }
      }
    }
  }
  const out: Record<string, unknown> = { data: dir, studies: studies.length, models: {} };
  for (const model of MODELS) {
    const m: Record<string, unknown> = {};
    for (const v of variants) m[v.name] = summarise(rows[model][v.name]);
    if (background.size) {
      // the node default (last variant, 'all' by default) per real background
      const last = variants[variants.length - 1].name;
      const by: Record<string, unknown> = {};
      for (const bg of new Set(background.values())) by[bg] = summarise(rows[model][last].filter((r) => background.get(r.study) === bg));
      m[`${last} by background`] = by;
    }
    (out.models as Record<string, unknown>)[model] = m;
  }
  out.variants = variants;
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, JSON.stringify(out, null, 1));
  for (const model of MODELS) {
    for (const v of variants) {
      const s = summarise(rows[model][v.name]);
      console.log(
        `${model.padEnd(16)} ${v.name.padEnd(28)} Dice ${s.dice.toFixed(3)} F1 ${s.lesionF1.toFixed(3)} FC/study ${s.falseComponentsPerStudy.toFixed(2)} AVD ${s.absVolDiffMl.toFixed(2)} ` +
          `noLes ${s.noLesionWithFp} ${s.noLesionMeanFalseMl.toFixed(2)} mL det ${Object.values(s.detection).map((d) => `${d.found}/${d.lesions}`).join(' ')}`,
      );
    }
  }
  await reg.close();
}

async function real(outFile: string, variants: Variant[]): Promise<void> {
  const reg = new ModelRegistry({ dir: MODELS_DIR, providers: ['cpu'], intraOpThreads: 1 });
  await reg.loadAll();
  const scans = await realScans();
  const res: unknown[] = [];
  for (const sc of scans) {
    const g = sc.dwi.geometry;
    const vml = (g.pixelSpacing[0] * g.pixelSpacing[1] * g.sliceSpacing) / 1000;
    for (const model of MODELS) {
      const raw = await rawMask(reg, model, `real/${sc.name.replace(/[^A-Za-z0-9]+/g, '_')}`, { DWI: sc.dwi, ADC: sc.adc });
      for (const v of variants) {
        const { mask, report } = postprocessLesionMask(raw, { ref: sc.dwi, dwi: sc.dwi, b0: sc.b0, adc: sc.adc }, v.opts);
        const n = mask.reduce((s, x) => s + x, 0);
        const comps = components26(mask, g.slices, g.rows, g.columns).members.length;
        res.push({ scan: sc.name, model, variant: v.name, markedMl: r3(n * vml), components: comps, referenceAdc: report.restrictedDiffusion?.referenceAdc });
        console.log(`${sc.name.padEnd(40)} ${model.padEnd(16)} ${v.name.padEnd(28)} ${(n * vml).toFixed(2)} mL ${comps} comp ${report.restrictedDiffusion ? `ref ADC ${report.restrictedDiffusion.referenceAdc}` : ''}`);
      }
    }
  }
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, JSON.stringify({ results: res, variants }, null, 1));
  await reg.close();
}

async function main(): Promise<void> {
  const [mode, a, b, c] = process.argv.slice(2);
  const vfile = mode === 'phantoms' ? c : b;
  const variants: Variant[] = vfile ? JSON.parse(fs.readFileSync(vfile, 'utf8')) : defaultVariants();
  if (mode === 'phantoms') await phantoms(a, b, variants);
  else if (mode === 'real') await real(a, variants);
  else throw new Error('usage: eval_postprocess.ts phantoms <dir> <out.json> [variants.json] | real <out.json> [variants.json]');
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
