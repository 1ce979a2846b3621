/**
 * deploy/systemd: the unit starts what the build produces, with the configuration and storage
 * paths that dicom-config/example.yaml and docs/deployment.md use, hardened, and restarts on a
 * crash but not on a configuration error. `systemd-analyze verify` checks the syntax where it
 * is installed.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig } from '../../src/config/load';

const REPO = path.resolve(__dirname, '../..');
const DIR = path.join(REPO, 'deploy/systemd');

type Unit = Record<string, Record<string, string[]>>;

/** systemd's INI dialect: sections, repeated keys (kept in order), # and ; comments, "\" continuations. */
function parseUnit(text: string): Unit {
  const unit: Unit = {};
  let section = '';
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  for (const raw of lines) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1];
      unit[section] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) throw new Error(`not a key=value line: ${line}`);
    const key = line.slice(0, eq).trim();
    (unit[section][key] ??= []).push(line.slice(eq + 1).trim());
  }
  return unit;
}

const read = (f: string): Unit => parseUnit(fs.readFileSync(path.join(DIR, f), 'utf8'));
const one = (u: Unit, section: string, key: string): string => {
  const v = u[section]?.[key];
  if (!v || v.length === 0) throw new Error(`[${section}] ${key} missing`);
  return v[v.length - 1];
};
const env = (u: Unit): Record<string, string> =>
  Object.fromEntries((u.Service.Environment ?? []).flatMap((e) => e.split(/\s+/)).map((kv) => kv.split('=') as [string, string]));

/** The file tsconfig.build.json compiles a source to (outDir + path under rootDir, .ts → .js). */
function builtFrom(src: string): string {
  const base = JSON.parse(fs.readFileSync(path.join(REPO, 'tsconfig.json'), 'utf8')).compilerOptions;
  const build = JSON.parse(fs.readFileSync(path.join(REPO, 'tsconfig.build.json'), 'utf8'));
  const opts = { ...base, ...(build.compilerOptions ?? {}) };
  const include = build.include as string[];
  expect(include.some((g) => src.startsWith(g.split('*')[0]))).toBe(true);
  expect(fs.existsSync(path.join(REPO, src))).toBe(true);
  return path.join(opts.outDir, path.relative(opts.rootDir, src)).replace(/\.ts$/, '.js');
}

describe('deploy/systemd/stroke-node.service', () => {
  const u = read('stroke-node.service');
  const workDir = one(u, 'Service', 'WorkingDirectory');

  test('ExecStart runs the node entry point that the build produces, from the install folder', () => {
    const [exe, script, ...rest] = one(u, 'Service', 'ExecStart').split(/\s+/);
    expect(exe).toBe('/usr/bin/node');
    expect(rest).toEqual([]);
    expect(path.isAbsolute(script)).toBe(true);
    expect(script.startsWith(workDir + '/')).toBe(true);
    const rel = path.relative(workDir, script);
    expect(rel).toBe(builtFrom('src/main.ts'));
    // the same file npm start and package.json#main run
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
    expect(pkg.main).toBe(rel);
    expect(pkg.scripts.start).toContain(`node ${rel}`);
  });

  test('the configuration it names and the storage it may write match dicom-config/example.yaml', () => {
    const e = env(u);
    expect(e.NODE_ENV).toBe('production');
    expect(e.STROKE_NODE_CONFIG).toBe('/etc/stroke-node/node.yaml');
    // the documented way to make /etc/stroke-node/node.yaml is a copy of the example
    const { config } = loadConfig(path.join(REPO, 'dicom-config/example.yaml'));
    const stateDir = `/var/lib/${one(u, 'Service', 'StateDirectory').split(/\s+/)[0]}`;
    expect(config.storage.dir).toBe(stateDir);
    expect(one(u, 'Service', 'ReadWritePaths').split(/\s+/)).toContain(config.storage.dir);
    // relative modelsDir resolves against WorkingDirectory to the repository's models/
    const models = path.resolve(workDir, config.inference.modelsDir);
    expect(models).toBe(`${workDir}/models`);
    expect(fs.readdirSync(path.join(REPO, path.relative(workDir, models))).some((f) => f.endsWith('.json'))).toBe(true);
  });

  test('runs as its own user, restarts on failure but not on a configuration error, hardened', () => {
    expect(one(u, 'Service', 'User')).toBe('stroke-node');
    expect(one(u, 'Service', 'Group')).toBe('stroke-node');
    expect(one(u, 'Service', 'Restart')).toBe('on-failure');
    // src/main.ts exits 2 on a bad configuration
    expect(one(u, 'Service', 'RestartPreventExitStatus')).toBe('2');
    expect(fs.readFileSync(path.join(REPO, 'src/main.ts'), 'utf8')).toMatch(/ConfigError[\s\S]{0,200}process\.exit\(2\)/);
    expect(Number(one(u, 'Service', 'LimitNOFILE'))).toBeGreaterThanOrEqual(65536);
    expect(one(u, 'Service', 'KillSignal')).toBe('SIGTERM');
    expect(Number(one(u, 'Service', 'TimeoutStopSec'))).toBeGreaterThanOrEqual(60);
    for (const [k, v] of Object.entries({ ProtectSystem: 'strict', ProtectHome: 'yes', PrivateTmp: 'yes', NoNewPrivileges: 'yes', CapabilityBoundingSet: '' })) {
      expect([k, one(u, 'Service', k)]).toEqual([k, v]);
    }
    expect(u.Service.MemoryDenyWriteExecute).toBeUndefined(); // V8's JIT needs W+X pages
    expect(u.Service.User).toHaveLength(1);
    expect(one(u, 'Install', 'WantedBy')).toBe('multi-user.target');
  });

  test('the backup service runs the backup CLI the build produces, into a folder it may write', () => {
    const b = read('stroke-node-backup.service');
    expect(one(b, 'Service', 'Type')).toBe('oneshot');
    expect(one(b, 'Service', 'User')).toBe(one(u, 'Service', 'User'));
    const exec = one(b, 'Service', 'ExecStart');
    const script = /\/usr\/bin\/node (\S+)/.exec(exec)![1];
    expect(path.relative(one(b, 'Service', 'WorkingDirectory'), script)).toBe(builtFrom('src/cli/backup.ts'));
    const dest = /"([^"$]+)\//.exec(exec)![1];
    const writable = one(b, 'Service', 'ReadWritePaths').split(/\s+/);
    expect(writable).toContain(dest);
    expect(writable).toContain(loadConfig(path.join(REPO, 'dicom-config/example.yaml')).config.storage.dir);
    expect(one(b, 'Service', 'StateDirectory').split(/\s+/).map((d) => `/var/lib/${d}`)).toContain(dest);
    expect(env(b).STROKE_NODE_CONFIG).toBe(env(u).STROKE_NODE_CONFIG);
    expect(one(read('stroke-node-backup.timer'), 'Timer', 'OnCalendar')).toMatch(/\d\d:\d\d/);
  });

  test('docs/deployment.md names the same paths and the unit files', () => {
    const doc = fs.readFileSync(path.join(REPO, 'docs/deployment.md'), 'utf8');
    for (const s of [workDir, '/etc/stroke-node/node.yaml', '/var/lib/stroke-node', 'deploy/systemd/stroke-node.service', 'deploy/systemd/stroke-node-backup.timer']) {
      expect([s, doc.includes(s)]).toEqual([s, true]);
    }
  });

  const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  (analyze.status === 0 ? test : test.skip)('systemd-analyze verify finds nothing to say', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'units-'));
    try {
      const files = fs.readdirSync(DIR).filter((f) => /\.(service|timer)$/.test(f));
      for (const f of files) fs.copyFileSync(path.join(DIR, f), path.join(tmp, f));
      const r = spawnSync('systemd-analyze', ['verify', ...files.map((f) => `./${f}`)], { cwd: tmp, encoding: 'utf8' });
      expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
      expect(r.status).toBe(0);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
