import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readPart10, seq, str, type NaturalDataset } from '../../src/dicom/dcmjs';
import { buildSeg, ischaemicLesionSegment, SEG_SOP_CLASS_UID } from '../../src/results/seg';
import { writeMeasurementSr, COMPREHENSIVE_SR } from '../../src/results/sr';
import { adcCoreVolumeMl } from '../../src/results/measure';
import { dciodvfy } from '../helpers/dciodvfy';
import { deployment, provenanceFor, smallSeries, staircaseMask } from './fixtures';

/** Depth-first search of SR content items by concept code value. */
function find(items: NaturalDataset[], codeValue: string): NaturalDataset[] {
  const out: NaturalDataset[] = [];
  for (const it of items) {
    if (seq(it, 'ConceptNameCodeSequence')[0]?.CodeValue === codeValue) out.push(it);
    out.push(...find(seq(it, 'ContentSequence'), codeValue));
  }
  return out;
}

describe('writeMeasurementSr (TID 1500)', () => {
  const s = smallSeries();
  const g = s.volume.geometry;
  const mask = staircaseMask(g.rows, g.columns, g.slices);
  const prov = provenanceFor([s.seriesInstanceUid]);
  const seg = buildSeg({ source: s.volume, mask, sourceHeaders: s.headers, segments: [ischaemicLesionSegment('dual-encoder-25d', '1.2.0')], provenance: prov, deployment });
  // ADC: 400 on the first 10 lesion voxels, 900 elsewhere
  const adc = { ...s.volume, kind: 'ADC' as const, data: new Float32Array(mask.length).fill(900) };
  let k = 0;
  for (let i = 0; i < mask.length && k < 10; i++) if (mask[i]) { adc.data[i] = 400; k++; }
  const coreMl = adcCoreVolumeMl(adc, mask);
  const sr = writeMeasurementSr({
    sourceHeader: s.headers.values().next().value as NaturalDataset,
    sourceSlices: s.volume.sliceSources,
    seg: { sopInstanceUid: seg.sopInstanceUid, seriesInstanceUid: seg.seriesInstanceUid },
    lesionVolumeMl: seg.segmentVolumesMl[0],
    core: { volumeMl: coreMl, region: 'lesion' },
    algorithmName: 'dual-encoder-25d',
    algorithmVersion: '1.2.0',
    provenance: prov,
    deployment: { ...deployment, disclaimer: 'NOT FOR CLINICAL USE' },
  });
  const ds = readPart10(sr.part10).dataset;

  test('dciodvfy reports no error', () => {
    const r = dciodvfy(sr.part10);
    if (r.warnings.length) console.info(`dciodvfy (SR) warnings:\n${r.warnings.join('\n')}`);
    expect(r.iod).toBe('ComprehensiveSR');
    expect(r.errors).toEqual([]);
  });

  test('DCMTK reads it as an SR document with the TID 1500 tree', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sr-'));
    const f = path.join(dir, 'sr.dcm');
    fs.writeFileSync(f, sr.part10);
    const r = spawnSync('dsrdump', [f], { encoding: 'utf8' });
    fs.rmSync(dir, { recursive: true, force: true });
    if (r.error) return; // dsrdump missing: dciodvfy above still ran
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Imaging Measurement Report');
    expect(r.stdout).toContain('Referenced Segment');
  });

  test('the measurement group references the SEG segment and the source series, with volumes in ml', () => {
    expect(ds.SOPClassUID).toBe(COMPREHENSIVE_SR);
    expect(seq(ds, 'ContentTemplateSequence')[0]).toMatchObject({ MappingResource: 'DCMR', TemplateIdentifier: '1500' });
    const content = seq(ds, 'ContentSequence');
    const refSeg = find(content, '121191')[0];
    const ref = seq(refSeg, 'ReferencedSOPSequence')[0];
    expect(ref.ReferencedSOPClassUID).toBe(SEG_SOP_CLASS_UID);
    expect(ref.ReferencedSOPInstanceUID).toBe(seg.sopInstanceUid);
    expect(Number(ref.ReferencedSegmentNumber)).toBe(1);
    expect(find(content, '121232')[0].UID).toBe(s.seriesInstanceUid);
    const vol = find(content, '118565006')[0];
    const mv = seq(vol, 'MeasuredValueSequence')[0];
    expect(Number(mv.NumericValue)).toBeCloseTo(seg.segmentVolumesMl[0], 4);
    expect(seq(mv, 'MeasurementUnitsCodeSequence')[0]).toMatchObject({ CodeValue: 'ml', CodingSchemeDesignator: 'UCUM' });
    const core = find(content, 'ADC620LESION')[0];
    expect(Number(seq(core, 'MeasuredValueSequence')[0].NumericValue)).toBeCloseTo((10 * 1.5 * 1.25 * 5) / 1000, 4);
    expect(find(content, '111001')[0].TextValue).toBe('dual-encoder-25d');
    expect(find(content, '111003')[0].TextValue).toBe('1.2.0');
    // evidence lists the SEG and every source instance
    const ev = seq(seq(ds, 'CurrentRequestedProcedureEvidenceSequence')[0], 'ReferencedSeriesSequence');
    const uids = ev.flatMap((x) => seq(x, 'ReferencedSOPSequence').map((r) => r.ReferencedSOPInstanceUID));
    expect(uids).toContain(seg.sopInstanceUid);
    for (const u of s.headers.keys()) expect(uids).toContain(u);
    expect(ds.StudyInstanceUID).toBe(str(s.headers.values().next().value as NaturalDataset, 'StudyInstanceUID'));
    // provenance
    const comments = find(content, '121106').map((c) => String(c.TextValue));
    expect(comments.join(' ')).toContain(prov.modelSha256);
    expect(comments.join(' ')).toContain('NOT FOR CLINICAL USE');
    expect(seq(ds, 'ContributingEquipmentSequence')).toHaveLength(1);
  });

  test('without ADC the core is omitted and the report says why', () => {
    const r = writeMeasurementSr({
      sourceHeader: s.headers.values().next().value as NaturalDataset, sourceSlices: s.volume.sliceSources,
      seg: { sopInstanceUid: seg.sopInstanceUid, seriesInstanceUid: seg.seriesInstanceUid },
      lesionVolumeMl: 1.5, algorithmName: 'a', algorithmVersion: '1', provenance: { ...prov, synthetic: true }, deployment,
    });
    expect(dciodvfy(r.part10).errors).toEqual([]);
    const c = seq(readPart10(r.part10).dataset, 'ContentSequence');
    expect(find(c, 'ADC620LESION')).toHaveLength(0);
    expect(find(c, '121106').map((x) => String(x.TextValue)).join(' ')).toMatch(/no ADC available.*|SYNTHETIC/);
    expect(String(readPart10(r.part10).dataset.SeriesDescription)).toMatch(/SYNTHETIC/);
    // measured on a synthetic DWI (CT only): a TEXT item says an empty result is not "no infarct"
    const caveat = find(c, '121106').filter((x) => x.ValueType === 'TEXT' && /must not be read as "no infarct"/.test(String(x.TextValue)));
    expect(caveat).toHaveLength(1);
    expect(String(caveat[0].TextValue)).toMatch(/SYNTHETIC DWI computed from the CT/);
  });

  test('an SR measured on an acquired image carries no synthetic caveat', () => {
    const r = writeMeasurementSr({
      sourceHeader: s.headers.values().next().value as NaturalDataset, sourceSlices: s.volume.sliceSources,
      seg: { sopInstanceUid: seg.sopInstanceUid, seriesInstanceUid: seg.seriesInstanceUid },
      lesionVolumeMl: 0, algorithmName: 'a', algorithmVersion: '1', provenance: prov, deployment,
    });
    const c = seq(readPart10(r.part10).dataset, 'ContentSequence');
    expect(find(c, '121106').map((x) => String(x.TextValue)).join(' ')).not.toMatch(/no infarct|SYNTHETIC/);
  });

  test('refuses a negative or non-finite volume', () => {
    expect(() => writeMeasurementSr({
      sourceHeader: s.headers.values().next().value as NaturalDataset, sourceSlices: s.volume.sliceSources,
      seg: { sopInstanceUid: seg.sopInstanceUid, seriesInstanceUid: seg.seriesInstanceUid },
      lesionVolumeMl: Number.NaN, algorithmName: 'a', algorithmVersion: '1', provenance: prov, deployment,
    })).toThrow(/not a non-negative number/);
  });

  test('adcCoreVolumeMl counts only region voxels with 0 < ADC < 620', () => {
    const region = new Uint8Array(mask.length);
    region[0] = region[1] = region[2] = 1;
    const a = { ...adc, data: new Float32Array(mask.length).fill(700) };
    a.data[0] = 619;
    a.data[1] = 0; // background
    a.data[3] = 100; // outside region
    expect(adcCoreVolumeMl(a, region)).toBeCloseTo((1 * 1.5 * 1.25 * 5) / 1000, 9);
  });
});
