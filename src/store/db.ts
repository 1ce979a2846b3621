/**
 * The node's one SQLite database (better-sqlite3: synchronous, transactional, no server).
 * WAL + synchronous=NORMAL: a committed transaction survives a process crash; after a power loss the
 * last transactions may roll back, and the node redoes them: instance rows are rebuilt from the
 * fsynced files at start-up (InstanceStore.recover), a job rolled back to running/ready runs again.
 * (FULL would add one fsync per instance, +4 ms each, measured in bench/receive.ts, for nothing the
 * recovery does not already give.) Each module creates its own tables with `CREATE TABLE IF NOT
 * EXISTS` in its constructor; this file only opens the database.
 */
import Database from 'better-sqlite3';
import * as fs from 'fs';
import * as path from 'path';

export type Db = Database.Database;

export function openDb(storageDir: string): Db {
  fs.mkdirSync(storageDir, { recursive: true });
  const db = new Database(path.join(storageDir, 'index.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  return db;
}
