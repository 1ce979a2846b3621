/**
 * Classification rules on synthetic series (files written with writePart10) and vendor private
 * b-value tags on datasets shaped exactly as dcmjs returns them (dcmjs cannot write private tags,
 * so those are built in memory: numbers for an explicit VR, bytes for UN/implicit VR).
 */
import * as fs from 'fs';
import { assembleStudy } from '../../src/study';
import { classifySeries } from '../../src/study/classify';
import { geBValue, instanceFrames, readHeader } from '../../src/study/header';
import { NaturalDataset } from '../../src/dicom/dcmjs';
import { StoredInstance } from '../../src/types';
import { filled, SeriesSpec, SliceSpec, tmpDir, writeSeries } from './synth';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function slices(n: number, extra?: Partial<SliceSpec>): SliceSpec[] {
  return Array.from({ length: n }, (_, k) => ({
    position: [0, 0, k * 4] as [number, number, number],
    pixels: filled(50),
    instanceNumber: k + 1,
    ...extra,
  }));
}
function classify(spec: SeriesSpec): ReturnType<typeof classifySeries> {
  const d = tmpDir('cls');
  dirs.push(d);
  return classifySeries(writeSeries(d, spec).map(readHeader));
}

describe('series classification from standard tags', () => {
  test.each<[string, NaturalDataset, string, boolean]>([
    ['FLAIR from long TI + long TE', { RepetitionTime: 9000, EchoTime: 120, InversionTime: 2500 }, 'FLAIR', true],
    ['T1 from short TR/TE', { RepetitionTime: 500, EchoTime: 10 }, 'T1', true],
    ['T1C from short TR/TE + ContrastBolusAgent', { RepetitionTime: 500, EchoTime: 10, ContrastBolusAgent: 'GADOBUTROL' }, 'T1C', true],
    ['T2 from long TR/TE', { RepetitionTime: 4000, EchoTime: 100 }, 'T2', true],
    ['MPRAGE-like T1 from TI 900 + short TE', { RepetitionTime: 2300, EchoTime: 3, InversionTime: 900 }, 'T1', true],
  ])('%s', (_n, extra, cls, usable) => {
    const c = classify({ modality: 'MR', extra, slices: slices(3) });
    expect(c.classification).toBe(cls);
    expect(c.usable).toBe(usable);
  });

  test('SeriesDescription only as a last resort, and said so', () => {
    const c = classify({ modality: 'MR', seriesDescription: 'AX T1 POST GAD', slices: slices(3) });
    expect(c.classification).toBe('T1C');
    expect(c.reason).toMatch(/SeriesDescription "AX T1 POST GAD" suggests post-contrast T1/);
    // tags win over a misleading description
    const t = classify({ modality: 'MR', seriesDescription: 'T1 axial', extra: { RepetitionTime: 4000, EchoTime: 100 }, slices: slices(3) });
    expect(t.classification).toBe('T2');
  });

  test('diffusion derivatives and localisers are ignored with the value that decided', () => {
    const fa = classify({
      modality: 'MR',
      slices: slices(3, { imageType: ['DERIVED', 'PRIMARY', 'DIFFUSION', 'FA'] }),
    });
    expect(fa).toMatchObject({ classification: 'IGNORED', usable: false });
    expect(fa.reason).toMatch(/fractional anisotropy/);
    const eadc = classify({ modality: 'MR', slices: slices(3, { imageType: ['DERIVED', 'PRIMARY', 'DIFFUSION', 'EADC'] }) });
    expect(eadc.reason).toMatch(/exponential ADC/);
    const adc = classify({ modality: 'MR', slices: slices(3, { imageType: ['DERIVED', 'PRIMARY', 'DIFFUSION', 'ADC'] }) });
    expect(adc.classification).toBe('ADC');
  });

  test('CT: contrast-enhanced and non-head CT are not usable; head CT is, with kernel and thickness', () => {
    const plain = classify({ modality: 'CT', extra: { ConvolutionKernel: 'H30s', BodyPartExamined: 'HEAD' }, slices: slices(3) });
    expect(plain).toMatchObject({ classification: 'CT', usable: true });
    expect(plain.reason).toMatch(/kernel H30s, slice thickness 2 mm/);
    const cta = classify({ modality: 'CT', extra: { ContrastBolusAgent: 'IOMEPROL', BodyPartExamined: 'HEAD' }, slices: slices(3) });
    expect(cta).toMatchObject({ classification: 'CT', usable: false });
    expect(cta.reason).toMatch(/contrast-enhanced CT/);
    const chest = classify({ modality: 'CT', extra: { BodyPartExamined: 'CHEST' }, slices: slices(3) });
    expect(chest.usable).toBe(false);
    expect(chest.reason).toMatch(/CHEST/);
  });

  test('CT without BodyPartExamined: a description naming the abdomen makes it not a head CT; a head description or none keeps it', () => {
    const colon = classify({ modality: 'CT', extra: { ProtocolName: '6.9 Colonoscopy', StudyDescription: '' }, slices: slices(3) });
    expect(colon).toMatchObject({ classification: 'CT', usable: false });
    expect(colon.reason).toMatch(/not a head CT: no BodyPartExamined; ProtocolName "6.9 Colonoscopy" names the abdomen/);
    const abd = classify({ modality: 'CT', extra: { StudyDescription: 'CT ABDOMEN NATIVE' }, slices: slices(3) });
    expect(abd.usable).toBe(false);
    const head = classify({ modality: 'CT', extra: { StudyDescription: 'CT HEAD NON CONTRAST' }, slices: slices(3) });
    expect(head).toMatchObject({ classification: 'CT', usable: true });
    const none = classify({ modality: 'CT', extra: { StudyDescription: '', SeriesDescription: '' }, slices: slices(3) });
    expect(none).toMatchObject({ classification: 'CT', usable: true });
  });

  test('several CT series: the thinnest slices win', async () => {
    const d = tmpDir('ct2');
    dirs.push(d);
    const thick = writeSeries(d, { modality: 'CT', extra: { SliceThickness: 5 }, slices: slices(4) });
    const thin = writeSeries(d, { modality: 'CT', extra: { SliceThickness: 1 }, slices: slices(4) });
    const r = await assembleStudy([...thick, ...thin]);
    expect(r.volumes.CT!.seriesInstanceUid).toBe(thin[0].seriesInstanceUid);
  });
});

describe('vendor private b-values (datasets as dcmjs returns them)', () => {
  const inst: StoredInstance = {
    sopInstanceUid: '1.2.3',
    sopClassUid: '1.2.840.10008.5.1.4.1.1.4',
    studyInstanceUid: '1',
    seriesInstanceUid: '1.2',
    transferSyntaxUid: '1.2.840.10008.1.2.1',
    path: '/dev/null',
    bytes: 0,
    receivedAt: '',
    sourceAe: 'T',
  };
  const base: NaturalDataset = { Modality: 'MR', Rows: 4, Columns: 4, ImageType: ['ORIGINAL', 'PRIMARY'] };
  const text = (s: string): ArrayBuffer => new Uint8Array(Buffer.from(s, 'latin1')).buffer;

  test('GE (0043,1039): first value, with the 1e9 flag removed; creator block found wherever it is', () => {
    expect(geBValue(1000001000)).toBe(1000);
    expect(geBValue(1000)).toBe(1000);
    const f = instanceFrames(inst, {
      ...base,
      Manufacturer: 'GE MEDICAL SYSTEMS',
      '00430011': 'GEMS_PARM_01', // block 0x11, not the usual 0x10
      '00431139': [1000001000, 8, 0, 0],
      '00190010': 'GEMS_ACQU_01',
      '001910BB': 0.5,
      '001910BC': -0.5,
      '001910BD': 0.7071,
    })[0];
    expect(f.bValue).toBe(1000);
    expect(f.bValueSource).toMatch(/GE private \(0043,1039\)/);
    expect(f.gradient).toEqual([0.5, -0.5, 0.7071]);
    // same element under another creator is not GE's
    const g = instanceFrames(inst, { ...base, '00430010': 'OTHER_VENDOR', '00431039': [1000, 0, 0, 0] })[0];
    expect(g.bValue).toBeUndefined();
  });

  test('GE (0043,1039) read as UN bytes (implicit VR)', () => {
    const f = instanceFrames(inst, { ...base, '00430010': text('GEMS_PARM_01'), '00431039': [text('1000001500\\8\\0\\0 ')] })[0];
    expect(f.bValue).toBe(1500);
  });

  test('Siemens classic (0019,100C) B_value and Philips (2001,1003)', () => {
    const s = instanceFrames(inst, { ...base, '00190010': 'SIEMENS MR HEADER', '0019100C': 1000 })[0];
    expect(s.bValue).toBe(1000);
    expect(s.bValueSource).toMatch(/Siemens private \(0019,100C\)/);
    const fl = new Float32Array([2000]).buffer;
    const p = instanceFrames(inst, { ...base, '20010010': 'Philips Imaging DD 001', '20011003': [fl] })[0];
    expect(p.bValue).toBe(2000);
    expect(p.bValueSource).toMatch(/Philips/);
  });

  test('standard DiffusionBValue wins over private tags', () => {
    const f = instanceFrames(inst, { ...base, DiffusionBValue: 800, '00190010': 'SIEMENS MR HEADER', '0019100C': 1000 })[0];
    expect(f.bValue).toBe(800);
    expect(f.bValueSource).toMatch(/0018,9087/);
  });
});
