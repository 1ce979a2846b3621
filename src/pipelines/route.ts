/**
 * Routing by what a study offers (the availability record from study/):
 *   DWI + ADC            → the route's dwiAdc model (default shaspec-realbg; the dual encoder one line away)
 *   DWI only / ADC only  → the route's singleModality model (missing-modality network; default shaspec-realbg)
 *   CT only              → CT→DWI synthesis, then the route's ctLesion model on the synthetic DWI (default
 *                          shaspec-missing, the model the CT route was measured with; else singleModality, else dwiAdc)
 *   nothing usable       → "not processed", with the reason
 * A preferred model that is not ready falls back to the missing-modality model (which serves
 * every subset) and the outcome says so.
 */
import { Route } from '../config/schema';
import { ModelRegistry } from '../models/registry';
import { AvailabilityRecord } from '../types';

export type RouteDecision =
  | { kind: 'lesion'; model: string; inputs: ('DWI' | 'ADC')[]; note?: string }
  | { kind: 'ct-synthesis'; synthesisModel: string; lesionModel: string; note?: string }
  | { kind: 'none'; reason: string };

export function decideRoute(av: AvailabilityRecord, route: Route, registry: Pick<ModelRegistry, 'isReady'>): RouteDecision {
  const { DWI, ADC, CT } = av.available;
  const models = route.models;
  if (DWI || ADC) {
    const inputs: ('DWI' | 'ADC')[] = [...(DWI ? (['DWI'] as const) : []), ...(ADC ? (['ADC'] as const) : [])];
    const preferred = DWI && ADC ? models.dwiAdc : models.singleModality;
    if (registry.isReady(preferred)) return { kind: 'lesion', model: preferred, inputs };
    if (preferred !== models.singleModality && registry.isReady(models.singleModality)) {
      return { kind: 'lesion', model: models.singleModality, inputs, note: `${preferred} not ready; used ${models.singleModality}` };
    }
    return { kind: 'none', reason: `no lesion model ready (${preferred}${preferred !== models.singleModality ? `, ${models.singleModality}` : ''})` };
  }
  if (CT) {
    if (!registry.isReady(models.ctToDwi)) return { kind: 'none', reason: `CT only, and the CT→DWI synthesis model "${models.ctToDwi}" is not installed or not ready` };
    const lesion = [models.ctLesion, models.singleModality, models.dwiAdc].find((m) => registry.isReady(m));
    if (!lesion) return { kind: 'none', reason: 'CT only: no lesion model ready to segment the synthetic DWI' };
    return { kind: 'ct-synthesis', synthesisModel: models.ctToDwi, lesionModel: lesion };
  }
  const why = av.notes.length ? av.notes.join('; ') : 'no DWI, ADC or head CT series found';
  return { kind: 'none', reason: `nothing usable: ${why}` };
}
