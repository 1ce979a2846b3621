import * as fs from 'fs';
import * as path from 'path';
import YAML from 'yaml';
import { ZodError } from 'zod';
import { Config, ConfigSchema } from './schema';

export class ConfigError extends Error {}

/**
 * The embedded default configuration (`npm start` with no file): loopback only, local store in
 * ./var, no destination, no external service. Any calling AE is accepted because only processes
 * on this machine can reach 127.0.0.1; a deployment lists its peers in dimse.allowedPeers.
 */
export const EMBEDDED_DEFAULTS = { dimse: { allowAnyCaller: true } } as const;

/** Turn zod issues into one line per bad key, naming the key ("dimse.port: Expected number"). */
export function formatConfigError(err: ZodError, source: string): string {
  const lines = err.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
  return `invalid configuration in ${source}:\n${lines.join('\n')}`;
}

export function parseConfig(raw: unknown, source = 'config'): Config {
  const r = ConfigSchema.safeParse(raw ?? {});
  if (!r.success) throw new ConfigError(formatConfigError(r.error, source));
  return r.data;
}

/**
 * Load the configuration: STROKE_NODE_CONFIG (a JSON or YAML file) if set, else
 * dicom-config/node.yaml if present, else the embedded defaults (no external service needed).
 * Relative storage/model paths are resolved against the process working directory.
 */
export function loadConfig(file = process.env.STROKE_NODE_CONFIG): { config: Config; source: string } {
  let candidate = file;
  if (!candidate) {
    const def = path.resolve('dicom-config', 'node.yaml');
    if (fs.existsSync(def)) candidate = def;
  }
  if (!candidate) return { config: parseConfig(EMBEDDED_DEFAULTS, 'embedded defaults'), source: 'embedded defaults' };
  let text: string;
  try {
    text = fs.readFileSync(candidate, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read configuration file ${candidate}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = candidate.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
  } catch (e) {
    throw new ConfigError(`configuration file ${candidate} is not valid ${candidate.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`);
  }
  return { config: parseConfig(raw, candidate), source: candidate };
}
