/**
 * Egress against a REAL Orthanc (Debian 1.10 + DICOMweb plugin): C-STORE and STOW-RS delivery
 * checked through Orthanc's REST API, PACS-down backoff → dead → operator retry with a controlled
 * clock, and an AE whitelist that refuses the node.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Destination } from '../../src/config/schema';
import { readPart10 } from '../../src/dicom/dcmjs';
import { EgressService } from '../../src/egress/egress';
import { openDb, Db } from '../../src/store/db';
import { geHeadCt } from '../harness/data';
import { OrthancHandle, startOrthanc } from '../harness/orthanc';
import { freePort } from '../harness/ports';

jest.setTimeout(90000);

const settings = { maxAttempts: 3, initialBackoffSeconds: 10, maxBackoffSeconds: 40 };

function sopUid(file: string): string {
  return String(readPart10(fs.readFileSync(file), { untilPixelData: true }).dataset.SOPInstanceUID);
}

let tmp: string;
let db: Db;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-test-'));
  db = openDb(tmp);
});
afterEach(() => {
  db.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('egress to a running Orthanc', () => {
  let pacs: OrthancHandle;
  beforeAll(async () => {
    pacs = await startOrthanc({ aet: 'PACS' });
  });
  afterAll(async () => {
    await pacs?.stop();
  });

  it('delivers result files by C-STORE in one association and Orthanc holds every instance', async () => {
    const files = geHeadCt().slice(0, 3);
    const dest: Destination = { name: 'pacs-dimse', type: 'dimse', host: '127.0.0.1', port: pacs.dicomPort, calledAeTitle: 'PACS', overlaySc: false };
    const eg = new EgressService({ db, destinations: [dest], settings, callingAeTitle: 'STROKEAI', jitter: 0 });
    eg.enqueue(files.map((p) => ({ path: p })), ['pacs-dimse']);
    expect(eg.stats()[0]).toMatchObject({ destination: 'pacs-dimse', outboxSize: 3, pending: 3, sent: 0 });

    await eg.sendNow();

    const inPacs = await pacs.listSopInstanceUids();
    for (const f of files) expect(inPacs).toContain(sopUid(f));
    expect(eg.stats()[0]).toMatchObject({ outboxSize: 0, sent: 3, dead: 0, consecutiveFailures: 0 });
    expect(eg.stats()[0].lastSuccessAt).not.toBeNull();
    expect(eg.history).toHaveLength(1); // one batch = one association
    expect(eg.outbox.list({ destination: 'pacs-dimse' }).every((r) => r.state === 'sent' && r.lastStatus === 0)).toBe(true);
    // Orthanc saw our calling AE on the instances it stored.
    const inst = await pacs.get<Array<{ ID: string }>>('/instances?expand');
    const meta = await pacs.get<{ RemoteAET?: string }>(`/instances/${inst[0].ID}/metadata?expand`);
    expect(meta.RemoteAET).toBe('STROKEAI');
  });

  it('C-STORE keeps every element of the file, private tags and pixel data included', async () => {
    const file = geHeadCt()[4];
    // Reference: the same file uploaded over REST, byte for byte.
    const up = await pacs.uploadFile(fs.readFileSync(file));
    const reference = await pacs.get<Record<string, string>>(`/instances/${up.ID}/tags?short`);
    const refPixels = Buffer.from(await (await fetch(`${pacs.httpUrl}/instances/${up.ID}/content/7fe0-0010`)).arrayBuffer());
    await fetch(`${pacs.httpUrl}/instances/${up.ID}`, { method: 'DELETE' });
    const privateTags = Object.keys(reference).filter((k) => parseInt(k.slice(0, 4), 16) % 2 === 1);
    expect(privateTags.length).toBeGreaterThan(10);

    const dest: Destination = { name: 'pacs-dimse', type: 'dimse', host: '127.0.0.1', port: pacs.dicomPort, calledAeTitle: 'PACS', overlaySc: false };
    const eg = new EgressService({ db, destinations: [dest], settings, callingAeTitle: 'STROKEAI', jitter: 0 });
    eg.enqueue([{ path: file }], ['pacs-dimse']);
    await eg.sendNow();
    const id = await pacs.instanceIdOf(sopUid(file));
    expect(id).toBeDefined();
    const received = await pacs.get<Record<string, string>>(`/instances/${id}/tags?short`);
    const pixels = Buffer.from(await (await fetch(`${pacs.httpUrl}/instances/${id}/content/7fe0-0010`)).arrayBuffer());
    expect(pixels.equals(refPixels)).toBe(true);
    expect(Object.keys(received).sort()).toEqual(Object.keys(reference).sort());
    // dcmjs-dimse re-encodes through dcmjs: numbers come back in canonical form ("4.0" → "4") and the
    // character set is declared as UTF-8. Same values, different spelling: compare numerically.
    const canon = (v: unknown): unknown =>
      typeof v === 'string' && v.trim() !== '' && v.split('\\').every((x) => Number.isFinite(Number(x)))
        ? v.split('\\').map((x) => Number(x) + 0) // + 0: '-0.0' and '0' are the same value
        : v;
    for (const k of Object.keys(reference)) {
      if (k === '0008,0005') continue;
      expect([k, canon(received[k])]).toEqual([k, canon(reference[k])]);
    }
  });

  it('delivers result files by STOW-RS and Orthanc holds every instance', async () => {
    const files = geHeadCt().slice(5, 8);
    const dest: Destination = { name: 'pacs-web', type: 'stow', url: pacs.dicomWebUrl, overlaySc: false };
    const eg = new EgressService({ db, destinations: [dest], settings, callingAeTitle: 'STROKEAI', jitter: 0 });
    eg.enqueue(files.map((p) => ({ path: p })), ['pacs-web']);
    await eg.sendNow();
    const inPacs = await pacs.listSopInstanceUids();
    for (const f of files) expect(inPacs).toContain(sopUid(f));
    expect(eg.stats()[0]).toMatchObject({ outboxSize: 0, sent: 3, dead: 0 });
    const id = await pacs.instanceIdOf(sopUid(files[0]));
    const meta = await pacs.get<{ Origin?: string }>(`/instances/${id}/metadata?expand`);
    expect(meta.Origin).toBe("Plugins"); // stored by the DICOMweb plugin (STOW-RS), not by DIMSE
  });

  it('reports per-instance STOW-RS failures from FailedSOPSequence (instance posted to the wrong study)', async () => {
    const file = geHeadCt()[10];
    // A StowSender posts to /studies/{StudyInstanceUID}: lie about the study so Orthanc refuses it.
    const dest: Destination = { name: 'pacs-web', type: 'stow', url: pacs.dicomWebUrl, overlaySc: false };
    const eg = new EgressService({ db, destinations: [dest], settings, callingAeTitle: 'STROKEAI', jitter: 0 });
    eg.enqueue([{ path: file, studyInstanceUid: '1.2.3.4.5.6.7.8.9' }], ['pacs-web']);
    await eg.sendNow();
    const row = eg.outbox.list({ destination: 'pacs-web' })[0];
    expect(row.state).toBe('failed');
    expect(row.lastError).toMatch(/STOW-RS refused the instance: 0x[0-9A-F]{4}/);
    expect(await pacs.listSopInstanceUids()).not.toContain(sopUid(file));
    expect(eg.stats()[0].consecutiveFailures).toBe(1);
  });

  it('one refused instance fails alone: the rest of the batch is sent and the destination is not backed off', async () => {
    const [good, bad] = [geHeadCt()[24], geHeadCt()[25]];
    const dest: Destination = { name: 'pacs-web', type: 'stow', url: pacs.dicomWebUrl, overlaySc: false };
    let now = 1_000_000;
    const eg = new EgressService({ db, destinations: [dest], settings, callingAeTitle: 'STROKEAI', jitter: 0, clock: () => now });
    eg.enqueue([{ path: good }], ['pacs-web']);
    eg.enqueue([{ path: bad, studyInstanceUid: '1.2.3.4.5.6.7.8.9' }], ['pacs-web']);
    await eg.sendNow();
    expect(eg.stats()[0]).toMatchObject({ sent: 1, failed: 1, consecutiveFailures: 0, nextAttemptAt: null });
    const badRow = eg.outbox.list({ state: 'failed' })[0];
    expect(badRow.sopInstanceUid).toBe(sopUid(bad));
    expect(badRow.nextAttemptAt).toBe(now + 10000); // its own backoff
    now += 10000;
    await eg.sendNow();
    expect(eg.outbox.get(badRow.id)?.attempts).toBe(2);
  });

  it('maps HTTP errors of a STOW-RS endpoint to an operator-readable reason', async () => {
    const dest: Destination = { name: 'bad-url', type: 'stow', url: `${pacs.httpUrl}/no-such-dicomweb`, overlaySc: false };
    const eg = new EgressService({ db, destinations: [dest], settings, callingAeTitle: 'STROKEAI', jitter: 0 });
    eg.enqueue([{ path: geHeadCt()[11] }], ['bad-url']);
    await eg.sendNow();
    const row = eg.outbox.list()[0];
    expect(row.state).toBe('failed');
    expect(row.lastStatus).toBe(404);
    expect(row.lastError).toContain('HTTP 404');
  });
});

describe('PACS down: backoff per destination, dead after maxAttempts, operator retry', () => {
  for (const type of ['dimse', 'stow'] as const) {
    it(`${type}: one attempt per backoff window for the whole destination, then dead, then retry delivers`, async () => {
      const pacs = await startOrthanc({ aet: 'PACS' });
      try {
        await pacs.pause(); // PACS down: ports closed, storage kept
        let now = Date.parse('2026-01-01T00:00:00Z');
        const clock = (): number => now;
        const dest: Destination =
          type === 'dimse'
            ? { name: 'pacs', type: 'dimse', host: '127.0.0.1', port: pacs.dicomPort, calledAeTitle: 'PACS', overlaySc: false }
            : { name: 'pacs', type: 'stow', url: pacs.dicomWebUrl, overlaySc: false };
        const eg = new EgressService({ db, destinations: [dest], settings, callingAeTitle: 'STROKEAI', clock, jitter: 0 });
        const files = geHeadCt().slice(12, 16);
        const ids = eg.enqueue(files.map((p) => ({ path: p })), ['pacs']);

        await eg.sendNow(); // attempt 1 fails
        expect(eg.history).toHaveLength(1);
        let s = eg.stats()[0];
        expect(s).toMatchObject({ failed: 4, dead: 0, consecutiveFailures: 1, nextAttemptAt: now + 10000 });
        expect(s.lastError).toMatch(type === 'dimse' ? /ECONNREFUSED|network error/ : /no HTTP response/);

        // Inside the window nothing is tried, however often the worker ticks.
        now += 9999;
        await eg.sendNow();
        await eg.sendNow();
        expect(eg.history).toHaveLength(1);

        now += 1; // window over: ONE batch for all four files
        await eg.sendNow();
        expect(eg.history).toHaveLength(2);
        expect(eg.history[1].attempted).toBe(4);
        s = eg.stats()[0];
        expect(s).toMatchObject({ consecutiveFailures: 2, nextAttemptAt: now + 20000 }); // doubled

        now += 20000; // attempt 3 = maxAttempts → dead
        await eg.sendNow();
        s = eg.stats()[0];
        expect(s).toMatchObject({ dead: 4, outboxSize: 0, failed: 0 });
        expect(eg.outbox.list({ state: 'dead' }).map((r) => r.attempts)).toEqual([3, 3, 3, 3]);

        // Long after, still nothing sent: dead rows wait for an operator.
        now += 3600_000;
        await eg.sendNow();
        expect(eg.history).toHaveLength(3);

        await pacs.resume();
        for (const id of ids) expect(eg.retry(id)).toBe(true);
        await eg.sendNow();
        s = eg.stats()[0];
        expect(s).toMatchObject({ sent: 4, dead: 0, outboxSize: 0, consecutiveFailures: 0 });
        const inPacs = await pacs.listSopInstanceUids();
        for (const f of files) expect(inPacs).toContain(sopUid(f));
      } finally {
        await pacs.stop();
      }
    });
  }

  it('backoff is capped at maxBackoffSeconds', async () => {
    const port = await freePort(); // nothing listens
    let now = 0;
    const dest: Destination = { name: 'gone', type: 'dimse', host: '127.0.0.1', port, calledAeTitle: 'X', overlaySc: false };
    const eg = new EgressService({
      db,
      destinations: [dest],
      settings: { maxAttempts: 10, initialBackoffSeconds: 10, maxBackoffSeconds: 40 },
      callingAeTitle: 'STROKEAI',
      clock: () => now,
      jitter: 0,
    });
    eg.enqueue([{ path: geHeadCt()[20] }], ['gone']);
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      await eg.sendNow();
      const next = eg.stats()[0].nextAttemptAt ?? now;
      waits.push(next - now);
      now = next;
    }
    expect(waits).toEqual([10000, 20000, 40000, 40000, 40000]);
  });
});

describe('a PACS whose AE whitelist does not list the node', () => {
  it('fails with "destination refused calling AE <aet>", and a listed AE is accepted', async () => {
    const pacs = await startOrthanc({
      aet: 'PACS',
      modalities: { KNOWN: ['KNOWNAE', '127.0.0.1', 104] },
      config: { DicomAlwaysAllowStore: false, DicomAlwaysAllowEcho: false },
    });
    try {
      const refused: Destination = { name: 'strict', type: 'dimse', host: '127.0.0.1', port: pacs.dicomPort, calledAeTitle: 'PACS', overlaySc: false };
      const known: Destination = { ...refused, name: 'strict-known', callingAeTitle: 'KNOWNAE' };
      const eg = new EgressService({ db, destinations: [refused, known], settings, callingAeTitle: 'STROKEAI', jitter: 0 });
      const file = geHeadCt()[22];
      eg.enqueue([{ path: file }], ['strict', 'strict-known']);
      await eg.sendNow();
      const [sStrict, sKnown] = eg.stats();
      expect(sStrict.destination).toBe('strict');
      expect(sStrict.lastError).toContain('destination refused calling AE STROKEAI');
      expect(eg.outbox.list({ destination: 'strict' })[0].lastError).toContain('destination refused calling AE STROKEAI');
      expect(sStrict.failed).toBe(1);
      expect(sKnown).toMatchObject({ sent: 1, failed: 0 });
      expect(await pacs.listSopInstanceUids()).toEqual([sopUid(file)]);
    } finally {
      await pacs.stop();
    }
  });
});

describe('a PACS that accepts but cannot store (its storage directory is broken)', () => {
  it('STOW-RS: HTTP 200 without the instance in ReferencedSOPSequence is NOT counted as sent; DIMSE: no answer → failed, no hang', async () => {
    const pacs = await startOrthanc({ aet: 'PACS' });
    try {
      // Orthanc creates storage/<xx>/<yy>/ on write: a plain file in its place makes every write fail.
      fs.rmSync(path.join(pacs.dir, 'storage'), { recursive: true, force: true });
      fs.writeFileSync(path.join(pacs.dir, 'storage'), 'not a directory');
      const destinations: Destination[] = [
        { name: 'web', type: 'stow', url: pacs.dicomWebUrl, overlaySc: false },
        { name: 'dimse', type: 'dimse', host: '127.0.0.1', port: pacs.dicomPort, calledAeTitle: 'PACS', overlaySc: false },
      ];
      const eg = new EgressService({ db, destinations, settings, callingAeTitle: 'STROKEAI', jitter: 0, batchTimeoutMs: 20000 });
      eg.enqueue([{ path: geHeadCt()[26] }], ['web', 'dimse']);
      const t0 = Date.now();
      await eg.sendNow();
      expect(Date.now() - t0).toBeLessThan(30000);
      const web = eg.outbox.list({ destination: 'web' })[0];
      expect(web.state).toBe('failed');
      expect(web.lastError).toContain('did not confirm storing the instance');
      const dimse = eg.outbox.list({ destination: 'dimse' })[0];
      expect(dimse.state).toBe('failed');
      expect(dimse.lastError).toMatch(/timeout|timed out|ended before/i);
      expect(await pacs.listInstances()).toEqual([]);
    } finally {
      await pacs.stop();
    }
  });
});
