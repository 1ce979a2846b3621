/**
 * C-STORE response statuses on the wire. DCMTK's storescp and Orthanc only ever answer Success (a
 * filtered Orthanc instance is also "Success"), so the peer here is a dcmjs-dimse SCP on a real TCP
 * port that answers chosen statuses per SOP instance: out of resources, SOP class mismatch,
 * warning, success; and one that accepts no CT presentation context at all.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { association as assocNs, constants, requests, responses, Scp, Server } from 'dcmjs-dimse';
import type { Destination } from '../../src/config/schema';
import { readPart10 } from '../../src/dicom/dcmjs';
import { describeStoreStatus } from '../../src/egress/dimse-sender';
import { EgressService } from '../../src/egress/egress';
import { openDb, Db } from '../../src/store/db';
import { geHeadCt } from '../harness/data';
import { freePort } from '../harness/ports';

jest.setTimeout(60000);

const { PresentationContextResult, TransferSyntax, StorageClass } = constants;
const sopUid = (f: string): string => String(readPart10(fs.readFileSync(f), { untilPixelData: true }).dataset.SOPInstanceUID);

/** Status to answer per SOP instance UID, and which SOP classes to accept (shared with the SCP class). */
const scpBehaviour: { statuses: Map<string, number>; acceptClasses: string[]; received: string[] } = {
  statuses: new Map(),
  acceptClasses: [],
  received: [],
};

class ChoosyScp extends Scp {
  override associationRequested(association: assocNs.Association): void {
    for (const c of association.getPresentationContexts()) {
      const ctx = association.getPresentationContext(c.id);
      if (scpBehaviour.acceptClasses.includes(ctx.getAbstractSyntaxUid())) {
        const ts = ctx.getTransferSyntaxUids().find((t) => t === TransferSyntax.ExplicitVRLittleEndian || t === TransferSyntax.ImplicitVRLittleEndian);
        if (ts) ctx.setResult(PresentationContextResult.Accept, ts);
        else ctx.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
      } else {
        ctx.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
      }
    }
    this.sendAssociationAccept();
  }
  override cStoreRequest(request: requests.CStoreRequest, callback: (r: responses.CStoreResponse) => void): void {
    const uid = request.getAffectedSopInstanceUid();
    scpBehaviour.received.push(uid);
    const response = responses.CStoreResponse.fromRequest(request);
    response.setStatus(scpBehaviour.statuses.get(uid) ?? 0x0000);
    // Always set it: measured, a dcmjs-dimse SCP otherwise repeats the previous response's comment.
    response.setErrorComment(response.getStatus() === 0xa700 ? 'disk full' : '');
    callback(response);
  }
  override associationReleaseRequested(): void {
    this.sendAssociationReleaseResponse();
  }
}

let server: Server;
let port: number;
let tmp: string;
let db: Db;
beforeAll(async () => {
  port = await freePort();
  server = new Server(ChoosyScp);
  server.listen(port);
});
afterAll(() => server.close());
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dimse-status-'));
  db = openDb(tmp);
  scpBehaviour.statuses.clear();
  scpBehaviour.received.length = 0;
});
afterEach(() => {
  db.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function service(now: () => number): EgressService {
  const dest: Destination = { name: 'scp', type: 'dimse', host: '127.0.0.1', port, calledAeTitle: 'ANY', overlaySc: false };
  return new EgressService({
    db,
    destinations: [dest],
    settings: { maxAttempts: 2, initialBackoffSeconds: 10, maxBackoffSeconds: 40 },
    callingAeTitle: 'STROKEAI',
    clock: now,
    jitter: 0,
  });
}

it('maps each response status: success and warning are sent, 0xA7xx/0xA9xx failed with the reason', async () => {
  scpBehaviour.acceptClasses = [StorageClass.CtImageStorage];
  const [ok, full, mismatch, warn] = geHeadCt().slice(0, 4);
  scpBehaviour.statuses.set(sopUid(full), 0xa700);
  scpBehaviour.statuses.set(sopUid(mismatch), 0xa900);
  scpBehaviour.statuses.set(sopUid(warn), 0xb000);
  let now = 0;
  const eg = service(() => now);
  eg.enqueue([ok, full, mismatch, warn].map((p) => ({ path: p })), ['scp']);
  await eg.sendNow();
  const bySop = new Map(eg.outbox.list().map((r) => [r.sopInstanceUid, r]));
  expect(bySop.get(sopUid(ok))).toMatchObject({ state: 'sent', lastStatus: 0 });
  expect(bySop.get(sopUid(warn))).toMatchObject({ state: 'sent', lastStatus: 0xb000, lastError: 'Warning 0xB000: coercion of data elements' });
  expect(bySop.get(sopUid(full))).toMatchObject({ state: 'failed', lastStatus: 0xa700, lastError: 'Refused 0xA700: out of resources (disk full)' });
  expect(bySop.get(sopUid(mismatch))).toMatchObject({ state: 'failed', lastStatus: 0xa900, lastError: 'Error 0xA900: data set does not match SOP class' });
  expect(scpBehaviour.received).toHaveLength(4); // one association, four requests

  // The two failed rows are retried alone at their own time; the second failure makes them dead.
  now += 10000;
  await eg.sendNow();
  expect(scpBehaviour.received).toHaveLength(6);
  expect(eg.stats()[0]).toMatchObject({ sent: 2, dead: 2, outboxSize: 0 });
});

it('a destination that accepts no CT context: each file fails with that reason instead of vanishing', async () => {
  scpBehaviour.acceptClasses = [StorageClass.MrImageStorage];
  const eg = service(() => 0);
  eg.enqueue([{ path: geHeadCt()[0] }], ['scp']);
  await eg.sendNow();
  const row = eg.outbox.list()[0];
  expect(row.state).toBe('failed');
  expect(row.lastError).toBe('destination accepts no presentation context for SOP class 1.2.840.10008.5.1.4.1.1.2');
  expect(scpBehaviour.received).toHaveLength(0);
});

it('describes the status classes of PS3.4 B.2.3', () => {
  expect(describeStoreStatus(0x0000).kind).toBe('success');
  expect(describeStoreStatus(0xb007)).toEqual({ kind: 'warning', text: 'Warning 0xB007: data set does not match SOP class' });
  expect(describeStoreStatus(0xa7ff).text).toBe('Refused 0xA7FF: out of resources');
  expect(describeStoreStatus(0xc123).text).toBe('Error 0xC123: cannot understand');
  expect(describeStoreStatus(0x0122)).toEqual({ kind: 'failure', text: 'Failure 0x0122: SOP class not supported' });
});
