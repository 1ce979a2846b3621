/**
 * The structural check every received instance passes before it is acknowledged (src/dicom/validate.ts):
 * real files from four vendors and pydicom's corpus pass; truncation at every offset, hostile
 * nesting, impossible lengths and trailing garbage are refused quickly, with a readable reason.
 */
import * as fs from 'fs';
import * as path from 'path';
import { InstanceValidator, validateFile } from '../../src/dicom/validate';
import { dicomFiles, SHARED_DATA } from '../harness/data';
import { el, imageFile, nestedSequences, part10, seqDefined, SECONDARY_CAPTURE, newUid } from '../helpers/dicom-bytes';

const PYDICOM = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

function check(buf: Buffer, chunk = 997, limits?: ConstructorParameters<typeof InstanceValidator>[0]) {
  const v = new InstanceValidator(limits);
  for (let o = 0; o < buf.length; o += chunk) v.push(buf.subarray(o, o + chunk));
  return v.end();
}

const walk = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));

function isPart10(f: string): boolean {
  const b = Buffer.alloc(132);
  const fd = fs.openSync(f, 'r');
  const n = fs.readSync(fd, b, 0, 132, 0);
  fs.closeSync(fd);
  return n === 132 && b.toString('latin1', 128, 132) === 'DICM';
}

describe('InstanceValidator', () => {
  test('accepts every real vendor file in shared/data (Siemens enhanced, GE, Philips, 7 transfer syntaxes, SEG)', () => {
    const files = [path.join(SHARED_DATA, 'dicom'), path.join(SHARED_DATA, 'seg-examples')].flatMap(walk).filter(isPart10);
    expect(files.length).toBeGreaterThan(300);
    const bad = files.map((f) => [f, validateFile(f)] as const).filter(([, r]) => !r.ok);
    expect(bad).toEqual([]);
  });

  test("pydicom's corpus: the valid files pass (big endian, deflated, JPEG, RLE, YBR 4:2:2), the known-broken ones are named", () => {
    if (!fs.existsSync(PYDICOM)) return; // python3-pydicom comes with .ci/deps.sh
    const refused = walk(PYDICOM)
      .filter(isPart10)
      .map((f) => [path.relative(PYDICOM, f), validateFile(f)] as const)
      .filter(([, r]) => !r.ok)
      .map(([f, r]) => `${f}: ${(r as { error: string }).error}`);
    // pydicom's DICOMDIR test images had their pixel data stripped: images without pixels are refused
    const stripped = refused.filter((r) => r.startsWith('dicomdirtests/TINY_ALPHA/'));
    expect(stripped.length).toBeGreaterThan(10);
    for (const r of stripped) expect(r).toMatch(/an image without PixelData/);
    // each of the others is broken on purpose in pydicom's test data
    expect(refused.filter((r) => !stripped.includes(r)).map((r) => r.split(':')[0]).sort()).toEqual(
      ['MR_truncated.dcm', 'SC_rgb_jpeg.dcm', 'dicomdirtests/DICOMDIR-nooffset', 'meta_missing_tsyntax.dcm', 'nested_priv_SQ.dcm', 'rtplan_truncated.dcm'].sort(),
    );
    expect(refused.find((r) => r.startsWith('MR_truncated'))).toMatch(/truncated: element \(7FE0,0010\)/);
  });

  test('an image cut at any byte is refused (never a partial instance acknowledged)', () => {
    const files = [...dicomFiles('ge-head-ct').slice(0, 1), ...dicomFiles('transfer-syntaxes').slice(0, 3)];
    if (fs.existsSync(PYDICOM)) files.push(path.join(PYDICOM, 'MR_small.dcm'), path.join(PYDICOM, 'ExplVR_BigEnd.dcm'), path.join(PYDICOM, 'JPEG2000.dcm'));
    for (const f of files) {
      const buf = fs.readFileSync(f);
      expect(check(buf).ok).toBe(true);
      const step = Math.max(1, Math.floor(buf.length / 400));
      const accepted: number[] = [];
      for (let n = 0; n < buf.length; n += step) if (check(buf.subarray(0, n), 113).ok) accepted.push(n);
      // A cut before the UIDs can look complete; the store refuses those ("missing required attribute(s)").
      const header = fs.readFileSync(f).indexOf(Buffer.from([0x20, 0x00, 0x0e, 0x00]));
      expect({ file: path.basename(f), acceptedAfterUids: accepted.filter((n) => n > header) }).toEqual({ file: path.basename(f), acceptedAfterUids: [] });
    }
  });

  test('20,000 nested sequences are refused at the depth limit, in milliseconds', () => {
    const { dataset, ...m } = imageFile();
    const bomb = Buffer.concat([dataset.subarray(0, 0), nestedSequences(20000)]);
    const file = part10(Buffer.concat([el(0x00080016, 'UI', m.sopClassUid), el(0x00080018, 'UI', m.sopInstanceUid), bomb, dataset]), m);
    const t0 = process.hrtime.bigint();
    const r = check(file, 65536);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    expect(r).toEqual({ ok: false, error: 'sequences nested deeper than limits.maxSequenceDepth (32)' });
    expect(ms).toBeLessThan(200);
    // 10 levels (deeper than any real object) pass
    const ok = imageFile({ beforeUids: [nestedSequences(10)] });
    expect(check(ok.file).ok).toBe(true);
  });

  test('impossible lengths: PixelData declaring 0xFFFFFFF0 bytes, or fewer than Rows × Columns needs', () => {
    const huge = imageFile({ pixelLength: 0xfffffff0 });
    expect(check(huge.file)).toEqual({ ok: false, error: expect.stringMatching(/^truncated: element \(7FE0,0010\) ends at byte \d+, the file at byte \d+$/) });
    const short = imageFile({ rows: 16, columns: 16, pixels: Buffer.alloc(100) });
    expect(check(short.file)).toEqual({ ok: false, error: expect.stringContaining('PixelData has 100 bytes') });
    // an element longer than the item around it
    const inner = Buffer.concat([el(0x00081150, 'UI', SECONDARY_CAPTURE), el(0x00081155, 'UI', newUid())]);
    const seq = seqDefined(0x00081140, [inner]);
    seq.writeUInt32LE(inner.length + 8 - 4, 8); // the sequence claims 4 bytes less than its item needs
    const lying = imageFile({ beforeUids: [seq] });
    expect(check(lying.file)).toEqual({ ok: false, error: expect.stringMatching(/runs past the end/) });
  });

  test('garbage after a valid data set (zeros, random bytes) is refused at its first byte', () => {
    const { file } = imageFile();
    const zeros = check(Buffer.concat([file, Buffer.alloc(4 << 20)]), 65536);
    expect(zeros).toEqual({ ok: false, error: expect.stringMatching(/element \(0000,0000\) at byte \d+ cannot be in a data set/) });
    // a single NUL pad byte at the end is tolerated (seen in real files)
    expect(check(Buffer.concat([file, Buffer.alloc(1)])).ok).toBe(true);
    const v = new InstanceValidator();
    expect(v.push(file)).toBe(true);
    expect(v.push(Buffer.from('GARBAGE!GARBAGE!'))).toBe(false);
    expect(v.error).toMatch(/invalid VR/);
  });

  test('limits: instance size and element count', () => {
    const { file } = imageFile({ rows: 64, columns: 64 });
    expect(check(file, 997, { maxInstanceBytes: 4096, maxSequenceDepth: 32, maxElements: 1000 })).toEqual({
      ok: false,
      error: 'instance larger than limits.maxInstanceMb (0 MB)',
    });
    const many = imageFile({ beforeUids: [seqDefined(0x00081140, Array.from({ length: 2000 }, () => el(0x00081155, 'UI', '1.2.3')))] });
    expect(check(many.file, 997, { maxInstanceBytes: 1 << 30, maxSequenceDepth: 32, maxElements: 3000 })).toEqual({
      ok: false,
      error: 'more than limits.maxElements (3000) data elements',
    });
    expect(check(many.file).ok).toBe(true);
  });

  test('headerBytes reaches past a 1 MB private element before the series UID', () => {
    const big = imageFile({ beforeUids: [el(0x00091010, 'OB', Buffer.alloc(1_100_000, 1))] });
    const r = check(big.file, 65536);
    expect(r.ok).toBe(true);
    const series = big.file.indexOf(Buffer.from(big.seriesUid, 'latin1'));
    expect((r as { headerBytes: number }).headerBytes).toBeGreaterThan(series);
    expect((r as { headerBytes: number }).headerBytes).toBeLessThan(big.file.length - 16 * 16 * 2);
  });

  test('a non-DICOM body and a missing transfer syntax get readable reasons', () => {
    expect(check(Buffer.from('hello, this is not DICOM'))).toEqual({ ok: false, error: expect.stringMatching(/^not a readable DICOM Part 10 file/) });
    const noMeta = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), imageFile().dataset]);
    expect(check(noMeta)).toEqual({ ok: false, error: 'file meta information has no TransferSyntaxUID (0002,0010)' });
  });
});
