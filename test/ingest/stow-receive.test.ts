/**
 * STOW-RS receive: a plain HTTP client (fetch) and the real Orthanc DICOMweb client → node.
 */
import * as fs from 'fs';
import * as http from 'http';
import { readPart10 } from '../../src/dicom/dcmjs';
import { geHeadCt } from '../harness/data';
import { startOrthanc } from '../harness/orthanc';
import { startTestNode, stowBody, TestNode } from '../helpers/node';

const uidOf = (f: string) => String(readPart10(fs.readFileSync(f), { untilPixelData: true }).dataset.SOPInstanceUID);

/** POST with chunked transfer-encoding (no Content-Length), as Orthanc does. */
function postChunked(url: string, headers: Record<string, string>, body: Buffer): Promise<{ status: number; text: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { ...headers, 'Transfer-Encoding': 'chunked' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), headers: res.headers }));
    });
    req.on('error', reject);
    for (let i = 0; i < body.length; i += 7919) req.write(body.subarray(i, i + 7919));
    req.end();
  });
}

describe('STOW-RS receiver', () => {
  let t: TestNode;
  beforeAll(async () => {
    t = await startTestNode({ http: { stowBearerToken: 'secret-token-for-tests' } });
  });
  afterAll(async () => t?.stop());
  const auth = { Authorization: 'Bearer secret-token-for-tests' };

  test('stores instances posted with Content-Length and answers ReferencedSOPSequence', async () => {
    const files = geHeadCt().slice(0, 3);
    const { body, contentType } = stowBody(files.map((f) => ({ body: fs.readFileSync(f) })));
    const res = await fetch(`${t.httpUrl}/dicom-web/studies`, { method: 'POST', headers: { ...auth, 'Content-Type': contentType }, body });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/application\/dicom\+json/);
    const json = (await res.json()) as Record<string, { Value: Record<string, { Value: string[] }>[] }>;
    const refs = json['00081199'].Value.map((i) => i['00081155'].Value[0]);
    expect(refs.sort()).toEqual(files.map(uidOf).sort());
    for (const f of files) expect(t.node.store.get(uidOf(f))?.sourceAe).toBe('STOW-RS');
  });

  test('stores instances posted chunked (no Content-Length)', async () => {
    const files = geHeadCt().slice(3, 6);
    const { body, contentType } = stowBody(files.map((f) => ({ body: fs.readFileSync(f) })));
    const res = await postChunked(`${t.httpUrl}/dicom-web/studies`, { ...auth, 'Content-Type': contentType }, body);
    expect(res.status).toBe(200);
    for (const f of files) expect(t.node.store.get(uidOf(f))).toBeDefined();
  });

  test('refuses a missing or wrong bearer token', async () => {
    const { body, contentType } = stowBody([{ body: fs.readFileSync(geHeadCt()[7]) }]);
    const none = await fetch(`${t.httpUrl}/dicom-web/studies`, { method: 'POST', headers: { 'Content-Type': contentType }, body });
    expect(none.status).toBe(401);
    const wrong = await fetch(`${t.httpUrl}/dicom-web/studies`, { method: 'POST', headers: { Authorization: 'Bearer nope', 'Content-Type': contentType }, body });
    expect(wrong.status).toBe(401);
    expect(t.node.store.get(uidOf(geHeadCt()[7]))).toBeUndefined();
  });

  test('a non-DICOM body gets a clear error and the node keeps working', async () => {
    const notMultipart = await fetch(`${t.httpUrl}/dicom-web/studies`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: '{}' });
    expect(notMultipart.status).toBe(415);
    const { body, contentType } = stowBody([{ body: Buffer.from('this is not DICOM at all') }, { body: fs.readFileSync(geHeadCt()[8]) }]);
    const mixed = await fetch(`${t.httpUrl}/dicom-web/studies`, { method: 'POST', headers: { ...auth, 'Content-Type': contentType }, body });
    expect(mixed.status).toBe(202); // some stored, some failed
    const json = (await mixed.json()) as Record<string, { Value: Record<string, { Value: number[] }>[] }>;
    expect(json['00081198'].Value[0]['00081197'].Value[0]).toBe(0xc000);
    expect(mixed.headers.get('warning')).toMatch(/not a readable DICOM/);
    expect(t.node.store.get(uidOf(geHeadCt()[8]))).toBeDefined();
    expect(fs.readdirSync(`${t.dir}/tmp`)).toHaveLength(0);
  });

  test('a study UID in the URL that does not match is reported per instance (0xA900) and the data is kept', async () => {
    const f = geHeadCt()[9];
    const { body, contentType } = stowBody([{ body: fs.readFileSync(f) }]);
    const res = await fetch(`${t.httpUrl}/dicom-web/studies/1.2.3.4.5`, { method: 'POST', headers: { ...auth, 'Content-Type': contentType }, body });
    expect(res.status).toBe(409);
    const json = (await res.json()) as Record<string, { Value: Record<string, { Value: number[] }>[] }>;
    expect(json['00081198'].Value[0]['00081197'].Value[0]).toBe(0xa900);
    expect(t.node.store.get(uidOf(f))).toBeDefined();
  });
});

describe('Orthanc STOW-RS client → node', () => {
  test('Orthanc /dicom-web/servers/{node}/stow delivers every instance', async () => {
    const t = await startTestNode({ http: { stowBearerToken: 'orthanc-to-node-token' } });
    const pacs = await startOrthanc({
      dicomWebServers: { NODE: { Url: `${t.httpUrl}/dicom-web/`, HttpHeaders: { Authorization: 'Bearer orthanc-to-node-token' } } },
    });
    try {
      const files = geHeadCt().slice(0, 8);
      for (const f of files) await pacs.uploadFile(fs.readFileSync(f));
      await pacs.stowTo('NODE', await pacs.listInstances());
      expect(t.node.store.count()).toBe(files.length);
      for (const f of files) expect(t.node.store.get(uidOf(f))).toBeDefined();
    } finally {
      await pacs.stop();
      await t.stop();
    }
  });
});
