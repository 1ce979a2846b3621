/**
 * `npm run backup`: an online backup of a running node's storage.dir (SQLite online backup of the
 * index while the node holds it open in WAL mode, then the files), restored into another folder
 * where a new node starts on it with every instance, its rows pointing at the restored files.
 * The CLI runs as its own process (as an operator runs it), the node in this one.
 */
import Database from 'better-sqlite3';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs, sendFiles } from '../../src/cli/send';
import { geHeadCt } from '../harness/data';
import { startTestNode } from '../helpers/node';

const REPO = path.resolve(__dirname, '../..');

function cli(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO, 'src/cli/backup.ts'), ...args], { cwd: REPO, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function folderWith(files: string[]): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'backup-src-'));
  for (const f of files) fs.copyFileSync(f, path.join(d, path.basename(f)));
  return d;
}

describe('backup and restore of storage.dir', () => {
  const tmp: string[] = [];
  afterAll(() => tmp.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  test('backs up a live node and restores it into another folder where a node starts with every instance', async () => {
    const t = await startTestNode({}, fs.mkdtempSync(path.join(os.tmpdir(), 'backup-live-')));
    tmp.push(t.dir);
    const backupDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'backup-dest-')), 'b1');
    tmp.push(path.dirname(backupDir));
    const ct = geHeadCt();
    const first = folderWith(ct.slice(0, 4));
    const later = folderWith(ct.slice(4, 7));
    tmp.push(first, later);
    try {
      expect(await sendFiles(parseArgs([first, '--dimse', `127.0.0.1:${t.dimsePort}`]))).toMatchObject({ sent: 4, failed: [] });
      expect(t.node.store.count()).toBe(4);
      // the node holds the index open in WAL mode with rows not yet checkpointed into index.sqlite
      expect(fs.statSync(path.join(t.dir, 'index.sqlite-wal')).size).toBeGreaterThan(0);

      const b = cli(backupDir, '--storage', t.dir);
      expect(b.out).toMatch(/backed up .* database \d+ bytes \(integrity ok; .*instances 4/);
      expect(b.status).toBe(0);

      // the node goes on receiving; what arrives after the backup is not in it
      expect(await sendFiles(parseArgs([later, '--dimse', `127.0.0.1:${t.dimsePort}`]))).toMatchObject({ sent: 3 });
      expect(t.node.store.count()).toBe(7);
    } finally {
      await t.stop();
    }

    const manifest = JSON.parse(fs.readFileSync(path.join(backupDir, 'backup.json'), 'utf8'));
    expect(manifest).toMatchObject({ format: 1, storageDir: path.join(t.dir), database: { integrity: 'ok', tables: { instances: 4 } } });
    expect(manifest.files.count).toBeGreaterThanOrEqual(4);
    expect(fs.existsSync(path.join(backupDir, 'index.sqlite-wal'))).toBe(false); // self-contained
    expect(fs.existsSync(path.join(backupDir, 'tmp'))).toBe(false);

    // restore into a different folder: the stored paths follow
    const target = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'backup-restore-')), 'storage');
    tmp.push(path.dirname(target));
    const r = cli('--restore', backupDir, '--storage', target);
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/restored .* 4 stored path\(s\) moved/);
    const db = new Database(path.join(target, 'index.sqlite'), { readonly: true });
    const rows = db.prepare('SELECT path, study_uid AS studyUid FROM instances').all() as { path: string; studyUid: string }[];
    db.close();
    expect(rows).toHaveLength(4);
    for (const row of rows) {
      expect(row.path.startsWith(path.join(target) + path.sep)).toBe(true);
      expect(fs.existsSync(row.path)).toBe(true);
    }

    // a node on the restored folder has the four instances (none dropped, none re-indexed)
    const t2 = await startTestNode({}, target);
    try {
      expect(t2.node.store.count()).toBe(4);
      const listed = t2.node.store.listStudy(rows[0].studyUid);
      expect(listed.map((x) => x.path).sort()).toEqual(rows.map((x) => x.path).sort());
    } finally {
      await t2.stop();
    }

    // restore refuses a non-empty storage.dir unless --force, which moves it aside
    const refused = cli('--restore', backupDir, '--storage', target);
    expect(refused.status).toBe(1);
    expect(refused.out).toMatch(/not empty/);
    const forced = cli('--restore', backupDir, '--storage', target, '--force');
    expect(forced.status).toBe(0);
    expect(forced.out).toMatch(/previous contents are in .*storage\.before-restore-/);
    expect(fs.readdirSync(path.dirname(target)).filter((n) => n.startsWith('storage.before-restore-'))).toHaveLength(1);
  });

  test('refuses a destination that is not empty, and a storage.dir without an index', () => {
    const storage = fs.mkdtempSync(path.join(os.tmpdir(), 'backup-empty-'));
    tmp.push(storage);
    expect(cli(path.join(storage, 'x'), '--storage', storage).out).toMatch(/no index.sqlite/);
    fs.writeFileSync(path.join(storage, 'index.sqlite'), '');
    const dest = fs.mkdtempSync(path.join(os.tmpdir(), 'backup-full-'));
    tmp.push(dest);
    fs.writeFileSync(path.join(dest, 'something'), 'x');
    const r = cli(dest, '--storage', storage);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/not empty/);
    expect(cli().status).toBe(2);
  });
});
