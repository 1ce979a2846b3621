/**
 * `npm run bench`: runs every benchmark side by side and writes one JSON report
 * (bench/reports/latest.json, or BENCH_OUT). Performance goals live here, not in timed tests.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { benchBrainTumour } from './brain-tumour';
import { benchBrainTumourSynthesis } from './brain-tumour-synthesis';
import { benchE2e } from './e2e';
import { benchHostile } from './hostile';
import { benchLiver } from './liver';
import { benchQueue } from './queue';
import { benchReceive } from './receive';

/** The repository root: the nearest folder above this file with a package.json (bench/ or dist/bench/). */
function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

async function main(): Promise<void> {
  const only = process.env.BENCH_ONLY?.split(',');
  const want = (name: string) => !only || only.includes(name);
  const report: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGb: Math.round(os.totalmem() / 2 ** 30), node: process.version },
  };
  if (want('receive')) {
    const n = Number(process.env.BENCH_RECEIVE_N ?? 500);
    const r = await benchReceive(n);
    report.receive = {
      description: `${n} generated 512x512 16-bit MR instances (${(r.bytes / 1048576).toFixed(0)} MB) sent by storescu (explicit VR LE, TCP_NODELAY=1) over 1 association, then over 4 concurrent associations; each receiver in its own process; peak RSS = VmHWM`,
      goal: 'ratio >= 0.5 of storescp with receiver peak RSS < 250 MB',
      scenarios: r.scenarios.map((s) => ({ ...s, ratio: Number(s.ratio.toFixed(3)), ratioNoFsync: Number(s.ratioNoFsync.toFixed(3)) })),
    };
    for (const s of r.scenarios) {
      process.stdout.write(
        `receive x${s.associations}: ${s.results.map((x) => `${x.receiver} ${x.instancesPerSecond.toFixed(0)} inst/s rss ${x.peakRssMb.toFixed(0)} MB`).join(' | ')} | ratio ${s.ratio.toFixed(2)} (no fsync ${s.ratioNoFsync.toFixed(2)})\n`,
      );
    }
  }
  if (want('hostile')) {
    const r = await benchHostile(Number(process.env.BENCH_HOSTILE_N ?? 300));
    report.hostile = r;
    process.stdout.write(
      `hostile: quiet ${r.quiet.instancesPerSecond.toFixed(0)} inst/s, under load ${r.hostile.instancesPerSecond.toFixed(0)} inst/s, ratio ${r.ratio}, peak RSS ${r.hostile.peakRssMb.toFixed(0)} MB; ${r.hostile.nestingRefusedC000}/${r.hostile.nestingSent} nesting bombs refused C000 (median ${r.hostile.nestingMedianAnswerMs} ms)\n`,
    );
  }
  if (want('e2e')) {
    const r = await benchE2e(Number(process.env.BENCH_E2E_RUNS ?? 3));
    report.e2e = r;
    process.stdout.write(`e2e: ${JSON.stringify((r as { median?: unknown }).median ?? r)}\n`);
  }
  if (want('queue')) {
    const r = await benchQueue();
    report.queue = r;
    const q = r as { oneWorker?: { studiesPerMinute: number }; twoWorkers?: { studiesPerMinute: number }; ratio?: number; overheadPerStudy?: unknown };
    process.stdout.write(
      q.oneWorker
        ? `queue: 1 worker ${q.oneWorker.studiesPerMinute} studies/min, 2 workers ${q.twoWorkers!.studiesPerMinute} studies/min, ratio ${q.ratio}; overhead ${JSON.stringify(q.overheadPerStudy)}\n`
        : `queue: ${JSON.stringify(r)}\n`,
    );
  }
  if (want('tumour')) {
    const r = await benchBrainTumour(Number(process.env.BENCH_TUMOUR_RUNS ?? 3));
    report.tumour = r;
    const sc = (r as { scenarios?: { name: string; medianMs: Record<string, number> }[] }).scenarios;
    process.stdout.write(sc ? sc.map((s) => `tumour ${s.name}: ${JSON.stringify(s.medianMs)}`).join('\n') + '\n' : `tumour: ${JSON.stringify(r)}\n`);
  }
  if (want('synthesis')) {
    const r = await benchBrainTumourSynthesis(Number(process.env.BENCH_SYNTH_RUNS ?? 2));
    report.synthesis = r;
    const v = (r as { variants?: { steps: number; medianMs: Record<string, number> }[] }).variants;
    process.stdout.write(v ? v.map((x) => `synthesis ${x.steps} steps: ${JSON.stringify(x.medianMs)}`).join('\n') + '\n' : `synthesis: ${JSON.stringify(r)}\n`);
  }
  if (want('liver')) {
    const r = await benchLiver(Number(process.env.BENCH_LIVER_RUNS ?? 3));
    report.liver = r;
    const sc = (r as { scenarios?: { name: string; medianMs?: Record<string, number>; skipped?: string }[] }).scenarios;
    process.stdout.write(sc ? sc.map((s) => `liver ${s.name}: ${s.skipped ?? JSON.stringify(s.medianMs)}`).join('\n') + '\n' : `liver: ${JSON.stringify(r)}\n`);
  }
  // One report file; a BENCH_ONLY run replaces its own sections and keeps the others (each section
  // carries the date it was measured).
  const finalOut = process.env.BENCH_OUT ?? path.join(repoRoot(), 'bench', 'reports', 'latest.json');
  fs.mkdirSync(path.dirname(finalOut), { recursive: true });
  let previous: Record<string, unknown> = {};
  if (only && fs.existsSync(finalOut)) {
    try {
      previous = JSON.parse(fs.readFileSync(finalOut, 'utf8')) as Record<string, unknown>;
    } catch {
      previous = {};
    }
  }
  for (const [k, v] of Object.entries(report)) {
    if (v && typeof v === 'object' && !Array.isArray(v) && k !== 'machine') (v as Record<string, unknown>).measuredAt = report.date;
  }
  fs.writeFileSync(finalOut, JSON.stringify({ ...previous, ...report }, null, 2));
  process.stdout.write(`report written to ${finalOut}\n`);
}

void main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack}\n`);
  process.exit(1);
});
