/**
 * Smoke test of the integration-test harness itself, against the real peers: Orthanc (REST upload,
 * C-ECHO, C-STORE from storescu, DICOMweb plugin loaded) and storescp as a destination.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { geHeadCt } from './data';
import { echoscu, parseStorescuOutput, startStorescp, storescu } from './dcmtk';
import { OrthancHandle, startOrthanc } from './orthanc';
import { canConnect, freePort, pidAlive } from './ports';
import { readPart10 } from '../../src/dicom/dcmjs';

jest.setTimeout(60000);

describe('Orthanc harness', () => {
  let o: OrthancHandle;
  beforeAll(async () => {
    o = await startOrthanc({ aet: 'HARNESSPACS' });
  });
  afterAll(async () => {
    await o?.stop();
  });

  it('answers /system with its own ports and loads the DICOMweb plugin', async () => {
    const sys = await o.get<{ DicomAet: string; DicomPort: number; HttpPort: number }>('/system');
    expect(sys.DicomAet).toBe('HARNESSPACS');
    expect(sys.DicomPort).toBe(o.dicomPort);
    expect(sys.HttpPort).toBe(o.httpPort);
    const plugins = await o.get<string[]>('/plugins');
    expect(plugins).toContain('dicom-web');
    const studies = await fetch(`${o.dicomWebUrl}/studies`);
    expect(studies.status).toBe(200);
  });

  it('stores an uploaded file and a storescu C-STORE, and answers C-ECHO', async () => {
    const [f1, f2] = geHeadCt();
    const up = await o.uploadFile(fs.readFileSync(f1));
    expect(up.ID).toMatch(/^[0-9a-f-]+$/);
    expect(await o.listInstances()).toEqual([up.ID]);

    const echo = await echoscu('127.0.0.1', o.dicomPort, { calledAet: o.aet });
    expect(echo.ok).toBe(true);

    const r = await storescu('127.0.0.1', o.dicomPort, [f2], { calledAet: o.aet, callingAet: 'HARNESSSCU' });
    expect(r.code).toBe(0);
    expect(r.files).toEqual([{ file: f2, outcome: 'success', detail: 'Success' }]);

    const uid2 = String(readPart10(fs.readFileSync(f2), { untilPixelData: true }).dataset.SOPInstanceUID);
    expect(await o.listSopInstanceUids()).toContain(uid2);
    expect(await o.findStudies()).toHaveLength(1);
  });

  it('stop() ends the process by PID and frees the ports', async () => {
    const o2 = await startOrthanc();
    const pid = o2.pid;
    expect(pidAlive(pid)).toBe(true);
    await o2.stop();
    expect(o2.isRunning()).toBe(false);
    expect(await canConnect(o2.httpPort)).toBe(false);
    expect(await canConnect(o2.dicomPort)).toBe(false);
    expect(fs.existsSync(o2.dir)).toBe(false);
  });

  it('pause()/resume() keeps ports and stored data', async () => {
    const o3 = await startOrthanc();
    try {
      await o3.uploadFile(fs.readFileSync(geHeadCt()[3]));
      await o3.pause();
      expect(await canConnect(o3.httpPort)).toBe(false);
      await o3.resume();
      expect(await o3.listInstances()).toHaveLength(1);
    } finally {
      await o3.stop();
    }
  });
});

describe('storescp harness', () => {
  it('receives a file from storescu and stops by PID', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'storescp-test-'));
    const port = await freePort();
    const scp = await startStorescp(path.join(tmp, 'in'), port, 'TESTSCP');
    try {
      const f = geHeadCt()[0];
      const r = await storescu('127.0.0.1', port, [f], { calledAet: 'TESTSCP' });
      expect(r.files.map((x) => x.outcome)).toEqual(['success']);
      const received = scp.receivedFiles();
      expect(received).toHaveLength(1);
      // +B: written exactly as received, so the pixel data bytes are the source's.
      expect(fs.statSync(received[0]).size).toBeGreaterThan(500000);
    } finally {
      await scp.stop();
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    expect(pidAlive(scp.pid)).toBe(false);
    expect(await canConnect(port)).toBe(false);
  });

  it('storescu reports a non-DICOM file as an error, not a success', async () => {
    const text = [
      'I: Sending file: /a.dcm',
      'I: Received Store Response (Success)',
      'I: Sending file: /b.dcm',
      'I: Received Store Response (Refused: OutOfResources)',
      'E: Bad DICOM file: /etc/hostname: I/O suspension or premature end of stream',
      'E: Association Rejected:',
    ].join('\n');
    const p = parseStorescuOutput(text);
    expect(p.files.map((f) => f.outcome)).toEqual(['success', 'failure', 'error']);
    expect(p.files[1].detail).toBe('Refused: OutOfResources');
    expect(p.associationFailed).toBe(true);
  });
});
