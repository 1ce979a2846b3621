#!/usr/bin/env node
/**
 * `npm run backup -- <dest-folder>`             back up storage.dir while the node runs
 * `npm run backup -- --restore <backup-folder>` put a backup back (node stopped)
 *
 * Options: `--config <file>` (else STROKE_NODE_CONFIG, dicom-config/node.yaml, embedded defaults,
 * as the node itself), `--storage <dir>` (overrides storage.dir), `--force` (restore over a
 * non-empty storage.dir: it is moved aside to `<dir>.before-restore-<time>`, never deleted).
 *
 * Backup, in this order:
 *  1. the SQLite index (index.sqlite: instances, jobs and outcomes, outbox) through SQLite's online
 *     backup API (better-sqlite3 `db.backup()`): a consistent snapshot taken page by page while the
 *     node goes on writing (WAL included; no lock held for long), then `PRAGMA integrity_check` on
 *     the copy;
 *  2. then every other file of storage.dir (instances/, results/, …) but tmp/ and spare/ (half-written
 *     and pre-allocated files the node recreates). Files that arrive after the snapshot are copied
 *     too and re-indexed by the node's start-up recovery; a file deleted by retention in between is
 *     skipped (its row is dropped by the same recovery).
 *  3. backup.json: when, from where, the node version, what was copied.
 *
 * Restore copies the backup into storage.dir and, when storage.dir differs from the one the backup
 * was taken from, rewrites the stored file paths (instances.path, egress_outbox.path) to the new
 * folder. Start the node afterwards: its recovery checks every row against the files.
 * Exit codes: 0 done, 1 failed, 2 usage.
 */
import Database from 'better-sqlite3';
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError, loadConfig } from '../config/load';

export const DB_FILE = 'index.sqlite';
export const MANIFEST = 'backup.json';
/** Not backed up: half-written temporary files and pre-allocated spares (the node recreates both). */
const SKIP = new Set(['tmp', 'spare', DB_FILE, `${DB_FILE}-wal`, `${DB_FILE}-shm`, `${DB_FILE}-journal`]);

export interface BackupManifest {
  format: 1;
  createdAt: string;
  /** storage.dir as the node's rows name it (path.join of the configured value). */
  storageDir: string;
  storageDirAbsolute: string;
  nodeVersion: string;
  database: { file: string; bytes: number; integrity: string; tables: Record<string, number> };
  files: { count: number; bytes: number; skippedVanished: number };
}

function nodeVersion(): string {
  for (const p of [path.resolve(__dirname, '../../package.json'), path.resolve(__dirname, '../../../package.json')]) {
    try {
      return String(JSON.parse(fs.readFileSync(p, 'utf8')).version);
    } catch {
      /* next */
    }
  }
  return 'unknown';
}

function isEmptyDir(d: string): boolean {
  return !fs.existsSync(d) || (fs.statSync(d).isDirectory() && fs.readdirSync(d).length === 0);
}

function tableCounts(db: Database.Database): Record<string, number> {
  const out: Record<string, number> = {};
  const names = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[];
  for (const { name } of names) out[name] = (db.prepare(`SELECT COUNT(*) AS n FROM "${name.replace(/"/g, '""')}"`).get() as { n: number }).n;
  return out;
}

/** Copy the files under `from` into `to` (skipping top-level names in `skip`); files that vanish meanwhile are counted, not fatal. */
function copyTree(from: string, to: string, skip: Set<string>, top = true): { count: number; bytes: number; vanished: number } {
  const r = { count: 0, bytes: 0, vanished: 0 };
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(from, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { ...r, vanished: 1 };
    throw e;
  }
  fs.mkdirSync(to, { recursive: true });
  for (const e of entries) {
    if (top && skip.has(e.name)) continue;
    const src = path.join(from, e.name);
    const dst = path.join(to, e.name);
    if (e.isDirectory()) {
      const s = copyTree(src, dst, skip, false);
      r.count += s.count;
      r.bytes += s.bytes;
      r.vanished += s.vanished;
    } else if (e.isFile()) {
      try {
        fs.copyFileSync(src, dst, fs.constants.COPYFILE_FICLONE);
        const st = fs.statSync(dst);
        fs.utimesSync(dst, st.atime, fs.statSync(src).mtime);
        r.count++;
        r.bytes += st.size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        fs.rmSync(dst, { force: true });
        r.vanished++;
      }
    }
  }
  return r;
}

/** Back up `storageDir` into `dest` (must not exist, or be empty). Safe while the node runs. */
export async function backup(storageDir: string, dest: string): Promise<BackupManifest> {
  const dbPath = path.join(storageDir, DB_FILE);
  if (!fs.existsSync(dbPath)) throw new Error(`no ${DB_FILE} in ${storageDir}: is storage.dir right?`);
  if (!isEmptyDir(dest)) throw new Error(`${dest} exists and is not empty: give a new folder`);
  if (path.resolve(dest).startsWith(path.resolve(storageDir) + path.sep)) throw new Error('the backup folder must not be inside storage.dir');
  fs.mkdirSync(dest, { recursive: true });

  // 1. the database, by SQLite's online backup
  const partial = path.join(dest, `${DB_FILE}.partial`);
  const src = new Database(dbPath, { fileMustExist: true });
  try {
    src.pragma('busy_timeout = 5000');
    await src.backup(partial);
  } finally {
    src.close();
  }
  const copy = new Database(partial);
  let integrity: string;
  let tables: Record<string, number>;
  try {
    integrity = String(copy.pragma('integrity_check', { simple: true }));
    tables = tableCounts(copy);
    copy.pragma('journal_mode = DELETE'); // a self-contained file: no -wal beside it
  } finally {
    copy.close();
  }
  if (integrity !== 'ok') throw new Error(`the copied database failed its integrity check: ${integrity}`);
  fs.renameSync(partial, path.join(dest, DB_FILE));

  // 2. the files
  const files = copyTree(storageDir, dest, SKIP);

  // 3. the manifest
  const manifest: BackupManifest = {
    format: 1,
    createdAt: new Date().toISOString(),
    storageDir: path.join(storageDir),
    storageDirAbsolute: path.resolve(storageDir),
    nodeVersion: nodeVersion(),
    database: { file: DB_FILE, bytes: fs.statSync(path.join(dest, DB_FILE)).size, integrity, tables },
    files: { count: files.count, bytes: files.bytes, skippedVanished: files.vanished },
  };
  fs.writeFileSync(path.join(dest, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** Put the backup in `from` into `storageDir` (the node must be stopped). */
export function restore(from: string, storageDir: string, opts: { force?: boolean; now?: Date } = {}): { manifest: BackupManifest; movedAside?: string; rewrittenPaths: number } {
  const manifestPath = path.join(from, MANIFEST);
  if (!fs.existsSync(manifestPath) || !fs.existsSync(path.join(from, DB_FILE))) {
    throw new Error(`${from} is not a backup made by this tool (no ${MANIFEST} or ${DB_FILE})`);
  }
  const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as BackupManifest;
  let movedAside: string | undefined;
  if (!isEmptyDir(storageDir)) {
    if (!opts.force) throw new Error(`${storageDir} is not empty: stop the node, then move it aside or pass --force (it is moved, not deleted)`);
    movedAside = `${storageDir.replace(/[/\\]+$/, '')}.before-restore-${(opts.now ?? new Date()).toISOString().replace(/[:.]/g, '-')}`;
    fs.renameSync(storageDir, movedAside);
  }
  fs.mkdirSync(storageDir, { recursive: true });
  copyTree(from, storageDir, new Set([MANIFEST]));

  let rewrittenPaths = 0;
  const oldPrefix = path.join(manifest.storageDir) + path.sep;
  const newPrefix = path.join(storageDir) + path.sep;
  if (oldPrefix !== newPrefix) {
    const db = new Database(path.join(storageDir, DB_FILE), { fileMustExist: true });
    try {
      const tables = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name));
      const rewrite = db.transaction(() => {
        for (const t of ['instances', 'egress_outbox']) {
          if (!tables.has(t)) continue;
          rewrittenPaths += db
            .prepare(`UPDATE ${t} SET path = ? || substr(path, ?) WHERE substr(path, 1, ?) = ?`)
            .run(newPrefix, oldPrefix.length + 1, oldPrefix.length, oldPrefix).changes;
        }
      });
      rewrite();
    } finally {
      db.close();
    }
  }
  return { manifest, movedAside, rewrittenPaths };
}

interface Args {
  dest?: string;
  restoreFrom?: string;
  config?: string;
  storage?: string;
  force: boolean;
}

function usage(msg?: string): never {
  if (msg) process.stderr.write(`${msg}\n`);
  process.stderr.write(
    'usage: npm run backup -- <dest-folder> [--config FILE] [--storage DIR]\n' +
      '       npm run backup -- --restore <backup-folder> [--config FILE] [--storage DIR] [--force]\n',
  );
  process.exit(2);
}

export function parseArgs(argv: string[]): Args {
  const a: Args = { force: false };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    const next = () => argv[++i] ?? usage(`${v} needs a value`);
    if (v === '--restore') a.restoreFrom = next();
    else if (v === '--config') a.config = next();
    else if (v === '--storage') a.storage = next();
    else if (v === '--force') a.force = true;
    else if (v === '-h' || v === '--help') usage();
    else if (v.startsWith('--')) usage(`unknown option ${v}`);
    else if (a.dest) usage('one destination folder only');
    else a.dest = v;
  }
  if (!a.dest && !a.restoreFrom) usage('no destination folder given');
  if (a.dest && a.restoreFrom) usage('either a destination or --restore, not both');
  return a;
}

function storageDirOf(a: Args): string {
  if (a.storage) return a.storage;
  return loadConfig(a.config ?? process.env.STROKE_NODE_CONFIG).config.storage.dir;
}

if (require.main === module) {
  const a = parseArgs(process.argv.slice(2));
  void (async () => {
    try {
      const dir = storageDirOf(a);
      if (a.restoreFrom) {
        const r = restore(a.restoreFrom, dir, { force: a.force });
        process.stdout.write(
          `restored ${a.restoreFrom} (taken ${r.manifest.createdAt} by ${r.manifest.nodeVersion}) into ${dir}` +
            `${r.movedAside ? `; the previous contents are in ${r.movedAside}` : ''}` +
            `${r.rewrittenPaths ? `; ${r.rewrittenPaths} stored path(s) moved from ${r.manifest.storageDir}` : ''}. Start the node now.\n`,
        );
      } else {
        const m = await backup(dir, a.dest!);
        process.stdout.write(
          `backed up ${dir} to ${a.dest}: database ${m.database.bytes} bytes (integrity ${m.database.integrity}; ` +
            `${Object.entries(m.database.tables).map(([t, n]) => `${t} ${n}`).join(', ')}), ${m.files.count} files, ${m.files.bytes} bytes\n`,
        );
      }
      process.exit(0);
    } catch (e) {
      process.stderr.write(`${e instanceof ConfigError ? '' : a.restoreFrom ? 'restore failed: ' : 'backup failed: '}${(e as Error).message}\n`);
      process.exit(1);
    }
  })();
}
