/**
 * Start a real StrokeNode in-process for a test: temp storage, free ports, config overrides.
 * Built through the same `buildNode` as `npm start`, so the test runs what users run.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseConfig } from '../../src/config/load';
import { Config } from '../../src/config/schema';
import { StrokeNode } from '../../src/node';
import { buildNode } from '../../src/wiring';
import { freePort } from '../harness/ports';
import { OrthancHandle, startOrthanc } from '../harness/orthanc';

process.env.STROKE_NODE_LOG_SILENT = process.env.STROKE_NODE_LOG_SILENT ?? '1';

export interface TestNode {
  node: StrokeNode;
  config: Config;
  dir: string;
  dimsePort: number;
  httpUrl: string;
  stop(): Promise<void>;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };

export async function testConfig(overrides: DeepPartial<Record<string, unknown>> & Record<string, unknown> = {}, dir?: string): Promise<{ config: Config; dir: string }> {
  const d = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'stroke-node-'));
  const o = overrides as Record<string, Record<string, unknown> | undefined>;
  const raw = {
    ...overrides,
    storage: { dir: d, minFreeMb: 1, ...(o.storage ?? {}) },
    dimse: { host: '127.0.0.1', port: await freePort(), allowAnyCaller: true, ...(o.dimse ?? {}) },
    http: { host: '127.0.0.1', port: await freePort(), ...(o.http ?? {}) },
  };
  return { config: parseConfig(raw, 'test'), dir: d };
}

export async function startTestNode(overrides: Record<string, unknown> = {}, dir?: string): Promise<TestNode> {
  const { config, dir: d } = await testConfig(overrides, dir);
  const node = await buildNode(config);
  await node.start();
  return {
    node,
    config,
    dir: d,
    dimsePort: node.dimsePort!,
    httpUrl: `${node.httpScheme}://127.0.0.1:${node.httpPort}`,
    stop: async () => {
      await node.stop();
      if (!process.env.KEEP_HARNESS_DIRS && !dir) fs.rmSync(d, { recursive: true, force: true });
    },
  };
}

/**
 * A node and a real Orthanc (AE ORTHANC) that know each other: Orthanc may send to the node (its
 * modality NODE = STROKEAI at the node's DICOM port, which is chosen first), and Orthanc is the node's
 * destination `orthanc` on route `stroke` (quiet period 2 s), with the committed models unless told.
 */
export async function startNodeWithOrthanc(
  opts: { extraPeers?: string[]; overlaySc?: boolean; routeModels?: Record<string, string>; modelsDir?: string } = {},
): Promise<{ node: TestNode; pacs: OrthancHandle }> {
  const nodePort = await freePort();
  const pacs = await startOrthanc({ aet: 'ORTHANC', modalities: { NODE: ['STROKEAI', '127.0.0.1', nodePort] } });
  const node = await startTestNode({
    dimse: { port: nodePort, allowAnyCaller: false, allowedPeers: ['ORTHANC', ...(opts.extraPeers ?? [])].map((aeTitle) => ({ aeTitle })) },
    destinations: [{ name: 'orthanc', type: 'dimse', host: '127.0.0.1', port: pacs.dicomPort, calledAeTitle: 'ORTHANC', ...(opts.overlaySc ? { overlaySc: true } : {}) }],
    routes: [{ name: 'stroke', quietPeriodSeconds: 2, destinations: ['orthanc'], ...(opts.routeModels ? { models: opts.routeModels } : {}) }],
    inference: { modelsDir: opts.modelsDir ?? path.resolve(__dirname, '../../models') },
  });
  return { node, pacs };
}

/** Build a multipart/related STOW body from Part 10 buffers (or arbitrary parts). */
export function stowBody(parts: { body: Buffer; type?: string }[], boundary = `b${Date.now().toString(16)}`): { body: Buffer; contentType: string } {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: ${p.type ?? 'application/dicom'}\r\n\r\n`));
    chunks.push(p.body);
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/related; type="application/dicom"; boundary=${boundary}` };
}

/** Wait until `cond()` is true (polling), or throw after timeoutMs. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 20000, what = 'condition', intervalMs = 100): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}
