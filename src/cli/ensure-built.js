#!/usr/bin/env node
/**
 * Builds dist/ with `tsc -p tsconfig.build.json` only when it is out of date, so `npm start`,
 * `npm run send` and `npm run bench` do not recompile the whole tree on every call (~6 s here).
 *
 * Plain JavaScript on purpose: it is what decides whether the TypeScript needs compiling.
 *
 * Out of date means: no stamp (dist/.build-stamp, written after a build that succeeded), or a
 * file or folder under the build's inputs newer than the stamp. The inputs are the static
 * prefixes of tsconfig.build.json's "include" globs (src, bench, test/harness, test/helpers) plus
 * tsconfig.json and tsconfig.build.json; a folder's own mtime changes when a file is added,
 * renamed or deleted in it, so those are seen too. The stamp carries the time the build *started*,
 * so a file saved during a build makes the next call build again.
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

const STAMP = path.join('dist', '.build-stamp');
const CONFIG = 'tsconfig.build.json';

/** The folders and files whose changes require a rebuild, relative to root. */
function buildInputs(root) {
  const cfg = JSON.parse(fs.readFileSync(path.join(root, CONFIG), 'utf8'));
  const roots = new Set(['tsconfig.json', CONFIG]);
  for (const glob of cfg.include || []) {
    // static prefix of the glob: the path segments before the first one with a wildcard
    const parts = [];
    for (const seg of glob.split('/')) {
      if (/[*?[{]/.test(seg)) break;
      parts.push(seg);
    }
    if (parts.length) roots.add(parts.join('/'));
  }
  return [...roots];
}

/** The newest mtime (ms) under p (p itself included); 0 when p does not exist. */
function newestMtime(p, skip) {
  let st;
  try {
    st = fs.statSync(p);
  } catch {
    return 0;
  }
  let newest = st.mtimeMs;
  if (st.isDirectory()) {
    for (const e of fs.readdirSync(p)) {
      if (e === 'node_modules' || e.startsWith('.')) continue;
      const child = path.join(p, e);
      if (skip(child)) continue;
      newest = Math.max(newest, newestMtime(child, skip));
    }
  }
  return newest;
}

/** null when dist/ is up to date, else why it is not. */
function staleReason(root) {
  const stamp = path.join(root, STAMP);
  let built;
  try {
    built = Number(fs.readFileSync(stamp, 'utf8').trim());
  } catch {
    return 'never built (no dist/.build-stamp)';
  }
  if (!Number.isFinite(built)) return 'unreadable dist/.build-stamp';
  const dist = path.join(root, 'dist');
  for (const input of buildInputs(root)) {
    const t = newestMtime(path.join(root, input), (p) => p === dist);
    if (t > built) return `${input} changed since the last build`;
  }
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
  const r = spawnSync(process.execPath, [tsc, '-p', CONFIG], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) return r.status === null ? 1 : r.status;
  fs.mkdirSync(path.join(root, 'dist'), { recursive: true });
  fs.writeFileSync(path.join(root, STAMP), `${started}\n`);
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

module.exports = { buildInputs, staleReason, build, run };

if (require.main === module) {
  const root = path.resolve(__dirname, '..', '..');
  process.exitCode = run(process.argv.slice(2), root, (m) => process.stderr.write(`${m}\n`));
}
