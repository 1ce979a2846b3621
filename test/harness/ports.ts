/**
 * Ports and readiness helpers for integration tests. Every peer binds 127.0.0.1 (or, for Orthanc,
 * 0.0.0.0 on a free port) so parallel test files never collide.
 */
import * as http from 'http';
import * as net from 'net';

/** A TCP port that was free a moment ago (listen on 127.0.0.1:0, read the port, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('freePort: no address'));
        return;
      }
      const p = addr.port;
      srv.close(() => resolve(p));
    });
  });
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
