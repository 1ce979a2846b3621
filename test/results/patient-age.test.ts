/**
 * A source PatientAge that is not a valid AS value (the real Philips Achieva study holds "NA") is not copied into
 * the result objects (it made every SEG/SR of that study fail dciodvfy); a valid one is kept.
 */
import { copyPatientStudy } from '../../src/results/common';

test('PatientAge copied only when it is a valid AS (nnnD/W/M/Y)', () => {
  const base = { StudyInstanceUID: '1.2.3', PatientID: 'X' };
  expect(copyPatientStudy({ ...base, PatientAge: 'NA' }).PatientAge).toBeUndefined();
  expect(copyPatientStudy({ ...base, PatientAge: '45' }).PatientAge).toBeUndefined();
  expect(copyPatientStudy({ ...base, PatientAge: '045Y' }).PatientAge).toBe('045Y');
  expect(copyPatientStudy({ ...base, PatientAge: '003M' }).PatientAge).toBe('003M');
});
