/**
 * The node's DICOM SEG, as the real OHIF viewer (v3.13.2, headless Debian Chromium) shows it: the
 * study lists the SEG and the overlay SC series, loading the SEG shows the segment "Ischaemic lesion",
 * and the overlay sits on the lesion: on the lesion's slices, at its place, and on no other slice.
 * A SEG whose frames are misordered in z (what a writer that maps frames by list order produces)
 * is reported as misplaced by the same checks, so they can fail.
 *
 * Peers: Orthanc + DICOMweb plugin (test/harness/orthanc.ts), the OHIF dist served with a DICOMweb
 * proxy and Chromium via playwright-core (test/harness/ohif.ts). Screenshots: test-output/ohif/.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { buildSeg, ischaemicLesionSegment, writeOverlaySc, type SegResult, type ScSeriesResult } from '../../src/results';
import {
  chromiumAvailable,
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
import { deployment, provenanceFor } from '../results/fixtures';
import { checkLabelmapPlacement, checkRenderedOverlay, type ExpectedLesion } from './overlay-check';
import { LESION, LESION_SLICES, SLICES, reversedInZ, worldOf, writeViewerPhantom, type PhantomStudyForViewer } from './phantom';
import { decodePng } from './png';

const OUT = path.resolve(__dirname, '../../test-output/ohif');
const ready = orthancAvailable() && chromiumAvailable();
/** A lesion slice and two slices without lesion (one of them where a z-reversed SEG puts it). */
const LESION_SLICE = 5;
const MIRROR_SLICE = SLICES - 1 - LESION_SLICE; // 14: empty, but the reversed SEG's lesion lands here
const EMPTY_SLICE = 0;

jest.setTimeout(240000);

interface Case {
  phantom: PhantomStudyForViewer;
  seg: SegResult;
  overlay: ScSeriesResult;
}

function buildCase(patientId: string, maskForSeg: (m: Uint8Array) => Uint8Array): Case {
  const phantom = writeViewerPhantom({ patientId }); // one patient a case: OHIF lists a patient's other studies
  const prov = provenanceFor([phantom.dwi.seriesInstanceUid, phantom.adc.seriesInstanceUid]);
  const src = { source: phantom.dwi.volume, sourceHeaders: phantom.dwi.headers, provenance: prov, deployment };
  const seg = buildSeg({ ...src, mask: maskForSeg(phantom.mask), segments: [ischaemicLesionSegment('dual-encoder-25d', '1.2.0')] });
  const overlay = writeOverlaySc({ image: phantom.dwi.volume, mask: phantom.mask, sourceHeaders: phantom.dwi.headers, provenance: prov, deployment });
  return { phantom, seg, overlay };
}

async function store(pacs: OrthancHandle, c: Case): Promise<void> {
  for (const f of [...c.phantom.dwi.files, ...c.phantom.adc.files]) await pacs.uploadFile(f.part10);
  await pacs.uploadFile(c.seg.part10);
  for (const i of c.overlay.instances) await pacs.uploadFile(i.part10);
}

function expected(c: Case): ExpectedLesion {
  return {
    sliceSops: c.phantom.dwi.volume.sliceSources.map((s) => s.sopInstanceUid),
    lesionSlices: LESION_SLICES,
    centre: { row: LESION.row, column: LESION.column },
    radius: LESION.radius,
  };
}

/** Show slice z, screenshot the page into test-output/ohif/<name>.png, check the rendered overlay. */
async function renderedCheck(page: Page, c: Case, z: number, name: string): Promise<ReturnType<typeof checkRenderedOverlay>> {
  const sop = c.phantom.dwi.volume.sliceSources[z].sopInstanceUid;
  const placement = await showInstance(page, sop, [worldOf(z, LESION.row, LESION.column), worldOf(z, LESION.row, LESION.column + LESION.radius)]);
  expect(placement.shownSopInstanceUid).toBe(sop);
  const file = path.join(OUT, `${name}.png`);
  const png = await page.screenshot({ path: file });
  return checkRenderedOverlay(decodePng(png), placement, LESION_SLICES.includes(z), `slice ${z} (${name})`);
}

(ready ? describe : describe.skip)('OHIF viewer shows the node SEG on the lesion', () => {
  let pacs: OrthancHandle;
  let ohif: OhifServerHandle;
  let browser: Browser;
  let page: Page;
  let good: Case;
  let misordered: Case;
  let loaded: LoadedSegmentation;
  const t0 = Date.now();

  beforeAll(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    const distDir = ensureOhifDist(); // npm pack once into .cache/ohif/, then reused
    pacs = await startOrthanc();
    good = buildCase('OHIFPH01', (m) => m);
    misordered = buildCase('OHIFPH02', reversedInZ);
    await store(pacs, good);
    await store(pacs, misordered);
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

  test('the study lists the DWI, ADC, SEG and overlay SC series', async () => {
    await openStudy(page, ohif.url, good.phantom.study.studyInstanceUid);
    const sets = await displaySets(page);
    const bySeries = new Map(sets.map((d) => [d.seriesInstanceUid, d.modality]));
    expect(bySeries.get(good.phantom.dwi.seriesInstanceUid)).toBe('MR');
    expect(bySeries.get(good.phantom.adc.seriesInstanceUid)).toBe('MR');
    expect(bySeries.get(good.seg.seriesInstanceUid)).toBe('SEG');
    expect(bySeries.get(good.overlay.seriesInstanceUid)).toBe('OT');
    const thumbs = (await thumbnailTexts(page)).join('\n');
    expect(thumbs).toMatch(/AI lesion SEG \d+(\.\d)? mL/);
    expect(thumbs).toMatch(/AI lesion overlay/);
    await page.screenshot({ path: path.join(OUT, 'study-opened.png') });
  });

  test('loading the SEG shows the segment "Ischaemic lesion" in the segmentation panel', async () => {
    loaded = await loadSegFromThumbnail(page, 'AI lesion SEG');
    expect(loaded.segmentLabels).toEqual(['Ischaemic lesion']);
    expect(await segmentationPanelText(page)).toContain('Ischaemic lesion');
    await page.screenshot({ path: path.join(OUT, 'seg-loaded-panel.png') });
  });

  test('the viewer holds the segment on the lesion slices, centred on the lesion, and nothing elsewhere', () => {
    expect(loaded.slices).toHaveLength(SLICES); // empty frames are there too
    expect(checkLabelmapPlacement(loaded, expected(good))).toEqual([]);
  });

  test('the rendered overlay covers the lesion on a lesion slice and is absent on slices without lesion', async () => {
    const onLesion = await renderedCheck(page, good, LESION_SLICE, `correct-seg-slice${LESION_SLICE}-lesion`);
    expect(onLesion.problems).toEqual([]);
    expect(onLesion.inside).toBeGreaterThan(100); // the disk is ~60 px across on this canvas
    for (const z of [MIRROR_SLICE, EMPTY_SLICE]) {
      const off = await renderedCheck(page, good, z, `correct-seg-slice${z}-no-lesion`);
      expect(off.problems).toEqual([]);
    }
  });

  test('a SEG with frames misordered in z is reported as misplaced by both checks', async () => {
    await openStudy(page, ohif.url, misordered.phantom.study.studyInstanceUid);
    const wrong = await loadSegFromThumbnail(page, 'AI lesion SEG');
    expect(wrong.segmentLabels).toEqual(['Ischaemic lesion']);
    const stateProblems = checkLabelmapPlacement(wrong, expected(misordered));
    expect(stateProblems).toEqual(
      expect.arrayContaining([
        `slice ${LESION_SLICE}: lesion slice has no segment pixels`,
        expect.stringMatching(new RegExp(`^slice ${MIRROR_SLICE}: \\d+ segment pixels on a slice without lesion`)),
      ]),
    );
    const onLesion = await renderedCheck(page, misordered, LESION_SLICE, `misordered-seg-slice${LESION_SLICE}-lesion`);
    expect(onLesion.problems.join('\n')).toMatch(/only 0 overlay pixels inside the lesion/);
    const onMirror = await renderedCheck(page, misordered, MIRROR_SLICE, `misordered-seg-slice${MIRROR_SLICE}-no-lesion`);
    expect(onMirror.problems.join('\n')).toMatch(/overlay pixels on a slice without lesion/);
  });
});
