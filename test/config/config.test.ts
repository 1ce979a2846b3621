/**
 * Configuration: the embedded defaults run with no external service; a bad key stops the node
 * with a message naming the key.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { ConfigError, EMBEDDED_DEFAULTS, loadConfig, parseConfig } from '../../src/config/load';

describe('configuration', () => {
  test('embedded defaults: loopback, local store, no destination, a default route', () => {
    const c = parseConfig(EMBEDDED_DEFAULTS);
    expect(c.dimse.host).toBe('127.0.0.1');
    expect(c.dimse.port).toBeGreaterThan(1024);
    expect(c.http.port).toBeGreaterThan(1024);
    expect(c.destinations).toEqual([]);
    expect(c.routes.map((r) => r.name)).toEqual(['default']);
    expect(c.admin.token).toBeUndefined();
  });

  test('errors name the bad key', () => {
    expect(() => parseConfig({ dimse: { port: 'eleven' } })).toThrow(/dimse\.port/);
    expect(() => parseConfig({ dimse: { aeTitle: 'THIS-AE-TITLE-IS-TOO-LONG' } })).toThrow(/dimse\.aeTitle/);
    expect(() => parseConfig({ nonsense: 1 })).toThrow(/nonsense/);
    expect(() => parseConfig({ routes: [{ name: 'r', destinations: ['PACS'] }] })).toThrow(/routes\.0\.destinations\.0: unknown destination "PACS"/);
    expect(() => parseConfig({ destinations: [{ name: 'p', type: 'dimse', host: 'h', port: 104 }] })).toThrow(/destinations\.0\.calledAeTitle/);
    // split roles only make sense on the shared queue
    expect(() => parseConfig({ roles: ['worker'] })).toThrow(/roles: \[worker\] needs the shared queue \(queue\.backend: redis\)/);
    expect(parseConfig({ roles: ['receiver', 'worker', 'sender'] }).roles).toHaveLength(3);
    expect(parseConfig({ roles: ['sender'], queue: { backend: 'redis' } }).roles).toEqual(['sender']);
  });

  test('YAML file from STROKE_NODE_CONFIG; unreadable or invalid files give a ConfigError', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
    const good = path.join(dir, 'node.yaml');
    fs.writeFileSync(good, 'nodeName: ward-7\ndimse:\n  port: 4242\n  allowedPeers:\n    - aeTitle: CT01\n      host: 10.0.0.5\n');
    const { config } = loadConfig(good);
    expect(config.nodeName).toBe('ward-7');
    expect(config.dimse.allowedPeers).toEqual([{ aeTitle: 'CT01', host: '10.0.0.5' }]);
    expect(() => loadConfig(path.join(dir, 'missing.yaml'))).toThrow(ConfigError);
    fs.writeFileSync(path.join(dir, 'bad.yaml'), 'dimse: [unclosed');
    expect(() => loadConfig(path.join(dir, 'bad.yaml'))).toThrow(/not valid YAML/);
  });

  test('the node refuses to start on a bad configuration, naming the key (exit code 2)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
    const bad = path.join(dir, 'node.json');
    fs.writeFileSync(bad, JSON.stringify({ storage: { minFreeMb: -5 } }));
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.resolve(__dirname, '../../src/main.ts')], {
      env: { ...process.env, STROKE_NODE_CONFIG: bad },
      encoding: 'utf8',
      timeout: 60000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/storage\.minFreeMb/);
  });
});
