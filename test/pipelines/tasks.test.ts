/**
 * Tasks (issue 14): the registry matches the ids the configuration accepts; which tasks a route runs on a study
 * and why (routes[].tasks, `when`, the content default when stroke-mr and brain-tumour-mr share a route, each
 * task's acceptance rule), with a decision for every task.
 */
import { parseConfig } from '../../src/config/load';
import { Route } from '../../src/config/schema';
import { RoutingFacts } from '../../src/pipelines/routing';
import { TASK_IDS } from '../../src/pipelines/task-ids';
import { TASKS, routeModels, selectTasks } from '../../src/pipelines/tasks';
import { AvailabilityRecord } from '../../src/types';

const READY = new Set(['shaspec-realbg', 'shaspec-missing', 'ct2dwi', 'brats-shaspec']);
const registry = (ready = READY) => ({ isReady: (n: string) => ready.has(n) });

function av(kinds: string[], notes: string[] = []): AvailabilityRecord {
  const available = { DWI: false, ADC: false, CT: false, FLAIR: false, T1: false, T1C: false, T2: false };
  for (const k of kinds) (available as Record<string, boolean>)[k] = true;
  return { studyInstanceUid: '1.2.3', available, series: [], notes };
}

const facts = (studyDescription = 'MR BRAIN'): Omit<RoutingFacts, 'present'> => ({
  calledAeTitle: 'STROKEAI',
  callingAeTitle: 'MR1',
  series: [{ Modality: 'MR', StudyDescription: studyDescription }],
  now: new Date(2026, 0, 1, 10, 0),
});

const route = (r: Record<string, unknown> = {}): Route => parseConfig({ routes: [{ name: 'r', ...r }] }).routes[0];
const ran = (s: ReturnType<typeof selectTasks>) => s.toRun.map((x) => x.task.id);
const decision = (s: ReturnType<typeof selectTasks>, id: string) => s.decisions.find((d) => d.task === id)!;

test('the registry holds exactly the task ids the configuration accepts, each with the interface', () => {
  expect(TASKS.map((t) => t.id).sort()).toEqual([...TASK_IDS].sort());
  for (const t of TASKS) {
    expect(t.title.length).toBeGreaterThan(10);
    expect(t.needs.length).toBeGreaterThan(5);
    expect(typeof t.accept).toBe('function');
    expect(typeof t.run).toBe('function');
  }
  // stroke-mr: dwiAdc, singleModality (both shaspec-realbg); stroke-ct: ctToDwi, ctLesion (shaspec-missing), then the fallbacks
  expect(routeModels(route())).toEqual(['shaspec-realbg', 'ct2dwi', 'shaspec-missing']);
  expect(routeModels(route({ models: { dwiAdc: 'dual-encoder', singleModality: 'shaspec-missing' } }))).toEqual(['dual-encoder', 'shaspec-missing', 'ct2dwi']);
  expect(routeModels(route({ tasks: ['brain-tumour-mr'] }))).toEqual(['brats-shaspec']);
});

describe('default route (stroke tasks only): what the node did before tasks existed', () => {
  test('DWI + ADC → stroke-mr with the DWI+ADC model (shaspec-realbg); stroke-ct and brain-tumour-mr not run, each with its reason', () => {
    const s = selectTasks(route(), av(['DWI', 'ADC', 'FLAIR', 'T1C']), registry(), facts());
    expect(ran(s)).toEqual(['stroke-mr']);
    expect(decision(s, 'stroke-mr').plan).toEqual({ model: 'shaspec-realbg', inputs: ['DWI', 'ADC'], note: undefined });
    expect(decision(s, 'stroke-ct').reason).toMatch(/no usable head CT/);
    expect(decision(s, 'brain-tumour-mr')).toMatchObject({ listed: false, run: false, reason: expect.stringMatching(/not listed in route "r" tasks \(stroke-mr, stroke-ct\)/) });
    expect(s.decisions).toHaveLength(TASK_IDS.length);
  });

  test('DWI only / ADC only → the single-modality model; DWI+ADC model not ready → fallback with a note', () => {
    expect(decision(selectTasks(route(), av(['DWI']), registry(), facts()), 'stroke-mr').plan).toMatchObject({ model: 'shaspec-realbg', inputs: ['DWI'] });
    expect(decision(selectTasks(route(), av(['ADC']), registry(), facts()), 'stroke-mr').plan).toMatchObject({ model: 'shaspec-realbg', inputs: ['ADC'] });
    const old = route({ models: { dwiAdc: 'dual-encoder', singleModality: 'shaspec-missing' } });
    const s = selectTasks(old, av(['DWI', 'ADC']), registry(new Set(['shaspec-missing'])), facts());
    expect(decision(s, 'stroke-mr')).toMatchObject({ run: true, plan: { model: 'shaspec-missing', note: 'dual-encoder not ready; used shaspec-missing' } });
    const none = selectTasks(route(), av(['DWI', 'ADC']), registry(new Set(['shaspec-missing'])), facts());
    expect(decision(none, 'stroke-mr')).toMatchObject({ run: false, reason: expect.stringMatching(/no lesion model ready \(shaspec-realbg\)/) });
  });

  test('CT only → stroke-ct; CT with DWI → stroke-mr only (the synthesis path is for CT-only studies)', () => {
    expect(ran(selectTasks(route(), av(['CT']), registry(), facts()))).toEqual(['stroke-ct']);
    const both = selectTasks(route(), av(['CT', 'DWI']), registry(), facts());
    expect(ran(both)).toEqual(['stroke-mr']);
    expect(decision(both, 'stroke-ct').reason).toMatch(/has DWI\/ADC/);
    const noSynth = selectTasks(route(), av(['CT']), registry(new Set(['shaspec-missing'])), facts());
    expect(ran(noSynth)).toEqual([]);
    expect(decision(noSynth, 'stroke-ct').reason).toMatch(/CT→DWI synthesis model "ct2dwi" is not installed or not ready/);
    // the lesion model on the synthetic DWI: ctLesion (shaspec-missing), else singleModality, else dwiAdc
    expect(decision(selectTasks(route(), av(['CT']), registry(), facts()), 'stroke-ct').plan).toMatchObject({ lesionModel: 'shaspec-missing' });
    expect(decision(selectTasks(route(), av(['CT']), registry(new Set(['ct2dwi', 'shaspec-realbg'])), facts()), 'stroke-ct').plan).toMatchObject({ lesionModel: 'shaspec-realbg' });
  });

  test('a tumour study on the default route runs nothing: no tumour model by accident', () => {
    const s = selectTasks(route(), av(['FLAIR', 'T1', 'T1C', 'T2']), registry(), facts());
    expect(ran(s)).toEqual([]);
    expect(s.decisions.filter((d) => d.listed).every((d) => d.inputsMissing)).toBe(true);
  });
});

describe('a route that lists stroke-mr and brain-tumour-mr', () => {
  const both = route({ tasks: ['stroke-mr', 'brain-tumour-mr'] });

  test('no `when`: content defaults: tumour only with a post-contrast T1, stroke only with DWI/ADC', () => {
    const stroke = selectTasks(both, av(['DWI', 'ADC', 'FLAIR', 'T2']), registry(), facts());
    expect(ran(stroke)).toEqual(['stroke-mr']);
    expect(decision(stroke, 'brain-tumour-mr').reason).toMatch(/also lists stroke-mr .* runs only when a post-contrast T1 \(T1C\) present/);

    const tumour = selectTasks(both, av(['FLAIR', 'T1', 'T1C', 'T2']), registry(), facts());
    expect(ran(tumour)).toEqual(['brain-tumour-mr']);
    expect(decision(tumour, 'stroke-mr').reason).toMatch(/runs only when DWI or ADC present/);
    expect(decision(tumour, 'brain-tumour-mr').plan).toEqual({ model: 'brats-shaspec', present: ['FLAIR', 'T1', 'T1C', 'T2'], missing: [] });

    const mixed = selectTasks(both, av(['DWI', 'ADC', 'T1C', 'FLAIR']), registry(), facts());
    expect(ran(mixed)).toEqual(['stroke-mr', 'brain-tumour-mr']);
    expect(mixed.notes.join(' ')).toMatch(/stroke-mr and brain-tumour-mr both run/);
  });

  test('`when` on StudyDescription decides, whatever the content', () => {
    const r = route({
      tasks: [
        { task: 'stroke-mr', when: { field: 'StudyDescription', matches: 'stroke|acute' } },
        { task: 'brain-tumour-mr', when: { field: 'StudyDescription', matches: 'tumou?r|onco' } },
      ],
    });
    const content = av(['DWI', 'ADC', 'FLAIR', 'T1', 'T1C', 'T2']);
    expect(ran(selectTasks(r, content, registry(), facts('MR Head acute stroke')))).toEqual(['stroke-mr']);
    const t = selectTasks(r, content, registry(), facts('MR Brain tumour follow-up'));
    expect(ran(t)).toEqual(['brain-tumour-mr']);
    expect(decision(t, 'stroke-mr').reason).toMatch(/condition for stroke-mr does not hold: StudyDescription matches "stroke\|acute" \(study: \["MR Brain tumour follow-up"\]\)/);
    expect(decision(t, 'stroke-mr').checks).toEqual([expect.objectContaining({ field: 'StudyDescription', operator: 'matches', ok: false })]);
  });

  test('`when` with content facts (a post-contrast T1 present)', () => {
    const r = route({ tasks: ['stroke-mr', { task: 'brain-tumour-mr', when: { present: ['T1C'] } }] });
    expect(ran(selectTasks(r, av(['DWI', 'FLAIR']), registry(), facts()))).toEqual(['stroke-mr']);
    expect(ran(selectTasks(r, av(['FLAIR', 'T1C']), registry(), facts()))).toEqual(['brain-tumour-mr']);
  });

  test('brain-tumour-mr acceptance: any one of FLAIR, T1, T1C, T2; the model must be ready', () => {
    const only = route({ tasks: ['brain-tumour-mr'] });
    expect(decision(selectTasks(only, av(['T2']), registry(), facts()), 'brain-tumour-mr')).toMatchObject({ run: true, plan: { present: ['T2'], missing: ['FLAIR', 'T1', 'T1C'] } });
    expect(decision(selectTasks(only, av(['DWI']), registry(), facts()), 'brain-tumour-mr')).toMatchObject({ run: false, inputsMissing: true });
    expect(decision(selectTasks(only, av(['FLAIR']), registry(new Set()), facts()), 'brain-tumour-mr').reason).toMatch(/brain tumour model "brats-shaspec" is not installed or not ready/);
  });
});
