/**
 * DICOM TLS (PS3.15 Annex B) and HTTPS with real peers: DCMTK storescu / storescp with +tls and
 * certificates made by the test (test/harness/certs.ts: a CA, server and client certificates, and
 * an untrusted CA with its own certificate).
 */
import * as fs from 'fs';
import * as https from 'https';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import * as tls from 'tls';
import { DestinationSchema, ServerTlsSchema } from '../../src/config/schema';
import { readPart10 } from '../../src/dicom/dcmjs';
import { DimseSender } from '../../src/egress/dimse-sender';
import { EgressService } from '../../src/egress/egress';
import { clientTlsOptions, serverTlsOptions } from '../../src/net/tls';
import { buildNode } from '../../src/wiring';
import { openDb, Db } from '../../src/store/db';
import { log } from '../../src/util/log';
import { CertPair, makeTestPki, TestPki } from '../harness/certs';
import { geHeadCt } from '../harness/data';
import { startStorescp, storescu, StorescuResult } from '../harness/dcmtk';
import { startOrthanc } from '../harness/orthanc';
import { freePort, httpStatus } from '../harness/ports';
import { startTestNode, stowBody, testConfig, TestNode, waitFor } from '../helpers/node';

jest.setTimeout(90000);

let tmp: string;
let pki: TestPki;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tls-'));
  pki = makeTestPki(path.join(tmp, 'pki'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const sop = (f: string): string => String(readPart10(fs.readFileSync(f), { untilPixelData: true }).dataset.SOPInstanceUID);
const tlsArgs = (pair: CertPair, ca: string): string[] => ['+tls', pair.key, pair.cert, '+cf', ca];
const succeeded = (r: StorescuResult): number => r.files.filter((f) => f.outcome === 'success').length;

/** Metadata of the warn lines with this event logged since the spy was last cleared. */
function logged(spy: jest.SpyInstance, event: string): Record<string, unknown>[] {
  return spy.mock.calls.map((c) => c[1] as Record<string, unknown>).filter((m) => m && m.event === event);
}

describe("DICOM TLS on the node's DICOM port (client certificates required), DCMTK storescu as the sender", () => {
  let t: TestNode;
  let warn: jest.SpyInstance;
  let info: jest.SpyInstance;
  beforeAll(async () => {
    warn = jest.spyOn(log, 'warn');
    info = jest.spyOn(log, 'info');
    t = await startTestNode({
      dimse: {
        allowAnyCaller: false,
        allowedPeers: [{ aeTitle: 'MODALITY1' }],
        artimTimeoutSeconds: 2,
        maxPendingConnectionsPerIp: 3,
        tls: { certFile: pki.server.cert, keyFile: pki.server.key, caFile: pki.ca, requireClientCert: true },
      },
    });
  });
  afterAll(async () => {
    await t?.stop();
    warn.mockRestore();
    info.mockRestore();
  });
  beforeEach(() => warn.mockClear());

  const send = (file: string, callingAet: string, extraArgs: string[]): Promise<StorescuResult> =>
    storescu('127.0.0.1', t.dimsePort, [file], { callingAet, calledAet: 'STROKEAI', extraArgs, timeoutMs: 30000 });

  test('says at start-up that the DICOM port is TLS', () => {
    expect(info.mock.calls.find((c) => (c[1] as { event?: string })?.event === 'dimse.listening')?.[1]).toMatchObject({ tls: true, port: t.dimsePort });
  });

  test("storescu +tls with a certificate from the node's CA: the instance is stored", async () => {
    const f = geHeadCt()[0];
    const r = await send(f, 'MODALITY1', tlsArgs(pki.client, pki.ca));
    expect(r.files.map((x) => x.outcome)).toEqual(['success']);
    expect(t.node.store.get(sop(f))).toMatchObject({ sourceAe: 'MODALITY1', calledAe: 'STROKEAI' });
  });

  test('a client certificate signed by another CA is refused in the handshake: nothing stored, a JSON log line says why and from where', async () => {
    const f = geHeadCt()[1];
    const before = t.node.store.count();
    const r = await send(f, 'MODALITY1', tlsArgs(pki.rogue, pki.ca));
    expect(succeeded(r)).toBe(0);
    expect(r.associationFailed).toBe(true);
    expect(t.node.store.count()).toBe(before);
    expect(t.node.store.get(sop(f))).toBeUndefined();
    await waitFor(() => logged(warn, 'dimse.tls.handshake_failed').length > 0, 5000, 'the handshake failure log line');
    const [line] = logged(warn, 'dimse.tls.handshake_failed');
    expect(line.remote).toBe('127.0.0.1');
    expect(line.reason).toMatch(/^client certificate refused: UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    expect(JSON.stringify(line)).not.toMatch(/[^\x20-\x7e]/);
  });

  test('storescu with TLS but no client certificate (+tla) is refused, nothing stored', async () => {
    const f = geHeadCt()[2];
    const r = await send(f, 'MODALITY1', ['+tla', '+cf', pki.ca]);
    expect(succeeded(r)).toBe(0);
    expect(t.node.store.get(sop(f))).toBeUndefined();
    await waitFor(() => logged(warn, 'dimse.tls.handshake_failed').length > 0, 5000, 'the handshake failure log line');
    expect(logged(warn, 'dimse.tls.handshake_failed')[0]).toMatchObject({ code: 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', reason: 'peer did not return a certificate' });
  });

  test('plain (non-TLS) storescu to the TLS port fails, nothing stored', async () => {
    const f = geHeadCt()[3];
    const r = await send(f, 'MODALITY1', []);
    expect(succeeded(r)).toBe(0);
    expect(r.associationFailed).toBe(true);
    expect(t.node.store.get(sop(f))).toBeUndefined();
    await waitFor(() => logged(warn, 'dimse.tls.handshake_failed').length > 0, 5000, 'the handshake failure log line');
    // OpenSSL's fixed text, not the DICOM bytes the client sent
    expect(JSON.stringify(logged(warn, 'dimse.tls.handshake_failed'))).not.toMatch(/STROKEAI|MODALITY1/);
  });

  test('the AE allow-list still applies after a good TLS handshake', async () => {
    const f = geHeadCt()[4];
    const r = await send(f, 'INTRUDER', tlsArgs(pki.client, pki.ca));
    expect(r.errors.join('\n')).toMatch(/Calling AE Title Not Recognized/i);
    expect(t.node.store.get(sop(f))).toBeUndefined();
  });

  test('a connection that never starts the handshake is closed after dimse.artimTimeoutSeconds (2 s)', async () => {
    const t0 = Date.now();
    const closedAfter = await new Promise<number>((resolve) => {
      const s = net.connect(t.dimsePort, '127.0.0.1');
      s.on('error', () => undefined);
      s.on('close', () => resolve(Date.now() - t0));
    });
    expect(closedAfter).toBeGreaterThanOrEqual(1500);
    expect(closedAfter).toBeLessThan(8000);
    await waitFor(() => logged(warn, 'dimse.tls.handshake_failed').some((l) => /timeout/i.test(String(l.reason))), 5000, 'a timeout log line');
  });
  test('handshakes in progress count against dimse.maxPendingConnectionsPerIp (3): a 4th is closed at once, and the count is released', async () => {
    const t0 = Date.now();
    const conns: { s: net.Socket; closedAt: Promise<number> }[] = [];
    for (let i = 0; i < 4; i++) {
      const s = net.connect(t.dimsePort, '127.0.0.1');
      s.on('error', () => undefined);
      const closedAt = new Promise<number>((r) => s.on('close', () => r(Date.now() - t0)));
      await new Promise((r) => s.once('connect', r));
      conns.push({ s, closedAt });
    }
    expect(await conns[3].closedAt).toBeLessThan(1000);
    expect(conns.slice(0, 3).map((c) => c.s.readyState)).toEqual(['open', 'open', 'open']);
    expect(logged(warn, 'dimse.connection.limit')).toEqual([expect.objectContaining({ remote: '127.0.0.1', tls: true })]);
    for (const c of conns) c.s.destroy();
    await Promise.all(conns.map((c) => c.closedAt));
    await waitFor(() => t.node.dimse!.pendingConnections === 0, 5000, 'the pending count back to 0');
    const f = geHeadCt()[10];
    const r = await send(f, 'MODALITY1', tlsArgs(pki.client, pki.ca));
    expect(r.files.map((x) => x.outcome)).toEqual(['success']);
    expect(t.node.dimse!.pendingConnections).toBe(0);
  });
});

describe("the node's DIMSE egress over TLS to DCMTK storescp +tls (which requires a client certificate)", () => {
  let db: Db;
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(tmp, 'egress-'));
    db = openDb(path.join(dir, 'node'));
  });
  afterEach(() => db.close());

  const settings = { maxAttempts: 3, initialBackoffSeconds: 10, maxBackoffSeconds: 40 };
  const clientTls = (): Record<string, unknown> => ({ caFile: pki.ca, certFile: pki.client.cert, keyFile: pki.client.key });

  /** Send one file to a storescp started with `scpTls`; the outbox row and what storescp received. */
  async function sendTo(scpTls: string[], tlsCfg: Record<string, unknown>, file: string): Promise<{ state: string; lastError: string | null; received: string[] }> {
    const port = await freePort();
    const scp = await startStorescp(path.join(dir, 'scp'), port, 'ARCHIVE', scpTls);
    try {
      const dest = DestinationSchema.parse({ name: 'pacs', type: 'dimse', host: '127.0.0.1', port, calledAeTitle: 'ARCHIVE', tls: tlsCfg });
      const eg = new EgressService({ db, destinations: [dest], settings, callingAeTitle: 'STROKEAI', jitter: 0 });
      eg.enqueue([{ path: file }], ['pacs']);
      await eg.sendNow();
      const [row] = eg.outbox.list();
      return { state: row.state, lastError: row.lastError, received: scp.receivedFiles().map(sop) };
    } finally {
      await scp.stop();
    }
  }

  test('mutual TLS: the file arrives', async () => {
    const f = geHeadCt()[5];
    const r = await sendTo(tlsArgs(pki.server, pki.ca), clientTls(), f);
    expect(r).toEqual({ state: 'sent', lastError: null, received: [sop(f)] });
  });

  test("a storescp whose certificate our CA did not sign: nothing sent, the outbox says the destination's certificate is not trusted", async () => {
    const r = await sendTo(tlsArgs(pki.rogue, pki.ca), clientTls(), geHeadCt()[6]);
    expect(r.state).toBe('failed');
    expect(r.lastError).toMatch(/^TLS: the destination's certificate is not trusted/);
    expect(r.received).toEqual([]);
  });

  test('a storescp that does not trust our client certificate: the outbox says it refused it', async () => {
    const r = await sendTo(tlsArgs(pki.server, pki.rogueCa), clientTls(), geHeadCt()[7]);
    expect(r.state).toBe('failed');
    expect(r.lastError).toMatch(/^TLS: the destination refused this node's client certificate/);
    expect(r.received).toEqual([]);
  });

  test('tls.serverName is the name checked against the destination certificate', async () => {
    const r = await sendTo(tlsArgs(pki.server, pki.ca), { ...clientTls(), serverName: 'pacs.hospital.example' }, geHeadCt()[8]);
    expect(r.state).toBe('failed');
    expect(r.lastError).toMatch(/^TLS: the destination's certificate does not name this host/);
    expect(r.received).toEqual([]);
  });
});

test('Orthanc with DICOM TLS (DicomTlsEnabled, UseDicomTls) sends to the node and receives its results, both over mutual TLS', async () => {
  const nodePort = await freePort();
  const pacs = await startOrthanc({
    aet: 'ORTHANC',
    config: {
      DicomTlsEnabled: true,
      DicomTlsCertificate: pki.server.cert,
      DicomTlsPrivateKey: pki.server.key,
      DicomTlsTrustedCertificates: pki.ca,
      DicomTlsRemoteCertificateRequired: true,
      DicomModalities: { NODE: { AET: 'STROKEAI', Host: '127.0.0.1', Port: nodePort, UseDicomTls: true } },
    },
  });
  let t: TestNode | undefined;
  try {
    t = await startTestNode({
      dimse: {
        port: nodePort,
        allowAnyCaller: false,
        allowedPeers: [{ aeTitle: 'ORTHANC' }],
        tls: { certFile: pki.server.cert, keyFile: pki.server.key, caFile: pki.ca, requireClientCert: true },
      },
      destinations: [
        { name: 'orthanc', type: 'dimse', host: '127.0.0.1', port: pacs.dicomPort, calledAeTitle: 'ORTHANC', tls: { caFile: pki.ca, certFile: pki.client.cert, keyFile: pki.client.key } },
      ],
    });
    // Orthanc -> node
    const f = geHeadCt()[11];
    const uploaded = await pacs.uploadFile(fs.readFileSync(f));
    await pacs.storeToModality('NODE', [uploaded.ID]);
    expect(t.node.store.get(sop(f))).toMatchObject({ sourceAe: 'ORTHANC' });
    // node -> Orthanc (the egress of the running node, to a fresh instance Orthanc does not have)
    const g = geHeadCt()[12];
    const db = openDb(path.join(tmp, 'orthanc-egress'));
    try {
      const eg = new EgressService({ db, destinations: t.config.destinations, settings: t.config.egress, callingAeTitle: 'STROKEAI', jitter: 0 });
      eg.enqueue([{ path: g }], ['orthanc']);
      await eg.sendNow();
      expect(eg.outbox.list().map((r) => [r.state, r.lastError])).toEqual([['sent', null]]);
    } finally {
      db.close();
    }
    expect(await pacs.instanceIdOf(sop(g))).toBeDefined();
  } finally {
    await t?.stop();
    await pacs.stop();
  }
});

describe('HTTPS on the HTTP port (http.tls)', () => {
  let t: TestNode;
  let warn: jest.SpyInstance;
  beforeAll(async () => {
    warn = jest.spyOn(log, 'warn');
    t = await startTestNode({ http: { tls: { certFile: pki.server.cert, keyFile: pki.server.key } } });
  });
  afterAll(async () => {
    await t?.stop();
    warn.mockRestore();
  });

  function post(url: string, body: Buffer, contentType: string): Promise<{ status: number; json: Record<string, { Value?: unknown[] }>; issuer: string }> {
    return new Promise((resolve, reject) => {
      const req = https.request(url, { method: 'POST', ca: fs.readFileSync(pki.ca), headers: { 'Content-Type': contentType, 'Content-Length': body.length } }, (res) => {
        const issuer = String((res.socket as tls.TLSSocket).getPeerCertificate().issuer.CN);
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString() || '{}'), issuer }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  test('STOW-RS over https (verified against the test CA) stores the instance and answers with https URLs', async () => {
    expect(t.httpUrl).toMatch(/^https:/);
    const f = geHeadCt()[9];
    const { body, contentType } = stowBody([{ body: fs.readFileSync(f) }]);
    const r = await post(`${t.httpUrl}/dicom-web/studies`, body, contentType);
    expect(r.status).toBe(200);
    expect(r.issuer).toBe('Stroke node test CA');
    expect(String(r.json['00081190']?.Value?.[0])).toMatch(new RegExp(`^https://127\\.0\\.0\\.1:${t.node.httpPort}/dicom-web/studies/`));
    expect(t.node.store.get(sop(f))).toBeDefined();
  });

  test('plain http to the https port gets no HTTP answer, and the failed handshake is logged', async () => {
    warn.mockClear();
    expect(await httpStatus(`http://127.0.0.1:${t.node.httpPort}/healthz`)).toBe(0);
    await waitFor(() => logged(warn, 'http.tls.handshake_failed').length > 0, 5000, 'the handshake failure log line');
  });
});

describe('TLS configuration', () => {
  const server = (o: Record<string, unknown>) => ServerTlsSchema.parse({ certFile: pki.server.cert, keyFile: pki.server.key, ...o });

  test('an unreadable or invalid file, or a key of another certificate, stops start-up with the key named', () => {
    expect(() => serverTlsOptions(server({ certFile: path.join(tmp, 'none.pem') }), 'dimse.tls')).toThrow(/^dimse\.tls\.certFile: cannot read .*none\.pem/);
    expect(() => serverTlsOptions(server({ certFile: pki.server.key }), 'dimse.tls')).toThrow(/^dimse\.tls\.certFile: .* is not a valid PEM certificate/);
    expect(() => serverTlsOptions(server({ keyFile: pki.server.cert }), 'http.tls')).toThrow(/^http\.tls\.keyFile: .* is not a valid PEM key/);
    expect(() => serverTlsOptions(server({ keyFile: pki.rogue.key }), 'dimse.tls')).toThrow(/^dimse\.tls\.keyFile does not belong to dimse\.tls\.certFile/);
    expect(() => serverTlsOptions(server({ requireClientCert: true }), 'dimse.tls')).toThrow(/^dimse\.tls\.requireClientCert needs dimse\.tls\.caFile/);
    const dest = DestinationSchema.parse({ name: 'pacs', type: 'dimse', host: '127.0.0.1', port: 104, calledAeTitle: 'PACS', tls: { caFile: pki.client.key } });
    expect(() => new DimseSender(dest as never, { defaultCallingAeTitle: 'STROKEAI' })).toThrow(/^destinations\[name=pacs\]\.tls\.caFile: .* is not a valid PEM CA certificate bundle/);
    expect(() => clientTlsOptions({ certFile: pki.client.cert, rejectUnauthorized: true, minVersion: 'TLSv1.2' }, 'x.tls')).toThrow(/^x\.tls\.certFile and x\.tls\.keyFile go together/);
  });

  test('a certificate that expires within 30 days is a start-up warning (the test certificates last 2 days)', () => {
    const warn: jest.SpyInstance = jest.spyOn(log, 'warn');
    try {
      serverTlsOptions(server({}), 'http.tls');
      const [line] = logged(warn, 'tls.certificate_validity');
      expect(line).toMatchObject({ key: 'http.tls.certFile', subject: 'CN=localhost' });
      expect(line.daysLeft).toBeLessThanOrEqual(2);
    } finally {
      warn.mockRestore();
    }
  });

  test('the node does not start with a bad http.tls file, and says which key', async () => {
    const { config, dir } = await testConfig({ http: { tls: { certFile: path.join(tmp, 'missing.crt'), keyFile: pki.server.key } } });
    const node = await buildNode(config);
    try {
      await expect(node.start()).rejects.toThrow(/^http\.tls\.certFile: cannot read/);
    } finally {
      await node.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('minVersion is enforced: a TLSv1.3-only server refuses a TLS 1.2 client, TLSv1.2 accepts it', async () => {
    const tryTls12 = async (minVersion: 'TLSv1.2' | 'TLSv1.3'): Promise<string> => {
      const srv = tls.createServer(serverTlsOptions(server({ minVersion }), 'dimse.tls'), (s) => s.end());
      srv.on('tlsClientError', () => undefined);
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      const port = (srv.address() as net.AddressInfo).port;
      try {
        return await new Promise<string>((resolve) => {
          const c = tls.connect({ port, host: '127.0.0.1', ca: fs.readFileSync(pki.ca), maxVersion: 'TLSv1.2' }, () => {
            resolve(`ok ${c.getProtocol()} ${c.getCipher().name}`);
            c.destroy();
          });
          c.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code}`));
        });
      } finally {
        await new Promise((r) => srv.close(r));
      }
    };
    expect(await tryTls12('TLSv1.2')).toMatch(/^ok TLSv1\.2 ECDHE-RSA-AES(128|256)-GCM-SHA(256|384)$/);
    expect(await tryTls12('TLSv1.3')).toMatch(/^error /);
  });
});
