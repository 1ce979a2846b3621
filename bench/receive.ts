/**
 * Receive throughput: our DIMSE SCP (a real node process) vs DCMTK storescp, in the same run, on the
 * same 500 generated 512x512 16-bit MR instances, both sent by one storescu association with
 * TCP_NODELAY=1. Reports instances/s, MB/s, receiver peak RSS (VmHWM) and the ratio.
 */
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { newUid, writePart10 } from '../src/dicom/dcmjs';
import * as net from 'net';

export interface ReceiverResult {
  receiver: string;
  instances: number;
  seconds: number;
  instancesPerSecond: number;
  mbPerSecond: number;
  peakRssMb: number;
  failures: number;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

async function waitPort(port: number, ms = 30000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`port ${port} did not open`);
}

export function peakRssMb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** A minimal valid 16-bit MR image instance (for benchmarks and fault tests). */
export function mrImageDataset(rows: number, cols: number, pixels: Uint16Array, uids: { study: string; series: string }, instanceNumber = 1): Record<string, unknown> {
  return {
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
    SOPInstanceUID: newUid(),
    StudyInstanceUID: uids.study,
    SeriesInstanceUID: uids.series,
    Modality: 'MR',
    PatientID: 'SYNTHETIC',
    PatientName: 'Synthetic^Instance',
    InstanceNumber: instanceNumber,
    Rows: rows,
    Columns: cols,
    BitsAllocated: 16,
    BitsStored: 12,
    HighBit: 11,
    PixelRepresentation: 0,
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    PixelData: [pixels.buffer.slice(pixels.byteOffset, pixels.byteOffset + pixels.byteLength)],
    _vrMap: { PixelData: 'OW' },
  };
}

export function generateInstances(dir: string, n: number): { files: string[]; bytes: number } {
  fs.mkdirSync(dir, { recursive: true });
  const uids = { study: newUid(), series: newUid() };
  const files: string[] = [];
  let bytes = 0;
  const px = new Uint16Array(512 * 512);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < px.length; j++) px[j] = (j * 7 + i * 13) & 0x0fff;
    const f = path.join(dir, `${String(i).padStart(4, '0')}.dcm`);
    const buf = writePart10(mrImageDataset(512, 512, px, uids, i + 1));
    fs.writeFileSync(f, buf);
    files.push(f);
    bytes += buf.length;
  }
  return { files, bytes };
}

/** Send `dirs` with one storescu process (one association) each, all at once. */
async function sendParallel(port: number, aec: string, dirs: string[]): Promise<{ seconds: number; failures: number }> {
  const t0 = process.hrtime.bigint();
  const codes = await Promise.all(
    dirs.map(
      (d) =>
        new Promise<number>((resolve) => {
          const p = spawn('storescu', ['-aet', 'BENCH', '-aec', aec, '+sd', '-xe', '127.0.0.1', String(port), d], { env: { ...process.env, TCP_NODELAY: '1' }, stdio: 'ignore' });
          p.on('exit', (c) => resolve(c ?? 1));
        }),
    ),
  );
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, failures: codes.filter((c) => c !== 0).length };
}

export function sendWithStorescu(port: number, aec: string, dir: string): { seconds: number; failures: number } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('storescu', ['-aet', 'BENCH', '-aec', aec, '+sd', '-xe', '127.0.0.1', String(port), dir], {
    env: { ...process.env, TCP_NODELAY: '1' },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const failures = r.status === 0 ? 0 : (r.stderr.match(/^E: /gm) ?? []).length || 1;
  return { seconds, failures };
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  p.kill('SIGTERM');
  await new Promise((r) => {
    const t = setTimeout(() => (p.kill('SIGKILL'), r(null)), 5000);
    p.once('exit', () => (clearTimeout(t), r(null)));
  });
}

export interface Receiver {
  name: string;
  start(work: string): Promise<{ port: number; aec: string; pid: number; stop(): Promise<void> }>;
}

const storescpReceiver: Receiver = {
  name: 'dcmtk-storescp',
  async start(work) {
    const port = await freePort();
    const out = fs.mkdtempSync(path.join(work, 'storescp-'));
    const p = spawn('storescp', ['-aet', 'STORESCP', '-od', out, '+B', String(port)], { env: { ...process.env, TCP_NODELAY: '1' }, stdio: 'ignore' });
    await waitPort(port);
    return { port, aec: 'STORESCP', pid: p.pid!, stop: () => stop(p) };
  },
};

export function nodeReceiver(fsync: boolean): Receiver {
  return {
    name: fsync ? 'stroke-node' : 'stroke-node (storage.fsync=false)',
    async start(work) {
      const port = await freePort();
      const dir = fs.mkdtempSync(path.join(work, 'node-'));
      const cfg = path.join(dir, 'node.json');
      fs.writeFileSync(cfg, JSON.stringify({ storage: { dir: path.join(dir, 'store'), minFreeMb: 1, fsync }, dimse: { port, allowAnyCaller: true }, http: { port: await freePort() }, inference: { modelsDir: path.join(dir, 'no-models') }, logLevel: 'warn' }));
      const main = fs.existsSync(path.resolve(__dirname, '../src/main.js')) ? [path.resolve(__dirname, '../src/main.js')] : ['--import', 'tsx', path.resolve(__dirname, '../src/main.ts')];
      const p = spawn(process.execPath, main, { env: { ...process.env, STROKE_NODE_CONFIG: cfg, STROKE_NODE_LOG_SILENT: '1' }, stdio: 'ignore' });
      await waitPort(port);
      return { port, aec: 'STROKEAI', pid: p.pid!, stop: () => stop(p) };
    },
  };
}

export interface ReceiveScenario {
  associations: number;
  results: ReceiverResult[];
  ratio: number;
  ratioNoFsync: number;
}

export async function benchReceive(n = 500, associationCounts = [1, 4]): Promise<{ scenarios: ReceiveScenario[]; bytes: number }> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'stroke-bench-rx-'));
  try {
    const { files, bytes } = generateInstances(path.join(work, 'in'), n);
    const scenarios: ReceiveScenario[] = [];
    for (const k of associationCounts) {
      // k folders of n/k instances: one storescu (one association) per folder, all at once
      const dirs = Array.from({ length: k }, (_, i) => path.join(work, `in-${k}-${i}`));
      dirs.forEach((d) => fs.mkdirSync(d, { recursive: true }));
      files.forEach((f, i) => fs.linkSync(f, path.join(dirs[i % k], path.basename(f))));
      const results: ReceiverResult[] = [];
      for (const rx of [storescpReceiver, nodeReceiver(true), nodeReceiver(false)]) {
        const h = await rx.start(work);
        const r = k === 1 ? sendWithStorescu(h.port, h.aec, dirs[0]) : await sendParallel(h.port, h.aec, dirs);
        results.push({ receiver: rx.name, instances: n, seconds: r.seconds, instancesPerSecond: n / r.seconds, mbPerSecond: bytes / 1048576 / r.seconds, peakRssMb: peakRssMb(h.pid), failures: r.failures });
        await h.stop();
      }
      const ref = results[0];
      scenarios.push({ associations: k, results, ratio: results[1].instancesPerSecond / ref.instancesPerSecond, ratioNoFsync: results[2].instancesPerSecond / ref.instancesPerSecond });
    }
    return { scenarios, bytes };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
