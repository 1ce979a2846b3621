/**
 * STOW-RS receiver (PS3.18 §10.5): POST /dicom-web/studies[/{StudyInstanceUID}] with
 * `multipart/related; type="application/dicom"`, chunked or with Content-Length.
 * Each part streams to a temporary file (parsed by @fastify/busboy's maintained Dicer, a streaming
 * multipart parser for any multipart type), is checked as it streams (InstanceValidator: nothing
 * malformed is acknowledged), then goes through InstanceStore.commit() like a C-STORE.
 * Answers the standard JSON (application/dicom+json) with ReferencedSOPSequence / FailedSOPSequence,
 * and a `Warning` header with the reasons in clear text.
 *
 * Bounded work per request (a hostile or broken client cannot exhaust the node):
 *  - `http.maxStowBodyMb`: a larger body is refused with 413, up front from Content-Length, or as
 *    soon as the counted body passes it (chunked);
 *  - `http.maxStowParts`: a request with more parts is refused with 413 when the part past the
 *    limit starts;
 *  - `limits.maxInstanceMb`: a larger part is refused (C000 "instance larger than
 *    limits.maxInstanceMb"), its bytes are dropped and the rest of the request is still processed;
 *  - at most ACTIVE_PARTS parts are written or committed at once; the request is paused (TCP
 *    backpressure) while more are waiting, so memory and file descriptors stay bounded;
 *  - the free-space floor (`storage.minFreeMb`) is checked before every chunk is written, and a
 *    write failing for lack of space (ENOSPC…) is caught: the partial file is removed, the request is
 *    no longer read and is answered at once, 507 when nothing was stored (202 with 0xA700 for the
 *    part otherwise);
 *  - wrong bearer tokens are throttled per client IP (`http.stowAuthFailuresPerWindow` per 15 min,
 *    then 429 with Retry-After, even for the right token, as the admin login does);
 *  - an answer given before the body was read whole (413, 507, shutdown) lets the client finish
 *    sending for LINGER_MS (its bytes dropped), then the connection is closed (lingerClose: a
 *    half-close after the answer, so a client still writing reads the answer instead of a reset);
 *  - `close()` (node shutdown) ends every open transfer: answered 503, partial files removed.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import { Readable } from 'stream';
import express, { Request, Response, Router } from 'express';
import { ipKeyGenerator, MemoryStore } from 'express-rate-limit';
import { InstanceValidator } from '../dicom/validate';
import { InstanceStore, StoreError } from '../store/instances';
import { log } from '../util/log';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const Dicer: DicerCtor = require('@fastify/busboy/deps/dicer/lib/Dicer');

/** A part: a Readable of Buffers that emits 'header' (Record<string, string[]>) before its data. */
type DicerPart = Readable;
interface DicerInstance extends NodeJS.WritableStream {
  on(event: 'part', l: (p: DicerPart) => void): this;
  on(event: string, l: (...a: unknown[]) => void): this;
  /** (Dicer internal) the part whose bytes are arriving now; undefined between parts. */
  _part?: DicerPart;
}
type DicerCtor = new (cfg: { boundary: string; maxHeaderPairs?: number }) => DicerInstance;

/** Failure reasons (0008,1197) from PS3.18 Table 10.5.3-1 / PS3.4 C-STORE statuses. */
const FailureReason = {
  ProcessingFailure: 0x0110,
  OutOfResources: 0xa700,
  CannotUnderstand: 0xc000,
  StudyMismatch: 0xa900,
} as const;

const MB = 1024 * 1024;
/** Parts written or committed at once in one request; more wait (the request is paused). */
const ACTIVE_PARTS = 4;
/** Parts started or waiting before the request is paused. */
const OUTSTANDING_PARTS = 8;
/** First bytes of a part kept in memory for the store's header read. */
const HEAD_BYTES = 64 * 1024;
/** Bytes gathered before one write. */
const FLUSH_BYTES = 256 * 1024;
/** After an early answer, how long the rest of the body is read (and dropped) before the connection is closed. */
const LINGER_MS = 5000;
const OUT_OF_SPACE_TEXT = 'insufficient storage: free disk space fell below storage.minFreeMb during the transfer';
const SPACE_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

interface PartOutcome {
  sopClassUid?: string;
  sopInstanceUid?: string;
  failure?: { reason: number; text: string };
}

export interface StowOptions {
  bearerToken?: string;
  /** Base URL used to build RetrieveURL values (e.g. http://host:port/dicom-web). */
  publicBase?: () => string;
  onInstance?: (bytes: number, status: 'stored' | 'duplicate') => void;
  onFailure?: (reason: string) => void;
  /** http.maxStowBodyMb in bytes (default 4096 MB). */
  maxBodyBytes?: number;
  /** http.maxStowParts (default 10000). */
  maxParts?: number;
  /** Per-instance bounds (limits.maxInstanceMb in bytes, default 2048 MB; maxSequenceDepth 32; maxElements 1,000,000). */
  instanceLimits?: { maxInstanceBytes?: number; maxSequenceDepth?: number; maxElements?: number };
  /** http.stowAuthFailuresPerWindow (default 20). */
  authFailuresPerWindow?: number;
  /** Default 15 min. */
  authFailureWindowMs?: number;
  /** Default LINGER_MS (tests shorten it). */
  lingerMs?: number;
}

/** The STOW-RS router, plus what the node needs at shutdown. */
export interface StowRouter extends Router {
  /** End every open transfer (answered 503, partial files removed); resolves when they are answered, or after graceMs. */
  close(graceMs?: number): Promise<void>;
  /** Transfers open now. */
  openTransfers(): number;
}

function boundaryOf(contentType: string): { boundary?: string; type?: string; media: string } {
  const [media, ...params] = contentType.split(';').map((s) => s.trim());
  const out: { boundary?: string; type?: string; media: string } = { media: media.toLowerCase() };
  for (const p of params) {
    const i = p.indexOf('=');
    if (i < 0) continue;
    const k = p.slice(0, i).trim().toLowerCase();
    const v = p.slice(i + 1).trim().replace(/^"(.*)"$/, '$1');
    if (k === 'boundary') out.boundary = v;
    if (k === 'type') out.type = v.toLowerCase();
  }
  return out;
}

function tokenMatches(header: string | undefined, expected: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  // sha256 of both sides: equal lengths for timingSafeEqual, the length not revealed
  const a = crypto.createHash('sha256').update(header.slice(7)).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

/** JavaScript internals that say nothing to the sender ("Cannot read properties of undefined …"). */
const UNCLEAR = /\bundefined\b(?! length)|\bnull\b|is not a function|is not iterable|Cannot read prop|Maximum call stack/i;

/**
 * A reason as clear text for a response or a log line: printable ASCII only (control characters
 * and raw bytes from the data become spaces), bounded length, never empty or "undefined".
 */
export function clearText(e: unknown, fallback = 'the instance could not be read (malformed data)', max = 200): string {
  const raw = typeof e === 'string' ? e : e instanceof Error ? e.message : '';
  const t = raw.replace(/[^\x20-\x7e]+/g, ' ').replace(/\s+/g, ' ').trim();
  if (!t || UNCLEAR.test(t)) return fallback;
  return t.length > max ? `${t.slice(0, max - 3)}...` : t;
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    /* already closed */
  }
}

/** Write every byte of `bufs` at the file's current offset (writev may write part of them). */
function writeAll(fd: number, bufs: Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const go = (rest: Buffer[]) =>
      fs.writev(fd, rest, (err, n) => {
        if (err) return reject(err);
        let i = 0;
        while (i < rest.length && n >= rest[i].length) n -= rest[i++].length;
        const left = rest.slice(i);
        if (left.length && n > 0) left[0] = left[0].subarray(n);
        if (left.length) go(left);
        else resolve();
      });
    go(bufs);
  });
}

interface PartJob {
  index: number;
  part: DicerPart;
  type: string;
  /** Set once its task began reading it. */
  started: boolean;
}

type Stop = { status: number; text: string; event: string };

/** One STOW-RS request being received. */
class Transfer {
  private readonly dicer: DicerInstance;
  private bodyBytes = 0;
  private partsSeen = 0;
  private waiting: PartJob[] = [];
  private active = 0;
  private outcomes: (PartOutcome | undefined)[] = [];
  private inputDone = false;
  private needDrain = false;
  private stopped?: Stop;
  private clientGone = false;
  private answered = false;
  private parseError?: string;
  private readonly t0 = Date.now();
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private readonly onData = (chunk: Buffer) => this.receive(chunk);

  constructor(
    private readonly req: Request,
    private readonly res: Response,
    private readonly store: InstanceStore,
    private readonly opts: Required<Pick<StowOptions, 'maxBodyBytes' | 'maxParts' | 'lingerMs'>> & StowOptions,
    private readonly limits: { maxInstanceBytes: number; maxSequenceDepth: number; maxElements: number },
    boundary: string,
  ) {
    this.done = new Promise((r) => (this.resolveDone = r));
    this.dicer = new Dicer({ boundary });
    this.dicer.on('part', (p: DicerPart) => this.onPart(p));
    this.dicer.on('error', (e: unknown) => {
      this.parseError = clearText(e, 'malformed multipart body');
      this.inputDone = true;
      this.maybeAnswer();
    });
    this.dicer.on('finish', () => {
      this.inputDone = true;
      this.maybeAnswer();
    });
    this.dicer.on('drain', () => {
      this.needDrain = false;
      this.maybeResume();
    });
    const gone = () => {
      if (this.answered || this.req.complete) return;
      this.clientGone = true;
      this.stop({ status: 0, text: 'the client closed the connection', event: 'stow.client_gone' });
    };
    req.on('aborted', gone);
    req.on('error', gone);
    res.on('close', () => {
      if (!res.writableFinished) gone();
    });
    req.on('data', this.onData);
    req.on('end', () => {
      if (!this.stopped) this.dicer.end();
    });
  }

  private receive(chunk: Buffer): void {
    if (this.stopped) return;
    this.bodyBytes += chunk.length;
    if (this.bodyBytes > this.opts.maxBodyBytes) {
      this.stop({ status: 413, text: `request body larger than http.maxStowBodyMb (${mbText(this.opts.maxBodyBytes)} MB)`, event: 'stow.too_large' });
      return;
    }
    if (!this.dicer.write(chunk)) {
      this.needDrain = true;
      this.req.pause();
    } else if (this.outstanding() >= OUTSTANDING_PARTS) this.req.pause();
  }

  private outstanding(): number {
    return this.waiting.length + this.active;
  }

  private maybeResume(): void {
    if (!this.stopped && !this.needDrain && this.outstanding() < OUTSTANDING_PARTS && this.req.isPaused()) this.req.resume();
  }

  private onPart(part: DicerPart): void {
    // a part's stream errors when the body ends early or the request is stopped; its task (if any) reports it
    part.on('error', () => undefined);
    if (this.stopped) {
      part.resume();
      return;
    }
    this.partsSeen++;
    if (this.partsSeen > this.opts.maxParts) {
      part.resume();
      this.stop({ status: 413, text: `more than http.maxStowParts (${this.opts.maxParts}) parts in one request`, event: 'stow.too_many_parts' });
      return;
    }
    const job: PartJob = { index: this.partsSeen - 1, part, type: 'application/dicom', started: false };
    part.on('header', (h: Record<string, string[]>) => {
      const t = h['content-type']?.[0];
      if (t) job.type = t.split(';')[0].trim().toLowerCase();
    });
    this.waiting.push(job);
    this.pump();
  }

  private pump(): void {
    while (!this.stopped && this.active < ACTIVE_PARTS && this.waiting.length) {
      const job = this.waiting.shift()!;
      job.started = true;
      this.active++;
      void this.runPart(job).then(
        (o) => this.settle(job, o),
        (e: unknown) => this.settle(job, { failure: { reason: FailureReason.ProcessingFailure, text: clearText(e, 'internal error while storing the part') } }),
      );
    }
  }

  private settle(job: PartJob, o: PartOutcome): void {
    this.active--;
    this.outcomes[job.index] = o;
    this.pump();
    this.maybeResume();
    this.maybeAnswer();
  }

  /** Stream one part to a temporary file, checking limits, free space and structure as it comes; then commit it. */
  private async runPart(job: PartJob): Promise<PartOutcome> {
    const { part } = job;
    const validator = new InstanceValidator(this.limits);
    let file: { path: string; fd: number } | undefined;
    let size = 0;
    const head: Buffer[] = [];
    let headBytes = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let refused: PartOutcome | undefined;
    const drop = () => {
      pending = [];
      pendingBytes = 0;
      head.length = 0;
      if (file) {
        closeQuietly(file.fd);
        fs.rmSync(file.path, { force: true });
        file = undefined;
      }
    };
    const refuse = (reason: number, text: string): PartOutcome => {
      drop();
      refused = { failure: { reason, text } };
      return refused;
    };
    /** Out of space: this part is refused, the request stops here and is answered now. */
    const outOfSpace = (detail: string): PartOutcome => {
      const o = refuse(FailureReason.OutOfResources, OUT_OF_SPACE_TEXT);
      this.store.invalidateSpaceCache(); // the partial file is gone: read the free space afresh
      this.stop({ status: 507, text: OUT_OF_SPACE_TEXT, event: 'stow.out_of_space' }, detail);
      return o;
    };
    /** Write the bytes gathered so far (the file is created at the first write: a small part refused by the validator never touches the disk). */
    const flush = async (): Promise<PartOutcome | undefined> => {
      if (!pendingBytes) return undefined;
      if (!file) {
        try {
          file = this.store.openTemp();
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code ?? '';
          if (SPACE_ERRNOS.has(code)) return outOfSpace(`could not create a temporary file: ${code}`);
          return refuse(FailureReason.ProcessingFailure, `could not create a temporary file (${clearText(code, 'I/O error')})`);
        }
      }
      const bufs = pending.length > 64 ? [Buffer.concat(pending)] : pending;
      pending = [];
      pendingBytes = 0;
      try {
        await writeAll(file.fd, bufs);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? '';
        if (SPACE_ERRNOS.has(code)) return outOfSpace(`write failed: ${code}`);
        return refuse(FailureReason.ProcessingFailure, `could not write the part to disk (${clearText(code, 'I/O error')})`);
      }
      return undefined;
    };

    try {
      for await (const chunk of part as AsyncIterable<Buffer>) {
        if (refused) continue; // drain the rest of a refused part (the request goes on)
        if (this.stopped) {
          drop();
          return this.stoppedOutcome();
        }
        if (job.type !== 'application/dicom') {
          refuse(FailureReason.CannotUnderstand, `part type "${clearText(job.type, 'unknown', 64)}" is not application/dicom`);
          continue;
        }
        if (size + chunk.length > this.limits.maxInstanceBytes) {
          refuse(FailureReason.CannotUnderstand, `instance larger than limits.maxInstanceMb (${mbText(this.limits.maxInstanceBytes)} MB)`);
          continue;
        }
        if (!validator.push(chunk)) {
          refuse(FailureReason.CannotUnderstand, clearText(validator.error, 'malformed DICOM data'));
          continue;
        }
        // the free-space floor holds during the transfer, not only when it starts
        if (!this.store.hasSpace()) return outOfSpace('free space below storage.minFreeMb');
        size += chunk.length;
        if (headBytes < HEAD_BYTES) {
          head.push(chunk);
          headBytes += chunk.length;
        }
        pending.push(chunk);
        pendingBytes += chunk.length;
        this.store.noteWritten(chunk.length);
        if (pendingBytes >= FLUSH_BYTES) {
          const o = await flush();
          if (o?.failure?.reason === FailureReason.OutOfResources) return o;
          // any other failure: `refused` is set, the rest of the part is drained
        }
      }
    } catch (e) {
      // the part's stream failed: the body ended early, the client left, or the request was stopped
      drop();
      if (refused?.failure?.reason === FailureReason.OutOfResources) return refused;
      if (this.stopped) return this.stoppedOutcome();
      return { failure: { reason: FailureReason.ProcessingFailure, text: `transfer failed: ${clearText(e, 'the part ended early')}` } };
    }
    if (refused) return refused;
    // received whole: it is checked and committed even if the request was stopped meanwhile
    const v = validator.end();
    if (!v.ok) return refuse(FailureReason.CannotUnderstand, clearText(v.error, 'malformed DICOM data'));
    const last = await flush();
    if (last) return last;
    if (!file) return refuse(FailureReason.CannotUnderstand, 'empty part');
    const open = { fd: file.fd, size, head: head.length === 1 ? head[0] : Buffer.concat(head) };
    const tmp = file.path;
    file = undefined; // commit() owns the descriptor and the file now
    try {
      const r = await this.store.commit(tmp, { sourceAe: 'STOW-RS', validatedHeaderBytes: v.headerBytes }, open);
      const studyInUrl = this.req.params.study;
      if (studyInUrl && r.instance.studyInstanceUid !== studyInUrl) {
        // Stored already; report the mismatch as the standard asks (the instance is kept, not lost).
        return {
          sopClassUid: r.instance.sopClassUid,
          sopInstanceUid: r.instance.sopInstanceUid,
          failure: { reason: FailureReason.StudyMismatch, text: 'StudyInstanceUID differs from the one in the URL' },
        };
      }
      this.opts.onInstance?.(r.instance.bytes, r.status);
      return { sopClassUid: r.instance.sopClassUid, sopInstanceUid: r.instance.sopInstanceUid };
    } catch (e) {
      const se = e as StoreError;
      if (se.code === 'out-of-space') return outOfSpace('commit: storage full');
      return {
        failure: {
          reason: se.code === 'malformed' ? FailureReason.CannotUnderstand : FailureReason.ProcessingFailure,
          text: clearText(se, se.code === 'malformed' ? 'not a readable DICOM Part 10 file' : 'could not store the instance'),
        },
      };
    }
  }

  private stoppedOutcome(): PartOutcome {
    return { failure: { reason: FailureReason.OutOfResources, text: this.stopped?.text ?? 'request stopped' } };
  }

  /**
   * Stop reading the request (limit passed, out of space, shutdown, client gone): the part still
   * arriving is abandoned (its task removes its file), parts not started are dropped, parts being
   * committed finish; then the request is answered with `s.status` (none when the client is gone).
   */
  stop(s: Stop, detail?: string): void {
    if (this.stopped || this.answered) return;
    this.stopped = s;
    this.req.removeListener('data', this.onData);
    this.req.pause();
    for (const j of this.waiting.splice(0)) j.part.destroy();
    const arriving = this.dicer._part;
    if (arriving) arriving.destroy(new Error(s.text));
    const meta = { event: s.event, ip: this.req.ip, bodyBytes: this.bodyBytes, parts: this.partsSeen, reason: s.text, ...(detail ? { detail } : {}) };
    if (s.status === 507) log.error('STOW-RS: storage full during a transfer; partial file removed, request answered 507', meta);
    else if (s.status) log.warn('STOW-RS: request stopped', meta);
    this.maybeAnswer();
  }

  private maybeAnswer(): void {
    if (this.answered || this.outstanding() > 0 || (!this.inputDone && !this.stopped)) return;
    this.answered = true;
    this.answer();
    this.resolveDone();
  }

  private answer(): void {
    const { req, res } = this;
    this.dicer.removeAllListeners('part');
    if (!req.complete) {
      req.removeListener('data', this.onData);
      lingerClose(req, this.opts.lingerMs);
    }
    if (this.clientGone || res.headersSent || res.destroyed) return;
    const outcomes = this.outcomes.filter((o): o is PartOutcome => !!o);
    const ok = outcomes.filter((o) => !o.failure);
    const failed = outcomes.filter((o) => o.failure);
    for (const f of failed) this.opts.onFailure?.(f.failure!.reason === FailureReason.OutOfResources && this.stopped?.status === 507 ? 'out of space' : f.failure!.text);
    if (!this.stopped && outcomes.length === 0) {
      res.status(400).json({ error: this.parseError ? `malformed multipart body: ${this.parseError}` : 'no DICOM part in the request body' });
      return;
    }
    const base = this.opts.publicBase?.() ?? '';
    const studyInUrl = req.params.study;
    const body: Record<string, unknown> = {};
    if (studyInUrl || ok[0]) body['00081190'] = { vr: 'UR', Value: [`${base}/studies/${studyInUrl ?? ''}`] };
    if (ok.length) {
      body['00081199'] = {
        vr: 'SQ',
        Value: ok.map((o) => ({
          '00081150': { vr: 'UI', Value: [o.sopClassUid] },
          '00081155': { vr: 'UI', Value: [o.sopInstanceUid] },
        })),
      };
    }
    if (failed.length) {
      body['00081198'] = {
        vr: 'SQ',
        Value: failed.map((o) => ({
          ...(o.sopClassUid ? { '00081150': { vr: 'UI', Value: [o.sopClassUid] } } : {}),
          ...(o.sopInstanceUid ? { '00081155': { vr: 'UI', Value: [o.sopInstanceUid] } } : {}),
          '00081197': { vr: 'US', Value: [o.failure!.reason] },
        })),
      };
      log.warn('STOW-RS parts refused', {
        event: 'stow.refused',
        failed: failed.length,
        stored: ok.length,
        reasons: [...new Set(failed.map((f) => f.failure!.text))].slice(0, 10),
      });
    }
    let status: number;
    const s = this.stopped;
    if (s?.status === 507) status = ok.length ? 202 : 507;
    else if (s) status = s.status;
    else status = failed.length === 0 ? 200 : ok.length === 0 ? (failed.every((f) => f.failure!.reason === FailureReason.OutOfResources) ? 507 : 409) : 202;
    // PS3.18 §8.3.5: human-readable reasons go in Warning headers ("299 <service>: <text>").
    const texts = [...new Set([...(s ? [s.text] : []), ...failed.map((f) => f.failure!.text)])].slice(0, 5).map((t) => t.replace(/["\\]/g, "'"));
    if (texts.length) res.set('Warning', texts.map((t) => `299 stroke-node: "${t}"`).join(', '));
    if (s?.status === 503) res.set('Retry-After', '30');
    res.status(status).type('application/dicom+json').send(JSON.stringify(body));
    if (s) log.info('STOW-RS request answered early', { event: 'stow.answered', status, stored: ok.length, failed: failed.length, ms: Date.now() - this.t0 });
  }
}

function mbText(bytes: number): string {
  const mb = bytes / MB;
  return Number.isInteger(mb) ? String(mb) : mb.toFixed(2);
}

/**
 * A request answered before its body was read whole: read (and drop) what the client still sends, so that it reads
 * the answer, until it stops or lingerMs pass, then close. Node's HTTP server closes the socket as soon as the answer
 * is written when the client asked for `Connection: close` (socket.destroySoon()); a client still writing then gets a
 * reset (EPIPE / ECONNRESET) that can discard the answer unread, which a busy client on a loaded machine showed. So
 * this socket's destroySoon only half-closes (FIN after the answer, as nginx's lingering close), and the socket is
 * closed when the request ends or the linger runs out.
 */
function lingerClose(req: Request, lingerMs: number): void {
  const socket = req.socket;
  req.on('data', () => undefined);
  req.resume();
  let closeWanted = false;
  const destroySoon = socket.destroySoon.bind(socket);
  socket.destroySoon = () => {
    closeWanted = true;
    if (socket.writable) socket.end();
  };
  const t = setTimeout(() => {
    if (!req.complete) socket.destroy();
  }, lingerMs);
  t.unref();
  req.once('end', () => {
    clearTimeout(t);
    if (closeWanted) destroySoon();
  });
}

/** Answer now without reading the body; lingerClose. */
function refuseEarly(req: Request, res: Response, lingerMs: number, status: number, error: string): void {
  res.status(status).json({ error });
  if (!req.complete) lingerClose(req, lingerMs);
}

export function stowRouter(store: InstanceStore, options: StowOptions = {}): StowRouter {
  const opts = {
    ...options,
    maxBodyBytes: options.maxBodyBytes ?? 4096 * MB,
    maxParts: options.maxParts ?? 10000,
    lingerMs: options.lingerMs ?? LINGER_MS,
  };
  const limits = {
    maxInstanceBytes: options.instanceLimits?.maxInstanceBytes ?? 2048 * MB,
    maxSequenceDepth: options.instanceLimits?.maxSequenceDepth ?? 32,
    maxElements: options.instanceLimits?.maxElements ?? 1_000_000,
  };
  const authLimit = options.authFailuresPerWindow ?? 20;
  const authWindowMs = options.authFailureWindowMs ?? 15 * 60_000;
  // Failed bearer tokens per client IP (express-rate-limit's store: fixed window, expired keys swept).
  // Only failures are counted, when they happen: a long successful upload never counts, however
  // many run at once.
  const authFailures = new MemoryStore();
  authFailures.init({ windowMs: authWindowMs } as Parameters<MemoryStore['init']>[0]);
  const transfers = new Set<Transfer>();
  let closing = false;

  /** Bearer token check with throttling; true when the request may go on. */
  const authorised = async (req: Request, res: Response): Promise<boolean> => {
    if (!opts.bearerToken) return true;
    const key = ipKeyGenerator(req.ip ?? req.socket.remoteAddress ?? 'unknown');
    const good = tokenMatches(req.headers.authorization, opts.bearerToken);
    const hits = good ? await authFailures.get(key) : await authFailures.increment(key);
    if (hits && (good ? hits.totalHits >= authLimit : hits.totalHits > authLimit)) {
      const retry = Math.max(1, Math.ceil(((hits.resetTime?.getTime() ?? Date.now() + authWindowMs) - Date.now()) / 1000));
      if (!good && hits.totalHits === authLimit + 1) log.warn('STOW-RS: too many wrong bearer tokens; client throttled', { event: 'stow.auth_throttled', ip: req.ip, retryAfterSeconds: retry });
      res.set('Retry-After', String(retry));
      refuseEarly(req, res, opts.lingerMs, 429, 'too many failed authentication attempts; try again later');
      return false;
    }
    if (!good) {
      log.warn('STOW-RS: missing or wrong bearer token', { event: 'stow.auth_failed', ip: req.ip, failures: hits?.totalHits });
      res.set('WWW-Authenticate', 'Bearer');
      refuseEarly(req, res, opts.lingerMs, 401, 'missing or wrong bearer token');
      return false;
    }
    return true;
  };

  const handler = async (req: Request, res: Response) => {
    if (!(await authorised(req, res))) return;
    if (closing) {
      res.set('Retry-After', '30');
      refuseEarly(req, res, opts.lingerMs, 503, 'the node is shutting down');
      return;
    }
    const ct = boundaryOf(String(req.headers['content-type'] ?? ''));
    if (ct.media !== 'multipart/related' || !ct.boundary) {
      refuseEarly(req, res, opts.lingerMs, 415, 'expected Content-Type: multipart/related; type="application/dicom"; boundary=...');
      return;
    }
    if (ct.type && ct.type !== 'application/dicom') {
      refuseEarly(req, res, opts.lingerMs, 415, `only type="application/dicom" is accepted, got "${clearText(ct.type, 'unknown', 64)}"`);
      return;
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > opts.maxBodyBytes) {
      log.warn('STOW-RS: request body too large', { event: 'stow.too_large', ip: req.ip, contentLength: declared });
      refuseEarly(req, res, opts.lingerMs, 413, `request body larger than http.maxStowBodyMb (${mbText(opts.maxBodyBytes)} MB)`);
      return;
    }
    if (!store.hasSpace()) {
      opts.onFailure?.('out of space');
      log.error('STOW-RS: refused, free space below storage.minFreeMb', { event: 'stow.out_of_space', ip: req.ip });
      refuseEarly(req, res, opts.lingerMs, 507, 'insufficient storage: free disk space is below storage.minFreeMb');
      return;
    }
    const t = new Transfer(req, res, store, opts, limits, ct.boundary);
    transfers.add(t);
    void t.done.then(() => transfers.delete(t));
  };
  const safe = (req: Request, res: Response) => {
    handler(req, res).catch((e: unknown) => {
      log.error('STOW-RS: request failed', { event: 'stow.error', error: clearText(e, 'internal error') });
      if (!res.headersSent) res.status(500).json({ error: 'internal error' });
    });
  };
  const router = express.Router() as StowRouter;
  router.post('/studies', safe);
  router.post('/studies/:study', safe);
  router.openTransfers = () => transfers.size;
  router.close = async (graceMs = 5000) => {
    closing = true;
    const open = [...transfers];
    for (const t of open) t.stop({ status: 503, text: 'the node is shutting down', event: 'stow.shutdown' });
    await Promise.race([Promise.all(open.map((t) => t.done)), new Promise((r) => setTimeout(r, graceMs).unref())]);
    authFailures.shutdown();
  };
  return router;
}
