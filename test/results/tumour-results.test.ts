/**
 * Brain tumour results (src/results/tumour.ts) on a real BraTS 2018 TEST-split case written as a
 * clinical DICOM study (test/helpers/brats-study.ts): FLAIR at 256² (the reference series), T1 and
 * T2 at 240², 30 x 5 mm, T1C missing, instances written in shuffled order. The expert labels on the
 * FLAIR grid stand in for the model's prediction: the writer is tested here, not the model.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { nums, readPart10, seq, str, type NaturalDataset } from '../../src/dicom/dcmjs';
import { Codes } from '../../src/results/codes';
import { unpackBits } from '../../src/results/seg';
import { buildTumourSeg, writeTumourResults, type TumourResultInput } from '../../src/results/tumour';
import type { Vec3, Volume } from '../../src/types';
import { bratsCaseAvailable, bratsRoot, writeBratsStudy, type BratsSeries, type BratsStudy } from '../helpers/brats-study';
import { readNifti } from '../helpers/nifti';
import { dciodvfy } from '../helpers/dciodvfy';
import { deployment, provenanceFor } from './fixtures';

const CASE = 'Brats18_TCIA02_370_1'; // TEST split
const have = bratsCaseAvailable(CASE);

function expectValid(buf: Buffer, iod: string): void {
  const r = dciodvfy(buf);
  if (r.warnings.length) console.info(`dciodvfy warnings (${iod}):\n${r.warnings.join('\n')}`);
  expect(r.iod).toBe(iod);
  expect(r.errors).toEqual([]);
}

/** Depth-first search of SR content items by concept code value. */
function find(items: NaturalDataset[], codeValue: string): NaturalDataset[] {
  const out: NaturalDataset[] = [];
  for (const it of items) {
    if (seq(it, 'ConceptNameCodeSequence')[0]?.CodeValue === codeValue) out.push(it);
    out.push(...find(seq(it, 'ContentSequence'), codeValue));
  }
  return out;
}

/**
 * The volume as the node's study stage builds it, done independently here: headers taken in the order
 * the files came (shuffled), sorted by position along the normal, not by InstanceNumber or list order.
 */
function assembleFromFiles(s: BratsSeries): { volume: Volume; headers: Map<string, NaturalDataset> } {
  const headers = new Map<string, NaturalDataset>();
  for (const f of s.files) {
    const ds = readPart10(f.part10, { untilPixelData: true }).dataset;
    headers.set(String(ds.SOPInstanceUID), ds);
  }
  const any = headers.values().next().value as NaturalDataset;
  const iop = nums(any, 'ImageOrientationPatient');
  const r: Vec3 = [iop[0], iop[1], iop[2]];
  const c: Vec3 = [iop[3], iop[4], iop[5]];
  const n: Vec3 = [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]];
  const sorted = [...headers.values()]
    .map((h) => ({ h, ipp: nums(h, 'ImagePositionPatient') as Vec3 }))
    .sort((a, b) => a.ipp[0] * n[0] + a.ipp[1] * n[1] + a.ipp[2] * n[2] - (b.ipp[0] * n[0] + b.ipp[1] * n[1] + b.ipp[2] * n[2]));
  const g = s.volume.geometry;
  const volume: Volume = {
    ...s.volume,
    geometry: { ...g, slicePositions: sorted.map((x) => x.ipp) },
    sliceSources: sorted.map((x) => ({ sopInstanceUid: String(x.h.SOPInstanceUID), sopClassUid: String(x.h.SOPClassUID), seriesInstanceUid: s.seriesInstanceUid })),
  };
  return { volume, headers };
}

function countLabels(labels: Uint8Array): [number, number, number] {
  const n: [number, number, number] = [0, 0, 0];
  for (const v of labels) if (v) n[v - 1]++;
  return n;
}

(have ? describe : describe.skip)(`tumour SEG and SR on BraTS ${CASE} written as a DICOM study`, () => {
  let st: BratsStudy;
  let flair: BratsSeries;
  let input: TumourResultInput;
  let segDs: NaturalDataset;
  let srDs: NaturalDataset;
  let res: ReturnType<typeof writeTumourResults>;
  let ref: { volume: Volume; headers: Map<string, NaturalDataset> };

  beforeAll(() => {
    st = writeBratsStudy({ caseId: CASE, sequences: ['FLAIR', 'T1', 'T2'], matrix: { FLAIR: 256 }, instanceOrder: 'shuffled' });
    flair = st.series.FLAIR as BratsSeries;
    ref = assembleFromFiles(flair);
    // labels in the assembled (position) order: the writer gets what the pipeline would give it
    const ppf = flair.volume.geometry.rows * flair.volume.geometry.columns;
    const zOf = new Map(flair.volume.sliceSources.map((s, z) => [s.sopInstanceUid, z]));
    const labels = new Uint8Array(flair.truth.length);
    ref.volume.sliceSources.forEach((s, z) => {
      const zt = zOf.get(s.sopInstanceUid) as number;
      labels.set(flair.truth.subarray(zt * ppf, (zt + 1) * ppf), z * ppf);
    });
    input = {
      source: ref.volume,
      labels,
      sourceHeaders: ref.headers,
      sequences: { present: ['FLAIR', 'T1', 'T2'], missing: ['T1C'], seriesUids: { FLAIR: flair.seriesInstanceUid } },
      algorithmName: 'shaspec-brats',
      algorithmVersion: '0.1.0',
      provenance: { ...provenanceFor(st.list.map((s) => s.seriesInstanceUid)), modelName: 'shaspec-brats', modelVersion: '0.1.0' },
      deployment: { ...deployment, disclaimer: 'NOT FOR CLINICAL USE' },
    };
    res = writeTumourResults(input);
    segDs = readPart10(res.seg.part10).dataset;
    srDs = readPart10(res.sr.part10).dataset;
  });

  test('the NIfTI reader agrees with nibabel on this case (affine, a voxel, the label counts)', () => {
    const dir = path.join(bratsRoot(), CASE);
    const flairNii = readNifti(path.join(dir, `${CASE}_flair.nii.gz`));
    expect(flairNii.dims).toEqual([240, 240, 155]);
    // nibabel: sform (code 1) = qform (code 2) = [[-1,0,0,0],[0,-1,0,239],[0,0,1,0]]
    expect(flairNii.affine.slice(0, 3).map((r) => r.map((v) => v + 0))).toEqual([
      [-1, 0, 0, 0],
      [0, -1, 0, 239],
      [0, 0, 1, 0],
    ]);
    expect(flairNii.data[(77 * 240 + 120) * 240 + 100]).toBe(238); // nibabel dataobj[100, 120, 77]
    const seg = readNifti(path.join(dir, `${CASE}_seg.nii.gz`));
    const counts = [0, 0, 0, 0, 0];
    for (const v of seg.data) counts[v]++;
    expect(counts).toEqual([8820806, 24961, 51852, 0, 30381]); // nibabel np.unique
  });

  test('the written study: clinical geometry from the NIfTI affine, one frame of reference, the acquisition tags', () => {
    expect(st.list.map((s) => s.sequence)).toEqual(['FLAIR', 'T1', 'T2']);
    const t1 = st.series.T1 as BratsSeries;
    expect(flair.volume.geometry.rows).toBe(256);
    expect(t1.volume.geometry.rows).toBe(240);
    expect(flair.volume.geometry.slices).toBe(30);
    expect(flair.volume.geometry.sliceSpacing).toBe(5);
    // nibabel: affine diag(-1, -1, 1), offset (0, 239, 0) RAS → LPS (i, j - 239, k); slab k = 2..151,
    // first thick slice centred on k = 4; T1 native grid: first pixel (0, -239, 4)
    expect(t1.volume.geometry.slicePositions[0]).toEqual([0, -239, 4]);
    expect(t1.volume.geometry.slicePositions[29][2]).toBe(149);
    // thick slice 15 = mean of k 77..81; nibabel: t1[100, 120, 77:82] = 311 315 319 323 326 → 318.8,
    // t1[60, 140, 77:82] → 293.8 (column = i, row = j)
    expect(t1.volume.data[(15 * 240 + 120) * 240 + 100]).toBe(319);
    expect(t1.volume.data[(15 * 240 + 140) * 240 + 60]).toBe(294);
    // FLAIR 256 over the same 240 mm: first pixel centre half a 0.9375 mm pixel from the edge
    const p = flair.volume.geometry.slicePositions[0];
    expect(p[0]).toBeCloseTo(-0.5 + 0.46875, 6);
    expect(p[1]).toBeCloseTo(-239 - 0.5 + 0.46875, 6);
    const h = (s: BratsSeries): NaturalDataset => s.headers.values().next().value as NaturalDataset;
    expect(new Set(st.list.map((s) => str(h(s), 'FrameOfReferenceUID'))).size).toBe(1);
    expect(nums(h(flair), 'ImageOrientationPatient')).toEqual([1, 0, 0, 0, 1, 0]);
    expect(nums(h(flair), 'InversionTime')).toEqual([2500]);
    expect(str(h(flair), 'SeriesDescription')).toBe('AX T2 FLAIR');
    expect(h(t1).ContrastBolusAgent).toBeUndefined();
    expect(h(flair).ImageType).toEqual(['ORIGINAL', 'PRIMARY', 'M', 'ND']);
    // shuffled: the first file written is not the lowest slice
    expect(flair.files.map((f) => f.sliceIndex)).not.toEqual([...Array(30).keys()]);
    expectValid(flair.files[0].part10, 'MRImage');
    // the truth has all three sub-regions on the written grid
    const n = countLabels(flair.truth);
    expect(n.every((x) => x > 100)).toBe(true);
    // ... with the volumes of the 1 mm expert labels (nibabel: 24961, 51852, 30381 voxels of 1 mm³) within
    // 5 %: the 5 mm / 256² resampling keeps the anatomy's size (all of the tumour lies inside the slab)
    const g = flair.volume.geometry;
    const voxelMl = (g.pixelSpacing[0] * g.pixelSpacing[1] * g.sliceSpacing) / 1000;
    [24.961, 51.852, 30.381].forEach((ml, k) => expect(Math.abs(n[k] * voxelMl - ml) / ml).toBeLessThan(0.05));
  });

  test('T1C carries the contrast agent; every written MR instance kind is dciodvfy-clean', () => {
    const s = writeBratsStudy({ caseId: CASE, sequences: ['T1C'], slices: 4 });
    const h = s.list[0].headers.values().next().value as NaturalDataset;
    expect(h.ContrastBolusAgent).toBe('Gadobutrol');
    expect(str(h, 'SeriesDescription')).toBe('AX T1 SE +C');
    expectValid(s.list[0].files[0].part10, 'MRImage');
  });

  test('SEG: dciodvfy-clean, three segments with the CID 7169 codes, labels and distinct colours', () => {
    expectValid(res.seg.part10, 'Segmentation');
    expect(segDs.StudyInstanceUID).toBe(st.study.studyInstanceUid);
    expect(segDs.FrameOfReferenceUID).toBe(st.study.frameOfReferenceUid);
    expect(segDs.SegmentsOverlap).toBe('NO');
    expect(segDs.ContentLabel).toBe('AI_TUMOUR');
    const segs = seq(segDs, 'SegmentSequence');
    expect(segs.map((s) => s.SegmentNumber)).toEqual([1, 2, 3]);
    expect(segs.map((s) => s.SegmentLabel)).toEqual(['Necrotic / non-enhancing tumour core', 'Peritumoural oedema', 'Enhancing tumour']);
    const types = segs.map((s) => seq(s, 'SegmentedPropertyTypeCodeSequence')[0]);
    expect(types.map((t) => [t.CodeValue, t.CodingSchemeDesignator])).toEqual([
      ['C81175', 'NCIt'],
      ['79654002', 'SCT'],
      ['C113842', 'NCIt'],
    ]);
    for (const s of segs) {
      expect(seq(s, 'SegmentedPropertyCategoryCodeSequence')[0].CodeValue).toBe(Codes.MorphologicallyAbnormalStructure.value);
      expect(seq(s, 'AnatomicRegionSequence')[0].CodeValue).toBe(Codes.Brain.value);
      expect(s.SegmentAlgorithmType).toBe('AUTOMATIC');
    }
    expect(new Set(segs.map((s) => nums(s, 'RecommendedDisplayCIELabValue').join())).size).toBe(3);
    // every referenced instance of the reference series listed; 3 x 30 frames, empty ones too
    const refs = seq(seq(segDs, 'ReferencedSeriesSequence')[0], 'ReferencedInstanceSequence');
    expect(new Set(refs.map((r) => r.ReferencedSOPInstanceUID))).toEqual(new Set(flair.files.map((f) => f.sopInstanceUid)));
    expect(segDs.NumberOfFrames).toBe(90);
    expect(String(segDs.ImageComments)).toContain('missing T1C');
    expect(String(segDs.ImageComments)).toContain('NOT FOR CLINICAL USE');
    expect(seq(segDs, 'ContributingEquipmentSequence')[0].ContributionDescription).toContain('shaspec-brats 0.1.0');
  });

  /** Frames whose content differs from the truth at their referenced source instance's slice. */
  function misplacedFrames(ds: NaturalDataset): number {
    const g = flair.volume.geometry;
    const ppf = g.rows * g.columns;
    const frames = unpackBits(new Uint8Array((ds.PixelData as ArrayBuffer[])[0]), Number(ds.NumberOfFrames), ppf);
    const sliceOf = new Map(flair.files.map((f) => [f.sopInstanceUid, f.sliceIndex])); // what the writer of the study knows
    let bad = 0;
    seq(ds, 'PerFrameFunctionalGroupsSequence').forEach((pf, f) => {
      const segNo = Number(seq(pf, 'SegmentIdentificationSequence')[0].ReferencedSegmentNumber);
      const uid = String(seq(seq(pf, 'DerivationImageSequence')[0], 'SourceImageSequence')[0].ReferencedSOPInstanceUID);
      const z = sliceOf.get(uid);
      if (z === undefined) throw new Error(`frame ${f + 1} references ${uid}, not an instance of the reference series`);
      const ipp = nums(seq(pf, 'PlanePositionSequence')[0], 'ImagePositionPatient');
      const own = nums(ref.headers.get(uid) as NaturalDataset, 'ImagePositionPatient');
      if (ipp.some((v, a) => Math.abs(v - own[a]) > 1e-3)) bad++;
      const truth = flair.truth.subarray(z * ppf, (z + 1) * ppf);
      for (let i = 0; i < ppf; i++) {
        if (frames[f][i] !== (truth[i] === segNo ? 1 : 0)) {
          bad++;
          break;
        }
      }
    });
    return bad;
  }

  test('slice order: every frame lies on its own source instance and holds the truth of that slice (instances given shuffled)', () => {
    expect(misplacedFrames(segDs)).toBe(0);
    const g = flair.volume.geometry;
    const ppf = g.rows * g.columns;
    let nonEmptySlices = 0;
    for (let z = 0; z < g.slices; z++) if (flair.truth.subarray(z * ppf, (z + 1) * ppf).some((v) => v > 0)) nonEmptySlices++;
    expect(nonEmptySlices).toBeGreaterThan(10); // the tumour spans many slices: a misorder would show
    expect(nonEmptySlices).toBeLessThan(30); // and empty frames are written too
    // The check can fail: labels reversed in z (what a list-order writer produces) are caught.
    const rev = new Uint8Array(input.labels.length);
    for (let z = 0; z < g.slices; z++) rev.set(input.labels.subarray(z * ppf, (z + 1) * ppf), (g.slices - 1 - z) * ppf);
    const wrongSeg = readPart10(buildTumourSeg({ ...input, labels: rev }).seg.part10).dataset;
    expect(misplacedFrames(wrongSeg)).toBeGreaterThan(20);
    // The writer's guard: a volume whose sources follow the (shuffled) file order is refused before writing.
    const wrong: Volume = { ...ref.volume, sliceSources: flair.files.map((f) => ({ sopInstanceUid: f.sopInstanceUid, sopClassUid: flair.sopClassUid, seriesInstanceUid: flair.seriesInstanceUid })) };
    expect(() => buildTumourSeg({ ...input, source: wrong })).toThrow(/slice-to-source mapping is wrong/);
  });

  test('SR: dciodvfy-clean TID 1500, volumes = label counts x voxel volume, sequences present and missing', () => {
    expectValid(res.sr.part10, 'ComprehensiveSR');
    const g = flair.volume.geometry;
    const voxelMl = (g.pixelSpacing[0] * g.pixelSpacing[1] * g.sliceSpacing) / 1000;
    const [n1, n2, n3] = countLabels(flair.truth);
    const want: Record<string, number> = {
      'Necrotic / non-enhancing tumour core': n1 * voxelMl,
      'Peritumoural oedema': n2 * voxelMl,
      'Enhancing tumour': n3 * voxelMl,
      'Whole tumour (core + oedema + enhancing)': (n1 + n2 + n3) * voxelMl,
      'Tumour core (core + enhancing)': (n1 + n3) * voxelMl,
    };
    const content = seq(srDs, 'ContentSequence');
    const groups = find(content, Codes.MeasurementGroup.value);
    expect(groups).toHaveLength(5);
    const segNumbers: number[][] = [];
    const composite: Record<string, string> = {};
    for (const gr of groups) {
      const label = String(find(seq(gr, 'ContentSequence'), Codes.TrackingIdentifier.value)[0].TextValue);
      const vol = find(seq(gr, 'ContentSequence'), Codes.Volume.value)[0];
      const mv = seq(vol, 'MeasuredValueSequence')[0];
      expect(seq(mv, 'MeasurementUnitsCodeSequence')[0].CodeValue).toBe('ml');
      expect(seq(find(seq(vol, 'ContentSequence'), Codes.MeasurementMethod.value)[0], 'ConceptCodeSequence')[0].CodeValue).toBe(
        Codes.SumOfSegmentedVoxelVolumes.value,
      );
      expect(Number(mv.NumericValue)).toBeCloseTo(want[label], 3);
      const params = String(find(seq(gr, 'ContentSequence'), Codes.AlgorithmParameters.value)[0].TextValue);
      expect(params).toBe('sequences present FLAIR, T1, T2; missing T1C; synthesised none');
      const refItems = find(seq(gr, 'ContentSequence'), Codes.ReferencedSegment.value);
      if (refItems.length === 0) {
        // TID 1501 (a region made of several segments): no image reference at all, a comment names the segments
        expect(seq(gr, 'ContentSequence').some((c) => c.ValueType === 'IMAGE')).toBe(false);
        composite[label] = String(find(seq(gr, 'ContentSequence'), Codes.Comment.value)[0].TextValue);
        continue;
      }
      // TID 1411 row 7: one Referenced Segment item, one SEG, exactly one segment number
      expect(refItems).toHaveLength(1);
      const sops = seq(refItems[0], 'ReferencedSOPSequence');
      expect(sops).toHaveLength(1);
      expect(sops[0].ReferencedSOPInstanceUID).toBe(res.seg.sopInstanceUid);
      const rn = sops[0].ReferencedSegmentNumber;
      const numbers = (Array.isArray(rn) ? rn : [rn]).map(Number);
      expect(numbers).toHaveLength(1);
      segNumbers.push(numbers);
    }
    expect(segNumbers).toEqual([[1], [2], [3]]);
    expect(composite).toEqual({
      'Whole tumour (core + oedema + enhancing)': `Sum of segments 1 (Necrotic / non-enhancing tumour core) + 2 (Peritumoural oedema) + 3 (Enhancing tumour) of segmentation ${res.seg.sopInstanceUid}.`,
      'Tumour core (core + enhancing)': `Sum of segments 1 (Necrotic / non-enhancing tumour core) + 3 (Enhancing tumour) of segmentation ${res.seg.sopInstanceUid}.`,
    });
    expect(res.volumes.wholeTumour).toBeCloseTo(want['Whole tumour (core + oedema + enhancing)'], 9);
    expect(res.seg.segmentVolumesMl[2]).toBeCloseTo(n3 * voxelMl, 9);
    const comments = find(content, Codes.Comment.value).map((c) => String(c.TextValue));
    expect(comments).toContain(`Sequences present: FLAIR (series ${flair.seriesInstanceUid}), T1, T2.`);
    expect(comments).toContain('Sequences missing, the model ran without them: T1C.');
    expect(comments).toContain('No sequence was synthesised.');
    expect(comments.join(' ')).toContain('model shaspec-brats 0.1.0');
    expect(String(srDs.SeriesDescription)).toBe(`AI tumour measurements WT ${want['Whole tumour (core + oedema + enhancing)'].toFixed(1)} mL`);
    // DCMTK parses it as an SR document
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tumour-sr-'));
    const file = path.join(dir, 'sr.dcm');
    fs.writeFileSync(file, res.sr.part10);
    const r = spawnSync('dsrdump', [file], { encoding: 'utf8' });
    fs.rmSync(dir, { recursive: true, force: true });
    if (!r.error) {
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('Imaging Measurement Report');
      expect(r.stdout).toContain('Enhancing Lesion');
      expect(r.stdout).toContain('Sum of segments 1');
    }
  });

  test('synthesised sequences: the SEG and SR say so', () => {
    const syn = writeTumourResults({ ...input, sequences: { present: ['FLAIR', 'T1', 'T1C', 'T2'], missing: [], synthesised: ['T1C'] } });
    const seg = readPart10(syn.seg.part10).dataset;
    expect(String(seg.ImageComments)).toMatch(/^SYNTHESISED SEQUENCE\(S\) USED: T1C/);
    expect(String(seg.SeriesDescription)).toContain('(synth T1C)');
    expect(String(seg.ContentDescription)).toContain('synthesised T1C');
    expectValid(syn.seg.part10, 'Segmentation');
    const sr = readPart10(syn.sr.part10).dataset;
    const qual = find(seq(sr, 'ContentSequence'), Codes.QualitativeEvaluations.value)[0];
    const comments = find(seq(qual, 'ContentSequence'), Codes.Comment.value).map((c) => String(c.TextValue));
    expect(comments[0]).toMatch(/^SYNTHESISED SEQUENCE\(S\) USED: T1C/);
    expect(comments).toContain('No sequence missing: the model had FLAIR, T1, T1C and T2.');
  });

  test('refuses inputs that would write a wrong object', () => {
    const bad = new Uint8Array(input.labels);
    bad[bad.length - 1] = 4; // BraTS "4" not renumbered
    expect(() => buildTumourSeg({ ...input, labels: bad })).toThrow(/0\.\.3/);
    expect(() => buildTumourSeg({ ...input, voxelVolumeMm3: 1 })).toThrow(/not on this grid/);
    expect(() => buildTumourSeg({ ...input, sequences: { present: ['FLAIR'], missing: ['FLAIR', 'T1'] } })).toThrow(/present and missing/);
    expect(() => buildTumourSeg({ ...input, sequences: { present: ['FLAIR'], missing: ['T1C'], synthesised: ['T1C'] } })).toThrow(/synthesised/);
  });
});
