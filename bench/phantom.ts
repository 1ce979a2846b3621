/**
 * The benchmarks' study: an ellipsoid "brain" (DWI ~1000, ADC ~800, with a little texture) holding one
 * restricted-diffusion lesion ellipsoid (DWI 2100, ADC 420), written as a TRACEW b1000 series and an
 * ADC series of one study.
 */
import { newStudyContext, writeSeries, type WrittenSeries } from '../test/helpers/series-writer';

export interface BenchStudyOptions {
  size: number;
  slices: number;
  /** Lesion semi-axes in pixels (rows, columns) and slices. */
  lesion: { rows: number; columns: number; slices: number };
  pixelSpacingMm: number;
  /** ImagePositionPatient of the first slice. */
  origin: [number, number, number];
}

export function benchStudy(o: BenchStudyOptions): { dwi: WrittenSeries; adc: WrittenSeries } {
  const { size, slices, lesion } = o;
  const n = size * size * slices;
  const dwi = new Uint16Array(n);
  const adc = new Uint16Array(n);
  for (let z = 0; z < slices; z++) {
    for (let r = 0; r < size; r++) {
      for (let c = 0; c < size; c++) {
        const i = (z * size + r) * size + c;
        const e = ((r - size / 2) / (size * 0.38)) ** 2 + ((c - size / 2) / (size * 0.3)) ** 2 + ((z - slices / 2) / (slices * 0.6)) ** 2;
        if (e < 1) {
          const l = ((r - size * 0.4) / lesion.rows) ** 2 + ((c - size * 0.6) / lesion.columns) ** 2 + ((z - slices * 0.55) / lesion.slices) ** 2 < 1;
          dwi[i] = l ? 2100 : 950 + ((r * 7 + c * 3 + z) % 60);
          adc[i] = l ? 420 : 780 + ((r * 5 + c * 11) % 80);
        }
      }
    }
  }
  const study = newStudyContext();
  const sp = o.pixelSpacingMm;
  const base = { rows: size, columns: size, slices, pixelSpacing: [sp, sp] as [number, number], sliceThickness: 5, sliceSpacing: 5, imageOrientationPatient: [1, 0, 0, 0, 1, 0] as [number, number, number, number, number, number], imagePositionPatientFirst: o.origin };
  return {
    dwi: writeSeries({ ...base, kind: 'TRACEW', data: dwi, bValue: 1000, seriesNumber: 3, seriesDescription: 'ep2d_diff TRACEW b1000' }, study),
    adc: writeSeries({ ...base, kind: 'ADC', data: adc, seriesNumber: 4, seriesDescription: 'ep2d_diff ADC' }, study),
  };
}
