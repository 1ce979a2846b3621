/**
 * A real Redis (Debian `redis-server`) for the shared-queue tests: 127.0.0.1 on a free port, its own
 * data folder, append-only file on (`appendfsync always` unless told otherwise, so a SIGKILL loses
 * nothing acknowledged), no RDB snapshots, `noeviction` (BullMQ needs it). Stopped by PID.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ManagedProcess, spawnManaged } from './proc';
import { freePort, waitForPort, waitForPortClosed } from './ports';

export const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';

export interface RedisHandle {
  port: number;
  dir: string;
  readonly pid: number;
  /** SIGTERM (Redis flushes the AOF and exits), wait; removes the folder unless keepDir. */
  stop(): Promise<void>;
  /** SIGKILL: a crash, nothing flushed on the way out. */
  kill(): Promise<void>;
  /** Start again on the same port and folder (reloads the AOF). */
  restart(): Promise<void>;
  tail(lines?: number): string;
}

export async function startRedis(opts: { appendfsync?: 'always' | 'everysec'; keepDir?: boolean } = {}): Promise<RedisHandle> {
  if (!fs.existsSync(REDIS_SERVER)) throw new Error(`${REDIS_SERVER} not found: run .ci/deps.sh (Debian package redis-server)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redis-'));
  const port = await freePort();
  const logFile = path.join(dir, 'redis.log');
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--appendonly', 'yes',
    '--appendfsync', opts.appendfsync ?? 'always',
    '--save', '',
    '--maxmemory-policy', 'noeviction',
    '--daemonize', 'no',
    '--protected-mode', 'yes',
  ];
  let proc: ManagedProcess;
  const launch = async () => {
    proc = spawnManaged(REDIS_SERVER, args, { cwd: dir, logFile });
    await waitForPort(port, { alive: () => proc.exited() === null, timeoutMs: 15000 });
  };
  await launch();
  return {
    port,
    dir,
    get pid() {
      return proc.pid;
    },
    async stop() {
      await proc.stop(10000);
      await waitForPortClosed(port).catch(() => undefined);
      if (!opts.keepDir && !process.env.KEEP_HARNESS_DIRS) fs.rmSync(dir, { recursive: true, force: true });
    },
    async kill() {
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await proc.stop(1000);
      await waitForPortClosed(port);
    },
    async restart() {
      if (proc.exited() === null) await proc.stop(10000);
      await waitForPortClosed(port);
      await launch();
    },
    tail: (lines = 40) => proc.tail(lines),
  };
}
