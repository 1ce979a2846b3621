/**
 * The lesion models on a real scan with no lesion: the Siemens XA30 volunteer in the shared data
 * (`../shared/data/dicom/siemens-xa30-enhanced-dwi`: healthy adult, Prisma 3T, enhanced multi-frame DWI at
 * b = 2500, 72 x 72 x 39 @ 3 mm, with the scanner's TRACEW and ADC). Nothing the node marks there is a lesion, so
 * the marked volume is the false-positive volume on real data from a scanner and protocol the phantoms never were.
 * Read through the node's own path: study assembly (src/study), the manifest's pre-processing, onnxruntime-node
 * (cpu), back to the DWI grid (src/pipelines/processor.ts segmentLesion).
 */
import * as path from 'path';
import { ModelRegistry } from '../../src/models/registry';
import { segmentLesion } from '../../src/pipelines/processor';
import { assembleFromHeaders, readStudyHeaders } from '../../src/study';
import { DICOM_DATA, instancesIn } from '../study/synth';

export const XA30_VOLUNTEER = path.join(DICOM_DATA, 'siemens-xa30-enhanced-dwi');

export interface FalsePositiveResult {
  model: string;
  /** which DWI/ADC the model read: the scanner's TRACEW + ADC, or the node's own trace and ADC from the b0/b2500 frames */
  input: 'scanner TRACEW + ADC' | 'node-computed trace + ADC';
  markedMl: number;
  /** marked voxels per slice (inferior → superior), slices with none left out */
  slices: Record<number, number>;
}

export async function volunteerFalsePositives(registry: ModelRegistry, models: string[]): Promise<FalsePositiveResult[]> {
  const headers = readStudyHeaders(instancesIn(XA30_VOLUNTEER));
  const scanner = await assembleFromHeaders(headers);
  const computed = await assembleFromHeaders(headers.filter((h) => h.instance.path.includes('10_DWI_dir80_PA')));
  const out: FalsePositiveResult[] = [];
  for (const [input, st] of [['scanner TRACEW + ADC', scanner], ['node-computed trace + ADC', computed]] as const) {
    const dwi = st.volumes.DWI!;
    const g = dwi.geometry;
    const voxelMl = (g.pixelSpacing[0] * g.pixelSpacing[1] * g.sliceSpacing) / 1000;
    for (const model of models) {
      const { mask } = await segmentLesion(registry, model, { DWI: dwi, ADC: st.volumes.ADC }, {});
      const plane = g.rows * g.columns;
      const slices: Record<number, number> = {};
      let n = 0;
      for (let z = 0; z < g.slices; z++) {
        let c = 0;
        for (let i = 0; i < plane; i++) c += mask[z * plane + i];
        if (c) slices[z] = c;
        n += c;
      }
      out.push({ model, input, markedMl: Math.round(n * voxelMl * 100) / 100, slices });
    }
  }
  return out;
}
