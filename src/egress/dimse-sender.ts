/**
 * C-STORE SCU with dcmjs-dimse: one association per batch (not per file).
 *
 * Presentation contexts: dcmjs-dimse proposes, per SOP class, Implicit + Explicit VR Little Endian,
 * and for a file stored in another syntax (e.g. JPEG Lossless) an extra context with that syntax.
 * It prefers the context whose accepted syntax is the file's own (sent as stored), otherwise it
 * transcodes to the accepted one: uncompressed ↔ uncompressed is lossless; compressed → little
 * endian needs the dcmjs-codecs wasm, initialised here on first need (DESIGN.md: without it
 * dcmjs-dimse drops such a request silently). A request with no accepted context is skipped by the
 * library without a response: we detect that from the negotiation and report it per file.
 *
 * TCP_NODELAY is set on the socket (dcmjs-dimse never does; +35% measured). Timeouts: connect,
 * association (ARTIM), PDU, and a whole-batch guard that aborts the association.
 *
 * DICOM TLS (`destinations[].tls`, PS3.15 B.9): dcmjs-dimse's `securityOptions` (it then connects
 * with `tls.connect`); the PEM files are read when the sender is built (start-up). A handshake that
 * fails (certificate not trusted, our certificate refused, no TLS on the port) is reported from the
 * socket's error code as an operator-readable text in the outbox row, not dcmjs-dimse's bare message.
 */
import * as fs from 'fs';
import type * as tlsTypes from 'tls';
import { Client, constants, log as dimseLog, requests, responses, Transcoding } from 'dcmjs-dimse';
import type { DimseDestination } from '../config/schema';
import { DenaturalDataset, readPart10Raw, TransferSyntax } from '../dicom/dcmjs';
import { log, ref } from '../util/log';
import { clientTlsOptions, describeClientTlsError } from '../net/tls';
import type { BatchResult, ItemResult, Sender, SendItem } from './sender';

try {
  dimseLog.setLevel('error');
} catch {
  /* older logger */
}

const UNCOMPRESSED = new Set<string>([
  TransferSyntax.ImplicitVRLittleEndian,
  TransferSyntax.ExplicitVRLittleEndian,
  TransferSyntax.ExplicitVRBigEndian,
]);

export interface DimseSenderOptions {
  /** AE title the node presents when the destination sets none. */
  defaultCallingAeTitle: string;
  connectTimeoutMs?: number;
  associationTimeoutMs?: number;
  pduTimeoutMs?: number;
  /** Abort the association if the whole batch takes longer than this. */
  batchTimeoutMs?: number;
}

/** Meaning of a C-STORE response status (PS3.4 B.2.3, PS3.7 Annex C). */
export function describeStoreStatus(status: number): { kind: 'success' | 'warning' | 'failure'; text: string } {
  const hex = `0x${status.toString(16).toUpperCase().padStart(4, '0')}`;
  if (status === 0x0000) return { kind: 'success', text: 'Success' };
  if (status === 0x0001 || (status & 0xf000) === 0xb000) {
    const why =
      status === 0xb000
        ? 'coercion of data elements'
        : status === 0xb007
          ? 'data set does not match SOP class'
          : status === 0xb006
            ? 'elements discarded'
            : 'warning';
    return { kind: 'warning', text: `Warning ${hex}: ${why}` };
  }
  if ((status & 0xff00) === 0xa700) return { kind: 'failure', text: `Refused ${hex}: out of resources` };
  if ((status & 0xff00) === 0xa900) return { kind: 'failure', text: `Error ${hex}: data set does not match SOP class` };
  if ((status & 0xf000) === 0xc000) return { kind: 'failure', text: `Error ${hex}: cannot understand` };
  const named: Record<number, string> = {
    0x0122: 'SOP class not supported',
    0x0124: 'not authorized',
    0x0110: 'processing failure',
    0x0117: 'invalid object instance',
    0x0210: 'duplicate invocation',
    0x0211: 'unrecognized operation',
    0x0212: 'mistyped argument',
    0x0213: 'resource limitation',
  };
  return { kind: 'failure', text: `Failure ${hex}: ${named[status] ?? 'unknown status'}` };
}

/** Operator-readable text for an A-ASSOCIATE-RJ. */
export function describeReject(
  r: { result: number; source: number; reason: number },
  callingAe: string,
  calledAe: string,
): string {
  const { RejectSource, RejectReason, RejectResult } = constants;
  const perm = r.result === RejectResult.Permanent ? 'permanent' : 'transient';
  if (r.source === RejectSource.ServiceUser) {
    if (r.reason === RejectReason.CallingAeNotRecognized) return `destination refused calling AE ${callingAe} (${perm})`;
    if (r.reason === RejectReason.CalledAeNotRecognized) return `destination does not answer to called AE ${calledAe} (${perm})`;
    if (r.reason === RejectReason.ApplicationContextNotSupported) return `association rejected: application context not supported (${perm})`;
    return `association rejected by the destination, no reason given (${perm})`;
  }
  if (r.source === RejectSource.ServiceProviderPresentation) {
    if (r.reason === RejectReason.TemporaryCongestion) return `association rejected: destination congested (${perm})`;
    if (r.reason === RejectReason.LocalLimitExceeded) return `association rejected: destination's association limit exceeded (${perm})`;
  }
  return `association rejected (result ${r.result}, source ${r.source}, reason ${r.reason})`;
}

export interface NameMapEntry {
  tag: string;
  vr: string;
  name: string;
  vm: string;
  version: string;
}

/**
 * dcmjs-dimse re-encodes every dataset through dcmjs, which silently DROPS any element it cannot
 * name (private tags and their creators: 29 elements of a GE CT slice, measured). Passing a name map
 * with those tags, keyed by their hex tag as dcmjs names them, keeps them. Built from the files'
 * headers (up to PixelData), sequences included.
 */
export function privateNameMap(paths: string[]): Record<string, NameMapEntry> {
  const out: Record<string, NameMapEntry> = {};
  const visit = (dict: DenaturalDataset): void => {
    for (const [tag, el] of Object.entries(dict)) {
      const group = parseInt(tag.slice(0, 4), 16);
      if (group % 2 === 1 && !out[tag]) {
        out[tag] = { tag: `(${tag.slice(0, 4)},${tag.slice(4)})`, vr: el.vr || 'UN', name: tag, vm: '1-n', version: 'PrivateTag' };
      }
      if (el.vr === 'SQ' && Array.isArray(el.Value)) {
        for (const item of el.Value) if (item && typeof item === 'object') visit(item as DenaturalDataset);
      }
    }
  };
  for (const p of paths) {
    try {
      visit(readPart10Raw(fs.readFileSync(p), { untilPixelData: true }).dict);
    } catch {
      /* unreadable: the C-STORE request reports it */
    }
  }
  return out;
}

let transcodingInit: Promise<boolean> | null = null;
/** Initialise dcmjs-dimse's transcoder (dcmjs-codecs wasm) once; false if unavailable. */
function ensureTranscoding(): Promise<boolean> {
  if (!transcodingInit) {
    transcodingInit = Transcoding.isInitialized()
      ? Promise.resolve(true)
      : Transcoding.initializeAsync()
          .then(() => true)
          .catch((e: Error) => {
            log.warn('egress: dcmjs-codecs transcoding unavailable; compressed files go only as stored', {
              event: 'egress.transcoding_unavailable',
              error: e.message,
            });
            return false;
          });
  }
  return transcodingInit;
}

interface SocketHolder {
  network?: {
    socket?: tlsTypes.TLSSocket;
    on(event: 'abort', cb: (a: { source: number; reason: number }) => void): void;
  };
}

// eslint-disable-next-line @typescript-eslint/no-var-requires
const tlsModule = require('tls') as typeof tlsTypes;

/**
 * dcmjs-dimse passes only some securityOptions on to tls.connect (not `servername`): while `fn`
 * runs (synchronously: dcmjs-dimse connects inside Client.send) add it to the options of the one
 * tls.connect call, then put tls.connect back.
 */
function withServername<T>(servername: string | undefined, fn: () => T): T {
  if (!servername) return fn();
  const original = tlsModule.connect;
  const patched = (options: tlsTypes.ConnectionOptions, ...rest: unknown[]): tlsTypes.TLSSocket =>
    (original as (...a: unknown[]) => tlsTypes.TLSSocket).call(tlsModule, { ...options, servername }, ...rest);
  (tlsModule as { connect: unknown }).connect = patched;
  try {
    return fn();
  } finally {
    (tlsModule as { connect: unknown }).connect = original;
  }
}

export class DimseSender implements Sender {
  private readonly tls?: tlsTypes.ConnectionOptions;

  constructor(
    private readonly dest: DimseDestination,
    private readonly opts: DimseSenderOptions,
  ) {
    // Read the PEM files now (start-up): a bad one is an error naming its key.
    if (dest.tls) this.tls = clientTlsOptions(dest.tls, `destinations[name=${dest.name}].tls`);
  }

  get callingAe(): string {
    return this.dest.callingAeTitle ?? this.opts.defaultCallingAeTitle;
  }

  async send(items: SendItem[]): Promise<BatchResult> {
    const t0 = Date.now();
    const results = new Map<number, ItemResult>();
    let bytes = 0;
    const sendable: SendItem[] = [];
    for (const it of items) {
      try {
        bytes += fs.statSync(it.path).size;
        sendable.push(it);
      } catch {
        results.set(it.id, { id: it.id, ok: false, status: null, message: `file missing on disk: ${it.path}`, permanent: true });
      }
    }
    if (sendable.length === 0) return { items: [...results.values()], ms: Date.now() - t0, bytes };
    if (sendable.some((it) => !UNCOMPRESSED.has(it.transferSyntaxUid))) await ensureTranscoding();

    const calling = this.callingAe;
    const called = this.dest.calledAeTitle;
    const client = new Client();
    const byRequest = new Map<requests.CStoreRequest, SendItem>();
    for (const it of sendable) {
      let req: requests.CStoreRequest;
      try {
        req = new requests.CStoreRequest(it.path);
      } catch (e) {
        results.set(it.id, { id: it.id, ok: false, status: null, message: `unreadable file: ${(e as Error).message}`, permanent: true });
        continue;
      }
      byRequest.set(req, it);
      req.on('response', (resp: responses.CStoreResponse) => {
        const status = resp.getStatus();
        const d = describeStoreStatus(status);
        const comment = resp.getErrorComment();
        const message = d.kind === 'success' ? undefined : comment ? `${d.text} (${comment})` : d.text;
        results.set(it.id, { id: it.id, ok: d.kind !== 'failure', status, message });
      });
      client.addRequest(req);
    }
    if (byRequest.size === 0) return { items: [...results.values()], ms: Date.now() - t0, bytes };

    let batchError: string | undefined;
    let accepted = false;
    let connected = false;
    let released = false;
    /** TLS: handshake complete; the text of a TLS failure, from the socket's error code. */
    let secured = false;
    let tlsError: string | undefined;
    let aborted: string | undefined;
    const noContext = new Map<number, string>();

    await new Promise<void>((resolve) => {
      let finished = false;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        clearTimeout(guard);
        resolve();
      };
      const guard = setTimeout(() => {
        batchError = batchError ?? `batch timed out after ${this.opts.batchTimeoutMs ?? 300000} ms`;
        try {
          client.abort();
        } catch {
          /* no association */
        }
        setTimeout(finish, 1000);
      }, this.opts.batchTimeoutMs ?? 300000);

      client.on('connected', () => {
        connected = true;
        (client as unknown as SocketHolder).network?.socket?.setNoDelay?.(true);
      });
      client.on('associationReleased', () => {
        released = true;
      });
      client.on('associationAccepted', (assoc: { getPresentationContexts(): Array<{ id: number; context: { getAbstractSyntaxUid(): string; getResult(): number; getTransferSyntaxUids(): string[]; getAcceptedTransferSyntaxUid(): string | undefined } }> }) => {
        accepted = true;
        const pcs = assoc.getPresentationContexts().map((p) => p.context);
        for (const [, it] of byRequest) {
          const forClass = pcs.filter((c) => c.getAbstractSyntaxUid() === it.sopClassUid);
          const ok = forClass.filter((c) => c.getResult() === constants.PresentationContextResult.Accept);
          if (ok.length === 0) {
            noContext.set(it.id, `destination accepts no presentation context for SOP class ${it.sopClassUid}`);
          } else if (
            !ok.some((c) => c.getAcceptedTransferSyntaxUid() === it.transferSyntaxUid) &&
            !UNCOMPRESSED.has(it.transferSyntaxUid) &&
            !Transcoding.isInitialized()
          ) {
            noContext.set(
              it.id,
              `destination does not accept transfer syntax ${it.transferSyntaxUid} and transcoding is unavailable`,
            );
          }
        }
      });
      client.on('associationRejected', (r: { result: number; source: number; reason: number }) => {
        batchError = describeReject(r, calling, called);
      });
      client.on('networkError', (e: Error) => {
        batchError = batchError ?? `network error: ${e.message}`;
      });
      client.on('closed', () => finish());
      const t = this.tls;
      try {
        withServername(t?.servername, () =>
          client.send(this.dest.host, this.dest.port, calling, called, {
            connectTimeout: this.opts.connectTimeoutMs ?? 10000,
            associationTimeout: this.opts.associationTimeoutMs ?? 30000,
            pduTimeout: this.opts.pduTimeoutMs ?? 60000,
            datasetNameMap: privateNameMap([...byRequest.values()].map((it) => it.path)) as unknown as Record<string, unknown>,
            ...(t
              ? {
                  securityOptions: {
                    key: t.key as Buffer | undefined,
                    cert: t.cert as Buffer | undefined,
                    ca: t.ca as Buffer | undefined,
                    rejectUnauthorized: t.rejectUnauthorized,
                    minVersion: t.minVersion,
                    ciphers: t.ciphers,
                  },
                }
              : {}),
          }),
        );
        const network = (client as unknown as SocketHolder).network;
        network?.on('abort', (a) => {
          aborted = `association aborted by the destination (A-ABORT source ${a.source}, reason ${a.reason})`;
        });
        const socket = network?.socket;
        if (t && socket) {
          socket.once('secureConnect', () => {
            secured = true;
          });
          // A verification failure, or an alert from the destination (TLS 1.3 reports a refused client
          // certificate only after our side of the handshake completed).
          socket.on('error', (e: NodeJS.ErrnoException) => {
            if (!tlsError && (!secured || (e.code ?? '').startsWith('ERR_SSL_'))) tlsError = describeClientTlsError(e);
          });
        }
      } catch (e) {
        batchError = `could not start association: ${(e as Error).message}`;
        finish();
      }
    });

    // Why the connection ended with requests unanswered, when no error event said it.
    if (tlsError) batchError = tlsError;
    const unanswered = [...byRequest.values()].filter((it) => !results.has(it.id) && !noContext.has(it.id));
    if (unanswered.length > 0 && !batchError) {
      batchError =
        aborted ??
        (!connected
          ? 'could not connect to the destination'
          : this.tls && !secured
            ? 'TLS: connection closed by the destination during the handshake'
            : !accepted
              ? 'connection closed by peer before it answered the association request'
              : released
                ? 'association released by the destination before the C-STORE response'
                : 'connection closed by peer before the C-STORE response');
    }
    for (const [, it] of byRequest) {
      if (results.has(it.id)) continue;
      const why = noContext.get(it.id) ?? batchError ?? 'association ended before the destination answered';
      results.set(it.id, { id: it.id, ok: false, status: null, message: why });
    }
    if (!batchError && accepted && [...byRequest.values()].every((it) => !results.get(it.id)?.ok) && byRequest.size > 0) {
      batchError = [...results.values()].find((r) => !r.ok)?.message;
    }
    const ms = Date.now() - t0;
    log.info('egress: DIMSE batch done', {
      event: 'egress.dimse_batch',
      destination: this.dest.name,
      files: items.length,
      ok: [...results.values()].filter((r) => r.ok).length,
      ms,
      bytes,
      studies: [...new Set(items.map((i) => ref(i.studyInstanceUid)))],
      error: batchError,
    });
    return { items: [...results.values()], error: batchError, ms, bytes };
  }
}
