/**
 * Runs dciodvfy (Debian dicom3tools) on a Part 10 object and parses its report: lines starting with
 * "Error" are errors (a test fails on any), "Warning" lines are returned for reporting.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/**
 * Standard attributes newer than the dictionary of the installed dicom3tools (Debian 1.00~20220618):
 * dciodvfy reports them as "not a recognized standard attribute" errors. Only that exact message for
 * these tags is set aside (reported in `dictionaryGaps`, never silently dropped); every other error
 * on them still fails.
 *  - (0008,001C) Synthetic Data (CS, General Image module), added by CP-2083 (2021); DESIGN.md requires
 *    it on the synthetic DWI, and dcmjs's dictionary has it.
 */
export const DICTIONARY_GAPS = ['(0x0008,0x001c)'];

export interface DciodvfyReport {
  /** Errors set aside because dciodvfy's dictionary predates the attribute (see DICTIONARY_GAPS). */
  dictionaryGaps: string[];
  errors: string[];
  warnings: string[];
  /** The IOD name dciodvfy recognised (the first non-message line), e.g. "Segmentation". */
  iod?: string;
  raw: string;
}

export const DCIODVFY = process.env.DCIODVFY ?? '/usr/bin/dciodvfy';

export function dciodvfyAvailable(): boolean {
  try {
    execFileSync(DCIODVFY, ['-help'], { stdio: 'ignore' });
    return true;
  } catch {
    return fs.existsSync(DCIODVFY);
  }
}

export function parseDciodvfy(raw: string): DciodvfyReport {
  const errors: string[] = [];
  const warnings: string[] = [];
  const dictionaryGaps: string[] = [];
  let iod: string | undefined;
  for (const line of raw.split(/\r?\n/)) {
    const l = line.trim();
    if (!l) continue;
    const gap = DICTIONARY_GAPS.some((t) => l.toLowerCase().includes(`not a recognized standard attribute - ${t}`));
    if (/^Error\b/.test(l) && gap) dictionaryGaps.push(l);
    else if (/^Error\b/.test(l)) errors.push(l);
    else if (/^Warning\b/.test(l)) warnings.push(l);
    else if (!iod && /^[A-Za-z][A-Za-z0-9]*$/.test(l)) iod = l;
  }
  return { errors, warnings, dictionaryGaps, iod, raw };
}

/** Validate a Part 10 buffer. */
export function dciodvfy(part10: Buffer): DciodvfyReport {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dciodvfy-'));
  const file = path.join(dir, 'obj.dcm');
  try {
    fs.writeFileSync(file, part10);
    const r = spawnSync(DCIODVFY, [file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (r.error) throw r.error;
    const report = parseDciodvfy(`${r.stdout ?? ''}\n${r.stderr ?? ''}`);
    if (!report.iod && report.errors.length === 0) {
      report.errors.push(`dciodvfy produced no recognisable report (exit ${r.status})`);
    }
    return report;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
