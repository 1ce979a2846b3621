/**
 * DIMSE receive with real peers: DCMTK storescu/echoscu and Orthanc C-STORE → node.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readPart10 } from '../../src/dicom/dcmjs';
import { dicomFiles, geHeadCt, SHARED_DATA } from '../harness/data';
import { echoscu, storescu } from '../harness/dcmtk';
import { startOrthanc } from '../harness/orthanc';
import { startTestNode, TestNode } from '../helpers/node';

describe('DIMSE receiver with DCMTK', () => {
  let t: TestNode;
  beforeAll(async () => {
    t = await startTestNode({
      dimse: { allowAnyCaller: false, allowedPeers: [{ aeTitle: 'MODALITY1' }, { aeTitle: 'HOSTBOUND', host: '10.9.9.9' }] },
    });
  });
  afterAll(async () => t?.stop());

  test('answers C-ECHO from an allowed AE', async () => {
    const r = await echoscu('127.0.0.1', t.dimsePort, { callingAet: 'MODALITY1', calledAet: 'STROKEAI' });
    expect(r.ok).toBe(true);
  });

  test('stores every instance storescu sends, durable and indexed, before answering success', async () => {
    const files = geHeadCt();
    const r = await storescu('127.0.0.1', t.dimsePort, files, { callingAet: 'MODALITY1', calledAet: 'STROKEAI' });
    expect(r.files.filter((f) => f.outcome === 'success')).toHaveLength(files.length);
    expect(t.node.store.count()).toBe(files.length);
    for (const f of files) {
      const uid = String(readPart10(fs.readFileSync(f), { untilPixelData: true }).dataset.SOPInstanceUID);
      const row = t.node.store.get(uid)!;
      expect(row).toBeDefined();
      expect(row.sourceAe).toBe('MODALITY1');
      expect(row.calledAe).toBe('STROKEAI');
      // the stored file is the same dataset (pixel data byte-identical)
      const a = readPart10(fs.readFileSync(f)).dataset.PixelData as ArrayBuffer[];
      const b = readPart10(fs.readFileSync(row.path)).dataset.PixelData as ArrayBuffer[];
      expect(Buffer.from(b[0]).equals(Buffer.from(a[0]))).toBe(true);
    }
    expect(fs.readdirSync(path.join(t.dir, 'tmp'))).toHaveLength(0);
  });

  test('a duplicate SOP instance is kept once and counted', async () => {
    const before = t.node.store.count();
    const dupBefore = t.node.store.duplicateCount();
    const r = await storescu('127.0.0.1', t.dimsePort, [geHeadCt()[0]], { callingAet: 'MODALITY1', calledAet: 'STROKEAI' });
    expect(r.files[0].outcome).toBe('success');
    expect(t.node.store.count()).toBe(before);
    expect(t.node.store.duplicateCount()).toBe(dupBefore + 1);
  });

  test('rejects an unknown calling AE, a wrong called AE and an allowed AE from the wrong host', async () => {
    const unknown = await storescu('127.0.0.1', t.dimsePort, [geHeadCt()[0]], { callingAet: 'INTRUDER', calledAet: 'STROKEAI' });
    expect(unknown.associationFailed).toBe(true);
    expect(unknown.errors.join('\n')).toMatch(/Calling AE Title Not Recognized/i);
    const wrongCalled = await storescu('127.0.0.1', t.dimsePort, [geHeadCt()[0]], { callingAet: 'MODALITY1', calledAet: 'OTHERNODE' });
    expect(wrongCalled.errors.join('\n')).toMatch(/Called AE Title Not Recognized/i);
    const wrongHost = await echoscu('127.0.0.1', t.dimsePort, { callingAet: 'HOSTBOUND', calledAet: 'STROKEAI' });
    expect(wrongHost.ok).toBe(false);
  });

  test('accepts compressed transfer syntaxes and stores them exactly as received', async () => {
    // storescu proposes one compressed syntax per flag; send each file proposing its own syntax.
    const flag: Record<string, string> = {
      '1.2.840.10008.1.2.5': '-xr',
      '1.2.840.10008.1.2.4.70': '-xs',
      '1.2.840.10008.1.2.4.80': '-xt',
      '1.2.840.10008.1.2.4.90': '-xv',
    };
    const received = new Set<string>();
    for (const f of dicomFiles('transfer-syntaxes')) {
      const src = readPart10(fs.readFileSync(f));
      const extraArgs = flag[src.transferSyntaxUid] ? [flag[src.transferSyntaxUid], '-R'] : ['-R'];
      const r = await storescu('127.0.0.1', t.dimsePort, [f], { callingAet: 'MODALITY1', calledAet: 'STROKEAI', extraArgs });
      expect(r.files[0]?.outcome).toBe('success');
      const row = t.node.store.get(String(src.dataset.SOPInstanceUID))!;
      // uncompressed files may be converted by the sender to the syntax we accept; compressed ones must stay as sent
      if (flag[src.transferSyntaxUid]) expect(row.transferSyntaxUid).toBe(src.transferSyntaxUid);
      const stored = readPart10(fs.readFileSync(row.path));
      if (flag[src.transferSyntaxUid]) {
        // compressed: the encapsulated fragments are byte-identical to what the sender had
        const a = Buffer.concat((src.dataset.PixelData as ArrayBuffer[]).map((x) => Buffer.from(x)));
        const b = Buffer.concat((stored.dataset.PixelData as ArrayBuffer[]).map((x) => Buffer.from(x)));
        expect(b.equals(a)).toBe(true);
      }
      received.add(row.transferSyntaxUid);
    }
    expect([...received]).toEqual(expect.arrayContaining(Object.keys(flag)));
  });
});

describe('Orthanc sends to the node by C-STORE', () => {
  test('all instances of a study arrive and form one collecting job', async () => {
    const t = await startTestNode({ routes: [{ name: 'stroke', quietPeriodSeconds: 300 }] });
    const pacs = await startOrthanc({ modalities: { NODE: ['STROKEAI', '127.0.0.1', t.dimsePort] } });
    try {
      const files = geHeadCt().slice(0, 10);
      for (const f of files) await pacs.uploadFile(fs.readFileSync(f));
      await pacs.storeToModality('NODE', await pacs.listInstances());
      expect(t.node.store.count()).toBe(files.length);
      const jobs = await t.node.queue.list();
      expect(jobs).toHaveLength(1);
      expect(jobs[0].state).toBe('collecting');
      expect(jobs[0].instanceCount).toBe(files.length);
      expect(t.node.store.listStudy(jobs[0].studyUid)[0].sourceAe).toBe(pacs.aet);
    } finally {
      await pacs.stop();
      await t.stop();
    }
  });
});

void SHARED_DATA;
