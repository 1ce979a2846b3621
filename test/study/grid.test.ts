/**
 * Common grid for the structural MR sequences: an analytic pattern on synthetic geometries
 * (different matrices, spacings, slice positions and an in-plane rotation), the refusal for another
 * frame of reference, and the real Philips T2 (512²) / FLAIR / T1 (256²) brought onto one grid.
 */
import * as fs from 'fs';
import * as path from 'path';
import { assembleFromHeaders, readStudyHeaders } from '../../src/study';
import { commonGrid, resampleToGeometry, voxelToPatient } from '../../src/study/grid';
import { Vec3, Volume, VolumeGeometry, VolumeKind } from '../../src/types';
import { DICOM_DATA, instancesIn } from './synth';

const cross = (a: Vec3, b: Vec3): Vec3 => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];

function geometry(o: {
  rows: number;
  columns: number;
  spacing: [number, number];
  origin: Vec3;
  rowCos?: Vec3;
  colCos?: Vec3;
  slicePos: number[];
  forUid?: string;
}): VolumeGeometry {
  const rowCosines = o.rowCos ?? [1, 0, 0];
  const columnCosines = o.colCos ?? [0, 1, 0];
  const normal = cross(rowCosines, columnCosines);
  return {
    rows: o.rows,
    columns: o.columns,
    slices: o.slicePos.length,
    pixelSpacing: o.spacing,
    sliceSpacing: o.slicePos.length > 1 ? o.slicePos[1] - o.slicePos[0] : 1,
    rowCosines,
    columnCosines,
    normal,
    slicePositions: o.slicePos.map((d) => [0, 1, 2].map((i) => o.origin[i] + d * normal[i]) as Vec3),
    frameOfReferenceUid: o.forUid ?? '1.2.3.100',
    warnings: [],
  };
}
function volume(kind: VolumeKind, g: VolumeGeometry, f: (p: Vec3) => number): Volume {
  const data = new Float32Array(g.slices * g.rows * g.columns);
  for (let z = 0; z < g.slices; z++)
    for (let r = 0; r < g.rows; r++) for (let c = 0; c < g.columns; c++) data[(z * g.rows + r) * g.columns + c] = f(voxelToPatient(g, z, r, c));
  return {
    kind,
    geometry: g,
    data,
    seriesInstanceUid: `1.2.3.${kind.length}${kind.charCodeAt(0)}`,
    sliceSources: g.slicePositions.map((_, z) => ({ sopInstanceUid: `1.2.3.${kind.charCodeAt(0)}.${z}`, sopClassUid: '1.2.840.10008.5.1.4.1.1.4', seriesInstanceUid: 'x' })),
  };
}
// a linear pattern: trilinear interpolation reproduces it exactly inside the source
const lin = (p: Vec3): number => 100 + 2 * p[0] - 3 * p[1] + 5 * p[2];

describe('common grid on synthetic geometries', () => {
  // reference FLAIR: 40x40 at 1.5 mm, 6 slices 5 mm apart
  const flairG = geometry({ rows: 40, columns: 40, spacing: [1.5, 1.5], origin: [-30, -30, 0], slicePos: [0, 5, 10, 15, 20, 25] });
  // T2: 64x48 at 1 mm, rotated 90° in plane, 3 mm slices offset by 1 mm, covering only part of the reference
  const t2G = geometry({ rows: 64, columns: 48, spacing: [1, 1], origin: [30, -32, 1], rowCos: [0, 1, 0], colCos: [-1, 0, 0], slicePos: [0, 3, 6, 9, 12, 15] });
  const flair = volume('FLAIR', flairG, () => 1);
  const t2 = volume('T2', t2G, lin);

  test('reference by order T1C > FLAIR > T2 > T1; a linear pattern is reproduced at every covered reference voxel, 0 outside', () => {
    const cg = commonGrid({ FLAIR: flair, T2: t2 });
    expect(cg.reference).toBe('FLAIR');
    expect(cg.geometry).toBe(flairG);
    expect(cg.volumes.FLAIR).toBe(flair.data);
    expect(cg.notes[0]).toMatch(/reference grid: FLAIR .* first of T1C > FLAIR > T2 > T1/);
    const out = cg.volumes.T2!;
    let inside = 0;
    let outside = 0;
    for (let z = 0; z < flairG.slices; z++)
      for (let r = 0; r < 40; r++)
        for (let c = 0; c < 40; c++) {
          const p = voxelToPatient(flairG, z, r, c);
          // T2 covers x in [30-63, 30] (columns go -x... rows), y in [-32, -32+47], z in [1, 16] (+ half a slice)
          const inX = p[0] >= 30 - 63 && p[0] <= 30;
          const inY = p[1] >= -32 && p[1] <= -32 + 47;
          const inZ = p[2] >= 1 && p[2] <= 16;
          const v = out[(z * 40 + r) * 40 + c];
          if (inX && inY && inZ) {
            expect(v).toBeCloseTo(lin(p), 2);
            inside++;
          } else if (p[2] > 17.6 || p[2] < -0.6 || p[0] < -33.6 || p[1] > 15.6) {
            expect(v).toBe(0);
            outside++;
          }
        }
    expect(inside).toBeGreaterThan(1000);
    expect(outside).toBeGreaterThan(1000);
  });

  test('T1C present → T1C is the reference; a sequence on the same grid is passed through unchanged', () => {
    const t1c = volume('T1C', flairG, () => 2);
    const cg = commonGrid({ FLAIR: flair, T1C: t1c, T2: t2 });
    expect(cg.reference).toBe('T1C');
    expect(cg.volumes.FLAIR).toBe(flair.data);
    expect(cg.notes.join('\n')).toMatch(/FLAIR: already on the reference grid/);
  });

  test('another FrameOfReferenceUID is refused with the reason; the largest group sharing a frame wins', () => {
    const otherG = { ...t2G, frameOfReferenceUid: '1.2.3.999' };
    const t1c = volume('T1C', { ...flairG, frameOfReferenceUid: '1.2.3.999' }, () => 2);
    const t1 = volume('T1', flairG, () => 3);
    // T1C alone on 1.2.3.999; FLAIR + T1 on 1.2.3.100 → FLAIR is the reference, T1C refused
    const cg = commonGrid({ FLAIR: flair, T1: t1, T1C: t1c });
    expect(cg.reference).toBe('FLAIR');
    expect(cg.volumes.T1C).toBeUndefined();
    expect(cg.refused).toHaveLength(1);
    expect(cg.refused[0].kind).toBe('T1C');
    expect(cg.refused[0].reason).toMatch(/FrameOfReferenceUID .* cannot be compared .* no registration step/);
    // one against one: the better-ranked keeps its place, the other is refused
    const cg2 = commonGrid({ FLAIR: flair, T2: volume('T2', otherG, lin) });
    expect(cg2.reference).toBe('FLAIR');
    expect(cg2.refused.map((x) => x.kind)).toEqual(['T2']);
  });

  test('nothing to place → a clear error', () => {
    expect(() => commonGrid({})).toThrow(/no FLAIR, T1, T1C or T2/);
  });

  test('resampling a volume onto its own grid is the identity', () => {
    const again = resampleToGeometry(t2, t2G);
    for (let i = 0; i < again.length; i += 97) expect(again[i]).toBeCloseTo(t2.data[i], 3);
  });
});

const PHILIPS = path.join(DICOM_DATA, 'philips-achieva-brain');
const realTest = fs.existsSync(PHILIPS) ? test : test.skip;

/** Centre (mm) of the bounding box of voxels above `thr` on the reference grid. */
function bboxCentre(data: Float32Array, g: VolumeGeometry, thr: number): Vec3 {
  let lo: Vec3 = [Infinity, Infinity, Infinity];
  let hi: Vec3 = [-Infinity, -Infinity, -Infinity];
  for (let z = 0; z < g.slices; z++)
    for (let r = 0; r < g.rows; r++)
      for (let c = 0; c < g.columns; c++) {
        if (data[(z * g.rows + r) * g.columns + c] <= thr) continue;
        const p = voxelToPatient(g, z, r, c);
        lo = lo.map((x, i) => Math.min(x, p[i])) as Vec3;
        hi = hi.map((x, i) => Math.max(x, p[i])) as Vec3;
      }
  return [0, 1, 2].map((i) => (lo[i] + hi[i]) / 2) as Vec3;
}
/** A high percentile of the non-zero voxels, as a head/background threshold. */
function headThreshold(d: Float32Array): number {
  const nz = Array.from(d.filter((x) => x > 0)).sort((a, b) => a - b);
  return 0.15 * nz[Math.floor(nz.length * 0.98)];
}

describe('real Philips T2 (512²) + FLAIR + T1 (256², same slices as FLAIR) on one grid (5 mm slices, 6 mm apart)', () => {
  realTest(
    'FLAIR is the reference; the head bounding-box centre agrees within a few mm across the resampled sequences',
    async () => {
      const hs = readStudyHeaders(instancesIn(PHILIPS).filter((i) => /\/(401|701|901)_/.test(i.path)));
      const st = await assembleFromHeaders(hs);
      const cg = commonGrid(st.volumes);
      expect(cg.reference).toBe('FLAIR');
      expect(cg.refused).toEqual([]);
      expect([cg.geometry.rows, cg.geometry.columns]).toEqual([256, 256]);
      expect(cg.sliceSources).toBe(st.volumes.FLAIR!.sliceSources);
      const n = cg.geometry.slices * 256 * 256;
      const centres: Record<string, Vec3> = {};
      for (const k of ['FLAIR', 'T2', 'T1'] as const) {
        const d = cg.volumes[k]!;
        expect(d.length).toBe(n);
        centres[k] = bboxCentre(d, cg.geometry, headThreshold(d));
      }
      for (const k of ['T2', 'T1'])
        for (let i = 0; i < 3; i++) expect(Math.abs(centres[k][i] - centres.FLAIR[i])).toBeLessThan(i === 2 ? 5.5 : 4);
      // each sequence keeps its own values (resampled, not copied from the reference)
      expect(cg.volumes.T2).not.toBe(st.volumes.T2!.data);
      expect(cg.notes.join('\n')).toMatch(/T2: 512x512x\d+ at 0\.\d+x0\.\d+x6 mm resampled/);
    },
    120_000,
  );
});
