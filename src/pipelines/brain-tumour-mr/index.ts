/**
 * Task brain-tumour-mr: brain tumour sub-regions (enhancing tumour, necrotic / non-enhancing core, oedema)
 * from whatever subset of FLAIR, T1, T1 post-contrast (T1C) and T2 the study carries (issue 14).
 *   needs   at least one usable FLAIR, T1, T1C or T2 series
 *   models  route.models.brainTumour (an any-subset network with a modality-mask input)
 *   makes   (to come) a three-segment SEG and a TID 1500 SR with the volume of each sub-region
 *
 * NOT FINISHED: the acceptance rule and the routing are in place (a route that lists brain-tumour-mr selects
 * it, and every decision is in the outcome), but run() throws until the model, the common grid and the brain
 * mask are wired in. A route never runs this task unless it lists it (the default route tasks are the stroke ones).
 */
import type { Task } from '../task';

export const TUMOUR_SEQUENCES = ['FLAIR', 'T1', 'T1C', 'T2'] as const;
export type TumourSequence = (typeof TUMOUR_SEQUENCES)[number];

export interface BrainTumourPlan {
  model: string;
  /** The sequences present (the model's modality mask); the others are missing and the model does without. */
  present: TumourSequence[];
  missing: TumourSequence[];
}

export const brainTumourMr: Task<BrainTumourPlan> = {
  id: 'brain-tumour-mr',
  title: 'Brain tumour on MR: enhancing tumour, tumour core and oedema from any subset of FLAIR, T1, T1C, T2',
  needs: 'at least one usable FLAIR, T1, T1C or T2 series',
  models: (route) => [route.models.brainTumour],
  contentDefault: {
    competesWith: ['stroke-mr'],
    holds: (av) => Boolean(av.available.T1C),
    description: 'a post-contrast T1 (T1C) present',
  },
  accept(av, route, registry) {
    // Read defensively: the availability record of an older outcome (or a study stage without these fields) lacks them.
    const a = av.available as Partial<Record<TumourSequence, boolean>>;
    const present = TUMOUR_SEQUENCES.filter((k) => a[k] === true);
    if (!present.length) return { run: false, reason: 'no usable FLAIR, T1, T1C or T2 series', inputsMissing: true };
    const model = route.models.brainTumour;
    if (!registry.isReady(model)) return { run: false, reason: `brain tumour model "${model}" is not installed or not ready (sequences present: ${present.join(', ')})` };
    const missing = TUMOUR_SEQUENCES.filter((k) => !present.includes(k));
    return { run: true, plan: { model, present, missing }, note: missing.length ? `without ${missing.join(', ')}` : undefined };
  },
  async run() {
    throw new Error('brain-tumour-mr: not implemented yet (segmentation model, common grid and brain mask not wired in)');
  },
};
