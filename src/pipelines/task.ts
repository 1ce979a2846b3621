/**
 * A task: one clinical question the node answers (stroke on MR, stroke on CT, brain tumour on MR, ...), with
 * its own acceptance rule, pipeline, models and results. Each task is a folder src/pipelines/<id>/ whose
 * index.ts exports a `Task`; src/pipelines/tasks.ts lists them. The processor (processor.ts) is generic:
 * assemble the study → pick the route's tasks (tasks.ts: selectTasks, with a reason for every task run or not)
 * → run each → save its objects → egress. docs/tasks.md: how to add one.
 */
import type { Config, Route } from '../config/schema';
import type { ResultHandoff } from '../egress/handoff';
import type { ModelRegistry } from '../models/registry';
import type { AssembledStudy } from '../study';
import type { AvailabilityRecord } from '../types';
import type { TaskId } from './task-ids';

export interface ProcessorDeps {
  config: Config;
  registry: ModelRegistry;
  /** Where result files go for sending: the local outbox, or the shared queue of a worker-only process. */
  handoff?: ResultHandoff;
  nodeVersion: string;
  resultsDir: string;
}

/** A task's answer to "would you run on this study?": the plan it will follow, or why not. */
export type Acceptance<P> =
  | { run: true; plan: P; note?: string }
  /** inputsMissing: the study has none of what the task reads (vs. it has them but e.g. no model is ready). */
  | { run: false; reason: string; inputsMissing?: boolean };

/** What a task gets to run. */
export interface TaskContext<P> {
  deps: ProcessorDeps;
  job: { id: number; studyUid: string };
  route: Route;
  study: AssembledStudy;
  plan: P;
  /** Stage timings of the study, shared by every task (ms; the processor rounds them). */
  timings: Record<string, number>;
  /** performance.now() when processing of the study started (provenance's processingMs). */
  tStart: number;
}

/** One result object a task made, before it is saved and sent. */
export interface TaskObject {
  /** SEG, SR, OVERLAY, SYNTHETIC_DWI, ... (the admin page counts them by kind). */
  kind: string;
  part10: Buffer;
  sop: string;
  series: string;
  /** Sent to the route's destinations that set overlaySc only (burned-in overlay images). */
  overlayOnly?: boolean;
}

export interface ModelUse {
  name: string;
  version: string;
  sha256: string;
  executionProvider: string;
}

/** What a task returns: its objects, its numbers and its notes (and the stroke outcome fields it fills). */
export interface TaskRunResult {
  objects: TaskObject[];
  /** Named numbers for the outcome (e.g. lesionVolumeMl); mL, rounded by the task. */
  measurements: Record<string, number | undefined>;
  notes: string[];
  /** Models that ran (provenance, admin page). */
  models: ModelUse[];
  /**
   * Top-level StudyOutcome fields this task sets (the stroke tasks keep the fields the admin page and the
   * stroke tests read: model, synthesisModel, lesionVolumeMl, coreVolumeMl, coreNote, postprocessing, note).
   */
  outcome?: Record<string, unknown>;
}

export interface Task<P = unknown> {
  id: TaskId;
  /** One line for people (admin page, outcome). */
  title: string;
  /** In words: what the task needs from the availability record (docs, tester). */
  needs: string;
  /** The model names this task may use on a route (for readiness, the admin page and worker subscription). */
  models(route: Route): string[];
  /**
   * The acceptance rule: would the task run on a study with this availability on this route, and how. Pure:
   * no I/O, so the rule tester can call it on a stored study.
   */
  accept(av: AvailabilityRecord, route: Route, registry: Pick<ModelRegistry, 'isReady'>): Acceptance<P>;
  /**
   * The default content condition used when the route lists a competing task (one of `competesWith`) and this
   * task's entry has no `when` (tasks.ts: a study with DWI and FLAIR/T1/T2 is normal for both protocols).
   */
  contentDefault?: { competesWith: TaskId[]; holds(av: AvailabilityRecord): boolean; description: string };
  run(ctx: TaskContext<P>): Promise<TaskRunResult>;
}
