/**
 * DIMSE receiver: C-ECHO and C-STORE SCP on dcmjs-dimse.
 *
 * Deviations from dcmjs-dimse's own `Server`, each for a measured reason (see DESIGN.md traps):
 *  - we create the `net` server ourselves so it binds the configured host (dcmjs-dimse binds all
 *    interfaces) and so EADDRINUSE surfaces as a start-up error;
 *  - every socket gets TCP_NODELAY (dcmjs-dimse never sets it: +35 % throughput);
 *  - P-DATA-TF PDUs are reassembled and C-STORE requests handled below dcmjs-dimse (pdata.ts): the
 *    command set parsed and the response encoded by hand, each dataset written to a temporary file
 *    as its PDUs arrive (a writev per 256 kB, never the whole dataset in memory), stored exactly as
 *    received (compressed syntaxes included). dcmjs-dimse keeps association negotiation, release,
 *    abort, C-ECHO and any other command;
 *  - the success status is sent only after InstanceStore.commit() made the file and its index row
 *    durable.
 */
import * as fs from 'fs';
import * as net from 'net';
import { DimseConfig } from './types';
import { CommandField, CommandSet, MAX_ACCEPTED_PDU_BYTES, NO_DATASET, PduReader, PduType, cStoreResponsePdu, parseCommandSet, part10Prefix, pdvPdu, readPdvs } from './pdata';
import { InstanceStore, StoreError } from '../store/instances';
import { InstanceLimits, InstanceValidator } from '../dicom/validate';
import { log, ref } from '../util/log';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../dicom/dcmjs';
import { createDicomTlsServer, serverTlsOptions } from '../net/tls';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const dimse = require('dcmjs-dimse');

const { Scp, Implementation } = dimse;
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

/** Pending PDV values are written with one writev once they reach this many bytes. */
const FLUSH_BYTES = 256 * 1024;
/** The first bytes of each instance are kept in memory to index it without reading the file back. */
const HEAD_BYTES = 64 * 1024;

/** Write all of `bufs` at the file position (handles short writes). */
function writeAllSync(fd: number, bufs: Buffer[]): void {
  let rest = bufs;
  while (rest.length) {
    let n = fs.writevSync(fd, rest);
    let i = 0;
    while (i < rest.length && n >= rest[i].length) n -= rest[i++].length;
    rest = rest.slice(i);
    if (rest.length && n > 0) rest[0] = rest[0].subarray(n);
  }
}

/** One C-STORE being received: its request, its temporary file, what is still to be written. */
interface Incoming {
  pcId: number;
  request: CommandSet;
  tmp: string;
  fd: number | null;
  size: number;
  pending: Buffer[];
  pendingBytes: number;
  head: Buffer[];
  headBytes: number;
  /** Where the index attributes end (set once the validator accepted the whole instance). */
  headerBytes?: number;
  /** Checks the instance's structure as its bytes arrive (nothing malformed is acknowledged). */
  validator: InstanceValidator;
  failed?: Error;
}

/** A failure that makes the instance's data unacceptable (answered C000), not a local fault. */
function malformed(reason: string): Error {
  return Object.assign(new Error(reason), { code: 'EMALFORMED' });
}

/** dcmjs-dimse 0.3.x Network members the fast path uses (checked against 0.3.3; test/ingest exercises each). */
interface NetworkInternals {
  association?: { getPresentationContext(id: number): { getResult(): number; getAcceptedTransferSyntaxUid(): string } };
  lastPduTime?: number;
  statistics: { addBytesReceived(n: number): void; addBytesSent(n: number): void };
  _processPdu(pdu: Buffer): Promise<void>;
  emit(event: string, ...args: unknown[]): boolean;
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    /* already closed */
  }
}

export class DimseReceiver {
  private server?: net.Server;
  private sockets = new Set<net.Socket>();
  readonly stats: ScpStats = { associations: 0, rejectedAssociations: 0, stored: 0, duplicates: 0, failed: 0, bytes: 0 };
  private activeAssociations = 0;
  /** Connections not yet associated, in total and per remote IP (bounded: dimse.maxPendingConnections*). */
  private pendingTotal = 0;
  private pendingByIp = new Map<string, number>();

  constructor(
    private readonly cfg: DimseConfig,
    private readonly store: InstanceStore,
    private readonly events: DimseReceiverEvents = {},
    private readonly limits?: InstanceLimits,
  ) {}

  /** Connections open but not associated yet (half-open, slow or hostile peers), for metrics and tests. */
  get pendingConnections(): number {
    return this.pendingTotal;
  }

  /** Count a new connection as pending; false when the total or per-IP cap is reached. */
  private openPending(ip: string): boolean {
    const n = this.pendingByIp.get(ip) ?? 0;
    if (this.pendingTotal >= this.cfg.maxPendingConnections || n >= this.cfg.maxPendingConnectionsPerIp) return false;
    this.pendingTotal++;
    this.pendingByIp.set(ip, n + 1);
    return true;
  }

  /**
   * Count a new connection as pending, or refuse it (closed at once, logged) when the total or
   * per-IP cap is reached. The remote IP, or undefined when refused.
   */
  private admitPending(socket: net.Socket, tls: boolean): string | undefined {
    const remote = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    if (this.openPending(remote)) return remote;
    log.warn('connection refused: too many connections without an association', {
      event: 'dimse.connection.limit',
      remote,
      tls,
      pending: this.pendingTotal,
      maxTotal: this.cfg.maxPendingConnections,
      maxPerIp: this.cfg.maxPendingConnectionsPerIp,
    });
    this.events.onFailure?.('too many pending connections');
    socket.destroy();
    return undefined;
  }

  private closePending(ip: string): void {
    this.pendingTotal--;
    const n = (this.pendingByIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.pendingByIp.delete(ip);
    else this.pendingByIp.set(ip, n);
  }

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
      private counted = false;
      private readonly reader: PduReader;
      /** Fragments of a command set not yet complete. */
      private commandParts: Buffer[] = [];
      /** idle: between messages; store: receiving a C-STORE data set; delegate: dcmjs-dimse's message. */
      private mode: 'idle' | 'store' | 'delegate' = 'idle';
      private incoming?: Incoming;
      /** Remote IP while the connection counts as pending (no association accepted yet). */
      private pendingIp?: string;
      /** ARTIM (PS3.8 §9.1.5): runs from the connection until the association is accepted. */
      private artim?: NodeJS.Timeout;
      private associated = false;

      constructor(
        private readonly socket: net.Socket,
        opts: Record<string, unknown>,
      ) {
        super(socket, opts);
        // Take the byte stream from dcmjs-dimse's PDU accumulator (it re-concatenated a partial
        // PDU with every chunk): ours hands whole PDUs to onPdu, views into the socket chunks.
        for (const l of socket.listeners('data')) socket.off('data', l as (...a: unknown[]) => void);
        this.reader = new PduReader((type, pdu) => this.onPdu(type, pdu), cfg.maxAssociateRequestBytes);
        const remote = receiver.admitPending(socket, false);
        if (remote === undefined) return;
        this.pendingIp = remote;
        this.artim = setTimeout(() => {
          log.warn('ARTIM timer expired: no association within dimse.artimTimeoutSeconds, closing', {
            event: 'dimse.artim_expired',
            remote,
            seconds: cfg.artimTimeoutSeconds,
          });
          receiver.events.onFailure?.('ARTIM timer expired');
          socket.destroy();
        }, cfg.artimTimeoutSeconds * 1000);
        this.artim.unref();
        socket.once('close', () => this.endPending());
        socket.on('data', (chunk: Buffer) => {
          this.net.statistics.addBytesReceived(chunk.length);
          try {
            this.reader.push(chunk);
          } catch (e) {
            this.protocolError(e as Error);
          }
        });
        this.on('close', () => this.cleanup());
      }

      /** The connection is associated or gone: it no longer counts as pending. */
      private endPending(): void {
        if (this.artim) clearTimeout(this.artim);
        this.artim = undefined;
        if (this.pendingIp !== undefined) receiver.closePending(this.pendingIp);
        this.pendingIp = undefined;
      }

      private get net(): NetworkInternals {
        return this as unknown as NetworkInternals;
      }

      private protocolError(e: Error): void {
        log.warn('DIMSE protocol error, closing the association', { event: 'dimse.protocol_error', callingAe: this.callingAe, reason: e.message });
        this.cleanup();
        this.net.emit('networkError', e);
      }

      private onPdu(type: number, pdu: Buffer): void {
        this.net.lastPduTime = Date.now();
        if (!this.associated && type !== PduType.AssociateRQ && type !== PduType.Abort && type !== PduType.ReleaseRQ) {
          throw new Error(`PDU type ${type} before an association was accepted`);
        }
        if (type !== PduType.PDataTF) {
          void this.net._processPdu(pdu);
          return;
        }
        for (const pdv of readPdvs(pdu)) {
          if (pdv.command) {
            if (this.mode !== 'idle') throw new Error('command received before the previous data set was complete');
            this.commandParts.push(pdv.value);
            if (!pdv.last) continue;
            const raw = this.commandParts.length === 1 ? this.commandParts[0] : Buffer.concat(this.commandParts);
            this.commandParts = [];
            const request = parseCommandSet(raw);
            if (request.commandField === CommandField.CStoreRQ && request.dataSetType !== NO_DATASET) {
              this.beginStore(pdv.pcId, request);
            } else {
              // C-ECHO and anything else: dcmjs-dimse, as one whole command PDV.
              this.mode = request.dataSetType !== NO_DATASET ? 'delegate' : 'idle';
              void this.net._processPdu(pdvPdu(pdv.pcId, true, true, raw));
            }
          } else if (this.mode === 'store') {
            this.appendData(this.incoming!, pdv.value);
            if (pdv.last) this.endStore();
          } else if (this.mode === 'delegate') {
            if (pdv.last) this.mode = 'idle';
            void this.net._processPdu(pdvPdu(pdv.pcId, false, pdv.last, pdv.value));
          } else {
            throw new Error('data set fragment received without a command');
          }
        }
      }

      private beginStore(pcId: number, request: CommandSet): void {
        const pc = this.net.association?.getPresentationContext(pcId); // throws on an unknown id
        if (!pc || pc.getResult() !== PresentationContextResult.Accept) throw new Error(`C-STORE on presentation context ${pcId}, which was not accepted`);
        const inc: Incoming = {
          pcId,
          request,
          tmp: '',
          fd: null,
          size: 0,
          pending: [],
          pendingBytes: 0,
          head: [],
          headBytes: 0,
          validator: new InstanceValidator(receiver.limits),
        };
        this.incoming = inc;
        this.mode = 'store';
        try {
          const t = store.openTemp();
          inc.tmp = t.path;
          inc.fd = t.fd;
        } catch (e) {
          // cannot even create the file (disk full, permissions): swallow the data, answer a failure
          inc.failed = e as Error;
          return;
        }
        if (!store.hasSpace()) {
          inc.failed = Object.assign(new Error('free disk space below storage.minFreeMb'), { code: 'ENOSPC' });
          return;
        }
        this.appendData(
          inc,
          part10Prefix({
            sopClassUid: request.affectedSopClassUid,
            sopInstanceUid: request.affectedSopInstanceUid,
            transferSyntaxUid: pc.getAcceptedTransferSyntaxUid(),
            implementationClassUid: IMPLEMENTATION_CLASS_UID,
            implementationVersionName: IMPLEMENTATION_VERSION_NAME,
            sourceAeTitle: this.callingAe,
          }),
        );
      }

      private appendData(inc: Incoming, value: Buffer): void {
        if (inc.failed) return;
        if (!inc.validator.push(value)) {
          // Refused as soon as it is known bad: the rest of its bytes are read and dropped, not stored.
          this.abandon(inc, malformed(inc.validator.error ?? 'malformed data set'));
          return;
        }
        inc.pending.push(value);
        inc.pendingBytes += value.length;
        if (inc.headBytes < HEAD_BYTES) {
          inc.head.push(value);
          inc.headBytes += value.length;
        }
        if (inc.pendingBytes >= FLUSH_BYTES) this.flush(inc);
      }

      /** Hand the pending bytes to the page cache (durability comes from the fsync in commit()). */
      private flush(inc: Incoming): void {
        if (inc.failed || inc.fd === null || inc.pendingBytes === 0) return;
        const bufs = inc.pending;
        const n = inc.pendingBytes;
        inc.pending = [];
        inc.pendingBytes = 0;
        // The free-space floor holds during the transfer, not only when it starts.
        if (!store.hasSpace()) {
          this.abandon(inc, Object.assign(new Error('free disk space below storage.minFreeMb'), { code: 'ENOSPC' }));
          return;
        }
        try {
          writeAllSync(inc.fd, bufs);
          inc.size += n;
          store.noteWritten(n);
        } catch (e) {
          this.abandon(inc, e as Error);
        }
      }

      /** Give up on an instance still arriving: its file goes now (disk space), the answer at its end. */
      private abandon(inc: Incoming, why: Error): void {
        inc.failed = why;
        inc.pending = [];
        inc.pendingBytes = 0;
        inc.head = [];
        if (inc.fd !== null) closeQuietly(inc.fd);
        inc.fd = null;
        if (inc.tmp) fs.rm(inc.tmp, { force: true }, () => undefined);
      }

      private endStore(): void {
        const inc = this.incoming!;
        this.incoming = undefined;
        this.mode = 'idle';
        this.flush(inc);
        if (!inc.failed) {
          const v = inc.validator.end();
          if (!v.ok) this.abandon(inc, malformed(v.error));
          else inc.headerBytes = v.headerBytes;
        }
        void this.finishStore(inc);
      }

      private respond(inc: Incoming, status: number, comment?: string): void {
        if (this.socket.destroyed) return;
        const pdu = cStoreResponsePdu(inc.pcId, inc.request, status, comment);
        this.socket.write(pdu);
        this.net.statistics.addBytesSent(pdu.length);
      }

      private async finishStore(inc: Incoming): Promise<void> {
        const expected = inc.request.affectedSopInstanceUid;
        if (inc.failed) {
          if (inc.fd !== null) closeQuietly(inc.fd);
          if (inc.tmp) fs.rmSync(inc.tmp, { force: true });
          const code = (inc.failed as NodeJS.ErrnoException).code;
          receiver.stats.failed++;
          if (code === 'ENOSPC') {
            log.error('refusing instance: storage full', { event: 'dimse.store.out_of_space', callingAe: this.callingAe, sop: ref(expected) });
            receiver.events.onFailure?.('out of space');
            return this.respond(inc, DimseStatus.OutOfResources, 'Out of resources: storage below free-space floor');
          }
          if (code === 'EMALFORMED') {
            log.warn('instance refused', { event: 'dimse.store.refused', callingAe: this.callingAe, code: 'malformed', reason: inc.failed.message, sop: ref(expected) });
            receiver.events.onFailure?.(inc.failed.message);
            return this.respond(inc, DimseStatus.CannotUnderstand, inc.failed.message);
          }
          log.error('instance not stored: write failed', { event: 'dimse.store.write_failed', callingAe: this.callingAe, reason: inc.failed.message, sop: ref(expected) });
          receiver.events.onFailure?.(inc.failed.message);
          return this.respond(inc, DimseStatus.ProcessingFailure, `write failed: ${inc.failed.message}`);
        }
        try {
          const head = inc.head.length === 1 ? inc.head[0] : Buffer.concat(inc.head);
          const r = await store.commit(
            inc.tmp,
            { sourceAe: this.callingAe, calledAe: this.calledAe, expectedSopInstanceUid: expected, validatedHeaderBytes: inc.headerBytes },
            { fd: inc.fd!, size: inc.size, head },
          );
          if (r.status === 'duplicate') receiver.stats.duplicates++;
          else receiver.stats.stored++;
          receiver.stats.bytes += r.instance.bytes;
          receiver.events.onInstance?.(r.instance.bytes, r.status);
          this.respond(inc, DimseStatus.Success);
        } catch (e) {
          receiver.stats.failed++;
          const se = e as StoreError;
          log.warn('instance refused', { event: 'dimse.store.refused', callingAe: this.callingAe, code: se.code, reason: se.message, sop: ref(expected) });
          receiver.events.onFailure?.(se.message);
          if (se.code === 'out-of-space') this.respond(inc, DimseStatus.OutOfResources, se.message);
          else if (se.code === 'malformed') this.respond(inc, DimseStatus.CannotUnderstand, se.message);
          else this.respond(inc, DimseStatus.ProcessingFailure, se.message);
        }
      }

      private cleanup(): void {
        if (this.counted) {
          receiver.activeAssociations--;
          this.counted = false;
        }
        const inc = this.incoming;
        if (inc) {
          // Association ended mid-instance (abort, network error): nothing was acknowledged.
          this.incoming = undefined;
          this.mode = 'idle';
          if (inc.fd !== null) closeQuietly(inc.fd);
          inc.fd = null;
          inc.failed = inc.failed ?? new Error('association ended');
          if (inc.tmp) fs.rm(inc.tmp, { force: true }, () => undefined);
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
        this.associated = true;
        this.reader.maxPduBytes = MAX_ACCEPTED_PDU_BYTES;
        this.endPending();
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

      /** Only reached for a C-STORE-RQ without a data set (the fast path takes all others). */
      cStoreRequest(request: unknown, callback: (r: unknown) => void): void {
        const response = CStoreResponse.fromRequest(request);
        response.setStatus(DimseStatus.CannotUnderstand);
        response.setErrorComment('C-STORE request without a data set');
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
    const onConnection = (socket: net.Socket): void => {
      socket.setNoDelay(true);
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      const scp = new StoreScp(socket, opts);
      (scp as unknown as { connected: boolean }).connected = true;
      scp.on('networkError', () => socket.destroy());
    };
    if (cfg.tls) {
      // DICOM TLS (PS3.15 B.9): the PEM files are read here (a bad one fails start-up naming its key);
      // the association starts once the handshake is complete, which ARTIM bounds.
      // A handshake in progress counts as a pending connection (dimse.maxPendingConnections*) until it
      // completes (StoreScp then counts the connection itself) or the socket closes.
      const handshaking = new Map<string, () => void>();
      const key = (s: net.Socket): string => `${s.remoteAddress}|${s.remotePort}`;
      const onSecure = (socket: net.Socket): void => {
        handshaking.get(key(socket))?.();
        onConnection(socket);
      };
      const tlsServer = createDicomTlsServer(serverTlsOptions(cfg.tls, 'dimse.tls'), cfg.artimTimeoutSeconds * 1000, onSecure);
      tlsServer.on('connection', (raw: net.Socket) => {
        this.sockets.add(raw); // so that stop() also ends handshakes in progress
        raw.on('close', () => this.sockets.delete(raw));
        const ip = this.admitPending(raw, true);
        if (ip === undefined) return;
        const k = key(raw);
        let counted = true;
        const release = (): void => {
          if (!counted) return;
          counted = false;
          handshaking.delete(k);
          this.closePending(ip);
        };
        handshaking.set(k, release);
        raw.once('close', release);
      });
      this.server = tlsServer;
    } else {
      this.server = net.createServer(onConnection);
    }
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(cfg.port, cfg.host, () => {
        this.server!.off('error', reject);
        resolve();
      });
    });
    log.info('DIMSE receiver listening', { event: 'dimse.listening', host: cfg.host, port: this.port, aeTitle: cfg.aeTitle, tls: Boolean(cfg.tls) });
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
