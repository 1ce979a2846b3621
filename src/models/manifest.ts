/**
 * Model manifest (`models/<name>.json`): what the node needs to run a model exactly as it was
 * trained. Validated with zod; unknown extra keys (training details, metrics) are kept as is.
 */
import { z } from 'zod';

const Code = z.object({ code: z.string().min(1), scheme: z.string().min(1), meaning: z.string().min(1) });
export type ManifestCode = z.infer<typeof Code>;

const Normalisation = z.discriminatedUnion('method', [
  z.object({ method: z.literal('median-foreground'), clip: z.tuple([z.number(), z.number()]) }).passthrough(),
  z.object({ method: z.literal('scale'), factor: z.number(), clip: z.tuple([z.number(), z.number()]) }).passthrough(),
  z.object({ method: z.literal('window'), center: z.number(), width: z.number(), clip: z.tuple([z.number(), z.number()]).optional() }).passthrough(),
  /**
   * Brain tumour models: per sequence, over the 3-D volume on the reference grid, mean and std of the voxels in
   * the node's brain mask; x = clip((v - mean) / std) inside the mask, 0 outside (needs the mask: see
   * src/pipelines/brain-tumour-mr/index.ts, not preprocess.ts's normalise()).
   */
  z.object({ method: z.literal('zscore-brain'), clip: z.tuple([z.number(), z.number()]) }).passthrough(),
]);
export type NormalisationSpec = z.infer<typeof Normalisation>;

/**
 * Synthesis / fusion manifests (issue 15) may name their outputs by role (`outputs.fused.tensor`, `outputs.x0`)
 * instead of `outputs.tensor`: their main output (fused image / predicted x0) becomes `outputs.tensor`.
 */
function mainOutputTensor(raw: unknown): unknown {
  const r = raw as { task?: unknown; outputs?: Record<string, unknown> } | null;
  if (!r || typeof r !== 'object' || !r.outputs || typeof r.outputs !== 'object' || r.outputs.tensor !== undefined) return raw;
  const role = r.task === 'mr-fusion' ? r.outputs.fused : r.task === 'mr-sequence-synthesis' ? r.outputs.x0 ?? r.outputs.image : undefined;
  const t = typeof role === 'string' ? role : (role as { tensor?: unknown } | undefined)?.tensor;
  return typeof t === 'string' ? { ...r, outputs: { ...r.outputs, tensor: t } } : raw;
}

const ManifestObject = z
  .object({
    name: z.string().min(1),
    version: z.string().min(1),
    file: z.string().min(1),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    task: z.enum(['lesion-segmentation', 'ct-to-dwi', 'brain-tumour-segmentation', 'mr-sequence-synthesis', 'mr-fusion', 'liver-tumour-segmentation']),
    inputs: z
      .object({
        tensor: z.string().min(1),
        modalityMaskTensor: z.string().optional(),
        channels: z.array(z.object({ modality: z.string(), sliceOffset: z.number().int() }).passthrough()).min(1),
        grid: z.object({ size: z.tuple([z.number().int().positive(), z.number().int().positive()]), spacingMm: z.number().positive() }),
        normalisation: z.record(Normalisation),
        requires: z.array(z.string()).optional(),
        /** modalities the model can run without (missing-modality models). */
        optional: z.array(z.string()).optional(),
        /** Order of the modality-mask entries (brain tumour models: ["FLAIR","T1","T1c","T2"]). */
        modalityMaskOrder: z.array(z.string().min(1)).min(1).optional(),
        /** Modalities that must all be present for the model to run (e.g. brats-unet4: all four). */
        required: z.array(z.string()).optional(),
        /** Liver models: the name of the per-slice modality input ([N], 1 = CT, 0 = MRI; values in modalityValues). */
        modalityTensor: z.string().min(1).optional(),
        modalityValues: z.record(z.number()).optional(),
      })
      .passthrough(),
    outputs: z
      .object({
        tensor: z.string().min(1),
        threshold: z.number().optional(),
        /** 'softmax' for multi-class outputs (channel k = class k); default: one sigmoid channel. */
        activation: z.enum(['sigmoid', 'softmax']).optional(),
        /** Class names of a multi-class output, index = class (0 background). */
        classes: z.array(z.string().min(1)).min(2).optional(),
        labels: z
          .array(
            z
              .object({
                value: z.number().int().positive(),
                label: z.string().min(1),
                category: Code,
                type: Code,
                anatomicRegion: Code.optional(),
              })
              .passthrough(),
          )
          .optional(),
      })
      .passthrough(),
  })
  .passthrough();

export const ManifestSchema = z.preprocess(mainOutputTensor, ManifestObject);

export type ModelManifest = z.infer<typeof ManifestObject>;

/** Modalities whose channels feed the model, in channel order (e.g. ['DWI','ADC']). */
export function manifestModalities(m: ModelManifest): string[] {
  return [...new Set(m.inputs.channels.map((c) => c.modality))];
}

/** Modalities a model needs all of (`inputs.required`, else `inputs.requires`); [] = any subset. */
export function requiredModalities(m: ModelManifest): string[] {
  return m.inputs.required ?? m.inputs.requires ?? [];
}

/** A liver model's post-processing (manifest `postprocess`, issue 16 contract); defaults are the contract's. */
export interface LiverPostprocess {
  keepLargestLiverComponent: boolean;
  connectivity: 26;
  minTumourMl: number;
  /** Shape rules on tumour components for this modality (measure.ts postprocessLiver; 0 = off). */
  flatEndFactor: number;
  minAxialFill: number;
}

/**
 * The liver model's post-processing for a CT or MR series. `postprocess.tumourShape` holds the shape rules per
 * modality ({ CT: { flatEndFactor, minAxialFill }, MR: {...} }, chosen on VAL per modality); absent = off.
 */
export function liverPostprocess(m: ModelManifest, modality: 'CT' | 'MR'): LiverPostprocess {
  type Shape = { flatEndFactor?: unknown; minAxialFill?: unknown };
  const p = (m as unknown as { postprocess?: { keepLargestLiverComponent?: unknown; connectivity?: unknown; minTumourMl?: unknown; tumourShape?: Partial<Record<'CT' | 'MR', Shape>> } }).postprocess ?? {};
  if (p.connectivity !== undefined && p.connectivity !== 26) throw new Error(`model ${m.name}: postprocess.connectivity ${String(p.connectivity)}, the node implements 26`);
  const min = p.minTumourMl === undefined ? 0.065 : Number(p.minTumourMl);
  if (!Number.isFinite(min) || min < 0) throw new Error(`model ${m.name}: postprocess.minTumourMl ${String(p.minTumourMl)} is not a non-negative number`);
  const shape = (key: keyof Shape, max: number): number => {
    const v = p.tumourShape?.[modality]?.[key];
    const x = v === undefined ? 0 : Number(v);
    if (!Number.isFinite(x) || x < 0 || x > max) throw new Error(`model ${m.name}: postprocess.tumourShape.${modality}.${key} ${String(v)} is not a number in [0, ${max}]`);
    return x;
  };
  return { keepLargestLiverComponent: p.keepLargestLiverComponent !== false, connectivity: 26, minTumourMl: min, flatEndFactor: shape('flatEndFactor', 100), minAxialFill: shape('minAxialFill', 1) };
}
