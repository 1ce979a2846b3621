/**
 * The node's DICOM SEG, as the real OHIF viewer (v3.13.2, headless Debian Chromium) shows it: the
 * study lists the SEG and the overlay SC series, loading the SEG shows the segment "Ischaemic lesion",
 * and the overlay sits on the lesion: on the lesion's slices, at its place, and on no other slice —
 * checked in the viewer's own segmentation state (voxel for voxel) and in the rendered pixels.
 * A SEG whose frames are misordered in z (what a writer that maps frames by list order produces)
 * is reported as misplaced by the same checks, so they can fail.
 *
 * Cases: a synthetic disk lesion (off-centre in-plane and in z, so flips and misorders show), the
 * committed anatomical phantom fixtures/phantoms/test-1037-lesion (irregular real lesion map), and
 * the disk SEG with its frames reversed in z.
 *
 * Peers: Orthanc + DICOMweb plugin (test/harness/orthanc.ts), the OHIF dist served with a DICOMweb
 * proxy and Chromium via playwright-core (test/harness/ohif.ts). Screenshots: test-output/ohif/.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { readPart10, type NaturalDataset } from '../../src/dicom/dcmjs';
import { assembleStudy } from '../../src/study';
import { buildSeg, formatMl, ischaemicLesionSegment, writeMeasurementSr, writeOverlaySc, type MeasurementSrResult, type ScSeriesResult, type SegResult } from '../../src/results';
import type { StoredInstance, Volume } from '../../src/types';
import {
  chromiumAvailable,
  displaySets,
  ensureOhifDist,
  launchChromium,
  loadSegFromThumbnail,
  openStudy,
  renderingInfo,
  segmentationPanelText,
  showInstance,
  startOhifServer,
  thumbnailTexts,
  type LoadedSegmentation,
  type OhifServerHandle,
} from '../harness/ohif';
import { orthancAvailable, startOrthanc, type OrthancHandle } from '../harness/orthanc';
import { loadPhantom, newStudyContext, phantomsRoot, writePhantomStudy } from '../helpers/series-writer';
import { deployment, provenanceFor } from '../results/fixtures';
import { checkLabelmapPlacement, checkRenderedOverlay, lesionSlicesOf, type ExpectedLesion, type RenderedOverlayResult } from './overlay-check';
import { LESION_SLICES, SLICES, pixelCentreWorld, reversedInZ, writeViewerPhantom } from './phantom';
import { decodePng } from './png';

const OUT = path.resolve(__dirname, '../../test-output/ohif');
const SHARED = process.env.STROKE_SHARED_DATA ?? path.resolve(__dirname, '../../../shared/data');
const ready = orthancAvailable() && chromiumAvailable();
const REAL_PHANTOM = 'test-1037-lesion';
const havePhantom = fs.existsSync(path.join(phantomsRoot(), REAL_PHANTOM, 'meta.json'));
/** Disk phantom: a lesion slice and a slice without lesion (14: where a z-reversed SEG puts slice 5). */
const LESION_SLICE = 5;
const MIRROR_SLICE = SLICES - 1 - LESION_SLICE;

jest.setTimeout(240000);

/** A series to store: what the series writer returns, or real scanner files with the study stage's volume. */
interface SourceSeries {
  seriesInstanceUid: string;
  volume: Volume;
  headers: Map<string, NaturalDataset>;
  files: Array<{ part10: Buffer }>;
}

interface Case {
  name: string;
  studyUid: string;
  /** The series the SEG is drawn on (what OHIF shows when the SEG loads). */
  source: SourceSeries;
  other: SourceSeries;
  /** Replace the patient attributes in Orthanc after storing (real volunteer data: see realScannerCase). */
  deidentify?: boolean;
  /** The true lesion on the source grid. */
  truth: Uint8Array;
  seg: SegResult;
  overlay: ScSeriesResult;
  sr: MeasurementSrResult;
}

/** SEG (real writer) and overlay SC over `source`, the SEG built from `maskForSeg(truth)`. */
function buildCase(name: string, studyUid: string, source: SourceSeries, other: SourceSeries, truth: Uint8Array, maskForSeg: (m: Uint8Array) => Uint8Array): Case {
  const prov = provenanceFor([source.seriesInstanceUid, other.seriesInstanceUid]);
  const common = { sourceHeaders: source.headers, provenance: prov, deployment };
  const seg = buildSeg({ ...common, source: source.volume, mask: maskForSeg(truth), segments: [ischaemicLesionSegment('dual-encoder-25d', '1.2.0')] });
  const overlay = writeOverlaySc({ ...common, image: source.volume, mask: truth });
  const sr = writeMeasurementSr({
    sourceHeader: source.headers.get(source.volume.sliceSources[0].sopInstanceUid) as NaturalDataset,
    sourceSlices: source.volume.sliceSources,
    seg: { sopInstanceUid: seg.sopInstanceUid, seriesInstanceUid: seg.seriesInstanceUid },
    lesionVolumeMl: seg.segmentVolumesMl[0],
    algorithmName: 'dual-encoder-25d',
    algorithmVersion: '1.2.0',
    provenance: prov,
    deployment,
  });
  return { name, studyUid, source, other, truth, seg, overlay, sr };
}

function diskCase(name: string, patientId: string, maskForSeg: (m: Uint8Array) => Uint8Array): Case {
  const p = writeViewerPhantom({ patientId }); // one patient a case: OHIF lists a patient's other studies beside it
  return buildCase(name, p.study.studyInstanceUid, p.dwi, p.adc, p.mask, maskForSeg);
}

const XA30 = path.join(SHARED, 'dicom/siemens-xa30-enhanced-dwi');
const haveXa30 = fs.existsSync(path.join(XA30, '12_DWI_dir80_PA'));
/** Disk lesion drawn on the XA30 TRACEW: slices (0-based), centre, radius (pixels of the 72x72 grid). */
const XA30_LESION = { slices: [20, 21, 22, 23], row: 25, column: 45, radius: 6 };

function storedInstances(dir: string): StoredInstance[] {
  return fs
    .readdirSync(dir)
    .filter((f) => !f.startsWith('.'))
    .map((f) => {
      const p = path.join(dir, f);
      const { dataset, transferSyntaxUid } = readPart10(fs.readFileSync(p), { untilPixelData: true });
      return {
        sopInstanceUid: String(dataset.SOPInstanceUID),
        sopClassUid: String(dataset.SOPClassUID),
        studyInstanceUid: String(dataset.StudyInstanceUID),
        seriesInstanceUid: String(dataset.SeriesInstanceUID),
        transferSyntaxUid,
        path: p,
        bytes: fs.statSync(p).size,
        receivedAt: new Date().toISOString(),
        sourceAe: 'TEST',
      };
    });
}

/**
 * Real scanner data: Siemens XA30 enhanced multi-frame TRACEW (one instance, 39 frames) and its ADC,
 * assembled by the study stage as the node does; a known disk lesion is drawn on 4 of its slices, so
 * the SEG's frames reference frames 21-24 of one instance (ReferencedFrameNumber), not instances.
 */
async function realScannerCase(): Promise<Case> {
  const tracew = storedInstances(path.join(XA30, '12_DWI_dir80_PA'));
  const adc = storedInstances(path.join(XA30, '11_DWI_dir80_PA'));
  const st = await assembleStudy([...adc, ...tracew]);
  const dwi = st.volumes.DWI;
  const adcVol = st.volumes.ADC;
  if (!dwi || !adcVol) throw new Error('study stage did not assemble the XA30 DWI and ADC');
  const g = dwi.geometry;
  const truth = new Uint8Array(g.rows * g.columns * g.slices);
  for (const z of XA30_LESION.slices)
    for (let r = 0; r < g.rows; r++)
      for (let c = 0; c < g.columns; c++)
        if ((r - XA30_LESION.row) ** 2 + (c - XA30_LESION.column) ** 2 <= XA30_LESION.radius ** 2) truth[(z * g.rows + r) * g.columns + c] = 1;
  const series = (vol: Volume, inst: StoredInstance[]): SourceSeries => ({
    seriesInstanceUid: vol.seriesInstanceUid,
    volume: vol,
    headers: st.headers,
    files: inst.map((i) => ({ part10: fs.readFileSync(i.path) })),
  });
  const c = buildCase('xa30-enhanced', tracew[0].studyInstanceUid, series(dwi, tracew), series(adcVol, adc), truth, (m) => m);
  return { ...c, deidentify: true };
}

function realPhantomCase(): Case {
  const ph = loadPhantom(REAL_PHANTOM);
  const s = writePhantomStudy(ph, { include: ['dwi', 'adc'], study: newStudyContext({ patientName: 'PHANTOM^REAL', patientId: 'OHIFPH03' }) });
  if (!s.dwi || !s.adc || !s.mask) throw new Error(`${REAL_PHANTOM} lacks dwi/adc/mask`);
  return buildCase('phantom-1037', s.study.studyInstanceUid, s.dwi, s.adc, s.mask, (m) => m);
}

async function store(pacs: OrthancHandle, c: Case): Promise<void> {
  for (const f of [...c.source.files, ...c.other.files]) await pacs.uploadFile(f.part10);
  await pacs.uploadFile(c.seg.part10);
  await pacs.uploadFile(c.sr.part10);
  for (const i of c.overlay.instances) await pacs.uploadFile(i.part10);
  if (c.deidentify) {
    // The volunteer's own patient attributes stay out of the browser; Orthanc keeps every UID, so the
    // SEG's references still hold. (Also, Orthanc 1.10's QIDO found no study for this PatientID, which
    // left OHIF's study browser empty.)
    const [studyId] = await pacs.findStudies({ StudyInstanceUID: c.studyUid });
    const { ParentPatient } = await pacs.get<{ ParentPatient: string }>(`/studies/${studyId}`);
    await pacs.post(`/patients/${ParentPatient}/modify`, {
      Replace: { PatientID: 'OHIFXA30', PatientName: 'VOLUNTEER^XA30', PatientBirthDate: '' },
      Keep: ['StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID'],
      Force: true,
    });
    const del = await fetch(`${pacs.httpUrl}/patients/${ParentPatient}`, { method: 'DELETE' });
    if (!del.ok) throw new Error(`Orthanc DELETE patient: HTTP ${del.status}`);
  }
}

function expected(c: Case): ExpectedLesion {
  const g = c.source.volume.geometry;
  const slices = c.source.volume.sliceSources.map((s) => ({ sopInstanceUid: s.sopInstanceUid, frameNumber: s.frameNumber ?? 1 }));
  return { slices, rows: g.rows, columns: g.columns, mask: c.truth };
}

/** Show slice z, screenshot the page into test-output/ohif/<case>-slice<z>.png, check the rendered overlay. */
async function renderedCheck(page: Page, c: Case, z: number): Promise<RenderedOverlayResult> {
  const vol: Volume = c.source.volume;
  const src = vol.sliceSources[z];
  const pts = [pixelCentreWorld(vol, z, 0, 0), pixelCentreWorld(vol, z, 0, 1), pixelCentreWorld(vol, z, 1, 0)];
  const placement = await showInstance(page, src.sopInstanceUid, pts, 1000, src.frameNumber ?? 1);
  expect([placement.shownSopInstanceUid, placement.shownFrameNumber]).toEqual([src.sopInstanceUid, src.frameNumber ?? 1]);
  const exp = expected(c);
  const tag = lesionSlicesOf(exp).includes(z) ? 'lesion' : 'no-lesion';
  const png = await page.screenshot({ path: path.join(OUT, `${c.name}-slice${z}-${tag}.png`) });
  return checkRenderedOverlay(decodePng(png), placement, exp, z, `${c.name} slice ${z}`);
}

async function openAndLoad(page: Page, url: string, c: Case): Promise<LoadedSegmentation> {
  await openStudy(page, url, c.studyUid);
  return loadSegFromThumbnail(page, 'AI lesion SEG');
}

(ready ? describe : describe.skip)('OHIF viewer shows the node SEG on the lesion', () => {
  let pacs: OrthancHandle;
  let ohif: OhifServerHandle;
  let browser: Browser;
  let page: Page;
  let disk: Case;
  let misordered: Case;
  let real: Case | undefined;
  let xa30: Case | undefined;
  let loaded: LoadedSegmentation;
  const t0 = Date.now();

  beforeAll(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    for (const f of fs.readdirSync(OUT)) if (f.endsWith('.png') && !f.startsWith('node-')) fs.rmSync(path.join(OUT, f)); // this run's screenshots only (node-*: ohif-node-e2e)
    const distDir = ensureOhifDist(); // npm pack once into .cache/ohif/, then reused
    pacs = await startOrthanc();
    disk = diskCase('disk', 'OHIFPH01', (m) => m);
    misordered = diskCase('misordered', 'OHIFPH02', reversedInZ);
    real = havePhantom ? realPhantomCase() : undefined;
    xa30 = haveXa30 ? await realScannerCase() : undefined;
    for (const c of [disk, misordered, real, xa30]) if (c) await store(pacs, c);
    ohif = await startOhifServer({ orthancUrl: pacs.httpUrl, distDir });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  });

  afterAll(async () => {
    await browser?.close();
    await ohif?.stop();
    await pacs?.stop();
    // eslint-disable-next-line no-console
    console.log(`OHIF SEG test: ${((Date.now() - t0) / 1000).toFixed(1)} s; screenshots in ${OUT}`);
  });

  test('the study lists the DWI, ADC, SEG, overlay SC and SR series, the lesion volume in the SEG and SR descriptions', async () => {
    await openStudy(page, ohif.url, disk.studyUid);
    const sets = await displaySets(page);
    const bySeries = new Map(sets.map((d) => [d.seriesInstanceUid, d.modality]));
    expect(bySeries.get(disk.source.seriesInstanceUid)).toBe('MR');
    expect(bySeries.get(disk.other.seriesInstanceUid)).toBe('MR');
    expect(bySeries.get(disk.seg.seriesInstanceUid)).toBe('SEG');
    expect(bySeries.get(disk.overlay.seriesInstanceUid)).toBe('OT');
    expect(bySeries.get(disk.sr.seriesInstanceUid)).toBe('SR');
    const thumbs = (await thumbnailTexts(page)).join('\n');
    const ml = formatMl(disk.seg.segmentVolumesMl[0]); // "24.4 mL": 4 disks of 377 px of 1.8x1.8x5 mm
    expect(thumbs).toContain(`AI lesion SEG ${ml}`);
    expect(thumbs).toContain(`AI stroke measurements ${ml}`); // OHIF cannot draw this SR (no SCOORD): the description carries the volume
    expect(thumbs).toMatch(/AI lesion overlay/);
    await page.screenshot({ path: path.join(OUT, 'disk-study-opened.png') });
  });

  test('OHIF renders with WebGL2 (SwiftShader in headless Chromium), not the CPU fallback', async () => {
    const r = await renderingInfo(page);
    expect(r.webgl2).toMatch(/^WebGL 2\.0/);
    expect(r.cpuFallback).toBe(false);
    // eslint-disable-next-line no-console
    console.log(`WebGL2 renderer: ${r.webgl2}`);
  });

  test('loading the SEG shows the segment "Ischaemic lesion" in the segmentation panel', async () => {
    loaded = await loadSegFromThumbnail(page, 'AI lesion SEG');
    expect(loaded.segmentLabels).toEqual(['Ischaemic lesion']);
    expect(await segmentationPanelText(page)).toContain('Ischaemic lesion');
    await page.screenshot({ path: path.join(OUT, 'disk-seg-loaded-panel.png') });
  });

  test('disk lesion: the viewer holds the segment voxel for voxel on the lesion, empty frames on the other slices', () => {
    expect(loaded.slices).toHaveLength(SLICES); // empty frames are there too
    expect(lesionSlicesOf(expected(disk))).toEqual(LESION_SLICES);
    expect(checkLabelmapPlacement(loaded, expected(disk))).toEqual([]);
  });

  test('disk lesion: the rendered overlay covers the lesion on a lesion slice and is absent elsewhere', async () => {
    const onLesion = await renderedCheck(page, disk, LESION_SLICE);
    expect(onLesion.problems).toEqual([]);
    expect(onLesion.lesionPixels).toBeGreaterThan(300);
    const off = await renderedCheck(page, disk, MIRROR_SLICE); // where a z-reversed SEG would draw it
    expect(off.problems).toEqual([]);
    expect(off.lesionPixels).toBe(0);
  });

  (havePhantom ? test : test.skip)(`anatomical phantom ${REAL_PHANTOM}: overlay matches the irregular lesion in the viewer state and on screen`, async () => {
    const c = real as Case;
    const seg = await openAndLoad(page, ohif.url, c);
    expect(seg.segmentLabels).toEqual(['Ischaemic lesion']);
    const exp = expected(c);
    expect(checkLabelmapPlacement(seg, exp)).toEqual([]);
    const lesionSlices = lesionSlicesOf(exp);
    const ppf = exp.rows * exp.columns;
    const count = (z: number): number => exp.mask.subarray(z * ppf, (z + 1) * ppf).reduce((a, b) => a + (b ? 1 : 0), 0);
    const biggest = lesionSlices.reduce((a, b) => (count(b) > count(a) ? b : a));
    const outside = Math.min(exp.slices.length - 1, lesionSlices[lesionSlices.length - 1] + 3);
    expect(lesionSlices).not.toContain(outside);
    const on = await renderedCheck(page, c, biggest);
    expect(on.problems).toEqual([]);
    expect(on.lesionPixels).toBeGreaterThan(50);
    const off = await renderedCheck(page, c, outside);
    expect(off.problems).toEqual([]);
  });

  (haveXa30 ? test : test.skip)('real Siemens XA30 enhanced multi-frame TRACEW: the SEG lands on the right frames of the one instance', async () => {
    const c = xa30 as Case;
    const seg = await openAndLoad(page, ohif.url, c);
    expect(seg.segmentLabels).toEqual(['Ischaemic lesion']);
    expect(seg.slices).toHaveLength(c.source.volume.geometry.slices);
    expect(new Set(seg.slices.map((x) => x.referencedSopInstanceUid)).size).toBe(1); // one instance, 39 frames
    const exp = expected(c);
    expect(checkLabelmapPlacement(seg, exp)).toEqual([]);
    const on = await renderedCheck(page, c, XA30_LESION.slices[1]);
    expect(on.problems).toEqual([]);
    expect(on.lesionPixels).toBeGreaterThan(100);
    const off = await renderedCheck(page, c, XA30_LESION.slices[0] - 4);
    expect(off.problems).toEqual([]);
  });

  test('a SEG with frames misordered in z is reported as misplaced by both checks', async () => {
    const wrong = await openAndLoad(page, ohif.url, misordered);
    expect(wrong.segmentLabels).toEqual(['Ischaemic lesion']);
    const stateProblems = checkLabelmapPlacement(wrong, expected(misordered));
    expect(stateProblems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(new RegExp(`^slice ${LESION_SLICE}: lesion slice \\(\\d+ px at .*\\) has no segment pixels`)),
        expect.stringMatching(new RegExp(`^slice ${MIRROR_SLICE}: \\d+ segment pixels on a slice without lesion`)),
      ]),
    );
    const onLesion = await renderedCheck(page, misordered, LESION_SLICE);
    expect(onLesion.problems.join('\n')).toMatch(/overlay shows at only 0 of \d+ lesion pixels/);
    const onMirror = await renderedCheck(page, misordered, MIRROR_SLICE);
    expect(onMirror.problems.join('\n')).toMatch(/overlay screen pixels on a slice without lesion/);
  });
});

