/**
 * Test helper: a models folder for the brain-tumour synthesis stage (issue 15): the real brats-shaspec, and for
 * brats-m2dn / brats-nslf either the committed trained models (`real: true`, when models/<name>.json is there) or
 * the tiny random-weight stand-ins with the same ONNX interfaces (test/fixtures/m2dn-tiny, nslf-tiny; made by their
 * make.py), whose manifests are written here (sampler: 3 DDIM steps).
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export const MODELS = path.resolve(__dirname, '../../models');
const FIX = path.resolve(__dirname, '../fixtures');
const CHANNELS = ['FLAIR', 'T1', 'T1c', 'T2'].map((modality) => ({ modality, sliceOffset: 0 }));
const NORM = Object.fromEntries(['FLAIR', 'T1', 'T1c', 'T2'].map((m) => [m, { method: 'zscore-brain', clip: [-5, 5] }]));
const GRID = { size: [128, 128], spacingMm: 1.875 };

export function realModelReady(name: string): boolean {
  return fs.existsSync(path.join(MODELS, `${name}.json`)) && fs.existsSync(path.join(MODELS, `${name}.onnx`));
}

function link(dir: string, name: string): void {
  for (const ext of ['json', 'onnx']) fs.symlinkSync(path.join(MODELS, `${name}.${ext}`), path.join(dir, `${name}.${ext}`));
}

function installStandIn(dir: string, name: string, onnx: string, extra: Record<string, unknown>): void {
  const file = `${name}.onnx`;
  fs.copyFileSync(onnx, path.join(dir, file));
  const sha256 = crypto.createHash('sha256').update(fs.readFileSync(onnx)).digest('hex');
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify({ name, version: '0.0.0-test', file, sha256, ...extra }));
}

/** A temp models folder; which synthesis / fusion models it holds is returned with it. */
export function synthesisModelsDir(opts: { real?: boolean } = {}): { dir: string; m2dn: 'real' | 'stand-in'; nslf: 'real' | 'stand-in' } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synth-models-'));
  link(dir, 'brats-shaspec');
  let m2dn: 'real' | 'stand-in' = 'stand-in';
  let nslf: 'real' | 'stand-in' = 'stand-in';
  if (opts.real && realModelReady('brats-m2dn')) {
    link(dir, 'brats-m2dn');
    m2dn = 'real';
  } else {
    installStandIn(dir, 'brats-m2dn', path.join(FIX, 'm2dn-tiny/tiny.onnx'), {
      task: 'mr-sequence-synthesis',
      inputs: { tensor: 'x_t', modalityMaskTensor: 'modality_mask', timestepTensor: 't', modalityMaskOrder: ['FLAIR', 'T1', 'T1c', 'T2'], channels: CHANNELS, grid: GRID, normalisation: NORM },
      outputs: { tensor: 'x0' },
      sampler: { type: 'ddim', eta: 0, trainSteps: 1000, schedule: 'cosine', s: 0.008, steps: 3, timesteps: [999, 500, 0] },
    });
  }
  if (opts.real && realModelReady('brats-nslf')) {
    link(dir, 'brats-nslf');
    nslf = 'real';
  } else {
    installStandIn(dir, 'brats-nslf', path.join(FIX, 'nslf-tiny/tiny.onnx'), {
      task: 'mr-fusion',
      inputs: { tensor: 'input', modalityMaskTensor: 'modality_mask', modalityMaskOrder: ['FLAIR', 'T1', 'T1c', 'T2'], channels: CHANNELS, grid: GRID, normalisation: NORM },
      outputs: { fused: { tensor: 'fused' }, weights: { tensor: 'weights' } },
    });
  }
  return { dir, m2dn, nslf };
}
