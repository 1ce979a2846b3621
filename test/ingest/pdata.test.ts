/**
 * The hand-written C-STORE hot path (src/ingest/pdata.ts) and the lean header scan
 * (src/dicom/header-scan.ts), checked against dcmjs on the same bytes.
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  CommandField,
  NO_DATASET,
  PduReader,
  cStoreResponsePdu,
  encodeCommandSet,
  parseCommandSet,
  part10Prefix,
  pdvPdu,
  readPdvs,
} from '../../src/ingest/pdata';
import { scanHeader } from '../../src/dicom/header-scan';
import { newUid, readPart10, str, strs, writePart10 } from '../../src/dicom/dcmjs';

const dcmjs = require('dcmjs'); // eslint-disable-line @typescript-eslint/no-var-requires

function datasetBytes(part10: Buffer): Buffer {
  const metaLen = part10.readUInt32LE(132 + 8);
  return part10.subarray(132 + 12 + metaLen);
}

describe('PDU reassembly', () => {
  test('yields the same PDUs however the byte stream is cut', () => {
    const pdus = [pdvPdu(1, true, true, Buffer.alloc(90, 1)), pdvPdu(1, false, false, Buffer.alloc(16378, 2)), pdvPdu(3, false, true, Buffer.alloc(5, 3)), Buffer.from([5, 0, 0, 0, 0, 4, 0, 0, 0, 0])];
    const stream = Buffer.concat(pdus);
    for (const cut of [1, 3, 6, 7, 100, 4096, 65536]) {
      const got: Buffer[] = [];
      const r = new PduReader((_t, pdu) => got.push(Buffer.from(pdu)));
      for (let i = 0; i < stream.length; i += cut) r.push(stream.subarray(i, i + cut));
      expect(got.map((b) => b.toString('hex'))).toEqual(pdus.map((b) => b.toString('hex')));
    }
  });

  test('refuses an impossible PDU length', () => {
    const r = new PduReader(() => undefined);
    expect(() => r.push(Buffer.from([4, 0, 0x7f, 0xff, 0xff, 0xff]))).toThrow(/exceeds/);
  });

  test('splits a P-DATA-TF into its PDVs', () => {
    const two = Buffer.concat([pdvPdu(1, true, true, Buffer.from('ab')).subarray(6), pdvPdu(1, false, true, Buffer.from('cdef')).subarray(6)]);
    const pdu = Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0]), two]);
    pdu.writeUInt32BE(two.length, 2);
    const pdvs = readPdvs(pdu);
    expect(pdvs.map((p) => [p.pcId, p.command, p.last, p.value.toString()])).toEqual([
      [1, true, true, 'ab'],
      [1, false, true, 'cdef'],
    ]);
    pdu.writeUInt32BE(99, 6); // a PDV longer than its PDU
    expect(() => readPdvs(pdu)).toThrow();
  });
});

describe('command sets', () => {
  test('a C-STORE-RQ round-trips, and our C-STORE-RSP reads back in dcmjs', () => {
    const rq = encodeCommandSet({ commandField: CommandField.CStoreRQ, messageId: 7, affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.4', affectedSopInstanceUid: '1.2.3.45', dataSetType: 0x0000 });
    const cmd = parseCommandSet(rq);
    expect(cmd).toEqual({ commandField: 1, messageId: 7, dataSetType: 0, affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.4', affectedSopInstanceUid: '1.2.3.45' });

    const pdu = cStoreResponsePdu(5, cmd, 0xa700, 'Out of resources: storage below free-space floor');
    const [pdv] = readPdvs(pdu);
    expect([pdv.pcId, pdv.command, pdv.last]).toEqual([5, true, true]);
    const ds = dcmjs.data.DicomMessage._read(new dcmjs.data.ReadBufferStream(new Uint8Array(pdv.value).buffer), '1.2.840.10008.1.2', {});
    expect(ds['00000000'].Value[0]).toBe(pdv.value.length - 12);
    expect(ds['00000002'].Value[0]).toBe('1.2.840.10008.5.1.4.1.1.4');
    expect(ds['00000100'].Value[0]).toBe(0x8001);
    expect(ds['00000120'].Value[0]).toBe(7);
    expect(ds['00000800'].Value[0]).toBe(NO_DATASET);
    expect(ds['00000900'].Value[0]).toBe(0xa700);
    expect(ds['00000902'].Value[0]).toBe('Out of resources: storage below free-space floor');
    expect(ds['00001000'].Value[0]).toBe('1.2.3.45');
  });

  test('a malformed command set is refused', () => {
    expect(() => parseCommandSet(Buffer.from([0, 0, 0, 1, 9, 0, 0, 0, 1]))).toThrow();
    expect(() => parseCommandSet(Buffer.from([8, 0, 0x18, 0, 0, 0, 0, 0]))).toThrow(/group 0000/);
  });
});

describe('Part 10 prefix and header scan', () => {
  const uids = { study: newUid(), series: newUid(), sop: newUid() };
  const base = {
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
    SOPInstanceUID: uids.sop,
    StudyInstanceUID: uids.study,
    SeriesInstanceUID: uids.series,
    SeriesNumber: 12,
    Modality: 'MR',
    ImageType: ['ORIGINAL', 'PRIMARY', 'DIFFUSION', 'TRACEW'],
    SeriesDescription: 'ep2d_diff_b1000',
    PatientID: 'P-01',
    PatientName: 'Doe^Jane',
    // a nested sequence before the wanted attributes (undefined lengths when dcmjs writes it)
    ReferencedImageSequence: [{ ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4', ReferencedSOPInstanceUID: '1.2.3', PurposeOfReferenceCodeSequence: [{ CodeValue: '121311', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Localizer' }] }],
    Rows: 2,
    Columns: 2,
    BitsAllocated: 16,
    PixelData: [new Uint16Array(4).buffer],
    _vrMap: { PixelData: 'OW' },
  };

  for (const ts of ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2']) {
    test(`our prefix + the received data set (${ts}) parse in dcmjs and in the scan alike`, () => {
      const file = writePart10(base, ts);
      const dataset = datasetBytes(file);
      const prefix = part10Prefix({ sopClassUid: base.SOPClassUID, sopInstanceUid: uids.sop, transferSyntaxUid: ts, implementationClassUid: '1.2.3.4', implementationVersionName: 'NODE_1', sourceAeTitle: 'SCANNER' });
      const stored = Buffer.concat([prefix, dataset]);
      const viaDcmjs = readPart10(stored, { untilPixelData: true });
      expect(viaDcmjs.meta.MediaStorageSOPInstanceUID).toBe(uids.sop);
      expect(viaDcmjs.meta.TransferSyntaxUID).toBe(ts);
      expect(viaDcmjs.meta.SourceApplicationEntityTitle).toBe('SCANNER');
      expect(new Uint8Array((viaDcmjs.meta.FileMetaInformationVersion as ArrayBuffer[])[0])).toEqual(new Uint8Array([0, 1]));

      const scanned = scanHeader(stored, true);
      expect(scanned).toBeDefined();
      expect(scanned!.transferSyntaxUid).toBe(ts);
      for (const k of ['SOPClassUID', 'SOPInstanceUID', 'StudyInstanceUID', 'SeriesInstanceUID', 'SeriesNumber', 'Modality', 'SeriesDescription', 'PatientID', 'PatientName']) {
        expect([k, str(scanned!.dataset, k)]).toEqual([k, str(viaDcmjs.dataset, k)]);
      }
      expect(strs(scanned!.dataset, 'ImageType')).toEqual(strs(viaDcmjs.dataset, 'ImageType'));
    });
  }

  test('the scan defers to dcmjs when unsure: a cut prefix, another character set, not DICOM', () => {
    const file = writePart10(base);
    expect(scanHeader(file.subarray(0, 400))).toBeUndefined();
    expect(scanHeader(writePart10({ ...base, SpecificCharacterSet: 'ISO 2022 IR 87' }))).toBeUndefined();
    expect(scanHeader(Buffer.from('not dicom at all'))).toBeUndefined();
    expect(scanHeader(writePart10({ ...base, SpecificCharacterSet: 'ISO_IR 192', PatientName: 'Müller^Zoë' }), true)!.dataset.PatientName).toEqual([{ Alphabetic: 'Müller^Zoë' }]);
  });

  test("agrees with dcmjs on pydicom's test files wherever it answers", () => {
    const dir = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
    if (!fs.existsSync(dir)) return;
    let answered = 0;
    for (const f of fs.readdirSync(dir)) {
      const p = path.join(dir, f);
      if (!fs.statSync(p).isFile()) continue;
      const buf = fs.readFileSync(p);
      const s = scanHeader(buf.subarray(0, 65536), buf.length <= 65536);
      if (!s) continue;
      const r = readPart10(buf, { untilPixelData: true });
      answered++;
      for (const k of ['SOPInstanceUID', 'StudyInstanceUID', 'SeriesInstanceUID', 'SeriesNumber', 'Modality', 'PatientID', 'PatientName']) {
        expect([f, k, str(s.dataset, k)]).toEqual([f, k, str(r.dataset, k)]);
      }
    }
    expect(answered).toBeGreaterThan(20);
  });
});
