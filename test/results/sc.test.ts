import { readPart10, nums, seq, str, type NaturalDataset } from '../../src/dicom/dcmjs';
import { writeSyntheticSc, writeOverlaySc, SC_IMAGE_STORAGE, toStoredU16 } from '../../src/results/sc';
import { renderText, placeBanner, layoutText, glyph } from '../../src/results/sc/font';
import { buildSeg, ischaemicLesionSegment } from '../../src/results/seg';
import { deviceUidForModel } from '../../src/results/provenance';
import type { Volume } from '../../src/types';
import { dciodvfy } from '../helpers/dciodvfy';
import { newStudyContext, writeSeries, type WrittenSeries } from '../helpers/series-writer';
import { deployment, provenanceFor, staircaseMask } from './fixtures';

function ctSeries(rows = 48, columns = 200, slices = 4): WrittenSeries {
  const d = new Int16Array(rows * columns * slices);
  for (let i = 0; i < d.length; i++) d[i] = (i % 120) - 20;
  return writeSeries(
    {
      kind: 'CT', rows, columns, slices, pixelSpacing: [0.5, 0.5], sliceThickness: 5, sliceSpacing: 5,
      imageOrientationPatient: [1, 0, 0, 0, 1, 0], imagePositionPatientFirst: [-50, -12, 30], data: d,
      instanceOrder: 'descending',
    },
    newStudyContext(),
  );
}

/** A synthetic DWI on the CT grid: float values, slice z brighter than z-1. */
function syntheticOn(ct: WrittenSeries): Volume {
  const g = ct.volume.geometry;
  const ppf = g.rows * g.columns;
  const data = new Float32Array(ppf * g.slices);
  for (let z = 0; z < g.slices; z++) for (let i = 0; i < ppf; i++) data[z * ppf + i] = 0.5 + z + (i % 7) * 0.1;
  return { ...ct.volume, kind: 'DWI', data, computed: true };
}

function pixels16(ds: NaturalDataset): Uint16Array {
  const ab = (ds.PixelData as ArrayBuffer[])[0];
  return new Uint16Array(ab.slice(0));
}

function expectValid(buf: Buffer, iod: string): void {
  const r = dciodvfy(buf);
  if (r.warnings.length || r.dictionaryGaps.length) {
    console.info(`dciodvfy (${iod}) warnings:\n${[...r.dictionaryGaps, ...r.warnings].join('\n')}`);
  }
  expect(r.iod).toBe(iod);
  expect(r.errors).toEqual([]);
}

describe('writeSyntheticSc', () => {
  const ct = ctSeries();
  const image = syntheticOn(ct);
  const prov = provenanceFor([ct.seriesInstanceUid], true);
  const res = writeSyntheticSc({ image, sourceHeaders: ct.headers, provenance: prov, deployment: { ...deployment, disclaimer: 'NOT FOR CLINICAL USE' } });

  test('one SC instance per slice, each valid for dciodvfy', () => {
    expect(res.instances).toHaveLength(4);
    for (const i of res.instances) expectValid(i.part10, 'SCImage');
  });

  test('carries the synthetic-image conventions and the provenance', () => {
    const ds = readPart10(res.instances[0].part10).dataset;
    expect(ds.SOPClassUID).toBe(SC_IMAGE_STORAGE);
    // the modality of the source (CT), not OT: OHIF disables its segmentation panel for OT series
    expect(ds.Modality).toBe('CT');
    expect(ds.ImageType).toEqual(['DERIVED', 'SECONDARY']);
    expect(ds.ConversionType).toBe('SYN');
    expect(ds.SyntheticData).toBe('YES');
    expect(ds.BurnedInAnnotation).toBe('YES');
    expect(ds.BitsAllocated).toBe(16);
    expect(String(ds.SeriesDescription)).toMatch(/SYNTHETIC/);
    expect(String(ds.ImageComments)).toMatch(/SYNTHETIC/);
    expect(String(ds.ImageComments)).toContain('NOT FOR CLINICAL USE');
    expect(String(ds.DerivationDescription)).toMatch(/SYNTHETIC/);
    expect(ds.StudyInstanceUID).toBe(ct.headers.values().next().value?.StudyInstanceUID);
    expect(ds.ManufacturerModelName).toBe(prov.modelName);
    expect(ds.DeviceUID).toBe(deviceUidForModel(prov));
    const ce = seq(ds, 'ContributingEquipmentSequence')[0];
    expect(seq(ce, 'PurposeOfReferenceCodeSequence')[0]).toMatchObject({ CodeValue: '109100', CodingSchemeDesignator: 'DCM' });
    expect(ce.DeviceUID).toBe(deviceUidForModel(prov));
    expect(String(ce.ContributionDescription)).toContain(prov.modelSha256);
    // a different model gets a different DeviceUID
    expect(deviceUidForModel({ ...prov, modelSha256: '4a'.repeat(32) })).not.toBe(deviceUidForModel(prov));
  });

  test('each slice references its CT instance and has that slice\'s geometry', () => {
    for (const inst of res.instances) {
      const ds = readPart10(inst.part10).dataset;
      const src = seq(ds, 'SourceImageSequence')[0];
      const ctUid = String(src.ReferencedSOPInstanceUID);
      const ctHeader = ct.headers.get(ctUid) as NaturalDataset;
      expect(ctHeader).toBeDefined();
      expect(src.ReferencedSOPClassUID).toBe(ctHeader.SOPClassUID);
      expect(seq(src, 'PurposeOfReferenceCodeSequence')[0].CodeValue).toBe('121322');
      expect(nums(ds, 'ImagePositionPatient')).toEqual(nums(ctHeader, 'ImagePositionPatient'));
      expect(nums(ds, 'ImageOrientationPatient')).toEqual(nums(ctHeader, 'ImageOrientationPatient'));
      expect(nums(ds, 'PixelSpacing')).toEqual(nums(ctHeader, 'PixelSpacing'));
      expect(ds.FrameOfReferenceUID).toBe(ctHeader.FrameOfReferenceUID);
      expect(ds.InstanceNumber).toBe(inst.sliceIndex + 1);
    }
  });

  test('the banner is burned into the pixels, the rest of the image is the synthetic DWI', () => {
    const { stored } = toStoredU16(image.data);
    const g = image.geometry;
    const ppf = g.rows * g.columns;
    const b = res.banner;
    expect(b.lines.join(' ')).toBe('AI-GENERATED - NOT ACQUIRED');
    for (const inst of res.instances) {
      const px = pixels16(readPart10(inst.part10).dataset);
      const z = inst.sliceIndex;
      let maxStored = 0;
      for (let i = 0; i < stored.length; i++) maxStored = Math.max(maxStored, stored[i]);
      let ink = 0;
      for (let y = 0; y < b.text.height; y++) {
        for (let x = 0; x < b.text.width; x++) {
          const v = px[(b.textY + y) * g.columns + b.textX + x];
          if (b.text.mask[y * b.text.width + x]) {
            expect(v).toBe(maxStored);
            ink++;
          } else expect(v).toBe(0);
        }
      }
      expect(ink).toBeGreaterThan(100);
      // below the banner box: untouched synthetic values of this slice
      const r = b.boxHeight + 2;
      for (let c = 0; c < g.columns; c += 17) expect(px[r * g.columns + c]).toBe(stored[z * ppf + r * g.columns + c]);
    }
  });

  test('refuses a non-synthetic provenance (the synthetic flag must be true)', () => {
    expect(() => writeSyntheticSc({ image, sourceHeaders: ct.headers, provenance: { ...prov, synthetic: false }, deployment })).toThrow(/synthetic/);
  });

  test('a SEG computed on the synthetic series references the SC instances and says it is synthetic', () => {
    const g = res.volume.geometry;
    const seg = buildSeg({
      source: res.volume, mask: staircaseMask(g.rows, g.columns, g.slices), sourceHeaders: res.headers,
      segments: [ischaemicLesionSegment('m', '1')], provenance: prov, deployment,
    });
    expectValid(seg.part10, 'Segmentation');
    const ds = readPart10(seg.part10).dataset;
    const refs = seq(seq(ds, 'ReferencedSeriesSequence')[0], 'ReferencedInstanceSequence');
    expect(refs.every((r) => r.ReferencedSOPClassUID === SC_IMAGE_STORAGE)).toBe(true);
    expect(String(ds.SeriesDescription)).toMatch(/SYNTHETIC/);
  });
});

describe('writeOverlaySc', () => {
  const ct = ctSeries(40, 220, 3);
  const image = syntheticOn(ct);
  const g = image.geometry;
  const mask = new Uint8Array(g.rows * g.columns * g.slices);
  // a 6x6 square lesion on slice 1, rows 25..30, cols 100..105
  for (let r = 25; r <= 30; r++) for (let c = 100; c <= 105; c++) mask[1 * g.rows * g.columns + r * g.columns + c] = 1;
  const res = writeOverlaySc({ image, mask, sourceHeaders: ct.headers, provenance: provenanceFor([ct.seriesInstanceUid]), deployment });

  test('valid RGB SC instances with outline, label and volume', () => {
    expect(res.instances).toHaveLength(3);
    for (const i of res.instances) expectValid(i.part10, 'SCImage');
    const ds = readPart10(res.instances[1].part10).dataset;
    expect(ds.PhotometricInterpretation).toBe('RGB');
    expect(ds.ConversionType).toBe('WSD');
    expect(ds.SyntheticData).toBe('NO');
    const ml = (36 * 0.5 * 0.5 * 5) / 1000;
    expect(String(ds.SeriesDescription)).toContain(`${ml.toFixed(2)} mL`);
    expect(res.banner.lines.join(' ')).toMatch(/^AI-GENERATED - LESION 0\.04 mL$/);
    const rgb = new Uint8Array((ds.PixelData as ArrayBuffer[])[0]);
    const at = (r: number, c: number): number[] => Array.from(rgb.subarray((r * g.columns + c) * 3, (r * g.columns + c) * 3 + 3));
    expect(at(25, 100)).toEqual([255, 0, 0]); // corner of the outline
    expect(at(27, 100)).toEqual([255, 0, 0]); // left edge
    const inside = at(27, 102);
    expect(inside[0]).toBe(inside[1]); // interior stays gray
    // text ink is yellow where the banner mask says so
    const b = res.banner;
    let yellow = 0;
    for (let y = 0; y < b.text.height; y++) for (let x = 0; x < b.text.width; x++) {
      if (b.text.mask[y * b.text.width + x]) {
        expect(at(b.textY + y, b.textX + x)).toEqual([255, 255, 0]);
        yellow++;
      }
    }
    expect(yellow).toBeGreaterThan(50);
    // slice 0 has no outline
    const ds0 = readPart10(res.instances[0].part10).dataset;
    const rgb0 = new Uint8Array((ds0.PixelData as ArrayBuffer[])[0]);
    let red = 0;
    for (let i = 0; i < rgb0.length; i += 3) if (rgb0[i] === 255 && rgb0[i + 1] === 0 && rgb0[i + 2] === 0) red++;
    expect(red).toBe(0);
    expect(str(ds, 'ImageComments')).toMatch(/AI-GENERATED/);
  });
});

describe('bitmap font', () => {
  test('renders a known glyph exactly', () => {
    const t = renderText(['I']);
    expect(t.width).toBe(5);
    expect(t.height).toBe(7);
    const rows: string[] = [];
    for (let y = 0; y < 7; y++) rows.push(Array.from(t.mask.subarray(y * 5, y * 5 + 5)).join(''));
    expect(rows).toEqual(['01110', '00100', '00100', '00100', '00100', '00100', '01110']);
    expect(glyph('\u2013')).toEqual(glyph('-'));
    expect(glyph('a')).toEqual(glyph('A'));
  });

  test('lays the banner out to fit narrow and wide images', () => {
    expect(layoutText('AI-GENERATED - NOT ACQUIRED', 508).scale).toBe(3);
    expect(layoutText('AI-GENERATED - NOT ACQUIRED', 124)).toEqual({ lines: ['AI-GENERATED -', 'NOT ACQUIRED'], scale: 1 });
    const narrow = placeBanner('AI-GENERATED - NOT ACQUIRED', 64, 40);
    expect(narrow.text.width).toBeLessThanOrEqual(40);
  });
});
