/**
 * Routing rules on DICOM tags (routes[].match) and task conditions (routes[].tasks[].when): a small
 * structured condition language, validated when the configuration loads and evaluated without eval.
 *
 *   leaf        { field: <name>, equals: "MR" } | { field, in: ["HEAD", "BRAIN"] } | { field, matches: "^dwi" } | { field, exists: true }
 *   time        { timeOfDay: { from: "18:00", to: "07:00" } }      local time, from inclusive, to exclusive, wraps midnight
 *   content     { present: ["T1C"] } | { absent: ["DWI"] }         what the study offers (availability record): tasks[].when only
 *   combinators { all: [...] } | { any: [...] } | { not: {...} }
 *
 * Fields: the called / calling AE title, and DICOM attributes by keyword (ROUTING_FIELDS). A series-level
 * attribute (Modality, SeriesDescription, ProtocolName, ...) is true when ANY series of the study satisfies the
 * leaf; `not` turns that into "no series". equals / in compare the value with DICOM padding trimmed,
 * case-sensitive; matches is a case-insensitive regular expression compiled once at start-up (an invalid one
 * stops start-up naming its path); exists is true when some series has a non-empty value.
 *
 * `routes[].match` is an implicit `all` of its keys: the legacy keys calledAeTitle / callingAeTitle (equality)
 * plus any of field / all / any / not / timeOfDay. docs/routing.md is the user guide.
 */
import type { NaturalDataset } from '../dicom/dcmjs';

/** Attributes a rule may test, besides calledAeTitle / callingAeTitle. Series-level ones are tested on every series. */
export const DICOM_ROUTING_FIELDS = [
  'Modality',
  'BodyPartExamined',
  'StudyDescription',
  'ProtocolName',
  'SeriesDescription',
  'RequestedProcedureDescription',
  'InstitutionName',
  'StationName',
  'Manufacturer',
  'ManufacturerModelName',
] as const;
export const ROUTING_FIELDS = ['calledAeTitle', 'callingAeTitle', ...DICOM_ROUTING_FIELDS] as const;
export type RoutingField = (typeof ROUTING_FIELDS)[number];

/** Content facts a task condition may test (the availability record's keys; CT_ABDOMEN / MR_ABDOMEN: the liver task's series, src/study/abdomen.ts). */
export const CONTENT_KINDS = ['DWI', 'ADC', 'CT', 'FLAIR', 'T1', 'T1C', 'T2', 'CT_ABDOMEN', 'MR_ABDOMEN'] as const;
export type ContentKind = (typeof CONTENT_KINDS)[number];

export type Condition =
  | { all: Condition[] }
  | { any: Condition[] }
  | { not: Condition }
  | { field: RoutingField; equals?: string | number; in?: (string | number)[]; matches?: string; exists?: boolean }
  | { timeOfDay: { from: string; to: string } }
  | { present: ContentKind[] }
  | { absent: ContentKind[] };

/** What a rule is evaluated on. */
export interface RoutingFacts {
  calledAeTitle?: string;
  callingAeTitle?: string;
  /** One record per series (the first instance's header of each), attribute keyword → trimmed value. */
  series: Record<string, string | undefined>[];
  /** Local time of evaluation. */
  now: Date;
  /** Usable content (availability record); undefined where it is not known yet (route matching at arrival). */
  present?: Partial<Record<ContentKind, boolean>>;
}

/** One leaf's result, for the outcome and the rule tester. */
export interface ConditionCheck {
  /** Where the leaf is in the configuration, e.g. "routes.1.match.all.0". */
  path: string;
  field: string;
  operator: 'equals' | 'in' | 'matches' | 'exists' | 'timeOfDay' | 'present' | 'absent';
  expected: unknown;
  /** The values the study has for the field (every series for a series-level one), or the time. */
  actual: unknown;
  ok: boolean;
}

export interface ConditionResult {
  ok: boolean;
  checks: ConditionCheck[];
}

const HHMM = /^([01]\d|2[0-3]):[0-5]\d$/;
const LEAF_OPS = ['equals', 'in', 'matches', 'exists'] as const;
const COMBINATORS = ['all', 'any', 'not'] as const;

/**
 * Check a condition tree; returns one message per problem, each with the path of the bad key
 * ("routes.0.match.all.1.matches: invalid regular expression ..."). `allowContent`: present/absent allowed
 * (task conditions; a route is chosen before the study's content is known).
 */
export function validateCondition(c: unknown, path: (string | number)[], allowContent: boolean): { path: (string | number)[]; message: string }[] {
  const out: { path: (string | number)[]; message: string }[] = [];
  const bad = (p: (string | number)[], message: string) => out.push({ path: p, message });
  if (!c || typeof c !== 'object' || Array.isArray(c)) {
    bad(path, 'a condition is an object: { field, equals | in | matches | exists }, { timeOfDay }, { present }, { all }, { any } or { not }');
    return out;
  }
  const o = c as Record<string, unknown>;
  const keys = Object.keys(o);
  const kinds = [
    keys.includes('field') ? 'field' : undefined,
    keys.includes('timeOfDay') ? 'timeOfDay' : undefined,
    keys.includes('present') ? 'present' : undefined,
    keys.includes('absent') ? 'absent' : undefined,
    ...COMBINATORS.filter((k) => keys.includes(k)),
  ].filter(Boolean);
  if (kinds.length !== 1) {
    bad(path, kinds.length ? `one kind of condition per object (found ${kinds.join(', ')}): wrap several in { all: [...] }` : `unknown condition keys ${keys.join(', ') || '(none)'}`);
    return out;
  }
  const kind = kinds[0]!;
  if (kind === 'field') {
    if (!(ROUTING_FIELDS as readonly string[]).includes(String(o.field))) bad([...path, 'field'], `unknown field "${String(o.field)}" (one of ${ROUTING_FIELDS.join(', ')})`);
    const ops = LEAF_OPS.filter((k) => k in o);
    const extra = keys.filter((k) => k !== 'field' && !(LEAF_OPS as readonly string[]).includes(k));
    if (extra.length) bad(path, `unknown key(s) ${extra.join(', ')} in a field condition`);
    if (ops.length !== 1) {
      bad(path, `a field condition needs exactly one of equals, in, matches, exists (found ${ops.join(', ') || 'none'})`);
      return out;
    }
    const op = ops[0];
    const v = o[op];
    if (op === 'equals' && typeof v !== 'string' && typeof v !== 'number') bad([...path, op], 'equals takes a string or a number');
    if (op === 'in' && (!Array.isArray(v) || !v.length || v.some((x) => typeof x !== 'string' && typeof x !== 'number'))) bad([...path, op], 'in takes a non-empty list of strings');
    if (op === 'exists' && typeof v !== 'boolean') bad([...path, op], 'exists takes true or false');
    if (op === 'matches') {
      if (typeof v !== 'string') bad([...path, op], 'matches takes a regular expression as a string');
      else {
        try {
          new RegExp(v, 'i');
        } catch (e) {
          bad([...path, op], `invalid regular expression ${JSON.stringify(v)}: ${(e as Error).message}`);
        }
      }
    }
  } else if (kind === 'timeOfDay') {
    const t = o.timeOfDay as Record<string, unknown> | undefined;
    if (!t || typeof t !== 'object') bad([...path, 'timeOfDay'], 'timeOfDay is { from: "HH:MM", to: "HH:MM" }');
    else {
      for (const k of ['from', 'to']) if (typeof t[k] !== 'string' || !HHMM.test(t[k] as string)) bad([...path, 'timeOfDay', k], `"HH:MM" (24 h, local time) expected, got ${JSON.stringify(t[k])}`);
      const extra = Object.keys(t).filter((k) => k !== 'from' && k !== 'to');
      if (extra.length) bad([...path, 'timeOfDay'], `unknown key(s) ${extra.join(', ')}`);
    }
    if (keys.length > 1) bad(path, `timeOfDay stands alone (found ${keys.join(', ')}): wrap several conditions in { all: [...] }`);
  } else if (kind === 'present' || kind === 'absent') {
    if (!allowContent) bad([...path, kind], `${kind} tests the study's content, known only once the study is assembled: use it in routes[].tasks[].when, not in routes[].match`);
    const v = o[kind];
    if (!Array.isArray(v) || !v.length) bad([...path, kind], `${kind} takes a non-empty list of ${CONTENT_KINDS.join(', ')}`);
    else v.forEach((x, i) => (CONTENT_KINDS as readonly string[]).includes(String(x)) || bad([...path, kind, i], `unknown content "${String(x)}" (one of ${CONTENT_KINDS.join(', ')})`));
    if (keys.length > 1) bad(path, `${kind} stands alone (found ${keys.join(', ')})`);
  } else if (kind === 'not') {
    if (keys.length > 1) bad(path, `not stands alone (found ${keys.join(', ')})`);
    out.push(...validateCondition(o.not, [...path, 'not'], allowContent));
  } else {
    const list = o[kind];
    if (keys.length > 1) bad(path, `${kind} stands alone (found ${keys.join(', ')})`);
    if (!Array.isArray(list) || !list.length) bad([...path, kind], `${kind} takes a non-empty list of conditions`);
    else list.forEach((x, i) => out.push(...validateCondition(x, [...path, kind, i], allowContent)));
  }
  return out;
}

/** The conditions of a routes[].match object (its keys are an implicit `all`). */
export function matchConditions(match: RouteMatch): Condition[] {
  const out: Condition[] = [];
  if (match.calledAeTitle !== undefined) out.push({ field: 'calledAeTitle', equals: match.calledAeTitle });
  if (match.callingAeTitle !== undefined) out.push({ field: 'callingAeTitle', equals: match.callingAeTitle });
  if (match.field !== undefined) out.push({ field: match.field, equals: match.equals, in: match.in, matches: match.matches, exists: match.exists } as Condition);
  if (match.timeOfDay) out.push({ timeOfDay: match.timeOfDay });
  if (match.all) out.push({ all: match.all });
  if (match.any) out.push({ any: match.any });
  if (match.not) out.push({ not: match.not });
  return out;
}

/** routes[].match as the configuration holds it. */
export interface RouteMatch {
  calledAeTitle?: string;
  callingAeTitle?: string;
  field?: RoutingField;
  equals?: string | number;
  in?: (string | number)[];
  matches?: string;
  exists?: boolean;
  timeOfDay?: { from: string; to: string };
  all?: Condition[];
  any?: Condition[];
  not?: Condition;
}

/** Validate a routes[].match object: legacy keys plus the condition keys, each checked like a condition. */
export function validateMatch(m: unknown, path: (string | number)[]): { path: (string | number)[]; message: string }[] {
  if (!m || typeof m !== 'object' || Array.isArray(m)) return [{ path, message: 'match is an object' }];
  const o = m as Record<string, unknown>;
  const out: { path: (string | number)[]; message: string }[] = [];
  const allowed = ['calledAeTitle', 'callingAeTitle', 'field', ...LEAF_OPS, 'timeOfDay', 'all', 'any', 'not'];
  for (const k of Object.keys(o)) if (!allowed.includes(k)) out.push({ path: [...path, k], message: `unknown key "${k}" in match (one of ${allowed.join(', ')}; present/absent belong in tasks[].when)` });
  for (const k of ['calledAeTitle', 'callingAeTitle']) if (k in o && typeof o[k] !== 'string') out.push({ path: [...path, k], message: 'an AE title string' });
  if ('field' in o) {
    const leaf: Record<string, unknown> = { field: o.field };
    for (const k of LEAF_OPS) if (k in o) leaf[k] = o[k];
    out.push(...validateCondition(leaf, path, false));
  } else {
    for (const k of LEAF_OPS) if (k in o) out.push({ path: [...path, k], message: `${k} needs a field` });
  }
  if ('timeOfDay' in o) out.push(...validateCondition({ timeOfDay: o.timeOfDay }, path, false));
  for (const k of COMBINATORS) if (k in o) out.push(...validateCondition({ [k]: o[k] }, path, false));
  return out;
}

const regexCache = new Map<string, RegExp>();
/** Compiled once per pattern (validated at start-up, so this does not throw for a loaded configuration). */
function regex(p: string): RegExp {
  let r = regexCache.get(p);
  if (!r) {
    r = new RegExp(p, 'i');
    regexCache.set(p, r);
  }
  return r;
}

/** Precompile every pattern of a condition list (start-up: the cost is paid once, errors surface at load). */
export function compilePatterns(conds: Condition[]): void {
  const walk = (c: Condition): void => {
    if ('all' in c) c.all.forEach(walk);
    else if ('any' in c) c.any.forEach(walk);
    else if ('not' in c) walk(c.not);
    else if ('field' in c && typeof c.matches === 'string') regex(c.matches);
  };
  conds.forEach(walk);
}

/** Every field a condition list tests (the router reads full headers only when a rule needs them). */
export function collectFields(conds: Condition[], into: Set<string>): Set<string> {
  const walk = (c: Condition): void => {
    if ('all' in c) c.all.forEach(walk);
    else if ('any' in c) c.any.forEach(walk);
    else if ('not' in c) walk(c.not);
    else if ('field' in c) into.add(c.field);
  };
  conds.forEach(walk);
  return into;
}

/** The values a study has for a field: the AE titles, or every distinct non-empty value across its series. */
export function fieldValues(facts: RoutingFacts, field: RoutingField): string[] {
  if (field === 'calledAeTitle') return facts.calledAeTitle !== undefined ? [facts.calledAeTitle.trim()] : [];
  if (field === 'callingAeTitle') return facts.callingAeTitle !== undefined ? [facts.callingAeTitle.trim()] : [];
  const vals = new Set<string>();
  for (const s of facts.series) {
    const v = s[field];
    if (v !== undefined && v !== '') vals.add(v);
  }
  return [...vals];
}

function minutes(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h * 60 + m;
}

/** from <= now < to; from > to wraps past midnight; from == to: the whole day. */
export function inTimeWindow(now: Date, from: string, to: string): boolean {
  const t = now.getHours() * 60 + now.getMinutes();
  const a = minutes(from);
  const b = minutes(to);
  if (a === b) return true;
  return a < b ? t >= a && t < b : t >= a || t < b;
}

/** Evaluate one condition; every leaf is evaluated (no short-circuit) so the trace shows each. */
export function evaluate(c: Condition, facts: RoutingFacts, path: string): ConditionResult {
  if ('all' in c) {
    const rs = c.all.map((x, i) => evaluate(x, facts, `${path}.all.${i}`));
    return { ok: rs.every((r) => r.ok), checks: rs.flatMap((r) => r.checks) };
  }
  if ('any' in c) {
    const rs = c.any.map((x, i) => evaluate(x, facts, `${path}.any.${i}`));
    return { ok: rs.some((r) => r.ok), checks: rs.flatMap((r) => r.checks) };
  }
  if ('not' in c) {
    const r = evaluate(c.not, facts, `${path}.not`);
    return { ok: !r.ok, checks: r.checks };
  }
  if ('timeOfDay' in c) {
    const hh = String(facts.now.getHours()).padStart(2, '0');
    const mm = String(facts.now.getMinutes()).padStart(2, '0');
    const ok = inTimeWindow(facts.now, c.timeOfDay.from, c.timeOfDay.to);
    return { ok, checks: [{ path, field: 'time of day', operator: 'timeOfDay', expected: `${c.timeOfDay.from}-${c.timeOfDay.to}`, actual: `${hh}:${mm}`, ok }] };
  }
  if ('present' in c || 'absent' in c) {
    const op = 'present' in c ? 'present' : 'absent';
    const kinds = 'present' in c ? c.present : c.absent;
    const have = facts.present ? CONTENT_KINDS.filter((k) => facts.present![k]) : undefined;
    // Unknown content (a route chosen at arrival) never satisfies a content condition.
    const ok = have !== undefined && kinds.every((k) => (op === 'present') === have.includes(k));
    return { ok, checks: [{ path, field: 'content', operator: op, expected: kinds, actual: have ?? 'not known yet', ok }] };
  }
  const values = fieldValues(facts, c.field);
  let operator: ConditionCheck['operator'];
  let expected: unknown;
  let ok: boolean;
  if (c.equals !== undefined) {
    operator = 'equals';
    expected = String(c.equals);
    ok = values.includes(String(c.equals).trim());
  } else if (c.in !== undefined) {
    operator = 'in';
    const set = c.in.map((x) => String(x).trim());
    expected = set;
    ok = values.some((v) => set.includes(v));
  } else if (c.matches !== undefined) {
    operator = 'matches';
    expected = c.matches;
    const r = regex(c.matches);
    ok = values.some((v) => r.test(v));
  } else {
    operator = 'exists';
    expected = c.exists !== false;
    ok = (values.length > 0) === (c.exists !== false);
  }
  return { ok, checks: [{ path, field: c.field, operator, expected, actual: values, ok }] };
}

export interface RouteLike {
  name: string;
  match: RouteMatch;
}

export interface RouteEvaluation {
  route: string;
  ok: boolean;
  checks: ConditionCheck[];
}

/** Evaluate one route's match (an empty match matches every study). */
export function evaluateRoute(route: RouteLike, index: number, facts: RoutingFacts): RouteEvaluation {
  const rs = matchConditions(route.match).map((c) => evaluate(c, facts, `routes.${index}.match`));
  return { route: route.name, ok: rs.every((r) => r.ok), checks: rs.flatMap((r) => r.checks) };
}

/**
 * The route a study takes: the FIRST route in configuration order whose match holds (so list specific
 * routes before general ones; a route with an empty match catches everything after it). Also returns the
 * evaluation of every route tried, for the tester. Undefined route: no route matches.
 */
export function chooseRoute<R extends RouteLike>(routes: R[], facts: RoutingFacts): { route?: R; evaluations: RouteEvaluation[] } {
  const evaluations: RouteEvaluation[] = [];
  let chosen: R | undefined;
  routes.forEach((r, i) => {
    const e = evaluateRoute(r, i, facts);
    evaluations.push(e);
    if (e.ok && !chosen) chosen = r;
  });
  return { route: chosen, evaluations };
}

const SERIES_FIELDS = DICOM_ROUTING_FIELDS;

function headerValue(ds: NaturalDataset, key: string): string | undefined {
  const v = (ds as Record<string, unknown>)[key];
  const one = Array.isArray(v) ? v[0] : v;
  if (one === undefined || one === null) return undefined;
  const s = String(one).trim();
  return s === '' ? undefined : s;
}

/** The routing record of one series, from one instance's header. */
export function seriesFacts(ds: NaturalDataset): Record<string, string | undefined> {
  const r: Record<string, string | undefined> = {};
  for (const k of SERIES_FIELDS) r[k] = headerValue(ds, k);
  return r;
}

/** Routing facts of a study from its headers (one per series is enough; more are merged by SeriesInstanceUID). */
export function studyFacts(headers: Iterable<NaturalDataset>, ae: { calledAeTitle?: string; callingAeTitle?: string }, now = new Date()): RoutingFacts {
  const bySeries = new Map<string, Record<string, string | undefined>>();
  for (const ds of headers) {
    const uid = headerValue(ds, 'SeriesInstanceUID') ?? `#${bySeries.size}`;
    if (!bySeries.has(uid)) bySeries.set(uid, seriesFacts(ds));
  }
  return { ...ae, series: [...bySeries.values()], now };
}
