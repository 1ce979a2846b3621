/**
 * Bad input and faults: the node answers with a proper status, keeps running, keeps every
 * instance it acknowledged and leaves no half-written file in the index.
 */
import { spawn } from 'child_process';
import Database from 'better-sqlite3';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { newUid, writePart10 } from '../../src/dicom/dcmjs';
import { mrImageDataset } from '../../bench/receive';
import { geHeadCt } from '../harness/data';
import { dcmtkEnv, echoscu, storescu } from '../harness/dcmtk';
import { freePort, waitForPort, sleep } from '../harness/ports';
import { startTestNode, stowBody, waitFor } from '../helpers/node';
import { slowLink } from '../helpers/slow-link';

const PYDICOM_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

/** A big (≈32 MB) but valid MR instance, so a transfer can be interrupted in the middle. */
function bigInstance(dir: string): string {
  const rows = 4096;
  const cols = 4096;
  const pixels = new Uint16Array(rows * cols);
  for (let i = 0; i < pixels.length; i++) pixels[i] = i % 4096;
  const ds = mrImageDataset(rows, cols, pixels, { study: newUid(), series: newUid() });
  const f = path.join(dir, 'big.dcm');
  fs.writeFileSync(f, writePart10(ds));
  return f;
}

/** Size of the largest file in a folder (0 when the folder is empty or not there yet). */
function largestFile(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  let max = 0;
  for (const f of fs.readdirSync(dir)) {
    try {
      max = Math.max(max, fs.statSync(path.join(dir, f)).size);
    } catch {
      // renamed into the store between readdir and stat
    }
  }
  return max;
}

describe('malformed input', () => {
  test("pydicom's malformed and truncated files are refused with a reason or stored whole; the node keeps running", async () => {
    const t = await startTestNode();
    try {
      const names = ['MR_truncated.dcm', 'rtplan_truncated.dcm', 'no_meta.dcm', 'meta_missing_tsyntax.dcm', 'badVR.dcm', 'ExplVR_BigEndNoMeta.dcm'];
      const present = names.filter((n) => fs.existsSync(path.join(PYDICOM_FILES, n)));
      expect(present.length).toBeGreaterThanOrEqual(4);
      for (const n of present) {
        const { body, contentType } = stowBody([{ body: fs.readFileSync(path.join(PYDICOM_FILES, n)) }]);
        const res = await fetch(`${t.httpUrl}/dicom-web/studies`, { method: 'POST', headers: { 'Content-Type': contentType }, body });
        expect([200, 409]).toContain(res.status);
        if (res.status === 409) expect(res.headers.get('warning')).toBeTruthy();
      }
      // nothing half-written anywhere; every indexed row points to a readable file
      expect(fs.readdirSync(path.join(t.dir, 'tmp'))).toHaveLength(0);
      const db = new Database(path.join(t.dir, 'index.sqlite'), { readonly: true });
      for (const r of db.prepare('SELECT path FROM instances').all() as { path: string }[]) expect(fs.existsSync(r.path)).toBe(true);
      db.close();
      const echo = await echoscu('127.0.0.1', t.dimsePort, { calledAet: 'STROKEAI' });
      expect(echo.ok).toBe(true);
    } finally {
      await t.stop();
    }
  });
});

describe('full disk (free space below the configured floor)', () => {
  test('DIMSE answers Out of Resources (A700), STOW answers 507, nothing is stored', async () => {
    const t = await startTestNode({ storage: { minFreeMb: 1e12 } });
    try {
      const r = await storescu('127.0.0.1', t.dimsePort, [geHeadCt()[0]], { calledAet: 'STROKEAI' });
      expect(r.files[0].outcome).toBe('failure');
      expect(r.files[0].detail).toMatch(/OutOfResources|a700|Out of Resources/i);
      const { body, contentType } = stowBody([{ body: fs.readFileSync(geHeadCt()[1]) }]);
      const res = await fetch(`${t.httpUrl}/dicom-web/studies`, { method: 'POST', headers: { 'Content-Type': contentType }, body });
      expect(res.status).toBe(507);
      expect(t.node.store.count()).toBe(0);
      expect(fs.readdirSync(path.join(t.dir, 'tmp'))).toHaveLength(0);
    } finally {
      await t.stop();
    }
  });
});

describe('interrupted transfers', () => {
  let work: string;
  let big: string;
  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'stroke-faults-'));
    big = bigInstance(work);
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  test('an association aborted mid-instance leaves no file and no index row; the node keeps serving', async () => {
    const t = await startTestNode();
    const tmp = path.join(t.dir, 'tmp');
    try {
      // Through a 4 MB/s link the 32 MB instance takes ~8 s: kill the sender once the node has written 1 MB of it.
      const link = await slowLink(t.dimsePort, 4_000_000);
      try {
        const before = t.node.store.count();
        const child = spawn('storescu', ['-aec', 'STROKEAI', '127.0.0.1', String(link.port), big], { env: dcmtkEnv() });
        const exited = new Promise((r) => child.once('exit', r));
        await waitFor(() => child.exitCode !== null || largestFile(tmp) > 1_000_000, 30000, 'the big instance to be streaming');
        expect(child.exitCode).toBeNull(); // still sending: the kill below lands mid-instance
        child.kill('SIGKILL');
        await exited;
        await waitFor(() => fs.readdirSync(tmp).length === 0, 10000, 'partial file to be removed');
        await sleep(200);
        expect(t.node.store.count()).toBe(before); // no index row for the aborted instance
      } finally {
        await link.close();
      }
      expect(fs.readdirSync(tmp)).toHaveLength(0);
      const r = await storescu('127.0.0.1', t.dimsePort, [geHeadCt()[0]], { calledAet: 'STROKEAI' });
      expect(r.files[0].outcome).toBe('success');
    } finally {
      await t.stop();
    }
  });

  test('the node killed with SIGKILL during a transfer keeps every acknowledged instance after restart', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stroke-kill-'));
    const dimsePort = await freePort();
    const cfgFile = path.join(dir, 'node.json');
    fs.writeFileSync(
      cfgFile,
      JSON.stringify({ storage: { dir: path.join(dir, 'store'), minFreeMb: 1 }, dimse: { port: dimsePort, allowAnyCaller: true }, http: { port: await freePort() } }),
    );
    const startNode = () =>
      spawn(process.execPath, ['--import', 'tsx', path.resolve(__dirname, '../../src/main.ts')], {
        env: { ...process.env, STROKE_NODE_CONFIG: cfgFile, STROKE_NODE_LOG_SILENT: '1' },
        stdio: 'ignore',
      });
    let node = startNode();
    try {
      await waitForPort(dimsePort, { timeoutMs: 30000 });
      // CT slices then the big instance, through a 4 MB/s link: the big one is still streaming (~8 s) when the node is killed
      const link = await slowLink(dimsePort, 4_000_000);
      const files = [...geHeadCt().slice(0, 12), big];
      const sending = storescu('127.0.0.1', link.port, files, { calledAet: 'STROKEAI' });
      await waitFor(() => largestFile(path.join(dir, 'store', 'tmp')) > 1_000_000, 60000, 'big transfer to be under way');
      node.kill('SIGKILL');
      const sent = await sending;
      await link.close();
      const acked = sent.files.filter((f) => f.outcome === 'success').map((f) => f.file);
      expect(acked.length).toBeGreaterThan(0);
      expect(acked).not.toContain(big);

      node = startNode();
      await waitForPort(dimsePort, { timeoutMs: 30000 });
      await sleep(200);
      const db = new Database(path.join(dir, 'store', 'index.sqlite'), { readonly: true });
      const rows = db.prepare('SELECT sop_instance_uid, path FROM instances').all() as { sop_instance_uid: string; path: string }[];
      db.close();
      const byUid = new Map(rows.map((r) => [r.sop_instance_uid, r.path]));
      const { readPart10 } = await import('../../src/dicom/dcmjs');
      for (const f of acked) {
        const uid = String(readPart10(fs.readFileSync(f), { untilPixelData: true }).dataset.SOPInstanceUID);
        expect(byUid.has(uid)).toBe(true);
      }
      for (const p of byUid.values()) expect(() => readPart10(fs.readFileSync(p))).not.toThrow();
      expect(fs.readdirSync(path.join(dir, 'store', 'tmp'))).toHaveLength(0);
    } finally {
      node.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
