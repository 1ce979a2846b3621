/**
 * The real diffusion scans the real-background generator (real_backgrounds.py) inserts lesions into, written as the
 * node assembles them (src/study: classification, sorting, the node's DWI/b0/ADC choice) to
 * cache/real-bg/<name>/{dwi,b0,adc}.f32, the node's brain mask brain.u8 (diffusionBrainMask on the b0, the
 * post-processing defaults) + geometry.json. Pixels and geometry only: no DICOM header, no patient
 * attribute is read out or written (the Philips study's headers hold a pseudonym; cache/ is git-ignored).
 *
 *   npx tsx dump_real_backgrounds.ts        # -> cache/real-bg/siemens-xa30, cache/real-bg/philips-achieva
 *
 * The GE DWI is left out: its pixel data hold no head (models/README.md).
 */
import * as fs from 'fs';
import * as path from 'path';
import { DEFAULT_LESION_POSTPROCESS, diffusionBrainMask } from '../../src/pipelines/lesion-postprocess';
import { assembleFromHeaders, readStudyHeaders } from '../../src/study';
import { Volume } from '../../src/types';
import { DICOM_DATA, instancesIn } from '../../test/study/synth';

const OUT = path.join(__dirname, 'cache/real-bg');

async function main(): Promise<void> {
  const sets: [string, string][] = [
    ['siemens-xa30', 'siemens-xa30-enhanced-dwi'], // scanner TRACEW b 2500 + scanner ADC + b0 frames of 10_DWI
    ['philips-achieva', 'philips-achieva-brain'], // isotropic b 1000 (304) + scanner ADC (303) + b0 of 301
  ];
  for (const [name, dir] of sets) {
    const st = await assembleFromHeaders(readStudyHeaders(instancesIn(path.join(DICOM_DATA, dir))));
    const { DWI, DWI_B0, ADC } = st.volumes;
    if (!DWI || !DWI_B0 || !ADC) throw new Error(`${name}: DWI, b0 and ADC needed`);
    const g = DWI.geometry;
    for (const v of [DWI_B0, ADC] as Volume[]) {
      const h = v.geometry;
      const same = h.rows === g.rows && h.columns === g.columns && h.slices === g.slices && h.slicePositions.every((p, z) => p.every((x, k) => Math.abs(x - g.slicePositions[z][k]) < 0.01));
      if (!same) throw new Error(`${name}: ${v.kind} is not on the DWI grid`);
    }
    const d = path.join(OUT, name);
    fs.mkdirSync(d, { recursive: true });
    const wr = (f: string, a: Float32Array) => fs.writeFileSync(path.join(d, f), Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    wr('dwi.f32', DWI.data);
    wr('b0.f32', DWI_B0.data);
    wr('adc.f32', ADC.data);
    // the node's own brain mask (post-processing rule 1, defaults): where lesions may be inserted
    const bm = DEFAULT_LESION_POSTPROCESS.brainMask;
    fs.writeFileSync(path.join(d, 'brain.u8'), diffusionBrainMask(DWI_B0, bm.openingMm, bm.erodeMm, bm.otsuFactor));
    const geometry = {
      rows: g.rows,
      columns: g.columns,
      slices: g.slices,
      pixelSpacing: g.pixelSpacing,
      sliceSpacing: g.sliceSpacing,
      imageOrientationPatient: [...g.rowCosines, ...g.columnCosines],
      normal: g.normal,
      imagePositionPatientFirst: g.slicePositions[0],
      bValue: DWI.bValue,
      layout: 'float32 little-endian, [slice][row][column], slices ascending along the normal',
    };
    fs.writeFileSync(path.join(d, 'geometry.json'), JSON.stringify(geometry, null, 1) + '\n');
    console.log(`${name}: ${g.columns}x${g.rows}x${g.slices} @ ${g.pixelSpacing.join('x')} x ${g.sliceSpacing} mm, b ${DWI.bValue}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
