/**
 * Structural MR sequence identification (FLAIR, T1, T1C, T2) for the brain-tumour task.
 * Real data: the Philips Achieva study and the Siemens XA30 T1 in ../shared/data/dicom (read, never
 * copied; skipped when absent; no patient attribute is printed). Synthetic: in-memory headers shaped
 * as dcmjs returns them, for the edge cases the real files do not cover.
 */
import * as fs from 'fs';
import * as path from 'path';
import { assembleFromHeaders, AssembledStudy, readStudyHeaders } from '../../src/study';
import { classifySeries, ClassifyOptions } from '../../src/study/classify';
import { InstanceHeader, instanceFrames } from '../../src/study/header';
import { NaturalDataset } from '../../src/dicom/dcmjs';
import { StoredInstance } from '../../src/types';
import { DICOM_DATA, instancesIn } from './synth';

const PHILIPS = path.join(DICOM_DATA, 'philips-achieva-brain');
const SIEMENS_T1 = path.join(DICOM_DATA, 'siemens-xa30-enhanced-dwi', '5_anat-T1w_acq-tfl');
const haveReal = fs.existsSync(PHILIPS) && fs.existsSync(SIEMENS_T1);
const realTest = haveReal ? test : test.skip;

/** One synthetic classic MR instance as an InstanceHeader (no file needed). */
function header(extra: NaturalDataset, k = 0): InstanceHeader {
  const ds: NaturalDataset = {
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
    SOPInstanceUID: `1.2.3.4.${k + 1}`,
    SeriesInstanceUID: '1.2.3.4',
    StudyInstanceUID: '1.2.3',
    FrameOfReferenceUID: '1.2.3.9',
    Modality: 'MR',
    ImageType: ['ORIGINAL', 'PRIMARY', 'M', 'ND'],
    Rows: 8,
    Columns: 8,
    ImagePositionPatient: [0, 0, 5 * k],
    ImageOrientationPatient: [1, 0, 0, 0, 1, 0],
    PixelSpacing: [1, 1],
    SliceThickness: 5,
    ...extra,
  };
  const instance: StoredInstance = {
    sopInstanceUid: ds.SOPInstanceUID as string,
    sopClassUid: ds.SOPClassUID as string,
    studyInstanceUid: '1.2.3',
    seriesInstanceUid: '1.2.3.4',
    transferSyntaxUid: '1.2.840.10008.1.2.1',
    path: '/nonexistent',
    bytes: 0,
    receivedAt: '2026-01-01T00:00:00Z',
    sourceAe: 'TEST',
  };
  return { instance, transferSyntaxUid: instance.transferSyntaxUid, ds, frames: instanceFrames(instance, ds) };
}
const cls = (extra: NaturalDataset, opts?: ClassifyOptions) => classifySeries([header(extra, 0), header(extra, 1)], opts);

describe('synthetic FLAIR / T1 / T1C / T2 edge cases', () => {
  test('T1 with ContrastBolusAgent → T1C, the tag named in the reason', () => {
    const c = cls({ RepetitionTime: 550, EchoTime: 12, ContrastBolusAgent: 'Gadovist', SeriesDescription: 'T1 SE' });
    expect(c.classification).toBe('T1C');
    expect(c.reason).toMatch(/ContrastBolusAgent \(0018,0010\) "Gadovist" → post-contrast/);
  });
  test('"NONE" in ContrastBolusAgent is not contrast', () => {
    expect(cls({ RepetitionTime: 550, EchoTime: 12, ContrastBolusAgent: 'NONE' }).classification).toBe('T1');
  });
  test.each<[string, NaturalDataset]>([
    ['ContrastBolusIngredient', { ContrastBolusIngredient: 'GADOLINIUM' }],
    ['ContrastBolusVolume', { ContrastBolusVolume: 7.5 }],
    ['ContrastBolusStartTime', { ContrastBolusStartTime: '101500' }],
    ['ContrastBolusUsageSequence', { ContrastBolusUsageSequence: [{ ContrastBolusAgentNumber: 1, ContrastBolusAgentAdministered: 'YES' }] }],
  ])('T1 with %s → T1C', (name, extra) => {
    const c = cls({ RepetitionTime: 8, EchoTime: 3, FlipAngle: 12, ScanningSequence: 'GR', ...extra });
    expect(c.classification).toBe('T1C');
    expect(c.reason).toContain(name);
  });
  test('FLAIR by inversion time even when the description says T1', () => {
    const c = cls({ RepetitionTime: 9000, EchoTime: 110, InversionTime: 2500, SeriesDescription: 'AX T1 POST GAD' });
    expect(c.classification).toBe('FLAIR');
    expect(c.reason).toMatch(/TI 2500/);
    expect(c.reason).not.toMatch(/SeriesDescription/);
  });
  test('FLAIR from ScanningSequence IR when InversionTime is not sent', () => {
    const c = cls({ RepetitionTime: 8000, EchoTime: 100, ScanningSequence: 'IR', SeriesDescription: 'series 7' });
    expect(c.classification).toBe('FLAIR');
    expect(c.reason).toMatch(/ScanningSequence IR/);
  });
  test('FLAIR from the Philips scanning technique (2001,xx20) "TIR" when nothing else says IR', () => {
    const c = cls({ RepetitionTime: 11000, EchoTime: 140, '20010010': 'Philips Imaging DD 001', '20011020': 'TIR' });
    expect(c.classification).toBe('FLAIR');
    expect(c.reason).toMatch(/Philips scanning technique \(2001,xx20\) TIR/);
  });
  test('STIR (short TI) and proton density and T2* are not model inputs, even with a T2 description', () => {
    expect(cls({ RepetitionTime: 5000, EchoTime: 60, InversionTime: 160, SeriesDescription: 'T2 STIR' })).toMatchObject({ classification: 'IGNORED', usable: false });
    expect(cls({ RepetitionTime: 3000, EchoTime: 15, SeriesDescription: 'PD T2' })).toMatchObject({ classification: 'IGNORED' });
    const t2s = cls({ RepetitionTime: 700, EchoTime: 25, FlipAngle: 20, ScanningSequence: 'GR', SeriesDescription: 'T2* GRE' });
    expect(t2s.classification).toBe('IGNORED');
    expect(t2s.reason).toMatch(/T2\*-weighted/);
  });
  test('enhanced MR AcquisitionContrast in the frame type functional group', () => {
    const fg = (a: string) => ({
      NumberOfFrames: 1,
      SOPClassUID: '1.2.840.10008.5.1.4.1.1.4.1',
      SharedFunctionalGroupsSequence: [{ MRImageFrameTypeSequence: [{ FrameType: ['ORIGINAL', 'PRIMARY', 'M', 'NONE'], AcquisitionContrast: a }] }],
      PerFrameFunctionalGroupsSequence: [{ PlanePositionSequence: [{ ImagePositionPatient: [0, 0, 0] }] }],
    });
    expect(cls(fg('FLUID_ATTENUATED')).classification).toBe('FLAIR');
    expect(cls(fg('T2')).classification).toBe('T2');
    expect(cls(fg('PROTON_DENSITY')).classification).toBe('IGNORED');
    expect(cls({ ...fg('T1'), ContrastBolusUsageSequence: [{ ContrastBolusAgentAdministered: 'YES' }] }).classification).toBe('T1C');
  });
  test('T1 without a contrast tag in a contrast study: T1 by default, T1C only with the site option', () => {
    const base = { RepetitionTime: 600, EchoTime: 15, ScanOptions: 'FS', StudyDescription: 'MRI BRAIN CONTRAST', SeriesDescription: 'T1W_SE' };
    const c = cls(base);
    expect(c.classification).toBe('T1');
    expect(c.reason).toMatch(/t1ContrastFromStudyContext/);
    const o = cls(base, { t1ContrastFromStudyContext: true });
    expect(o.classification).toBe('T1C');
    expect(o.reason).toMatch(/fat-suppressed/);
    // the option needs both: a plain T1 (no FS, no "post") in a contrast study stays T1
    expect(cls({ ...base, ScanOptions: undefined }, { t1ContrastFromStudyContext: true }).classification).toBe('T1');
    // and a study that does not name contrast never turns a T1 into T1C
    expect(cls({ ...base, StudyDescription: 'MRI BRAIN' }, { t1ContrastFromStudyContext: true }).classification).toBe('T1');
  });
  test('diffusion is still decided before structural rules (a b-value beats TR/TE)', () => {
    expect(cls({ RepetitionTime: 5000, EchoTime: 90, DiffusionBValue: 1000, SeriesDescription: 'T2 FLAIR' }).classification).toBe('DWI');
  });
});

describe('real Philips Achieva and Siemens XA30 structural series', () => {
  let philips: AssembledStudy;
  let philipsCtx: AssembledStudy;
  let siemens: AssembledStudy;
  beforeAll(async () => {
    if (!haveReal) return;
    const hs = readStudyHeaders(instancesIn(PHILIPS).filter((i) => /\/(401|701|901)_/.test(i.path)));
    philips = await assembleFromHeaders(hs);
    philipsCtx = await assembleFromHeaders(hs, { t1ContrastFromStudyContext: true });
    siemens = await assembleFromHeaders(readStudyHeaders(instancesIn(SIEMENS_T1)));
  }, 120_000);

  realTest('Philips: T2 TSE, T2 FLAIR and T1 SE FS identified from tags, each with its reason', () => {
    const by = new Map(philips.availability.series.map((s) => [s.seriesDescription, s]));
    expect(by.get('T2W_TSE_TRA')).toMatchObject({ classification: 'T2', usable: true });
    expect(by.get('T2W_TSE_TRA')!.reason).toMatch(/long TR and long TE.*TE 100 ms/);
    expect(by.get('T2W_FLAIR_TRA')).toMatchObject({ classification: 'FLAIR', usable: true });
    expect(by.get('T2W_FLAIR_TRA')!.reason).toMatch(/TI 2000 ms/);
    expect(by.get('T1W_SE-TRA_FS')).toMatchObject({ classification: 'T1', usable: true });
    // no contrast tag in the headers although the study is a contrast study: kept T1, and said so
    expect(by.get('T1W_SE-TRA_FS')!.reason).toMatch(/no contrast agent recorded.*study description names contrast/);
    for (const s of philips.availability.series) expect(s.reason).not.toMatch(/SeriesDescription/);
    expect(philips.availability.available).toEqual({ DWI: false, ADC: false, CT: false, FLAIR: true, T1: true, T1C: false, T2: true });
    expect([philips.volumes.T2!.geometry.rows, philips.volumes.T2!.geometry.slices]).toEqual([512, 26]);
    expect([philips.volumes.FLAIR!.geometry.rows, philips.volumes.T1!.geometry.rows]).toEqual([256, 256]);
  });

  realTest('Philips with the site option: the fat-suppressed T1 of the contrast study becomes T1C', () => {
    const t1 = philipsCtx.availability.series.find((s) => s.seriesDescription === 'T1W_SE-TRA_FS')!;
    expect(t1.classification).toBe('T1C');
    expect(t1.reason).toMatch(/fat-suppressed/);
    expect(philipsCtx.availability.available).toMatchObject({ T1: false, T1C: true, T2: true, FLAIR: true });
  });

  realTest('Siemens XA30 MPRAGE-type T1 (enhanced, AcquisitionContrast UNKNOWN) → T1 from TI/TE', () => {
    const s = siemens.availability.series[0];
    expect(s).toMatchObject({ classification: 'T1', usable: true });
    expect(s.reason).toMatch(/TI 900 ms/);
    expect(siemens.availability.available).toMatchObject({ T1: true, T1C: false, DWI: false, ADC: false });
  });
});
