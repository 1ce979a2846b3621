/**
 * Study stage on small synthetic series: ordering, bad geometry, nothing usable, multi-direction
 * DWI in one interleaved series. The series are written as real Part 10 files with writePart10.
 */
import * as fs from 'fs';
import { assembleStudy } from '../../src/study';
import { newUid } from '../../src/dicom/dcmjs';
import { filled, shuffle, SliceSpec, tmpDir, writeSeries } from './synth';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function dir(name: string): string {
  const d = tmpDir(name);
  dirs.push(d);
  return d;
}

/** T2-weighted slices along z (TR 4000, TE 90), pixel value = 100 + slice index. */
function t2Slices(n: number, spacing = 3): SliceSpec[] {
  return Array.from({ length: n }, (_, k) => ({
    position: [-4, -4, 10 + k * spacing] as [number, number, number],
    pixels: filled(100 + k),
    instanceNumber: n - k, // reversed on purpose: order must come from positions
  }));
}
const T2 = { RepetitionTime: 4000, EchoTime: 90 };

describe('volume assembly from synthetic series', () => {
  test('shuffled file order and reversed InstanceNumber: slices sorted along the normal', async () => {
    const inst = writeSeries(dir('shuffle'), { modality: 'MR', extra: T2, slices: t2Slices(10) });
    const r = await assembleStudy(shuffle(inst));
    const v = r.volumes.T2;
    expect(v).toBeDefined();
    expect(r.availability.available.T2).toBe(true);
    const g = v!.geometry;
    expect([g.rows, g.columns, g.slices]).toEqual([8, 8, 10]);
    expect(g.sliceSpacing).toBeCloseTo(3, 6);
    expect(g.normal).toEqual([0, 0, 1]);
    for (let z = 0; z < 10; z++) {
      expect(g.slicePositions[z][2]).toBeCloseTo(10 + 3 * z, 6);
      expect(v!.data[z * 64]).toBe(100 + z);
    }
    // slice sources follow the sorted order, not the file order
    const byUid = new Map(inst.map((i, k) => [i.sopInstanceUid, k]));
    expect(v!.sliceSources.map((s) => byUid.get(s.sopInstanceUid))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(g.warnings).toEqual([]);
    expect(r.headers.size).toBe(10);
    expect(r.headers.get(inst[0].sopInstanceUid)?.PixelData).toBeUndefined();
  });

  test('negative normal (feet-first ordering) still sorts by position along the normal', async () => {
    // column cosines (0,-1,0) give normal (0,0,-1): ascending along it means descending z
    const slices = t2Slices(5).map((s) => ({ ...s, orientation: [1, 0, 0, 0, -1, 0] }));
    const r = await assembleStudy(writeSeries(dir('neg'), { modality: 'MR', extra: T2, slices }));
    const g = r.volumes.T2!.geometry;
    expect(g.normal[2]).toBeCloseTo(-1, 9);
    expect(g.slicePositions.map((p) => p[2])).toEqual([22, 19, 16, 13, 10]);
    expect(r.volumes.T2!.data[0]).toBe(104);
  });

  test('missing slice: volume kept, the gap reported in geometry and in the series reason', async () => {
    const slices = t2Slices(10).filter((_, k) => k !== 4);
    const r = await assembleStudy(writeSeries(dir('missing'), { modality: 'MR', extra: T2, slices }));
    const v = r.volumes.T2!;
    expect(v.geometry.slices).toBe(9);
    expect(v.geometry.sliceSpacing).toBeCloseTo(3, 6);
    expect(v.geometry.warnings.join(' ')).toMatch(/1 missing slice/);
    expect(r.availability.series[0].reason).toMatch(/missing slice/);
  });

  test('mixed orientations in one series: rejected with a reason, no crash', async () => {
    const slices = t2Slices(6).map((s, k) => (k % 2 ? { ...s, orientation: [0, 1, 0, 0, 0, -1] } : s));
    const r = await assembleStudy(writeSeries(dir('mixori'), { modality: 'MR', extra: T2, slices }));
    expect(r.volumes.T2).toBeUndefined();
    expect(r.availability.available.T2).toBe(false);
    expect(r.availability.series[0].usable).toBe(false);
    expect(r.availability.series[0].reason).toMatch(/mixed orientations/);
  });

  test('no FrameOfReferenceUID: rejected with a reason, so the study ends not_processed instead of being retried', async () => {
    const r = await assembleStudy(writeSeries(dir('nofor'), { modality: 'MR', extra: { ...T2, FrameOfReferenceUID: '' }, slices: t2Slices(4) }));
    expect(r.availability.series[0].usable).toBe(false);
    expect(r.availability.series[0].reason).toMatch(/no valid FrameOfReferenceUID/);
    expect(r.availability.available.T2).toBe(false);
  });

  test('mixed matrix sizes: rejected with a reason', async () => {
    const slices = t2Slices(4).map((s, k) => (k === 2 ? { ...s, rows: 4, columns: 4, pixels: filled(1, 16) } : s));
    const r = await assembleStudy(writeSeries(dir('mixsize'), { modality: 'MR', extra: T2, slices }));
    expect(r.availability.series[0].usable).toBe(false);
    expect(r.availability.series[0].reason).toMatch(/mixed matrix sizes/);
  });

  test.each([
    ['NaN', ['NaN', 'NaN']],
    ['zero', [0, 0]],
  ])('%s PixelSpacing: rejected with a reason', async (_name, ps) => {
    const slices = t2Slices(4).map((s) => ({ ...s, pixelSpacing: ps }));
    const r = await assembleStudy(writeSeries(dir('spacing'), { modality: 'MR', extra: T2, slices }));
    expect(r.availability.series[0].usable).toBe(false);
    expect(r.availability.series[0].reason).toMatch(/PixelSpacing missing, zero or not a number/);
    expect(r.availability.available.T2).toBe(false);
  });

  test('nothing usable: localiser + secondary capture + unreadable file give reasons, not a crash', async () => {
    const d = dir('nothing');
    const study = newUid();
    const scout = writeSeries(d, {
      modality: 'CT',
      slices: [{ position: [0, 0, 0], pixels: filled(0), instanceNumber: 1, imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'] }],
    }, study);
    const sc = writeSeries(d, {
      modality: 'MR',
      sopClassUid: '1.2.840.10008.5.1.4.1.1.7',
      slices: [{ position: [0, 0, 0], pixels: filled(0), instanceNumber: 1, imageType: ['DERIVED', 'SECONDARY'] }],
    }, study);
    const junk = `${d}/junk.dcm`;
    fs.writeFileSync(junk, Buffer.from('this is not DICOM at all'));
    const r = await assembleStudy([
      ...scout,
      ...sc,
      { ...scout[0], sopInstanceUid: '9.9.9', seriesInstanceUid: '9.9', path: junk },
    ]);
    expect(Object.values(r.availability.available).every((x) => !x)).toBe(true);
    // the note says why without the "nothing usable:" the processor puts in front of it (it was doubled)
    expect(r.availability.notes).toContain('no series could be used as DWI, ADC, CT, FLAIR, T1, T1C or T2 (see the series reasons)');
    expect(r.availability.notes.join('; ')).not.toMatch(/nothing usable/);
    const reasons = r.availability.series.map((s) => `${s.classification}: ${s.reason}`).join('\n');
    expect(reasons).toMatch(/LOCALIZER/);
    expect(reasons).toMatch(/Secondary Capture/);
    expect(reasons).toMatch(/unreadable|not a readable DICOM/);
  });

  test('empty study: a record with a reason', async () => {
    const r = await assembleStudy([]);
    expect(r.availability.series).toEqual([]);
    expect(r.availability.notes.join(' ')).toMatch(/no instances/);
  });

  test('unsupported transfer syntax: series rejected with the syntax named', async () => {
    const slices = t2Slices(3);
    const inst = writeSeries(dir('ts'), { modality: 'MR', extra: T2, slices, transferSyntaxUid: '1.2.840.10008.1.2.4.100' });
    const r = await assembleStudy(inst);
    expect(r.volumes.T2).toBeUndefined();
    expect(r.availability.series[0].usable).toBe(false);
    expect(r.availability.series[0].reason).toMatch(/1\.2\.840\.10008\.1\.2\.4\.100 is not supported/);
  });
});

describe('diffusion from one interleaved series', () => {
  // 4 slices; at each: b0 then b1000 along x, y, z (interleaved instance numbers); D differs by axis.
  const D = [0.5e-3, 1.0e-3, 1.5e-3];
  const S0 = 1000;
  const dirs3: [number, number, number][] = [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ];
  function interleaved(): SliceSpec[] {
    const out: SliceSpec[] = [];
    let n = 1;
    for (let z = 0; z < 4; z++) {
      const pos: [number, number, number] = [0, 0, z * 5];
      // stored = value * 100, slope 0.01: the rescale must be applied
      out.push({ position: pos, pixels: filled(S0 * 10), rescaleSlope: 0.1, instanceNumber: n++, bValue: 0, gradient: [0, 0, 0] });
      dirs3.forEach((g, k) =>
        out.push({
          position: pos,
          pixels: filled(Math.round(S0 * Math.exp(-1000 * D[k]) * 10)),
          rescaleSlope: 0.1,
          instanceNumber: n++,
          bValue: 1000,
          gradient: g,
        }),
      );
    }
    return out;
  }

  test('b0/b1000 grouped, trace = geometric mean of the 3 directions, ADC computed and marked', async () => {
    const inst = writeSeries(dir('dwi'), {
      modality: 'MR',
      seriesDescription: 'ep2d_diff',
      extra: { RepetitionTime: 5000, EchoTime: 80 },
      slices: interleaved(),
    });
    const r = await assembleStudy(shuffle(inst, 3));
    const dec = r.availability.series[0];
    expect(dec.classification).toBe('DWI');
    expect(dec.bValues).toEqual([0, 1000]);
    expect(dec.reason).toMatch(/3 directions/);
    const dwi = r.volumes.DWI!;
    expect(dwi.bValue).toBe(1000);
    expect(dwi.computed).toBe(true);
    expect(dwi.geometry.slices).toBe(4);
    const geo = S0 * Math.exp(-1000 * (D[0] + D[1] + D[2]) / 3); // 367.9
    const arith = (S0 * (Math.exp(-0.5) + Math.exp(-1) + Math.exp(-1.5))) / 3; // 399.1
    expect(Math.abs(dwi.data[0] - geo)).toBeLessThan(0.2);
    expect(Math.abs(dwi.data[0] - arith)).toBeGreaterThan(30);
    expect(r.volumes.DWI_B0!.data[0]).toBeCloseTo(S0, 3);
    const adc = r.volumes.ADC!;
    expect(adc.computed).toBe(true);
    expect(adc.data[0]).toBeCloseTo(1000, 0); // mean D = 1.0e-3 mm²/s = 1000 × 10^-6
    expect(r.availability.available).toMatchObject({ DWI: true, ADC: true });
  });

  test("scanner's isotropic image in the same series (zero gradient at b1000) is used as the trace", async () => {
    const withIso = interleaved().concat(
      [0, 1, 2, 3].map((z) => ({
        position: [0, 0, z * 5] as [number, number, number],
        pixels: filled(5000), // 500 after the 0.1 slope: deliberately not the geometric mean
        rescaleSlope: 0.1,
        instanceNumber: 100 + z,
        bValue: 1000,
        gradient: [0, 0, 0] as [number, number, number],
      })),
    );
    const inst = writeSeries(dir('dwiiso'), { modality: 'MR', extra: { RepetitionTime: 5000, EchoTime: 80 }, slices: withIso });
    const r = await assembleStudy(inst);
    expect(r.availability.series[0].reason).toMatch(/isotropic images in the series used as the trace \(12 directional frames set aside\)/);
    expect(r.volumes.DWI!.data[0]).toBeCloseTo(500, 3);
    expect(r.volumes.DWI!.geometry.slices).toBe(4);
  });
});
