/**
 * DIMSE receiver: C-ECHO and C-STORE SCP on dcmjs-dimse.
 *
 * Deviations from dcmjs-dimse's own `Server`, each for a measured reason (see DESIGN.md traps):
 *  - we create the `net` server ourselves so it binds the configured host (dcmjs-dimse binds all
 *    interfaces) and so EADDRINUSE surfaces as a start-up error;
 *  - every socket gets TCP_NODELAY (dcmjs-dimse never sets it: +35 % throughput);
 *  - C-STORE datasets stream straight to a temporary file (createStoreWritableStream) instead of
 *    being buffered in memory, and are stored exactly as received (compressed syntaxes included);
 *  - the success status is sent only after InstanceStore.commit() made the file and its index row
 *    durable.
 */
import * as fs from 'fs';
import * as net from 'net';
import { Writable } from 'stream';
import { DimseConfig } from './types';
import { InstanceStore, StoreError } from '../store/instances';
import { log, ref } from '../util/log';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, denaturalize } from '../dicom/dcmjs';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const dimse = require('dcmjs-dimse');
// eslint-disable-next-line @typescript-eslint/no-var-requires
const dcmjs = require('dcmjs');

const { Scp, Dataset, Implementation } = dimse;
const { CEchoResponse, CStoreResponse } = dimse.responses;
const { Status, PresentationContextResult, RejectResult, RejectSource, RejectReason, SopClass, StorageClass, TransferSyntax } =
  dimse.constants;

Implementation.setImplementationClassUid(IMPLEMENTATION_CLASS_UID);
Implementation.setImplementationVersion(IMPLEMENTATION_VERSION_NAME);
// dcmjs-dimse logs through loglevel; we log ourselves.
dimse.log.setLevel('silent');

/** DIMSE status codes we answer with (PS3.4 Annex B / PS3.7 Annex C). */
export const DimseStatus = {
  Success: 0x0000,
  OutOfResources: 0xa700,
  CannotUnderstand: 0xc000,
  ProcessingFailure: 0x0110,
} as const;

const storageClassUids = new Set<string>(Object.values(StorageClass as Record<string, string>));
const VERIFICATION = (SopClass as Record<string, string>).Verification;

/** Accept any storage SOP class: the standard ones, any 1.2.840.10008.5.1.4.1.1.* and private ones. */
function isStorageAbstractSyntax(uid: string): boolean {
  if (storageClassUids.has(uid)) return true;
  if (uid.startsWith('1.2.840.10008.5.1.4.1.1.')) return true;
  return !uid.startsWith('1.2.840.10008.'); // private SOP classes
}

/** Preferred order when the SCU proposes several transfer syntaxes in one presentation context. */
function pickTransferSyntax(proposed: string[]): string | undefined {
  if (proposed.length === 0) return undefined;
  const explicit = TransferSyntax.ExplicitVRLittleEndian as string;
  // Prefer what the sender proposed first unless it is implicit and explicit is also offered.
  if (proposed[0] === TransferSyntax.ImplicitVRLittleEndian && proposed.includes(explicit)) return explicit;
  return proposed[0];
}

export interface ScpStats {
  associations: number;
  rejectedAssociations: number;
  stored: number;
  duplicates: number;
  failed: number;
  bytes: number;
}

export interface DimseReceiverEvents {
  /** Called for every instance acknowledged (stored or duplicate). */
  onInstance?: (bytes: number, status: 'stored' | 'duplicate') => void;
  onFailure?: (reason: string) => void;
}

/**
 * A Writable that appends each PDU payload to the file with a synchronous write: the bytes go to the
 * page cache in microseconds, without a thread-pool round trip for each 16 kB PDU (what
 * fs.WriteStream does); durability comes from the fsync in InstanceStore.commit().
 */
class SyncFileWritable extends Writable {
  private fd: number | null;
  constructor(readonly file: string) {
    super({ highWaterMark: 1 << 20 });
    this.fd = fs.openSync(file, 'w');
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    try {
      let off = 0;
      while (off < chunk.length) off += fs.writeSync(this.fd!, chunk, off);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }
  override _final(cb: (e?: Error | null) => void): void {
    this.closeFd();
    cb();
  }
  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.closeFd();
    cb(err);
  }
  private closeFd(): void {
    if (this.fd !== null) {
      try {
        fs.closeSync(this.fd);
      } catch {
        /* already closed */
      }
      this.fd = null;
    }
  }
}

/** Build the Part 10 prefix (preamble, DICM, file meta) for an instance received over DIMSE. */
function part10Prefix(sopClassUid: string, sopInstanceUid: string, ts: string, sourceAe: string): Buffer {
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: sopClassUid,
    MediaStorageSOPInstanceUID: sopInstanceUid,
    TransferSyntaxUID: ts,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
    SourceApplicationEntityTitle: sourceAe,
  };
  const dict = new dcmjs.data.DicomDict(denaturalize(meta));
  dict.dict = {};
  return Buffer.from(dict.write() as ArrayBuffer);
}

export class DimseReceiver {
  private server?: net.Server;
  private sockets = new Set<net.Socket>();
  readonly stats: ScpStats = { associations: 0, rejectedAssociations: 0, stored: 0, duplicates: 0, failed: 0, bytes: 0 };
  private activeAssociations = 0;

  constructor(
    private readonly cfg: DimseConfig,
    private readonly store: InstanceStore,
    private readonly events: DimseReceiverEvents = {},
  ) {}

  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : this.cfg.port;
  }

  async start(): Promise<void> {
    const receiver = this;
    const cfg = this.cfg;
    const store = this.store;

    class StoreScp extends Scp {
      private callingAe = '';
      private calledAe = '';
      private current?: { tmp: string; stream: Writable; failed?: Error };
      private outcome?: { status: number; comment?: string };
      private counted = false;

      constructor(
        private readonly socket: net.Socket,
        opts: Record<string, unknown>,
      ) {
        super(socket, opts);
        this.on('close', () => this.cleanup());
      }

      private cleanup(): void {
        if (this.counted) {
          receiver.activeAssociations--;
          this.counted = false;
        }
        if (this.current) {
          // Association ended mid-instance (abort, network error): nothing was acknowledged.
          const { tmp, stream } = this.current;
          this.current = undefined;
          stream.destroy();
          fs.rm(tmp, { force: true }, () => undefined);
        }
      }

      associationRequested(association: {
        getCallingAeTitle(): string;
        getCalledAeTitle(): string;
        getPresentationContexts(): { id: number; context: { getAbstractSyntaxUid(): string; getTransferSyntaxUids(): string[]; setResult(r: number, ts?: string): void } }[];
      }): void {
        (this as unknown as { association: unknown }).association = association;
        this.callingAe = association.getCallingAeTitle().trim();
        this.calledAe = association.getCalledAeTitle().trim();
        const remote = (this.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
        const reject = (reason: number, why: string) => {
          receiver.stats.rejectedAssociations++;
          log.warn('association rejected', { event: 'dimse.association.rejected', callingAe: this.callingAe, calledAe: this.calledAe, remote, why });
          receiver.events.onFailure?.(why);
          this.sendAssociationReject(RejectResult.Permanent, RejectSource.ServiceUser, reason);
        };
        if (this.calledAe !== cfg.aeTitle) {
          return reject(RejectReason.CalledAeNotRecognized, `called AE "${this.calledAe}" is not ${cfg.aeTitle}`);
        }
        if (!cfg.allowAnyCaller) {
          const ok = cfg.allowedPeers.some((p) => p.aeTitle === this.callingAe && (!p.host || p.host === remote));
          if (!ok) return reject(RejectReason.CallingAeNotRecognized, `calling AE "${this.callingAe}" from ${remote} is not in dimse.allowedPeers`);
        }
        if (receiver.activeAssociations >= cfg.maxAssociations) {
          receiver.stats.rejectedAssociations++;
          log.warn('association rejected: too many associations', { event: 'dimse.association.limit', max: cfg.maxAssociations });
          this.sendAssociationReject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, RejectReason.LocalLimitExceeded ?? 2);
          return;
        }
        receiver.activeAssociations++;
        this.counted = true;
        receiver.stats.associations++;
        for (const pc of association.getPresentationContexts()) {
          const abstract = pc.context.getAbstractSyntaxUid();
          const tss = pc.context.getTransferSyntaxUids();
          if (abstract !== VERIFICATION && !isStorageAbstractSyntax(abstract)) {
            pc.context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
            continue;
          }
          const ts = pickTransferSyntax(tss);
          if (!ts) pc.context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
          else pc.context.setResult(PresentationContextResult.Accept, ts);
        }
        this.sendAssociationAccept();
      }

      associationReleaseRequested(): void {
        this.sendAssociationReleaseResponse();
      }

      cEchoRequest(request: unknown, callback: (r: unknown) => void): void {
        const response = CEchoResponse.fromRequest(request);
        response.setStatus(Status.Success);
        callback(response);
      }

      createStoreWritableStream(
        pc: { getAcceptedTransferSyntaxUid(): string },
        request: { getAffectedSopClassUid(): string; getAffectedSopInstanceUid(): string },
      ): Writable {
        this.outcome = undefined;
        const tmp = store.tempPath();
        let stream: Writable;
        try {
          stream = new SyncFileWritable(tmp);
        } catch (e) {
          // cannot even create the file (disk full, permissions): swallow the data, answer a failure
          stream = new Writable({ write: (_c, _e, cb) => cb() });
          this.current = { tmp, stream, failed: e as Error };
          return stream;
        }
        const current: { tmp: string; stream: Writable; failed?: Error } = { tmp, stream };
        this.current = current;
        stream.on('error', (e) => {
          current.failed = e;
        });
        if (!store.hasSpace()) {
          current.failed = Object.assign(new Error('free disk space below storage.minFreeMb'), { code: 'ENOSPC' });
        }
        stream.write(part10Prefix(request.getAffectedSopClassUid(), request.getAffectedSopInstanceUid(), pc.getAcceptedTransferSyntaxUid(), this.callingAe));
        return stream;
      }

      createDatasetFromStoreWritableStream(writable: Writable, _pc: unknown, callback: (ds: unknown) => void): void {
        const current = this.current;
        const request = (this as unknown as { dimse?: { getAffectedSopInstanceUid(): string } }).dimse;
        const expected = request?.getAffectedSopInstanceUid();
        const finish = (status: number, comment?: string) => {
          this.outcome = { status, comment };
          this.current = undefined;
          callback(new Dataset({}, TransferSyntax.ExplicitVRLittleEndian));
        };
        if (!current) return finish(DimseStatus.ProcessingFailure, 'no open store stream');
        const done = async () => {
          if (current.failed) {
            fs.rmSync(current.tmp, { force: true });
            const code = (current.failed as NodeJS.ErrnoException).code;
            receiver.stats.failed++;
            if (code === 'ENOSPC') {
              log.error('refusing instance: storage full', { event: 'dimse.store.out_of_space', callingAe: this.callingAe });
              receiver.events.onFailure?.('out of space');
              return finish(DimseStatus.OutOfResources, 'Out of resources: storage below free-space floor');
            }
            return finish(DimseStatus.ProcessingFailure, `write failed: ${current.failed.message}`);
          }
          try {
            const r = await store.commit(current.tmp, { sourceAe: this.callingAe, calledAe: this.calledAe, expectedSopInstanceUid: expected });
            if (r.status === 'duplicate') receiver.stats.duplicates++;
            else receiver.stats.stored++;
            receiver.stats.bytes += r.instance.bytes;
            receiver.events.onInstance?.(r.instance.bytes, r.status);
            finish(DimseStatus.Success);
          } catch (e) {
            receiver.stats.failed++;
            const se = e as StoreError;
            log.warn('instance refused', { event: 'dimse.store.refused', callingAe: this.callingAe, code: se.code, reason: se.message, sop: ref(expected) });
            receiver.events.onFailure?.(se.message);
            if (se.code === 'out-of-space') finish(DimseStatus.OutOfResources, se.message.slice(0, 64));
            else if (se.code === 'malformed') finish(DimseStatus.CannotUnderstand, se.message.slice(0, 64));
            else finish(DimseStatus.ProcessingFailure, se.message.slice(0, 64));
          }
        };
        // dcmjs-dimse calls end() just before this; wait for the bytes to reach the file.
        if (writable.writableFinished) void done();
        else {
          writable.once('finish', () => void done());
          writable.once('error', () => void done());
        }
      }

      cStoreRequest(request: unknown, callback: (r: unknown) => void): void {
        const response = CStoreResponse.fromRequest(request);
        const o = this.outcome ?? { status: DimseStatus.ProcessingFailure, comment: 'no outcome' };
        response.setStatus(o.status);
        // Always set it: dcmjs-dimse otherwise repeats the previous response's comment.
        response.setErrorComment(o.comment ?? '');
        this.outcome = undefined;
        callback(response);
      }

      abort(): void {
        log.warn('association aborted by peer', { event: 'dimse.association.aborted', callingAe: this.callingAe });
        this.cleanup();
      }
    }

    const opts = {
      associationTimeout: cfg.associationTimeoutSeconds * 1000,
      pduTimeout: cfg.associationTimeoutSeconds * 1000,
    };
    this.server = net.createServer((socket) => {
      socket.setNoDelay(true);
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      const scp = new StoreScp(socket, opts);
      (scp as unknown as { connected: boolean }).connected = true;
      scp.on('networkError', () => socket.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(cfg.port, cfg.host, () => {
        this.server!.off('error', reject);
        resolve();
      });
    });
    log.info('DIMSE receiver listening', { event: 'dimse.listening', host: cfg.host, port: this.port, aeTitle: cfg.aeTitle });
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
