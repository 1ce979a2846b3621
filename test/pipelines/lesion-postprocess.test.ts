/**
 * False-positive control of the MR lesion mask (src/pipelines/lesion-postprocess.ts) and the b-value rule of the
 * ADC < 620 core (src/results/measure.ts, processor.coreMeasurement), on a small synthetic head whose every
 * component is placed on purpose: a bright scalp rim, a DWI-bright component with normal ADC, a small restricted
 * one, a single voxel.
 */
import { readPart10, seq, str, type NaturalDataset } from '../../src/dicom/dcmjs';
import {
  DEFAULT_LESION_POSTPROCESS,
  LesionPostprocessOptions,
  components26,
  diffusionBrainMask,
  postprocessLesionMask,
} from '../../src/pipelines/lesion-postprocess';
import { adcBValue, coreMeasurement } from '../../src/pipelines/processor';
import { coreThresholdValidity } from '../../src/results/measure';
import { buildSeg, ischaemicLesionSegment } from '../../src/results/seg';
import { writeMeasurementSr } from '../../src/results/sr';
import { Volume, VolumeGeometry } from '../../src/types';
import { deployment, provenanceFor, smallSeries } from '../results/fixtures';

const S = 12;
const R = 48;
const C = 48;
const PLANE = R * C;
const idx = (z: number, y: number, x: number) => z * PLANE + y * C + x;

function geometry(): VolumeGeometry {
  return {
    rows: R,
    columns: C,
    slices: S,
    pixelSpacing: [2, 2],
    sliceSpacing: 4,
    rowCosines: [1, 0, 0],
    columnCosines: [0, 1, 0],
    normal: [0, 0, 1],
    slicePositions: Array.from({ length: S }, (_, z) => [-47, -47, z * 4] as [number, number, number]),
    frameOfReferenceUid: '1.2.3.4',
    warnings: [],
  };
}

function vol(kind: Volume['kind'], data: Float32Array, bValue?: number): Volume {
  const sliceSources = Array.from({ length: S }, (_, z) => ({ sopInstanceUid: `1.2.3.${kind.length}.${z + 1}`, sopClassUid: '1.2.840.10008.5.1.4.1.1.4', seriesInstanceUid: `1.2.3.${kind.length}` }));
  return { kind, geometry: geometry(), data, sliceSources, seriesInstanceUid: `1.2.3.${kind.length}`, bValue };
}

/** Head: brain (radius 15 px) | dark skull (15-17.5) | bright scalp (17.5-21) | background. */
function head(adcScale = 1) {
  const b0 = new Float32Array(S * PLANE);
  const dwi = new Float32Array(S * PLANE);
  const adc = new Float32Array(S * PLANE);
  const tissue = new Uint8Array(S * PLANE); // 1 brain, 2 scalp
  for (let z = 0; z < S; z++) {
    for (let y = 0; y < R; y++) {
      for (let x = 0; x < C; x++) {
        const i = idx(z, y, x);
        const r = Math.hypot(y - 23.5, x - 23.5);
        const noise = ((i * 2654435761) % 97) / 97; // deterministic texture
        if (r < 15) {
          tissue[i] = 1;
          b0[i] = 1000 + 60 * noise;
          dwi[i] = 400 + 30 * noise;
          adc[i] = (780 + 40 * noise) * adcScale;
        } else if (r >= 17.5 && r < 21) {
          tissue[i] = 2;
          b0[i] = 1400 + 60 * noise; // brighter than brain: an unsuppressed scalp / coil periphery
          dwi[i] = 700 + 30 * noise;
          adc[i] = 1200 * adcScale;
        } else {
          b0[i] = 15 * noise;
          dwi[i] = 10 * noise;
          adc[i] = 0;
        }
      }
    }
  }
  // a CSF ventricle in the middle: bright on b0, dark on DWI, ADC 3000 (must not bias the normal-brain reference)
  for (let z = 3; z < 9; z++) for (let y = 21; y < 27; y++) for (let x = 20; x < 24; x++) {
    const i = idx(z, y, x);
    b0[i] = 2000;
    dwi[i] = 80;
    adc[i] = 3000 * adcScale;
  }
  return { b0: vol('DWI', b0, 0), dwi: vol('TRACEW', dwi, 1000), adc: vol('ADC', adc), tissue };
}

/** The model's mask: four components, each placed to test one rule. */
function lesions(h: ReturnType<typeof head>, adcScale = 1) {
  const mask = new Uint8Array(S * PLANE);
  const put = (zs: number[], ys: number[], xs: number[], adc: number, dwi: number) => {
    const out: number[] = [];
    for (const z of zs) for (const y of ys) for (const x of xs) {
      const i = idx(z, y, x);
      mask[i] = 1;
      h.adc.data[i] = adc * adcScale;
      h.dwi.data[i] = dwi;
      out.push(i);
    }
    return out;
  };
  // A: on the scalp rim (restricted-looking, so only the brain mask can remove it)
  const scalp = put([5, 6], [4, 5], [22, 23, 24], 400, 900);
  // B: DWI-bright inside the brain, normal ADC (T2 shine-through, coil periphery): 3 x 3 x 2 voxels
  const normal = put([4, 5], [15, 16, 17], [15, 16, 17], 800, 800);
  // C: a small restricted lesion: 3 x 2 x 1 voxels = 6 x 16 mm3 = 0.096 mL, ADC 400 (ratio ~0.5)
  const small = put([7], [30, 31], [30, 31, 32], 400, 800);
  // D: one voxel, restricted (below any sensible minimum size)
  const single = put([9], [12], [33], 400, 800);
  return { mask, scalp, normal, small, single };
}

const only = (k: keyof LesionPostprocessOptions): LesionPostprocessOptions => ({
  brainMask: { ...DEFAULT_LESION_POSTPROCESS.brainMask, enabled: k === 'brainMask' },
  minComponent: { ...DEFAULT_LESION_POSTPROCESS.minComponent, enabled: k === 'minComponent' },
  restrictedDiffusion: { ...DEFAULT_LESION_POSTPROCESS.restrictedDiffusion, enabled: k === 'restrictedDiffusion' },
});
const kept = (m: Uint8Array, voxels: number[]) => voxels.filter((i) => m[i]).length;

describe('lesion post-processing', () => {
  test('a component with normal ADC is dropped, by the restricted-diffusion rule', () => {
    const h = head();
    const l = lesions(h);
    const inputs = { ref: h.dwi, dwi: h.dwi, b0: h.b0, adc: h.adc };
    const all = postprocessLesionMask(l.mask, inputs);
    expect(kept(all.mask, l.normal)).toBe(0);
    const rd = postprocessLesionMask(l.mask, inputs, only('restrictedDiffusion'));
    expect(kept(rd.mask, l.normal)).toBe(0);
    // the reference is normal brain, not CSF: ~800
    expect(rd.report.restrictedDiffusion!.referenceAdc).toBeGreaterThan(760);
    expect(rd.report.restrictedDiffusion!.referenceAdc).toBeLessThan(840);
    // and it is this rule that drops it: with the rule off, it stays
    const off = postprocessLesionMask(l.mask, inputs, { ...DEFAULT_LESION_POSTPROCESS, restrictedDiffusion: { ...DEFAULT_LESION_POSTPROCESS.restrictedDiffusion, enabled: false } });
    expect(kept(off.mask, l.normal)).toBe(l.normal.length);
  });

  test('a small restricted component is kept', () => {
    const h = head();
    const l = lesions(h);
    const { mask, report } = postprocessLesionMask(l.mask, { ref: h.dwi, dwi: h.dwi, b0: h.b0, adc: h.adc });
    expect(kept(mask, l.small)).toBe(l.small.length);
    expect(report.componentsAfter).toBe(1);
  });

  test('the decision does not depend on the b-value the ADC came from (all ADC 20 % lower, as at b = 2500)', () => {
    const h = head(0.8);
    const l = lesions(h, 0.8);
    const { mask } = postprocessLesionMask(l.mask, { ref: h.dwi, dwi: h.dwi, b0: h.b0, adc: h.adc });
    expect(kept(mask, l.normal)).toBe(0);
    expect(kept(mask, l.small)).toBe(l.small.length);
  });

  test('the brain mask removes a bright scalp rim and keeps the brain', () => {
    const h = head();
    const o = DEFAULT_LESION_POSTPROCESS.brainMask;
    const brain = diffusionBrainMask(h.b0, o.openingMm, o.erodeMm, o.otsuFactor);
    let scalpIn = 0;
    let scalpN = 0;
    let brainIn = 0;
    let brainN = 0;
    h.tissue.forEach((t, i) => {
      if (t === 2) {
        scalpN++;
        scalpIn += brain[i];
      } else if (t === 1) {
        brainN++;
        brainIn += brain[i];
      }
    });
    expect(scalpIn).toBe(0);
    expect(brainIn / brainN).toBeGreaterThan(0.8);
    expect(scalpN).toBeGreaterThan(0);
    const l = lesions(h);
    const inputs = { ref: h.dwi, dwi: h.dwi, b0: h.b0, adc: h.adc };
    const bm = postprocessLesionMask(l.mask, inputs, only('brainMask'));
    expect(kept(bm.mask, l.scalp)).toBe(0);
    expect(kept(bm.mask, l.small)).toBe(l.small.length);
    expect(bm.report.brainMask!.source).toBe('b0');
    const none = postprocessLesionMask(l.mask, inputs, { ...only('brainMask'), brainMask: { ...DEFAULT_LESION_POSTPROCESS.brainMask, enabled: false } });
    expect(kept(none.mask, l.scalp)).toBe(l.scalp.length);
  });

  test('a component below the minimum size is dropped; the size is a volume, so it follows the voxel size', () => {
    const h = head();
    const l = lesions(h);
    const inputs = { ref: h.dwi, dwi: h.dwi, b0: h.b0, adc: h.adc };
    const ms = postprocessLesionMask(l.mask, inputs, only('minComponent'));
    expect(kept(ms.mask, l.single)).toBe(0);
    expect(kept(ms.mask, l.small)).toBe(l.small.length);
    // 0.1 mL minimum: the 0.096 mL component goes too (6 voxels of 16 mm3)
    const big = postprocessLesionMask(l.mask, inputs, { ...only('minComponent'), minComponent: { enabled: true, minVolumeMl: 0.1, minVoxels: 1 } });
    expect(big.report.minComponent!.minVoxels).toBe(7);
    expect(kept(big.mask, l.small)).toBe(0);
  });

  test('the report says what each rule did; without an ADC the restricted-diffusion rule says it was skipped', () => {
    const h = head();
    const l = lesions(h);
    const { report } = postprocessLesionMask(l.mask, { ref: h.dwi, dwi: h.dwi, b0: h.b0, adc: h.adc });
    expect(report.componentsBefore).toBe(4);
    expect(report.summary).toMatch(/brain mask \(b0/);
    expect(report.summary).toMatch(/minimum component/);
    expect(report.summary).toMatch(/restricted-diffusion check/);
    const noAdc = postprocessLesionMask(l.mask, { ref: h.dwi, dwi: h.dwi, b0: h.b0 });
    expect(noAdc.report.skipped.join()).toMatch(/no ADC/);
    expect(kept(noAdc.mask, l.normal)).toBe(l.normal.length);
  });

  test('26-connectivity: voxels touching only at a corner are one component', () => {
    const m = new Uint8Array(S * PLANE);
    m[idx(2, 2, 2)] = 1;
    m[idx(3, 3, 3)] = 1;
    m[idx(6, 6, 6)] = 1;
    expect(components26(m, S, R, C).members.length).toBe(2);
  });
});

describe('ADC < 620 core and the b-value of the ADC', () => {
  test('the threshold applies at b = 1000 and not at b = 2500 or 500', () => {
    expect(coreThresholdValidity(1000).applies).toBe(true);
    expect(coreThresholdValidity(2500).applies).toBe(false);
    expect(coreThresholdValidity(2500).note).toMatch(/NOT reported.*b = 2500/);
    expect(coreThresholdValidity(500).applies).toBe(false);
    expect(coreThresholdValidity(undefined).applies).toBe(true);
    expect(coreThresholdValidity(undefined).note).toMatch(/not known/);
  });

  test('a scanner ADC without its own b-value takes the trace DWI\'s; a computed one too', () => {
    const h = head();
    expect(adcBValue(h.adc, { ...h.dwi, bValue: 2500 })).toBe(2500);
    expect(adcBValue({ ...h.adc, bValue: 1000 }, { ...h.dwi, bValue: 2500 })).toBe(1000);
    expect(adcBValue(h.adc, undefined)).toBeUndefined();
  });

  // Healthy tissue at b = 2500 reads ~700: below 620 in places, so a "core" appears where there is none.
  function healthyLesionAtHighB(b: number) {
    const h = head();
    const mask = new Uint8Array(S * PLANE);
    for (let z = 4; z < 8; z++) for (let y = 20; y < 28; y++) for (let x = 10; x < 18; x++) {
      mask[idx(z, y, x)] = 1;
      h.adc.data[idx(z, y, x)] = 600;
    }
    return coreMeasurement(h.adc, { ...h.dwi, bValue: b }, h.dwi, mask);
  }

  test('core omitted, with the reason, for an ADC from b = 2500; reported for b = 1000', () => {
    const hi = healthyLesionAtHighB(2500);
    expect(hi.core).toBeUndefined();
    expect(hi.coreNote).toMatch(/NOT reported/);
    const lo = healthyLesionAtHighB(1000);
    expect(lo.core?.volumeMl).toBeCloseTo((4 * 8 * 8 * 16) / 1000, 6);
    expect(lo.coreNote).toMatch(/b = 1000/);
  });

  test('the SR says plainly that the core threshold does not apply, and carries no core number', () => {
    const s = smallSeries();
    const g = s.volume.geometry;
    const mask = new Uint8Array(g.rows * g.columns * g.slices);
    for (let i = 0; i < 40; i++) mask[i * 7] = 1;
    const prov = { ...provenanceFor([s.seriesInstanceUid]), postprocessing: 'Lesion post-processing: test summary.' };
    const seg = buildSeg({ source: s.volume, mask, sourceHeaders: s.headers, segments: [ischaemicLesionSegment('dual-encoder', '0.3.0')], provenance: prov, deployment });
    const adc: Volume = { ...s.volume, kind: 'ADC', bValue: undefined, data: new Float32Array(mask.length).fill(600) };
    const sr = (b: number) => {
      const { core, coreNote } = coreMeasurement(adc, { ...s.volume, bValue: b }, s.volume, mask);
      const out = writeMeasurementSr({
        sourceHeader: s.headers.values().next().value as NaturalDataset,
        sourceSlices: s.volume.sliceSources,
        seg: { sopInstanceUid: seg.sopInstanceUid, seriesInstanceUid: seg.seriesInstanceUid },
        lesionVolumeMl: seg.segmentVolumesMl[0],
        core,
        coreNote,
        algorithmName: 'dual-encoder',
        algorithmVersion: '0.3.0',
        provenance: prov,
        deployment,
      });
      const ds = readPart10(out.part10).dataset;
      const all: NaturalDataset[] = [];
      const walk = (items: NaturalDataset[]) => items.forEach((it) => (all.push(it), walk(seq(it, 'ContentSequence'))));
      walk(seq(ds, 'ContentSequence'));
      return {
        coreItems: all.filter((it) => seq(it, 'ConceptNameCodeSequence')[0]?.CodeValue === 'ADC620LESION'),
        texts: all.map((it) => str(it, 'TextValue')).filter((t): t is string => !!t),
      };
    };
    const at2500 = sr(2500);
    expect(at2500.coreItems).toHaveLength(0);
    expect(at2500.texts.some((t) => /NOT reported.*b = 2500/.test(t))).toBe(true);
    expect(at2500.texts).toContain('Lesion post-processing: test summary.');
    const at1000 = sr(1000);
    expect(at1000.coreItems).toHaveLength(1);
    expect(at1000.texts.some((t) => /from ADC at b = 1000/.test(t))).toBe(true);
  });
});
