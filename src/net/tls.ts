/**
 * TLS for the DICOM port, the HTTP port and DIMSE destinations (DICOM PS3.15 Annex B secure
 * transport connection profiles; the BCP 195 profiles B.9-B.11): TLS 1.2 or 1.3 only, forward-secret
 * AEAD cipher suites only, certificates and keys in PEM.
 *
 * The PEM files are read once, when the listener or the sender is built (start-up): a missing,
 * unreadable or invalid file, or a key that does not belong to its certificate, is a start-up error
 * whose message names the configuration key (e.g. `dimse.tls.keyFile: ...`).
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as net from 'net';
import * as tls from 'tls';
import type { ClientTls, ServerTls } from '../config/schema';
import { log } from '../util/log';

export class TlsConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TlsConfigError';
  }
}

/**
 * TLS 1.3 suites (all AEAD) then the TLS 1.2 suites BCP 195 (RFC 9325 4.2) recommends: ECDHE key
 * exchange, AES-GCM. This is what DCMTK's default "Non-downgrading BCP 195" profile offers too.
 * The TLS 1.3 names must be listed: Node disables TLS 1.3 when a cipher list names none.
 */
export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
].join(':');

type PemKind = 'certificate' | 'key' | 'ca';

/** Read a PEM file and check it parses as what it should be; errors name the config key. */
function readPem(file: string, key: string, kind: PemKind): Buffer {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new TlsConfigError(`${key}: cannot read ${file}: ${(e as Error).message}`);
  }
  const text = buf.toString('latin1');
  try {
    if (kind === 'key') {
      if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) throw new Error('no PEM private key in the file');
      if (/ENCRYPTED/.test(text)) throw new Error('the key is encrypted (a passphrase is not supported: store it unencrypted, readable only by the node)');
      crypto.createPrivateKey(buf);
    } else {
      const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
      if (!blocks) throw new Error('no PEM certificate in the file');
      for (const b of blocks) new crypto.X509Certificate(b);
    }
  } catch (e) {
    throw new TlsConfigError(`${key}: ${file} is not a valid PEM ${kind === 'ca' ? 'CA certificate bundle' : kind}: ${(e as Error).message}`);
  }
  return buf;
}

/** Certificate and key together: they must match (checked now rather than at the first handshake). */
function checkPair(cert: Buffer, keyPem: Buffer, prefix: string): void {
  try {
    tls.createSecureContext({ cert, key: keyPem });
  } catch (e) {
    throw new TlsConfigError(`${prefix}.keyFile does not belong to ${prefix}.certFile: ${(e as Error).message}`);
  }
}

/** Warn at start-up when this node's certificate (first of its chain) is not valid now or expires within this many days. */
export const CERT_EXPIRY_WARNING_DAYS = 30;

function warnValidity(cert: Buffer, key: string): void {
  const x = new crypto.X509Certificate(cert);
  const now = Date.now();
  const validTo = Date.parse(x.validTo);
  const daysLeft = Math.floor((validTo - now) / 86400000);
  if (Date.parse(x.validFrom) > now || daysLeft < CERT_EXPIRY_WARNING_DAYS) {
    log.warn(daysLeft < 0 ? 'TLS certificate expired' : Date.parse(x.validFrom) > now ? 'TLS certificate not valid yet' : 'TLS certificate expires soon', {
      event: 'tls.certificate_validity',
      key,
      subject: x.subject.replace(/\n/g, ', '),
      validFrom: new Date(x.validFrom).toISOString(),
      validTo: new Date(validTo).toISOString(),
      daysLeft,
    });
  }
}

/**
 * Options for `tls.createServer` / `https.createServer` from `dimse.tls` or `http.tls`.
 * `requireClientCert` (mutual TLS) needs `caFile`: a client certificate is then required and must
 * chain to it. `caFile` alone asks for a client certificate and verifies it (the result is on the
 * socket: `authorized`) but lets a client without one, or with an unverified one, in.
 */
export function serverTlsOptions(cfg: ServerTls, prefix: string): tls.TlsOptions {
  if (cfg.requireClientCert && !cfg.caFile) {
    throw new TlsConfigError(`${prefix}.requireClientCert needs ${prefix}.caFile (the CA that client certificates must chain to)`);
  }
  const cert = readPem(cfg.certFile, `${prefix}.certFile`, 'certificate');
  const key = readPem(cfg.keyFile, `${prefix}.keyFile`, 'key');
  checkPair(cert, key, prefix);
  warnValidity(cert, `${prefix}.certFile`);
  const ca = cfg.caFile ? readPem(cfg.caFile, `${prefix}.caFile`, 'ca') : undefined;
  return {
    cert,
    key,
    ca,
    requestCert: Boolean(cfg.caFile),
    rejectUnauthorized: cfg.requireClientCert,
    minVersion: cfg.minVersion,
    ciphers: TLS_CIPHERS,
    honorCipherOrder: true,
  };
}

/**
 * Options for `tls.connect` to a DIMSE destination from `destinations[].tls`. Without `caFile` the
 * destination's certificate must chain to the system's CAs. `serverName` is the name checked against
 * the destination's certificate (and sent as SNI) when it differs from `host`.
 */
export function clientTlsOptions(cfg: ClientTls, prefix: string): tls.ConnectionOptions {
  if (Boolean(cfg.certFile) !== Boolean(cfg.keyFile)) {
    throw new TlsConfigError(`${prefix}.certFile and ${prefix}.keyFile go together (a client certificate needs its key)`);
  }
  const out: tls.ConnectionOptions = {
    rejectUnauthorized: cfg.rejectUnauthorized,
    minVersion: cfg.minVersion,
    ciphers: TLS_CIPHERS,
  };
  if (cfg.caFile) out.ca = readPem(cfg.caFile, `${prefix}.caFile`, 'ca');
  if (cfg.certFile && cfg.keyFile) {
    out.cert = readPem(cfg.certFile, `${prefix}.certFile`, 'certificate');
    out.key = readPem(cfg.keyFile, `${prefix}.keyFile`, 'key');
    checkPair(out.cert as Buffer, out.key as Buffer, prefix);
    warnValidity(out.cert as Buffer, `${prefix}.certFile`);
  }
  if (cfg.serverName) out.servername = cfg.serverName;
  return out;
}

/** OpenSSL / Node codes meaning "we do not trust the peer's certificate". */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REJECTED',
  'INVALID_CA',
]);

/**
 * Operator-readable text for a TLS failure on an outgoing connection, from the error's code
 * (e.g. "TLS: the destination's certificate is not trusted (SELF_SIGNED_CERT_IN_CHAIN: ...)").
 */
export function describeClientTlsError(e: NodeJS.ErrnoException & { reason?: string }): string {
  const code = e.code ?? '';
  // OpenSSL errors carry a short `reason`; their message adds addresses and source paths.
  const detail = `${code ? `${code}: ` : ''}${(e.reason ?? e.message).trim()}`;
  if (UNTRUSTED.has(code)) return `TLS: the destination's certificate is not trusted (${detail}); check destinations[].tls.caFile`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return `TLS: the destination's certificate is outside its validity period (${detail})`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `TLS: the destination's certificate does not name this host (set destinations[].tls.serverName?) (${detail})`;
  if (/ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_REQUIRED|CERTIFICATE_UNKNOWN|ACCESS_DENIED|DECRYPT_ERROR)/.test(code) || /alert (unknown ca|bad certificate|certificate required)/i.test(e.message)) {
    return `TLS: the destination refused this node's client certificate (${detail})`;
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long/i.test(e.message)) {
    return `TLS: handshake failed, the destination does not seem to speak TLS on this port (${detail})`;
  }
  if (/ALERT_PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|NO_PROTOCOLS_AVAILABLE/.test(code) || /handshake failure|no shared cipher/i.test(e.message)) {
    return `TLS: no common protocol version or cipher suite with the destination (${detail})`;
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') return `TLS: the destination closed the connection during the handshake (${detail})`;
  return `TLS error (${detail})`;
}

/** Where the remote end of a socket is, without the IPv4-mapped prefix. */
function remoteOf(s: { remoteAddress?: string } | undefined): string {
  return (s?.remoteAddress ?? '').replace(/^::ffff:/, '');
}

/**
 * Log failed handshakes on a TLS (or HTTPS) server as JSON lines: the reason (OpenSSL's fixed text
 * or Node's code, never bytes from the peer) and the remote IP. A plain-TCP client on a TLS port,
 * a client certificate from another CA, an expired one, a handshake slower than its timeout all
 * end here; Node has already destroyed the socket.
 */
export function logTlsClientErrors(server: tls.Server, port: 'dimse' | 'http'): void {
  // Node's net.Socket caches its peer address once read: read it now, while the connection is up,
  // so that it is still known when a failed handshake has already destroyed the socket.
  server.on('connection', (raw: net.Socket) => void raw.remoteAddress);
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
    // A client certificate that fails verification: Node completes the handshake, records why in
    // authorizationError and closes the socket, which then reports only "socket hang up".
    const certError = (socket as { authorizationError?: Error | string }).authorizationError;
    log.warn('TLS handshake failed', {
      event: `${port}.tls.handshake_failed`,
      remote: remoteOf(socket) || remoteOf((socket as unknown as { _parent?: net.Socket })._parent),
      code: certError ? String(certError) : err.code,
      // OpenSSL errors carry a short `reason` ("peer did not return a certificate"); the message adds addresses and source paths
      reason: (certError ? `client certificate refused: ${String(certError)}` : (err as { reason?: string }).reason ?? err.message).replace(/[^\x20-\x7e]/g, '?').slice(0, 200),
    });
    // Node leaves a socket whose handshake timed out open: close it (a no-op when already closed).
    socket.destroy();
  });
}

/**
 * A TLS server for the DICOM port. `onSecure` gets each socket once its handshake is complete (it is
 * then used like a plain TCP socket); a handshake not complete within `handshakeTimeoutMs` (ARTIM)
 * is abandoned and logged.
 */
export function createDicomTlsServer(
  opts: tls.TlsOptions,
  handshakeTimeoutMs: number,
  onSecure: (socket: tls.TLSSocket) => void,
): tls.Server {
  const server = tls.createServer({ ...opts, handshakeTimeout: handshakeTimeoutMs });
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    if (opts.requestCert) {
      const peer = socket.getPeerCertificate();
      log.info('DICOM TLS connection', {
        event: 'dimse.tls.connected',
        remote: remoteOf(socket),
        protocol: socket.getProtocol(),
        clientCertificate: peer && peer.subject ? { subjectCN: peer.subject.CN, verified: socket.authorized } : null,
      });
    }
    onSecure(socket);
  });
  logTlsClientErrors(server, 'dimse');
  return server;
}
