/**
 * Acquisition grid ↔ model grid (models/README.md): in-plane bilinear, centred on the slice centre,
 * rows/columns in acquired order; mapping back per source instance.
 */
import { fromModelGrid, slicesBySource, toModelGrid } from '../../src/study';
import { Volume, VolumeGeometry } from '../../src/types';

function geometry(rows: number, columns: number, slices: number, ps: [number, number]): VolumeGeometry {
  return {
    rows,
    columns,
    slices,
    pixelSpacing: ps,
    sliceSpacing: 5,
    rowCosines: [1, 0, 0],
    columnCosines: [0, 1, 0],
    normal: [0, 0, 1],
    slicePositions: Array.from({ length: slices }, (_, z) => [0, 0, z * 5] as [number, number, number]),
    frameOfReferenceUid: '1.2.3',
    warnings: [],
  };
}

function volume(g: VolumeGeometry, f: (z: number, r: number, c: number) => number): Volume {
  const data = new Float32Array(g.slices * g.rows * g.columns);
  for (let z = 0; z < g.slices; z++)
    for (let r = 0; r < g.rows; r++) for (let c = 0; c < g.columns; c++) data[(z * g.rows + r) * g.columns + c] = f(z, r, c);
  return {
    kind: 'DWI',
    geometry: g,
    data,
    sliceSources: Array.from({ length: g.slices }, (_, z) => ({
      sopInstanceUid: `1.2.3.${z + 1}`,
      sopClassUid: '1.2.840.10008.5.1.4.1.1.4',
      seriesInstanceUid: '1.2.3',
    })),
    seriesInstanceUid: '1.2.3',
  };
}

const GRID = { size: [128, 128] as [number, number], spacingMm: 2.0 };

describe('toModelGrid / fromModelGrid', () => {
  test('256x256 @ 1 mm: model pixel (r,c) samples source (2r+0.5, 2c+0.5), slices kept', () => {
    const g = geometry(256, 256, 3, [1, 1]);
    // linear ramp: bilinear is exact on it
    const v = volume(g, (z, r, c) => 1000 * z + 3 * r + c);
    const m = toModelGrid(v, GRID);
    expect(m.data.length).toBe(3 * 128 * 128);
    for (const [z, r, c] of [
      [0, 0, 0],
      [1, 64, 10],
      [2, 127, 127],
    ]) {
      const sr = 127.5 + (r - 63.5) * 2;
      const sc = 127.5 + (c - 63.5) * 2;
      expect(m.data[(z * 128 + r) * 128 + c]).toBeCloseTo(1000 * z + 3 * sr + sc, 2);
    }
    expect(m.sliceSources).toBe(v.sliceSources);
  });

  test('anisotropic pixels: rows use PixelSpacing[0], columns PixelSpacing[1]; outside the slice is 0', () => {
    // 64 rows at 4 mm (256 mm) x 128 columns at 1 mm (128 mm)
    const g = geometry(64, 128, 1, [4, 1]);
    const v = volume(g, (_z, r, c) => 10 * r + c + 1);
    const m = toModelGrid(v, GRID);
    const at = (r: number, c: number): number => m.data[r * 128 + c];
    // model row 63 → source row 31.5 + (63 - 63.5) * 2/4 = 31.25; model col 63 → source col 63.5 + (-0.5)*2 = 62.5
    expect(at(63, 63)).toBeCloseTo(10 * 31.25 + 62.5 + 1, 3);
    // columns beyond ±64 mm lie outside the 128 mm wide slice
    expect(at(63, 0)).toBe(0);
    expect(at(63, 127)).toBe(0);
  });

  test('round trip acquisition → model → acquisition is close to identity for a smooth image at 2 mm', () => {
    const g = geometry(128, 128, 2, [2, 2]);
    const v = volume(g, (z, r, c) => Math.sin(r / 9) + Math.cos(c / 7) + z);
    const back = fromModelGrid(toModelGrid(v, GRID).data, g, GRID);
    let maxErr = 0;
    for (let i = 0; i < back.length; i++) maxErr = Math.max(maxErr, Math.abs(back[i] - v.data[i]));
    expect(maxErr).toBeLessThan(1e-5);
  });

  test('256 @ 0.9 mm back-projection: a model blob lands at the same physical place; per-instance split', () => {
    const g = geometry(256, 256, 2, [0.9, 0.9]);
    const prob = new Float32Array(2 * 128 * 128);
    // square of 1s on slice 1, model rows/cols 70..79 → physical offset from centre (r-63.5)*2 mm
    for (let r = 70; r < 80; r++) for (let c = 70; c < 80; c++) prob[128 * 128 + r * 128 + c] = 1;
    const out = fromModelGrid(prob, g, GRID);
    const slices = slicesBySource(out, g, volume(g, () => 0).sliceSources);
    expect([...slices.keys()]).toEqual(['1.2.3.1', '1.2.3.2']);
    expect(slices.get('1.2.3.1')!.every((x) => x === 0)).toBe(true);
    const s1 = slices.get('1.2.3.2')!;
    // centre of the blob: model 74.5 → (74.5-63.5)*2 = 22 mm from centre → source 127.5 + 22/0.9
    const rc = Math.round(127.5 + 22 / 0.9);
    expect(s1[rc * 256 + rc]).toBeCloseTo(1, 5);
    expect(s1[128 * 256 + 128]).toBe(0);
    // area ≈ (20 mm)^2 / 0.81 mm² above 0.5
    const area = s1.reduce((n, x) => n + (x > 0.5 ? 1 : 0), 0);
    expect(area).toBeGreaterThan(400 / 0.81 * 0.85);
    expect(area).toBeLessThan(400 / 0.81 * 1.15);
  });

  test('slice count mismatch is an error, not a silent misalignment', () => {
    const g = geometry(64, 64, 3, [2, 2]);
    expect(() => fromModelGrid(new Float32Array(2 * 128 * 128), g, GRID)).toThrow(/2 slices, the volume 3/);
  });
});
