/** Measurements the SR reports, computed on the source grid. */
import type { Volume } from '../types';

/** The ADC threshold of the ischaemic core (x10^-6 mm²/s), as used by RAPID and DEFUSE-3. */
export const ADC_CORE_THRESHOLD = 620;

/**
 * Volume (mL) of voxels with ADC < threshold inside a region mask (the lesion, or a brain mask), on
 * the ADC grid. ADC values in 10^-6 mm²/s (Volume convention); zero / non-finite voxels (background,
 * outside the acquisition) are not counted.
 */
export function adcCoreVolumeMl(adc: Volume, region: Uint8Array, threshold = ADC_CORE_THRESHOLD): number {
  const g = adc.geometry;
  if (region.length !== adc.data.length) throw new Error(`region has ${region.length} voxels, the ADC ${adc.data.length}`);
  let n = 0;
  for (let i = 0; i < region.length; i++) {
    const v = adc.data[i];
    if (region[i] && Number.isFinite(v) && v > 0 && v < threshold) n++;
  }
  return (n * g.pixelSpacing[0] * g.pixelSpacing[1] * g.sliceSpacing) / 1000;
}
