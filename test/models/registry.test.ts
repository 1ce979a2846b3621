/**
 * Model registry: sha256 checked before use (a mismatch disables only that model, with the reason),
 * execution-provider preference with fallback recorded, manifest errors named, stats per model.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ModelRegistry } from '../../src/models/registry';
import { tinyModelsDir } from '../admin/helpers';

describe('model registry', () => {
  test('loads a good model, disables one whose file fails its checksum, keeps running', async () => {
    const dir = tinyModelsDir([{ name: 'dual-encoder' }, { name: 'tampered', badChecksum: true }]);
    const reg = new ModelRegistry({ dir, providers: ['cpu'] });
    const states = await reg.loadAll();
    const good = states.find((s) => s.name === 'dual-encoder')!;
    const bad = states.find((s) => s.name === 'tampered')!;
    expect(good).toMatchObject({ status: 'ready', executionProvider: 'cpu' });
    expect(bad.status).toBe('disabled');
    expect(bad.lastError).toMatch(/sha256 mismatch/);
    await expect(reg.run('tampered', {})).rejects.toThrow(/disabled/);
    const out = await reg.run('dual-encoder', { input: { data: new Float32Array(2 * 6 * 128 * 128), dims: [2, 6, 128, 128] } });
    expect(out.logits.dims).toEqual([2, 1, 128, 128]);
    const after = reg.states().find((s) => s.name === 'dual-encoder')!;
    expect(after.inferences).toBe(1);
    expect(after.lastLatencyMs).toBeGreaterThan(0);
    await reg.close();
  });

  test('falls back along the provider list and records why (no WebGPU adapter on this machine)', async () => {
    const dir = tinyModelsDir([{ name: 'dual-encoder' }]);
    const reg = new ModelRegistry({ dir, providers: ['webgpu', 'cpu'] });
    const [s] = await reg.loadAll();
    expect(s.status).toBe('ready');
    if (s.executionProvider === 'webgpu') {
      // a machine with a GPU and a Vulkan loader: nothing to fall back from
      expect(s.fallbacks).toEqual([]);
    } else {
      expect(s.executionProvider).toBe('cpu');
      expect(s.fallbacks[0].provider).toBe('webgpu');
      expect(s.fallbacks[0].error.length).toBeGreaterThan(0);
    }
    await reg.close();
  });

  test('a file edited after its manifest was written is refused; an invalid manifest names the bad key', async () => {
    const dir = tinyModelsDir([{ name: 'dual-encoder' }]);
    fs.appendFileSync(path.join(dir, 'dual-encoder.onnx'), Buffer.from([0]));
    fs.writeFileSync(path.join(dir, 'broken.json'), JSON.stringify({ name: 'broken', version: '1', file: 'x.onnx', sha256: 'abc', task: 'lesion-segmentation' }));
    const reg = new ModelRegistry({ dir, providers: ['cpu'] });
    const states = await reg.loadAll();
    expect(states.find((s) => s.name === 'dual-encoder')!.lastError).toMatch(/sha256 mismatch/);
    const broken = states.find((s) => s.name === 'broken')!;
    expect(broken.status).toBe('disabled');
    expect(broken.lastError).toMatch(/sha256/);
    expect(broken.lastError).toMatch(/inputs/);
    await reg.close();
  });
});
