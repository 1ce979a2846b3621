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
import { DEFAULT_LESION_POSTPROCESS, LesionPostprocessOptions, components26, postprocessLesionMask } from '../../src/pipelines/lesion-postprocess';
import { segmentLesion } from '../../src/pipelines/processor';
import { assembleFromHeaders, readStudyHeaders } from '../../src/study';
import { Volume } from '../../src/types';
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

/** A real diffusion study without a labelled infarct, as the node assembles it. */
export interface RealScan {
  name: string;
  dwi: Volume;
  b0?: Volume;
  adc?: Volume;
}

/**
 * The real scans in the shared data that have no labelled infarct: the Siemens XA30 volunteer (b 2500; the
 * scanner's TRACEW + ADC, and the node's own from the b0/b2500 frames), the GE SIGNA DWI (b 1000, ADC computed by
 * the node; its pixel data hold no head, three bright horizontal lines per slice, the same in DCMTK's dcm2pnm) and
 * the Philips Achieva study (b 1000, the scanner's ADC; no acute infarct seen: models/README.md).
 */
export async function realScans(): Promise<RealScan[]> {
  const load = async (dir: string, filter?: (p: string) => boolean) => {
    const headers = readStudyHeaders(instancesIn(path.join(DICOM_DATA, dir)));
    return assembleFromHeaders(filter ? headers.filter((h) => filter(h.instance.path)) : headers);
  };
  const scan = (name: string, st: Awaited<ReturnType<typeof load>>): RealScan => ({ name, dwi: st.volumes.DWI!, b0: st.volumes.DWI_B0, adc: st.volumes.ADC });
  return [
    scan('Siemens XA30 b2500, scanner TRACEW+ADC', await load('siemens-xa30-enhanced-dwi')),
    scan('Siemens XA30 b2500, node trace+ADC', await load('siemens-xa30-enhanced-dwi', (p) => p.includes('10_DWI_dir80_PA'))),
    scan('GE b1000, node trace+ADC', await load('ge-dwi')),
    scan('Philips Achieva b1000, scanner ADC', await load('philips-achieva-brain')),
  ];
}

export interface RealScanResult {
  scan: string;
  model: string;
  /** the model's mask as it comes back to the DWI grid */
  rawMl: number;
  rawComponents: number;
  /** after the lesion post-processing: what the node's SEG holds */
  markedMl: number;
  components: number;
  postprocessing: string;
}

/** Each model on each real scan through the node's path, before and after the lesion post-processing. */
export async function realScanFalsePositives(
  registry: ModelRegistry,
  models: string[],
  opts: LesionPostprocessOptions = DEFAULT_LESION_POSTPROCESS,
): Promise<RealScanResult[]> {
  const out: RealScanResult[] = [];
  for (const sc of await realScans()) {
    const g = sc.dwi.geometry;
    const voxelMl = (g.pixelSpacing[0] * g.pixelSpacing[1] * g.sliceSpacing) / 1000;
    const ml = (m: Uint8Array) => Math.round(m.reduce((a, x) => a + x, 0) * voxelMl * 100) / 100;
    const nc = (m: Uint8Array) => components26(m, g.slices, g.rows, g.columns).members.length;
    for (const model of models) {
      const { mask: raw } = await segmentLesion(registry, model, { DWI: sc.dwi, ADC: sc.adc }, {});
      const { mask, report } = postprocessLesionMask(raw, { ref: sc.dwi, dwi: sc.dwi, b0: sc.b0, adc: sc.adc }, opts);
      out.push({ scan: sc.name, model, rawMl: ml(raw), rawComponents: nc(raw), markedMl: ml(mask), components: nc(mask), postprocessing: report.summary });
    }
  }
  return out;
}
