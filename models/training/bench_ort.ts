/**
 * CPU inference time per study with onnxruntime-node (cpu EP) on the committed lesion phantom
 * (28 slices): `npx tsx models/training/bench_ort.ts [threads]`. Model run only (pre/post-processing excluded).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ort from 'onnxruntime-node';

const MODELS = path.resolve(__dirname, '..');
const meta = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../fixtures/phantoms/test-1037-lesion/meta.json'), 'utf8')) as { slices: number };

async function main(): Promise<void> {
  const threads = Number(process.argv[2] ?? '1');
  const S = meta.slices;
  const input = new Float32Array(S * 6 * 128 * 128).map(() => Math.random());
  for (const name of ['unet2d-baseline', 'dual-encoder', 'shaspec-missing']) {
    const man = JSON.parse(fs.readFileSync(path.join(MODELS, `${name}.json`), 'utf8')) as { file: string; inputs: { modalityMaskTensor?: string } };
    const s = await ort.InferenceSession.create(path.join(MODELS, man.file), { executionProviders: ['cpu'], intraOpNumThreads: threads });
    const feeds: Record<string, ort.Tensor> = { input: new ort.Tensor('float32', input, [S, 6, 128, 128]) };
    if (man.inputs.modalityMaskTensor) feeds[man.inputs.modalityMaskTensor] = new ort.Tensor('float32', new Float32Array(S * 2).fill(1), [S, 2]);
    await s.run(feeds);
    const ts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = process.hrtime.bigint();
      await s.run(feeds);
      ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    ts.sort((a, b) => a - b);
    console.log(`${name}: ${S} slices, ${threads} thread(s): median ${ts[2].toFixed(0)} ms, min ${ts[0].toFixed(0)} ms`);
    await s.release();
  }
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
