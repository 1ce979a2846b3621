import * as fs from 'fs';
import * as path from 'path';
import { readPart10, nums, seq, str, num, type NaturalDataset } from '../../src/dicom/dcmjs';
import { buildSeg, writeSeg, ischaemicLesionSegment, unpackBits, packBits, SEG_SOP_CLASS_UID } from '../../src/results/seg';
import { Codes } from '../../src/results/codes';
import type { SliceSource, Vec3, Volume } from '../../src/types';
import { dciodvfy } from '../helpers/dciodvfy';
import { deployment, provenanceFor, smallSeries, staircaseMask } from './fixtures';

function frameInfo(ds: NaturalDataset, f: number): { uid: string; frame?: number; ipp: number[]; seg: number; dim: number[] } {
  const pf = seq(ds, 'PerFrameFunctionalGroupsSequence')[f];
  const src = seq(seq(pf, 'DerivationImageSequence')[0], 'SourceImageSequence')[0];
  const fn = src.ReferencedFrameNumber;
  return {
    uid: String(str(src, 'ReferencedSOPInstanceUID')),
    frame: fn === undefined ? undefined : Number(Array.isArray(fn) ? fn[0] : fn),
    ipp: nums(seq(pf, 'PlanePositionSequence')[0], 'ImagePositionPatient'),
    seg: Number(num(seq(pf, 'SegmentIdentificationSequence')[0], 'ReferencedSegmentNumber')),
    dim: nums(seq(pf, 'FrameContentSequence')[0], 'DimensionIndexValues'),
  };
}

function pixelFrames(ds: NaturalDataset): Uint8Array[] {
  const pd = ds.PixelData as ArrayBuffer[];
  return unpackBits(new Uint8Array(pd[0]), Number(ds.NumberOfFrames), Number(ds.Rows) * Number(ds.Columns));
}

function expectNoDciodvfyErrors(buf: Buffer, iod: string): void {
  const r = dciodvfy(buf);
  if (r.warnings.length) console.info(`dciodvfy warnings (${iod}):\n${r.warnings.join('\n')}`);
  expect(r.iod).toBe(iod);
  expect(r.errors).toEqual([]);
}

const close = (a: number[], b: Vec3 | number[], tol = 1e-3): boolean => a.length === 3 && a.every((v, i) => Math.abs(v - b[i]) <= tol);

describe('writeSeg (binary DICOM SEG)', () => {
  test('dciodvfy reports no error and the header carries the required conventions', () => {
    const s = smallSeries();
    const g = s.volume.geometry;
    const mask = staircaseMask(g.rows, g.columns, g.slices);
    const res = buildSeg({
      source: s.volume,
      mask,
      sourceHeaders: s.headers,
      segments: [ischaemicLesionSegment('dual-encoder-25d', '1.2.0')],
      provenance: provenanceFor([s.seriesInstanceUid]),
      deployment: { ...deployment, disclaimer: 'NOT FOR CLINICAL USE' },
      options: { seriesNumber: 950 },
    });
    expectNoDciodvfyErrors(res.part10, 'Segmentation');
    const ds = readPart10(res.part10).dataset;
    const src = s.headers.values().next().value as NaturalDataset;
    expect(ds.SOPClassUID).toBe(SEG_SOP_CLASS_UID);
    expect(ds.StudyInstanceUID).toBe(src.StudyInstanceUID);
    expect(str(ds, 'PatientID')).toBe(str(src, 'PatientID'));
    expect(str(ds, 'PatientName')).toBe(str(src, 'PatientName'));
    expect(ds.SeriesInstanceUID).not.toBe(s.seriesInstanceUid);
    expect(ds.FrameOfReferenceUID).toBe(g.frameOfReferenceUid);
    expect(ds.Modality).toBe('SEG');
    expect(ds.SeriesNumber).toBe(950);
    expect(ds.Manufacturer).toBe(deployment.manufacturer);
    expect(ds.SegmentationType).toBe('BINARY');
    expect(ds.LossyImageCompression).toBe('00');
    expect(ds.SegmentsOverlap).toBe('NO');
    expect(ds.ImageType).toEqual(['DERIVED', 'PRIMARY']);
    // lesion volume (28 voxels of 1.5*1.25*5 mm³) in SeriesDescription
    const ml = (28 * 1.5 * 1.25 * 5) / 1000;
    expect(res.segmentVolumesMl[0]).toBeCloseTo(ml, 6);
    expect(String(ds.SeriesDescription)).toContain(`${ml.toFixed(2)} mL`);
    expect(String(ds.ImageComments)).toContain('NOT FOR CLINICAL USE');
    const segItem = seq(ds, 'SegmentSequence')[0];
    expect(segItem.SegmentLabel).toBe('Ischaemic lesion');
    expect(segItem.SegmentAlgorithmType).toBe('AUTOMATIC');
    expect(seq(segItem, 'SegmentedPropertyTypeCodeSequence')[0].CodeValue).toBe(Codes.Infarct.value);
    expect(seq(segItem, 'SegmentedPropertyCategoryCodeSequence')[0].CodeValue).toBe('49755003');
    expect(seq(segItem, 'AnatomicRegionSequence')[0].CodeValue).toBe('12738006');
    expect(seq(seq(segItem, 'SegmentationAlgorithmIdentificationSequence')[0], 'AlgorithmFamilyCodeSequence')[0].CodeValue).toBe('123110');
    expect(nums(segItem, 'RecommendedDisplayCIELabValue')).toHaveLength(3);
    // every referenced instance listed
    const refs = seq(seq(ds, 'ReferencedSeriesSequence')[0], 'ReferencedInstanceSequence').map((i) => i.ReferencedSOPInstanceUID);
    expect(new Set(refs)).toEqual(new Set(s.headers.keys()));
    // provenance
    const ce = seq(ds, 'ContributingEquipmentSequence')[0];
    expect(seq(ce, 'PurposeOfReferenceCodeSequence')[0].CodeValue).toBe('109102');
    expect(String(ce.ContributionDescription)).toContain('3f'.repeat(32));
    expect(String(ce.ContributionDescription)).toContain(s.seriesInstanceUid);
    // shared geometry
    const shared = seq(ds, 'SharedFunctionalGroupsSequence')[0];
    expect(nums(seq(shared, 'PixelMeasuresSequence')[0], 'PixelSpacing')).toEqual([1.5, 1.25]);
    expect(nums(seq(shared, 'PixelMeasuresSequence')[0], 'SpacingBetweenSlices')).toEqual([5]);
    expect(close(nums(seq(shared, 'PlaneOrientationSequence')[0], 'ImageOrientationPatient').slice(3), g.columnCosines, 1e-6)).toBe(true);
    // no leftover source functional groups
    expect(shared.MRImageFrameTypeSequence).toBeUndefined();
  });

  test('round trip: each frame references the instance and position of the slice whose mask it carries', () => {
    const s = smallSeries({ instanceOrder: 'shuffled' });
    const g = s.volume.geometry;
    const mask = staircaseMask(g.rows, g.columns, g.slices);
    const ds = readPart10(writeSeg({
      source: s.volume, mask, sourceHeaders: s.headers,
      segments: [ischaemicLesionSegment('m', '1')], provenance: provenanceFor([s.seriesInstanceUid]), deployment,
    })).dataset;
    expect(Number(ds.NumberOfFrames)).toBe(g.slices);
    const frames = pixelFrames(ds);
    const ppf = g.rows * g.columns;
    for (let f = 0; f < g.slices; f++) {
      const fi = frameInfo(ds, f);
      const header = s.headers.get(fi.uid);
      expect(header).toBeDefined();
      // the referenced instance is at the frame's position
      expect(close(fi.ipp, nums(header as NaturalDataset, 'ImagePositionPatient'))).toBe(true);
      // and carries the number of lesion pixels that slice had (slice z has z+1)
      const z = g.slicePositions.findIndex((p) => close(fi.ipp, p));
      const written = s.files.find((x) => x.sopInstanceUid === fi.uid);
      expect(written?.sliceIndex).toBe(z);
      expect(frames[f].reduce((a, b) => a + b, 0)).toBe(z + 1);
      expect(Array.from(frames[f])).toEqual(Array.from(mask.subarray(z * ppf, (z + 1) * ppf)));
      expect(fi.seg).toBe(1);
      expect(fi.dim).toEqual([1, z + 1]);
      expect(fi.frame).toBeUndefined();
    }
  });

  test('mapping is by sliceSources UID: a volume whose slices were assembled in reverse stays correct', () => {
    const s = smallSeries();
    const g = s.volume.geometry;
    const ppf = g.rows * g.columns;
    // Same anatomy, slices listed in the opposite direction (normal flipped): a different slice order
    // with sliceSources/positions/mask permuted together.
    const perm = Array.from({ length: g.slices }, (_, i) => g.slices - 1 - i);
    const mask0 = staircaseMask(g.rows, g.columns, g.slices);
    const mask = new Uint8Array(mask0.length);
    perm.forEach((from, to) => mask.set(mask0.subarray(from * ppf, (from + 1) * ppf), to * ppf));
    const vol: Volume = {
      ...s.volume,
      geometry: { ...g, slicePositions: perm.map((i) => g.slicePositions[i]) },
      sliceSources: perm.map((i) => s.volume.sliceSources[i]),
    };
    const ds = readPart10(writeSeg({
      source: vol, mask, sourceHeaders: s.headers,
      segments: [ischaemicLesionSegment('m', '1')], provenance: provenanceFor([s.seriesInstanceUid]), deployment,
    })).dataset;
    const frames = pixelFrames(ds);
    for (let f = 0; f < g.slices; f++) {
      const fi = frameInfo(ds, f);
      const orig = s.files.find((x) => x.sopInstanceUid === fi.uid)?.sliceIndex as number;
      expect(frames[f].reduce((a, b) => a + b, 0)).toBe(orig + 1);
      expect(close(fi.ipp, g.slicePositions[orig])).toBe(true);
    }
  });

  test('a broken slice-to-source mapping is refused, not written', () => {
    const s = smallSeries();
    const g = s.volume.geometry;
    const swapped: SliceSource[] = [...s.volume.sliceSources];
    [swapped[1], swapped[4]] = [swapped[4], swapped[1]];
    expect(() =>
      writeSeg({
        source: { ...s.volume, sliceSources: swapped },
        mask: staircaseMask(g.rows, g.columns, g.slices),
        sourceHeaders: s.headers,
        segments: [ischaemicLesionSegment('m', '1')],
        provenance: provenanceFor([s.seriesInstanceUid]),
        deployment,
      }),
    ).toThrow(/mapping is wrong/);
    const dup = [...s.volume.sliceSources];
    dup[2] = dup[3];
    expect(() =>
      writeSeg({
        source: { ...s.volume, sliceSources: dup }, mask: new Uint8Array(g.rows * g.columns * g.slices), sourceHeaders: s.headers,
        segments: [ischaemicLesionSegment('m', '1')], provenance: provenanceFor([s.seriesInstanceUid]), deployment,
        options: { geometryToleranceMm: 1e9 },
      }),
    ).toThrow(/same source/);
  });

  test('an empty mask still gives one (empty) frame per source slice, valid for dciodvfy', () => {
    const s = smallSeries({ slices: 5 });
    const g = s.volume.geometry;
    const buf = writeSeg({
      source: s.volume, mask: new Uint8Array(g.rows * g.columns * g.slices), sourceHeaders: s.headers,
      segments: [ischaemicLesionSegment('m', '1')], provenance: provenanceFor([s.seriesInstanceUid]), deployment,
    });
    expectNoDciodvfyErrors(buf, 'Segmentation');
    const ds = readPart10(buf).dataset;
    expect(Number(ds.NumberOfFrames)).toBe(5);
    expect(seq(ds, 'PerFrameFunctionalGroupsSequence')).toHaveLength(5);
    expect(pixelFrames(ds).every((f) => f.every((v) => v === 0))).toBe(true);
    expect(String(ds.SeriesDescription)).toContain('0.00 mL');
  });

  test('two labels give two segments, segment-major frames, dimension index values (segment, position)', () => {
    const s = smallSeries({ slices: 4 });
    const g = s.volume.geometry;
    const mask = staircaseMask(g.rows, g.columns, g.slices);
    mask[5] = 2;
    const second = { ...ischaemicLesionSegment('m', '1'), label: 'Haemorrhage', color: { r: 0, g: 0, b: 255 } };
    const res = buildSeg({
      source: s.volume, mask, sourceHeaders: s.headers,
      segments: [ischaemicLesionSegment('m', '1'), second], provenance: provenanceFor([s.seriesInstanceUid]), deployment,
    });
    expectNoDciodvfyErrors(res.part10, 'Segmentation');
    const ds = readPart10(res.part10).dataset;
    expect(Number(ds.NumberOfFrames)).toBe(8);
    expect(frameInfo(ds, 4).dim).toEqual([2, 1]);
    expect(frameInfo(ds, 4).seg).toBe(2);
    const frames = pixelFrames(ds);
    expect(frames[4][5]).toBe(1);
    expect(frames[0][5]).toBe(0);
    expect(seq(ds, 'SegmentSequence').map((x) => x.SegmentNumber)).toEqual([1, 2]);
  });

  test('a SEG of a synthetic image says so, and that an empty one does not exclude infarct', () => {
    const s = smallSeries({ slices: 3 });
    const g = s.volume.geometry;
    const part10 = writeSeg({
      source: s.volume, mask: new Uint8Array(g.rows * g.columns * g.slices), sourceHeaders: s.headers,
      segments: [ischaemicLesionSegment('m', '1')], provenance: provenanceFor([s.seriesInstanceUid], true), deployment,
    });
    expectNoDciodvfyErrors(part10, 'Segmentation');
    const ds = readPart10(part10).dataset;
    expect(String(ds.SeriesDescription)).toBe('SYNTHETIC-INPUT AI lesion SEG 0.00 mL; infarct not excluded');
    expect(String(ds.ContentDescription)).toBe('AI lesion SEG on SYNTHETIC image; empty does not exclude infarct');
    expect(String(seq(ds, 'SegmentSequence')[0].SegmentDescription)).toBe('SYNTHETIC input: an empty segment does not exclude infarct');
    for (const v of [ds.SeriesDescription, ds.ContentDescription, seq(ds, 'SegmentSequence')[0].SegmentDescription]) {
      expect(String(v).length).toBeLessThanOrEqual(64); // LO
    }
    expect(String(ds.ImageComments)).toMatch(/SYNTHETIC/);
    const pf = seq(ds, 'PerFrameFunctionalGroupsSequence')[0];
    expect(String(seq(pf, 'DerivationImageSequence')[0].DerivationDescription)).toMatch(/SYNTHETIC/);
    expect(String(seq(ds, 'ContributingEquipmentSequence')[0].ContributionDescription)).toMatch(/^SYNTHETIC INPUT/);
  });

  test('an acquired-image SEG carries no synthetic caveat; a caller-given description wins', () => {
    const s = smallSeries({ slices: 3 });
    const g = s.volume.geometry;
    const base = {
      source: s.volume, mask: new Uint8Array(g.rows * g.columns * g.slices), sourceHeaders: s.headers, deployment,
    };
    const acquired = readPart10(writeSeg({
      ...base, segments: [ischaemicLesionSegment('m', '1')], provenance: provenanceFor([s.seriesInstanceUid]),
    })).dataset;
    expect(String(acquired.SeriesDescription)).toBe('AI lesion SEG 0.00 mL');
    expect(String(acquired.ContentDescription)).toBe('AI lesion segmentation');
    expect(seq(acquired, 'SegmentSequence')[0].SegmentDescription).toBeUndefined();
    const own = readPart10(writeSeg({
      ...base, segments: [{ ...ischaemicLesionSegment('m', '1'), description: 'own' }], provenance: provenanceFor([s.seriesInstanceUid], true),
      options: { seriesDescription: 'mine {volume}', contentDescription: 'mine' },
    })).dataset;
    expect([own.SeriesDescription, own.ContentDescription, seq(own, 'SegmentSequence')[0].SegmentDescription].map(String)).toEqual(['mine 0.00 mL', 'mine', 'own']);
  });

  test('refuses inputs that would make a wrong object', () => {
    const s = smallSeries({ slices: 3 });
    const g = s.volume.geometry;
    const base = {
      source: s.volume, mask: new Uint8Array(g.rows * g.columns * g.slices), sourceHeaders: s.headers,
      segments: [ischaemicLesionSegment('m', '1')], provenance: provenanceFor([s.seriesInstanceUid]), deployment,
    };
    expect(() => writeSeg({ ...base, mask: new Uint8Array(10) })).toThrow(/voxels/);
    expect(() => writeSeg({ ...base, sourceHeaders: new Map() })).toThrow(/no source header/);
    const m = new Uint8Array(base.mask.length);
    m[0] = 3;
    expect(() => writeSeg({ ...base, mask: m })).toThrow(/no segment description/);
    expect(() => writeSeg({ ...base, provenance: { ...base.provenance, modelSha256: 'abc' } })).toThrow(/sha256/i);
    expect(() => writeSeg({ ...base, options: { contentLabel: 'lower case' } })).toThrow(/ContentLabel/);
  });

  test('bit packing runs across frame boundaries (odd frame size)', () => {
    const a = new Uint8Array([1, 0, 1]);
    const b = new Uint8Array([1, 1, 0]);
    const packed = packBits([a, b], 3);
    expect(packed.length).toBe(2); // 6 bits → 1 byte, padded to even
    expect(packed[0]).toBe(0b011101);
    expect(unpackBits(packed, 2, 3).map((f) => Array.from(f))).toEqual([[1, 0, 1], [1, 1, 0]]);
  });
});

// ---- a real enhanced multi-frame source (Siemens XA30 TRACEW, 39 frames in one instance) ----
const SHARED = process.env.STROKE_SHARED_DATA ?? path.resolve(__dirname, '../../../shared/data');
const ENH_DIR = path.join(SHARED, 'dicom/siemens-xa30-enhanced-dwi/12_DWI_dir80_PA');
const haveEnhanced = fs.existsSync(ENH_DIR);

/** Minimal enhanced MR → Volume (geometry only; the study stage does this for real). */
function enhancedVolume(header: NaturalDataset): Volume {
  const shared = seq(header, 'SharedFunctionalGroupsSequence')[0];
  const perFrame = seq(header, 'PerFrameFunctionalGroupsSequence');
  const iop = nums(seq(shared, 'PlaneOrientationSequence')[0] ?? seq(perFrame[0], 'PlaneOrientationSequence')[0], 'ImageOrientationPatient');
  const pm = seq(shared, 'PixelMeasuresSequence')[0] ?? seq(perFrame[0], 'PixelMeasuresSequence')[0];
  const row: Vec3 = [iop[0], iop[1], iop[2]];
  const col: Vec3 = [iop[3], iop[4], iop[5]];
  const n: Vec3 = [row[1] * col[2] - row[2] * col[1], row[2] * col[0] - row[0] * col[2], row[0] * col[1] - row[1] * col[0]];
  const frames = perFrame.map((pf, i) => {
    const ipp = nums(seq(pf, 'PlanePositionSequence')[0], 'ImagePositionPatient') as Vec3;
    return { frame: i + 1, ipp, d: ipp[0] * n[0] + ipp[1] * n[1] + ipp[2] * n[2] };
  });
  frames.sort((a, b) => a.d - b.d);
  const ps = nums(pm, 'PixelSpacing');
  const rows = Number(header.Rows);
  const columns = Number(header.Columns);
  return {
    kind: 'TRACEW',
    geometry: {
      rows, columns, slices: frames.length,
      pixelSpacing: [ps[0], ps[1]],
      sliceSpacing: frames.length > 1 ? frames[1].d - frames[0].d : 1,
      rowCosines: row, columnCosines: col, normal: n,
      slicePositions: frames.map((f) => f.ipp),
      frameOfReferenceUid: String(header.FrameOfReferenceUID),
      warnings: [],
    },
    data: new Float32Array(rows * columns * frames.length),
    sliceSources: frames.map((f) => ({
      sopInstanceUid: String(header.SOPInstanceUID),
      sopClassUid: String(header.SOPClassUID),
      seriesInstanceUid: String(header.SeriesInstanceUID),
      frameNumber: f.frame,
    })),
    seriesInstanceUid: String(header.SeriesInstanceUID),
  };
}

(haveEnhanced ? describe : describe.skip)('writeSeg over a real enhanced multi-frame source (Siemens XA30)', () => {
  test('frames reference the source frame at the same position; dciodvfy reports no error', () => {
    const file = path.join(ENH_DIR, fs.readdirSync(ENH_DIR).filter((f) => f.endsWith('.dcm'))[0]);
    const header = readPart10(fs.readFileSync(file), { untilPixelData: true }).dataset;
    const vol = enhancedVolume(header);
    const g = vol.geometry;
    expect(g.slices).toBe(39);
    // frame numbers in sorted order are not simply 1..n ascending in every acquisition; the SEG
    // must follow sliceSources whatever they are.
    const mask = staircaseMask(g.rows, g.columns, g.slices);
    const headers = new Map([[String(header.SOPInstanceUID), header]]);
    const buf = writeSeg({
      source: vol, mask, sourceHeaders: headers,
      segments: [ischaemicLesionSegment('m', '1')], provenance: provenanceFor([vol.seriesInstanceUid]), deployment,
    });
    expectNoDciodvfyErrors(buf, 'Segmentation');
    const ds = readPart10(buf).dataset;
    const srcFrames = seq(header, 'PerFrameFunctionalGroupsSequence');
    const frames = pixelFrames(ds);
    for (let f = 0; f < g.slices; f++) {
      const fi = frameInfo(ds, f);
      expect(fi.uid).toBe(header.SOPInstanceUID);
      expect(fi.frame).toBe(vol.sliceSources[f].frameNumber);
      const srcIpp = nums(seq(srcFrames[(fi.frame as number) - 1], 'PlanePositionSequence')[0], 'ImagePositionPatient');
      expect(close(fi.ipp, srcIpp)).toBe(true);
      expect(frames[f].reduce((a, b) => a + b, 0)).toBe(f + 1);
    }
    expect(ds.FrameOfReferenceUID).toBe(header.FrameOfReferenceUID);
    expect(ds.StudyInstanceUID).toBe(header.StudyInstanceUID);
    const refSeries = seq(ds, 'ReferencedSeriesSequence');
    expect(refSeries).toHaveLength(1);
    expect(seq(refSeries[0], 'ReferencedInstanceSequence')).toHaveLength(1);
    // A wrong frame number is caught by the position check
    const bad = { ...vol, sliceSources: vol.sliceSources.map((s, i) => (i === 3 ? { ...s, frameNumber: vol.sliceSources[10].frameNumber } : s)) };
    const badNoDup = { ...bad, sliceSources: bad.sliceSources.map((s, i) => (i === 10 ? { ...s, frameNumber: vol.sliceSources[3].frameNumber } : s)) };
    expect(() => writeSeg({
      source: badNoDup, mask, sourceHeaders: headers,
      segments: [ischaemicLesionSegment('m', '1')], provenance: provenanceFor([vol.seriesInstanceUid]), deployment,
    })).toThrow(/mapping is wrong/);
  });
});
