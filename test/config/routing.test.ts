/**
 * Routing rules on DICOM tags (routes[].match, issue 19) and routes[].tasks (issue 14): validated when the
 * configuration loads, evaluated on a study's headers without eval, first matching route wins.
 */
import { parseConfig } from '../../src/config/load';
import { Route } from '../../src/config/schema';
import { StudyRouter, matchRoute } from '../../src/node';
import { RoutingFacts, chooseRoute, evaluate, inTimeWindow, studyFacts } from '../../src/pipelines/routing';
import { StoredInstance } from '../../src/types';

const at = (hhmm: string): Date => {
  const [h, m] = hhmm.split(':').map(Number);
  const d = new Date(2026, 11, 6, h, m, 0);
  return d;
};

const mrHead: RoutingFacts = {
  calledAeTitle: 'STROKEAI',
  callingAeTitle: 'MRI3T',
  series: [
    { Modality: 'MR', BodyPartExamined: 'HEAD', StudyDescription: 'MR Brain stroke protocol', SeriesDescription: 'ep2d_diff_3scan_trace', ProtocolName: 'DWI' },
    { Modality: 'MR', BodyPartExamined: 'HEAD', StudyDescription: 'MR Brain stroke protocol', SeriesDescription: 't2_tse_tra', ProtocolName: 'T2' },
  ],
  now: at('10:00'),
};

describe('configuration: routes[].match and routes[].tasks are validated at start', () => {
  test('existing configs load unchanged: AE-only match, no tasks → the stroke tasks', () => {
    const c = parseConfig({ routes: [{ name: 'a', match: { calledAeTitle: 'STROKEAI', callingAeTitle: 'PACS' } }, { name: 'b' }] });
    expect(c.routes[0].match).toEqual({ calledAeTitle: 'STROKEAI', callingAeTitle: 'PACS' });
    expect(c.routes[0].tasks).toEqual(['stroke-mr', 'stroke-ct']);
    expect(c.routes[1].tasks).toEqual(['stroke-mr', 'stroke-ct']);
    expect(parseConfig({}).routes[0].tasks).toEqual(['stroke-mr', 'stroke-ct']);
  });

  test('an unknown task id stops start-up, naming the key', () => {
    expect(() => parseConfig({ routes: [{ name: 'r', tasks: ['stroke-mr', 'liver-ct'] }] })).toThrow(/routes\.0\.tasks\.1/);
    expect(() => parseConfig({ routes: [{ name: 'r', tasks: [{ task: 'nope' }] }] })).toThrow(/routes\.0\.tasks\.0/);
    expect(() => parseConfig({ routes: [{ name: 'r', tasks: ['stroke-mr', 'stroke-mr'] }] })).toThrow(/routes\.0\.tasks\.1: task "stroke-mr" listed twice/);
  });

  test('an invalid regular expression stops start-up with its path', () => {
    expect(() => parseConfig({ routes: [{ name: 'r', match: { all: [{ field: 'Modality', equals: 'MR' }, { field: 'StudyDescription', matches: 'stroke(' }] } }] })).toThrow(
      /routes\.0\.match\.all\.1\.matches: invalid regular expression "stroke\("/,
    );
    expect(() => parseConfig({ routes: [{ name: 'r', tasks: [{ task: 'stroke-mr', when: { field: 'ProtocolName', matches: '[' } }] }] })).toThrow(/routes\.0\.tasks\.0\.when\.matches: invalid regular expression/);
  });

  test('unknown fields, operators, bad times and content facts in a route match are refused', () => {
    expect(() => parseConfig({ routes: [{ name: 'r', match: { field: 'PatientName', equals: 'X' } }] })).toThrow(/routes\.0\.match\.field/);
    expect(() => parseConfig({ routes: [{ name: 'r', match: { any: [{ field: 'Modality', startsWith: 'M' }] } }] })).toThrow(/routes\.0\.match\.any\.0: unknown key\(s\) startsWith/);
    expect(() => parseConfig({ routes: [{ name: 'r', match: { timeOfDay: { from: '25:00', to: '07:00' } } }] })).toThrow(/routes\.0\.match\.timeOfDay\.from: "HH:MM"/);
    expect(() => parseConfig({ routes: [{ name: 'r', match: { all: [{ present: ['T1C'] }] } }] })).toThrow(/routes\.0\.match\.all\.0\.present: present tests the study's content/);
    expect(() => parseConfig({ routes: [{ name: 'r', match: { all: [{ field: 'Modality', equals: 'MR', in: ['CT'] }] } }] })).toThrow(/exactly one of equals, in, matches, exists/);
    expect(() => parseConfig({ routes: [{ name: 'r', match: { all: [] } }] })).toThrow(/routes\.0\.match\.all: all takes a non-empty list/);
  });

  test('a full rule set loads: tag leaves, combinators, time of day, task conditions with content facts', () => {
    const c = parseConfig({
      routes: [
        { name: 'night', match: { timeOfDay: { from: '18:00', to: '07:00' }, field: 'Modality', equals: 'CT' }, priority: 'urgent' },
        {
          name: 'neuro-mr',
          match: { calledAeTitle: 'STROKEAI', all: [{ field: 'Modality', equals: 'MR' }, { any: [{ field: 'BodyPartExamined', in: ['HEAD', 'BRAIN'] }, { field: 'StudyDescription', matches: 'brain|head' }] }], not: { field: 'SeriesDescription', matches: 'localizer' } },
          tasks: [
            { task: 'stroke-mr', when: { any: [{ field: 'StudyDescription', matches: 'stroke' }, { present: ['DWI'] }] } },
            { task: 'brain-tumour-mr', when: { all: [{ present: ['T1C'] }, { not: { field: 'StudyDescription', matches: 'stroke' } }] } },
          ],
        },
      ],
    });
    expect(c.routes.map((r) => r.name)).toEqual(['night', 'neuro-mr']);
  });
});

describe('evaluation', () => {
  test('series-level fields hold when any series satisfies them; not = no series', () => {
    expect(evaluate({ field: 'SeriesDescription', matches: 'DIFF' }, mrHead, 'x').ok).toBe(true); // case-insensitive
    expect(evaluate({ not: { field: 'SeriesDescription', matches: 'localizer' } }, mrHead, 'x').ok).toBe(true);
    expect(evaluate({ not: { field: 'SeriesDescription', matches: 't2' } }, mrHead, 'x').ok).toBe(false);
    expect(evaluate({ field: 'Modality', in: ['CT', 'MR'] }, mrHead, 'x').ok).toBe(true);
    expect(evaluate({ field: 'Modality', equals: 'mr' }, mrHead, 'x').ok).toBe(false); // equals is exact
    expect(evaluate({ field: 'InstitutionName', exists: true }, mrHead, 'x').ok).toBe(false);
    expect(evaluate({ field: 'InstitutionName', exists: false }, mrHead, 'x').ok).toBe(true);
    expect(evaluate({ field: 'callingAeTitle', equals: 'MRI3T' }, mrHead, 'x').ok).toBe(true);
  });

  test('every leaf is reported with field, operator, expected, actual, ok', () => {
    const r = evaluate({ all: [{ field: 'Modality', equals: 'MR' }, { any: [{ field: 'BodyPartExamined', equals: 'CHEST' }, { field: 'ProtocolName', matches: '^dwi$' }] }] }, mrHead, 'routes.0.match');
    expect(r.ok).toBe(true);
    expect(r.checks).toEqual([
      { path: 'routes.0.match.all.0', field: 'Modality', operator: 'equals', expected: 'MR', actual: ['MR'], ok: true },
      { path: 'routes.0.match.all.1.any.0', field: 'BodyPartExamined', operator: 'equals', expected: 'CHEST', actual: ['HEAD'], ok: false },
      { path: 'routes.0.match.all.1.any.1', field: 'ProtocolName', operator: 'matches', expected: '^dwi$', actual: ['DWI', 'T2'], ok: true },
    ]);
  });

  test('time of day: local time, from inclusive, to exclusive, wraps past midnight', () => {
    expect(inTimeWindow(at('18:00'), '18:00', '07:00')).toBe(true);
    expect(inTimeWindow(at('23:59'), '18:00', '07:00')).toBe(true);
    expect(inTimeWindow(at('03:10'), '18:00', '07:00')).toBe(true);
    expect(inTimeWindow(at('07:00'), '18:00', '07:00')).toBe(false);
    expect(inTimeWindow(at('12:00'), '18:00', '07:00')).toBe(false);
    expect(inTimeWindow(at('08:00'), '08:00', '17:00')).toBe(true);
    expect(inTimeWindow(at('17:00'), '08:00', '17:00')).toBe(false);
    const night = { timeOfDay: { from: '18:00', to: '07:00' } };
    expect(evaluate(night, { ...mrHead, now: at('02:00') }, 'x')).toMatchObject({ ok: true, checks: [{ actual: '02:00', expected: '18:00-07:00' }] });
  });

  test('content facts are false while the content is unknown (route matching at arrival)', () => {
    expect(evaluate({ present: ['DWI'] }, mrHead, 'x').ok).toBe(false);
    expect(evaluate({ present: ['DWI'] }, { ...mrHead, present: { DWI: true } }, 'x').ok).toBe(true);
    expect(evaluate({ absent: ['T1C'] }, { ...mrHead, present: { DWI: true } }, 'x').ok).toBe(true);
  });

  test('the first route in configuration order that matches wins; an empty match catches the rest', () => {
    const c = parseConfig({
      routes: [
        { name: 'ct-head', match: { all: [{ field: 'Modality', equals: 'CT' }, { field: 'BodyPartExamined', in: ['HEAD', 'BRAIN'] }] } },
        { name: 'stroke-mr', match: { field: 'StudyDescription', matches: 'stroke' } },
        { name: 'mr-any', match: { field: 'Modality', equals: 'MR' } },
        { name: 'rest' },
      ],
    });
    const pick = (f: RoutingFacts) => chooseRoute(c.routes, f).route?.name;
    expect(pick(mrHead)).toBe('stroke-mr');
    expect(pick({ ...mrHead, series: [{ Modality: 'MR', StudyDescription: 'MR knee' }] })).toBe('mr-any');
    expect(pick({ ...mrHead, series: [{ Modality: 'CT', BodyPartExamined: 'HEAD' }] })).toBe('ct-head');
    expect(pick({ ...mrHead, series: [{ Modality: 'CT', BodyPartExamined: 'CHEST' }] })).toBe('rest');
    const r = chooseRoute(c.routes, mrHead);
    expect(r.evaluations.map((e) => [e.route, e.ok])).toEqual([['ct-head', false], ['stroke-mr', true], ['mr-any', true], ['rest', true]]);
  });

  test('AE-only routes choose as before (matchRoute)', () => {
    const c = parseConfig({ routes: [{ name: 'a', match: { calledAeTitle: 'AI_A' } }, { name: 'b', match: { callingAeTitle: 'PACS' } }] });
    expect(matchRoute(c.routes, 'AI_A', 'X')?.name).toBe('a');
    expect(matchRoute(c.routes, 'OTHER', 'PACS')?.name).toBe('b');
    expect(matchRoute(c.routes, 'OTHER', 'X')).toBeUndefined();
  });

  test('studyFacts keeps one record per series from headers', () => {
    const f = studyFacts(
      [
        { SeriesInstanceUID: '1.1', Modality: 'MR', SeriesDescription: 'DWI ', StudyDescription: 'Head' },
        { SeriesInstanceUID: '1.1', Modality: 'MR', SeriesDescription: 'DWI' },
        { SeriesInstanceUID: '1.2', Modality: 'MR', SeriesDescription: 'T1 post', BodyPartExamined: ['BRAIN'] },
      ],
      { calledAeTitle: 'AI', callingAeTitle: 'MR1' },
    );
    expect(f.series).toHaveLength(2);
    expect(f.series[0].SeriesDescription).toBe('DWI');
    expect(f.series[1].BodyPartExamined).toBe('BRAIN');
  });
});

describe('StudyRouter: the route chosen at arrival', () => {
  const inst = (study: string, series: string, sop: string): StoredInstance => ({
    sopInstanceUid: sop,
    sopClassUid: '1.2.840.10008.5.1.4.1.1.4',
    studyInstanceUid: study,
    seriesInstanceUid: series,
    transferSyntaxUid: '1.2.840.10008.1.2.1',
    path: '/x',
    bytes: 1,
    receivedAt: '',
    sourceAe: 'MRI',
  });
  const routes = (): Route[] =>
    parseConfig({
      routes: [
        { name: 'diffusion', match: { field: 'SeriesDescription', matches: 'diff|dwi' } },
        { name: 'ct', match: { field: 'Modality', equals: 'CT' } },
      ],
    }).routes;

  test('a study is pinned to its first matching route; later series do not move it', () => {
    const r = new StudyRouter(routes());
    const a = r.arrive(inst('S1', 'A', '1'), { Modality: 'MR', SeriesDescription: 'DWI trace' }, 'DWI', { calledAe: 'AI', callingAe: 'MRI' });
    expect(a.route?.name).toBe('diffusion');
    const b = r.arrive(inst('S1', 'B', '2'), { Modality: 'CT', SeriesDescription: 'head' }, 'CT', { calledAe: 'AI', callingAe: 'MRI' });
    expect(b.route?.name).toBe('diffusion');
  });

  test('instances that match no route yet are held, and noted when a later series makes a route match', () => {
    const r = new StudyRouter(routes());
    const a = r.arrive(inst('S2', 'T2', '1'), { Modality: 'MR', SeriesDescription: 't2 tse' }, 'OTHER', { callingAe: 'MRI' });
    expect(a.route).toBeUndefined();
    expect(a.newlyUnrouted).toBe(true);
    const b = r.arrive(inst('S2', 'T2', '2'), { Modality: 'MR', SeriesDescription: 't2 tse' }, 'OTHER', { callingAe: 'MRI' });
    expect(b.newlyUnrouted).toBe(false); // logged once per study
    const c = r.arrive(inst('S2', 'DW', '3'), { Modality: 'MR', SeriesDescription: 'ep2d_diff' }, 'DWI', { callingAe: 'MRI' });
    expect(c.route?.name).toBe('diffusion');
    expect(c.release.map((h) => h.instance.sopInstanceUid)).toEqual(['1', '2']);
  });

  test('held instances are bounded over all studies; a forgotten study frees its share', () => {
    const r = new StudyRouter(routes(), 2, 3);
    const t2 = { Modality: 'MR', SeriesDescription: 't2' };
    for (let i = 0; i < 4; i++) r.arrive(inst('A', 'T2', `a${i}`), t2, 'OTHER', { callingAe: 'MRI' });
    // only 3 held: the 4th is stored but not held
    expect(r.arrive(inst('A', 'DW', 'a9'), { Modality: 'MR', SeriesDescription: 'diff' }, 'DWI', { callingAe: 'MRI' }).release).toHaveLength(3);
    for (let i = 0; i < 3; i++) r.arrive(inst('B', 'T2', `b${i}`), t2, 'OTHER', { callingAe: 'MRI' });
    r.arrive(inst('C', 'X', 'c0'), t2, 'OTHER', { callingAe: 'MRI' }); // cap reached: not held
    r.arrive(inst('D', 'X', 'd0'), t2, 'OTHER', { callingAe: 'MRI' }); // only 2 studies remembered: A then B forgotten
    r.arrive(inst('E', 'X', 'e0'), t2, 'OTHER', { callingAe: 'MRI' });
    r.arrive(inst('E', 'X', 'e1'), t2, 'OTHER', { callingAe: 'MRI' });
    expect(r.arrive(inst('E', 'DW', 'e2'), { Modality: 'MR', SeriesDescription: 'diff' }, 'DWI', { callingAe: 'MRI' }).release.map((h) => h.instance.sopInstanceUid)).toEqual(['e0', 'e1']);
  });

  test('a study no route ever matches is never routed', () => {
    const r = new StudyRouter(routes());
    for (let i = 0; i < 3; i++) expect(r.arrive(inst('S3', 'X', String(i)), { Modality: 'US' }, 'OTHER', { callingAe: 'US1' }).route).toBeUndefined();
  });
});

test("the example configuration's commented routes are valid once uncommented", () => {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const fs = require('fs') as typeof import('fs');
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const YAML = require('yaml') as typeof import('yaml');
  const text = fs.readFileSync(require('path').resolve(__dirname, '../../dicom-config/example.yaml'), 'utf8') as string;
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith('routes:'));
  const end = lines.findIndex((l, i) => i > start && l.startsWith('  - name: stroke'));
  const commented = lines.slice(start + 1, end).filter((l) => /^ {2}# (-| {2})/.test(l)).map((l) => l.replace(/^ {2}# /, '  '));
  const routes = YAML.parse(`routes:\n${commented.join('\n')}`).routes as Record<string, unknown>[];
  expect(routes.map((r) => r.name)).toEqual(['neuro-tumour', 'abdomen', 'night-ct']);
  const c = parseConfig({ destinations: [{ name: 'pacs', type: 'stow', url: 'http://x/dicom-web' }, { name: 'orthanc-web', type: 'stow', url: 'http://y/dicom-web' }], routes });
  const pick = (f: RoutingFacts) => chooseRoute(c.routes, f).route?.name;
  expect(pick({ series: [{ Modality: 'MR', StudyDescription: 'MR brain C+' }], now: at('10:00') })).toBe('neuro-tumour');
  expect(pick({ series: [{ Modality: 'CT', BodyPartExamined: 'HEAD' }], now: at('22:00') })).toBe('night-ct');
  expect(pick({ series: [{ Modality: 'CT', BodyPartExamined: 'HEAD' }], now: at('10:00') })).toBeUndefined();
  expect(pick({ series: [{ Modality: 'CT', BodyPartExamined: 'ABDOMEN' }], now: at('22:00') })).toBe('abdomen');
  expect(c.routes.find((r) => r.name === 'abdomen')!.tasks).toEqual(['liver-ct-mr']);
});
