/**
 * Egress to DCMTK storescp as a (second) destination: one association per batch, and transfer
 * syntax fallback when the destination accepts only Implicit VR Little Endian.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Destination } from '../../src/config/schema';
import { readPart10, TransferSyntax } from '../../src/dicom/dcmjs';
import { EgressService } from '../../src/egress/egress';
import { openDb, Db } from '../../src/store/db';
import { dicomFiles, geHeadCt } from '../harness/data';
import { startStorescp, StorescpHandle } from '../harness/dcmtk';
import { OrthancHandle, startOrthanc } from '../harness/orthanc';
import { freePort } from '../harness/ports';

jest.setTimeout(90000);

const settings = { maxAttempts: 3, initialBackoffSeconds: 10, maxBackoffSeconds: 40 };
const header = (f: string): ReturnType<typeof readPart10> => readPart10(fs.readFileSync(f), { untilPixelData: true });
const sopUid = (f: string): string => String(header(f).dataset.SOPInstanceUID);

let tmp: string;
let db: Db;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-scp-'));
  db = openDb(path.join(tmp, 'node'));
});
afterEach(() => {
  db.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Accepted associations ("Association Received" also counts the harness's TCP readiness probe). */
function associationsIn(scp: StorescpHandle): number {
  return (fs.readFileSync(scp.logFile, 'utf8').match(/Association Acknowledged/g) ?? []).length;
}

it('sends the same results to Orthanc and to storescp, one association per destination', async () => {
  const pacs: OrthancHandle = await startOrthanc({ aet: 'PACS' });
  const port = await freePort();
  const scp = await startStorescp(path.join(tmp, 'scp'), port, 'ARCHIVE');
  try {
    const files = geHeadCt().slice(0, 5);
    const destinations: Destination[] = [
      { name: 'pacs', type: 'dimse', host: '127.0.0.1', port: pacs.dicomPort, calledAeTitle: 'PACS', overlaySc: false },
      { name: 'archive', type: 'dimse', host: '127.0.0.1', port, calledAeTitle: 'ARCHIVE', overlaySc: false },
    ];
    const eg = new EgressService({ db, destinations, settings, callingAeTitle: 'STROKEAI', jitter: 0 });
    eg.enqueue(files.map((p) => ({ path: p })), ['pacs', 'archive']);
    expect(eg.stats().map((s) => s.outboxSize)).toEqual([5, 5]);
    await eg.sendNow();
    expect(eg.stats().map((s) => [s.destination, s.sent, s.outboxSize])).toEqual([
      ['archive', 5, 0],
      ['pacs', 5, 0],
    ]);
    const got = scp.receivedFiles().map((f) => sopUid(f)).sort();
    expect(got).toEqual(files.map(sopUid).sort());
    expect(associationsIn(scp)).toBe(1); // 5 files, one association
    expect((await pacs.listSopInstanceUids()).sort()).toEqual(files.map(sopUid).sort());
  } finally {
    await scp.stop();
    await pacs.stop();
  }
});

it('falls back to Implicit VR Little Endian when the destination accepts nothing else, pixels unchanged', async () => {
  const port = await freePort();
  const scp = await startStorescp(path.join(tmp, 'scp'), port, 'OLDPACS', ['+xi']); // implicit LE only
  try {
    const explicit = geHeadCt()[6];
    expect(header(explicit).transferSyntaxUid).toBe(TransferSyntax.ExplicitVRLittleEndian);
    const dest: Destination = { name: 'old', type: 'dimse', host: '127.0.0.1', port, calledAeTitle: 'OLDPACS', overlaySc: false };
    const eg = new EgressService({ db, destinations: [dest], settings, callingAeTitle: 'STROKEAI', jitter: 0 });
    eg.enqueue([{ path: explicit }], ['old']);
    await eg.sendNow();
    expect(eg.stats()[0]).toMatchObject({ sent: 1, dead: 0 });
    const [received] = scp.receivedFiles();
    const a = readPart10(fs.readFileSync(received));
    const b = readPart10(fs.readFileSync(explicit));
    expect(a.transferSyntaxUid).toBe(TransferSyntax.ImplicitVRLittleEndian);
    const px = (p: typeof a): Buffer => Buffer.from((p.dataset.PixelData as ArrayBuffer[])[0]);
    expect(px(a).equals(px(b))).toBe(true);
  } finally {
    await scp.stop();
  }
});

it('a JPEG Lossless file goes as stored where accepted, and is decompressed (lossless) for an implicit-only peer', async () => {
  const jpeg = dicomFiles('transfer-syntaxes').find((f) => header(f).transferSyntaxUid === '1.2.840.10008.1.2.4.70');
  const reference = dicomFiles('transfer-syntaxes').find((f) => header(f).transferSyntaxUid === TransferSyntax.ExplicitVRLittleEndian);
  if (!jpeg || !reference) throw new Error('transfer-syntaxes data set incomplete');
  const portAll = await freePort();
  const portImplicit = await freePort();
  const all = await startStorescp(path.join(tmp, 'all'), portAll, 'ALL');
  const implicitOnly = await startStorescp(path.join(tmp, 'implicit'), portImplicit, 'IMPL', ['+xi']);
  try {
    const destinations: Destination[] = [
      { name: 'all', type: 'dimse', host: '127.0.0.1', port: portAll, calledAeTitle: 'ALL', overlaySc: false },
      { name: 'implicit', type: 'dimse', host: '127.0.0.1', port: portImplicit, calledAeTitle: 'IMPL', overlaySc: false },
    ];
    const eg = new EgressService({ db, destinations, settings, callingAeTitle: 'STROKEAI', jitter: 0 });
    eg.enqueue([{ path: jpeg }], ['all', 'implicit']);
    await eg.sendNow();
    const rows = eg.outbox.list();
    expect(rows.map((r) => [r.destination, r.state, r.lastError])).toEqual(
      expect.arrayContaining([
        ['all', 'sent', null],
        ['implicit', 'sent', null],
      ]),
    );
    const asStored = readPart10(fs.readFileSync(all.receivedFiles()[0]));
    expect(asStored.transferSyntaxUid).toBe('1.2.840.10008.1.2.4.70');
    const decompressed = readPart10(fs.readFileSync(implicitOnly.receivedFiles()[0]));
    expect(decompressed.transferSyntaxUid).toBe(TransferSyntax.ImplicitVRLittleEndian);
    // Lossless: same pixels as the uncompressed copy of this image in the data set.
    const ref = readPart10(fs.readFileSync(reference));
    const px = (p: typeof ref): Buffer => Buffer.from((p.dataset.PixelData as ArrayBuffer[])[0]);
    expect(px(decompressed).equals(px(ref))).toBe(true);
  } finally {
    await all.stop();
    await implicitOnly.stop();
  }
});
