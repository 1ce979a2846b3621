/**
 * The liver task on the two real CTs in ../shared/data (issue 16, "tests on the real CTs"), the node's own path:
 *  1. dcmqi's real 3-slice liver CT (seg-examples/segmentations/ct-3slice, 512² @ 0.81 mm, 1.25 mm slices, a CT
 *     colonography: no BodyPartExamined, ProtocolName names the colon) through the study stage (acceptance on its
 *     real header, the lazy loader) and segmentLiver; liver Dice against its expert-drawn dcmqi SEG (liver.dcm, frames
 *     matched to the CT by ReferencedSOPInstanceUID); no tumour is known there, so none may be claimed (the network
 *     of 0.1.0 marks two; since 0.1.1 the post-processing's shape rules, chosen on VAL phantoms, drop both: see the
 *     test's comment). Never used in training (models/training/liver/README.md).
 *  2. TotalSegmentator's example CT (abdomen-ct, 122 x 101 x 112 @ 3 mm, non-contrast) written as a DICOM series;
 *     liver Dice on the slices its label map covers: CT slices 82-111, NOT 0-29 as its header suggests
 *     (models/training/liver/README.md: the lungs and the liver's HU only fit offset 82). NOT independent: the
 *     phantoms are built on this anatomy. The pelvis (slices 0-39, no liver) is reported.
 * No patient attribute is read or printed.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { num, readPart10, seq } from '../../src/dicom/dcmjs';
import type { ModelRegistry } from '../../src/models/registry';
import { segmentLiver } from '../../src/pipelines/liver-ct-mr';
import { unpackBits } from '../../src/results/seg';
import { assembleStudy } from '../../src/study';
import type { StoredInstance } from '../../src/types';
import { liverRegistry, writeAbdomenSeries } from '../helpers/liver-study';
import { readNifti } from '../helpers/nifti';
import { newStudyContext } from '../helpers/series-writer';
import { diceOf, modelReady } from '../helpers/tumour-seg';

const SHARED = process.env.STROKE_SHARED_DATA ?? path.resolve(__dirname, '../../../shared/data');
const CT3 = path.join(SHARED, 'seg-examples/segmentations/ct-3slice');
const CT3_SEG = path.join(SHARED, 'seg-examples/segmentations/liver.dcm');
const TS_CT = path.join(SHARED, 'abdomen-ct/example_ct.nii.gz');
const TS_SEG = path.join(SHARED, 'abdomen-ct/example_seg.nii.gz');
/** The label map's first slice in the CT (models/training/liver/anatomy.py LABEL_OFFSET). */
const LABEL_OFFSET = 82;
/**
 * Floors from the measured values on this path (liver-aqcf 0.1.0: dcmqi 3-slice 0.878, per slice 0.895 / 0.883 /
 * 0.884, 56.2 mL vs 70.4 mL; TotalSegmentator labelled slab 0.967, no liver in the pelvis; the smoke model 0.0.1 gave
 * 0.837 / 0.903), set ~0.1 below so a real regression (wrong orientation, grid or window) fails, not a model update.
 */
const DCMQI_FLOOR = 0.78;
const TOTALSEG_FLOOR = 0.87;

const have = modelReady('liver-aqcf') && fs.existsSync(CT3_SEG) && fs.existsSync(TS_CT);
const maybe = have ? describe : describe.skip;

maybe('liver-aqcf on the real CTs (node path)', () => {
  let registry: ModelRegistry;
  /** The tumours claimed on the dcmqi CT (set by its Dice test). */
  let dcmqiTumours: { ml: number; d: number }[] | undefined;
  beforeAll(async () => {
    registry = await liverRegistry();
  }, 120000);
  afterAll(async () => registry?.close());

  test('dcmqi 3-slice liver CT: accepted as an abdominal CT, liver Dice vs its SEG', async () => {
    const files = fs.readdirSync(CT3).filter((f) => f.endsWith('.dcm')).map((f) => path.join(CT3, f));
    const instances: StoredInstance[] = files.map((p) => {
      const ds = readPart10(fs.readFileSync(p)).dataset;
      return {
        sopInstanceUid: String(ds.SOPInstanceUID),
        sopClassUid: String(ds.SOPClassUID),
        studyInstanceUid: String(ds.StudyInstanceUID),
        seriesInstanceUid: String(ds.SeriesInstanceUID),
        transferSyntaxUid: '1.2.840.10008.1.2.1',
        path: p,
        bytes: fs.statSync(p).size,
        receivedAt: new Date().toISOString(),
        sourceAe: 'TEST',
      };
    });
    const study = await assembleStudy(instances);
    const pick = study.availability.abdomen?.pick;
    expect(pick).toMatchObject({ modality: 'CT', kind: 'CT_NON_CONTRAST' });
    // and the head classifier does not take this non-contrast CT without BodyPartExamined for a head CT (stroke-ct)
    expect(study.availability.available.CT).toBe(false);
    expect(study.availability.abdomen!.series[0].reason).toMatch(/no BodyPartExamined; ProtocolName "6.9 Colonoscopy" names the abdomen or an abdominal organ/);
    const vol = await study.abdomen!.load();
    expect(vol.geometry.slices).toBe(3);
    // truth: the dcmqi SEG's frames on the CT slices by ReferencedSOPInstanceUID
    const seg = readPart10(fs.readFileSync(CT3_SEG)).dataset;
    const rows = num(seg, 'Rows')!;
    const cols = num(seg, 'Columns')!;
    const nf = num(seg, 'NumberOfFrames')!;
    const bits = unpackBits(new Uint8Array((seg.PixelData as ArrayBuffer[])[0]), nf, rows * cols);
    const sliceOf = new Map(vol.sliceSources.map((s, z) => [s.sopInstanceUid, z]));
    const truth = new Uint8Array(vol.data.length);
    seq(seg, 'PerFrameFunctionalGroupsSequence').forEach((fg, i) => {
      const ref = String(seq(seq(fg, 'DerivationImageSequence')[0], 'SourceImageSequence')[0].ReferencedSOPInstanceUID);
      const z = sliceOf.get(ref);
      if (z === undefined) throw new Error('SEG frame references an instance outside the CT');
      bits[i].forEach((b, p) => b && (truth[z * rows * cols + p] = 1));
    });
    const s = await segmentLiver(registry, 'liver-aqcf', vol, 'CT');
    const dice = diceOf(s.labels, truth, [1]);
    const perSlice = [0, 1, 2].map((z) => diceOf(s.labels.subarray(z * rows * cols, (z + 1) * rows * cols).map((v) => (v >= 1 ? 1 : 0)), truth.subarray(z * rows * cols, (z + 1) * rows * cols), [1]));
    console.log(`dcmqi 3-slice CT: liver Dice ${dice.toFixed(3)} (per slice ${perSlice.map((d) => d.toFixed(3)).join(', ')}), liver ${s.measurements.liverMl.toFixed(1)} mL vs ${((truth.reduce((a, b) => a + b, 0) * vol.geometry.pixelSpacing[0] * vol.geometry.pixelSpacing[1] * vol.geometry.sliceSpacing) / 1000).toFixed(1)} mL, tumours ${s.measurements.tumourCount} (${s.measurements.tumours.map((t) => `${t.ml.toFixed(2)} mL / ${t.longestAxialDiameterMm.toFixed(1)} mm`).join(', ') || 'none'}); post-processing: ${s.postprocessing}`);
    expect(diceOf(s.labels.map((v) => (v >= 1 ? 1 : 0)), truth, [1])).toBeGreaterThan(DCMQI_FLOOR);
    dcmqiTumours = s.measurements.tumours.map((t) => ({ ml: t.ml, d: t.longestAxialDiameterMm }));
  }, 120000);

  /**
   * The issue's "no tumour claimed on the 3-slice CT unless one is there". liver-aqcf's network (0.1.0 ONNX, a 2-D
   * phantom-trained model) marks two tumour components here (0.73 mL / 40 mm on all three slices: an in-plane vessel
   * near the hilum; 0.28 mL / 23 mm on one slice only). 0.1.1 adds two shape rules to the post-processing
   * (measure.ts; factors chosen on VAL phantoms, models/training/liver/README.md): a 23 mm "tumour" that ends flat
   * inside the series (nothing on the next slice, 1 mm away) and a component that fills a quarter of its circle
   * (tubular) become liver. Not independent evidence: the rules were designed after this failure; their factors came
   * from VAL, not from this CT. It fails again if the model, the rules or their factors regress.
   */
  test('dcmqi 3-slice liver CT: no tumour claimed (the network marks two; the shape rules drop them)', () => {
    expect(dcmqiTumours).toEqual([]);
  });

  test('TotalSegmentator abdomen CT: liver Dice on its labelled slices 82-111 (not independent), pelvis reported', async () => {
    const ct = readNifti(TS_CT);
    const lab = readNifti(TS_SEG);
    const [nx, ny, nz] = ct.dims;
    expect(lab.dims).toEqual([nx, ny, 30]);
    // RAS NIfTI → axial LPS DICOM: column = reversed i (patient left), row = reversed j (posterior)
    const hu = new Int16Array(nx * ny * nz);
    const truth = new Uint8Array(nx * ny * nz);
    for (let k = 0; k < nz; k++) {
      for (let r = 0; r < ny; r++) {
        for (let c = 0; c < nx; c++) {
          const src = nx - 1 - c + nx * (ny - 1 - r + ny * k);
          const dst = (k * ny + r) * nx + c;
          hu[dst] = Math.max(-1024, Math.round(ct.data[src]));
          if (k >= LABEL_OFFSET && k < LABEL_OFFSET + 30 && lab.data[nx - 1 - c + nx * (ny - 1 - r + ny * (k - LABEL_OFFSET))] === 5) truth[dst] = 1;
        }
      }
    }
    const [px, py, pz] = ct.pixdim;
    expect([px, py, pz]).toEqual([3, 3, 3]);
    const series = writeAbdomenSeries(
      { modality: 'CT', rows: ny, columns: nx, slices: nz, pixelSpacing: [py, px], sliceThickness: pz, sliceSpacing: pz, imagePositionPatientFirst: [0, 0, 0], data: hu, seriesDescription: 'ABDOMEN 3.0', tags: { BodyPartExamined: 'ABDOMEN' } },
      newStudyContext(),
    );
    const s = await segmentLiver(registry, 'liver-aqcf', series.volume, 'CT');
    const plane = nx * ny;
    const slab = (a: Uint8Array, z0: number, z1: number) => a.subarray(z0 * plane, z1 * plane);
    const liverBin = s.labels.map((v) => (v >= 1 ? 1 : 0));
    const dice = diceOf(slab(liverBin, LABEL_OFFSET, nz), slab(truth, LABEL_OFFSET, nz), [1]);
    const ml = (z0: number, z1: number) => (slab(liverBin, z0, z1).reduce((a, b) => a + b, 0) * 27) / 1000;
    console.log(
      `TotalSegmentator CT: liver Dice ${dice.toFixed(3)} on slices 82-111 (not independent); predicted liver mL by slice band 0-39 ${ml(0, 40).toFixed(0)}, 40-59 ${ml(40, 60).toFixed(0)}, 60-81 ${ml(60, 82).toFixed(0)}, 82-111 ${ml(82, nz).toFixed(0)} (truth ${((truth.reduce((a, b) => a + b, 0) * 27) / 1000).toFixed(0)}); tumours ${s.measurements.tumourCount} (${s.measurements.tumours.map((t) => `${t.ml.toFixed(2)} mL / ${t.longestAxialDiameterMm.toFixed(1)} mm`).join(', ') || 'none'}; no tumour is known in this CT)`,
    );
    expect(dice).toBeGreaterThan(TOTALSEG_FLOOR);
  }, 120000);
});
