/**
 * /readyz: can this node take a study now? (/healthz only says the process is up.)
 *   store     — a temp file can be written, fsynced and removed in the store's tmp folder
 *   disk      — free space at or above storage.minFreeMb (below it the receivers refuse data)
 *   models    — at least one model ready, or no model configured at all
 *   queue     — the job queue answers (its database is readable)
 * 200 when every check passes, else 503; the body lists each check with its detail.
 * /readyz is unauthenticated (load balancers, orchestrators): the details name no file or folder of
 * the machine (an error's path is replaced by "<path>"); the full error goes to the log.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { StrokeNode } from '../node';
import { log } from '../util/log';
import { withTimeout } from '../util/timeout';
import type { ModelRegistry } from '../models/registry';

export interface CheckResult {
  ok: boolean;
  detail: string;
}

export interface Readiness {
  ready: boolean;
  checks: { store: CheckResult; disk: CheckResult; models: CheckResult; queue: CheckResult };
}

/** Absolute paths (POSIX or Windows) in a message, quoted or not. */
const PATHS = /(^|[\s'"(=,:])(?:\/|[A-Za-z]:\\)[^\s'",)]*/g;

/** A detail fit for an unauthenticated answer: no local path, printable text only. */
export function withoutPaths(s: string): string {
  return s.replace(PATHS, '$1<path>').replace(/[^\x20-\x7e]+/g, ' ');
}

function attempt(what: string, fn: () => string): CheckResult {
  try {
    return { ok: true, detail: fn() };
  } catch (e) {
    const message = (e as Error).message ?? String(e);
    log.warn(`readiness: ${what} check failed`, { event: 'readyz.failed', check: what, error: message });
    return { ok: false, detail: withoutPaths(message) };
  }
}

export async function readiness(node: StrokeNode, registry: ModelRegistry): Promise<Readiness> {
  const store = attempt('store', () => {
    const f = path.join(node.store.tmpDir, `readyz-${crypto.randomBytes(4).toString('hex')}.probe`);
    const fd = fs.openSync(f, 'w');
    try {
      fs.writeSync(fd, 'ok');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
      fs.rmSync(f, { force: true });
    }
    return 'storage folder writable';
  });

  node.store.invalidateSpaceCache();
  const free = node.store.freeMb();
  const min = node.config.storage.minFreeMb;
  const disk: CheckResult = {
    ok: free >= min,
    detail: `${Number.isFinite(free) ? Math.round(free) : 'unknown'} MB free, watermark ${min} MB`,
  };

  const states = registry.states();
  const ready = states.filter((s) => s.status === 'ready');
  const models: CheckResult = !node.roles.worker
    ? { ok: true, detail: 'not a worker: models are loaded by the worker processes' }
    : states.length === 0
      ? { ok: true, detail: 'no model configured' }
      : {
          ok: ready.length > 0,
          detail: ready.length > 0 ? `${ready.length}/${states.length} ready (${ready.map((s) => s.name).join(', ')})` : `none of ${states.length} ready: ${states.map((s) => `${s.name} ${s.status}`).join(', ')}`,
        };

  // A shared backend (Redis) that does not answer within 2 s counts as unreachable.
  let queue: CheckResult;
  try {
    const c = await withTimeout(node.queue.counts(), 2000, `${node.queue.backend} queue did not answer within 2 s`);
    queue = { ok: true, detail: `${node.queue.backend}: ${c.ready} ready, ${c.running} running, ${c.collecting} collecting` };
  } catch (e) {
    log.warn('readiness: queue check failed', { event: 'readyz.failed', check: 'queue', error: (e as Error).message });
    queue = { ok: false, detail: withoutPaths((e as Error).message) };
  }

  return { ready: store.ok && disk.ok && models.ok && queue.ok, checks: { store, disk, models, queue } };
}
