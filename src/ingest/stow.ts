/**
 * STOW-RS receiver (PS3.18 §10.5): POST /dicom-web/studies[/{StudyInstanceUID}] with
 * `multipart/related; type="application/dicom"`, chunked or with Content-Length.
 * Each part streams to a temporary file (parsed by @fastify/busboy's maintained Dicer, a streaming
 * multipart parser for any multipart type), then goes through InstanceStore.commit() like a C-STORE.
 * Answers the standard JSON (application/dicom+json) with ReferencedSOPSequence / FailedSOPSequence.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import express, { Request, Response, Router } from 'express';
import { InstanceStore, StoreError } from '../store/instances';
import { log } from '../util/log';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const Dicer: DicerCtor = require('@fastify/busboy/deps/dicer/lib/Dicer');

interface DicerPart extends NodeJS.ReadableStream {
  on(event: 'header', l: (h: Record<string, string[]>) => void): this;
  on(event: string, l: (...a: unknown[]) => void): this;
}
interface DicerInstance extends NodeJS.WritableStream {
  on(event: 'part', l: (p: DicerPart) => void): this;
  on(event: string, l: (...a: unknown[]) => void): this;
}
type DicerCtor = new (cfg: { boundary: string; maxHeaderPairs?: number }) => DicerInstance;

/** Failure reasons (0008,1197) from PS3.18 Table 10.5.3-1 / PS3.4 C-STORE statuses. */
const FailureReason = {
  ProcessingFailure: 0x0110,
  OutOfResources: 0xa700,
  CannotUnderstand: 0xc000,
  StudyMismatch: 0xa900,
} as const;

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
  const a = Buffer.from(header.slice(7));
  const b = Buffer.from(expected);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

export function stowRouter(store: InstanceStore, opts: StowOptions = {}): Router {
  const router = express.Router();
  const handler = (req: Request, res: Response) => {
    if (opts.bearerToken && !tokenMatches(req.headers.authorization, opts.bearerToken)) {
      res.status(401).set('WWW-Authenticate', 'Bearer').json({ error: 'missing or wrong bearer token' });
      return;
    }
    const ct = boundaryOf(String(req.headers['content-type'] ?? ''));
    if (ct.media !== 'multipart/related' || !ct.boundary) {
      res.status(415).json({ error: 'expected Content-Type: multipart/related; type="application/dicom"; boundary=…' });
      return;
    }
    if (ct.type && ct.type !== 'application/dicom') {
      res.status(415).json({ error: `only type="application/dicom" is accepted, got "${ct.type}"` });
      return;
    }
    if (!store.hasSpace()) {
      opts.onFailure?.('out of space');
      res.status(507).json({ error: 'insufficient storage: free disk space is below storage.minFreeMb' });
      return;
    }
    const studyInUrl = req.params.study;
    const pending: Promise<PartOutcome>[] = [];
    const dicer = new Dicer({ boundary: ct.boundary });
    let parseError: Error | undefined;

    dicer.on('part', (part: DicerPart) => {
      const tmp = store.tempPath();
      const out = fs.createWriteStream(tmp);
      let partType = 'application/dicom';
      part.on('header', (h: Record<string, string[]>) => {
        const t = h['content-type']?.[0];
        if (t) partType = t.split(';')[0].trim().toLowerCase();
      });
      const written = new Promise<void>((resolve, reject) => {
        out.on('finish', resolve);
        out.on('error', reject);
        part.on('error', reject);
      });
      part.pipe(out);
      pending.push(
        written.then(
          async (): Promise<PartOutcome> => {
            if (partType !== 'application/dicom') {
              fs.rmSync(tmp, { force: true });
              return { failure: { reason: FailureReason.CannotUnderstand, text: `part type ${partType} is not application/dicom` } };
            }
            try {
              const r = await store.commit(tmp, { sourceAe: 'STOW-RS' });
              if (studyInUrl && r.instance.studyInstanceUid !== studyInUrl) {
                // Stored already; report the mismatch as the standard asks (the instance is kept, not lost).
                return {
                  sopClassUid: r.instance.sopClassUid,
                  sopInstanceUid: r.instance.sopInstanceUid,
                  failure: { reason: FailureReason.StudyMismatch, text: 'StudyInstanceUID differs from the one in the URL' },
                };
              }
              opts.onInstance?.(r.instance.bytes, r.status);
              return { sopClassUid: r.instance.sopClassUid, sopInstanceUid: r.instance.sopInstanceUid };
            } catch (e) {
              const se = e as StoreError;
              opts.onFailure?.(se.message);
              return {
                failure: {
                  reason: se.code === 'out-of-space' ? FailureReason.OutOfResources : se.code === 'malformed' ? FailureReason.CannotUnderstand : FailureReason.ProcessingFailure,
                  text: se.message,
                },
              };
            }
          },
          (e: Error): PartOutcome => {
            fs.rmSync(tmp, { force: true });
            return { failure: { reason: FailureReason.ProcessingFailure, text: `transfer failed: ${e.message}` } };
          },
        ),
      );
    });
    dicer.on('error', (e: unknown) => {
      parseError = e as Error;
    });
    const finished = new Promise<void>((resolve) => {
      dicer.on('finish', () => resolve());
      dicer.on('error', () => resolve());
      req.on('aborted', () => resolve());
      req.on('error', () => resolve());
    });
    req.pipe(dicer);
    void finished.then(async () => {
      const outcomes = await Promise.all(pending);
      if (req.destroyed && !req.complete) return; // client gone: nothing to answer
      if (outcomes.length === 0) {
        res.status(400).json({ error: parseError ? `malformed multipart body: ${parseError.message}` : 'no DICOM part in the request body' });
        return;
      }
      const ok = outcomes.filter((o) => !o.failure);
      const failed = outcomes.filter((o) => o.failure);
      const base = opts.publicBase?.() ?? '';
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
        log.warn('STOW-RS parts refused', { event: 'stow.refused', failed: failed.length, stored: ok.length, reasons: [...new Set(failed.map((f) => f.failure!.text))] });
      }
      const status = failed.length === 0 ? 200 : ok.length === 0 ? (failed.every((f) => f.failure!.reason === FailureReason.OutOfResources) ? 507 : 409) : 202;
      // PS3.18 §8.3.5: human-readable reasons go in Warning headers ("299 <service>: <text>").
      const texts = [...new Set(failed.map((f) => f.failure!.text.replace(/[\r\n"]/g, ' ')))].slice(0, 5);
      if (texts.length) res.set('Warning', texts.map((t) => `299 stroke-node: "${t}"`).join(', '));
      res.status(status).type('application/dicom+json').send(JSON.stringify(body));
    });
  };
  router.post('/studies', handler);
  router.post('/studies/:study', handler);
  return router;
}
