#!/usr/bin/env node
/**
 * Entry point: `npm start`. Loads and validates the configuration (a bad key stops the node with a
 * message naming it), then starts the node. Handles SIGINT/SIGTERM with a clean shutdown.
 */
import { ConfigError, loadConfig } from './config/load';
import { buildNode } from './wiring';
import { log, setLogLevel } from './util/log';

async function main(): Promise<void> {
  let loaded;
  try {
    loaded = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  setLogLevel(loaded.config.logLevel);
  log.info('configuration loaded', { event: 'config.loaded', source: loaded.source });
  let node: Awaited<ReturnType<typeof buildNode>>;
  try {
    node = await buildNode(loaded.config); // builds the senders: reads destinations' TLS files
    await node.start();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    process.stderr.write(`cannot start: ${err.code === 'EADDRINUSE' ? `port already in use (${err.message})` : err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(
    `stroke-node ready: DICOM ${loaded.config.dimse.aeTitle}@${loaded.config.dimse.host}:${node.dimsePort ?? '-'}${loaded.config.dimse.tls ? ' (TLS)' : ''}, ` +
      `HTTP ${node.httpScheme}://${loaded.config.http.host}:${node.httpPort} (STOW-RS at /dicom-web/studies, health at /healthz), ` +
      `admin page ${loaded.config.admin.token ? node.adminUrl : 'disabled (set admin.token)'}\n`,
  );
  const shutdown = async (sig: string) => {
    log.info('shutting down', { event: 'node.stop', signal: sig });
    await node.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

void main();
