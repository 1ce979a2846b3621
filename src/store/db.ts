/**
 * The node's one SQLite database (better-sqlite3: synchronous, transactional, no server).
 * WAL + synchronous=FULL: a committed row survives power loss, so an instance is acknowledged only
 * after its row commits. Each module creates its own tables with `CREATE TABLE IF NOT EXISTS`
 * in its constructor; this file only opens the database.
 */
import Database from 'better-sqlite3';
import * as fs from 'fs';
import * as path from 'path';

export type Db = Database.Database;

export function openDb(storageDir: string): Db {
  fs.mkdirSync(storageDir, { recursive: true });
  const db = new Database(path.join(storageDir, 'index.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  return db;
}
