/**
 * `npm start` / `npm run send` / `npm run bench` build dist/ only when it is out of date
 * (src/cli/ensure-built.js). Run on a small throw-away project with the repository's TypeScript:
 * the first call builds, the next one does not, and an edited, added or deleted source, a changed
 * tsconfig or a failed build each make the next call build again; other files do not.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const REPO = path.resolve(__dirname, '../..');
const SCRIPT = path.join(REPO, 'src/cli/ensure-built.js');

function project(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ensure-built-'));
  fs.mkdirSync(path.join(dir, 'src/cli'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'extra'));
  fs.copyFileSync(SCRIPT, path.join(dir, 'src/cli/ensure-built.js'));
  fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'commonjs', strict: true, outDir: 'dist', rootDir: '.', types: [] }, include: ['src/**/*.ts'] }),
  );
  fs.writeFileSync(path.join(dir, 'tsconfig.build.json'), JSON.stringify({ extends: './tsconfig.json', include: ['src/**/*.ts', 'extra/**/*.ts'] }));
  fs.writeFileSync(path.join(dir, 'src/a.ts'), 'export const a: number = 1;\n');
  return dir;
}

function run(dir: string, ...args: string[]): { status: number | null; stderr: string; ms: number } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [path.join(dir, 'src/cli/ensure-built.js'), ...args], { cwd: dir, encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr + r.stdout, ms: Date.now() - t0 };
}

const later = () => new Promise((r) => setTimeout(r, 30)); // mtimes after the stamp, whatever the clock granularity

describe('ensure-built: dist/ is built once, then only when its sources change', () => {
  let dir: string;
  beforeAll(() => {
    dir = project();
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('first call builds; the next one does not', () => {
    expect(run(dir, '--check')).toMatchObject({ status: 1, stderr: expect.stringContaining('never built') });
    const first = run(dir);
    expect(first.status).toBe(0);
    expect(first.stderr).toMatch(/building dist\/ \(never built/);
    const out = path.join(dir, 'dist/src/a.js');
    expect(fs.existsSync(out)).toBe(true);
    const builtAt = fs.statSync(out).mtimeMs;

    const second = run(dir);
    expect(second).toMatchObject({ status: 0, stderr: '' });
    expect(fs.statSync(out).mtimeMs).toBe(builtAt); // nothing recompiled
    expect(run(dir, '--check')).toMatchObject({ status: 0, stderr: 'fresh\n' });
  });

  test('an edited, an added and a deleted source each make the next call build', async () => {
    await later();
    fs.writeFileSync(path.join(dir, 'src/a.ts'), 'export const a: number = 2;\n');
    expect(run(dir).stderr).toMatch(/building dist\/ \(src\/a\.ts changed/);
    expect(fs.readFileSync(path.join(dir, 'dist/src/a.js'), 'utf8')).toContain('= 2');
    expect(run(dir).stderr).toBe('');

    await later();
    fs.writeFileSync(path.join(dir, 'extra/b.ts'), 'export const b = 1;\n');
    expect(run(dir).stderr).toMatch(/building dist\/ \(extra\/b\.ts changed/);
    expect(fs.existsSync(path.join(dir, 'dist/extra/b.js'))).toBe(true);

    await later();
    fs.rmSync(path.join(dir, 'extra/b.ts'));
    expect(run(dir, '--check').stderr).toMatch(/stale: a source file was added, renamed or deleted/);
  });

  test('files other than .ts (a README, a report a run writes) do not make it build', async () => {
    fs.writeFileSync(path.join(dir, 'extra/c.ts'), 'export const c = 1;\n');
    expect(run(dir).status).toBe(0);
    await later();
    fs.writeFileSync(path.join(dir, 'src/README.md'), 'notes\n');
    fs.mkdirSync(path.join(dir, 'extra/reports'));
    fs.writeFileSync(path.join(dir, 'extra/reports/latest.json'), '{}\n');
    expect(run(dir, '--check')).toMatchObject({ status: 0, stderr: 'fresh\n' });
  });

  test('a changed tsconfig makes the next call build', async () => {
    await later();
    fs.writeFileSync(path.join(dir, 'tsconfig.build.json'), JSON.stringify({ extends: './tsconfig.json', include: ['src/**/*.ts'] }));
    expect(run(dir, '--check').stderr).toMatch(/stale: tsconfig.build.json changed/);
  });

  test('a failed build exits non-zero and is retried on the next call; --force always builds', async () => {
    await later();
    fs.writeFileSync(path.join(dir, 'src/a.ts'), "export const a: number = 'not a number';\n");
    const failed = run(dir);
    expect(failed.status).not.toBe(0);
    expect(failed.stderr).toMatch(/TS2322/);
    expect(run(dir, '--check').status).toBe(1); // no stamp for a failed build
    fs.writeFileSync(path.join(dir, 'src/a.ts'), 'export const a: number = 3;\n');
    expect(run(dir).status).toBe(0);
    expect(run(dir, '--check').stderr).toBe('fresh\n');
    const forced = run(dir, '--force');
    expect(forced.status).toBe(0);
    expect(run(dir, '--check').stderr).toBe('fresh\n');
  });

  test('npm start, send and bench go through it; npm run build always builds', () => {
    const scripts = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')).scripts as Record<string, string>;
    expect(scripts.send).toBe('node src/cli/ensure-built.js && node dist/src/cli/send.js');
    expect(scripts.start).toBe('node src/cli/ensure-built.js && node dist/src/main.js');
    expect(scripts.bench).toBe('node src/cli/ensure-built.js && node dist/bench/run.js');
    expect(scripts.backup).toBe('node src/cli/ensure-built.js && node dist/src/cli/backup.js');
    expect(scripts.build).toBe('node src/cli/ensure-built.js --force');
    // the entry points they run are what the build config compiles
    const include = JSON.parse(fs.readFileSync(path.join(REPO, 'tsconfig.build.json'), 'utf8')).include as string[];
    for (const f of ['src/main.ts', 'src/cli/send.ts', 'src/cli/backup.ts', 'bench/run.ts']) {
      expect(fs.existsSync(path.join(REPO, f))).toBe(true);
      expect(include.some((g) => f.startsWith(g.split('*')[0]))).toBe(true);
    }
  });
});
