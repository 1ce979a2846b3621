/**
 * The route option sequences.t1ContrastFromStudyContext (src/config/schema.ts), passed by the processor to
 * assembleStudy: on the real Philips Achieva study ("MRI BRAIN CONTRAST", the 901 T1 SE FS carries no contrast
 * tag) the T1 stays T1 by default and becomes T1C on a route with the option. Only the T2, FLAIR and T1 series
 * are read; no model is loaded (the tumour task then does not run, the outcome still holds the classification).
 * Patient attributes are never printed.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseConfig } from '../../src/config/load';
import { ModelRegistry } from '../../src/models/registry';
import { createProcessor, type StudyOutcome } from '../../src/pipelines/processor';
import { DICOM_DATA, instancesIn } from '../study/synth';

const PHILIPS = path.join(DICOM_DATA, 'philips-achieva-brain');
const havePhilips = fs.existsSync(PHILIPS);

describe('route option sequences.t1ContrastFromStudyContext: config', () => {
  test('defaults to false, loads true per route, refuses a non-boolean and unknown keys', () => {
    const c = parseConfig({ routes: [{ name: 'philips', sequences: { t1ContrastFromStudyContext: true } }, { name: 'other' }] }, 'test');
    expect(c.routes.map((r) => r.sequences.t1ContrastFromStudyContext)).toEqual([true, false]);
    expect(parseConfig({}, 'test').routes[0].sequences).toEqual({ t1ContrastFromStudyContext: false });
    expect(() => parseConfig({ routes: [{ name: 'x', sequences: { t1ContrastFromStudyContext: 'yes' } }] }, 'test')).toThrow(/t1ContrastFromStudyContext/);
    expect(() => parseConfig({ routes: [{ name: 'x', sequences: { t1Contrast: true } }] }, 'test')).toThrow(/t1Contrast/);
  });
});

(havePhilips ? describe : describe.skip)('route option sequences.t1ContrastFromStudyContext: processor on the real Philips study', () => {
  let work: string;
  let registry: ModelRegistry;
  const instances = havePhilips ? instancesIn(PHILIPS).filter((i) => /[/\\](401|701|901)_/.test(i.path)) : [];
  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 't1c-option-'));
    fs.mkdirSync(path.join(work, 'models'));
    registry = new ModelRegistry({ dir: path.join(work, 'models'), providers: ['cpu'], intraOpThreads: 1 });
  });
  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  async function t1Of(sequences?: { t1ContrastFromStudyContext: boolean }): Promise<{ outcome: StudyOutcome; t1: StudyOutcome['availability']['series'][number] }> {
    const config = parseConfig({ routes: [{ name: 'tumour', tasks: ['brain-tumour-mr'], ...(sequences ? { sequences } : {}) }] }, 'test');
    const proc = createProcessor({ config, registry, nodeVersion: 'test', resultsDir: work });
    const r = await proc({ id: 1, studyUid: instances[0].studyInstanceUid } as never, instances, config.routes[0]);
    const outcome = r.outcome as StudyOutcome;
    const t1 = outcome.availability.series.find((s) => s.description === 'T1W_SE-TRA_FS');
    if (!t1) throw new Error('no T1W_SE-TRA_FS series in the outcome');
    return { outcome, t1 };
  }

  test('default: the 901 T1 FS without a contrast tag stays T1', async () => {
    expect(new Set(instances.map((i) => path.basename(path.dirname(i.path)))).size).toBe(3);
    const { outcome, t1 } = await t1Of();
    expect(t1.classification).toBe('T1');
    expect(t1.reason).toMatch(/t1ContrastFromStudyContext/);
    expect(outcome.availability.available).toMatchObject({ FLAIR: true, T1: true, T1C: false, T2: true });
  }, 120_000);

  test('with the option on the route: the same series becomes T1C, and says why', async () => {
    const { outcome, t1 } = await t1Of({ t1ContrastFromStudyContext: true });
    expect(t1.classification).toBe('T1C');
    expect(t1.reason).toMatch(/fat-suppressed/);
    expect(outcome.availability.available).toMatchObject({ FLAIR: true, T1: false, T1C: true, T2: true });
  }, 120_000);
});
