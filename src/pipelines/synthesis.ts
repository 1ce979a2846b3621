/**
 * CT→DWI synthesis (models/ct2dwi.json): the CT's brain mask (ct-brain-mask.ts), the manifest's input
 * channels (CT brain window of slices z-1, z, z+1 and the brain mask of slice z on the model grid),
 * the generator, and its output back on the CT's own slices: the synthetic DWI has exactly the CT's
 * geometry and slice order, its sliceSources are the CT slices it came from.
 *
 * Output scale (manifest `outputs.scale`, default 1000): stored value = round(scale × y), where y is
 * the DWI at b = 1000 s/mm² relative to normal white matter (y = 1 → 1000).
 */
import { ModelRegistry } from '../models/registry';
import { ModelGrid, fromModelGrid } from '../study';
import { Volume } from '../types';
import { ctBrainMask } from './ct-brain-mask';
import { prepareInput } from './preprocess';

export interface SynthesisResult {
  /** Synthetic DWI on the CT grid (integers, scale × y), kind DWI, computed, sliceSources = CT slices. */
  dwi: Volume;
  /** Brain mask from the CT, on the CT grid. */
  brainMask: Uint8Array;
  scale: number;
  bValue: number;
}

export async function synthesiseDwi(registry: Pick<ModelRegistry, 'get' | 'run'>, modelName: string, ct: Volume, timings: Record<string, number>): Promise<SynthesisResult> {
  const entry = registry.get(modelName);
  if (!entry) throw new Error(`model ${modelName} missing`);
  const m = entry.manifest;
  if (m.task !== 'ct-to-dwi') throw new Error(`model ${modelName} is a ${m.task} model, not ct-to-dwi`);
  let t = performance.now();
  const brainMask = ctBrainMask(ct);
  const maskVol: Volume = { ...ct, kind: 'CT', data: Float32Array.from(brainMask) };
  const prepared = prepareInput(m, ct, { CT: ct, BRAINMASK: maskVol });
  timings.synthesisPreprocess = (timings.synthesisPreprocess ?? 0) + performance.now() - t;
  t = performance.now();
  const out = await registry.run(modelName, prepared.feeds);
  timings.synthesis = (timings.synthesis ?? 0) + performance.now() - t;
  t = performance.now();
  const y = out[m.outputs.tensor];
  if (!y) throw new Error(`model ${modelName} returned no "${m.outputs.tensor}" output`);
  const outputs = m.outputs as { scale?: number; bValue?: number };
  const scale = typeof outputs.scale === 'number' ? outputs.scale : 1000;
  const bValue = typeof outputs.bValue === 'number' ? outputs.bValue : 1000;
  const grid: ModelGrid = prepared.grid;
  const onCt = fromModelGrid(y.data, ct.geometry, grid);
  const data = new Float32Array(onCt.length);
  for (let i = 0; i < onCt.length; i++) {
    const v = onCt[i];
    data[i] = Number.isFinite(v) && v > 0 ? Math.min(65535, Math.round(v * scale)) : 0;
  }
  timings.synthesisPostprocess = (timings.synthesisPostprocess ?? 0) + performance.now() - t;
  const dwi: Volume = {
    kind: 'DWI',
    geometry: ct.geometry,
    data,
    sliceSources: ct.sliceSources,
    bValue,
    computed: true,
    seriesInstanceUid: ct.seriesInstanceUid,
    seriesDescription: `SYNTHETIC DWI from ${ct.seriesDescription ?? 'CT'}`,
  };
  return { dwi, brainMask, scale, bValue };
}
