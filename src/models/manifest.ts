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
]);
export type NormalisationSpec = z.infer<typeof Normalisation>;

export const ManifestSchema = z
  .object({
    name: z.string().min(1),
    version: z.string().min(1),
    file: z.string().min(1),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    task: z.enum(['lesion-segmentation', 'ct-to-dwi']),
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
      })
      .passthrough(),
    outputs: z
      .object({
        tensor: z.string().min(1),
        threshold: z.number().optional(),
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

export type ModelManifest = z.infer<typeof ManifestSchema>;

/** Modalities whose channels feed the model, in channel order (e.g. ['DWI','ADC']). */
export function manifestModalities(m: ModelManifest): string[] {
  return [...new Set(m.inputs.channels.map((c) => c.modality))];
}
