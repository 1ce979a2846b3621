/**
 * Background processes for integration tests: spawned with their output in a log file, stopped by
 * PID (SIGTERM, wait for the exit, SIGKILL after a timeout), never by name.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';

export interface ManagedProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** File that receives stdout and stderr. */
  readonly logFile: string;
  /** Exit code/signal once exited, else null. */
  exited(): { code: number | null; signal: NodeJS.Signals | null } | null;
  /** SIGTERM, wait for exit; SIGKILL if still alive after `graceMs`. Idempotent. */
  stop(graceMs?: number): Promise<void>;
  /** Last `lines` lines of the log (for failure messages). */
  tail(lines?: number): string;
}

export function tailFile(file: string, lines = 40): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function spawnManaged(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; logFile: string },
): ManagedProcess {
  const fd = fs.openSync(opts.logFile, 'a');
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', fd, fd],
    detached: false,
  });
  fs.closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  const pid = child.pid;
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve();
    });
    child.once('error', (err) => {
      fs.appendFileSync(opts.logFile, `\n[harness] spawn error: ${err.message}\n`);
      exitInfo = exitInfo ?? { code: -1, signal: null };
      resolve();
    });
  });
  let stopping: Promise<void> | null = null;
  return {
    pid,
    child,
    logFile: opts.logFile,
    exited: () => exitInfo,
    tail: (lines = 40) => tailFile(opts.logFile, lines),
    stop(graceMs = 10000): Promise<void> {
      if (stopping) return stopping;
      stopping = (async () => {
        if (exitInfo) return;
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* already gone */
        }
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([
          exitPromise.then(() => false),
          new Promise<boolean>((r) => {
            timer = setTimeout(() => r(true), graceMs);
          }),
        ]);
        if (timer) clearTimeout(timer);
        if (timedOut && !exitInfo) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
          await exitPromise;
        }
      })();
      return stopping;
    },
  };
}
