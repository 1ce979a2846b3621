/**
 * STOW-RS with dicomweb-client: one POST (multipart/related) per batch and study.
 *
 * dicomweb-client uses XMLHttpRequest, which Node lacks: xhr2 is installed as the global one.
 * The response (application/dicom+json) is parsed per instance: ReferencedSOPSequence (stored,
 * with a WarningReason when coerced), FailedSOPSequence (FailureReason). 200 = all stored,
 * 202 = some failed or warnings, 409 = all failed; other 4xx/5xx fail the whole batch with the status.
 */
import * as fs from 'fs';
import { api } from 'dicomweb-client';
import type { StowDestination } from '../config/schema';
import { log, ref } from '../util/log';
import type { BatchResult, ItemResult, Sender, SendItem } from './sender';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const XHR2: unknown = require('xhr2');
const g = globalThis as { XMLHttpRequest?: unknown };
if (g.XMLHttpRequest === undefined) g.XMLHttpRequest = XHR2;

interface XhrLike {
  timeout: number;
}

type StowClient = InstanceType<typeof api.DICOMwebClient>;
/** dicomweb-client's request options (types reference the DOM XMLHttpRequest, absent in Node's lib). */
type StowRequestOptions = NonNullable<Parameters<StowClient['storeInstances']>[0]['request']>;

type DicomJson = Record<string, { vr: string; Value?: unknown[] }>;

const TAG = {
  FailedSOPSequence: '00081198',
  ReferencedSOPSequence: '00081199',
  ReferencedSOPInstanceUID: '00081155',
  FailureReason: '00081197',
  WarningReason: '00081196',
} as const;

/** PS3.18 / PS3.4 failure reasons commonly returned in FailedSOPSequence. */
function failureText(code: number | undefined): string {
  if (code === undefined) return 'failed (no FailureReason)';
  const hex = `0x${code.toString(16).toUpperCase().padStart(4, '0')}`;
  const known: Record<number, string> = {
    0xa700: 'out of resources',
    0xa900: 'data set does not match SOP class',
    0xc000: 'cannot understand',
    0x0110: 'processing failure',
    0x0122: 'SOP class not supported',
    0x0124: 'not authorized',
    0xa770: 'transfer syntax not supported',
    0xc122: 'referenced transfer syntax not supported',
    0x0111: 'duplicate SOP instance',
  };
  const k = known[code] ?? ((code & 0xff00) === 0xa700 ? 'out of resources' : (code & 0xf000) === 0xc000 ? 'cannot understand' : 'failure');
  return `${hex}: ${k}`;
}

function seqItems(ds: DicomJson, tag: string): DicomJson[] {
  const v = ds[tag]?.Value;
  return Array.isArray(v) ? (v as DicomJson[]) : [];
}
function firstString(ds: DicomJson, tag: string): string | undefined {
  const v = ds[tag]?.Value?.[0];
  return v === undefined ? undefined : String(v);
}
function firstNumber(ds: DicomJson, tag: string): number | undefined {
  const v = ds[tag]?.Value?.[0];
  return typeof v === 'number' ? v : v === undefined ? undefined : Number(v);
}

export interface StowResponse {
  /** True when the body was a STOW-RS response dataset (it had a Referenced or Failed SOP Sequence). */
  parsed: boolean;
  instances: Map<string, { ok: boolean; status: number | null; message?: string }>;
}

/** Parse a STOW-RS response body (application/dicom+json) into per-SOP-instance outcomes. */
export function parseStowResponse(body: unknown): StowResponse {
  const instances = new Map<string, { ok: boolean; status: number | null; message?: string }>();
  let json: unknown = body;
  if (body instanceof ArrayBuffer) return parseStowResponse(Buffer.from(body).toString('utf8'));
  if (typeof body === 'string') {
    if (body.trim() === '') return { parsed: false, instances };
    try {
      json = JSON.parse(body);
    } catch {
      return { parsed: false, instances };
    }
  }
  const ds = (Array.isArray(json) ? json[0] : json) as DicomJson | undefined;
  if (!ds || typeof ds !== 'object') return { parsed: false, instances };
  const parsed = TAG.ReferencedSOPSequence in ds || TAG.FailedSOPSequence in ds;
  for (const it of seqItems(ds, TAG.ReferencedSOPSequence)) {
    const uid = firstString(it, TAG.ReferencedSOPInstanceUID);
    if (!uid) continue;
    const w = firstNumber(it, TAG.WarningReason);
    instances.set(uid, { ok: true, status: w ?? 0, message: w !== undefined ? `Warning 0x${w.toString(16).toUpperCase()}` : undefined });
  }
  for (const it of seqItems(ds, TAG.FailedSOPSequence)) {
    const uid = firstString(it, TAG.ReferencedSOPInstanceUID);
    if (!uid) continue;
    const code = firstNumber(it, TAG.FailureReason);
    instances.set(uid, { ok: false, status: code ?? null, message: `STOW-RS refused the instance: ${failureText(code)}` });
  }
  return { parsed, instances };
}

export interface StowSenderOptions {
  timeoutMs?: number;
}

function httpReason(status: number): string {
  if (status === 0) return 'no HTTP response (connection refused, reset or timed out)';
  if (status === 401 || status === 403) return `HTTP ${status}: not authorised (check bearerToken)`;
  if (status === 404) return 'HTTP 404: no STOW-RS endpoint at this URL';
  if (status === 413) return 'HTTP 413: request too large for the destination';
  if (status === 415) return 'HTTP 415: destination does not accept multipart/related application/dicom';
  if (status >= 500) return `HTTP ${status}: destination server error`;
  return `HTTP ${status}`;
}

export class StowSender implements Sender {
  constructor(
    private readonly dest: StowDestination,
    private readonly opts: StowSenderOptions = {},
  ) {}

  private client(): StowClient {
    const headers: Record<string, string> = { Accept: 'application/dicom+json' };
    if (this.dest.bearerToken) headers.Authorization = `Bearer ${this.dest.bearerToken}`;
    return new api.DICOMwebClient({ url: this.dest.url.replace(/\/+$/, ''), headers, singlepart: false, verbose: false });
  }

  async send(items: SendItem[]): Promise<BatchResult> {
    const t0 = Date.now();
    const results: ItemResult[] = [];
    let bytes = 0;
    let batchError: string | undefined;
    // One request per study (STOW-RS /studies/{uid} lets the server check membership).
    const byStudy = new Map<string, { item: SendItem; data: ArrayBuffer }[]>();
    for (const it of items) {
      let buf: Buffer;
      try {
        buf = fs.readFileSync(it.path);
      } catch {
        results.push({ id: it.id, ok: false, status: null, message: `file missing on disk: ${it.path}`, permanent: true });
        continue;
      }
      bytes += buf.length;
      const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
      const list = byStudy.get(it.studyInstanceUid) ?? [];
      list.push({ item: it, data: ab });
      byStudy.set(it.studyInstanceUid, list);
    }

    for (const [study, parts] of byStudy) {
      const XhrCtor = g.XMLHttpRequest as new () => XhrLike;
      const xhr = new XhrCtor();
      xhr.timeout = this.opts.timeoutMs ?? 300000;
      let status = 200;
      let body: unknown;
      try {
        body = await this.client().storeInstances({
          datasets: parts.map((p) => p.data),
          ...(study ? { studyInstanceUID: study } : {}),
          request: { instance: xhr } as unknown as StowRequestOptions, // xhr2 instance with our timeout
        });
      } catch (e) {
        const err = e as Error & { status?: number; response?: unknown };
        status = typeof err.status === 'number' ? err.status : 0;
        body = err.response;
      }
      const response = parseStowResponse(body);
      const requestFailed = status !== 200 && status !== 202 && status !== 409;
      if (requestFailed) batchError = httpReason(status);
      for (const { item } of parts) {
        const r = response.instances.get(item.sopInstanceUid);
        if (r) {
          results.push({ id: item.id, ok: r.ok, status: r.status, message: r.message });
        } else if (requestFailed) {
          results.push({ id: item.id, ok: false, status: status || null, message: httpReason(status) });
        } else if (response.parsed || status !== 200) {
          // Measured: Orthanc 1.10 answers 200 with both sequences empty when it could not write the
          // instance to its storage. Only a ReferencedSOPSequence entry counts as stored.
          results.push({
            id: item.id,
            ok: false,
            status,
            message: `HTTP ${status}: the destination did not confirm storing the instance (not in ReferencedSOPSequence)`,
          });
        } else {
          // 200 without a response dataset: nothing to check against; PS3.18 says 200 = all stored.
          results.push({ id: item.id, ok: true, status: 200, message: 'stored (HTTP 200 without a STOW-RS response body)' });
        }
      }
    }
    if (!batchError && results.length > 0 && results.every((r) => !r.ok)) batchError = results[0].message;
    const ms = Date.now() - t0;
    log.info('egress: STOW-RS batch done', {
      event: 'egress.stow_batch',
      destination: this.dest.name,
      files: items.length,
      ok: results.filter((r) => r.ok).length,
      ms,
      bytes,
      studies: [...byStudy.keys()].map(ref),
      error: batchError,
    });
    return { items: results, error: batchError, ms, bytes };
  }
}
