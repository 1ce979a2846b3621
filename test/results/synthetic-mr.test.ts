import { nums, readPart10, seq, str, type NaturalDataset } from '../../src/dicom/dcmjs';
import { deviceUidForModel } from '../../src/results/provenance';
import { SC_IMAGE_STORAGE } from '../../src/results/sc';
import {
  fusedDescription,
  storedFromZ,
  syntheticDescription,
  writeFusedSeries,
  writeSyntheticSequence,
  zFromStored,
} from '../../src/results/synthetic-mr';
import type { Volume } from '../../src/types';
import { dciodvfy } from '../helpers/dciodvfy';
import { newStudyContext } from '../helpers/series-writer';
import { deployment, provenanceFor, smallSeries } from './fixtures';

function pixels16(d: NaturalDataset): Uint16Array {
  const ab = (d.PixelData as ArrayBuffer[])[0];
  return new Uint16Array(ab.slice(0));
}

function expectValid(buf: Buffer): void {
  const r = dciodvfy(buf);
  if (r.warnings.length) console.info(`dciodvfy warnings:\n${r.warnings.join('\n')}`);
  expect(r.iod).toBe('SCImage');
  expect(r.errors).toEqual([]);
}

describe('synthetic MR sequence and fused series (SC, one instance per reference slice)', () => {
  const study = newStudyContext();
  // reference (e.g. T2) and a second acquired series (T1) on the same frame of reference, same orientation, a
  // different matrix and half the slices
  const ref = smallSeries({ study, rows: 96, columns: 80, slices: 6, instanceOrder: 'shuffled' });
  const other = smallSeries({ study, rows: 48, columns: 40, slices: 3, pixelSpacing: [3, 2.5], sliceSpacing: 10, sliceThickness: 8 });
  const headers = new Map<string, NaturalDataset>([...ref.headers, ...other.headers]);
  const g = ref.volume.geometry;
  const ppf = g.rows * g.columns;
  // z-score image: slice z holds z - 2.5 + small ramp in the brain (a disc), 0 outside
  const data = new Float32Array(ppf * g.slices);
  const brain = new Uint8Array(ppf * g.slices);
  for (let z = 0; z < g.slices; z++) {
    for (let r = 0; r < g.rows; r++) {
      for (let c = 0; c < g.columns; c++) {
        const i = z * ppf + r * g.columns + c;
        if (Math.hypot(r - 60, c - 40) < 28) {
          brain[i] = 1;
          data[i] = z - 2.5 + c * 0.01;
        }
      }
    }
  }
  const image: Volume = { ...ref.volume, kind: 'T1C', data, computed: true };
  const sources = [
    { sequence: 'T2' as const, volume: ref.volume },
    { sequence: 'T1' as const, volume: other.volume },
  ];
  const prov = { ...provenanceFor([ref.seriesInstanceUid, other.seriesInstanceUid], true), modelName: 'brats-m2dn', modelVersion: '0.1.0' };
  const syn = writeSyntheticSequence({
    sequence: 'T1C',
    image,
    brainMask: brain,
    sources,
    sourceHeaders: headers,
    provenance: prov,
    deployment: { ...deployment, disclaimer: 'NOT FOR CLINICAL USE' },
    method: 'DDIM 10 steps, eta 0, seed 1',
    options: { seriesNumber: 9013 },
  });
  const fusedProv = { ...prov, modelName: 'brats-nslf' };
  const fused = writeFusedSeries({ fusedFrom: ['T1', 'T2'], method: 'weighted avg', image, brainMask: brain, sources, sourceHeaders: headers, provenance: fusedProv, deployment });

  test('every instance is a valid SC image for dciodvfy', () => {
    expect(syn.instances).toHaveLength(g.slices);
    expect(fused.instances).toHaveLength(g.slices);
    for (const i of [...syn.instances, ...fused.instances]) expectValid(i.part10);
  });

  test('labelled synthetic everywhere a viewer or PACS looks, and names the model', () => {
    const d = readPart10(syn.instances[0].part10).dataset;
    expect(d.SOPClassUID).toBe(SC_IMAGE_STORAGE);
    expect(d.Modality).toBe('MR');
    expect(d.SyntheticData).toBe('YES');
    expect(d.ImageType).toEqual(['DERIVED', 'SECONDARY']);
    expect(d.ConversionType).toBe('SYN');
    expect(d.BurnedInAnnotation).toBe('YES');
    expect(d.SeriesDescription).toBe('SYNTHETIC T1C (AI-generated, not acquired) brats-m2dn');
    expect(String(d.ImageComments)).toMatch(/^SYNTHETIC T1C \(AI-generated, not acquired\)/);
    expect(String(d.ImageComments)).toContain('NOT FOR CLINICAL USE');
    expect(String(d.DerivationDescription)).toContain('DDIM 10 steps');
    expect(String(d.DerivationDescription)).toContain(prov.modelSha256);
    expect(d.StudyInstanceUID).toBe(study.studyInstanceUid);
    expect(d.FrameOfReferenceUID).toBe(study.frameOfReferenceUid);
    expect(d.SeriesNumber).toBe(9013);
    expect(d.ManufacturerModelName).toBe('brats-m2dn');
    expect(d.DeviceUID).toBe(deviceUidForModel(prov));
    const ce = seq(d, 'ContributingEquipmentSequence')[0];
    expect(seq(ce, 'PurposeOfReferenceCodeSequence')[0]).toMatchObject({ CodeValue: '109100', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Synthesizing Equipment' });
    expect(ce.ManufacturerModelName).toBe('brats-m2dn');
    expect(String(ce.ContributionDescription)).toContain(prov.modelSha256);
    const f = readPart10(fused.instances[0].part10).dataset;
    expect(f.SeriesDescription).toBe('FUSED T1+T2 weighted avg brats-nslf (AI, not acquired)');
    expect(String(f.SeriesDescription).length).toBeLessThanOrEqual(64);
    expect(f.SyntheticData).toBe('YES');
    expect(String(f.ImageComments)).toMatch(/^FUSED T1\+T2 \(AI-generated, not acquired; weighted avg\)/);
    expect(f.ManufacturerModelName).toBe('brats-nslf');
    expect(f.SeriesInstanceUID).not.toBe(d.SeriesInstanceUID);
  });

  test('descriptions fit LO and keep the model name', () => {
    expect(syntheticDescription('FLAIR', 'brats-m2dn')).toBe('SYNTHETIC FLAIR (AI-generated, not acquired) brats-m2dn');
    const long = fusedDescription(['FLAIR', 'T1', 'T1C', 'T2'], 'weighted avg', 'brats-nslf');
    expect(long.length).toBeLessThanOrEqual(64);
    expect(long).toContain('FUSED FLAIR+T1+T1C+T2 weighted avg brats-nslf');
  });

  test('one instance per reference slice with its geometry, sources referenced by UID', () => {
    const byRef = new Map(ref.files.map((f) => [f.sopInstanceUid, f]));
    for (const inst of syn.instances) {
      const d = readPart10(inst.part10).dataset;
      const z = inst.sliceIndex;
      const src = ref.volume.sliceSources[z];
      // the source the instance names is the reference slice at the same position
      const srcItems = seq(d, 'SourceImageSequence');
      expect(srcItems[0].ReferencedSOPInstanceUID).toBe(src.sopInstanceUid);
      const srcHeader = readPart10(byRef.get(src.sopInstanceUid)!.part10).dataset;
      const a = nums(d, 'ImagePositionPatient');
      const b = nums(srcHeader, 'ImagePositionPatient');
      a.forEach((v, k) => expect(v).toBeCloseTo(b[k], 4));
      expect(nums(d, 'ImageOrientationPatient')).toEqual(nums(srcHeader, 'ImageOrientationPatient').map((v) => expect.closeTo(v, 6)));
      expect(nums(d, 'PixelSpacing')).toEqual(nums(srcHeader, 'PixelSpacing').map((v) => expect.closeTo(v, 6)));
      expect(d.InstanceNumber).toBe(z + 1);
      // the other acquired series: its nearest slice (10 mm apart vs 5: every slice has one within 10 mm)
      const o = srcItems.find((it) => other.headers.has(String(it.ReferencedSOPInstanceUID)));
      expect(o).toBeDefined();
      const rs = seq(d, 'ReferencedSeriesSequence').map((s) => str(s, 'SeriesInstanceUID'));
      expect(rs.sort()).toEqual([ref.seriesInstanceUid, other.seriesInstanceUid].sort());
    }
  });

  test('pixels: z-score mapped to 400 (z + 5) + 1 inside the brain, 0 outside, banner burned in, window on the brain', () => {
    for (const inst of syn.instances) {
      const d = readPart10(inst.part10).dataset;
      const px = pixels16(d);
      const z = inst.sliceIndex;
      const b = syn.banner;
      let checked = 0;
      for (let r = 0; r < g.rows; r++) {
        for (let c = 0; c < g.columns; c++) {
          if (r >= b.y && r < b.y + b.boxHeight && c >= b.x && c < b.x + b.boxWidth) continue; // banner box
          const i = r * g.columns + c;
          const v = px[i];
          if (brain[z * ppf + i]) {
            expect(zFromStored(v)).toBeCloseTo(data[z * ppf + i], 2);
            checked++;
          } else expect(v).toBe(0);
        }
      }
      expect(checked).toBeGreaterThan(100);
      // the banner is there: bright pixels in its box
      let bright = 0;
      for (let r = b.y; r < b.y + b.boxHeight; r++) for (let c = b.x; c < b.x + b.boxWidth; c++) if (px[r * g.columns + c] >= storedFromZ(5)) bright++;
      expect(bright).toBeGreaterThan(20);
      const wc = Number(d.WindowCenter);
      const ww = Number(d.WindowWidth);
      expect(wc - ww / 2).toBeGreaterThan(0); // background (0) shows black
      expect(wc).toBeGreaterThan(storedFromZ(-3));
      expect(wc).toBeLessThan(storedFromZ(3));
    }
  });

  test('refuses a non-synthetic provenance or a mismatched mask', () => {
    expect(() =>
      writeSyntheticSequence({ sequence: 'T1C', image, sources, sourceHeaders: headers, provenance: { ...prov, synthetic: false }, deployment }),
    ).toThrow(/synthetic/);
    expect(() =>
      writeSyntheticSequence({ sequence: 'T1C', image, brainMask: new Uint8Array(3), sources, sourceHeaders: headers, provenance: prov, deployment }),
    ).toThrow(/brainMask/);
  });
});
