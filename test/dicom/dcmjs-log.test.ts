/**
 * dcmjs's own output (loglevel child loggers and direct console calls) goes into the JSON log as
 * printable text, never raw attacker bytes on the console (issue 18, minor).
 */
import * as fs from 'fs';
import * as path from 'path';
import { PassThrough } from 'stream';
import winston from 'winston';
import { readPart10 } from '../../src/dicom/dcmjs';
import { log } from '../../src/util/log';

const PYDICOM = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

test('dcmjs messages become JSON log lines with printable text only; nothing reaches the console', () => {
  if (!fs.existsSync(PYDICOM)) return; // python3-pydicom comes with .ci/deps.sh
  const sink = new PassThrough();
  const lines: string[] = [];
  sink.on('data', (c: Buffer) => lines.push(...c.toString('utf8').split('\n').filter(Boolean)));
  const transport = new winston.transports.Stream({ stream: sink, level: 'debug' });
  const wasSilent = log.silent;
  const wasLevel = log.level;
  const others = log.transports.map((t) => [t, t.silent] as const);
  for (const [t] of others) t.silent = true;
  log.silent = false;
  log.level = 'debug';
  log.add(transport);
  const spies = (['log', 'info', 'warn', 'error'] as const).map((m) => jest.spyOn(console, m).mockImplementation(() => undefined));
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    // files with invalid VR bytes and lengths past their end make dcmjs complain
    for (const f of ['SC_rgb_jpeg.dcm', 'MR_truncated.dcm', 'nested_priv_SQ.dcm', 'rtplan_truncated.dcm']) {
      try {
        readPart10(fs.readFileSync(path.join(PYDICOM, f)));
      } catch {
        /* refused is fine: what it printed is the point */
      }
    }
  } finally {
    log.remove(transport);
    for (const [t, was] of others) t.silent = was;
    log.silent = wasSilent;
    log.level = wasLevel;
    for (const s of spies) expect(s).not.toHaveBeenCalled();
    stderr.mockRestore();
    for (const s of spies) s.mockRestore();
  }
  const dcmjsLines = lines.map((l) => JSON.parse(l) as Record<string, string>).filter((l) => l.event === 'dcmjs.message');
  expect(dcmjsLines.length).toBeGreaterThan(0);
  for (const l of dcmjsLines) expect(l.text).toMatch(/^[\x20-\x7e]+$/);
  expect(dcmjsLines.map((l) => l.text).join('\n')).toMatch(/Invalid vr type|declares/);
});
