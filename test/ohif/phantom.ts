/**
 * A small synthetic DWI + ADC study with one lesion at a known place, for the OHIF tests.
 *
 * The lesion is off-centre in-plane (upper right of the image: anterior, patient left) and in z
 * (slices LESION_SLICES of SLICES), so a SEG written with flipped rows/columns or misordered frames
 * puts the overlay visibly elsewhere. Values: brain DWI 300 / ADC 800, lesion DWI 900 / ADC 450.
 */
import type { Vec3, Volume } from '../../src/types';
import { newStudyContext, writeSeries, type StudyContext, type WrittenSeries } from '../helpers/series-writer';

export const ROWS = 128;
export const COLUMNS = 128;
export const SLICES = 20;
export const PIXEL_SPACING: [number, number] = [1.8, 1.8];
export const SLICE_SPACING = 5;
/** Slices (0-based, ascending along the normal) holding the lesion. */
export const LESION_SLICES = [4, 5, 6, 7];
/** Lesion disk: centre (row, column) and radius in pixels, the same on each lesion slice. */
export const LESION = { row: 40, column: 88, radius: 11 };
const IOP: [number, number, number, number, number, number] = [1, 0, 0, 0, 1, 0];
const FIRST_IPP: Vec3 = [-114.3, -114.3, -40];

export interface PhantomStudyForViewer {
  study: StudyContext;
  dwi: WrittenSeries;
  adc: WrittenSeries;
  /** Label map on the DWI grid: 1 inside the lesion. */
  mask: Uint8Array;
}

export function inLesion(z: number, r: number, c: number): boolean {
  if (!LESION_SLICES.includes(z)) return false;
  return (r - LESION.row) ** 2 + (c - LESION.column) ** 2 <= LESION.radius ** 2;
}

function inBrain(r: number, c: number): boolean {
  return ((r - 64) / 56) ** 2 + ((c - 64) / 48) ** 2 <= 1;
}

/** World position (LPS mm) of the centre of pixel (row, column) of slice z of a volume. */
export function pixelCentreWorld(volume: Volume, z: number, r: number, c: number): Vec3 {
  const g = volume.geometry;
  const p = g.slicePositions[z];
  const [dr, dc] = g.pixelSpacing; // [between rows, between columns]
  return [0, 1, 2].map((k) => p[k] + c * dc * g.rowCosines[k] + r * dr * g.columnCosines[k]) as Vec3;
}

export function lesionMask(): Uint8Array {
  const m = new Uint8Array(ROWS * COLUMNS * SLICES);
  for (let z = 0; z < SLICES; z++)
    for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLUMNS; c++) if (inLesion(z, r, c)) m[(z * ROWS + r) * COLUMNS + c] = 1;
  return m;
}

/** The mask as a frame-misordering writer would produce it: slice z's frame carries slice (n-1-z). */
export function reversedInZ(mask: Uint8Array): Uint8Array {
  const ppf = ROWS * COLUMNS;
  const out = new Uint8Array(mask.length);
  for (let z = 0; z < SLICES; z++) out.set(mask.subarray((SLICES - 1 - z) * ppf, (SLICES - z) * ppf), z * ppf);
  return out;
}

export function writeViewerPhantom(overrides: Partial<StudyContext> = {}): PhantomStudyForViewer {
  const study = newStudyContext({ patientName: 'PHANTOM^OHIF', patientId: 'OHIFPH01', ...overrides });
  const n = ROWS * COLUMNS * SLICES;
  const dwi = new Uint16Array(n);
  const adc = new Uint16Array(n);
  for (let z = 0; z < SLICES; z++)
    for (let r = 0; r < ROWS; r++)
      for (let c = 0; c < COLUMNS; c++) {
        const i = (z * ROWS + r) * COLUMNS + c;
        if (!inBrain(r, c)) continue;
        const texture = ((r * 7 + c * 13 + z * 5) % 17) * 3; // faint texture, no colour
        dwi[i] = (inLesion(z, r, c) ? 900 : 300) + texture;
        adc[i] = (inLesion(z, r, c) ? 450 : 800) + texture;
      }
  const base = {
    rows: ROWS,
    columns: COLUMNS,
    slices: SLICES,
    pixelSpacing: PIXEL_SPACING,
    sliceThickness: SLICE_SPACING,
    sliceSpacing: SLICE_SPACING,
    imageOrientationPatient: IOP,
    imagePositionPatientFirst: FIRST_IPP,
  };
  return {
    study,
    dwi: writeSeries({ ...base, kind: 'TRACEW', data: dwi, bValue: 1000, seriesNumber: 3, seriesDescription: 'ep2d_diff TRACEW b1000' }, study),
    adc: writeSeries({ ...base, kind: 'ADC', data: adc, seriesNumber: 4, seriesDescription: 'ep2d_diff ADC' }, study),
    mask: lesionMask(),
  };
}
