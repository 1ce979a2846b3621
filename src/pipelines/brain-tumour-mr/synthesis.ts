/**
 * Missing-sequence synthesis with brats-m2dn (issue 15): the DDIM sampler of the model's manifest, in TypeScript,
 * over the ONNX denoiser. The algorithm is the training eval code's (models/training/m2dn_nets.py `ddim_sample`,
 * models/README.md "Sequence synthesis (M2DN)"), step for step:
 *
 *   alphas_cumprod  cosine: f(u) = cos(((u / T) + s) / (1 + s) * pi / 2)^2, ab[t] = clip(f(t + 1) / f(0), 0, 1),
 *                   t = 0..T-1 (the closed form, not the clipped-beta product); linear: ab = cumprod(1 - beta),
 *                   beta = linspace(betaStart, betaEnd, T); or the manifest's own `alphasCumprod` list
 *   timesteps       the manifest's `sampler.timesteps` (high to low) at its default step count; another step count:
 *                   round-half-even(linspace(T - 1, 0, steps)) as numpy does
 *   x               = noise [N, 4, H, W] ~ N(0, 1) (seeded: mulberry32 + Box-Muller; only missing channels matter)
 *   each step i, t  xin = mask * x_acq + (1 - mask) * x;  x0 = net(xin, mask, t)
 *                   unless last: eps = (x - sqrt(ab[t]) x0) / sqrt(max(1 - ab[t], 1e-12));
 *                                x = sqrt(ab[t_next]) x0 + sqrt(1 - ab[t_next]) eps
 *   result          mask * x_acq + (1 - mask) * x0 of the last step, times the brain mask
 *
 * The slices of the study are the batch (N = every slice, split into ONNX calls of `batch` slices: the result
 * does not depend on it). A deadline (performance.now() ms) is checked before every ONNX call; past it the sampler
 * throws SynthesisBudgetExceeded and nothing partial is returned.
 */
import type { ModelManifest } from '../../models/manifest';

export type Feeds = Record<string, { data: Float32Array; dims: number[] }>;
export type RunModel = (feeds: Feeds) => Promise<Record<string, { data: Float32Array; dims: number[] }>>;

export interface DdimSpec {
  trainSteps: number;
  /** alphas_cumprod[t], t = 0..T-1. */
  alphasCumprod: Float64Array;
  /** The manifest's default number of steps and its exact timesteps (high to low). */
  steps: number;
  timesteps: number[];
  schedule: string;
}

export class SynthesisBudgetExceeded extends Error {
  constructor(public readonly elapsedMs: number, public readonly budgetMs: number, public readonly where: string) {
    super(`synthesis time budget of ${(budgetMs / 1000).toFixed(3)} s exceeded (${(elapsedMs / 1000).toFixed(3)} s, ${where})`);
    this.name = 'SynthesisBudgetExceeded';
  }
}

/** Cosine schedule, closed form (m2dn_nets.alphas_cumprod). */
export function cosineAlphasCumprod(T: number, s: number): Float64Array {
  const f0 = Math.cos((s / (1 + s)) * (Math.PI / 2)) ** 2;
  const ab = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    const f = Math.cos((((t + 1) / T + s) / (1 + s)) * (Math.PI / 2)) ** 2;
    ab[t] = Math.min(1, Math.max(0, f / f0));
  }
  return ab;
}

/** Linear beta schedule: ab = cumprod(1 - linspace(b0, b1, T)). */
export function linearAlphasCumprod(T: number, b0: number, b1: number): Float64Array {
  const ab = new Float64Array(T);
  let p = 1;
  for (let t = 0; t < T; t++) {
    const beta = T === 1 ? b0 : b0 + ((b1 - b0) * t) / (T - 1);
    p *= 1 - beta;
    ab[t] = p;
  }
  return ab;
}

/** numpy's np.round (half to even). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** round(linspace(T - 1, 0, steps)), high to low, as m2dn_nets.ddim_timesteps. */
export function ddimTimesteps(steps: number, T: number): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`DDIM steps must be a positive integer, got ${steps}`);
  if (steps === 1) return [T - 1];
  const out: number[] = [];
  for (let i = 0; i < steps; i++) out.push(roundHalfEven((T - 1) + ((0 - (T - 1)) * i) / (steps - 1)));
  return out;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** The manifest's `sampler` block, checked, with alphas_cumprod computed. Throws on anything the node cannot follow. */
export function readSampler(m: ModelManifest): DdimSpec {
  const s = (m as Record<string, unknown>).sampler as Record<string, unknown> | undefined;
  if (!s || typeof s !== 'object') throw new Error(`model ${m.name}: manifest has no "sampler" block`);
  if (String(s.type).toLowerCase() !== 'ddim') throw new Error(`model ${m.name}: sampler type ${String(s.type)}, the node implements ddim`);
  if ((num(s.eta) ?? 0) !== 0) throw new Error(`model ${m.name}: sampler eta ${String(s.eta)}, the node implements eta 0`);
  const T = num(s.trainSteps);
  if (!T || !Number.isInteger(T) || T < 2) throw new Error(`model ${m.name}: sampler.trainSteps missing or invalid`);
  const params = { ...((s.scheduleParams ?? s.scheduleParameters ?? {}) as Record<string, unknown>), ...s };
  const schedule = String(s.schedule ?? '').toLowerCase();
  let ab: Float64Array;
  if (Array.isArray(s.alphasCumprod)) {
    ab = Float64Array.from(s.alphasCumprod as number[]);
    if (ab.length !== T) throw new Error(`model ${m.name}: sampler.alphasCumprod has ${ab.length} values, trainSteps ${T}`);
  } else if (schedule === 'cosine') {
    const cs = num(params.s) ?? num(params.cosineS) ?? num(params.cosine_s) ?? num(params.offset);
    if (cs === undefined) throw new Error(`model ${m.name}: cosine schedule without its offset s`);
    ab = cosineAlphasCumprod(T, cs);
  } else if (schedule === 'linear') {
    const b0 = num(params.betaStart) ?? num(params.beta_start);
    const b1 = num(params.betaEnd) ?? num(params.beta_end);
    if (b0 === undefined || b1 === undefined) throw new Error(`model ${m.name}: linear schedule without betaStart/betaEnd`);
    ab = linearAlphasCumprod(T, b0, b1);
  } else throw new Error(`model ${m.name}: sampler schedule "${schedule}" unknown (cosine | linear)`);
  const timesteps = Array.isArray(s.timesteps) ? (s.timesteps as unknown[]).map(Number) : [];
  if (!timesteps.length || timesteps.some((t) => !Number.isInteger(t) || t < 0 || t >= T)) throw new Error(`model ${m.name}: sampler.timesteps missing or outside 0..${T - 1}`);
  for (let i = 1; i < timesteps.length; i++) if (timesteps[i] >= timesteps[i - 1]) throw new Error(`model ${m.name}: sampler.timesteps not strictly decreasing`);
  const steps = num(s.steps) ?? timesteps.length;
  if (steps !== timesteps.length) throw new Error(`model ${m.name}: sampler.steps ${steps} but ${timesteps.length} timesteps`);
  return { trainSteps: T, alphasCumprod: ab, steps, timesteps, schedule: Array.isArray(s.alphasCumprod) ? 'table' : schedule };
}

/** The timesteps for `steps` steps: the manifest's exact list at its default, else the formula. */
export function timestepsFor(spec: DdimSpec, steps?: number): number[] {
  if (steps === undefined || steps === spec.steps) return spec.timesteps;
  return ddimTimesteps(steps, spec.trainSteps);
}

/** mulberry32: a small seeded 32-bit PRNG, uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n standard normal values (Box-Muller on mulberry32), deterministic for a seed. */
export function gaussianNoise(n: number, seed: number): Float32Array {
  const u = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    let u1 = u();
    while (u1 <= 1e-12) u1 = u();
    const u2 = u();
    const r = Math.sqrt(-2 * Math.log(u1));
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

export interface DdimInput {
  /** Acquired images [N, C, H, W] (missing channels ignored). */
  xAcq: Float32Array;
  /** Modality mask of the study, one row [C] (1 = acquired), the same for every slice. */
  maskRow: number[];
  /** Brain [N, H, W] (non-zero = brain) multiplied into the result. */
  brain: Float32Array | Uint8Array;
  n: number;
  h: number;
  w: number;
  /** Initial noise [N, C, H, W]; default gaussianNoise(N*C*H*W, seed). */
  noise?: Float32Array;
  seed?: number;
}

export interface DdimOptions {
  timesteps: number[];
  alphasCumprod: Float64Array;
  /** ONNX tensor names. */
  tensors: { x: string; mask: string; t: string; out: string };
  /** Slices per ONNX call (default 16). */
  batch?: number;
  /** performance.now() value after which the sampler gives up (SynthesisBudgetExceeded). */
  deadline?: { at: number; budgetMs: number; start: number };
}

/** DDIM sampling (eta 0) of the missing channels; returns [N, C, H, W] (acquired channels = the acquired images). */
export async function ddimSample(run: RunModel, input: DdimInput, o: DdimOptions): Promise<Float32Array> {
  const { n, h, w, maskRow } = input;
  const C = maskRow.length;
  const plane = h * w;
  const per = C * plane;
  if (input.xAcq.length !== n * per) throw new Error(`xAcq has ${input.xAcq.length} values, expected ${n * per}`);
  if (input.brain.length !== n * plane) throw new Error(`brain has ${input.brain.length} values, expected ${n * plane}`);
  const x = input.noise ? Float32Array.from(input.noise) : gaussianNoise(n * per, input.seed ?? 1);
  if (x.length !== n * per) throw new Error(`noise has ${x.length} values, expected ${n * per}`);
  const batch = Math.max(1, o.batch ?? 16);
  const ts = o.timesteps;
  const ab = o.alphasCumprod;
  const x0 = new Float32Array(n * per);
  const maskData = (k: number): Float32Array => {
    const m = new Float32Array(k * C);
    for (let i = 0; i < k; i++) m.set(maskRow, i * C);
    return m;
  };
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i];
    for (let z0 = 0; z0 < n; z0 += batch) {
      if (o.deadline) {
        const now = performance.now();
        if (now > o.deadline.at) throw new SynthesisBudgetExceeded(now - o.deadline.start, o.deadline.budgetMs, `before step ${i + 1} of ${ts.length}`);
      }
      const k = Math.min(batch, n - z0);
      const xin = new Float32Array(k * per);
      for (let s = 0; s < k; s++) {
        for (let c = 0; c < C; c++) {
          const off = (z0 + s) * per + c * plane;
          const src = maskRow[c] ? input.xAcq : x;
          xin.set(src.subarray(off, off + plane), s * per + c * plane);
        }
      }
      const out = await run({
        [o.tensors.x]: { data: xin, dims: [k, C, h, w] },
        [o.tensors.mask]: { data: maskData(k), dims: [k, C] },
        [o.tensors.t]: { data: new Float32Array(k).fill(t), dims: [k] },
      });
      const y = out[o.tensors.out];
      if (!y) throw new Error(`synthesis model returned no "${o.tensors.out}" output`);
      if (y.dims.length !== 4 || y.dims[0] !== k || y.dims[1] !== C || y.dims[2] !== h || y.dims[3] !== w) {
        throw new Error(`synthesis model: "${o.tensors.out}" has shape [${y.dims.join(', ')}], expected [${k}, ${C}, ${h}, ${w}]`);
      }
      x0.set(y.data.subarray(0, k * per), z0 * per);
    }
    if (i + 1 < ts.length) {
      const aT = ab[t];
      const aP = ab[ts[i + 1]];
      const sa = Math.fround(Math.sqrt(aT));
      const inv = Math.fround(1 / Math.sqrt(Math.max(1 - aT, 1e-12)));
      const sp = Math.fround(Math.sqrt(aP));
      const sn = Math.fround(Math.sqrt(1 - aP));
      for (let j = 0; j < x.length; j++) {
        const eps = Math.fround(Math.fround(x[j] - Math.fround(sa * x0[j])) * inv);
        x[j] = Math.fround(sp * x0[j]) + Math.fround(sn * eps);
      }
    }
  }
  const result = new Float32Array(n * per);
  for (let s = 0; s < n; s++) {
    for (let c = 0; c < C; c++) {
      const off = s * per + c * plane;
      const src = maskRow[c] ? input.xAcq : x0;
      for (let p = 0; p < plane; p++) result[off + p] = input.brain[s * plane + p] ? src[off + p] : 0;
    }
  }
  return result;
}
