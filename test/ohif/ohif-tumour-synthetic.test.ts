/**
 * Issue 15 in the real OHIF viewer (v3.13.2, headless Chromium): the brain-tumour task's synthetic T1C, synthetic
 * FLAIR and fused series (Secondary Capture, one instance per reference slice; src/results/synthetic-mr.ts) for the
 * BraTS TEST case Brats18_TCIA02_370_1 with T1C and FLAIR missing, stored in Orthanc with the acquired T1 and T2, the
 * SEG and the SR:
 *  - the study browser lists the three series with their "AI-generated, not acquired" / FUSED descriptions as image
 *    series (modality MR, from the source), next to the acquired T1 and T2, the SEG and the SR;
 *  - each opens in the viewport as a stack of exactly its instances, and stack index i lies at the position of the
 *    acquired reference (T2) stack index i as the viewer itself holds it, so it scrolls with the acquired series
 *    (the check is run against the reversed order too and must report it wrong).
 * The task runs in-process (the transport is test/e2e/brain-tumour-synthesis-e2e.test.ts); models: brats-shaspec and
 * the trained brats-m2dn / brats-nslf when committed, else the tiny stand-ins (the log says which).
 * Screenshots (not committed): test-output/ohif/tumour-synthetic-*.png.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { parseConfig } from '../../src/config/load';
import { readPart10, str } from '../../src/dicom/dcmjs';
import { ModelRegistry } from '../../src/models/registry';
import { brainTumourMr } from '../../src/pipelines/brain-tumour-mr';
import type { TaskRunResult } from '../../src/pipelines/task';
import { assembleStudy } from '../../src/study';
import {
  chromiumAvailable,
  dismissFirstRunDialogs,
  displaySets,
  ensureOhifDist,
  launchChromium,
  openStudy,
  sopUidOfImageId,
  startOhifServer,
  thumbnailTexts,
  type OhifServerHandle,
} from '../harness/ohif';
import { orthancAvailable, startOrthanc, type OrthancHandle } from '../harness/orthanc';
import { bratsCaseAvailable, bratsStoredInstances, writeBratsStudy, type BratsStudy } from '../helpers/brats-study';
import { synthesisModelsDir } from '../helpers/synthesis-models';
import { modelReady } from '../helpers/tumour-seg';

const OUT = path.resolve(__dirname, '../../test-output/ohif');
const CASE = 'Brats18_TCIA02_370_1'; // TEST split
const ready = orthancAvailable() && chromiumAvailable() && bratsCaseAvailable(CASE) && modelReady('brats-shaspec');
const SYN_T1C = 'SYNTHETIC T1C (AI-generated, not acquired) brats-m2dn';
const SYN_FLAIR = 'SYNTHETIC FLAIR (AI-generated, not acquired) brats-m2dn';
const FUSED = 'FUSED T1+T2 weighted avg brats-nslf (AI, not acquired)';

jest.setTimeout(600000);

type Vec3 = [number, number, number];

async function viewportStack(page: Page): Promise<{ sopUids: string[]; positions: Array<Vec3 | null> }> {
  const r = await page.evaluate(() => {
    const w = globalThis as unknown as {
      cornerstone: {
        getEnabledElements(): Array<{ viewport: { getImageIds(): string[] } }>;
        metaData: { get(type: string, id: string): { imagePositionPatient?: number[] } | undefined };
      };
    };
    const ids = w.cornerstone.getEnabledElements()[0].viewport.getImageIds();
    return { ids, positions: ids.map((id) => (w.cornerstone.metaData.get('imagePlaneModule', id)?.imagePositionPatient ?? null) as number[] | null) };
  });
  return { sopUids: r.ids.map(sopUidOfImageId), positions: r.positions as Array<Vec3 | null> };
}

async function openSeriesThumbnail(page: Page, text: string, sopUids: Set<string>, timeoutMs = 90000): Promise<void> {
  await page.locator('[data-cy="study-browser-thumbnail"]').filter({ hasText: text }).first().dblclick();
  await page.waitForFunction(
    (uids) => {
      const w = globalThis as unknown as { cornerstone: { getEnabledElements(): Array<{ viewport: { getImageIds?(): string[] } }> } };
      const ids = w.cornerstone.getEnabledElements()[0]?.viewport.getImageIds?.() ?? [];
      return ids.length === uids.length && ids.every((id) => uids.some((u) => id.includes(`/instances/${u}/`)));
    },
    [...sopUids],
    { timeout: timeoutMs },
  );
  await page.waitForTimeout(1500);
}

function positionProblems(got: Array<Vec3 | null>, expected: Array<Vec3 | null>, what: string, tol = 0.01): string[] {
  const problems: string[] = [];
  if (got.length !== expected.length) problems.push(`${what}: ${got.length} positions, expected ${expected.length}`);
  got.forEach((p, i) => {
    const e = expected[i];
    if (!p || !e) problems.push(`${what}[${i}]: no ImagePositionPatient in the viewer`);
    else if (p.some((v, k) => Math.abs(v - e[k]) > tol)) problems.push(`${what}[${i}]: ${p.map((v) => v.toFixed(2)).join('\\')} ≠ ${e.map((v) => v.toFixed(2)).join('\\')}`);
  });
  return problems;
}

(ready ? describe : describe.skip)(`OHIF shows the synthetic T1C / FLAIR and fused series of BraTS ${CASE}`, () => {
  let pacs: OrthancHandle;
  let ohif: OhifServerHandle;
  let browser: Browser;
  let page: Page;
  let st: BratsStudy;
  let result: TaskRunResult;
  let registry: ModelRegistry;
  let work: string;
  let which = '';
  const pageErrors: string[] = [];
  const t0 = Date.now();

  beforeAll(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    for (const f of fs.readdirSync(OUT)) if (f.startsWith('tumour-synthetic-') && f.endsWith('.png')) fs.rmSync(path.join(OUT, f));
    const distDir = ensureOhifDist();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'ohif-synth-'));
    const models = synthesisModelsDir({ real: true });
    which = `m2dn ${models.m2dn}, nslf ${models.nslf}`;
    registry = new ModelRegistry({ dir: models.dir, providers: ['cpu'], intraOpThreads: 1 });
    await registry.loadAll();
    st = writeBratsStudy({ caseId: CASE, sequences: ['T1', 'T2'], matrix: { T2: 256 }, slices: 16, instanceOrder: 'shuffled', outDir: path.join(work, 'study') });
    const instances = bratsStoredInstances(st);
    const config = parseConfig({ nodeName: 'ohif-synth-test', brainTumour: { synthesis: { budgetSeconds: 600 } } }, 'test');
    const route = parseConfig({ routes: [{ name: 'tumour', tasks: ['brain-tumour-mr'], destinations: [] }] }, 'test').routes[0];
    const assembled = await assembleStudy(instances);
    const a = brainTumourMr.accept(assembled.availability, route, registry);
    if (!a.run) throw new Error(`not accepted: ${a.reason}`);
    result = await brainTumourMr.run({
      deps: { config, registry, nodeVersion: 'test', resultsDir: work },
      job: { id: 1, studyUid: st.study.studyInstanceUid },
      route,
      study: assembled,
      plan: a.plan,
      timings: {},
      tStart: performance.now(),
    });
    pacs = await startOrthanc();
    for (const s of st.list) for (const f of s.files) await pacs.uploadFile(f.part10);
    for (const o of result.objects) await pacs.uploadFile(o.part10);
    ohif = await startOhifServer({ orthancUrl: pacs.httpUrl, distDir });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on('pageerror', (e) => pageErrors.push(e.message));
  });

  afterAll(async () => {
    await browser?.close();
    await ohif?.stop();
    await pacs?.stop();
    await registry?.close();
    if (work) fs.rmSync(work, { recursive: true, force: true });
    // eslint-disable-next-line no-console
    console.log(`OHIF synthetic/fused series (${which}): ${((Date.now() - t0) / 1000).toFixed(1)} s; page errors: ${pageErrors.length ? pageErrors.join(' | ') : 'none'}; screenshots in ${OUT}`);
  });

  const seriesOf = (description: string): { uid: string; sops: Set<string> } => {
    const objs = result.objects.filter((o) => String(str(readPart10(o.part10).dataset, 'SeriesDescription')) === description);
    return { uid: objs[0]?.series ?? '', sops: new Set(objs.map((o) => o.sop)) };
  };

  test('the study browser lists the synthetic T1C, synthetic FLAIR and fused series as MR image series', async () => {
    await openStudy(page, ohif.url, st.study.studyInstanceUid);
    const sets = await displaySets(page);
    const byUid = new Map(sets.map((d) => [d.seriesInstanceUid, d]));
    for (const d of [SYN_T1C, SYN_FLAIR, FUSED]) {
      const s = seriesOf(d);
      expect(s.sops.size).toBe(16);
      expect(byUid.get(s.uid)?.modality).toBe('MR');
      expect(byUid.get(s.uid)?.seriesDescription).toBe(d);
    }
    for (const s of st.list) expect(byUid.get(s.seriesInstanceUid)?.modality).toBe('MR');
    expect(sets.filter((d) => d.modality === 'SEG')).toHaveLength(1);
    expect(sets.filter((d) => d.modality === 'SR')).toHaveLength(1);
    const thumbs = (await thumbnailTexts(page)).join('\n');
    for (const d of [SYN_T1C, SYN_FLAIR, FUSED]) expect(thumbs).toContain(d);
    await page.screenshot({ path: path.join(OUT, 'tumour-synthetic-study-browser.png') });
  });

  test('each opens as a stack of its own instances, index i at the acquired T2 stack index i (scrolls with it)', async () => {
    await dismissFirstRunDialogs(page); // the tour can come up late on a loaded machine
    const t2 = st.series.T2!;
    await openSeriesThumbnail(page, 'AX T2', new Set(t2.files.map((f) => f.sopInstanceUid)));
    const refStack = await viewportStack(page);
    const truth = new Map(t2.files.map((f) => [f.sopInstanceUid, t2.volume.geometry.slicePositions[f.sliceIndex] as Vec3]));
    expect(positionProblems(refStack.positions, refStack.sopUids.map((u) => truth.get(u) ?? null), 'T2 stack vs written')).toEqual([]);
    for (const [d, shot] of [
      [SYN_T1C, 'tumour-synthetic-t1c.png'],
      [SYN_FLAIR, 'tumour-synthetic-flair.png'],
      [FUSED, 'tumour-synthetic-fused.png'],
    ] as const) {
      const s = seriesOf(d);
      await openSeriesThumbnail(page, d, s.sops);
      const stack = await viewportStack(page);
      expect(new Set(stack.sopUids)).toEqual(s.sops);
      expect(positionProblems(stack.positions, refStack.positions, `${d} vs T2 stack`)).toEqual([]);
      expect(positionProblems(stack.positions, [...refStack.positions].reverse(), 'reversed').length).toBeGreaterThan(0);
      await page.screenshot({ path: path.join(OUT, shot) });
    }
  });
});
