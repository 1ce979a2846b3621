import { CodedConcept, Codes, InvalidCodeError, code, rgbToDicomLab } from '../../src/results/codes';

describe('CodedConcept', () => {
  test('accepts the codes the writers use', () => {
    expect(Codes.Infarct.toItem()).toEqual({ CodeValue: '55641003', CodingSchemeDesignator: 'SCT', CodeMeaning: 'Infarct' });
    expect(code('99X', '99LOCAL', 'Local concept').scheme).toBe('99LOCAL');
  });

  test.each([
    ['', 'SCT', 'x', /empty CodeValue/],
    ['12345678901234567', 'DCM', 'x', /longer than 16/],
    ['55641003', 'SRT', 'Infarct', /retired, use SCT/],
    ['T-A0100', 'SCT', 'Brain', /numeric/],
    ['121322', 'DCM', '', /empty CodeMeaning/],
    ['1', 'DCM', 'a'.repeat(65), /longer than 64/],
    ['1', 'MYCODES', 'x', /unknown coding scheme/],
    ['1\\2', '99X', 'x', /backslash/],
  ])('refuses (%s, %s, %s)', (v, s, m, re) => {
    expect(() => new CodedConcept(v, s, m)).toThrow(InvalidCodeError);
    expect(() => new CodedConcept(v, s, m)).toThrow(re);
  });

  test('equality ignores the meaning', () => {
    expect(code('12738006', 'SCT', 'Brain structure').equals(Codes.Brain)).toBe(true);
    expect(code('12738006', 'DCM', 'Brain').equals(Codes.Brain)).toBe(false);
  });

  test('RGB to DICOM CIELab: white, black and a known red', () => {
    expect(rgbToDicomLab({ r: 255, g: 255, b: 255 })).toEqual([65535, 32896, 32896]);
    expect(rgbToDicomLab({ r: 0, g: 0, b: 0 })).toEqual([0, 32896, 32896]);
    // sRGB red: L*=53.24, a*=80.09, b*=67.20
    const [L, a, b] = rgbToDicomLab({ r: 255, g: 0, b: 0 });
    expect((L * 100) / 65535).toBeCloseTo(53.24, 1);
    expect((a * 255) / 65535 - 128).toBeCloseTo(80.09, 0);
    expect((b * 255) / 65535 - 128).toBeCloseTo(67.2, 0);
    expect(() => rgbToDicomLab({ r: 300, g: 0, b: 0 })).toThrow(RangeError);
  });
});
