/**
 * The liver task's SEG (issue 16) in the real OHIF viewer (v3.13.2, headless Chromium), on the CT and on the MRI:
 * each committed TEST-split phantom (test/fixtures/liver: CT 256² x 18 slices of 3 mm with portal-venous tags; MRI
 * T1 post-contrast 256² x 20 slices) goes through the task
 * as the node runs it (assemble → accept → liverCtMr.run with the committed liver-aqcf model: model output, not
 * the truth), and the source series, the SEG and the SR it wrote are stored in Orthanc. The viewer lists the series, the
 * SEG and the SR; loading the SEG shows the two segments (Liver, Liver tumour) by name, and its labelmap holds, on
 * each source slice, exactly the pixels of each segment that the SEG carries (decoded independently here).
 * Screenshots (not committed): test-output/ohif/liver-*.png.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { parseConfig } from '../../src/config/load';
import { readPart10 } from '../../src/dicom/dcmjs';
import { ModelRegistry } from '../../src/models/registry';
import { liverCtMr } from '../../src/pipelines/liver-ct-mr';
import { assembleStudy } from '../../src/study';
import {
  chromiumAvailable,
  dismissFirstRunDialogs,
  displaySets,
  ensureOhifDist,
  launchChromium,
  loadSegFromThumbnail,
  openStudy,
  segmentationPanelText,
  showInstance,
  startOhifServer,
  thumbnailTexts,
  type LoadedSegmentation,
  type OhifServerHandle,
} from '../harness/ohif';
import { orthancAvailable, startOrthanc, type OrthancHandle } from '../harness/orthanc';
import { bratsStoredInstances } from '../helpers/brats-study';
import { liverFixturesAvailable, writeLiverFixtureStudy, type LiverFixtureStudy } from '../helpers/liver-study';
import { modelReady, modelsSubset, segToLabels } from '../helpers/tumour-seg';
import { checkLabelmapPlacement, compareLabelmapValues, labelmapValues, type ExpectedLesion } from './overlay-check';

const OUT = path.resolve(__dirname, '../../test-output/ohif');
const MODEL = 'liver-aqcf';
const ready = orthancAvailable() && chromiumAvailable() && liverFixturesAvailable() && modelReady(MODEL);
const LABELS = ['Liver', 'Liver tumour'];

jest.setTimeout(300000);

const CASES = [
  { which: 'ct' as const, modality: 'CT', description: 'ABD PORTAL VENOUS' },
  { which: 'mr' as const, modality: 'MR', description: 'AX T1 VIBE FS POST' },
];

(ready ? describe.each(CASES) : describe.skip.each(CASES))('OHIF shows the liver task SEG (liver + liver tumour) on the $modality', ({ which, modality, description }) => {
  let pacs: OrthancHandle;
  let ohif: OhifServerHandle;
  let browser: Browser;
  let page: Page;
  let registry: ModelRegistry;
  let work: string;
  let st: LiverFixtureStudy;
  let seg: { sop: string; series: string; labels: Uint8Array };
  let srSeries: string;
  let loaded: LoadedSegmentation;
  const t0 = Date.now();

  beforeAll(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    for (const f of fs.readdirSync(OUT)) if (f.startsWith(`liver-${which}-`) && f.endsWith('.png')) fs.rmSync(path.join(OUT, f));
    const distDir = ensureOhifDist();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'ohif-liver-'));
    st = writeLiverFixtureStudy(which, { outDir: path.join(work, which) });
    // the task as the node runs it
    registry = new ModelRegistry({ dir: modelsSubset([MODEL]), providers: ['cpu'], intraOpThreads: 1 });
    await registry.loadAll();
    const config = parseConfig({ routes: [{ name: 'abdomen', tasks: ['liver-ct-mr'], models: { liver: MODEL } }] }, 'test');
    const route = config.routes[0];
    const study = await assembleStudy(bratsStoredInstances({ study: st.study, list: [st.series] }, 'TEST'));
    const a = liverCtMr.accept(study.availability, route, registry);
    if (!a.run) throw new Error(`liver task not accepted: ${a.reason}`);
    const res = await liverCtMr.run({
      deps: { config, registry, nodeVersion: 'test', resultsDir: work },
      job: { id: 1, studyUid: st.study.studyInstanceUid },
      route,
      study,
      plan: a.plan,
      timings: {},
      tStart: performance.now(),
    });
    const segObj = res.objects.find((o) => o.kind === 'SEG')!;
    const srObj = res.objects.find((o) => o.kind === 'SR')!;
    seg = { sop: segObj.sop, series: segObj.series, labels: segToLabels(readPart10(Buffer.from(segObj.part10)).dataset, st.series) };
    srSeries = srObj.series;
    pacs = await startOrthanc();
    for (const f of st.series.files) await pacs.uploadFile(f.part10);
    await pacs.uploadFile(segObj.part10);
    await pacs.uploadFile(srObj.part10);
    ohif = await startOhifServer({ orthancUrl: pacs.httpUrl, distDir });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  });

  afterAll(async () => {
    await browser?.close();
    await ohif?.stop();
    await pacs?.stop();
    await registry?.close();
    if (work) fs.rmSync(work, { recursive: true, force: true });
    // eslint-disable-next-line no-console
    console.log(`OHIF liver SEG test (${modality}): ${((Date.now() - t0) / 1000).toFixed(1)} s; screenshots in ${OUT}`);
  });

  test('the study lists the source series, the SEG and the SR, the SEG named with the liver volume', async () => {
    await openStudy(page, ohif.url, st.study.studyInstanceUid);
    const bySeries = new Map((await displaySets(page)).map((d) => [d.seriesInstanceUid, d]));
    expect(bySeries.get(st.series.seriesInstanceUid)?.modality).toBe(modality);
    expect(bySeries.get(seg.series)?.modality).toBe('SEG');
    expect(bySeries.get(srSeries)?.modality).toBe('SR');
    const thumbs = (await thumbnailTexts(page)).join('\n');
    expect(thumbs).toMatch(/AI liver SEG \d+\.\d mL, \d+ tumour\(s\)/);
    expect(thumbs).toContain(description);
    await page.screenshot({ path: path.join(OUT, `liver-${which}-study-opened.png`) });
  });

  test('loading the SEG shows the two segments by name in the segmentation panel', async () => {
    await dismissFirstRunDialogs(page);
    loaded = await loadSegFromThumbnail(page, 'AI liver SEG');
    expect(loaded.segmentLabels).toEqual(LABELS);
    const panel = await segmentationPanelText(page);
    for (const l of LABELS) expect(panel).toContain(l);
    await page.screenshot({ path: path.join(OUT, `liver-${which}-seg-loaded-panel.png`) });
  });

  test('the viewer holds the liver and the tumours on their own source slices, pixel for pixel and by segment', async () => {
    const g = st.series.volume.geometry;
    const ppf = g.rows * g.columns;
    const exp: ExpectedLesion = {
      slices: st.series.volume.sliceSources.map((s) => ({ sopInstanceUid: s.sopInstanceUid, frameNumber: 1 })),
      rows: g.rows,
      columns: g.columns,
      mask: seg.labels,
    };
    expect(loaded.slices).toHaveLength(g.slices);
    expect(checkLabelmapPlacement(loaded, exp)).toEqual([]);
    const { problems, slicesWith } = compareLabelmapValues(await labelmapValues(page), exp.slices, seg.labels, ppf, [1, 2]);
    expect(problems).toEqual([]);
    expect(slicesWith).toBeGreaterThan(5); // the model found a liver on most of the 18 (CT) / 20 (MRI) slices
  });

  test('screenshot: the slice with the most liver, the segments drawn over the image', async () => {
    const g = st.series.volume.geometry;
    const ppf = g.rows * g.columns;
    let best = 0;
    let bestN = -1;
    for (let z = 0; z < g.slices; z++) {
      const n = seg.labels.subarray(z * ppf, (z + 1) * ppf).reduce((a, b) => a + (b ? 1 : 0), 0);
      if (n > bestN) [best, bestN] = [z, n];
    }
    const src = st.series.volume.sliceSources[best];
    const placement = await showInstance(page, src.sopInstanceUid, [], 1500);
    expect(placement.shownSopInstanceUid).toBe(src.sopInstanceUid);
    const file = path.join(OUT, `liver-${which}-slice${best}.png`);
    await page.screenshot({ path: file });
    expect(fs.statSync(file).size).toBeGreaterThan(10000);
  });
});
