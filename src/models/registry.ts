/**
 * Model registry: every `models/*.json` manifest, its ONNX file verified by sha256 before use (a
 * mismatch disables that model with a clear status; the node keeps running), one onnxruntime-node
 * session per model on the first execution provider of the configured preference list that loads,
 * warmed at start, inference serialized per device, state exposed for the admin page and metrics.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { ManifestSchema, ModelManifest } from './manifest';
import { log } from '../util/log';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const ort: typeof import('onnxruntime-node') = require('onnxruntime-node');

export type ExecutionProvider = 'cuda' | 'webgpu' | 'cpu';
export type ModelStatus = 'loading' | 'ready' | 'disabled' | 'error';

export interface ModelState {
  name: string;
  version: string;
  task: string;
  file: string;
  sha256: string;
  status: ModelStatus;
  executionProvider: ExecutionProvider | null;
  /** Providers tried before the one in use, with why they failed. */
  fallbacks: { provider: string; error: string }[];
  inferences: number;
  lastLatencyMs: number | null;
  medianLatencyMs: number | null;
  lastError: string | null;
  loadedAt: string | null;
}

export interface LoadedModel {
  manifest: ModelManifest;
  state: ModelState;
  session?: import('onnxruntime-node').InferenceSession;
  latencies: number[];
}

export type Feeds = Record<string, { data: Float32Array; dims: number[] }>;
export type Outputs = Record<string, { data: Float32Array; dims: number[] }>;

export interface RegistryOptions {
  dir: string;
  providers: ExecutionProvider[];
  intraOpThreads?: number;
  /** Called after each inference (metrics). */
  onInference?: (model: string, ms: number, ok: boolean) => void;
}

export function sha256File(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

export class ModelRegistry {
  private models = new Map<string, LoadedModel>();
  /** One promise chain per execution provider: inference is serialized per device. */
  private deviceChains = new Map<string, Promise<unknown>>();

  constructor(private readonly opts: RegistryOptions) {}

  /** (Re)load every manifest in the models folder. Never throws: problems become model states. */
  async loadAll(): Promise<ModelState[]> {
    for (const m of this.models.values()) await m.session?.release().catch(() => undefined);
    this.models.clear();
    const dir = this.opts.dir;
    const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : [];
    for (const f of files) await this.loadOne(path.join(dir, f));
    return this.states();
  }

  private async loadOne(manifestPath: string): Promise<void> {
    let manifest: ModelManifest;
    try {
      const raw = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
      const r = ManifestSchema.safeParse(raw);
      if (!r.success) {
        const name = typeof raw?.name === 'string' ? raw.name : path.basename(manifestPath, '.json');
        const why = r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
        this.addBroken(name, manifestPath, 'disabled', `invalid manifest ${path.basename(manifestPath)}: ${why}`);
        return;
      }
      manifest = r.data;
    } catch (e) {
      this.addBroken(path.basename(manifestPath, '.json'), manifestPath, 'disabled', `unreadable manifest: ${(e as Error).message}`);
      return;
    }
    const file = path.resolve(path.dirname(manifestPath), manifest.file);
    const state: ModelState = {
      name: manifest.name,
      version: manifest.version,
      task: manifest.task,
      file: manifest.file,
      sha256: manifest.sha256,
      status: 'loading',
      executionProvider: null,
      fallbacks: [],
      inferences: 0,
      lastLatencyMs: null,
      medianLatencyMs: null,
      lastError: null,
      loadedAt: null,
    };
    const entry: LoadedModel = { manifest, state, latencies: [] };
    this.models.set(manifest.name, entry);
    if (!fs.existsSync(file)) {
      state.status = 'disabled';
      state.lastError = `model file ${manifest.file} is missing`;
      log.error('model disabled', { event: 'model.disabled', model: manifest.name, reason: state.lastError });
      return;
    }
    const actual = sha256File(file);
    if (actual !== manifest.sha256) {
      state.status = 'disabled';
      state.lastError = `sha256 mismatch for ${manifest.file}: manifest ${manifest.sha256.slice(0, 12)}…, file ${actual.slice(0, 12)}…`;
      log.error('model disabled: checksum mismatch', { event: 'model.checksum_mismatch', model: manifest.name, expected: manifest.sha256, actual });
      return;
    }
    for (const ep of this.opts.providers) {
      try {
        const sessionOpts: import('onnxruntime-node').InferenceSession.SessionOptions = {
          executionProviders: [ep],
          graphOptimizationLevel: 'all',
          ...(this.opts.intraOpThreads ? { intraOpNumThreads: this.opts.intraOpThreads } : {}),
        };
        entry.session = await ort.InferenceSession.create(file, sessionOpts);
        state.executionProvider = ep;
        break;
      } catch (e) {
        state.fallbacks.push({ provider: ep, error: (e as Error).message.split('\n')[0].slice(0, 200) });
        log.warn('execution provider unavailable, falling back', { event: 'model.ep_fallback', model: manifest.name, provider: ep, error: (e as Error).message.split('\n')[0] });
      }
    }
    if (!entry.session) {
      state.status = 'error';
      state.lastError = `no execution provider could load the model (${state.fallbacks.map((f) => `${f.provider}: ${f.error}`).join('; ')})`;
      return;
    }
    try {
      await this.warm(entry);
      state.status = 'ready';
      state.loadedAt = new Date().toISOString();
      log.info('model ready', { event: 'model.ready', model: manifest.name, version: manifest.version, provider: state.executionProvider });
    } catch (e) {
      state.status = 'error';
      state.lastError = `warm-up failed: ${(e as Error).message}`;
      log.error('model warm-up failed', { event: 'model.warmup_failed', model: manifest.name, error: (e as Error).message });
    }
  }

  private addBroken(name: string, file: string, status: ModelStatus, error: string): void {
    log.error('model disabled', { event: 'model.disabled', model: name, reason: error });
    this.models.set(name, {
      manifest: undefined as unknown as ModelManifest,
      latencies: [],
      state: {
        name,
        version: '?',
        task: '?',
        file: path.basename(file),
        sha256: '',
        status,
        executionProvider: null,
        fallbacks: [],
        inferences: 0,
        lastLatencyMs: null,
        medianLatencyMs: null,
        lastError: error,
        loadedAt: null,
      },
    });
  }

  /** One inference on a neutral input, so the first study does not pay for graph set-up. */
  private async warm(entry: LoadedModel): Promise<void> {
    const m = entry.manifest;
    const [h, w] = m.inputs.grid.size;
    const c = m.inputs.channels.length;
    const feeds: Feeds = { [m.inputs.tensor]: { data: new Float32Array(c * h * w), dims: [1, c, h, w] } };
    if (m.inputs.modalityMaskTensor) {
      const mods = [...new Set(m.inputs.channels.map((x) => x.modality))];
      feeds[m.inputs.modalityMaskTensor] = { data: new Float32Array(mods.length).fill(1), dims: [1, mods.length] };
    }
    // a diffusion denoiser (brats-m2dn) also takes the timestep t [N]
    const tName = (m.inputs as { timestepTensor?: string }).timestepTensor ?? (m.task === 'mr-sequence-synthesis' ? 't' : undefined);
    if (tName) feeds[tName] = { data: new Float32Array(1), dims: [1] };
    // a liver model (liver-aqcf) also takes the modality of each slice [N] (1 CT, 0 MRI)
    if (m.inputs.modalityTensor) feeds[m.inputs.modalityTensor] = { data: new Float32Array(1).fill(1), dims: [1] };
    await this.runSession(entry, feeds, false);
  }

  private async runSession(entry: LoadedModel, feeds: Feeds, count: boolean): Promise<Outputs> {
    const session = entry.session!;
    const device = entry.state.executionProvider ?? 'cpu';
    const prev = this.deviceChains.get(device) ?? Promise.resolve();
    const run = prev.then(async () => {
      const t0 = performance.now();
      const ortFeeds: Record<string, import('onnxruntime-node').Tensor> = {};
      for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = new ort.Tensor('float32', v.data, v.dims);
      try {
        const out = await session.run(ortFeeds);
        const ms = performance.now() - t0;
        if (count) this.record(entry, ms, true);
        const res: Outputs = {};
        for (const [k, t] of Object.entries(out)) res[k] = { data: t.data as Float32Array, dims: [...t.dims] };
        return res;
      } catch (e) {
        if (count) {
          this.record(entry, performance.now() - t0, false);
          entry.state.lastError = (e as Error).message;
        }
        throw e;
      }
    });
    this.deviceChains.set(device, run.catch(() => undefined));
    return run;
  }

  private record(entry: LoadedModel, ms: number, ok: boolean): void {
    entry.state.inferences++;
    entry.state.lastLatencyMs = Math.round(ms * 10) / 10;
    entry.latencies.push(ms);
    if (entry.latencies.length > 100) entry.latencies.shift();
    const s = [...entry.latencies].sort((a, b) => a - b);
    entry.state.medianLatencyMs = Math.round(s[Math.floor(s.length / 2)] * 10) / 10;
    this.opts.onInference?.(entry.state.name, ms, ok);
  }

  /** Run a ready model. Throws a clear error if it is missing or not ready. */
  async run(name: string, feeds: Feeds): Promise<Outputs> {
    const entry = this.models.get(name);
    if (!entry) throw new Error(`model "${name}" is not installed`);
    if (entry.state.status !== 'ready' || !entry.session) throw new Error(`model "${name}" is ${entry.state.status}: ${entry.state.lastError ?? ''}`);
    return this.runSession(entry, feeds, true);
  }

  get(name: string): LoadedModel | undefined {
    return this.models.get(name);
  }

  isReady(name: string): boolean {
    return this.models.get(name)?.state.status === 'ready';
  }

  states(): ModelState[] {
    return [...this.models.values()].map((m) => ({ ...m.state }));
  }

  async close(): Promise<void> {
    for (const m of this.models.values()) await m.session?.release().catch(() => undefined);
    this.models.clear();
  }
}
