/**
 * Study stage on real scanner data (read from the shared data folder, never copied): GE classic
 * DWI with private b-values, GE head CT with gantry tilt and uneven spacing, one Siemens mosaic
 * series in 7 transfer syntaxes.
 */
import * as fs from 'fs';
import * as path from 'path';
import { assembleStudy, AssembledStudy } from '../../src/study';
import { readPart10 } from '../../src/dicom/dcmjs';
import { decodeFrames, locatePixelData } from '../../src/study/pixels';
import { parseCsa, privateRaw, readHeader } from '../../src/study/header';
import { loadVolume, PixelCache, stackGeometry } from '../../src/study/volume';
import { DICOM_DATA, instancesIn } from './synth';

describe('GE classic single-frame DWI (private b-values)', () => {
  let r: AssembledStudy;
  beforeAll(async () => {
    r = await assembleStudy(instancesIn(path.join(DICOM_DATA, 'ge-dwi')));
  });

  test('b0 from GE private (0043,1039), b1000 with 6 directions grouped by GE gradient tags, trace and ADC computed', () => {
    const s = r.availability.series[0];
    expect(s).toMatchObject({ classification: 'DWI', bValues: [0, 1000], usable: true, instanceCount: 63 });
    expect(s.reason).toMatch(/GE private \(0043,1039\)/);
    expect(s.reason).toMatch(/6 directions/);
    const dwi = r.volumes.DWI!;
    expect(dwi.computed).toBe(true);
    expect(dwi.bValue).toBe(1000);
    const g = dwi.geometry;
    expect([g.rows, g.columns, g.slices]).toEqual([256, 256, 9]);
    expect(g.pixelSpacing[0]).toBeCloseTo(1.0156, 4);
    expect(g.sliceSpacing).toBeCloseTo(3, 2);
    // oblique acquisition: normal is unit length and not an axis
    expect(Math.hypot(...g.normal)).toBeCloseTo(1, 6);
    expect(Math.abs(g.normal[2])).toBeLessThan(0.999);
    expect(r.volumes.DWI_B0!.geometry.slicePositions).toEqual(g.slicePositions);
    expect(r.volumes.ADC!.computed).toBe(true);
  });

  test('this public sample carries the same pixels in all 7 volumes of a slice: trace equals b0 and ADC is 0', () => {
    // (the dcm_qa_ge sample was made for header tests; PixelData of b0 and each direction are
    // byte-identical at every slice). The geometric mean of identical images is that image, and
    // ln(S0/S) = 0: anything else would mean frames were mixed up across slices.
    const b0 = r.volumes.DWI_B0!.data;
    const dwi = r.volumes.DWI!.data;
    const adc = r.volumes.ADC!.data;
    let maxRel = 0;
    let maxAdc = 0;
    for (let i = 0; i < b0.length; i++) {
      if (b0[i] > 10) maxRel = Math.max(maxRel, Math.abs(dwi[i] - b0[i]) / b0[i]);
      maxAdc = Math.max(maxAdc, Math.abs(adc[i]));
    }
    expect(maxRel).toBeLessThan(1e-5);
    expect(maxAdc).toBeLessThan(0.01);
  });
});

describe('GE head CT with gantry tilt and uneven spacing', () => {
  test('CT classified with kernel and thickness; tilt and uneven spacing reported; HU values', async () => {
    const inst = instancesIn(path.join(DICOM_DATA, 'ge-head-ct'));
    const r = await assembleStudy([...inst].reverse());
    const s = r.availability.series[0];
    expect(s.classification).toBe('CT');
    expect(s.usable).toBe(true);
    expect(s.reason).toMatch(/kernel STD\+/);
    expect(s.reason).toMatch(/slice thickness 4–7 mm/);
    const v = r.volumes.CT!;
    const g = v.geometry;
    expect([g.rows, g.columns, g.slices]).toEqual([512, 512, 28]);
    expect(g.warnings.join(' ')).toMatch(/gantry tilt.*18\.5°/);
    expect(g.warnings.join(' ')).toMatch(/uneven slice spacing: 1\.08–7\.00 mm/);
    expect(g.normal[1]).toBeCloseTo(0.3173, 3);
    // sorted along the normal: InstanceNumber 1 first (z 5.836), 28 last
    expect(g.slicePositions[0][2]).toBeCloseTo(5.836, 3);
    expect(g.slicePositions[27][2]).toBeCloseTo(157.776, 3);
    let min = Infinity;
    let max = -Infinity;
    for (const x of v.data) {
      if (x < min) min = x;
      if (x > max) max = x;
    }
    expect(min).toBeLessThan(-900); // air
    expect(max).toBeGreaterThan(1000); // bone
    expect(r.availability.available.CT).toBe(true);
  });
});

describe('one series in 7 transfer syntaxes', () => {
  const dir = path.join(DICOM_DATA, 'transfer-syntaxes');
  test('every file decodes to identical pixels (codecs: RLE, JPEG lossless, JPEG-LS, JPEG 2000; big endian swapped)', async () => {
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.dcm')).sort();
    const syntaxes = new Map<string, string[]>();
    let ref: Buffer | undefined;
    let fastPath = 0;
    for (const f of files) {
      const buf = fs.readFileSync(path.join(dir, f));
      const p = readPart10(buf);
      // the fast PixelData locator (no second full parse) must give the same pixels as dcmjs
      const located = locatePixelData(buf, p.transferSyntaxUid, 1);
      if (located) {
        fastPath++;
        const viaFast = await decodeFrames({ ...p.dataset, PixelData: located }, p.transferSyntaxUid);
        const viaDcmjs = await decodeFrames(p.dataset, p.transferSyntaxUid);
        expect(Buffer.from(viaFast[0].buffer).equals(Buffer.from(viaDcmjs[0].buffer))).toBe(true);
      }
      syntaxes.set(p.transferSyntaxUid, [...(syntaxes.get(p.transferSyntaxUid) ?? []), f]);
      const frames = await decodeFrames(p.dataset, p.transferSyntaxUid);
      expect(frames).toHaveLength(1);
      const b = Buffer.from(frames[0].buffer, frames[0].byteOffset, frames[0].byteLength);
      expect(b.length).toBe(384 * 384 * 2);
      if (!ref) ref = b;
      else expect(b.equals(ref)).toBe(true);
    }
    expect(fastPath).toBe(8); // all but big endian
    // which files are which
    expect(Object.fromEntries(syntaxes)).toEqual({
      '1.2.840.10008.1.2.1': ['1.dcm'],
      '1.2.840.10008.1.2': ['2.dcm'],
      '1.2.840.10008.1.2.2': ['3.dcm'],
      '1.2.840.10008.1.2.5': ['4.dcm'],
      '1.2.840.10008.1.2.4.70': ['5.dcm', '6.dcm'],
      '1.2.840.10008.1.2.4.80': ['7.dcm', '8.dcm'],
      '1.2.840.10008.1.2.4.90': ['9.dcm'],
    });
    // not a blank image
    const u16 = new Uint16Array(ref!.buffer, ref!.byteOffset, ref!.length / 2);
    expect(u16.reduce((m, x) => (x > m ? x : m), 0)).toBeGreaterThan(100);
  });

  test('Siemens mosaic untiled: 35 slices of 64x64, positions from the CSA header, tiles = mosaic blocks', async () => {
    const inst = instancesIn(dir).filter((i) => i.path.endsWith('1.dcm'));
    const h = readHeader(inst[0]);
    const csa = parseCsa(privateRaw(h.ds, 0x0029, 'SIEMENS CSA HEADER', 0x10));
    expect(csa.get('NumberOfImagesInMosaic')).toEqual(['35']);
    expect(h.frames).toHaveLength(35);
    const geo = stackGeometry(h.frames, 'for', undefined);
    if (!geo.ok) throw new Error(geo.reason);
    const g = geo.geometry;
    expect([g.rows, g.columns, g.slices]).toEqual([64, 64, 35]);
    expect(g.sliceSpacing).toBeCloseTo(3.6, 4);
    expect(g.warnings).toEqual([]);
    // IPP (-624, -661.827, -6.526) of the 384x384 mosaic moved by (384-64)/2 pixels of 3.25 mm
    // along the row and column cosines: the centre of the field of view is kept
    expect(g.slicePositions[0][0]).toBeCloseTo(-624 + 160 * 3.25, 3);
    expect(g.slicePositions[0][1]).toBeCloseTo(-661.82658862211 + 0.99415096409965 * 160 * 3.25, 3);
    expect(g.slicePositions[0][2]).toBeCloseTo(-6.5255017698948 - 0.1079993545339 * 160 * 3.25, 3);
    const headers = new Map([[h.frames[0].sopInstanceUid, h]]);
    const v = await loadVolume('T2', g, geo.sorted, new PixelCache(headers), {});
    const p = readPart10(fs.readFileSync(inst[0].path));
    const mosaic = (await decodeFrames(p.dataset, p.transferSyntaxUid))[0];
    for (const k of [0, 17, 34]) {
      const z = geo.sorted.findIndex((f) => f.mosaic?.index === k);
      const tr = Math.floor(k / 6) * 64;
      const tc = (k % 6) * 64;
      for (const [r, c] of [[0, 0], [31, 40], [63, 63]]) {
        expect(v.data[(z * 64 + r) * 64 + c]).toBe(mosaic[(tr + r) * 384 + tc + c]);
      }
    }
    // the series itself is a BOLD EPI: none of the model inputs, said in words
    const r = await assembleStudy(instancesIn(dir));
    expect(r.availability.series).toHaveLength(1);
    expect(r.availability.series[0]).toMatchObject({ classification: 'IGNORED', usable: false, instanceCount: 9 });
    expect(r.availability.series[0].reason).toMatch(/no rule matched.*TR 3000 ms, TE 30 ms/);
  });
});
