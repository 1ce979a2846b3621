/** Where the shared real test data lives (never copied into the repo). */
import * as fs from 'fs';
import * as path from 'path';

export const SHARED_DATA = process.env.STROKE_SHARED_DATA ?? path.resolve(__dirname, '../../../shared/data');

/** Sorted absolute paths of the files in a folder under shared/data/dicom. */
export function dicomFiles(folder: string): string[] {
  const dir = path.join(SHARED_DATA, 'dicom', folder);
  return fs
    .readdirSync(dir)
    .filter((f) => !f.startsWith('.'))
    .sort()
    .map((f) => path.join(dir, f));
}

/** The GE head CT series (28 slices, 512x512, ~0.5 MB each): small real payloads. */
export const geHeadCt = (): string[] => dicomFiles('ge-head-ct');
