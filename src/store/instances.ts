/**
 * The instance store: Part 10 files on disk + one index row per SOP instance in SQLite.
 *
 * Durability contract (what "acknowledged" means): a receiver writes the incoming bytes to a
 * temporary file under <dir>/tmp, then calls `commit()`, which fsyncs the file, parses its header,
 * renames it into <dir>/instances/…, fsyncs the folder and commits the index row (synchronous=FULL).
 * Only after `commit()` resolves does the receiver send success. A crash at any point before that
 * leaves either a temp file (deleted at start-up) or a renamed file with no row (re-indexed at
 * start-up), never a row without its file.
 */
import type Database from 'better-sqlite3';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { NaturalDataset, readPart10, str, strs } from '../dicom/dcmjs';
import { StoredInstance } from '../types';
import { Db } from './db';
import { scanHeader } from '../dicom/header-scan';
import { DEFAULT_INSTANCE_LIMITS, InstanceLimits, validateFile } from '../dicom/validate';
import { log, ref } from '../util/log';

type Statement = Database.Statement<unknown[]>;

export type StoreErrorCode = 'malformed' | 'out-of-space' | 'io';

export class StoreError extends Error {
  constructor(
    public readonly code: StoreErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface CommitContext {
  /** Calling AE (DIMSE) or "STOW-RS". */
  sourceAe: string;
  calledAe?: string;
  /** If the transport announced the SOP instance UID (C-STORE command), it must match the dataset. */
  expectedSopInstanceUid?: string;
  /**
   * Set by a receiver whose InstanceValidator accepted the bytes as they streamed in: where the
   * index attributes end. Without it commit() checks the file itself first.
   */
  validatedHeaderBytes?: number;
}

export interface CommitResult {
  status: 'stored' | 'duplicate';
  instance: StoredInstance;
  header: NaturalDataset;
  /** Arrival hint computed from the header (for 'stored'). */
  hint: ArrivalHint;
}

/**
 * A temporary file the receiver still holds open (it wrote it): commit() fsyncs and closes this
 * descriptor instead of opening the file again, takes the size from the writer and parses the
 * header from the first bytes it kept in memory (falling back to the file when they do not reach
 * past the attributes the index needs).
 */
export interface OpenTempFile {
  fd: number;
  size: number;
  /** The first bytes of the file (at least the Part 10 prefix), if kept. */
  head?: Buffer;
}

/** Hint about what a series is, computed cheaply at arrival (used for early hand-off only). */
export type ArrivalHint = 'DWI' | 'ADC' | 'CT' | 'OTHER';

export interface InstanceRow extends StoredInstance {
  patientId: string | null;
  patientName: string | null;
  modality: string | null;
  seriesDescription: string | null;
  seriesNumber: number | null;
  calledAe: string | null;
  hint: ArrivalHint;
  duplicates: number;
}

export type StoredListener = (r: CommitResult, ctx: CommitContext) => void;

const HEADER_PREFIX_BYTES = 1 << 20;
/** A re-sent study is logged at most once per this interval. */
const DUPLICATE_LOG_INTERVAL_MS = 60_000;
/** Temporary files kept created ahead (openTemp): one per concurrent association is enough. */
const SPARE_TEMP_FILES = 4;

export function arrivalHint(h: NaturalDataset): ArrivalHint {
  const modality = (str(h, 'Modality') ?? '').toUpperCase();
  if (modality === 'CT') return 'CT';
  if (modality !== 'MR') return 'OTHER';
  const it = strs(h, 'ImageType').map((s) => s.toUpperCase());
  const desc = (str(h, 'SeriesDescription') ?? '').toUpperCase();
  if (it.includes('ADC') || /\bADC\b|APPARENT/.test(desc)) return 'ADC';
  if (it.includes('DIFFUSION') || it.includes('TRACEW') || /DWI|DIFFUSION|TRACE/.test(desc)) return 'DWI';
  return 'OTHER';
}

export class InstanceStore {
  readonly tmpDir: string;
  readonly instancesDir: string;
  readonly spareDir: string;
  private listeners: StoredListener[] = [];
  private freeCache = { at: 0, freeMb: Number.POSITIVE_INFINITY };
  private writtenSinceReading = 0;
  /** Prepared statements by SQL: preparing costs ~0.1 ms, several times per instance otherwise. */
  private statements = new Map<string, Statement>();
  /** Folders known to exist (instances/<study>/<series>), so mkdir runs once per series. */
  private knownDirs = new Set<string>();
  /**
   * Temporary files created ahead of need, open for writing: creating a file costs 0.2–0.9 ms on
   * this machine's ext4, on the receiver's critical path; a spare is created in <dir>/spare on the
   * thread pool while the previous instance is still arriving, and renamed into tmp/ when taken
   * (~0.05 ms), so tmp/ still holds only instances being received.
   */
  private spares: { path: string; fd: number }[] = [];
  private sparesOpening = new Set<string>();
  private closed = false;
  /** When a study's last duplicate was logged (noteDuplicate). */
  private duplicateLogged = new Map<string, number>();
  /** Folder fsyncs in flight, one per folder, with the callers waiting for the next one. */
  private dirSyncs = new Map<string, { inFlight: boolean; waiters: (() => void)[] }>();

  constructor(
    private readonly db: Db,
    readonly dir: string,
    private readonly minFreeMb: number,
    /**
     * true (default): acknowledge only after the file and its folder entry are fsynced (survives
     * power loss). false: after the OS has the bytes (survives a process crash, not power loss),
     * as DCMTK storescp does. The index itself is always rebuildable from the files (recover()).
     */
    private readonly fsyncFiles = true,
    /** Bounds on each instance (limits.*): size, sequence depth, element count. */
    readonly limits: InstanceLimits = DEFAULT_INSTANCE_LIMITS,
  ) {
    this.tmpDir = path.join(dir, 'tmp');
    this.instancesDir = path.join(dir, 'instances');
    this.spareDir = path.join(dir, 'spare');
    fs.mkdirSync(this.spareDir, { recursive: true });
    fs.mkdirSync(this.tmpDir, { recursive: true });
    fs.mkdirSync(this.instancesDir, { recursive: true });
    db.exec(`
      CREATE TABLE IF NOT EXISTS instances (
        sop_instance_uid TEXT PRIMARY KEY,
        sop_class_uid TEXT NOT NULL,
        study_uid TEXT NOT NULL,
        series_uid TEXT NOT NULL,
        transfer_syntax TEXT NOT NULL,
        path TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        received_at TEXT NOT NULL,
        source_ae TEXT NOT NULL,
        called_ae TEXT,
        patient_id TEXT,
        patient_name TEXT,
        modality TEXT,
        series_description TEXT,
        series_number INTEGER,
        hint TEXT NOT NULL DEFAULT 'OTHER',
        duplicates INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS instances_study ON instances(study_uid);
      CREATE INDEX IF NOT EXISTS instances_received ON instances(received_at);
    `);
  }

  /** A cached prepared statement. */
  private st(sql: string): Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  onStored(l: StoredListener): void {
    this.listeners.push(l);
  }

  /** A fresh temporary path for an incoming instance. */
  tempPath(): string {
    return path.join(this.tmpDir, `${Date.now()}-${crypto.randomBytes(6).toString('hex')}.part`);
  }

  /**
   * A fresh temporary file, open for writing (a spare when one is ready, else opened now; throws
   * like open(2) when the file cannot be created). The caller owns the descriptor.
   */
  openTemp(): { path: string; fd: number } {
    const p = this.tempPath();
    let t: { path: string; fd: number } | undefined;
    const spare = this.spares.pop();
    if (spare) {
      try {
        fs.renameSync(spare.path, p);
        t = { path: p, fd: spare.fd };
      } catch {
        fs.close(spare.fd, () => undefined);
      }
    }
    if (!t) t = { path: p, fd: fs.openSync(p, 'w') };
    this.refillSpares();
    return t;
  }

  private refillSpares(): void {
    while (!this.closed && this.spares.length + this.sparesOpening.size < SPARE_TEMP_FILES) {
      const p = path.join(this.spareDir, `${Date.now()}-${crypto.randomBytes(6).toString('hex')}.spare`);
      this.sparesOpening.add(p);
      fs.open(p, 'w', (err, fd) => {
        this.sparesOpening.delete(p);
        // on error (disk full…) the next openTemp() opens synchronously and reports it
        if (err) return;
        if (this.closed) {
          fs.close(fd, () => fs.rm(p, { force: true }, () => undefined));
          return;
        }
        this.spares.push({ path: p, fd });
      });
    }
  }

  /** Close and remove the spare temporary files (at shutdown). */
  close(): void {
    this.closed = true;
    for (const s of this.spares.splice(0)) {
      try {
        fs.closeSync(s.fd);
      } catch {
        /* already closed */
      }
      fs.rmSync(s.path, { force: true });
    }
  }

  /**
   * Free space of the storage filesystem in MB: a statfs reading at most once a second, less the
   * bytes receivers wrote since that reading (noteWritten), so that a fast transfer cannot run past
   * the floor between two readings.
   */
  freeMb(now = Date.now()): number {
    if (now - this.freeCache.at > 1000) {
      this.writtenSinceReading = 0;
      try {
        const s = fs.statfsSync(this.dir);
        this.freeCache = { at: now, freeMb: (s.bavail * s.bsize) / (1024 * 1024) };
      } catch {
        this.freeCache = { at: now, freeMb: Number.POSITIVE_INFINITY };
      }
    }
    return this.freeCache.freeMb - this.writtenSinceReading / (1024 * 1024);
  }

  /** A receiver wrote this many bytes into storage.dir (counted against the free space until the next reading). */
  noteWritten(bytes: number): void {
    this.writtenSinceReading += bytes;
  }

  /**
   * False when the disk is below the configured free-space floor: receivers must refuse data.
   * Receivers ask before each write, so the floor holds during a transfer, not only at its start.
   */
  hasSpace(): boolean {
    return this.freeMb() >= this.minFreeMb;
  }

  /** For tests and the admin page: force a fresh free-space reading next time. */
  invalidateSpaceCache(): void {
    this.freeCache.at = 0;
  }

  /**
   * The attributes the index needs. `headerBytes` (from the validator) says how far into the file
   * they lie, however long the header is (a 1 MB private element or 12,000 referenced images
   * before the series UID are valid); the read goes exactly that far and never further.
   */
  private readHeader(file: string, size: number, headerBytes: number, head?: Buffer): { dataset: NaturalDataset; transferSyntaxUid: string } {
    if (head) {
      const early = scanHeader(head, head.length >= size);
      if (early) return early;
    }
    const n = Math.min(size, Math.max(headerBytes, Math.min(HEADER_PREFIX_BYTES, size)));
    let buf: Buffer;
    if (head && head.length >= n) buf = head.subarray(0, n);
    else {
      buf = Buffer.alloc(n);
      const fd = fs.openSync(file, 'r');
      try {
        let off = 0;
        while (off < n) {
          const r = fs.readSync(fd, buf, off, n - off, off);
          if (r <= 0) break;
          off += r;
        }
      } finally {
        fs.closeSync(fd);
      }
    }
    // Everything the index needs is at or before SeriesInstanceUID (0020,000E): stop there, so
    // big vendor headers (Siemens CSA in group 0029) and the pixel data are never parsed here.
    const early = readPart10(buf, { untilTag: '0020000E' });
    if (early.dataset.SeriesInstanceUID && early.dataset.SOPInstanceUID) return early;
    return readPart10(buf, { untilPixelData: true });
  }

  /**
   * Make a fully written temporary file durable and index it. On any error the temporary file is
   * removed and a StoreError says why (the receiver turns it into a DIMSE status / HTTP error).
   */
  async commit(tmp: string, ctx: CommitContext, open?: OpenTempFile): Promise<CommitResult> {
    try {
      if (ctx.validatedHeaderBytes === undefined) {
        // Not checked as it streamed in: check the file now (reads element headers, seeks past values).
        const v = validateFile(tmp, this.limits);
        if (!v.ok) {
          if (open) fs.closeSync(open.fd);
          throw new StoreError('malformed', v.error);
        }
        ctx = { ...ctx, validatedHeaderBytes: v.headerBytes };
      }
      // The fsync waits run on the thread pool, so other associations progress meanwhile.
      if (open) {
        try {
          if (this.fsyncFiles) await new Promise<void>((res, rej) => fs.fdatasync(open.fd, (e) => (e ? rej(e) : res())));
        } finally {
          fs.closeSync(open.fd);
        }
      } else if (this.fsyncFiles) {
        const fh = await fs.promises.open(tmp, 'r+');
        try {
          await fh.datasync();
        } finally {
          await fh.close();
        }
      }
      const r = this.commitSync(tmp, ctx, { synced: true, asyncDirSync: true, size: open?.size, head: open?.head });
      if (this.fsyncFiles && r.status === 'stored') await this.syncDir(path.dirname(r.instance.path));
      return r;
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      if (e instanceof StoreError) throw e;
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOSPC') throw new StoreError('out-of-space', 'storage is full');
      throw new StoreError('io', `could not store instance: ${err.message}`);
    }
  }

  /**
   * Group commit of folder fsyncs: one fsync makes every rename done before it started durable, so
   * concurrent associations storing into the same series folder share one instead of queueing one
   * each. A caller arriving while one runs waits for the next (its rename may be too recent).
   */
  private syncDir(dir: string): Promise<void> {
    return new Promise<void>((resolve) => {
      let s = this.dirSyncs.get(dir);
      if (!s) {
        s = { inFlight: false, waiters: [] };
        this.dirSyncs.set(dir, s);
      }
      s.waiters.push(resolve);
      if (!s.inFlight) this.runDirSync(dir, s);
    });
  }

  private runDirSync(dir: string, s: { inFlight: boolean; waiters: (() => void)[] }): void {
    const batch = s.waiters;
    s.waiters = [];
    s.inFlight = true;
    void fsyncDirAsync(dir).then(() => {
      s.inFlight = false;
      for (const w of batch) w();
      if (s.waiters.length) this.runDirSync(dir, s);
      else this.dirSyncs.delete(dir);
    });
  }

  private commitSync(tmp: string, ctx: CommitContext, opts: { synced?: boolean; asyncDirSync?: boolean; size?: number; head?: Buffer } = {}): CommitResult {
    let size: number;
    if (opts.size !== undefined) size = opts.size;
    else {
      const fd = fs.openSync(tmp, 'r+');
      try {
        if (this.fsyncFiles && !opts.synced) fs.fdatasyncSync(fd);
        size = fs.fstatSync(fd).size;
      } finally {
        fs.closeSync(fd);
      }
    }
    let header: NaturalDataset;
    let ts: string;
    try {
      ({ dataset: header, transferSyntaxUid: ts } = this.readHeader(tmp, size, ctx.validatedHeaderBytes ?? size, opts.head));
    } catch (e) {
      throw new StoreError('malformed', readableError(e));
    }
    const sopInstanceUid = str(header, 'SOPInstanceUID');
    const sopClassUid = str(header, 'SOPClassUID');
    const studyUid = str(header, 'StudyInstanceUID');
    const seriesUid = str(header, 'SeriesInstanceUID');
    const missing = [
      ['SOPInstanceUID', sopInstanceUid],
      ['SOPClassUID', sopClassUid],
      ['StudyInstanceUID', studyUid],
      ['SeriesInstanceUID', seriesUid],
    ]
      .filter(([, v]) => !v)
      .map(([k]) => k);
    if (missing.length) throw new StoreError('malformed', `missing required attribute(s): ${missing.join(', ')}`);
    if (ctx.expectedSopInstanceUid && ctx.expectedSopInstanceUid !== sopInstanceUid) {
      throw new StoreError('malformed', 'SOPInstanceUID in the dataset differs from the C-STORE command');
    }
    if (!ts) throw new StoreError('malformed', 'file meta information has no TransferSyntaxUID');

    const existing = this.st('SELECT * FROM instances WHERE sop_instance_uid = ?').get(sopInstanceUid) as Record<string, unknown> | undefined;
    if (existing) {
      this.st('UPDATE instances SET duplicates = duplicates + 1 WHERE sop_instance_uid = ?').run(sopInstanceUid);
      fs.rmSync(tmp, { force: true });
      const instance = rowToInstance(existing);
      this.noteDuplicate(instance.studyInstanceUid, ctx.sourceAe);
      return { status: 'duplicate', instance, header, hint: (existing.hint as ArrivalHint) ?? 'OTHER' };
    }

    const h = (s: string) => crypto.createHash('sha1').update(s).digest('hex').slice(0, 16);
    const destDir = path.join(this.instancesDir, h(studyUid!), h(seriesUid!));
    if (!this.knownDirs.has(destDir)) {
      fs.mkdirSync(destDir, { recursive: true });
      this.knownDirs.add(destDir);
    }
    const dest = path.join(destDir, `${h(sopInstanceUid!)}.dcm`);
    try {
      fs.renameSync(tmp, dest);
    } catch (e) {
      // the folder was removed behind our back (retention): forget it and retry once
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || !fs.existsSync(tmp)) throw e;
      this.knownDirs.delete(destDir);
      fs.mkdirSync(destDir, { recursive: true });
      this.knownDirs.add(destDir);
      fs.renameSync(tmp, dest);
    }
    if (this.fsyncFiles && !opts.asyncDirSync) fsyncDir(destDir);

    const instance: StoredInstance = {
      sopInstanceUid: sopInstanceUid!,
      sopClassUid: sopClassUid!,
      studyInstanceUid: studyUid!,
      seriesInstanceUid: seriesUid!,
      transferSyntaxUid: ts,
      path: dest,
      bytes: size,
      receivedAt: new Date().toISOString(),
      sourceAe: ctx.sourceAe,
    };
    const seriesNumber = Number(str(header, 'SeriesNumber'));
    const hint = arrivalHint(header);
    this.st(
        `INSERT INTO instances (sop_instance_uid, sop_class_uid, study_uid, series_uid, transfer_syntax, path, bytes,
           received_at, source_ae, called_ae, patient_id, patient_name, modality, series_description, series_number, hint)
         VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
      ).run(
        instance.sopInstanceUid,
        instance.sopClassUid,
        instance.studyInstanceUid,
        instance.seriesInstanceUid,
        instance.transferSyntaxUid,
        instance.path,
        instance.bytes,
        instance.receivedAt,
        instance.sourceAe,
        ctx.calledAe ?? null,
        str(header, 'PatientID') ?? null,
        str(header, 'PatientName') ?? null,
        str(header, 'Modality') ?? null,
        str(header, 'SeriesDescription') ?? null,
        Number.isFinite(seriesNumber) ? seriesNumber : null,
        hint,
      );
    const result: CommitResult = { status: 'stored', instance, header, hint };
    for (const l of this.listeners) {
      try {
        l(result, ctx);
      } catch {
        /* a listener failing must not fail the store */
      }
    }
    return result;
  }

  get(sopInstanceUid: string): InstanceRow | undefined {
    const r = this.db.prepare('SELECT * FROM instances WHERE sop_instance_uid = ?').get(sopInstanceUid) as
      | Record<string, unknown>
      | undefined;
    return r ? rowToInstanceRow(r) : undefined;
  }

  listStudy(studyUid: string): InstanceRow[] {
    return (this.db.prepare('SELECT * FROM instances WHERE study_uid = ? ORDER BY received_at').all(studyUid) as Record<
      string,
      unknown
    >[]).map(rowToInstanceRow);
  }

  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM instances').get() as { n: number }).n;
  }

  /**
   * A re-sent instance (same SOPInstanceUID as one already stored) is acknowledged, counted and not
   * processed again. One log line per study per minute (a re-sent study of 500 instances is one
   * event, not 500), with the study's running total.
   */
  private noteDuplicate(studyUid: string, sourceAe: string): void {
    const now = Date.now();
    const last = this.duplicateLogged.get(studyUid);
    if (last !== undefined && now - last < DUPLICATE_LOG_INTERVAL_MS) return;
    if (this.duplicateLogged.size > 1000) this.duplicateLogged.clear();
    this.duplicateLogged.set(studyUid, now);
    log.warn('instance already stored (study re-sent): acknowledged, counted, not processed again; reprocess from the admin page if wanted', {
      event: 'store.duplicate',
      study: ref(studyUid),
      callingAe: sourceAe,
      duplicates: this.studyDuplicates(studyUid),
    });
  }

  /** How many instances of this study arrived again after they were stored (re-sends). */
  studyDuplicates(studyUid: string): number {
    return (this.st('SELECT COALESCE(SUM(duplicates),0) AS n FROM instances WHERE study_uid = ?').get(studyUid) as { n: number }).n;
  }

  duplicateCount(): number {
    return (this.db.prepare('SELECT COALESCE(SUM(duplicates),0) AS n FROM instances').get() as { n: number }).n;
  }

  /** Delete a study's instances (retention). */
  deleteStudy(studyUid: string): number {
    const rows = this.listStudy(studyUid);
    for (const r of rows) fs.rmSync(r.path, { force: true });
    return this.db.prepare('DELETE FROM instances WHERE study_uid = ?').run(studyUid).changes;
  }

  /**
   * Start-up recovery: remove half-written temporary files (never acknowledged), re-index files
   * that were renamed into place but whose row was not committed (crash in between).
   */
  recover(): { removedTemp: number; reindexed: number; droppedRows: number } {
    let removedTemp = 0;
    const ours = new Set([...this.spares.map((s) => s.path), ...this.sparesOpening]);
    for (const f of fs.readdirSync(this.spareDir)) {
      if (!ours.has(path.join(this.spareDir, f))) fs.rmSync(path.join(this.spareDir, f), { force: true });
    }
    for (const f of fs.readdirSync(this.tmpDir)) {
      fs.rmSync(path.join(this.tmpDir, f), { force: true });
      removedTemp++;
    }
    // Rows whose file is gone (a power loss between the row commit and the folder fsync; such an
    // instance was never acknowledged) are dropped.
    let droppedRows = 0;
    for (const r of this.db.prepare('SELECT sop_instance_uid, path FROM instances').all() as { sop_instance_uid: string; path: string }[]) {
      if (!fs.existsSync(r.path)) {
        this.db.prepare('DELETE FROM instances WHERE sop_instance_uid = ?').run(r.sop_instance_uid);
        droppedRows++;
      }
    }
    let reindexed = 0;
    const known = new Set(
      (this.db.prepare('SELECT path FROM instances').all() as { path: string }[]).map((r) => r.path),
    );
    const walk = (d: string): string[] =>
      fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
    for (const f of walk(this.instancesDir)) {
      if (known.has(f)) continue;
      const tmp = this.tempPath();
      fs.renameSync(f, tmp);
      try {
        const v = validateFile(tmp, this.limits);
        if (!v.ok) throw new StoreError('malformed', v.error);
        this.commitSync(tmp, { sourceAe: 'RECOVERED', validatedHeaderBytes: v.headerBytes });
        reindexed++;
      } catch {
        fs.rmSync(tmp, { force: true });
      }
    }
    return { removedTemp, reindexed, droppedRows };
  }
}

/** An error's message, never "undefined" (dcmjs sometimes throws strings or TypeErrors). */
function readableError(e: unknown): string {
  const m = e instanceof Error ? e.message : typeof e === 'string' ? e : '';
  if (!m) return 'the data set could not be parsed';
  if (e instanceof TypeError) return `the data set could not be parsed (${m})`;
  return m;
}

async function fsyncDirAsync(dir: string): Promise<void> {
  try {
    const fh = await fs.promises.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* some filesystems refuse directory fsync */
  }
}

function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    /* some filesystems refuse directory fsync */
  }
}

function rowToInstance(r: Record<string, unknown>): StoredInstance {
  return {
    sopInstanceUid: String(r.sop_instance_uid),
    sopClassUid: String(r.sop_class_uid),
    studyInstanceUid: String(r.study_uid),
    seriesInstanceUid: String(r.series_uid),
    transferSyntaxUid: String(r.transfer_syntax),
    path: String(r.path),
    bytes: Number(r.bytes),
    receivedAt: String(r.received_at),
    sourceAe: String(r.source_ae),
  };
}

function rowToInstanceRow(r: Record<string, unknown>): InstanceRow {
  return {
    ...rowToInstance(r),
    patientId: (r.patient_id as string | null) ?? null,
    patientName: (r.patient_name as string | null) ?? null,
    modality: (r.modality as string | null) ?? null,
    seriesDescription: (r.series_description as string | null) ?? null,
    seriesNumber: (r.series_number as number | null) ?? null,
    calledAe: (r.called_ae as string | null) ?? null,
    hint: (r.hint as ArrivalHint) ?? 'OTHER',
    duplicates: Number(r.duplicates ?? 0),
  };
}
