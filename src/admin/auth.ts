/**
 * Admin authentication: the token from `admin.token` (no default — admin is off without one).
 *
 * - API clients send `Authorization: Bearer <token>`.
 * - The browser logs in once (POST /admin/login with the token) and gets a random session id in an
 *   HttpOnly, SameSite=Strict cookie scoped to /admin (Secure when the request came over TLS).
 *   Sessions live in memory: a restart logs everyone out.
 * - Tokens are compared in constant time (sha256 of both sides, crypto.timingSafeEqual).
 * - Failed attempts (login and API) are rate-limited per client IP (express-rate-limit): after
 *   `authFailureLimit` failures in `authFailureWindowMs`, even a right token is answered 429 until
 *   the window passes.
 * - State-changing requests that rely on the cookie must be JSON (a cross-site form cannot send
 *   application/json without a CORS preflight the node never grants) and, when the browser sends an
 *   Origin, come from this host (`Origin: null`, sent by sandboxed frames and data: pages, is refused).
 */
import * as crypto from 'crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { rateLimit } from 'express-rate-limit';
import { log } from '../util/log';

export const SESSION_COOKIE = 'stroke_admin';

export interface AuthOptions {
  token: string;
  /** Session lifetime (ms). Default 12 h. */
  sessionTtlMs?: number;
  /** Failed authentications allowed per IP and window. Default 10. */
  authFailureLimit?: number;
  /** Default 15 min. */
  authFailureWindowMs?: number;
  now?: () => number;
}

export type AuthResult = { ok: true; via: 'bearer' | 'session' } | { ok: false; status: 401 | 403; reason: string };

function digest(s: string): Buffer {
  return crypto.createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time token comparison (lengths are hidden by hashing both sides first). */
export function tokenMatches(given: string, expected: string): boolean {
  return crypto.timingSafeEqual(digest(given), digest(expected));
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    try {
      out[k] = decodeURIComponent(v);
    } catch {
      out[k] = v;
    }
  }
  return out;
}

export class AdminAuth {
  private readonly sessions = new Map<string, number>();
  private readonly ttl: number;
  private readonly now: () => number;
  /** Counts failed authentications per IP; successful requests are not counted. */
  readonly failureLimiter: RequestHandler;

  constructor(private readonly opts: AuthOptions) {
    this.ttl = opts.sessionTtlMs ?? 12 * 3600_000;
    this.now = opts.now ?? Date.now;
    this.failureLimiter = rateLimit({
      windowMs: opts.authFailureWindowMs ?? 15 * 60_000,
      limit: opts.authFailureLimit ?? 10,
      standardHeaders: 'draft-7',
      legacyHeaders: false,
      skipSuccessfulRequests: true,
      // Only refused credentials count: a 404 for an unknown job id is not an attack.
      requestWasSuccessful: (_req, res) => res.statusCode !== 401 && res.statusCode !== 403,
      handler: (req, res) => {
        log.warn('admin: too many failed authentications', { event: 'admin.rate_limited', ip: req.ip });
        res.status(429).json({ error: 'too many failed authentication attempts; try again later' });
      },
    });
  }

  /** Check a request's credentials (bearer header first, then the session cookie). */
  check(req: Request): AuthResult {
    const h = req.headers.authorization;
    if (h !== undefined) {
      const m = /^Bearer\s+(.+)$/i.exec(h.trim());
      if (!m) return { ok: false, status: 401, reason: 'Authorization must be "Bearer <token>"' };
      return tokenMatches(m[1], this.opts.token) ? { ok: true, via: 'bearer' } : { ok: false, status: 403, reason: 'wrong token' };
    }
    const sid = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (sid) {
      const exp = this.sessions.get(sid);
      if (exp !== undefined && exp > this.now()) return { ok: true, via: 'session' };
      if (exp !== undefined) this.sessions.delete(sid);
      return { ok: false, status: 401, reason: 'session expired; log in again' };
    }
    return { ok: false, status: 401, reason: 'authentication required' };
  }

  /** Middleware for the JSON API: 401/403 with a reason, CSRF guard on state-changing requests. */
  readonly requireApi: RequestHandler = (req: Request, res: Response, next: NextFunction) => {
    const r = this.check(req);
    if (!r.ok) {
      if (r.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="stroke-node-admin"');
      res.status(r.status).json({ error: r.reason });
      return;
    }
    if (r.via === 'session' && req.method !== 'GET' && req.method !== 'HEAD') {
      const origin = req.headers.origin;
      if (origin !== undefined) {
        // "null" is what a sandboxed iframe, a data: or file: page or a cross-origin redirect
        // sends: never this node's own page, so refused like any other foreign origin.
        let host = '';
        try {
          host = origin === 'null' ? '' : new URL(origin).host;
        } catch {
          host = '';
        }
        if (!host || host !== req.headers.host) {
          log.warn('admin: cross-origin action refused', { event: 'admin.cross_origin', ip: req.ip, origin: origin === 'null' ? 'null' : 'other' });
          res.status(403).json({ error: 'cross-origin request refused' });
          return;
        }
      }
      if (!req.is('application/json')) {
        res.status(415).json({ error: 'actions must be sent as application/json' });
        return;
      }
    }
    next();
  };

  /** Validate a login attempt; on success returns a fresh session id. */
  login(token: unknown): string | undefined {
    if (typeof token !== 'string' || !tokenMatches(token, this.opts.token)) return undefined;
    const now = this.now();
    for (const [k, exp] of this.sessions) if (exp <= now) this.sessions.delete(k);
    while (this.sessions.size >= 1000) this.sessions.delete(this.sessions.keys().next().value as string);
    const sid = crypto.randomBytes(32).toString('base64url');
    this.sessions.set(sid, now + this.ttl);
    return sid;
  }

  logout(req: Request): void {
    const sid = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (sid) this.sessions.delete(sid);
  }

  sessionCookie(sid: string, secure: boolean): string {
    return `${SESSION_COOKIE}=${sid}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=${Math.floor(this.ttl / 1000)}${secure ? '; Secure' : ''}`;
  }

  clearCookie(secure: boolean): string {
    return `${SESSION_COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`;
  }
}
