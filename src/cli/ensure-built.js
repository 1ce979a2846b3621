#!/usr/bin/env node
/**
 * Builds dist/ with `tsc -p tsconfig.build.json` only when it is out of date, so `npm start`,
 * `npm run send` and `npm run bench` do not recompile the whole tree on every call (~6 s here).
 *
 * Plain JavaScript on purpose: it is what decides whether the TypeScript needs compiling.
 *
 * Out of date means: no stamp (dist/.build-stamp, written after a build that succeeded), a .ts
 * file under the build's inputs newer than the stamp, a different set of .ts files (one added,
 * renamed or deleted), or a changed tsconfig.json / tsconfig.build.json. The inputs are the static
 * prefixes of tsconfig.build.json's "include" globs (src, bench, test/harness, test/helpers); other
 * files there (READMEs, bench reports) do not count. The stamp holds the time the build *started*
 * (so a file saved during a build makes the next call build again) and a hash of the file list.
 *
 *   node src/cli/ensure-built.js            build if out of date (exit 0 when dist/ is usable)
 *   node src/cli/ensure-built.js --force    build regardless (npm run build)
 *   node src/cli/ensure-built.js --check    print "fresh" or "stale: <why>", exit 0 / 1, build nothing
 *
 * Where TypeScript is not installed (npm ci --omit=dev) an existing dist/ is used as it is.
 */
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const crypto = require('crypto');

const STAMP = path.join('dist', '.build-stamp');
const CONFIG = 'tsconfig.build.json';

/** The folders whose .ts files are compiled, and the config files, relative to root. */
function buildInputs(root) {
  const cfg = JSON.parse(fs.readFileSync(path.join(root, CONFIG), 'utf8'));
  const dirs = new Set();
  for (const glob of cfg.include || []) {
    // static prefix of the glob: the path segments before the first one with a wildcard
    const parts = [];
    for (const seg of glob.split('/')) {
      if (/[*?[{]/.test(seg)) break;
      parts.push(seg);
    }
    if (parts.length) dirs.add(parts.join('/'));
  }
  return { dirs: [...dirs], configs: ['tsconfig.json', CONFIG] };
}

/** Every .ts file under dir (relative to root) with its mtime; hidden folders and node_modules skipped. */
function tsFiles(root, dir, out) {
  let entries;
  try {
    entries = fs.readdirSync(path.join(root, dir), { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) tsFiles(root, rel, out);
    else if (e.name.endsWith('.ts')) out.push({ file: rel, mtimeMs: fs.statSync(path.join(root, rel)).mtimeMs });
  }
  return out;
}

/** The build's inputs now: the .ts files with their mtimes, and a hash of the sorted list of names. */
function snapshot(root) {
  const { dirs, configs } = buildInputs(root);
  const files = dirs.flatMap((d) => tsFiles(root, d, [])).sort((a, b) => (a.file < b.file ? -1 : 1));
  for (const c of configs) {
    try {
      files.push({ file: c, mtimeMs: fs.statSync(path.join(root, c)).mtimeMs });
    } catch {
      /* tsconfig.json may be absent */
    }
  }
  const listHash = crypto.createHash('sha256').update(files.map((f) => f.file).join('\n')).digest('hex');
  return { files, listHash };
}

/** null when dist/ is up to date, else why it is not. */
function staleReason(root) {
  let stamp;
  try {
    stamp = JSON.parse(fs.readFileSync(path.join(root, STAMP), 'utf8'));
  } catch {
    return 'never built (no dist/.build-stamp)';
  }
  if (!stamp || !Number.isFinite(stamp.started) || typeof stamp.listHash !== 'string') return 'unreadable dist/.build-stamp';
  const now = snapshot(root);
  const newer = now.files.find((f) => f.mtimeMs > stamp.started);
  if (newer) return `${newer.file} changed since the last build`;
  if (now.listHash !== stamp.listHash) return 'a source file was added, renamed or deleted since the last build';
  return null;
}

function findTsc(root) {
  try {
    return require.resolve('typescript/bin/tsc', { paths: [root, __dirname] });
  } catch {
    return null;
  }
}

/** Builds; returns tsc's exit status. The stamp is written only when tsc succeeded. */
function build(root, log) {
  const tsc = findTsc(root);
  if (!tsc) {
    log('TypeScript is not installed (npm ci --omit=dev?): cannot build dist/');
    return 1;
  }
  const started = Date.now();
  const { listHash } = snapshot(root);
  const r = spawnSync(process.execPath, [tsc, '-p', CONFIG], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) return r.status === null ? 1 : r.status;
  fs.mkdirSync(path.join(root, 'dist'), { recursive: true });
  fs.writeFileSync(path.join(root, STAMP), `${JSON.stringify({ started, listHash })}\n`);
  return 0;
}

/** What `node ensure-built.js [--force|--check]` does; returns the exit code. */
function run(argv, root, log) {
  const force = argv.includes('--force');
  const check = argv.includes('--check');
  const reason = force ? 'forced' : staleReason(root);
  if (check) {
    log(reason ? `stale: ${reason}` : 'fresh');
    return reason ? 1 : 0;
  }
  if (!reason) return 0;
  if (!force && !findTsc(root) && fs.existsSync(path.join(root, 'dist', 'src', 'main.js'))) {
    return 0; // production install without TypeScript: use the dist/ that was shipped
  }
  if (!force) log(`building dist/ (${reason})`);
  return build(root, log);
}

module.exports = { buildInputs, snapshot, staleReason, build, run };

if (require.main === module) {
  const root = path.resolve(__dirname, '..', '..');
  process.exitCode = run(process.argv.slice(2), root, (m) => process.stderr.write(`${m}\n`));
}
