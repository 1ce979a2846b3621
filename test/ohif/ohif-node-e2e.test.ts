/**
 * The whole node, seen in OHIF: Orthanc sends a phantom DWI+ADC study to the node by C-STORE
 * (built by buildNode, as `npm start` runs it, with the committed default models), the node
 * sends its SEG (and overlay SC, SR) back to Orthanc, and OHIF shows the node's segmentation on the
 * lesion: OHIF's labelmap equals the SEG's frames placed by their referenced SOPInstanceUID, overlaps
 * the phantom's true lesion, and is drawn on screen where the SEG says.
 *
 * Skipped when the model file or a peer is missing. Screenshots: test-output/ohif/node-*.png.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { num, readPart10, seq, str, type NaturalDataset } from '../../src/dicom/dcmjs';
import { unpackBits } from '../../src/results/seg';
import { chromiumAvailable, ensureOhifDist, launchChromium, loadSegFromThumbnail, openStudy, showInstance, startOhifServer, thumbnailTexts, type OhifServerHandle } from '../harness/ohif';
import { orthancAvailable, type OrthancHandle } from '../harness/orthanc';
import { startNodeWithOrthanc, waitFor, type TestNode } from '../helpers/node';
import { loadPhantom, newStudyContext, phantomsRoot, writePhantomStudy, type PhantomStudy } from '../helpers/series-writer';
import { checkLabelmapPlacement, checkRenderedOverlay, lesionSlicesOf, type ExpectedLesion } from './overlay-check';
import { pixelCentreWorld } from './phantom';
import { decodePng } from './png';

const OUT = path.resolve(__dirname, '../../test-output/ohif');
const MODELS = path.resolve(__dirname, '../../models');
const PHANTOM = 'test-1037-lesion';
const ready =
  orthancAvailable() &&
  chromiumAvailable() &&
  fs.existsSync(path.join(MODELS, 'shaspec-realbg.json')) &&
  fs.existsSync(path.join(phantomsRoot(), PHANTOM, 'meta.json'));
const SEG_CLASS = '1.2.840.10008.5.1.4.1.1.66.4';

jest.setTimeout(300000);

/** The SEG's frames as a mask on the source grid, each frame placed by the instance it references. */
function segMaskByReference(seg: NaturalDataset, study: PhantomStudy): Uint8Array {
  const dwi = study.dwi as NonNullable<PhantomStudy['dwi']>;
  const sliceOf = new Map(dwi.files.map((f) => [f.sopInstanceUid, f.sliceIndex]));
  const rows = num(seg, 'Rows') as number;
  const cols = num(seg, 'Columns') as number;
  const frames = num(seg, 'NumberOfFrames') as number;
  const bits = unpackBits(new Uint8Array((seg.PixelData as ArrayBuffer[])[0]), frames, rows * cols);
  const out = new Uint8Array(study.meta.slices * rows * cols);
  seq(seg, 'PerFrameFunctionalGroupsSequence').forEach((fg, i) => {
    const src = seq(seq(fg, 'DerivationImageSequence')[0], 'SourceImageSequence')[0];
    const z = sliceOf.get(String(str(src, 'ReferencedSOPInstanceUID')));
    if (z === undefined) throw new Error('SEG frame references an instance outside the DWI series');
    out.set(bits[i], z * rows * cols);
  });
  return out;
}

function dice(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] && b[i]) inter++;
    if (a[i]) n++;
    if (b[i]) n++;
  }
  return n === 0 ? 1 : (2 * inter) / n;
}

(ready ? describe : describe.skip)('the node end to end, seen in OHIF', () => {
  let pacs: OrthancHandle;
  let node: TestNode;
  let ohif: OhifServerHandle;
  let browser: Browser;
  let page: Page;
  const t0 = Date.now();

  beforeAll(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    const distDir = ensureOhifDist();
    ({ node, pacs } = await startNodeWithOrthanc({ overlaySc: true, modelsDir: MODELS }));
    ohif = await startOhifServer({ orthancUrl: pacs.httpUrl, distDir });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  });

  afterAll(async () => {
    await browser?.close();
    await ohif?.stop();
    await node?.stop();
    await pacs?.stop();
    // eslint-disable-next-line no-console
    console.log(`OHIF node e2e: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });

  test(`${PHANTOM}: Orthanc → node → SEG back in Orthanc → OHIF draws the node's lesion where the SEG and the phantom put it`, async () => {
    const study = writePhantomStudy(loadPhantom(PHANTOM), { include: ['dwi', 'adc'], study: newStudyContext({ patientId: 'OHIFE2E1' }) });
    const dwi = study.dwi as NonNullable<PhantomStudy['dwi']>;
    for (const s of [dwi, study.adc]) for (const f of s?.files ?? []) await pacs.uploadFile(f.part10);
    await pacs.storeToModality('NODE', await pacs.listInstances());

    // wait for the SEG to arrive back in Orthanc (node: quiet period, inference, egress)
    let segBuf: Buffer | undefined;
    await waitFor(
      async () => {
        const all = await pacs.get<Array<{ ID: string; MainDicomTags: { SOPInstanceUID?: string } }>>('/instances?expand');
        for (const i of all) {
          const tags = await pacs.get<Record<string, string>>(`/instances/${i.ID}/simplified-tags`);
          if (tags.SOPClassUID === SEG_CLASS) {
            segBuf = Buffer.from(await (await fetch(`${pacs.httpUrl}/instances/${i.ID}/file`)).arrayBuffer());
            return true;
          }
        }
        return false;
      },
      180000,
      'the SEG back in Orthanc',
    );
    const seg = readPart10(segBuf as Buffer).dataset;
    expect(str(seg, 'StudyInstanceUID')).toBe(study.study.studyInstanceUid);
    const nodeMask = segMaskByReference(seg, study);
    const truth = study.mask as Uint8Array;
    const d = dice(nodeMask, truth);
    // eslint-disable-next-line no-console
    console.log(`node SEG vs phantom truth: Dice ${d.toFixed(3)}`);
    expect(d).toBeGreaterThan(0.5);

    await openStudy(page, ohif.url, study.study.studyInstanceUid);
    const thumbs = (await thumbnailTexts(page)).join('\n');
    expect(thumbs).toMatch(/AI lesion SEG/);
    expect(thumbs).toMatch(/AI lesion overlay/);
    const loaded = await loadSegFromThumbnail(page, 'AI lesion SEG');
    expect(loaded.segmentLabels).toEqual(['Ischaemic lesion']);

    const g = dwi.volume.geometry;
    const exp: ExpectedLesion = {
      slices: dwi.volume.sliceSources.map((s) => ({ sopInstanceUid: s.sopInstanceUid, frameNumber: 1 })),
      rows: g.rows,
      columns: g.columns,
      mask: nodeMask,
    };
    // OHIF's labelmap = the SEG, frame by frame on the instance each frame references
    expect(checkLabelmapPlacement(loaded, exp)).toEqual([]);
    // ... and it overlaps the true lesion as much as the SEG does
    const viewerMask = new Uint8Array(truth.length);
    const zOf = new Map(exp.slices.map((s, z) => [s.sopInstanceUid, z]));
    for (const sl of loaded.slices) {
      const z = zOf.get(sl.referencedSopInstanceUid);
      if (z !== undefined) for (const i of sl.indices) viewerMask[z * g.rows * g.columns + i] = 1;
    }
    expect(dice(viewerMask, truth)).toBeCloseTo(d, 6);

    // on screen: the slice where the node found the most lesion
    const ppf = g.rows * g.columns;
    const count = (z: number): number => nodeMask.subarray(z * ppf, (z + 1) * ppf).reduce((a, b) => a + (b ? 1 : 0), 0);
    const z = lesionSlicesOf(exp).reduce((a, b) => (count(b) > count(a) ? b : a));
    const vol = dwi.volume;
    const pts = [pixelCentreWorld(vol, z, 0, 0), pixelCentreWorld(vol, z, 0, 1), pixelCentreWorld(vol, z, 1, 0)];
    const placement = await showInstance(page, vol.sliceSources[z].sopInstanceUid, pts, 1000);
    const png = await page.screenshot({ path: path.join(OUT, `node-e2e-${PHANTOM}-slice${z}.png`) });
    const r = checkRenderedOverlay(decodePng(png), placement, exp, z, `node SEG slice ${z}`);
    expect(r.problems).toEqual([]);
    expect(r.lesionPixels).toBeGreaterThan(20);
  });
});
