/**
 * Cross-stage contract: volumes assembled by the study stage from REAL scanner data (Siemens XA30
 * enhanced multi-frame; GE classic single-frame DWI) give SEGs that dciodvfy accepts and whose frames
 * reference the source instance/frame at the same position.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readPart10, nums, seq, str, type NaturalDataset } from '../../src/dicom/dcmjs';
import { assembleStudy } from '../../src/study';
import { sourceSlicePosition } from '../../src/results/common';
import { buildSeg, ischaemicLesionSegment } from '../../src/results/seg';
import type { StoredInstance, Volume } from '../../src/types';
import { dciodvfy } from '../helpers/dciodvfy';
import { deployment, provenanceFor, staircaseMask } from './fixtures';

const SHARED = process.env.STROKE_SHARED_DATA ?? path.resolve(__dirname, '../../../shared/data');

function stored(dir: string): StoredInstance[] {
  return fs
    .readdirSync(dir)
    .filter((f) => !f.startsWith('.'))
    .map((f) => {
      const p = path.join(dir, f);
      const { dataset, transferSyntaxUid } = readPart10(fs.readFileSync(p), { untilPixelData: true });
      return {
        sopInstanceUid: String(dataset.SOPInstanceUID),
        sopClassUid: String(dataset.SOPClassUID),
        studyInstanceUid: String(dataset.StudyInstanceUID),
        seriesInstanceUid: String(dataset.SeriesInstanceUID),
        transferSyntaxUid,
        path: p,
        bytes: fs.statSync(p).size,
        receivedAt: new Date().toISOString(),
        sourceAe: 'TEST',
      };
    });
}

function checkSeg(vol: Volume, headers: Map<string, NaturalDataset>): void {
  const g = vol.geometry;
  const seg = buildSeg({
    source: vol, mask: staircaseMask(g.rows, g.columns, g.slices), sourceHeaders: headers,
    segments: [ischaemicLesionSegment('m', '1')], provenance: provenanceFor([vol.seriesInstanceUid]), deployment,
  });
  const r = dciodvfy(seg.part10);
  expect(r.errors).toEqual([]);
  const ds = readPart10(seg.part10).dataset;
  const pf = seq(ds, 'PerFrameFunctionalGroupsSequence');
  expect(pf).toHaveLength(g.slices);
  pf.forEach((f, z) => {
    const src = seq(seq(f, 'DerivationImageSequence')[0], 'SourceImageSequence')[0];
    const uid = String(str(src, 'ReferencedSOPInstanceUID'));
    const fn = src.ReferencedFrameNumber === undefined ? undefined : Number(([] as unknown[]).concat(src.ReferencedFrameNumber)[0]);
    const h = headers.get(uid) as NaturalDataset;
    const p = sourceSlicePosition(h, { sopInstanceUid: uid, sopClassUid: String(h.SOPClassUID), seriesInstanceUid: '', frameNumber: fn });
    const ipp = nums(seq(f, 'PlanePositionSequence')[0], 'ImagePositionPatient');
    expect(p).toBeDefined();
    p!.forEach((v, i) => expect(Math.abs(v - ipp[i])).toBeLessThan(1e-3));
    expect(uid).toBe(vol.sliceSources[z].sopInstanceUid);
  });
}

const XA30 = path.join(SHARED, 'dicom/siemens-xa30-enhanced-dwi');
const GE = path.join(SHARED, 'dicom/ge-dwi/04_Ax_DWI_TENSOR_R2MB2');

(fs.existsSync(XA30) ? test : test.skip)('Siemens XA30 enhanced TRACEW + ADC assembled by study/ → valid SEG on each', async () => {
  const inst = [...stored(path.join(XA30, '11_DWI_dir80_PA')), ...stored(path.join(XA30, '12_DWI_dir80_PA'))];
  const st = await assembleStudy(inst);
  expect(st.volumes.DWI ?? st.volumes.ADC).toBeDefined();
  for (const v of [st.volumes.DWI, st.volumes.ADC]) if (v) checkSeg(v, st.headers);
});

(fs.existsSync(GE) ? test : test.skip)('GE classic single-frame DWI assembled by study/ → valid SEG', async () => {
  const st = await assembleStudy(stored(GE));
  const v = st.volumes.DWI ?? st.volumes.DWI_B0;
  expect(v).toBeDefined();
  checkSeg(v as Volume, st.headers);
});
