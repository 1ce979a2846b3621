/**
 * The real OHIF viewer (@ohif/app dist) served on 127.0.0.1 in front of an Orthanc, and Debian's
 * Chromium driven headless by playwright-core, for tests that look at what a radiologist would see.
 *
 * Why not `npm install @ohif/app`: its package.json names an @ohif/i18n version that does not exist,
 * so the install fails. The published tarball already holds the built viewer (`package/dist`), so
 * `ensureOhifDist()` fetches it once with `npm pack` into `<repo>/.cache/ohif/` (git-ignored) and
 * extracts `package/dist` there; later runs reuse it (no network).
 *
 * `startOhifServer()` serves that dist from a small node http server (recipe measured in DESIGN.md):
 *  - unknown paths fall back to index.html (OHIF routes like /viewer?StudyInstanceUIDs=…);
 *  - `.wasm` as application/wasm; COOP same-origin + COEP require-corp on every response
 *    (SharedArrayBuffer for cornerstone's decoders/workers);
 *  - `/dicom-web` and `/wado` proxied to Orthanc (same origin, so no CORS). The browser's Host header is
 *    passed on, and Orthanc's DicomWeb "Host" option is left unset, so the BulkDataURIs Orthanc returns
 *    point back through this proxy;
 *  - `/app-config.js` replaced in memory (the shipped one targets a static WADO demo server) by
 *    `ohifAppConfig(origin)`; the cached dist itself is never modified.
 *
 *   const pacs = await startOrthanc();
 *   const ohif = await startOhifServer({ orthancUrl: pacs.httpUrl });
 *   const browser = await launchChromium();
 *   const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
 *   await page.goto(`${ohif.url}/viewer?StudyInstanceUIDs=${studyUid}`);
 *   …; await browser.close(); await ohif.stop(); await pacs.stop();
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';
import { chromium, type Browser, type LaunchOptions, type Page } from 'playwright-core';

export const OHIF_VERSION = process.env.OHIF_VERSION ?? '3.13.2';
export const CHROMIUM_BIN = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

/**
 * Extra Chromium flags, on top of playwright-core's defaults (which already include
 * `--enable-unsafe-swiftshader`, `--disable-dev-shm-usage`, and `--no-sandbox` unless
 * `chromiumSandbox: true`). Measured with Debian Chromium 156 headless on a machine without a GPU:
 * WebGL2 comes up on ANGLE → Vulkan → SwiftShader with no flag at all; `--use-angle=swiftshader`
 * pins that software path so the rendered pixels do not depend on a GPU the test machine happens
 * to have, and `--enable-unsafe-swiftshader` keeps the WebGL fallback that newer Chromiums only
 * allow with it. Never pass `--disable-software-rasterizer`: it removes WebGL2 here (OHIF then
 * falls back to CPU rendering).
 */
export const CHROMIUM_ARGS: string[] = ['--use-angle=swiftshader', '--enable-unsafe-swiftshader'];

export function repoRoot(): string {
  return path.resolve(__dirname, '../..');
}

export function ohifCacheDir(): string {
  return process.env.OHIF_CACHE_DIR ?? path.join(repoRoot(), '.cache', 'ohif');
}

export function chromiumAvailable(): boolean {
  return fs.existsSync(CHROMIUM_BIN);
}

/**
 * Path of the extracted OHIF dist (index.html, bundles, wasm), fetching the package tarball with
 * `npm pack` (~50 MB, a few seconds) and extracting it the first time. Throws with the reason when
 * neither a cached dist nor the registry is available.
 */
export function ensureOhifDist(version = OHIF_VERSION): string {
  const cache = ohifCacheDir();
  const dest = path.join(cache, version);
  const dist = path.join(dest, 'package', 'dist');
  const complete = (): boolean => fs.existsSync(path.join(dist, 'index.html')) && fs.existsSync(path.join(dest, '.complete'));
  if (complete()) return dist;
  fs.mkdirSync(cache, { recursive: true });
  // Jest runs test files in parallel workers: the first one fetches and extracts, the others wait for
  // it (a second worker used to extract a half-written tarball on a fresh machine).
  return withDirLock(path.join(cache, `.lock-${version}`), () => {
    if (complete()) return dist;
    fs.mkdirSync(dest, { recursive: true });
    const tgz = path.join(cache, `ohif-app-${version}.tgz`);
    if (!fs.existsSync(tgz)) {
      // Pack into a private folder and rename, so an interrupted fetch never leaves a partial tarball.
      const tmp = fs.mkdtempSync(path.join(cache, '.pack-'));
      try {
        execFileSync('npm', ['pack', `@ohif/app@${version}`, '--pack-destination', tmp], {
          stdio: ['ignore', 'pipe', 'pipe'],
          timeout: 180000,
        });
        const packed = path.join(tmp, `ohif-app-${version}.tgz`);
        if (!fs.existsSync(packed)) throw new Error(`npm pack @ohif/app@${version} did not produce ${packed}`);
        fs.renameSync(packed, tgz);
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    }
    fs.rmSync(path.join(dest, 'package'), { recursive: true, force: true });
    execFileSync('tar', ['-xzf', tgz, '-C', dest, 'package/dist'], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 180000 });
    if (!fs.existsSync(path.join(dist, 'index.html'))) throw new Error(`${tgz} has no package/dist/index.html`);
    fs.writeFileSync(path.join(dest, '.complete'), new Date().toISOString());
    return dist;
  });
}

/** Runs fn while holding a lock folder (mkdir is atomic); waits for another holder, breaks a stale one. */
function withDirLock<T>(lockDir: string, fn: () => T, timeoutMs = 10 * 60_000): T {
  const deadline = Date.now() + timeoutMs;
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      fs.mkdirSync(lockDir);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let age = 0;
      try {
        age = Date.now() - fs.statSync(lockDir).mtimeMs;
      } catch {
        continue; // released between mkdir and stat
      }
      if (age > timeoutMs) {
        fs.rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lockDir}`);
      Atomics.wait(sleeper, 0, 0, 500);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lockDir, { recursive: true, force: true });
  }
}

/** OHIF app-config.js for a same-origin DICOMweb proxy in front of Orthanc (see DESIGN.md). */
export function ohifAppConfig(origin: string): string {
  const config = {
    routerBasename: '/',
    extensions: [],
    modes: [],
    customizationService: {},
    showStudyList: true,
    maxNumberOfWebWorkers: 2,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: false,
    showLoadingIndicator: true,
    strictZSpacingForVolumeViewport: true,
    investigationalUseDialog: { option: 'never' },
    defaultDataSourceName: 'dicomweb',
    dataSources: [
      {
        namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
        sourceName: 'dicomweb',
        configuration: {
          friendlyName: 'Orthanc (test)',
          name: 'orthanc',
          wadoUriRoot: `${origin}/wado`,
          qidoRoot: `${origin}/dicom-web`,
          wadoRoot: `${origin}/dicom-web`,
          qidoSupportsIncludeField: false,
          supportsReject: false,
          imageRendering: 'wadors',
          thumbnailRendering: 'wadors',
          enableStudyLazyLoad: true,
          supportsFuzzyMatching: false,
          supportsWildcard: true,
          omitQuotationForMultipartRequest: true,
          bulkDataURI: { enabled: true },
        },
      },
    ],
  };
  return `window.config = ${JSON.stringify(config, null, 2)};\n`;
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml',
};

const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

export interface OhifServerOptions {
  /** Orthanc's HTTP root, e.g. http://127.0.0.1:8042 (DICOMweb under /dicom-web). */
  orthancUrl: string;
  distDir?: string;
  port?: number;
}

export interface OhifServerHandle {
  /** e.g. http://127.0.0.1:PORT */
  url: string;
  port: number;
  distDir: string;
  /** Paths proxied to Orthanc so far, with status (for failure messages). */
  proxied: Array<{ method: string; path: string; status: number }>;
  stop(): Promise<void>;
}

/** Serve the OHIF dist with the replaced app-config.js and the DICOMweb proxy on 127.0.0.1. */
export async function startOhifServer(opts: OhifServerOptions): Promise<OhifServerHandle> {
  const distDir = opts.distDir ?? ensureOhifDist();
  const upstream = new URL(opts.orthancUrl);
  const proxied: OhifServerHandle['proxied'] = [];
  let origin = '';
  const indexHtml = fs.readFileSync(path.join(distDir, 'index.html'));

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = decodeURIComponent(url.pathname);
    if (p.startsWith('/dicom-web') || p.startsWith('/wado')) {
      const headers = { ...req.headers };
      delete headers['accept-encoding']; // keep bodies plain (no gzip negotiation through the proxy)
      const up = http.request(
        { hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
        (ur) => {
          proxied.push({ method: req.method ?? 'GET', path: url.pathname, status: ur.statusCode ?? 0 });
          res.writeHead(ur.statusCode ?? 502, { ...ur.headers, ...ISOLATION_HEADERS });
          ur.pipe(res);
        },
      );
      up.on('error', (e) => {
        proxied.push({ method: req.method ?? 'GET', path: url.pathname, status: 502 });
        if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'text/plain' });
        res.end(`proxy error: ${e.message}`);
      });
      req.pipe(up);
      return;
    }
    if (p === '/app-config.js') {
      res.writeHead(200, { 'Content-Type': MIME['.js'], 'Cache-Control': 'no-store', ...ISOLATION_HEADERS });
      res.end(ohifAppConfig(origin));
      return;
    }
    const file = path.join(distDir, path.normalize(p).replace(/^([/\\])+/, ''));
    const inside = file.startsWith(distDir + path.sep);
    let body: Buffer | undefined;
    let type = MIME['.html'];
    if (inside) {
      try {
        if (fs.statSync(file).isFile()) {
          body = fs.readFileSync(file);
          type = MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
        }
      } catch {
        /* not a file: SPA fallback below */
      }
    }
    if (!body) body = indexHtml; // client-side routes (/viewer, /segmentation, …)
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length, ...ISOLATION_HEADERS });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  origin = `http://127.0.0.1:${port}`;
  return {
    url: origin,
    port,
    distDir,
    proxied,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Debian's Chromium, headless, through playwright-core (never a downloaded browser). */
export async function launchChromium(extra: LaunchOptions = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_BIN,
    headless: true,
    ...extra,
    args: [...CHROMIUM_ARGS, ...(extra.args ?? [])],
  });
}

// ---- driving the viewer (playwright Page) ----

/** One display set (series) OHIF built for the study. */
export interface OhifDisplaySet {
  displaySetInstanceUID: string;
  seriesInstanceUid: string;
  modality: string;
  seriesDescription: string;
}

/** Per labelmap slice of a loaded segmentation: which source instance it lies on and what it holds. */
export interface LabelmapSlice {
  /** SOPInstanceUID of the source image this labelmap slice is drawn over (from its imageId). */
  referencedSopInstanceUid: string;
  /** Frame of that instance (1 for single-frame images). */
  referencedFrameNumber: number;
  /** Non-zero labelmap pixels. */
  count: number;
  /** Mean row/column (0-based pixel indices) of the non-zero pixels; NaN when count is 0. */
  centroidRow: number;
  centroidColumn: number;
  rows: number;
  columns: number;
  /** Indices (row * columns + column) of the non-zero pixels, ascending. */
  indices: number[];
}

export interface LoadedSegmentation {
  segmentationId: string;
  label: string;
  segmentLabels: string[];
  slices: LabelmapSlice[];
}

/** Where the viewport's canvas sits in the page and where world points land on it (CSS px). */
export interface ViewportPlacement {
  canvas: { x: number; y: number; width: number; height: number };
  /** Page coordinates of each requested world point. */
  points: Array<[number, number]>;
  /** SOPInstanceUID and frame (1 for single-frame images) of the image now shown. */
  shownSopInstanceUid: string;
  shownFrameNumber: number;
}

/** SOPInstanceUID inside a wadors:/wadouri: imageId (…/instances/<uid>/frames/n or objectUID=<uid>). */
export function sopUidOfImageId(imageId: string): string {
  const m = /\/instances\/([0-9.]+)\//.exec(imageId) ?? /[?&]objectUID=([0-9.]+)/.exec(imageId);
  return m ? m[1] : '';
}

/** Frame number inside a wadors:/wadouri: imageId (…/frames/n or frame=n); 1 when absent. */
export function frameOfImageId(imageId: string): number {
  const m = /\/frames\/(\d+)/.exec(imageId) ?? /[?&]frame=(\d+)/.exec(imageId);
  return m ? Number(m[1]) : 1;
}

/**
 * Open a study in the basic viewer and dismiss the first-run dialogs (the "Scrolling Through Images"
 * tour). Resolves when the study browser shows its thumbnails and a viewport has an image.
 */
export async function openStudy(page: Page, baseUrl: string, studyInstanceUid: string, timeoutMs = 60000): Promise<void> {
  await page.goto(`${baseUrl}/viewer?StudyInstanceUIDs=${encodeURIComponent(studyInstanceUid)}`);
  await page.locator('[data-cy="study-browser-thumbnail"]').first().waitFor({ timeout: timeoutMs });
  await dismissFirstRunDialogs(page);
  await page.waitForFunction(
    () => {
      const w = globalThis as unknown as BrowserGlobals;
      const els = w.cornerstone?.getEnabledElements?.() ?? [];
      return els.length > 0 && typeof els[0].viewport.getCurrentImageId?.() === 'string';
    },
    undefined,
    { timeout: timeoutMs },
  );
}

/** Click "Skip all" on the onboarding tour if it shows (it does on a fresh profile). */
export async function dismissFirstRunDialogs(page: Page): Promise<void> {
  const skip = page.getByText('Skip all', { exact: true });
  try {
    await skip.waitFor({ state: 'visible', timeout: 5000 });
    await skip.click();
  } catch {
    /* no tour on this profile */
  }
}

/** The display sets (series) OHIF knows for the open study. */
export async function displaySets(page: Page): Promise<OhifDisplaySet[]> {
  return page.evaluate(() => {
    const w = globalThis as unknown as BrowserGlobals;
    return w.services.displaySetService.getActiveDisplaySets().map((d) => ({
      displaySetInstanceUID: d.displaySetInstanceUID,
      seriesInstanceUid: d.SeriesInstanceUID,
      modality: d.Modality,
      seriesDescription: d.SeriesDescription ?? '',
    }));
  });
}

/** Texts of the study browser's thumbnails (image and no-image ones: SEG, SR). */
export async function thumbnailTexts(page: Page): Promise<string[]> {
  return page.locator('[data-cy="study-browser-thumbnail"], [data-cy="study-browser-thumbnail-no-image"]').allInnerTexts();
}

/**
 * Load a SEG the way a user does: double-click its thumbnail (found by text, e.g. its
 * SeriesDescription), answer "Yes" to "load the segmentation?", and wait until the segmentation
 * service holds it with its labelmap images in the cache.
 */
export async function loadSegFromThumbnail(page: Page, thumbnailText: string, timeoutMs = 60000): Promise<LoadedSegmentation> {
  await page.locator('[data-cy="study-browser-thumbnail-no-image"]').filter({ hasText: thumbnailText }).first().dblclick();
  await page.locator('button[name="yes-hydrate"]').click({ timeout: timeoutMs });
  await page.waitForFunction(
    () => {
      const w = globalThis as unknown as BrowserGlobals;
      const segs = w.services.segmentationService.getSegmentations();
      const ids = segs[0]?.representationData?.Labelmap?.imageIds ?? [];
      return ids.length > 0 && ids.every((id) => w.cornerstone.cache.getImage(id) !== undefined);
    },
    undefined,
    { timeout: timeoutMs },
  );
  const seg = await readSegmentation(page);
  if (!seg) throw new Error('segmentation vanished after loading');
  return seg;
}

/** The first loaded segmentation as the viewer holds it (labels, labelmap content per source slice). */
export async function readSegmentation(page: Page): Promise<LoadedSegmentation | undefined> {
  return page.evaluate(() => {
    const w = globalThis as unknown as BrowserGlobals;
    const s = w.services.segmentationService.getSegmentations()[0];
    if (!s) return undefined;
    const lm = s.representationData?.Labelmap;
    const ids = lm?.imageIds ?? [];
    const refs = lm?.referencedImageIds ?? [];
    const slices = ids.map((id, i) => {
      const img = w.cornerstone.cache.getImage(id);
      const ref = img?.referencedImageId ?? refs[i] ?? '';
      const m = /\/instances\/([0-9.]+)\//.exec(ref) ?? /[?&]objectUID=([0-9.]+)/.exec(ref);
      const f = /\/frames\/(\d+)/.exec(ref) ?? /[?&]frame=(\d+)/.exec(ref);
      const rows = img?.rows ?? 0;
      const columns = img?.columns ?? 0;
      const px = img ? (img.voxelManager?.getScalarData?.() ?? img.getPixelData()) : [];
      let count = 0;
      let sr = 0;
      let sc = 0;
      const indices: number[] = [];
      for (let k = 0; k < px.length; k++) {
        if (px[k]) {
          count++;
          sr += Math.floor(k / columns);
          sc += k % columns;
          indices.push(k);
        }
      }
      return {
        referencedSopInstanceUid: m ? m[1] : '',
        referencedFrameNumber: f ? Number(f[1]) : 1,
        count,
        centroidRow: count ? sr / count : NaN,
        centroidColumn: count ? sc / count : NaN,
        rows,
        columns,
        indices,
      };
    });
    return {
      segmentationId: s.segmentationId,
      label: s.label ?? '',
      segmentLabels: Object.values(s.segments ?? {}).map((seg) => seg?.label ?? ''),
      slices,
    };
  });
}

/**
 * Show the image of `sopInstanceUid` in the (first) viewport, wait for it to render, and return where
 * the canvas is and where the given world points (LPS mm) fall on the page.
 */
export async function showInstance(
  page: Page,
  sopInstanceUid: string,
  worldPoints: Array<[number, number, number]> = [],
  settleMs = 1500,
  frameNumber = 1,
): Promise<ViewportPlacement> {
  // OHIF may still move the viewport (it jumps to the segment after a SEG loads): retry until it stays.
  for (let attempt = 0; attempt < 4; attempt++) {
    const ok = await page.evaluate(async ([uid, frame]) => {
      const w = globalThis as unknown as BrowserGlobals;
      const vp = w.cornerstone.getEnabledElements()[0].viewport;
      const ids = vp.getImageIds();
      const idx = ids.findIndex((id) => id.includes(`/instances/${uid}/frames/${frame}`) || (frame === 1 && id.includes(`objectUID=${uid}`)));
      if (idx < 0) return false;
      await vp.setImageIdIndex(idx);
      vp.render();
      return true;
    }, [sopInstanceUid, frameNumber] as const);
    if (!ok) throw new Error(`instance ${sopInstanceUid} is not in the viewport's stack`);
    await page.waitForTimeout(settleMs);
    const shown = await page.evaluate(() => (globalThis as unknown as BrowserGlobals).cornerstone.getEnabledElements()[0].viewport.getCurrentImageId());
    if (sopUidOfImageId(shown) === sopInstanceUid && frameOfImageId(shown) === frameNumber) break;
  }
  return page.evaluate((pts) => {
    const w = globalThis as unknown as BrowserGlobals;
    const vp = w.cornerstone.getEnabledElements()[0].viewport;
    const r = vp.canvas.getBoundingClientRect();
    const cur = vp.getCurrentImageId();
    const m = /\/instances\/([0-9.]+)\//.exec(cur) ?? /[?&]objectUID=([0-9.]+)/.exec(cur);
    const f = /\/frames\/(\d+)/.exec(cur) ?? /[?&]frame=(\d+)/.exec(cur);
    return {
      shownFrameNumber: f ? Number(f[1]) : 1,
      canvas: { x: r.left, y: r.top, width: r.width, height: r.height },
      points: pts.map((p) => {
        const c = vp.worldToCanvas(p);
        return [r.left + c[0], r.top + c[1]] as [number, number];
      }),
      shownSopInstanceUid: m ? m[1] : '',
    };
  }, worldPoints);
}

/** The WebGL2 renderer the page gets, and whether cornerstone fell back to CPU rendering. */
export async function renderingInfo(page: Page): Promise<{ webgl2: string | null; cpuFallback: boolean | undefined }> {
  return page.evaluate(() => {
    const w = globalThis as unknown as BrowserGlobals;
    const gl = w.document.createElement('canvas').getContext('webgl2');
    let webgl2: string | null = null;
    if (gl) {
      const ext = gl.getExtension('WEBGL_debug_renderer_info');
      webgl2 = `${String(gl.getParameter(gl.VERSION))} | ${ext ? String(gl.getParameter(ext.UNMASKED_RENDERER_WEBGL)) : ''}`;
    }
    return { webgl2, cpuFallback: w.cornerstone?.getShouldUseCPURendering?.() };
  });
}

/** Open the segmentation side panel and return its text (segment labels are listed there). */
export async function segmentationPanelText(page: Page): Promise<string> {
  const btn = page.locator('[data-cy="panelSegmentation-btn"]');
  if ((await btn.count()) > 0) await btn.first().click();
  await page.waitForTimeout(500);
  return page.locator('body').innerText();
}

/** The little of the browser-side globals these helpers touch (OHIF sets window.services/cornerstone). */
interface BrowserGlobals {
  document: {
    createElement(tag: 'canvas'): {
      getContext(kind: 'webgl2'): {
        VERSION: number;
        getParameter(p: number): unknown;
        getExtension(name: 'WEBGL_debug_renderer_info'): { UNMASKED_RENDERER_WEBGL: number } | null;
      } | null;
    };
  };
  services: {
    displaySetService: {
      getActiveDisplaySets(): Array<{ displaySetInstanceUID: string; SeriesInstanceUID: string; Modality: string; SeriesDescription?: string }>;
    };
    segmentationService: {
      getSegmentations(): Array<{
        segmentationId: string;
        label?: string;
        segments?: Record<string, { label?: string } | undefined>;
        representationData?: { Labelmap?: { imageIds?: string[]; referencedImageIds?: string[] } };
      }>;
    };
  };
  cornerstone: {
    getShouldUseCPURendering?(): boolean;
    cache: {
      getImage(id: string):
        | {
            rows: number;
            columns: number;
            referencedImageId?: string;
            getPixelData(): ArrayLike<number>;
            voxelManager?: { getScalarData?(): ArrayLike<number> };
          }
        | undefined;
    };
    getEnabledElements(): Array<{
      viewport: {
        getImageIds(): string[];
        getCurrentImageId(): string;
        setImageIdIndex(i: number): Promise<unknown>;
        render(): void;
        worldToCanvas(p: [number, number, number]): [number, number];
        canvas: { getBoundingClientRect(): { left: number; top: number; width: number; height: number } };
      };
    }>;
  };
}
