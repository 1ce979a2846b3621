/**
 * JSON-lines logging (winston). Never log patient names or IDs: UIDs go through `ref()`, which
 * keeps a short, stable, non-reversible reference that still lets an operator correlate lines.
 */
import * as crypto from 'crypto';
import winston from 'winston';

export const log = winston.createLogger({
  level: process.env.STROKE_NODE_LOG_LEVEL ?? 'info',
  format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
  defaultMeta: { service: 'stroke-node' },
  transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  silent: process.env.STROKE_NODE_LOG_SILENT === '1',
});

export function setLogLevel(level: string): void {
  log.level = level;
}

/** Short anonymised reference for a UID (or any identifier): first 10 hex chars of its sha256. */
export function ref(uid: string | undefined): string {
  if (!uid) return '-';
  return crypto.createHash('sha256').update(uid).digest('hex').slice(0, 10);
}
