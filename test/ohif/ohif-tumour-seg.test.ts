/**
 * The brain tumour SEG (src/results/tumour.ts) in the real OHIF viewer (v3.13.2, headless Chromium):
 * a BraTS 2018 TEST-split case written as a clinical DICOM study (FLAIR 256², T1, T1C, T2 240², 30 x
 * 5 mm; test/helpers/brats-study.ts) is stored in Orthanc with the three-segment SEG (written by the
 * node's writer from the expert labels, standing in for a prediction) and the SR. Loading the SEG
 * shows the three segments with their labels in the panel, and the viewer's labelmap holds each
 * sub-region, voxel for voxel and by segment number, on its source slice. Screenshots (not
 * committed): test-output/ohif/tumour-*.png.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { formatMl, writeTumourResults, type TumourResults } from '../../src/results';
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
import { bratsCaseAvailable, writeBratsStudy, type BratsSeries, type BratsStudy } from '../helpers/brats-study';
import { deployment, provenanceFor } from '../results/fixtures';
import { checkLabelmapPlacement, compareLabelmapValues, labelmapValues, type ExpectedLesion } from './overlay-check';

const OUT = path.resolve(__dirname, '../../test-output/ohif');
const CASE = 'Brats18_TCIA02_370_1'; // TEST split
const ready = orthancAvailable() && chromiumAvailable() && bratsCaseAvailable(CASE);
const LABELS = ['Necrotic / non-enhancing tumour core', 'Peritumoural oedema', 'Enhancing tumour'];

jest.setTimeout(300000);

(ready ? describe : describe.skip)(`OHIF shows the three-segment tumour SEG on BraTS ${CASE}`, () => {
  let pacs: OrthancHandle;
  let ohif: OhifServerHandle;
  let browser: Browser;
  let page: Page;
  let st: BratsStudy;
  let flair: BratsSeries;
  let res: TumourResults;
  let loaded: LoadedSegmentation;
  const t0 = Date.now();

  beforeAll(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    for (const f of fs.readdirSync(OUT)) if (f.startsWith('tumour-') && f.endsWith('.png')) fs.rmSync(path.join(OUT, f));
    const distDir = ensureOhifDist();
    st = writeBratsStudy({ caseId: CASE, matrix: { FLAIR: 256 }, instanceOrder: 'shuffled' });
    flair = st.series.FLAIR as BratsSeries;
    res = writeTumourResults({
      source: flair.volume,
      labels: flair.truth,
      sourceHeaders: flair.headers,
      sequences: { present: ['FLAIR', 'T1', 'T1C', 'T2'], missing: [] },
      algorithmName: 'shaspec-brats',
      algorithmVersion: '0.1.0',
      provenance: { ...provenanceFor(st.list.map((s) => s.seriesInstanceUid)), modelName: 'shaspec-brats', modelVersion: '0.1.0' },
      deployment,
    });
    pacs = await startOrthanc();
    for (const s of st.list) for (const f of s.files) await pacs.uploadFile(f.part10);
    await pacs.uploadFile(res.seg.part10);
    await pacs.uploadFile(res.sr.part10);
    ohif = await startOhifServer({ orthancUrl: pacs.httpUrl, distDir });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  });

  afterAll(async () => {
    await browser?.close();
    await ohif?.stop();
    await pacs?.stop();
    // eslint-disable-next-line no-console
    console.log(`OHIF tumour SEG test: ${((Date.now() - t0) / 1000).toFixed(1)} s; screenshots in ${OUT}`);
  });

  test('the study lists the four MR series, the SEG and the SR (whole-tumour volume in both descriptions)', async () => {
    await openStudy(page, ohif.url, st.study.studyInstanceUid);
    const sets = await displaySets(page);
    const bySeries = new Map(sets.map((d) => [d.seriesInstanceUid, d]));
    for (const s of st.list) expect(bySeries.get(s.seriesInstanceUid)?.modality).toBe('MR');
    expect(bySeries.get(res.seg.seriesInstanceUid)?.modality).toBe('SEG');
    expect(bySeries.get(res.sr.seriesInstanceUid)?.modality).toBe('SR');
    const thumbs = (await thumbnailTexts(page)).join('\n');
    expect(thumbs).toContain(`AI tumour SEG WT ${formatMl(res.volumes.wholeTumour)}`);
    expect(thumbs).toContain('AX T2 FLAIR');
    expect(thumbs).toContain('AX T1 SE +C');
    await page.screenshot({ path: path.join(OUT, 'tumour-study-opened.png') });
  });

  test('loading the SEG shows three segments with their labels in the segmentation panel', async () => {
    await dismissFirstRunDialogs(page); // the tour can come up late on a loaded machine
    loaded = await loadSegFromThumbnail(page, 'AI tumour SEG');
    expect(loaded.segmentLabels).toEqual(LABELS);
    const panel = await segmentationPanelText(page);
    for (const l of LABELS) expect(panel).toContain(l);
    await page.screenshot({ path: path.join(OUT, 'tumour-seg-loaded-panel.png') });
  });

  test('the viewer holds each sub-region on its own source slice, voxel for voxel and by segment number', async () => {
    const g = flair.volume.geometry;
    const ppf = g.rows * g.columns;
    const exp: ExpectedLesion = {
      slices: flair.volume.sliceSources.map((s) => ({ sopInstanceUid: s.sopInstanceUid, frameNumber: 1 })),
      rows: g.rows,
      columns: g.columns,
      mask: flair.truth,
    };
    expect(loaded.slices).toHaveLength(g.slices); // empty frames too
    expect(checkLabelmapPlacement(loaded, exp)).toEqual([]); // the union (whole tumour)
    const { problems, slicesWith: tumourSlices } = compareLabelmapValues(await labelmapValues(page), exp.slices, flair.truth, ppf, [1, 2, 3]);
    expect(problems).toEqual([]);
    expect(tumourSlices).toBeGreaterThan(10);
  });

  test('screenshot: the slice with the most tumour, the three colours drawn over the FLAIR', async () => {
    const g = flair.volume.geometry;
    const ppf = g.rows * g.columns;
    let best = 0;
    let bestN = -1;
    for (let z = 0; z < g.slices; z++) {
      const n = flair.truth.subarray(z * ppf, (z + 1) * ppf).reduce((a, b) => a + (b ? 1 : 0), 0);
      if (n > bestN) [best, bestN] = [z, n];
    }
    const src = flair.volume.sliceSources[best];
    const placement = await showInstance(page, src.sopInstanceUid, [], 1500);
    expect(placement.shownSopInstanceUid).toBe(src.sopInstanceUid);
    const file = path.join(OUT, `tumour-slice${best}.png`);
    await page.screenshot({ path: file });
    expect(fs.statSync(file).size).toBeGreaterThan(10000);
  });
});
