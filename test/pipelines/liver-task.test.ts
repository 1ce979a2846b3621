/**
 * Task liver-ct-mr (issue 16), without a network peer:
 *  - acceptance and series pick on written DICOM studies through the study stage (assembleStudy): CT phase order,
 *    MR sequence order, thickness, orientation, head / chest-only studies refused, each with its reason;
 *  - task selection: the default route and a head study never get the liver task;
 *  - post-processing and measurements on label maps whose answer is known (a disc of known diameter; the fixtures'
 *    truth against the python reference's numbers for the same labels);
 *  - the TypeScript pipeline (segmentLiver) on the committed CT and MRI phantoms against expected.json (python:
 *    the same contract through onnxruntime-node): the post-processed label map byte for byte (sha256), volumes and
 *    measurements;
 *  - the task's SEG + SR on the CT phantom: two segments, frames on their own slices, SR numbers, dciodvfy clean.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseConfig } from '../../src/config/load';
import type { Route } from '../../src/config/schema';
import { readPart10, seq, str } from '../../src/dicom/dcmjs';
import type { ModelRegistry } from '../../src/models/registry';
import { liverCtMr, measureLiver, postprocessLiver, segmentLiver } from '../../src/pipelines/liver-ct-mr';
import { writeLiverResults } from '../../src/results/liver';
import { selectTasks } from '../../src/pipelines/tasks';
import { assembleStudy } from '../../src/study';
import { ctPhase } from '../../src/study/abdomen';
import { bratsStoredInstances } from '../helpers/brats-study';
import { dciodvfy, dciodvfyAvailable } from '../helpers/dciodvfy';
import {
  CT_PORTAL_TAGS,
  MR_T1C_TAGS,
  MR_T1_TAGS,
  MR_T2_TAGS,
  liverFixture,
  liverRegistry,
  liverFixturesAvailable,
  writeAbdomenSeries,
  writeLiverFixtureStudy,
  type AbdomenSeriesSpec,
} from '../helpers/liver-study';
import { newStudyContext, type StudyContext, type WrittenSeries } from '../helpers/series-writer';
import { modelReady, segToLabels } from '../helpers/tumour-seg';

let work: string;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'liver-task-'));
});
afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const route = (r: Record<string, unknown> = {}): Route => parseConfig({ routes: [{ name: 'r', ...r }] }).routes[0];
const ready = { isReady: (n: string) => n === 'liver-aqcf' };
const facts = { series: [], now: new Date(2026, 0, 1, 10, 0) };

/** A small series (24 x 24 x slices) with the given tags. */
function small(study: StudyContext, modality: 'CT' | 'MR', description: string, tags: Record<string, unknown>, over: Partial<AbdomenSeriesSpec> = {}): WrittenSeries {
  const slices = over.slices ?? 5;
  const n = 24 * 24 * slices;
  const data = modality === 'CT' ? new Int16Array(n).map((_, i) => (i % 24 < 12 ? 60 : -900)) : new Uint16Array(n).map((_, i) => (i % 24 < 12 ? 800 : 20));
  return writeAbdomenSeries(
    { modality, rows: 24, columns: 24, slices, pixelSpacing: [1.5, 1.5], sliceThickness: 3, sliceSpacing: 3, imagePositionPatientFirst: [-18, -18, 100], data, seriesDescription: description, tags, ...over },
    study,
    path.join(work, study.studyInstanceUid, description.replace(/\W+/g, '_')),
  );
}

async function assemble(study: StudyContext, list: WrittenSeries[]) {
  return assembleStudy(bratsStoredInstances({ study, list }));
}

describe('acceptance and series pick (study stage, src/study/abdomen.ts)', () => {
  test('CT: portal-venous > arterial > non-contrast, each series with its phase and why; thicker than 5 mm refused', async () => {
    const st = newStudyContext();
    const pv = small(st, 'CT', 'ABD PORTAL VENOUS 3mm', CT_PORTAL_TAGS);
    const art = small(st, 'CT', 'ABD ARTERIAL 3mm', { ...CT_PORTAL_TAGS, AcquisitionTime: '120030' });
    const nc = small(st, 'CT', 'ABD NATIVE 3mm', { ...CT_PORTAL_TAGS, ContrastBolusAgent: undefined, ContrastBolusStartTime: undefined, ContrastBolusVolume: undefined, ContrastBolusRoute: undefined });
    const thick = small(st, 'CT', 'ABD PV 7mm', CT_PORTAL_TAGS, { sliceThickness: 7, sliceSpacing: 7 });
    const a = await assemble(st, [art, nc, thick, pv]);
    const abd = a.availability.abdomen!;
    expect(a.availability.available.CT_ABDOMEN).toBe(true);
    expect(a.availability.available.CT).toBe(false); // the head classifier still refuses an abdominal CT
    const by = (s: WrittenSeries) => abd.series.find((d) => d.seriesInstanceUid === s.seriesInstanceUid)!;
    expect(by(pv)).toMatchObject({ usable: true, kind: 'CT_PORTAL_VENOUS' });
    expect(by(pv).reason).toMatch(/BodyPartExamined ABDOMEN; portal-venous CT: ContrastBolusAgent .*"IOHEXOL 350"; acquired 70 s after ContrastBolusStartTime/);
    expect(by(art)).toMatchObject({ usable: true, kind: 'CT_ARTERIAL' });
    expect(by(art).reason).toMatch(/acquired 30 s after/);
    expect(by(nc)).toMatchObject({ usable: true, kind: 'CT_NON_CONTRAST' });
    expect(by(thick)).toMatchObject({ usable: false, kind: 'CT_PORTAL_VENOUS' });
    expect(by(thick).reason).toMatch(/slice thickness 7 mm thicker than 5 mm/);
    expect(abd.pick).toMatchObject({ seriesInstanceUid: pv.seriesInstanceUid, modality: 'CT', kind: 'CT_PORTAL_VENOUS' });
    expect(abd.pick!.reason).toMatch(/preferred over arterial-phase CT "ABD ARTERIAL 3mm" \(portal-venous > arterial/);
    // without the portal phase: arterial; then non-contrast
    expect((await assemble(st, [art, nc])).availability.abdomen!.pick!.seriesInstanceUid).toBe(art.seriesInstanceUid);
    expect((await assemble(st, [nc, thick])).availability.abdomen!.pick!.seriesInstanceUid).toBe(nc.seriesInstanceUid);
    // the task plans the picked series; the study's lazy loader gives its HU volume
    const acc = liverCtMr.accept(a.availability, route({ tasks: ['liver-ct-mr'] }), ready);
    expect(acc).toMatchObject({ run: true, plan: { model: 'liver-aqcf', seriesInstanceUid: pv.seriesInstanceUid, modality: 'CT', kind: 'CT_PORTAL_VENOUS' } });
    const v = await a.abdomen!.load();
    expect(v.seriesInstanceUid).toBe(pv.seriesInstanceUid);
    expect(v.data[0]).toBe(60);
  }, 60000);

  test('same phase: the thinnest series, then the most slices', async () => {
    const st = newStudyContext();
    const t3 = small(st, 'CT', 'PV 3', CT_PORTAL_TAGS);
    const t1 = small(st, 'CT', 'PV 1', CT_PORTAL_TAGS, { sliceThickness: 1, sliceSpacing: 1, slices: 8 });
    const a = await assemble(st, [t3, t1]);
    expect(a.availability.abdomen!.pick).toMatchObject({ seriesInstanceUid: t1.seriesInstanceUid });
    expect(a.availability.abdomen!.pick!.reason).toMatch(/"PV 3" \(3 mm, 5 slices: thinnest, then most slices\)/);
  }, 60000);

  test('MRI: T1 post-contrast > T2 > T1; sagittal and DWI refused with the reason', async () => {
    const st = newStudyContext();
    const t1c = small(st, 'MR', 'AX T1 VIBE FS POST', MR_T1C_TAGS);
    const t2 = small(st, 'MR', 'AX T2 HASTE', MR_T2_TAGS);
    const t1 = small(st, 'MR', 'AX T1 VIBE FS PRE', MR_T1_TAGS);
    const sag = small(st, 'MR', 'SAG T2', MR_T2_TAGS, { imageOrientationPatient: [0, 1, 0, 0, 0, -1] });
    const dwi = small(st, 'MR', 'AX DWI', { ...MR_T2_TAGS, DiffusionBValue: 800, ImageType: ['ORIGINAL', 'PRIMARY', 'DIFFUSION', 'NONE'], RepetitionTime: '5000', EchoTime: '60' });
    const a = await assemble(st, [t2, t1, sag, dwi, t1c]);
    const abd = a.availability.abdomen!;
    const by = (s: WrittenSeries) => abd.series.find((d) => d.seriesInstanceUid === s.seriesInstanceUid)!;
    expect(by(t1c)).toMatchObject({ usable: true, kind: 'MR_T1C' });
    expect(by(t1c).reason).toMatch(/post-contrast/);
    expect(by(t2)).toMatchObject({ usable: true, kind: 'MR_T2' });
    expect(by(t1)).toMatchObject({ usable: true, kind: 'MR_T1' });
    expect(by(sag)).toMatchObject({ usable: false });
    expect(by(sag).reason).toMatch(/sagittal .*axial slices only/);
    expect(by(dwi)).toMatchObject({ usable: false });
    expect(by(dwi).reason).toMatch(/MR DWI: .*reads T1 post-contrast, T2 or T1/);
    expect(a.availability.available.MR_ABDOMEN).toBe(true);
    expect(abd.pick).toMatchObject({ seriesInstanceUid: t1c.seriesInstanceUid, modality: 'MR', kind: 'MR_T1C' });
    expect((await assemble(st, [t1, t2])).availability.abdomen!.pick!.seriesInstanceUid).toBe(t2.seriesInstanceUid);
    // an MR liver study does not feed the brain-tumour sequences: BodyPartExamined ABDOMEN is not a head
    expect(a.availability.available.T1C).toBe(false);
  }, 60000);

  test('head and chest-only studies are refused; an abdominal description without BodyPartExamined is accepted', async () => {
    const st = newStudyContext();
    const head = small(st, 'CT', 'HEAD 5mm', { BodyPartExamined: 'HEAD', StudyDescription: 'CT HEAD', ProtocolName: 'HEAD ROUTINE' });
    const chest = small(st, 'CT', 'CHEST 1mm', { ...CT_PORTAL_TAGS, BodyPartExamined: 'CHEST', StudyDescription: 'CT THORAX', RequestedProcedureDescription: 'CT chest', ProtocolName: 'THORAX' });
    const a = await assemble(st, [head, chest]);
    const abd = a.availability.abdomen!;
    expect(abd.pick).toBeUndefined();
    expect(abd.series.find((d) => d.seriesInstanceUid === head.seriesInstanceUid)!.reason).toMatch(/BodyPartExamined HEAD: a head\/neck examination/);
    expect(abd.series.find((d) => d.seriesInstanceUid === chest.seriesInstanceUid)!.reason).toMatch(/chest-only examination/);
    const acc = liverCtMr.accept(a.availability, route({ tasks: ['liver-ct-mr'] }), ready);
    expect(acc).toMatchObject({ run: false, inputsMissing: true });
    expect((acc as { reason: string }).reason).toMatch(/no usable abdominal CT or MRI series .*HEAD 5mm/);
    const st2 = newStudyContext();
    const nobp = small(st2, 'CT', 'PV', { ...CT_PORTAL_TAGS, BodyPartExamined: undefined, StudyDescription: 'CT Leber 3-phasig' });
    const b = await assemble(st2, [nobp]);
    expect(b.availability.abdomen!.pick).toBeDefined();
    expect(b.availability.abdomen!.series[0].reason).toMatch(/no BodyPartExamined; StudyDescription "CT Leber 3-phasig" names the abdomen or an abdominal organ/);
  }, 60000);

  test('CT phase from the series words when no timing is sent', () => {
    expect(ctPhase({ ContrastBolusAgent: 'IOPAMIDOL', SeriesDescription: 'Arterial 1.25' }).kind).toBe('CT_ARTERIAL');
    expect(ctPhase({ ContrastBolusAgent: 'IOPAMIDOL', SeriesDescription: 'PV 3.0 B30f' }).kind).toBe('CT_PORTAL_VENOUS');
    expect(ctPhase({ ContrastBolusAgent: 'IOPAMIDOL', SeriesDescription: 'Delayed 5 min' }).kind).toBe('CT_DELAYED');
    expect(ctPhase({ ContrastBolusAgent: 'IOPAMIDOL', SeriesDescription: 'Non-contrast 5mm' }).kind).toBe('CT_NON_CONTRAST');
    const unnamed = ctPhase({ ContrastBolusAgent: 'IOPAMIDOL', SeriesDescription: 'Abdomen 3.0' });
    expect(unnamed).toMatchObject({ kind: 'CT_PORTAL_VENOUS' });
    expect(unnamed.reason).toMatch(/no phase named or timed: taken as portal-venous/);
    expect(ctPhase({ SeriesDescription: 'Abdomen 3.0' }).kind).toBe('CT_NON_CONTRAST');
  });
});

describe('task selection', () => {
  const abdAv = {
    studyInstanceUid: '1.2.3',
    available: { DWI: false, ADC: false, CT: false, FLAIR: false, T1: false, T1C: false, T2: false, CT_ABDOMEN: true },
    series: [],
    notes: [],
    abdomen: { series: [], region: 'BodyPartExamined ABDOMEN', pick: { seriesInstanceUid: '1.2.3.4', modality: 'CT' as const, kind: 'CT_PORTAL_VENOUS' as const, reason: 'portal-venous CT "PV"' } },
  };
  test('the default route does not run the liver task; a route that lists it does, with the pick as the note', () => {
    const d = selectTasks(route(), abdAv, ready, facts).decisions.find((x) => x.task === 'liver-ct-mr')!;
    expect(d).toMatchObject({ listed: false, run: false, reason: expect.stringMatching(/not listed in route "r" tasks \(stroke-mr, stroke-ct\)/) });
    const s = selectTasks(route({ tasks: ['liver-ct-mr'] }), abdAv, ready, facts);
    expect(s.toRun.map((x) => x.task.id)).toEqual(['liver-ct-mr']);
    expect(s.decisions.find((x) => x.task === 'liver-ct-mr')!.reason).toBe('runs: listed in route "r"; portal-venous CT "PV"');
    expect(selectTasks(route({ tasks: ['liver-ct-mr'] }), abdAv, { isReady: () => false }, facts).decisions.find((x) => x.task === 'liver-ct-mr')!.reason).toMatch(/liver model "liver-aqcf" is not installed or not ready/);
  });
  test('only the content kinds known (the rule tester\'s "present" list): runs, the series picked at assembly', () => {
    const kindsOnly = { studyInstanceUid: '', available: { ...abdAv.available }, series: [], notes: [] };
    const acc = liverCtMr.accept(kindsOnly, route({ tasks: ['liver-ct-mr'] }), ready);
    expect(acc).toMatchObject({ run: true, plan: { model: 'liver-aqcf', modality: 'CT' }, note: expect.stringMatching(/picked when the study is assembled/) });
    expect(liverCtMr.accept({ ...kindsOnly, available: { ...kindsOnly.available, CT_ABDOMEN: false } }, route({ tasks: ['liver-ct-mr'] }), ready)).toMatchObject({ run: false, inputsMissing: true });
  });
  test('a route condition on the content kinds (when: present CT_ABDOMEN) validates and selects', () => {
    const r = route({ tasks: [{ task: 'liver-ct-mr', when: { present: ['CT_ABDOMEN'] } }] });
    expect(selectTasks(r, abdAv, ready, facts).toRun).toHaveLength(1);
    expect(selectTasks(r, { ...abdAv, available: { ...abdAv.available, CT_ABDOMEN: false, MR_ABDOMEN: true } }, ready, facts).toRun).toHaveLength(0);
  });
});

describe('post-processing and measurements (measure.ts)', () => {
  const g = { slices: 3, rows: 40, columns: 40, pixelSpacing: [0.5, 0.5] as [number, number], sliceSpacing: 2 };
  const idx = (z: number, r: number, c: number) => (z * 40 + r) * 40 + c;

  test('a disc of radius 10 px on one slice: longest axial diameter = 20 px between centres + 1 px = 10.5 mm', () => {
    const lab = new Uint8Array(3 * 40 * 40);
    for (let r = 0; r < 40; r++) for (let c = 0; c < 40; c++) {
      lab[idx(1, r, c)] = 1;
      if ((r - 20) ** 2 + (c - 20) ** 2 <= 100) lab[idx(1, r, c)] = 2;
    }
    const m = measureLiver(lab, g);
    expect(m.tumourCount).toBe(1);
    expect(m.tumours[0].longestAxialDiameterMm).toBeCloseTo(10.5, 6);
    expect(m.tumours[0].centroidVoxel).toEqual({ slice: 1, row: 20, column: 20 });
    expect(m.liverMl).toBeCloseTo((1600 * 0.5 * 0.5 * 2) / 1000, 9);
    // a 3 x 4 px rectangle: diagonal between centres sqrt(2^2 + 3^2) px
    const rect = new Uint8Array(lab.length);
    for (let r = 5; r < 8; r++) for (let c = 5; c < 9; c++) rect[idx(0, r, c)] = 2;
    expect(measureLiver(rect, g).tumours[0].longestAxialDiameterMm).toBeCloseTo(Math.sqrt(13) * 0.5 + 0.5, 9);
  });

  test('largest liver component kept; tumour components under minTumourMl become liver; counted 26-connected', () => {
    const lab = new Uint8Array(3 * 40 * 40);
    for (let r = 0; r < 20; r++) for (let c = 0; c < 20; c++) lab[idx(0, r, c)] = 1; // 400 voxels
    for (let r = 30; r < 35; r++) for (let c = 30; c < 35; c++) lab[idx(2, r, c)] = 2; // 25 voxels elsewhere
    lab[idx(0, 2, 2)] = 2; // one-voxel tumour (0.0005 mL)
    for (let r = 10; r < 15; r++) for (let c = 10; c < 15; c++) lab[idx(0, r, c)] = 2; // 25 voxels = 0.0125 mL
    lab[idx(1, 15, 15)] = 2; // diagonal (26-) neighbour of the block above: same tumour
    const p = postprocessLiver(lab, g, { minTumourMl: 0.001 });
    expect(p.labels[idx(2, 32, 32)]).toBe(0);
    expect(p.labels[idx(0, 2, 2)]).toBe(1);
    expect(p.smallTumoursToLiver).toBe(1);
    const m = measureLiver(p.labels, g);
    expect(m.tumourCount).toBe(1);
    expect(m.tumours[0].voxels).toBe(26);
    expect(p.summary).toBe("largest 26-connected liver component kept (2 component(s); 0.01 mL elsewhere set to background); 1 tumour component(s) under 0.001 mL counted as liver");
  });

  test('shape rules: a flat one-slice disc inside the series and an in-plane tube become liver; a ball and a ball cut by the series end stay tumours (same cases as test_liver.py)', () => {
    const sg = { slices: 15, rows: 40, columns: 40, pixelSpacing: [1, 1] as [number, number], sliceSpacing: 1 };
    const at = (z: number, r: number, c: number): number => (z * 40 + r) * 40 + c;
    const lab = new Uint8Array(15 * 40 * 40).fill(1);
    for (let z = 0; z < 15; z++) {
      for (let r = 0; r < 40; r++) {
        for (let c = 0; c < 40; c++) {
          if (z === 7 && (r - 8) ** 2 + (c - 8) ** 2 <= 36) lab[at(z, r, c)] = 2; // A: a 13 mm disc on one middle slice
          if ((z - 7) ** 2 + (r - 8) ** 2 + (c - 28) ** 2 <= 25) lab[at(z, r, c)] = 2; // B: a ball
          if (z ** 2 + (r - 28) ** 2 + (c - 8) ** 2 <= 25) lab[at(z, r, c)] = 2; // C: a ball cut by the first slice
          if (r >= 27 && r <= 28 && c >= 20) lab[at(z, r, c)] = 2; // D: a 2 x 20 mm tube through every slice
        }
      }
    }
    const off = postprocessLiver(lab, sg, { minTumourMl: 0 });
    expect(measureLiver(off.labels, sg).tumourCount).toBe(4);
    const p = postprocessLiver(lab, sg, { minTumourMl: 0, flatEndFactor: 3, minAxialFill: 0.3 });
    expect(p.shapeToLiver).toEqual({ flatEnd: 1, tubular: 1 });
    expect(p.labels[at(7, 8, 8)]).toBe(1);
    expect(p.labels[at(7, 27, 30)]).toBe(1);
    expect(p.labels[at(7, 8, 28)]).toBe(2);
    expect(p.labels[at(0, 28, 8)]).toBe(2);
    expect(measureLiver(p.labels, sg).tumourCount).toBe(2);
    expect(p.summary).toContain('1 tumour component(s) ending flat inside the series');
    expect(p.summary).toContain('1 tubular tumour component(s)');
    // each rule alone
    expect(postprocessLiver(lab, sg, { minTumourMl: 0, flatEndFactor: 3 }).shapeToLiver).toEqual({ flatEnd: 1, tubular: 0 });
    expect(postprocessLiver(lab, sg, { minTumourMl: 0, minAxialFill: 0.3 }).shapeToLiver).toEqual({ flatEnd: 0, tubular: 1 });
    // the disc of A ending on the series' last slice is judged on its inner side only: still flat there
    const last = new Uint8Array(lab.length).fill(1);
    for (let r = 0; r < 40; r++) for (let c = 0; c < 40; c++) if ((r - 8) ** 2 + (c - 8) ** 2 <= 36) last[at(14, r, c)] = 2;
    expect(postprocessLiver(last, sg, { minTumourMl: 0, flatEndFactor: 3 }).shapeToLiver.flatEnd).toBe(1);
    // ... and a 1-slice series cannot judge it at all
    const one = { ...sg, slices: 1 };
    expect(postprocessLiver(last.subarray(14 * 1600), one, { minTumourMl: 0, flatEndFactor: 3 }).shapeToLiver.flatEnd).toBe(0);
  });

  test('position inside the segmented liver: thirds right-to-left (patient right = low LPS x) and top-to-bottom', () => {
    const lab = new Uint8Array(3 * 40 * 40);
    for (let z = 0; z < 3; z++) for (let r = 0; r < 40; r++) for (let c = 0; c < 40; c++) lab[idx(z, r, c)] = 1;
    for (let r = 18; r < 22; r++) for (let c = 2; c < 6; c++) lab[idx(2, r, c)] = 2; // top slice, low columns
    const geometry = { rowCosines: [1, 0, 0] as [number, number, number], columnCosines: [0, 1, 0] as [number, number, number], slicePositions: [0, 1, 2].map((z) => [0, 0, z * 2] as [number, number, number]) };
    const t = measureLiver(lab, g, geometry).tumours[0];
    expect(t.location!.rightToLeft).toBeCloseTo(3.5 / 39, 9);
    expect(t.location!.topToBottom).toBe(0);
    expect(t.location!.text).toBe('upper third, patient-right third of the segmented liver (centroid 9 % of its right-to-left and 0 % of its top-to-bottom extent)');
    expect(t.centroidLpsMm).toEqual([1.75, 9.75, 4]);
  });

  const fx = liverFixturesAvailable() ? test : test.skip;
  fx.each(['ct', 'mr'] as const)('%s fixture truth: the same volumes, count and diameters as the python reference (liver_post.measure)', (which) => {
    const f = liverFixture(which);
    const m = measureLiver(f.truth, { slices: f.slices, rows: f.rows, columns: f.columns, pixelSpacing: [f.pixelSpacing, f.pixelSpacing], sliceSpacing: f.sliceSpacing });
    const t = f.expected.truth;
    expect(m.liverMl).toBeCloseTo(t.liverMl, 6);
    expect(m.tumourCount).toBe(t.tumourCount);
    expect(m.tumourMl).toBeCloseTo(t.tumourMl, 6);
    expect(m.tumours.map((x) => [x.ml, x.longestAxialDiameterMm])).toEqual(t.tumours.map((x) => [expect.closeTo(x.ml, 6), expect.closeTo(x.longestAxialDiameterMm, 6)]));
  });
});

const fxd = liverFixturesAvailable() ? describe : describe.skip;
fxd('liver SEG + SR with tumours (the CT phantom truth as the label map)', () => {
  test('two segments on the source slices, one SR group a tumour with volume, Long Axis and centroid; dciodvfy clean', () => {
    const { study, series, fixture } = writeLiverFixtureStudy('ct');
    const g = series.volume.geometry;
    const m = measureLiver(fixture.truth, { slices: g.slices, rows: g.rows, columns: g.columns, pixelSpacing: g.pixelSpacing, sliceSpacing: g.sliceSpacing }, g);
    expect(m.tumourCount).toBe(2);
    const provenance = { nodeName: 'liver-test', nodeVersion: '0.0.0', modelName: 'liver-aqcf', modelVersion: '0.0.1', modelSha256: 'a'.repeat(64), executionProvider: 'cpu', sourceSeriesUids: [series.seriesInstanceUid], processingMs: 1, synthetic: false };
    const r = writeLiverResults({
      source: series.volume,
      labels: fixture.truth,
      sourceHeaders: series.headers,
      modality: 'CT',
      seriesKind: 'portal-venous CT',
      liverMl: m.liverMl,
      tumourMl: m.tumourMl,
      tumours: m.tumours,
      notes: ['PHANTOM-TRAINED MODEL: test'],
      algorithmName: 'liver-aqcf',
      algorithmVersion: '0.0.1',
      provenance,
      deployment: { manufacturer: 'Test', manufacturerModelName: 'node', softwareVersions: '0.0.0' },
    });
    const seg = readPart10(r.seg.part10).dataset;
    expect(str(seg, 'StudyInstanceUID')).toBe(study.studyInstanceUid);
    expect(Buffer.from(segToLabels(seg, series)).equals(Buffer.from(fixture.truth))).toBe(true);
    expect(r.seg.segmentVolumesMl[1]).toBeCloseTo(fixture.expected.truth.tumourMl, 6);
    const sr = readPart10(r.sr.part10).dataset;
    const groups = seq(seq(sr, 'ContentSequence').find((c) => str(seq(c, 'ConceptNameCodeSequence')[0], 'CodeValue') === '126010')!, 'ContentSequence');
    const label = (gr: Record<string, unknown>) => str(seq(gr, 'ContentSequence').find((c) => str(c, 'ValueType') === 'TEXT')!, 'TextValue');
    expect(groups.map(label)).toEqual(['Liver parenchyma (without tumours)', 'Liver tumours (all)', 'Liver (parenchyma + tumours)', 'Liver tumour 1', 'Liver tumour 2']);
    const numOf = (gr: Record<string, unknown>, code: string) =>
      Number(str(seq(seq(gr, 'ContentSequence').find((c) => str(c, 'ValueType') === 'NUM' && str(seq(c, 'ConceptNameCodeSequence')[0], 'CodeValue') === code)!, 'MeasuredValueSequence')[0], 'NumericValue'));
    expect(numOf(groups[1], 'LIVERTUMOURS')).toBe(2);
    expect(numOf(groups[2], '118565006')).toBeCloseTo(fixture.expected.truth.liverMl, 3);
    expect(numOf(groups[3], '103339001')).toBeCloseTo(fixture.expected.truth.tumours[0].longestAxialDiameterMm, 3);
    expect(numOf(groups[4], '118565006')).toBeCloseTo(fixture.expected.truth.tumours[1].ml, 3);
    expect(JSON.stringify(groups[3])).toMatch(/Centroid \(patient LPS\) -?[\d.]+, -?[\d.]+, -?[\d.]+ mm\. Position: (upper|middle|lower) third, (patient-right|middle|patient-left) third of the segmented liver .*Location: no Couinaud segment reported/);
    if (dciodvfyAvailable()) {
      expect(dciodvfy(r.seg.part10).errors).toEqual([]);
      expect(dciodvfy(r.sr.part10).errors).toEqual([]);
    }
  }, 60000);
});

const withModel = liverFixturesAvailable() && modelReady('liver-aqcf') ? describe : describe.skip;
withModel('the TypeScript pipeline on the committed phantoms vs the python reference (expected.json)', () => {
  let registry: ModelRegistry;
  beforeAll(async () => {
    registry = await liverRegistry();
  }, 120000);
  afterAll(async () => registry?.close());

  test.each(['ct', 'mr'] as const)('%s: label map identical (sha256), volumes and tumours as python', async (which) => {
    const { series, fixture } = writeLiverFixtureStudy(which);
    const exp = fixture.expected.expected;
    const man = registry.get('liver-aqcf')!.manifest;
    expect(man.sha256).toBe(JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/liver/expected.json'), 'utf8')).model.sha256);
    const timings: Record<string, number> = {};
    const seg = await segmentLiver(registry, 'liver-aqcf', series.volume, fixture.modality, timings);
    const m = seg.measurements;
    expect(createHash('sha256').update(seg.labels).digest('hex')).toBe(exp.labelSha256);
    let raw2 = 0;
    for (const v of seg.raw) if (v === 2) raw2++;
    expect(raw2).toBe(exp.raw.tumourVoxels);
    expect(m.liverMl).toBeCloseTo(exp.liverMl, 6);
    expect(m.tumourCount).toBe(exp.tumourCount);
    expect(m.tumourMl).toBeCloseTo(exp.tumourMl, 6);
    expect(m.tumours.map((t) => [t.voxels, t.longestAxialDiameterMm])).toEqual(exp.tumours.map((t) => [t.voxels, expect.closeTo(t.longestAxialDiameterMm, 6)]));
    m.tumours.forEach((t, i) => expect(t.centroidLpsMm).toEqual(exp.tumours[i].centroidLpsMm!.map((x) => expect.closeTo(x, 4))));
    for (const k of ['preprocess', 'inference', 'postprocess', 'measure']) expect(timings[k]).toBeGreaterThan(0);
    console.log(`${which}: liver ${m.liverMl.toFixed(1)} mL (truth ${fixture.expected.truth.liverMl.toFixed(1)}), tumours ${m.tumourCount} (truth ${fixture.expected.truth.tumourCount}), ${JSON.stringify(Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])))} ms`);
  }, 120000);

  test('the task on the CT phantom study: SEG (liver, liver tumour) on the source slices and the SR, dciodvfy clean', async () => {
    const { study, series } = writeLiverFixtureStudy('ct', { outDir: path.join(work, 'ct-task') });
    const a = await assemble(study, [series]);
    const cfg = parseConfig({ nodeName: 'liver-test', routes: [{ name: 'liver', tasks: ['liver-ct-mr'] }] });
    const acc = liverCtMr.accept(a.availability, cfg.routes[0], registry);
    if (!acc.run) throw new Error(acc.reason);
    const timings: Record<string, number> = {};
    const r = await liverCtMr.run({ deps: { config: cfg, registry, nodeVersion: '0.0.0-test', resultsDir: work }, job: { id: 1, studyUid: study.studyInstanceUid }, route: cfg.routes[0], study: a, plan: acc.plan, timings, tStart: performance.now() });
    expect(r.objects.map((o) => o.kind)).toEqual(['SEG', 'SR']);
    const seg = readPart10(r.objects[0].part10).dataset;
    const sr = readPart10(r.objects[1].part10).dataset;
    expect(seq(seg, 'SegmentSequence').map((s) => [str(s, 'SegmentLabel'), str(seq(s, 'SegmentedPropertyTypeCodeSequence')[0], 'CodeValue')])).toEqual([
      ['Liver', '10200004'],
      ['Liver tumour', '108369006'],
    ]);
    expect(str(seq(seq(seg, 'SegmentSequence')[1], 'AnatomicRegionSequence')[0], 'CodeValue')).toBe('10200004');
    expect(str(seg, 'StudyInstanceUID')).toBe(study.studyInstanceUid);
    expect(str(seg, 'FrameOfReferenceUID')).toBe(study.frameOfReferenceUid);
    // every frame on its own source slice: the SEG read back by referenced SOP equals the task's labels
    const back = segToLabels(seg, series);
    const seg2 = await segmentLiver(registry, 'liver-aqcf', series.volume, 'CT');
    expect(Buffer.from(back).equals(Buffer.from(seg2.labels))).toBe(true);
    const srText = JSON.stringify(sr);
    expect(srText).toContain('PHANTOM-TRAINED MODEL');
    expect(srText).toContain('no Couinaud segment');
    expect(srText).toContain('Number of liver tumours');
    expect(srText).toContain(str(seg, 'SOPInstanceUID'));
    expect(r.measurements.liverMl).toBeCloseTo(seg2.measurements.liverMl, 1);
    expect(r.notes[0]).toMatch(/portal-venous CT: liver [\d.]+ mL, \d+ tumour/);
    if (dciodvfyAvailable()) {
      expect(dciodvfy(r.objects[0].part10).errors).toEqual([]);
      expect(dciodvfy(r.objects[1].part10).errors).toEqual([]);
    }
  }, 180000);
});
