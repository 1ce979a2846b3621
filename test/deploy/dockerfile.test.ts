/**
 * The Dockerfile cannot be built here (no container registry is reachable from these machines), so
 * it is linted: its instructions are parsed and checked for what hadolint and a hospital's image
 * review would look at (pinned base, npm ci from the lockfile, no dev dependencies and no compiler
 * at run time, non-root USER, no ADD of URLs, apt lists removed, a HEALTHCHECK), and for agreement
 * with the node: the entry point the build produces, the storage volume of its default
 * configuration, the ports, and files that exist in the repository and pass .dockerignore.
 */
import * as fs from 'fs';
import * as path from 'path';
import YAML from 'yaml';
import { parseConfig } from '../../src/config/load';

const REPO = path.resolve(__dirname, '../..');

interface Instr {
  op: string;
  args: string;
  line: number;
}

/** Dockerfile instructions: comments dropped, "\" continuations joined. */
function parseDockerfile(text: string): Instr[] {
  const out: Instr[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let l = lines[i];
    if (/^\s*(#|$)/.test(l)) continue;
    while (/\\\s*$/.test(l) && i + 1 < lines.length) {
      i++;
      if (/^\s*#/.test(lines[i])) continue;
      l = l.replace(/\\\s*$/, ' ') + lines[i].trim();
    }
    const m = /^\s*(\w+)\s+([\s\S]*)$/.exec(l);
    if (!m) throw new Error(`line ${start + 1}: not an instruction: ${l}`);
    out.push({ op: m[1].toUpperCase(), args: m[2].trim(), line: start + 1 });
  }
  return out;
}

const text = fs.readFileSync(path.join(REPO, 'Dockerfile'), 'utf8');
const all = parseDockerfile(text);
/** Stages by name (FROM … AS name); global ARGs before the first FROM. */
const stages = new Map<string, Instr[]>();
const globalArgs = new Map<string, string>();
let current: Instr[] | undefined;
for (const ins of all) {
  if (ins.op === 'FROM') {
    const name = /\bAS\s+(\S+)/i.exec(ins.args)?.[1] ?? `stage${stages.size}`;
    current = [ins];
    stages.set(name, current);
  } else if (current) current.push(ins);
  else if (ins.op === 'ARG') {
    const [k, v] = ins.args.split('=');
    globalArgs.set(k, v ?? '');
  }
}
const final = [...stages.values()].at(-1)!;
const ops = (st: Instr[], op: string) => st.filter((i) => i.op === op);
const image = (from: Instr) => from.args.split(/\s+/)[0].replace(/^\$\{(\w+)\}$/, (_, k: string) => globalArgs.get(k) ?? '');

describe('Dockerfile (linted: it cannot be built without a container registry)', () => {
  test('only known instructions; base images pinned to Node 20 and a Debian release, never latest', () => {
    const known = new Set(['FROM', 'ARG', 'ENV', 'RUN', 'COPY', 'WORKDIR', 'LABEL', 'USER', 'VOLUME', 'EXPOSE', 'HEALTHCHECK', 'STOPSIGNAL', 'CMD']);
    expect(all.filter((i) => !known.has(i.op)).map((i) => `${i.line}: ${i.op}`)).toEqual([]);
    expect(stages.size).toBeGreaterThanOrEqual(2);
    for (const st of stages.values()) {
      const from = image(st[0]);
      expect(from).toMatch(/^node:20-(bookworm|bullseye|trixie)(-slim)?$/);
    }
    expect(image(final[0])).toMatch(/-slim$/);
  });

  test('no ADD (so no URL or archive fetched at build time); npm ci from the lockfile; no dev dependencies at run time', () => {
    expect(all.filter((i) => i.op === 'ADD')).toEqual([]);
    const runs = all.filter((i) => i.op === 'RUN').map((i) => i.args);
    expect(runs.some((r) => /\bnpm install\b(?! -g)/.test(r))).toBe(false);
    expect(runs.some((r) => /\bcurl\b|\bwget\b/.test(r))).toBe(false);
    const deps = stages.get('deps')!;
    expect(ops(deps, 'RUN').some((r) => /npm ci --omit=dev/.test(r.args))).toBe(true);
    expect(ops(final, 'COPY').find((c) => /node_modules/.test(c.args))?.args).toMatch(/--from=deps/);
    // the image's npm 10 ignores allowScripts: onnxruntime-node's download is switched off explicitly
    for (const name of ['build', 'deps']) expect(ops(stages.get(name)!, 'ENV').map((e) => e.args)).toContain('ONNXRUNTIME_NODE_INSTALL=skip');
    // the stages that install copy the lockfile with package.json
    for (const name of ['build', 'deps']) {
      expect(ops(stages.get(name)!, 'COPY').find((c) => /package\.json/.test(c.args))?.args).toMatch(/package-lock\.json/);
    }
  });

  test('apt-get: no recommends, lists removed in the same layer; no compiler in the runtime stage', () => {
    for (const r of all.filter((i) => i.op === 'RUN' && /apt-get install/.test(i.args))) {
      expect(r.args).toMatch(/apt-get update/);
      expect(r.args).toMatch(/--no-install-recommends/);
      expect(r.args).toMatch(/rm -rf \/var\/lib\/apt\/lists/);
    }
    expect(ops(final, 'RUN').some((r) => /apt-get install|g\+\+|\bmake\b/.test(r.args))).toBe(false);
  });

  test('runs as a non-root user, with a HEALTHCHECK on /healthz and SIGTERM to stop', () => {
    const users = ops(final, 'USER');
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)!.args).not.toMatch(/^(root|0)(:|$)/);
    const cmdLine = ops(final, 'CMD').at(-1)!.line;
    expect(users.at(-1)!.line).toBeLessThan(cmdLine);
    const hc = ops(final, 'HEALTHCHECK');
    expect(hc).toHaveLength(1);
    expect(hc[0].args).toMatch(/--interval=\d+s/);
    const envs = ops(final, 'ENV').map((e) => e.args).join(' ');
    expect(envs).toMatch(/STROKE_NODE_HEALTHCHECK_URL=http:\/\/127\.0\.0\.1:8080\/healthz/);
    expect(ops(final, 'STOPSIGNAL')[0]?.args).toBe('SIGTERM');
  });

  test('CMD runs the entry point the build produces; volume, ports and config agree with its default configuration', () => {
    const cmd = JSON.parse(ops(final, 'CMD').at(-1)!.args) as string[];
    expect(cmd).toEqual(['node', JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')).main]);
    expect(fs.existsSync(path.join(REPO, 'src/main.ts'))).toBe(true);
    expect(ops(final, 'COPY').some((c) => /--from=build \/app\/dist \.\/dist/.test(c.args))).toBe(true);

    // the default configuration the image writes to /etc/stroke-node/node.yaml
    const writer = ops(final, 'RUN').find((r) => /\/etc\/stroke-node\/node\.yaml/.test(r.args))!;
    const yamlLines = [...writer.args.matchAll(/'([^']*)'/g)].map((m) => m[1]).filter((l) => !l.startsWith('%s') && !l.startsWith('#'));
    const config = parseConfig(YAML.parse(yamlLines.join('\n')), 'Dockerfile default');
    expect(ops(final, 'ENV').map((e) => e.args).join(' ')).toMatch(/STROKE_NODE_CONFIG=\/etc\/stroke-node\/node\.yaml/);
    const volumes = JSON.parse(ops(final, 'VOLUME')[0].args) as string[];
    expect(volumes).toContain(config.storage.dir);
    expect(volumes).toContain('/etc/stroke-node');
    expect(config.dimse.host).toBe('0.0.0.0');
    expect(config.http.host).toBe('0.0.0.0');
    const exposed = ops(final, 'EXPOSE').flatMap((e) => e.args.split(/\s+/)).map(Number);
    expect(exposed.sort()).toEqual([config.dimse.port, config.http.port].sort());
    expect(config.inference.modelsDir).toBe('/app/models');
    expect(ops(final, 'COPY').some((c) => /^models \.\/models$/.test(c.args))).toBe(true);
  });

  test('what it COPYs from the context exists and is not excluded by .dockerignore', () => {
    const ignore = fs
      .readFileSync(path.join(REPO, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const sources = all
      .filter((i) => i.op === 'COPY' && !/--from/.test(i.args))
      .flatMap((i) => i.args.split(/\s+/).filter((a) => !a.startsWith('--')).slice(0, -1));
    expect(sources.length).toBeGreaterThan(3);
    for (const s of sources) {
      expect([s, fs.existsSync(path.join(REPO, s))]).toEqual([s, true]);
      expect([s, ignore.filter((p) => s === p || s.startsWith(`${p}/`))]).toEqual([s, []]);
    }
  });
});
