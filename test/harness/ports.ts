/**
 * Ports and readiness helpers for integration tests. Every peer binds 127.0.0.1 (or, for Orthanc,
 * 0.0.0.0 on a free port) so parallel test files never collide.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';

/** Linux's ephemeral range (outgoing connections take their local ports from it), or undefined. */
function ephemeralRange(): [number, number] | undefined {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return Number.isInteger(lo) && Number.isInteger(hi) ? [lo, hi] : undefined;
  } catch {
    return undefined;
  }
}

/** Listen on 127.0.0.1:port (0: any), read the port, close: the port, or undefined when it is taken. */
function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(undefined));
    srv.listen(port, '127.0.0.1', () => {
      const addr = srv.address();
      const p = addr !== null && typeof addr !== 'string' ? addr.port : undefined;
      srv.close(() => resolve(p));
    });
  });
}

/** Ports this process already handed out (never twice). */
const handedOut = new Set<number>();

/**
 * A TCP port that was free a moment ago. Drawn at random BELOW the kernel's ephemeral range where there is room
 * (Linux: 32768-60999 by default): a port from that range can be taken between this check and the peer's listen by
 * any outgoing connection of the machine (a C-STORE client, Orthanc, DCMTK), which made a node start fail with
 * EADDRINUSE on a busy CI machine. Below it only another listener can take it, and the draw is random per worker.
 * Elsewhere (no /proc, or no room below the range): the kernel's choice (listen on port 0).
 */
export async function freePort(): Promise<number> {
  const range = ephemeralRange();
  const lo = 20000;
  const hi = range ? range[0] - 1 : 0;
  if (hi - lo >= 1000) {
    for (let i = 0; i < 200; i++) {
      const p = lo + Math.floor(Math.random() * (hi - lo + 1));
      if (handedOut.has(p)) continue;
      if ((await probe(p)) === p) {
        handedOut.add(p);
        return p;
      }
    }
  }
  for (;;) {
    const p = await probe(0);
    if (p === undefined) throw new Error('freePort: no address');
    if (!handedOut.has(p)) {
      handedOut.add(p);
      return p;
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** True when a TCP connection to host:port succeeds within `timeoutMs`. */
export function canConnect(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    const done = (ok: boolean): void => {
      sock.removeAllListeners();
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/**
 * Wait until host:port accepts TCP connections. `alive` (optional) is polled too: when it returns
 * false (the process died) the wait fails at once instead of running into the timeout.
 */
export async function waitForPort(
  port: number,
  opts: { host?: string; timeoutMs?: number; alive?: () => boolean } = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20000);
  while (Date.now() < deadline) {
    if (opts.alive && !opts.alive()) throw new Error(`process died before port ${port} opened`);
    if (await canConnect(port, opts.host ?? '127.0.0.1', 500)) return;
    await sleep(100);
  }
  throw new Error(`port ${opts.host ?? '127.0.0.1'}:${port} did not open within ${opts.timeoutMs ?? 20000} ms`);
}

/** Wait until a TCP port no longer accepts connections (a stopped peer really went away). */
export async function waitForPortClosed(port: number, host = '127.0.0.1', timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await canConnect(port, host, 300))) return;
    await sleep(100);
  }
  throw new Error(`port ${host}:${port} still open after ${timeoutMs} ms`);
}

/** One GET; resolves with the status code (0 on a connection error). */
export function httpStatus(url: string, timeoutMs = 2000): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => {
      req.destroy();
      resolve(0);
    });
    req.on('error', () => resolve(0));
  });
}

/** Wait until GET url answers with a 2xx. */
export async function waitForHttp(
  url: string,
  opts: { timeoutMs?: number; alive?: () => boolean } = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 20000;
  const deadline = Date.now() + timeoutMs;
  let last = 0;
  while (Date.now() < deadline) {
    if (opts.alive && !opts.alive()) throw new Error(`process died before ${url} answered`);
    last = await httpStatus(url);
    if (last >= 200 && last < 300) return;
    await sleep(150);
  }
  throw new Error(`${url} did not answer 2xx within ${timeoutMs} ms (last status ${last})`);
}

/** Is a process with this PID still alive? (signal 0 probes without killing) */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
