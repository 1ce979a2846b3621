/**
 * The real Philips Achieva 1.5 T brain study (../shared/data/dicom/philips-achieva-brain: DWI, ADC, T2 TSE
 * 512², T2 FLAIR and T1 SE FS 256², 5 mm slices, with skull, as a PACS sends it; no tumour is labelled, none
 * is known) through the generic processor on a route whose tasks are [brain-tumour-mr]: it must produce a
 * valid three-segment SEG and an SR. What it marks is reported (mL per sub-region) in models/README.md "Real
 * clinical study (Philips)": every marked mL is probably a false positive. Patient attributes are never printed.
 * With TUMOUR_PHILIPS_FIGURE=<dir> the reference slices, brain mask and labels are written there as raw arrays
 * for models/docs/brats-philips-route.png (test/pipelines/brain-tumour-philips-figure.py).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseConfig } from '../../src/config/load';
import { readPart10, seq, str } from '../../src/dicom/dcmjs';
import { ModelRegistry } from '../../src/models/registry';
import { createProcessor, type StudyOutcome } from '../../src/pipelines/processor';
import { segmentTumour } from '../../src/pipelines/brain-tumour-mr';
import { assembleStudy } from '../../src/study';
import { dciodvfy } from '../helpers/dciodvfy';
import { modelReady, modelsSubset } from '../helpers/tumour-seg';
import { DICOM_DATA, instancesIn } from '../study/synth';

const PHILIPS = path.join(DICOM_DATA, 'philips-achieva-brain');
const ready = fs.existsSync(PHILIPS) && modelReady('brats-shaspec');
const SEG_CLASS = '1.2.840.10008.5.1.4.1.1.66.4';
const raw = (a: Float32Array | Uint8Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

(ready ? describe : describe.skip)('real Philips study through a route with tasks [brain-tumour-mr]', () => {
  let registry: ModelRegistry;
  let work: string;
  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tumour-philips-'));
    registry = new ModelRegistry({ dir: modelsSubset(['brats-shaspec', 'brats-unet4']), providers: ['cpu'], intraOpThreads: 1 });
    await registry.loadAll();
  }, 120000);
  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('SEG + SR made, dciodvfy clean, on the FLAIR slices; sub-region volumes reported', async () => {
    const config = parseConfig({ nodeName: 'philips-test', routes: [{ name: 'tumour', tasks: ['brain-tumour-mr'], destinations: [] }] }, 'test');
    const proc = createProcessor({ config, registry, nodeVersion: 'test', resultsDir: work });
    const instances = instancesIn(PHILIPS);
    const r = await proc({ id: 1, studyUid: instances[0].studyInstanceUid } as never, instances, config.routes[0]);
    expect(r.state).toBe('done');
    const o = r.outcome as StudyOutcome;
    const d = o.tasks.find((x) => x.task === 'brain-tumour-mr')!;
    expect(d).toMatchObject({ run: true, ran: true });
    // the T1 SE FS carries no contrast tag: by default the node takes it as a native T1 (src/study/classify.ts)
    expect(o.availability.available).toMatchObject({ FLAIR: true, T1: true, T1C: false, T2: true });
    expect(o.note).toMatch(/missing T1C/);
    const seg = o.outputs.find((x) => x.kind === 'SEG')!;
    const sr = o.outputs.find((x) => x.kind === 'SR')!;
    expect(seg && sr).toBeTruthy();
    const segBuf = fs.readFileSync(seg.path);
    const srBuf = fs.readFileSync(sr.path);
    expect(dciodvfy(segBuf).errors).toEqual([]);
    expect(dciodvfy(srBuf).errors).toEqual([]);
    const ds = readPart10(segBuf).dataset;
    expect(str(ds, 'SOPClassUID')).toBe(SEG_CLASS);
    expect(seq(ds, 'SegmentSequence')).toHaveLength(3);
    const m = d.measurements as Record<string, number>;
    // no patient attribute here: the volumes and timings only
    console.log(`Philips: ${JSON.stringify(m)}; timings ${JSON.stringify(o.timingsMs)}; notes ${JSON.stringify(d.notes?.slice(0, 1))}`);
    // a brain mask of adult-head size, and no more than a small fraction of it marked
    expect(m.brainMaskMl).toBeGreaterThan(700);
    expect(m.brainMaskMl).toBeLessThan(2000);
    expect(m.wholeTumourMl).toBeGreaterThanOrEqual(0);

    const figDir = process.env.TUMOUR_PHILIPS_FIGURE;
    if (figDir) {
      const st = await assembleStudy(instances);
      const t = await segmentTumour(registry, 'brats-shaspec', { FLAIR: st.volumes.FLAIR, T1: st.volumes.T1, T2: st.volumes.T2 }, {});
      fs.mkdirSync(figDir, { recursive: true });
      const g = t.grid.geometry;
      fs.writeFileSync(path.join(figDir, 'meta.json'), JSON.stringify({ slices: g.slices, rows: g.rows, columns: g.columns, reference: t.grid.reference, measurements: m }));
      fs.writeFileSync(path.join(figDir, 'flair.f32'), raw(t.grid.volumes.FLAIR!));
      fs.writeFileSync(path.join(figDir, 'labels.u8'), raw(t.labels));
      fs.writeFileSync(path.join(figDir, 'brain.u8'), raw(t.brainMask.mask));
    }
  }, 300000);
});

/**
 * The real Siemens Prisma XA30 healthy volunteer's sagittal T1 MPRAGE (enhanced MR, with skull and neck) through the
 * same route: T1 only, on a sagittal grid. No tumour (a volunteer): every marked mL is a false positive, reported in
 * models/README.md next to the Philips figures.
 */
const SIEMENS_T1 = path.join(DICOM_DATA, 'siemens-xa30-enhanced-dwi', '5_anat-T1w_acq-tfl');
(fs.existsSync(SIEMENS_T1) && modelReady('brats-shaspec') ? describe : describe.skip)('real Siemens volunteer T1 through a route with tasks [brain-tumour-mr]', () => {
  test('SEG + SR made, dciodvfy clean; what a T1-only study of a healthy volunteer gets marked', async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tumour-siemens-'));
    const registry = new ModelRegistry({ dir: modelsSubset(['brats-shaspec', 'brats-unet4']), providers: ['cpu'], intraOpThreads: 1 });
    await registry.loadAll();
    try {
      const config = parseConfig({ nodeName: 'siemens-test', routes: [{ name: 'tumour', tasks: ['brain-tumour-mr'], destinations: [] }] }, 'test');
      const proc = createProcessor({ config, registry, nodeVersion: 'test', resultsDir: work });
      const instances = instancesIn(SIEMENS_T1);
      const r = await proc({ id: 1, studyUid: instances[0].studyInstanceUid } as never, instances, config.routes[0]);
      expect(r.state).toBe('done');
      const o = r.outcome as StudyOutcome;
      const d = o.tasks.find((x) => x.task === 'brain-tumour-mr')!;
      expect(d).toMatchObject({ run: true, ran: true });
      expect(o.availability.available).toMatchObject({ T1: true, FLAIR: false, T1C: false, T2: false });
      for (const kind of ['SEG', 'SR']) {
        const out = o.outputs.find((x) => x.kind === kind)!;
        expect(dciodvfy(fs.readFileSync(out.path)).errors).toEqual([]);
      }
      const m = d.measurements as Record<string, number>;
      console.log(`Siemens volunteer T1: ${JSON.stringify(m)}`);
      expect(m.brainMaskMl).toBeGreaterThan(700);
      expect(m.brainMaskMl).toBeLessThan(2000);
      // no acquired T1C: enhancement not assessed (count-as-core)
      expect(m.enhancingTumourMl).toBe(0);
    } finally {
      await registry.close();
      fs.rmSync(work, { recursive: true, force: true });
    }
  }, 600000);
});
