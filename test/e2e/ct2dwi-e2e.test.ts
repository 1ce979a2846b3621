/**
 * CT only, end to end with the real Orthanc peer and the committed models: a CT-only phantom study
 * (fixtures/phantoms/ct/, TEST split) is stored in Orthanc, Orthanc sends it to the node by C-STORE, the node
 * makes a synthetic DWI (ct2dwi), segments the lesion on it (shaspec-missing, DWI only) and the synthetic DWI
 * Secondary Capture series, its SEG and the SR come back into the same study in Orthanc. Checked: dciodvfy
 * reports no error on any of them; the SC series is marked synthetic (SyntheticData, ConversionType SYN,
 * DERIVED\SECONDARY, Synthesizing Equipment, banner) and has the CT's geometry slice by slice; its pixels
 * match the phantom's true DWI with the PSNR/SSIM measured for this phantom through the node's code path
 * (meta.json `expected`, written by models/training/eval_ct2dwi.ts) within a tolerance; the SEG references
 * the SC instances and says it was derived from a synthetic image.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readPart10, seq, str, num, NaturalDataset } from '../../src/dicom/dcmjs';
import { unpackBits } from '../../src/results/seg';
import { placeBanner } from '../../src/results/sc/font';
import { SYNTHETIC_BANNER } from '../../src/results';
import { OrthancHandle } from '../harness/orthanc';
import { dciodvfy } from '../helpers/dciodvfy';
import { loadCtPhantom, dwiMetrics, dice, processThroughOrthanc, writeCtPhantomSeries } from '../helpers/ct-phantom';
import { startNodeWithOrthanc, TestNode } from '../helpers/node';
import { newStudyContext } from '../helpers/series-writer';

const SC_CLASS = '1.2.840.10008.5.1.4.1.1.7';
const SEG_CLASS = '1.2.840.10008.5.1.4.1.1.66.4';
const SR_CLASS = '1.2.840.10008.5.1.4.1.1.88.33';
const FIXTURE = path.resolve(__dirname, '../../fixtures/phantoms/ct/ct-test-5-lesion');

describe('CT-only study end to end: synthetic DWI SC series + SEG through the real Orthanc', () => {
  let t: TestNode;
  let pacs: OrthancHandle;
  beforeAll(async () => {
    ({ node: t, pacs } = await startNodeWithOrthanc());
  });
  afterAll(async () => {
    await t?.stop();
    await pacs?.stop();
  });

  test('CT phantom → node → synthetic DWI SC series, SEG and SR back in Orthanc; valid, in place, matching the true DWI', async () => {
    const ph = loadCtPhantom(FIXTURE);
    const m = ph.meta;
    const expected = m.expected?.ct2dwi;
    if (!expected) throw new Error('fixture meta.json has no expected.ct2dwi (run models/training/eval_ct2dwi.ts on it)');
    const ctx = newStudyContext();
    const ct = writeCtPhantomSeries(ph, ctx, 'Head non-contrast 5mm');
    const job = await processThroughOrthanc(pacs, t, ct, 120000);
    expect(job.state).toBe('done');
    const outcome = job.outcome as { decision: string; model: { name: string }; synthesisModel: { name: string }; note: string; lesionVolumeMl: number };
    expect(outcome.decision).toBe('ct-synthesis');
    expect(outcome.synthesisModel.name).toBe('ct2dwi');
    expect(outcome.model.name).toBe('shaspec-missing');
    expect(outcome.note).toMatch(/SYNTHETIC/);

    const studies = await pacs.findStudies({ StudyInstanceUID: ctx.studyInstanceUid });
    expect(studies).toHaveLength(1);
    const instances = await pacs.get<{ ID: string }[]>(`/studies/${studies[0]}/instances`);
    const parsed = await Promise.all(
      instances.map(async (i) => {
        const b = Buffer.from(await (await fetch(`${pacs.httpUrl}/instances/${i.ID}/file`)).arrayBuffer());
        return { b, ds: readPart10(b).dataset };
      }),
    );
    const byClass = (c: string) => parsed.filter((x) => str(x.ds, 'SOPClassUID') === c);
    const scs = byClass(SC_CLASS);
    const segs = byClass(SEG_CLASS);
    const srs = byClass(SR_CLASS);
    expect(scs).toHaveLength(m.slices);
    expect(segs).toHaveLength(1);
    expect(srs).toHaveLength(1);
    for (const x of [...scs, ...segs, ...srs]) expect(dciodvfy(x.b).errors).toEqual([]);

    // ---- the SC series: synthetic, and the CT's geometry slice by slice
    const ctSlice = new Map(ct.files.map((f) => [f.sopInstanceUid, f.sliceIndex]));
    const plane = m.rows * m.columns;
    const synth = new Float32Array(plane * m.slices);
    const scSlice = new Map<string, number>();
    const seriesUids = new Set<string>();
    for (const { ds } of scs) {
      seriesUids.add(str(ds, 'SeriesInstanceUID')!);
      expect(str(ds, 'SyntheticData')).toBe('YES');
      expect(str(ds, 'ConversionType')).toBe('SYN');
      expect(ds.ImageType).toEqual(['DERIVED', 'SECONDARY']);
      expect(str(ds, 'BurnedInAnnotation')).toBe('YES');
      expect(str(ds, 'SeriesDescription')).toMatch(/SYNTHETIC/);
      expect(str(ds, 'ImageComments')).toMatch(/SYNTHETIC/);
      const purpose = seq(seq(ds, 'ContributingEquipmentSequence')[0], 'PurposeOfReferenceCodeSequence')[0];
      expect(str(purpose, 'CodeValue')).toBe('109100');
      expect(str(ds, 'FrameOfReferenceUID')).toBe(ctx.frameOfReferenceUid);
      const src = seq(ds, 'SourceImageSequence');
      expect(src).toHaveLength(1);
      const z = ctSlice.get(str(src[0], 'ReferencedSOPInstanceUID')!);
      expect(z).toBeDefined();
      // same place and orientation as the CT slice it was made from
      const ipp = (ds.ImagePositionPatient as (string | number)[]).map(Number);
      const ctIpp = ct.volume.geometry.slicePositions[z!];
      ipp.forEach((v, k) => expect(v).toBeCloseTo(ctIpp[k], 2));
      expect((ds.ImageOrientationPatient as (string | number)[]).map(Number)).toEqual([...m.imageOrientationPatient]);
      expect((ds.PixelSpacing as (string | number)[]).map(Number)[0]).toBeCloseTo(m.pixelSpacing[0], 4);
      expect(num(ds, 'InstanceNumber')).toBe(z! + 1);
      expect(num(ds, 'Rows')).toBe(m.rows);
      const px = new Uint16Array((ds.PixelData as ArrayBuffer[])[0]);
      synth.set(px.subarray(0, plane), z! * plane);
      scSlice.set(str(ds, 'SOPInstanceUID')!, z!);
    }
    expect(seriesUids.size).toBe(1);
    expect(new Set(scSlice.values()).size).toBe(m.slices);

    // ---- pixels vs the phantom's true DWI, over the brain minus the burned-in banner box
    const banner = placeBanner(SYNTHETIC_BANNER, m.rows, m.columns);
    const region = Uint8Array.from(ph.brain);
    for (let z = 0; z < m.slices; z++) {
      for (let r = banner.y; r < banner.y + banner.boxHeight; r++) for (let c = banner.x; c < banner.x + banner.boxWidth; c++) region[z * plane + r * m.columns + c] = 0;
    }
    const got = dwiMetrics(synth, ph.dwiTrue, region, m.rows, m.columns);
    // expected: the node-path measurement of this phantom (eval_ct2dwi.ts, no banner, whole brain)
    expect(Math.abs(got.psnr - expected.psnr)).toBeLessThan(0.5);
    expect(Math.abs(got.ssim - expected.ssim)).toBeLessThan(0.02);

    // ---- the SEG: on the synthetic images, says so, lesion where the phantom has it (as measured)
    const seg = segs[0].ds as NaturalDataset;
    expect(str(seg, 'SeriesDescription')).toMatch(/^SYNTHETIC-INPUT .*; infarct not excluded$/);
    expect(str(seg, 'ContentDescription')).toMatch(/SYNTHETIC.*empty does not exclude infarct/);
    expect(str(seq(seg, 'SegmentSequence')[0], 'SegmentDescription')).toMatch(/does not exclude infarct/);
    expect(str(seg, 'FrameOfReferenceUID')).toBe(ctx.frameOfReferenceUid);
    const refSeries = seq(seg, 'ReferencedSeriesSequence').map((s) => str(s, 'SeriesInstanceUID'));
    expect(refSeries).toEqual([...seriesUids]);
    expect(JSON.stringify(seg)).toContain('SYNTHETIC');
    const frames = num(seg, 'NumberOfFrames')!;
    expect(frames).toBe(m.slices);
    const bits = unpackBits(new Uint8Array((seg.PixelData as ArrayBuffer[])[0]), frames, plane);
    const found = new Uint8Array(plane * m.slices);
    seq(seg, 'PerFrameFunctionalGroupsSequence').forEach((fg, i) => {
      const ref = seq(seq(fg, 'DerivationImageSequence')[0], 'SourceImageSequence')[0];
      const z = scSlice.get(str(ref, 'ReferencedSOPInstanceUID')!);
      if (z === undefined) throw new Error('SEG frame references an instance outside the synthetic series');
      found.set(bits[i], z * plane);
    });
    if (expected.diceSynthetic !== undefined) expect(Math.abs(dice(found, ph.mask) - expected.diceSynthetic)).toBeLessThan(0.05);
    expect(JSON.stringify(srs[0].ds)).toContain(str(seg, 'SOPInstanceUID')!);
    // the SR's text: an empty result on the synthetic DWI must not be read as "no infarct"
    expect(JSON.stringify(srs[0].ds)).toContain('must not be read as \\"no infarct\\"');
  });
});
