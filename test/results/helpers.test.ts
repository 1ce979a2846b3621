import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { readPart10, nums, writePart10 } from '../../src/dicom/dcmjs';
import { buildSegDataset, ischaemicLesionSegment } from '../../src/results/seg';
import { dciodvfy, parseDciodvfy } from '../helpers/dciodvfy';
import { loadPhantom, newStudyContext, phantomsRoot, writePhantomStudy, writeSeries } from '../helpers/series-writer';
import { deployment, provenanceFor, smallSeries } from './fixtures';

describe('dciodvfy helper', () => {
  test('parses errors and warnings', () => {
    const r = parseDciodvfy('Segmentation\nError - Missing attribute Type 1 Required Element=<Rows> Module=<ImagePixel>\nWarning - x\n');
    expect(r.iod).toBe('Segmentation');
    expect(r.errors).toHaveLength(1);
    expect(r.warnings).toEqual(['Warning - x']);
  });

  test('a SEG with a required attribute removed fails', () => {
    const s = smallSeries({ slices: 2 });
    const g = s.volume.geometry;
    const { dataset } = buildSegDataset({
      source: s.volume, mask: new Uint8Array(g.rows * g.columns * g.slices), sourceHeaders: s.headers,
      segments: [ischaemicLesionSegment('m', '1')], provenance: provenanceFor([s.seriesInstanceUid]), deployment,
    });
    delete dataset.SegmentSequence;
    delete dataset.DimensionIndexSequence;
    const r = dciodvfy(writePart10(dataset));
    expect(r.errors.join('\n')).toMatch(/SegmentSequence|Segment Sequence/);
  });
});

describe('series writer', () => {
  test('writes MR and CT series that dciodvfy accepts, sharing one study', () => {
    const study = newStudyContext();
    const mr = smallSeries({ study, instanceOrder: 'shuffled' });
    const ct = writeSeries({
      kind: 'CT', rows: 8, columns: 8, slices: 3, pixelSpacing: [0.5, 0.5], sliceThickness: 2, sliceSpacing: 2,
      imageOrientationPatient: [1, 0, 0, 0, 1, 0], imagePositionPatientFirst: [0, 0, 0], data: new Int16Array(192).fill(-1000),
    }, study);
    for (const f of [mr.files[0], ct.files[0]]) expect(dciodvfy(f.part10).errors).toEqual([]);
    const a = readPart10(mr.files[0].part10).dataset;
    const b = readPart10(ct.files[0].part10).dataset;
    expect(a.StudyInstanceUID).toBe(b.StudyInstanceUID);
    expect(a.SeriesInstanceUID).not.toBe(b.SeriesInstanceUID);
    expect(b.PixelRepresentation).toBe(1);
    expect(a.DiffusionBValue).toBe(1000);
    expect(a.ImageType).toEqual(['ORIGINAL', 'PRIMARY', 'DIFFUSION', 'TRACEW']);
    // positions ascend along the normal in volume order; instance numbers shuffled
    const g = mr.volume.geometry;
    const d = mr.volume.sliceSources.map((src) => {
      const h = mr.headers.get(src.sopInstanceUid)!;
      const p = nums(h, 'ImagePositionPatient');
      return p[0] * g.normal[0] + p[1] * g.normal[1] + p[2] * g.normal[2];
    });
    for (let i = 1; i < d.length; i++) expect(d[i] - d[i - 1]).toBeCloseTo(5, 6);
    const inst = mr.volume.sliceSources.map((src) => Number(mr.headers.get(src.sopInstanceUid)!.InstanceNumber));
    expect(inst).not.toEqual([...inst].sort((x, y) => x - y));
    // pixel data of a file = its slice of the volume
    const f = mr.files[2];
    const px = new Uint16Array((readPart10(f.part10).dataset.PixelData as ArrayBuffer[])[0].slice(0));
    const ppf = g.rows * g.columns;
    expect(Array.from(px)).toEqual(Array.from(mr.volume.data.subarray(f.sliceIndex * ppf, (f.sliceIndex + 1) * ppf)));
  });

  test('loads a phantom folder and writes it as a DWI/b0/ADC study on disk', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'phantom-'));
    const dir = path.join(root, 'tiny');
    fs.mkdirSync(dir);
    const meta = { rows: 6, columns: 5, slices: 3, pixelSpacing: [2, 2], sliceThickness: 4, sliceSpacing: 4, bValue: 1000,
      imageOrientationPatient: [1, 0, 0, 0, 1, 0], imagePositionPatientFirst: [-5, -6, 10] };
    fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify(meta));
    const n = 90;
    const u16 = (f: (i: number) => number): Buffer => { const b = Buffer.alloc(n * 2); for (let i = 0; i < n; i++) b.writeUInt16LE(f(i), i * 2); return zlib.gzipSync(b); };
    fs.writeFileSync(path.join(dir, 'dwi.u16.gz'), u16((i) => i));
    fs.writeFileSync(path.join(dir, 'adc.u16.gz'), u16((i) => 800 + i));
    fs.writeFileSync(path.join(dir, 'mask.u8.gz'), zlib.gzipSync(Buffer.from(Array.from({ length: n }, (_, i) => (i === 40 ? 1 : 0)))));
    const ph = loadPhantom('tiny', root);
    expect(ph.b0).toBeUndefined();
    expect(ph.dwi?.[89]).toBe(89);
    const out = path.join(root, 'out');
    const st = writePhantomStudy(ph, { outDir: out });
    expect(st.b0).toBeUndefined();
    expect(st.dwi?.files).toHaveLength(3);
    expect(fs.readdirSync(path.join(out, 'dwi'))).toHaveLength(3);
    const adc0 = readPart10(fs.readFileSync(st.adc!.files[0].path!)).dataset;
    expect(adc0.ImageType).toEqual(['DERIVED', 'PRIMARY', 'DIFFUSION', 'ADC']);
    expect(adc0.StudyInstanceUID).toBe(st.study.studyInstanceUid);
    expect(st.mask?.[40]).toBe(1);
    fs.rmSync(root, { recursive: true, force: true });
  });

  const root = phantomsRoot();
  const cases = fs.existsSync(root) ? fs.readdirSync(root).filter((d) => fs.existsSync(path.join(root, d, 'meta.json'))) : [];
  (cases.length ? test.each(cases) : test.skip.each(['(no fixtures/phantoms yet)']))('committed phantom %s loads and writes valid MR', (name) => {
    const ph = loadPhantom(name);
    const st = writePhantomStudy(ph);
    const any = st.dwi ?? st.adc ?? st.b0;
    expect(any).toBeDefined();
    expect(dciodvfy(any!.files[0].part10).errors).toEqual([]);
  });
});

describe('patient/study attributes copied from a de-identified source', () => {
  test('PatientIdentityRemoved YES without a method (as in the real GE head CT) still gives a valid SEG, the flag kept', () => {
    const s = smallSeries({ slices: 2 });
    for (const h of s.headers.values()) {
      h.PatientIdentityRemoved = 'YES';
      delete h.DeidentificationMethod;
      delete h.DeidentificationMethodCodeSequence;
    }
    const g = s.volume.geometry;
    const { dataset } = buildSegDataset({
      source: s.volume, mask: new Uint8Array(g.rows * g.columns * g.slices), sourceHeaders: s.headers,
      segments: [ischaemicLesionSegment('m', '1')], provenance: provenanceFor([s.seriesInstanceUid]), deployment,
    });
    expect(dataset.PatientIdentityRemoved).toBe('YES');
    expect(String(dataset.DeidentificationMethod)).toMatch(/UNKNOWN/);
    expect(dciodvfy(writePart10(dataset)).errors).toEqual([]);
  });

  test('a method stated by the source is copied as it is', () => {
    const s = smallSeries({ slices: 2 });
    for (const h of s.headers.values()) {
      h.PatientIdentityRemoved = 'YES';
      h.DeidentificationMethod = 'DICOM PS3.15 Basic Profile';
    }
    const g = s.volume.geometry;
    const { dataset } = buildSegDataset({
      source: s.volume, mask: new Uint8Array(g.rows * g.columns * g.slices), sourceHeaders: s.headers,
      segments: [ischaemicLesionSegment('m', '1')], provenance: provenanceFor([s.seriesInstanceUid]), deployment,
    });
    expect(dataset.DeidentificationMethod).toBe('DICOM PS3.15 Basic Profile');
  });
});
