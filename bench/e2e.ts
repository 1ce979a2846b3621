/**
 * End-to-end latency on this machine: a DWI+ADC study (2 x 30 slices, 256x256) sent by storescu to the
 * node, processed with the committed default DWI+ADC model (shaspec-realbg), SEG + SR sent to a real Orthanc. Measures from
 * the last instance acknowledged to the SEG stored in Orthanc, with the stability wait reported
 * separately and a per-stage breakdown (parse+assemble, preprocess, inference, postprocess, encode,
 * store, send) and the share of time outside inference.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseConfig } from '../src/config/load';
import { buildNode } from '../src/wiring';
import { startOrthanc } from '../test/harness/orthanc';
import { freePort } from '../test/harness/ports';
import { writeSeriesToDir } from '../test/helpers/series-writer';
import { benchStudy } from './phantom';

const SEG_CLASS = '1.2.840.10008.5.1.4.1.1.66.4';

/** The bench study (bench/phantom.ts): 2 x 30 slices of 256x256, written to dir/dwi and dir/adc. */
function syntheticStudy(dir: string, size = 256, slices = 30): void {
  const { dwi, adc } = benchStudy({ size, slices, lesion: { rows: 18, columns: 14, slices: 4 }, pixelSpacingMm: 0.9, origin: [-115, -115, -70] });
  writeSeriesToDir(dwi, path.join(dir, 'dwi'));
  writeSeriesToDir(adc, path.join(dir, 'adc'));
}

function runStorescu(args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('storescu', args, { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, stderr }));
  });
}

export async function benchE2e(runs = 3): Promise<Record<string, unknown>> {
  const modelsDir = path.resolve(__dirname, '..', '..', 'models');
  const models = fs.existsSync(path.join(modelsDir, 'shaspec-realbg.json')) ? modelsDir : path.resolve('models');
  if (!fs.existsSync(path.join(models, 'shaspec-realbg.json'))) return { skipped: 'models/shaspec-realbg.json not found' };
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'stroke-bench-e2e-'));
  const nodePort = await freePort();
  const pacs = await startOrthanc({ aet: 'ORTHANC' });
  const config = parseConfig({
    storage: { dir: path.join(work, 'store'), minFreeMb: 1 },
    dimse: { port: nodePort, allowAnyCaller: true },
    http: { port: await freePort() },
    destinations: [{ name: 'orthanc', type: 'dimse', host: '127.0.0.1', port: pacs.dicomPort, calledAeTitle: 'ORTHANC' }],
    routes: [{ name: 'stroke', quietPeriodSeconds: 2, requiredSeries: ['DWI', 'ADC'], destinations: ['orthanc'] }],
    inference: { modelsDir: models },
    logLevel: 'error',
  });
  process.env.STROKE_NODE_LOG_SILENT = '1';
  const node = await buildNode(config);
  await node.start();
  const perRun: Record<string, number>[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      const dir = path.join(work, `study-${run}`);
      syntheticStudy(dir);
      const before = (await node.queue.list({ states: ['done'] })).length;
      // storescu in its own process, awaited without blocking: the node runs in this process's event loop
      const r = await runStorescu(['-aec', 'STROKEAI', '+sd', '+r', '127.0.0.1', String(nodePort), dir]);
      const lastAck = Date.now();
      if (r.status !== 0) throw new Error(`storescu failed: ${r.stderr}`);
      // wait until the SEG is stored in Orthanc
      let segAt = 0;
      for (let i = 0; i < 1200 && !segAt; i++) {
        const found = await pacs.post<string[]>('/tools/find', { Level: 'Instance', Query: { SOPClassUID: SEG_CLASS } }).catch(() => []);
        if (found.length > run) segAt = Date.now();
        else await new Promise((res) => setTimeout(res, 50));
      }
      if (!segAt) throw new Error('SEG never reached Orthanc');
      const doneJobs = await node.queue.list({ states: ['done'] });
      const job = doneJobs[0];
      if (doneJobs.length <= before) throw new Error('job not done');
      const t = (job.outcome as { timingsMs: Record<string, number> }).timingsMs;
      const stability = Math.max(0, (job.readyAt ?? lastAck) - lastAck);
      const queued = (job.startedAt ?? 0) - (job.readyAt ?? 0);
      const send = segAt - (job.finishedAt ?? segAt);
      const total = segAt - lastAck;
      const processing = total - stability;
      perRun.push({
        totalMs: total,
        stabilityWaitMs: stability,
        afterStabilityMs: processing,
        queueMs: queued,
        parseAndAssembleMs: t.assemble,
        preprocessMs: t.preprocess,
        inferenceMs: t.inference,
        postprocessMs: t.postprocess,
        encodeMs: t.encode,
        storeAndEnqueueMs: t.store,
        sendMs: send,
        shareOutsideInference: Number(((processing - t.inference) / processing).toFixed(3)),
      });
    }
  } finally {
    await node.stop();
    await pacs.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
  const median = (k: string) => {
    const v = perRun.map((x) => x[k]).sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)];
  };
  const keys = Object.keys(perRun[0]);
  return {
    description: 'DWI+ADC 2x30 slices 256x256 → node (shaspec-realbg, the default DWI+ADC model, CPU) → SEG+SR C-STORE to Orthanc; route hands on when DWI+ADC present (1 s settle)',
    runs: perRun,
    median: Object.fromEntries(keys.map((k) => [k, median(k)])),
    goal: 'under 10 s on CPU after stability; small non-inference share',
  };
}
