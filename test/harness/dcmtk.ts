/**
 * DCMTK command-line peers for integration tests: storescu / echoscu as senders, storescp as a
 * destination. TCP_NODELAY=1 is always set in their environment (without it DCMTK stalls ~44 ms
 * per instance, see DESIGN.md). Background processes are stopped by PID.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { waitForPort } from './ports';
import { ManagedProcess, spawnManaged } from './proc';

export const dcmtkEnv = (): NodeJS.ProcessEnv => ({ ...process.env, TCP_NODELAY: '1' });

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time of the run, ms. */
  ms: number;
}

export function runTool(cmd: string, args: string[], timeoutMs = 120000): Promise<ToolResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(cmd, args, { env: dcmtkEnv(), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      const code = e ? (typeof e.code === 'number' ? e.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr), ms: Date.now() - t0 });
    });
  });
}

export interface StoreFileStatus {
  file: string;
  /** success / warning / failure (a C-STORE response status) / error (not sent: bad file, network). */
  outcome: 'success' | 'warning' | 'failure' | 'error';
  /** DCMTK's text, e.g. "Success", "Refused: OutOfResources", or the error line. */
  detail: string;
}

export interface StorescuResult extends ToolResult {
  files: StoreFileStatus[];
  /** True when the association was rejected or could not be established. */
  associationFailed: boolean;
  /** The association-level error lines (E: ...), if any. */
  errors: string[];
}

export interface StorescuOptions {
  callingAet?: string;
  calledAet?: string;
  /** Extra storescu flags (e.g. ['-xs'] to propose only explicit LE, ['+sd'] to scan a directory). */
  extraArgs?: string[];
  timeoutMs?: number;
}

/** Parse `storescu -v` output into one status per file it tried to send. */
export function parseStorescuOutput(text: string): { files: StoreFileStatus[]; errors: string[]; associationFailed: boolean } {
  const files: StoreFileStatus[] = [];
  const errors: string[] = [];
  let current: StoreFileStatus | null = null;
  let associationFailed = false;
  for (const line of text.split('\n')) {
    const sending = /^I: Sending file: (.*)$/.exec(line);
    if (sending) {
      current = { file: sending[1].trim(), outcome: 'error', detail: 'no response' };
      files.push(current);
      continue;
    }
    const resp = /^I: Received Store Response \((.*)\)\s*$/.exec(line);
    if (resp && current) {
      const detail = resp[1];
      current.detail = detail;
      current.outcome = /^Success/i.test(detail) ? 'success' : /^Warning/i.test(detail) ? 'warning' : 'failure';
      current = null;
      continue;
    }
    if (line.startsWith('E: ') || line.startsWith('F: ')) {
      errors.push(line.slice(3));
      if (/Association (Rejected|Request Failed)|Peer aborted|Association Aborted/i.test(line)) associationFailed = true;
      const bad = /^E: Bad DICOM file: (.*?): (.*)$/.exec(line);
      if (bad) {
        files.push({ file: bad[1], outcome: 'error', detail: bad[2] });
      } else if (current && current.detail === 'no response') {
        current.detail = line.slice(3);
      }
    }
  }
  return { files, errors, associationFailed };
}

/** Send files (or directories with extraArgs ['+sd', '+r']) with storescu -v. */
export async function storescu(
  host: string,
  port: number,
  paths: string[],
  opts: StorescuOptions = {},
): Promise<StorescuResult> {
  const args = [
    '-v',
    '-aet',
    opts.callingAet ?? 'STORESCU',
    '-aec',
    opts.calledAet ?? 'ANY-SCP',
    ...(opts.extraArgs ?? []),
    host,
    String(port),
    ...paths,
  ];
  const r = await runTool('storescu', args, opts.timeoutMs);
  const parsed = parseStorescuOutput(`${r.stdout}\n${r.stderr}`);
  return { ...r, ...parsed };
}

/** C-ECHO with echoscu; code 0 and "Success" when the peer answered. */
export async function echoscu(
  host: string,
  port: number,
  opts: { callingAet?: string; calledAet?: string; timeoutMs?: number } = {},
): Promise<ToolResult & { ok: boolean }> {
  const r = await runTool(
    'echoscu',
    ['-v', '-aet', opts.callingAet ?? 'ECHOSCU', '-aec', opts.calledAet ?? 'ANY-SCP', host, String(port)],
    opts.timeoutMs ?? 30000,
  );
  const ok = r.code === 0 && /Received Echo Response \(Success\)/.test(`${r.stdout}\n${r.stderr}`);
  return { ...r, ok };
}

export interface StorescpHandle {
  port: number;
  aet: string;
  dir: string;
  pid: number;
  logFile: string;
  /** Part 10 files received so far (storescp names them <modality>.<SOPInstanceUID>). */
  receivedFiles(): string[];
  stop(): Promise<void>;
  tail(lines?: number): string;
}

/**
 * Start storescp in the background, writing received instances into `dir` exactly as received
 * (+B bit-preserving), accepting all transfer syntaxes it supports (+xa). Waits for the port.
 * Note storescp binds all interfaces: use a free port.
 */
export async function startStorescp(
  dir: string,
  port: number,
  aet = 'STORESCP',
  extraArgs: string[] = [],
): Promise<StorescpHandle> {
  fs.mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, '..', `storescp-${port}.log`);
  const proc: ManagedProcess = spawnManaged(
    'storescp',
    ['-v', '-aet', aet, '-od', dir, '+xa', '+B', ...extraArgs, String(port)],
    { env: dcmtkEnv(), logFile },
  );
  try {
    await waitForPort(port, { timeoutMs: 15000, alive: () => proc.exited() === null });
  } catch (e) {
    await proc.stop(1000);
    throw new Error(`storescp did not start: ${(e as Error).message}\n${proc.tail(20)}`);
  }
  return {
    port,
    aet,
    dir,
    pid: proc.pid,
    logFile,
    receivedFiles: () =>
      fs
        .readdirSync(dir)
        .filter((f) => !f.startsWith('.'))
        .map((f) => path.join(dir, f)),
    stop: () => proc.stop(5000),
    tail: (lines = 40) => proc.tail(lines),
  };
}
