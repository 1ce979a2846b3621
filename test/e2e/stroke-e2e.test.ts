/**
 * End to end with the real Orthanc peer and the committed models: a phantom DWI+ADC study is stored
 * in Orthanc, Orthanc sends it to the node by C-STORE, the node processes it and the SEG and SR come
 * back into the same study in Orthanc, validated by dciodvfy, referencing the right series, with the
 * lesion where the phantom has it. Also: slices sent in shuffled order, single-modality routing,
 * a no-lesion study, and a study with nothing usable.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readPart10, seq, str, num, NaturalDataset } from '../../src/dicom/dcmjs';
import { unpackBits } from '../../src/results/seg';
import { geHeadCt } from '../harness/data';
import { storescu } from '../harness/dcmtk';
import { OrthancHandle } from '../harness/orthanc';
import { dciodvfy } from '../helpers/dciodvfy';
import { startNodeWithOrthanc, TestNode, waitFor } from '../helpers/node';
import { loadPhantom, phantomsRoot, writePhantomStudy, Phantom, PhantomStudy } from '../helpers/series-writer';

const SEG_CLASS = '1.2.840.10008.5.1.4.1.1.66.4';
const SR_CLASS = '1.2.840.10008.5.1.4.1.1.88.33';

function phantomNames(): { lesion: string; empty: string } {
  const names = fs.readdirSync(phantomsRoot()).filter((n) => fs.existsSync(path.join(phantomsRoot(), n, 'meta.json')));
  const withLesion = names.filter((n) => Number(loadPhantom(n).meta.lesionVoxels ?? 0) > 0);
  const without = names.filter((n) => Number(loadPhantom(n).meta.lesionVoxels ?? 0) === 0);
  if (!withLesion.length || !without.length) throw new Error(`need a lesion and a no-lesion phantom in ${phantomsRoot()}`);
  return { lesion: withLesion[0], empty: without[0] };
}

/** SEG frames → mask on the phantom grid, frames placed by their referenced SOPInstanceUID. */
export function segToPhantomMask(seg: NaturalDataset, study: PhantomStudy, refSeries: 'dwi' | 'adc' = 'dwi'): Uint8Array {
  const series = study[refSeries]!;
  const sliceOf = new Map(series.files.map((f) => [f.sopInstanceUid, f.sliceIndex]));
  const rows = num(seg, 'Rows')!;
  const cols = num(seg, 'Columns')!;
  const frames = num(seg, 'NumberOfFrames')!;
  const pixelData = seg.PixelData as ArrayBuffer[];
  const bits = unpackBits(new Uint8Array(pixelData[0]), frames, rows * cols);
  const out = new Uint8Array(study.meta.slices * rows * cols);
  seq(seg, 'PerFrameFunctionalGroupsSequence').forEach((fg, i) => {
    const src = seq(seq(fg, 'DerivationImageSequence')[0], 'SourceImageSequence')[0];
    const z = sliceOf.get(String(src.ReferencedSOPInstanceUID));
    if (z === undefined) throw new Error('SEG frame references an instance outside the series');
    out.set(bits[i], z * rows * cols);
  });
  return out;
}

/** Keep slices [z0, z1) of a phantom (moving the first position along the normal): partial coverage. */
function cropPhantom(p: Phantom, z0: number, z1: number): Phantom {
  const m = p.meta;
  const plane = m.rows * m.columns;
  const iop = m.imageOrientationPatient;
  const n = [iop[1] * iop[5] - iop[2] * iop[4], iop[2] * iop[3] - iop[0] * iop[5], iop[0] * iop[4] - iop[1] * iop[3]];
  const first = m.imagePositionPatientFirst.map((v, i) => v + n[i] * m.sliceSpacing * z0) as [number, number, number];
  const cut = <T extends Uint16Array | Uint8Array>(a?: T) => (a ? (a.slice(z0 * plane, z1 * plane) as T) : undefined);
  return { ...p, meta: { ...m, slices: z1 - z0, imagePositionPatientFirst: first }, dwi: cut(p.dwi), adc: cut(p.adc), b0: cut(p.b0), mask: cut(p.mask) };
}

/** Mean slice index of the mask's voxels. */
function zCentroid(mask: Uint8Array, plane: number): number {
  let s = 0;
  let c = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) {
    s += Math.floor(i / plane);
    c++;
  }
  return c ? s / c : NaN;
}

export function dice(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i]) sa++;
    if (b[i]) sb++;
    if (a[i] && b[i]) inter++;
  }
  return sa + sb === 0 ? 1 : (2 * inter) / (sa + sb);
}

async function orthancFile(pacs: OrthancHandle, id: string): Promise<Buffer> {
  const r = await fetch(`${pacs.httpUrl}/instances/${id}/file`);
  return Buffer.from(await r.arrayBuffer());
}

describe('stroke study end to end through the real Orthanc', () => {
  let t: TestNode;
  let pacs: OrthancHandle;
  let work: string;
  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'stroke-e2e-'));
    // ctToDwi names a model this node does not have, so a CT-only study stays "not processed" here
    // (the CT→DWI route has its own end-to-end test: ct2dwi-e2e.test.ts)
    ({ node: t, pacs } = await startNodeWithOrthanc({ extraPeers: ['STORESCU'], routeModels: { ctToDwi: 'ct2dwi-not-installed' } }));
  });
  afterAll(async () => {
    await t?.stop();
    await pacs?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  async function waitJobs(n: number): Promise<void> {
    await waitFor(async () => (await t.node.queue.list({ states: ['done', 'not_processed', 'failed', 'dead'] })).length >= n, 90000, `${n} job(s) finished`);
    await (t.node as unknown as { egress: { sendNow(): Promise<void> } }).egress.sendNow();
  }

  test('DWI+ADC phantom: Orthanc → node → SEG and SR back in the same study, valid, lesion in place', async () => {
    const names = phantomNames();
    const study = writePhantomStudy(loadPhantom(names.lesion), { include: ['dwi', 'adc'] });
    for (const s of [study.dwi!, study.adc!]) for (const f of s.files) await pacs.uploadFile(f.part10);
    await pacs.storeToModality('NODE', await pacs.listInstances());
    await waitJobs(1);
    const job = (await t.node.queue.list())[0];
    expect(job.state).toBe('done');
    const outcome = job.outcome as { model: { name: string; executionProvider: string }; lesionVolumeMl: number; decision: string };
    expect(outcome.model.name).toBe('shaspec-realbg'); // the default DWI+ADC model (routes[].models.dwiAdc)

    const studies = await pacs.findStudies({ StudyInstanceUID: study.study.studyInstanceUid });
    expect(studies).toHaveLength(1);
    const instances = await pacs.get<{ ID: string }[]>(`/studies/${studies[0]}/instances`);
    const files = await Promise.all(instances.map((i) => orthancFile(pacs, i.ID)));
    const parsed = files.map((b) => ({ b, p: readPart10(b) }));
    const segs = parsed.filter((x) => str(x.p.dataset, 'SOPClassUID') === SEG_CLASS);
    const srs = parsed.filter((x) => str(x.p.dataset, 'SOPClassUID') === SR_CLASS);
    expect(segs).toHaveLength(1);
    expect(srs).toHaveLength(1);
    for (const x of [...segs, ...srs]) expect(dciodvfy(x.b).errors).toEqual([]);

    const seg = segs[0].p.dataset;
    expect(str(seg, 'FrameOfReferenceUID')).toBe(study.study.frameOfReferenceUid);
    const refSeries = seq(seg, 'ReferencedSeriesSequence').map((s) => str(s, 'SeriesInstanceUID'));
    expect(refSeries).toContain(study.dwi!.seriesInstanceUid);
    expect(num(seg, 'NumberOfFrames')).toBe(study.meta.slices);
    expect(str(seg, 'SeriesDescription')).toMatch(/mL/);

    const found = segToPhantomMask(seg, study);
    const d = dice(found, study.mask!);
    expect(d).toBeGreaterThan(0.5);
    expect(Math.abs(outcome.lesionVolumeMl - Number(study.meta.lesionVolumeMl))).toBeLessThan(Number(study.meta.lesionVolumeMl) * 0.6);
    // The SR references the SEG and carries the volume.
    const srText = JSON.stringify(srs[0].p.dataset);
    expect(srText).toContain(str(seg, 'SOPInstanceUID')!);
  });

  test('slices sent in shuffled order: every SEG frame lands on its own source instance', async () => {
    const names = phantomNames();
    const full = loadPhantom(names.lesion);
    const plane0 = full.meta.rows * full.meta.columns;
    const lesionZ = [...new Set([...full.mask!.keys()].filter((i) => full.mask![i]).map((i) => Math.floor(i / plane0)))].sort((a, b) => a - b);
    // crop so the lesion sits in the first third of the stack: a reversed or shifted frame order then
    // puts it on other slices (a lesion centred in z would partly survive a reversal)
    const z0 = Math.max(0, lesionZ[0] - 2);
    const study = writePhantomStudy(cropPhantom(full, z0, full.meta.slices), { include: ['dwi', 'adc'], outDir: path.join(work, 'shuffled') });
    const files = [...study.dwi!.files, ...study.adc!.files].map((f) => f.path!);
    // deterministic shuffle
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = files.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [files[i], files[j]] = [files[j], files[i]];
    }
    const before = (await t.node.queue.list({ states: ['done', 'not_processed', 'failed', 'dead'] })).length;
    const r = await storescu('127.0.0.1', t.dimsePort, files, { callingAet: 'STORESCU', calledAet: 'STROKEAI' });
    expect(r.files.every((f) => f.outcome === 'success')).toBe(true);
    await waitJobs(before + 1);
    const job = (await t.node.queue.list())[0];
    expect(job.state).toBe('done');
    const segPath = (job.outcome as { outputs: { kind: string; path: string }[] }).outputs.find((o) => o.kind === 'SEG')!.path;
    const seg = readPart10(fs.readFileSync(segPath)).dataset;
    expect(seq(seg, 'PerFrameFunctionalGroupsSequence').length).toBe(study.meta.slices);
    // Frames placed by the SOPInstanceUID they reference must carry the lesion of that very slice.
    const found = segToPhantomMask(seg, study);
    const plane = study.meta.rows * study.meta.columns;
    expect(dice(found, study.mask!)).toBeGreaterThan(0.5);
    expect(Math.abs(zCentroid(found, plane) - zCentroid(study.mask!, plane))).toBeLessThan(1.5);
  });

  test('a study with no lesion still gets a SEG with every frame, empty ones included, and a consistent volume', async () => {
    const names = phantomNames();
    const study = writePhantomStudy(loadPhantom(names.empty), { include: ['dwi', 'adc'], outDir: path.join(work, 'empty') });
    const before = (await t.node.queue.list({ states: ['done', 'not_processed', 'failed', 'dead'] })).length;
    await storescu('127.0.0.1', t.dimsePort, [...study.dwi!.files, ...study.adc!.files].map((f) => f.path!), { callingAet: 'STORESCU', calledAet: 'STROKEAI' });
    await waitJobs(before + 1);
    const job = (await t.node.queue.list())[0];
    expect(job.state).toBe('done');
    const o = job.outcome as { lesionVolumeMl: number; outputs: { kind: string; path: string }[] };
    const seg = readPart10(fs.readFileSync(o.outputs.find((x) => x.kind === 'SEG')!.path)).dataset;
    expect(num(seg, 'NumberOfFrames')).toBe(study.meta.slices);
    // empty frames are written too (the model's false positives, measured in models/README.md, touch few slices)
    const found = segToPhantomMask(seg, study);
    const plane = study.meta.rows * study.meta.columns;
    const emptyFrames = Array.from({ length: study.meta.slices }, (_, z) => found.subarray(z * plane, (z + 1) * plane).every((v) => v === 0)).filter(Boolean).length;
    expect(emptyFrames).toBeGreaterThan(study.meta.slices / 2);
    // the volume the node reports (SEG description, SR, admin page) is the SEG's own voxel count
    const voxelMl = (study.meta.pixelSpacing[0] * study.meta.pixelSpacing[1] * study.meta.sliceSpacing) / 1000;
    const segMl = found.reduce((a, v) => a + v, 0) * voxelMl;
    expect(o.lesionVolumeMl).toBeCloseTo(segMl, 1);
  });

  test('DWI only is routed to the single-modality model (routes[].models.singleModality)', async () => {
    const names = phantomNames();
    const study = writePhantomStudy(loadPhantom(names.lesion), { include: ['dwi'], outDir: path.join(work, 'dwi-only') });
    const before = (await t.node.queue.list({ states: ['done', 'not_processed', 'failed', 'dead'] })).length;
    await storescu('127.0.0.1', t.dimsePort, study.dwi!.files.map((f) => f.path!), { callingAet: 'STORESCU', calledAet: 'STROKEAI' });
    await waitJobs(before + 1);
    const job = (await t.node.queue.list())[0];
    const o = job.outcome as { model: { name: string }; availability: { available: { DWI: boolean; ADC: boolean } } };
    expect(job.state).toBe('done');
    expect(o.availability.available).toMatchObject({ DWI: true, ADC: false });
    expect(o.model.name).toBe('shaspec-realbg');
  });

  test('a study with nothing usable is "not processed", with the reason', async () => {
    const before = (await t.node.queue.list({ states: ['done', 'not_processed', 'failed', 'dead'] })).length;
    // a head CT alone, and the route's CT→DWI model is not installed
    await storescu('127.0.0.1', t.dimsePort, geHeadCt().slice(0, 5), { callingAet: 'STORESCU', calledAet: 'STROKEAI' });
    await waitJobs(before + 1);
    const job = (await t.node.queue.list())[0];
    expect(job.state).toBe('not_processed');
    expect((job.outcome as { reason: string }).reason).toMatch(/CT/);
  });
});
