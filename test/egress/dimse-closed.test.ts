/**
 * A destination that accepts and then closes the connection (issue 18): the batch and each item say
 * what happened, instead of no error text.
 */
import * as fs from 'fs';
import * as net from 'net';
import { Scp, constants } from 'dcmjs-dimse';
import { readPart10 } from '../../src/dicom/dcmjs';
import { DimseSender } from '../../src/egress/dimse-sender';
import type { SendItem } from '../../src/egress/sender';
import { geHeadCt } from '../harness/data';

jest.setTimeout(60000);

function item(file: string): SendItem {
  const p = readPart10(fs.readFileSync(file), { untilPixelData: true });
  return {
    id: 1,
    path: file,
    sopInstanceUid: String(p.dataset.SOPInstanceUID),
    sopClassUid: String(p.dataset.SOPClassUID),
    studyInstanceUid: String(p.dataset.StudyInstanceUID),
    transferSyntaxUid: p.transferSyntaxUid,
  };
}

async function listen(onSocket: (s: net.Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const sender = (port: number): DimseSender =>
  new DimseSender({ name: 'closing', type: 'dimse', host: '127.0.0.1', port, calledAeTitle: 'CLOSING', overlaySc: false }, { defaultCallingAeTitle: 'STROKEAI' });

it('a destination that reads the association request and closes the connection: the error says so', async () => {
  const peer = await listen((s) => s.once('data', () => s.end()));
  try {
    const r = await sender(peer.port).send([item(geHeadCt()[0])]);
    expect(r.error).toBe('connection closed by peer before it answered the association request');
    expect(r.items).toEqual([expect.objectContaining({ ok: false, status: null, message: r.error })]);
  } finally {
    await peer.close();
  }
});

it('a destination that accepts the association and closes on the C-STORE request: the error says so', async () => {
  let stores = 0;
  class CloseOnStore extends Scp {
    override associationRequested(association: Parameters<Scp['associationRequested']>[0]): void {
      (this as unknown as { association: unknown }).association = association;
      for (const pc of association.getPresentationContexts()) {
        pc.context.setResult(constants.PresentationContextResult.Accept, pc.context.getTransferSyntaxUids()[0]);
      }
      this.sendAssociationAccept();
    }
    override cStoreRequest(): void {
      stores++;
      (this as unknown as { socket: net.Socket }).socket.end();
    }
  }
  const quiet = jest.spyOn(console, 'error').mockImplementation(() => undefined); // dcmjs parsing the test peer's copy
  const peer = await listen((s) => {
    const scp = new CloseOnStore(s);
    (scp as unknown as { connected: boolean }).connected = true;
  });
  try {
    const r = await sender(peer.port).send([item(geHeadCt()[0])]);
    expect(stores).toBe(1); // the request did reach the peer
    expect(r.error).toBe('connection closed by peer before the C-STORE response');
    expect(r.items).toEqual([expect.objectContaining({ ok: false, status: null, message: r.error })]);
  } finally {
    await peer.close();
    quiet.mockRestore();
  }
});
