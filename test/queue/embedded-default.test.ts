/**
 * The embedded queue stays the default and needs no external service: a node built on the default
 * configuration never loads the Redis client (bullmq, ioredis); the redis backend does.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';

function loadedModules(backend: string): { backend: string; loaded: number } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'fixtures', 'loaded-modules.ts'), backend], {
    env: { ...process.env, STROKE_NODE_LOG_SILENT: '1' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

test('the default (embedded) queue loads no Redis client; the redis backend does', () => {
  expect(loadedModules('embedded')).toEqual({ backend: 'embedded', loaded: 0 });
  const redis = loadedModules('redis');
  expect(redis.backend).toBe('redis');
  expect(redis.loaded).toBeGreaterThan(0);
});
