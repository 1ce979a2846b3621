/**
 * Shared by the admin tests: a tiny valid lesion model (fixtures/tiny-lesion.onnx, see its generator)
 * installed in a temp models folder with a manifest, and a small synthetic DWI + ADC study with a
 * restricted-diffusion lesion (the same phantom the housekeeping self-test uses).
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import request from 'supertest';
import type express from 'express';
import { selfTestPhantom } from '../../src/jobs/housekeeping';
import { newStudyContext, writeSeries, type StudyContext, type WrittenSeries } from '../helpers/series-writer';
import { stowBody } from '../helpers/node';

export const TINY_MODEL = path.join(__dirname, 'fixtures', 'tiny-lesion.onnx');
export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

export interface ModelSpec {
  name: string;
  /** Corrupt the sha256 in the manifest (model disabled). */
  badChecksum?: boolean;
}

/** A models folder holding the tiny model under each given name, manifests with the real sha256. */
export function tinyModelsDir(models: ModelSpec[] = [{ name: 'shaspec-realbg' }]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'admin-models-'));
  const bytes = fs.readFileSync(TINY_MODEL);
  const sha = crypto.createHash('sha256').update(bytes).digest('hex');
  for (const m of models) {
    fs.writeFileSync(path.join(dir, `${m.name}.onnx`), bytes);
    const manifest = {
      name: m.name,
      version: '0.0.1-test',
      file: `${m.name}.onnx`,
      sha256: m.badChecksum ? '0'.repeat(64) : sha,
      task: 'lesion-segmentation',
      inputs: {
        tensor: 'input',
        channels: ['DWI', 'ADC'].flatMap((modality) => [-1, 0, 1].map((sliceOffset) => ({ modality, sliceOffset }))),
        grid: { size: [128, 128], spacingMm: 2.0 },
        normalisation: { DWI: { method: 'median-foreground', clip: [0, 10] }, ADC: { method: 'scale', factor: 0.001, clip: [0, 5] } },
      },
      outputs: { tensor: 'logits', threshold: 0 },
      note: 'test double: 1x1 convolution, see test/admin/fixtures/make-tiny-lesion-model.py',
    };
    fs.writeFileSync(path.join(dir, `${m.name}.json`), JSON.stringify(manifest, null, 2));
  }
  return dir;
}

export interface StrokeStudy {
  study: StudyContext;
  dwi: WrittenSeries;
  adc: WrittenSeries;
  files: Buffer[];
}

/** DWI (b=1000) + ADC series of the housekeeping phantom, as classic MR single-frame instances. */
export function strokeStudy(overrides: Partial<StudyContext> = {}): StrokeStudy {
  const p = selfTestPhantom();
  const g = p.dwi.geometry;
  const study = newStudyContext(overrides);
  const common = {
    rows: g.rows,
    columns: g.columns,
    slices: g.slices,
    pixelSpacing: g.pixelSpacing,
    sliceThickness: g.sliceSpacing,
    sliceSpacing: g.sliceSpacing,
    imageOrientationPatient: [...g.rowCosines, ...g.columnCosines] as [number, number, number, number, number, number],
    imagePositionPatientFirst: g.slicePositions[0],
  };
  const u16 = (f: Float32Array) => Uint16Array.from(f, (v) => Math.round(v));
  const dwi = writeSeries({ ...common, kind: 'DWI', data: u16(p.dwi.data), bValue: 1000, seriesDescription: 'DWI b1000 TRACEW', seriesNumber: 5 }, study);
  const adc = writeSeries({ ...common, kind: 'ADC', data: u16(p.adc.data), seriesDescription: 'ADC', seriesNumber: 6 }, study);
  return { study, dwi, adc, files: [...dwi.files, ...adc.files].map((f) => f.part10) };
}

/** STOW-RS the files to the node's own /dicom-web (in-process, through supertest). */
export async function stow(app: express.Express, files: Buffer[]): Promise<number> {
  const { body, contentType } = stowBody(files.map((b) => ({ body: b })));
  const res = await request(app).post('/dicom-web/studies').set('Content-Type', contentType).send(body);
  return res.status;
}
