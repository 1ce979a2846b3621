/** Shared inputs for the results tests (synthetic patient values only). */
import type { Provenance } from '../../src/results/provenance';
import type { DeploymentOptions } from '../../src/results/common';
import { newStudyContext, writeSeries, type SeriesSpec, type StudyContext, type WrittenSeries } from '../helpers/series-writer';

export const deployment: DeploymentOptions = {
  manufacturer: 'Example Hospital AI Lab',
  manufacturerModelName: 'stroke-ai-dicom-node',
  softwareVersions: '0.1.0',
  institutionName: 'Example Hospital',
  contentCreatorName: 'STROKE^AI',
};

export function provenanceFor(seriesUids: string[], synthetic = false): Provenance {
  return {
    nodeName: 'stroke-ai-dicom-node',
    nodeVersion: '0.1.0',
    modelName: 'dual-encoder-25d',
    modelVersion: '1.2.0',
    modelSha256: '3f'.repeat(32),
    executionProvider: 'cpu',
    sourceSeriesUids: seriesUids,
    processingMs: 1530,
    synthetic,
  };
}

/** A small oblique MR series: values differ by slice so a mix-up is visible. */
export function smallSeries(
  opts: Partial<SeriesSpec> & { study?: StudyContext } = {},
): WrittenSeries {
  const rows = opts.rows ?? 24;
  const columns = opts.columns ?? 20;
  const slices = opts.slices ?? 7;
  const data = new Uint16Array(rows * columns * slices);
  for (let z = 0; z < slices; z++) {
    for (let i = 0; i < rows * columns; i++) data[z * rows * columns + i] = 100 * (z + 1) + (i % 50);
  }
  const c = Math.cos(0.2);
  const s = Math.sin(0.2);
  return writeSeries(
    {
      kind: 'TRACEW',
      rows,
      columns,
      slices,
      pixelSpacing: [1.5, 1.25],
      sliceThickness: 4,
      sliceSpacing: 5,
      // tilted about x: rows along x, columns in the y/z plane
      imageOrientationPatient: [1, 0, 0, 0, c, -s],
      imagePositionPatientFirst: [-15, -18, -20],
      data,
      bValue: 1000,
      ...opts,
    },
    opts.study ?? newStudyContext(),
  );
}

/** Mask where slice z has z+1 lesion pixels (so each slice's frame is recognisable). */
export function staircaseMask(rows: number, columns: number, slices: number): Uint8Array {
  const m = new Uint8Array(rows * columns * slices);
  for (let z = 0; z < slices; z++) for (let i = 0; i <= z; i++) m[z * rows * columns + i * 3 + 2 * columns] = 1;
  return m;
}
