/**
 * Study stage on real Siemens XA30 data (read from the shared data folder, never copied):
 * enhanced multi-frame DWI (b0 + 20 directions at b2500) with the scanner's ADC and TRACEW, and a
 * T1w MPRAGE-type series of the same volunteer.
 */
import * as path from 'path';
import { assembleFromHeaders, AssembledStudy, readStudyHeaders } from '../../src/study';
import { DICOM_DATA, instancesIn } from './synth';

const XA = path.join(DICOM_DATA, 'siemens-xa30-enhanced-dwi');
const median = (a: number[]): number => {
  const s = [...a].sort((x, y) => x - y);
  return s[s.length >> 1];
};

describe('Siemens XA30 enhanced multi-frame DWI + scanner ADC/TRACEW + T1', () => {
  let full: AssembledStudy;
  let dwiOnly: AssembledStudy;
  beforeAll(async () => {
    // one header pass, two assemblies: the whole study, and the DWI series alone (nothing from the
    // scanner's ADC/TRACEW series, so the node must compute them)
    const headers = readStudyHeaders(instancesIn(XA));
    full = await assembleFromHeaders(headers);
    dwiOnly = await assembleFromHeaders(headers.filter((h) => h.instance.path.includes('10_DWI_dir80_PA')));
  });

  test('every series classified, with its b-values and the tags that decided', () => {
    const byDesc = new Map(full.availability.series.map((s) => [s.seriesDescription, s]));
    expect(byDesc.get('DWI_dir80_PA')).toMatchObject({ classification: 'DWI', bValues: [0, 2500], usable: true, instanceCount: 21 });
    expect(byDesc.get('DWI_dir80_PA')!.reason).toMatch(/MRDiffusionSequence DiffusionBValue \(0018,9087\) per frame/);
    expect(byDesc.get('DWI_dir80_PA')!.reason).toMatch(/20 directions/);
    expect(byDesc.get('DWI_dir80_PA_ADC')).toMatchObject({ classification: 'ADC', usable: true });
    expect(byDesc.get('DWI_dir80_PA_TRACEW')).toMatchObject({ classification: 'TRACEW', bValues: [2500], usable: true });
    expect(byDesc.get('anat-T1w_acq-tfl')).toMatchObject({ classification: 'T1', usable: true });
    expect(byDesc.get('anat-T1w_acq-tfl')!.reason).toMatch(/TI 900/);
    expect(full.availability.available).toEqual({ DWI: true, ADC: true, CT: false, FLAIR: false, T1: true, T1C: false, T2: false });
    expect(full.headers.size).toBe(24);
  });

  test('scanner volumes preferred: TRACEW for DWI, scanner ADC (not computed), geometry from functional groups', () => {
    const { DWI, ADC, DWI_B0, T1 } = full.volumes;
    expect(DWI!.kind).toBe('TRACEW');
    expect(DWI!.bValue).toBe(2500);
    expect(DWI!.computed).toBeFalsy();
    expect(ADC!.computed).toBeFalsy();
    expect(DWI_B0!.bValue).toBe(0);
    for (const v of [DWI!, ADC!, DWI_B0!]) {
      const g = v.geometry;
      expect([g.rows, g.columns, g.slices]).toEqual([72, 72, 39]);
      expect(g.pixelSpacing).toEqual([3, 3]);
      expect(g.sliceSpacing).toBeCloseTo(3, 3);
      expect(g.normal).toEqual([0, 0, 1]);
      expect(g.slicePositions[0]).toEqual([-108, -114.721, -23.3962]);
      expect(g.warnings).toEqual([]);
      // ascending along the normal
      for (let z = 1; z < g.slices; z++) expect(g.slicePositions[z][2]).toBeGreaterThan(g.slicePositions[z - 1][2]);
      // multi-frame: one source instance, frame numbers recorded
      expect(v.sliceSources[0].frameNumber).toBeDefined();
    }
    const t1 = T1!.geometry;
    expect([t1.rows, t1.columns, t1.slices]).toEqual([128, 128, 96]);
    expect(t1.rowCosines).toEqual([0, 1, 0]);
    expect(t1.columnCosines).toEqual([0, 0, -1]);
    expect(t1.sliceSpacing).toBeCloseTo(2, 3);
  });

  test('computed trace and ADC agree with the scanner TRACEW and ADC inside the brain', () => {
    const cT = dwiOnly.volumes.DWI!;
    const cA = dwiOnly.volumes.ADC!;
    expect(cT.computed).toBe(true);
    expect(cA.computed).toBe(true);
    expect(dwiOnly.availability.notes.join(' ')).toMatch(/ADC computed from b=0 and b=2500/);
    const sT = full.volumes.DWI!;
    const sA = full.volumes.ADC!;
    const b0 = dwiOnly.volumes.DWI_B0!.data;
    let mean = 0;
    for (const v of b0) mean += v;
    mean /= b0.length;
    const relT: number[] = [];
    const relA: number[] = [];
    for (let i = 0; i < b0.length; i++) {
      if (b0[i] > mean && sA.data[i] > 0 && sT.data[i] > 0) {
        relT.push(Math.abs(cT.data[i] - sT.data[i]) / sT.data[i]);
        relA.push(Math.abs(cA.data[i] - sA.data[i]) / sA.data[i]);
      }
    }
    const mT = median(relT);
    const mA = median(relA);
    // figures reported in src/study/README.md
    process.stdout.write(`XA30 brain voxels ${relT.length}: median |trace-TRACEW|/TRACEW ${(mT * 100).toFixed(2)}%, median |ADC-ADC_scanner|/ADC_scanner ${(mA * 100).toFixed(2)}%\n`);
    expect(relT.length).toBeGreaterThan(30000);
    expect(mT).toBeLessThan(0.02);
    expect(mA).toBeLessThan(0.02);
    // an arithmetic mean over directions would be measurably off: guard against a silent change
    expect(median(relT)).toBeGreaterThan(0);
  });
});

