/**
 * The tasks this build has, and which of them run on a study (docs/tasks.md, docs/routing.md).
 *
 * selectTasks, for the route a study took:
 *   1. a task the route does not list (routes[].tasks; default ["stroke-mr", "stroke-ct"]) does not run;
 *   2. a listed task with a `when` runs only if its condition holds (tags, AE titles, time, content facts);
 *   3. a listed task without `when`, on a route that also lists a task it competes with (stroke-mr and
 *      brain-tumour-mr: a study with DWI and FLAIR/T1/T2 is normal for both protocols), runs only if its
 *      content default holds: stroke-mr when DWI or ADC is present, brain-tumour-mr when a post-contrast T1
 *      is present; both hold → both run, and the outcome says so;
 *   4. then the task's own acceptance rule (Task.accept: inputs present, models ready).
 * Every task gets a decision with its reason, run or not.
 */
import type { Route, RouteTask } from '../config/schema';
import type { ModelRegistry } from '../models/registry';
import type { AvailabilityRecord } from '../types';
import { brainTumourMr } from './brain-tumour-mr';
import { liverCtMr } from './liver-ct-mr';
import { Condition, ConditionCheck, ContentKind, CONTENT_KINDS, RoutingFacts, evaluate } from './routing';
import { strokeCt } from './stroke-ct';
import { strokeMr } from './stroke-mr';
import type { Task } from './task';
import { TASK_IDS, TaskId } from './task-ids';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const TASKS: Task<any>[] = [strokeMr, strokeCt, brainTumourMr, liverCtMr];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function getTask(id: string): Task<any> | undefined {
  return TASKS.find((t) => t.id === id);
}

export interface RouteTaskEntry {
  task: TaskId;
  when?: Condition;
}

export function routeTaskEntries(route: Pick<Route, 'tasks'>): RouteTaskEntry[] {
  return (route.tasks as RouteTask[]).map((t) => (typeof t === 'string' ? { task: t } : { task: t.task, when: t.when as Condition | undefined }));
}

/** Every model name the route's tasks may use (readiness, worker subscription, admin page). */
export function routeModels(route: Route): string[] {
  return [...new Set(routeTaskEntries(route).flatMap((e) => getTask(e.task)?.models(route) ?? []))];
}

/** One task's decision on one study: in the outcome (StudyOutcome.tasks) and the rule tester. */
export interface TaskDecision {
  task: TaskId;
  title: string;
  /** Listed in the route's tasks. */
  listed: boolean;
  /** Selected to run (the run itself may still fail: see error). */
  run: boolean;
  /** Set by the processor: the task ran to the end (false: not selected, or it failed with `error`). */
  ran?: boolean;
  reason: string;
  /** The study has none of the task's inputs (so "nothing usable" for it). */
  inputsMissing?: boolean;
  /** Set after running: what it made, its numbers and notes, or the error it failed with. */
  outputs?: { kind: string; count: number }[];
  measurements?: Record<string, number | undefined>;
  notes?: string[];
  models?: { name: string; version: string }[];
  error?: string;
  /** The route condition (`when`) leaves, where the entry has one. */
  checks?: ConditionCheck[];
  plan?: unknown;
}

export interface TaskSelection {
  decisions: TaskDecision[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  toRun: { task: Task<any>; plan: unknown }[];
  /** Notes on the selection as a whole (e.g. both a stroke and a tumour task run). */
  notes: string[];
}

export function presentOf(av: AvailabilityRecord): Partial<Record<ContentKind, boolean>> {
  const a = av.available as Partial<Record<string, boolean>>;
  return Object.fromEntries(CONTENT_KINDS.map((k) => [k, a[k] === true]));
}

function failedChecks(checks: ConditionCheck[]): string {
  const bad = checks.filter((c) => !c.ok);
  const show = (bad.length ? bad : checks).slice(0, 3);
  return show.map((c) => `${c.field} ${c.operator} ${JSON.stringify(c.expected)} (study: ${JSON.stringify(c.actual)})`).join('; ');
}

export function selectTasks(route: Route, av: AvailabilityRecord, registry: Pick<ModelRegistry, 'isReady'>, facts: Omit<RoutingFacts, 'present'>): TaskSelection {
  const entries = routeTaskEntries(route);
  const listedIds = entries.map((e) => e.task);
  const withContent: RoutingFacts = { ...facts, present: presentOf(av) };
  const decisions: TaskDecision[] = [];
  const toRun: TaskSelection['toRun'] = [];
  const byDefault: TaskId[] = [];
  for (const e of entries) {
    const task = getTask(e.task);
    if (!task) {
      decisions.push({ task: e.task, title: e.task, listed: true, run: false, reason: 'unknown task (not in this build)' });
      continue;
    }
    const d: TaskDecision = { task: task.id, title: task.title, listed: true, run: false, reason: '' };
    decisions.push(d);
    if (e.when !== undefined) {
      const r = evaluate(e.when, withContent, `routes[${route.name}].tasks.${task.id}.when`);
      d.checks = r.checks;
      if (!r.ok) {
        d.reason = `the route's condition for ${task.id} does not hold: ${failedChecks(r.checks)}`;
        continue;
      }
    } else if (task.contentDefault) {
      const rivals = task.contentDefault.competesWith.filter((c) => listedIds.includes(c));
      if (rivals.length) {
        if (!task.contentDefault.holds(av)) {
          d.reason = `route "${route.name}" also lists ${rivals.join(', ')} and gives ${task.id} no "when": by default ${task.id} runs only when ${task.contentDefault.description}`;
          continue;
        }
        byDefault.push(task.id);
      }
    }
    const a = task.accept(av, route, registry);
    if (!a.run) {
      d.reason = a.reason;
      if (a.inputsMissing) d.inputsMissing = true;
      continue;
    }
    d.run = true;
    d.plan = a.plan;
    const how = e.when !== undefined ? "the route's condition holds" : byDefault.includes(task.id) ? `${task.contentDefault!.description} (content default)` : `listed in route "${route.name}"`;
    d.reason = [`runs: ${how}`, a.note].filter(Boolean).join('; ');
    toRun.push({ task, plan: a.plan });
  }
  for (const id of TASK_IDS) {
    if (listedIds.includes(id)) continue;
    const t = getTask(id);
    decisions.push({ task: id, title: t?.title ?? id, listed: false, run: false, reason: `not listed in route "${route.name}" tasks (${listedIds.join(', ')})` });
  }
  const notes: string[] = [];
  const defaultRan = byDefault.filter((id) => toRun.some((r) => r.task.id === id));
  if (defaultRan.length > 1) {
    notes.push(`${defaultRan.join(' and ')} both run: ${defaultRan.map((id) => getTask(id)!.contentDefault!.description).join(', and ')} (content defaults; set tasks[].when on route "${route.name}" to choose)`);
  }
  return { decisions, toRun, notes };
}
