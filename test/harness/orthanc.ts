/**
 * A real Orthanc (Debian /usr/sbin/Orthanc + DICOMweb plugin) for integration tests.
 *
 * Each instance gets its own temp dir (storage, index, config, log) and free HTTP/DICOM ports.
 * Orthanc binds both ports on 0.0.0.0 (it has no bind-address option); RemoteAccessAllowed=false
 * keeps its REST API to localhost. Stopped by PID; the old process is awaited before a restart.
 *
 *   const o = await startOrthanc({ modalities: { NODE: ['STROKEAI', '127.0.0.1', 11112] } });
 *   await o.uploadFile(buf); await o.stop();
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { freePort, waitForHttp, waitForPortClosed } from './ports';
import { ManagedProcess, spawnManaged } from './proc';

export const ORTHANC_BIN = process.env.ORTHANC_BIN ?? '/usr/sbin/Orthanc';

let dicomWebPluginCache: string | undefined;

/** Path of the DICOMweb plugin shared library, from the orthanc-dicomweb package's file list. */
export function dicomWebPluginPath(): string {
  if (dicomWebPluginCache) return dicomWebPluginCache;
  const candidates: string[] = [];
  try {
    const files = execFileSync('dpkg', ['-L', 'orthanc-dicomweb'], { encoding: 'utf8' }).split('\n');
    candidates.push(...files.filter((f) => /libOrthancDicomWeb\.so/.test(f)));
  } catch {
    /* not a Debian system: fall back to the usual paths */
  }
  candidates.push('/usr/share/orthanc/plugins/libOrthancDicomWeb.so', '/usr/lib/orthanc/libOrthancDicomWeb.so');
  const found = candidates.find((f) => fs.existsSync(f));
  if (!found) throw new Error('Orthanc DICOMweb plugin not found (apt-get install orthanc-dicomweb)');
  dicomWebPluginCache = found;
  return found;
}

export function orthancAvailable(): boolean {
  return fs.existsSync(ORTHANC_BIN);
}

/** A DICOMweb server Orthanc can STOW to: a URL, or a URL with extra HTTP headers (e.g. a bearer token). */
export type DicomWebServer = string | { Url: string; HttpHeaders?: Record<string, string> };

export interface OrthancOptions {
  /** DicomModalities: name → [AE title, host, port]. */
  modalities?: Record<string, [string, string, number]>;
  /** Orthanc's own AE title (default ORTHANC). */
  aet?: string;
  /** DicomWeb.Servers: name → server, so Orthanc can STOW to the node. */
  dicomWebServers?: Record<string, DicomWebServer>;
  /** Extra/overriding top-level config keys (e.g. { DicomAlwaysAllowStore: false }). */
  config?: Record<string, unknown>;
  /** Reuse these ports instead of picking free ones. */
  httpPort?: number;
  dicomPort?: number;
  /** Keep the temp dir after stop() (it is also kept, and its path printed, when start fails). */
  keepDir?: boolean;
}

export interface OrthancInstanceInfo {
  ID: string;
  ParentStudy?: string;
  ParentSeries?: string;
  ParentPatient?: string;
  Status?: string;
}

export interface OrthancHandle {
  httpUrl: string;
  /** DICOMweb root, e.g. http://127.0.0.1:PORT/dicom-web */
  dicomWebUrl: string;
  httpPort: number;
  dicomPort: number;
  aet: string;
  dir: string;
  pid: number;
  logFile: string;
  /** Stop the process (SIGTERM, SIGKILL after a timeout) and remove the temp dir unless keepDir. */
  stop(): Promise<void>;
  /** Stop the process but keep its storage, ports and config (simulate "PACS down"). */
  pause(): Promise<void>;
  /** Start again after pause(), same ports/storage; waits until /system answers. */
  resume(): Promise<void>;
  isRunning(): boolean;
  /** Last lines of Orthanc's log. */
  tail(lines?: number): string;
  get<T = unknown>(p: string): Promise<T>;
  post<T = unknown>(p: string, body: unknown): Promise<T>;
  /** POST /instances with a Part 10 file. */
  uploadFile(buf: Buffer): Promise<OrthancInstanceInfo>;
  /** Orthanc IDs of all stored instances. */
  listInstances(): Promise<string[]>;
  /** SOPInstanceUIDs of all stored instances (MainDicomTags). */
  listSopInstanceUids(): Promise<string[]>;
  /** Orthanc ID of the instance with this SOPInstanceUID (via /tools/lookup), or undefined. */
  instanceIdOf(sopInstanceUid: string): Promise<string | undefined>;
  /** Orthanc IDs of studies matching a query (default: all), via /tools/find. */
  findStudies(query?: Record<string, string>): Promise<string[]>;
  /** C-STORE resources to a configured modality, synchronously. */
  storeToModality(modality: string, resourceIds: string[]): Promise<unknown>;
  /** STOW-RS resources to a configured DICOMweb server, synchronously. */
  stowTo(server: string, resourceIds: string[]): Promise<unknown>;
}

class OrthancHttpError extends Error {
  constructor(
    public readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function buildConfig(dir: string, httpPort: number, dicomPort: number, aet: string, opts: OrthancOptions): object {
  const cfg: Record<string, unknown> = {
    Name: `test-${path.basename(dir)}`,
    StorageDirectory: path.join(dir, 'storage'),
    IndexDirectory: path.join(dir, 'index'),
    HttpPort: httpPort,
    DicomPort: dicomPort,
    DicomAet: aet,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    HttpServerEnabled: true,
    DicomServerEnabled: true,
    DicomAlwaysAllowStore: true,
    DicomAlwaysAllowEcho: true,
    DicomCheckCalledAet: false,
    DicomCheckModalityHost: false,
    DicomModalities: opts.modalities ?? {},
    SaveJobs: false,
    StorageCompression: false,
    Plugins: [dicomWebPluginPath()],
    DicomWeb: {
      Enable: true,
      Root: '/dicom-web/',
      EnableWado: true,
      Servers: opts.dicomWebServers ?? {},
    },
    ...opts.config,
  };
  return cfg;
}

export async function startOrthanc(opts: OrthancOptions = {}): Promise<OrthancHandle> {
  if (!orthancAvailable()) throw new Error(`${ORTHANC_BIN} not found (apt-get install orthanc orthanc-dicomweb)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orthanc-test-'));
  const aet = opts.aet ?? 'ORTHANC';
  let httpPort = opts.httpPort ?? 0;
  let dicomPort = opts.dicomPort ?? 0;
  const configFile = path.join(dir, 'orthanc.json');
  const logFile = path.join(dir, 'orthanc.log');
  let proc: ManagedProcess | null = null;

  const launch = async (): Promise<void> => {
    fs.writeFileSync(configFile, JSON.stringify(buildConfig(dir, httpPort, dicomPort, aet, opts), null, 2));
    fs.appendFileSync(logFile, `\n[harness] starting Orthanc http=${httpPort} dicom=${dicomPort}\n`);
    const p = spawnManaged(ORTHANC_BIN, [configFile], { cwd: dir, logFile });
    proc = p;
    try {
      await waitForHttp(`http://127.0.0.1:${httpPort}/system`, { timeoutMs: 30000, alive: () => p.exited() === null });
    } catch (e) {
      await p.stop(2000);
      throw new Error(`Orthanc did not start (${(e as Error).message}); dir ${dir}; log tail:\n${p.tail(30)}`);
    }
  };

  // A free port can be taken between freePort() and Orthanc's bind: retry with fresh ports.
  let lastErr: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (!opts.httpPort || attempt > 0) httpPort = opts.httpPort ?? (await freePort());
    if (!opts.dicomPort || attempt > 0) dicomPort = opts.dicomPort ?? (await freePort());
    try {
      await launch();
      lastErr = undefined;
      break;
    } catch (e) {
      lastErr = e as Error;
      if (opts.httpPort && opts.dicomPort) break;
    }
  }
  if (lastErr) throw lastErr;

  const httpUrl = `http://127.0.0.1:${httpPort}`;

  async function request<T>(method: string, p: string, body?: unknown, contentType?: string): Promise<T> {
    const init: RequestInit = { method };
    if (body !== undefined) {
      if (Buffer.isBuffer(body)) {
        init.body = new Uint8Array(body); // a copy backed by a plain ArrayBuffer (what BodyInit accepts)
        init.headers = { 'Content-Type': contentType ?? 'application/dicom' };
      } else {
        init.body = JSON.stringify(body);
        init.headers = { 'Content-Type': 'application/json' };
      }
    }
    const res = await fetch(httpUrl + p, init);
    const text = await res.text();
    if (!res.ok) throw new OrthancHttpError(res.status, `Orthanc ${method} ${p}: HTTP ${res.status} ${text.slice(0, 500)}`);
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      return text as unknown as T;
    }
  }

  const current = (): ManagedProcess => {
    if (!proc) throw new Error('Orthanc not started');
    return proc;
  };

  const handle: OrthancHandle = {
    httpUrl,
    dicomWebUrl: `${httpUrl}/dicom-web`,
    httpPort,
    dicomPort,
    aet,
    dir,
    get pid() {
      return current().pid;
    },
    logFile,
    async stop() {
      if (proc) await proc.stop();
      // Wait until the ports are really released, so a restart on the same ports cannot fail.
      await waitForPortClosed(httpPort).catch(() => undefined);
      if (!opts.keepDir && !process.env.KEEP_HARNESS_DIRS) fs.rmSync(dir, { recursive: true, force: true });
    },
    async pause() {
      if (proc) await proc.stop();
      await waitForPortClosed(httpPort);
      await waitForPortClosed(dicomPort);
    },
    async resume() {
      if (proc && proc.exited() === null) return;
      await launch();
    },
    isRunning: () => proc !== null && proc.exited() === null,
    tail: (lines = 40) => current().tail(lines),
    get: <T>(p: string) => request<T>('GET', p),
    post: <T>(p: string, body: unknown) => request<T>('POST', p, body),
    uploadFile: (buf: Buffer) => request<OrthancInstanceInfo>('POST', '/instances', buf, 'application/dicom'),
    listInstances: () => request<string[]>('GET', '/instances'),
    async listSopInstanceUids() {
      const all = await request<Array<{ MainDicomTags: { SOPInstanceUID?: string } }>>('GET', '/instances?expand');
      return all.map((i) => i.MainDicomTags.SOPInstanceUID ?? '').filter((u) => u !== '');
    },
    async instanceIdOf(uid: string) {
      const res = await fetch(`${httpUrl}/tools/lookup`, { method: 'POST', body: uid });
      if (!res.ok) throw new OrthancHttpError(res.status, `Orthanc /tools/lookup: HTTP ${res.status}`);
      const hits = (await res.json()) as Array<{ ID: string; Type: string }>;
      return hits.find((h) => h.Type === 'Instance')?.ID;
    },
    findStudies: (query: Record<string, string> = {}) =>
      request<string[]>('POST', '/tools/find', { Level: 'Study', Query: query }),
    storeToModality: (modality: string, resourceIds: string[]) =>
      request('POST', `/modalities/${encodeURIComponent(modality)}/store`, { Resources: resourceIds, Synchronous: true }),
    stowTo: (server: string, resourceIds: string[]) =>
      request('POST', `/dicom-web/servers/${encodeURIComponent(server)}/stow`, {
        Resources: resourceIds,
        Synchronous: true,
      }),
  };
  return handle;
}
