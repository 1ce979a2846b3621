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

function freePort(): Promise<number> {
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

function peakRssMb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

export function generateInstances(dir: string, n: number): { files: string[]; bytes: number } {
  fs.mkdirSync(dir, { recursive: true });
  const study = newUid();
  const series = newUid();
  const files: string[] = [];
  let bytes = 0;
  const px = new Uint16Array(512 * 512);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < px.length; j++) px[j] = (j * 7 + i * 13) & 0x0fff;
    const ds = {
      SOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
      SOPInstanceUID: newUid(),
      StudyInstanceUID: study,
      SeriesInstanceUID: series,
      Modality: 'MR',
      PatientID: 'BENCH',
      PatientName: 'Bench^Receive',
      InstanceNumber: i + 1,
      Rows: 512,
      Columns: 512,
      BitsAllocated: 16,
      BitsStored: 12,
      HighBit: 11,
      PixelRepresentation: 0,
      SamplesPerPixel: 1,
      PhotometricInterpretation: 'MONOCHROME2',
      PixelData: [px.slice().buffer],
      _vrMap: { PixelData: 'OW' },
    };
    const f = path.join(dir, `${String(i).padStart(4, '0')}.dcm`);
    const buf = writePart10(ds);
    fs.writeFileSync(f, buf);
    files.push(f);
    bytes += buf.length;
  }
  return { files, bytes };
}

function sendWithStorescu(port: number, aec: string, dir: string): { seconds: number; failures: number } {
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

export async function benchReceive(n = 500): Promise<{ results: ReceiverResult[]; ratio: number; ratioNoFsync: number; bytes: number }> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'stroke-bench-rx-'));
  try {
    const { bytes } = generateInstances(path.join(work, 'in'), n);
    const results: ReceiverResult[] = [];

    // DCMTK storescp (reference)
    {
      const port = await freePort();
      const out = path.join(work, 'storescp');
      fs.mkdirSync(out);
      const p = spawn('storescp', ['-aet', 'STORESCP', '-od', out, '+B', String(port)], { env: { ...process.env, TCP_NODELAY: '1' }, stdio: 'ignore' });
      await waitPort(port);
      const r = sendWithStorescu(port, 'STORESCP', path.join(work, 'in'));
      results.push({ receiver: 'dcmtk-storescp', instances: n, seconds: r.seconds, instancesPerSecond: n / r.seconds, mbPerSecond: bytes / 1048576 / r.seconds, peakRssMb: peakRssMb(p.pid!), failures: r.failures });
      await stop(p);
    }

    // our node, as a separate process (so its RSS is its own), with and without fsync before the ack
    for (const fsync of [true, false]) {
      const port = await freePort();
      const cfg = path.join(work, `node-${fsync}.json`);
      fs.writeFileSync(cfg, JSON.stringify({ storage: { dir: path.join(work, `node-store-${fsync}`), minFreeMb: 1, fsync }, dimse: { port, allowAnyCaller: true }, http: { port: await freePort() }, logLevel: 'warn' }));
      const main = fs.existsSync(path.resolve(__dirname, '../src/main.js')) ? [path.resolve(__dirname, '../src/main.js')] : ['--import', 'tsx', path.resolve(__dirname, '../src/main.ts')];
      const p = spawn(process.execPath, main, { env: { ...process.env, STROKE_NODE_CONFIG: cfg, STROKE_NODE_LOG_SILENT: '1' }, stdio: 'ignore' });
      await waitPort(port);
      const r = sendWithStorescu(port, 'STROKEAI', path.join(work, 'in'));
      results.push({ receiver: fsync ? 'stroke-node' : 'stroke-node (storage.fsync=false)', instances: n, seconds: r.seconds, instancesPerSecond: n / r.seconds, mbPerSecond: bytes / 1048576 / r.seconds, peakRssMb: peakRssMb(p.pid!), failures: r.failures });
      await stop(p);
    }
    const ref = results.find((r) => r.receiver === 'dcmtk-storescp')!;
    const ours = results.find((r) => r.receiver === 'stroke-node')!;
    const fast = results.find((r) => r.receiver.includes('fsync=false'))!;
    return { results, ratio: ours.instancesPerSecond / ref.instancesPerSecond, ratioNoFsync: fast.instancesPerSecond / ref.instancesPerSecond, bytes };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
