/**
 * Routing rule tester (issue 19; docs/routing.md): which route a study takes and why, and which tasks would run
 * on it and why. Mounted under /admin/api/routes (admin auth and the CSRF / Origin rules of every admin POST).
 *
 *   GET  /admin/api/routes/stored       stored studies to pick from (study reference, series, modalities)
 *   POST /admin/api/routes/test         { studyInstanceUid } or { study: <reference | UID> }: a stored study
 *                                       { attributes: { <keyword>: value }, calledAeTitle, callingAeTitle,
 *                                         series: [{ Modality, SeriesDescription, ... }], present: ["DWI", ...] }
 *                                       optional time: "HH:MM" (local time to test timeOfDay rules at)
 *   → { route, routes: [{ route, ok, checks: [{ path, field, operator, expected, actual, ok }] }], tasks, ... }
 *
 * A stored study is evaluated on one header per series read from disk (as at arrival, but with every series:
 * the tester shows how the rules read the whole study), its calling/called AE from the instance index, and for
 * the tasks its availability from its last processing, or assembled now when it was never processed.
 */
import express, { Request, Response, Router } from 'express';
import type { Route } from '../config/schema';
import type { StrokeNode } from '../node';
import type { ModelRegistry } from '../models/registry';
import { chooseRoute, CONTENT_KINDS, DICOM_ROUTING_FIELDS, RoutingFacts, studyFacts } from '../pipelines/routing';
import { TaskDecision, presentOf, selectTasks } from '../pipelines/tasks';
import { assembleStudy } from '../study';
import { readHeader } from '../study/header';
import { AvailabilityRecord } from '../types';
import { ref } from '../util/log';

const MAX_SERIES = 200;
const MAX_VALUE = 256;

export interface RouteTestResult {
  source: 'stored study' | 'attributes';
  studyRef?: string;
  /** What the rules read: the AE titles, one record per series, the local time used. */
  facts: { calledAeTitle?: string; callingAeTitle?: string; series: Record<string, string | undefined>[]; time: string };
  /** The route taken (first that matches, in configuration order), or null. */
  route: string | null;
  /**
   * Stored study: the route its latest job was pinned to at arrival (on the series seen then), and a note when the
   * rules give another route on the whole study now (e.g. a catch-all took it before the series a rule names came).
   */
  takenRoute?: string;
  routeNote?: string;
  /** What happens to the study when no route matches. */
  noRoute?: string;
  routes: ReturnType<typeof chooseRoute>['evaluations'];
  tasks?: { availabilityFrom: string; available: string[]; decisions: TaskDecision[]; notes: string[] };
}

const hhmm = (d: Date) => `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;

function at(time: unknown): Date | string {
  if (time === undefined || time === null || time === '') return new Date();
  if (typeof time !== 'string' || !/^([01]\d|2[0-3]):[0-5]\d$/.test(time)) return 'time must be "HH:MM" (local time)';
  const d = new Date();
  d.setHours(Number(time.slice(0, 2)), Number(time.slice(3, 5)), 0, 0);
  return d;
}

function text(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' && typeof v !== 'number') throw new TesterInputError(`${what}: a string expected`);
  const s = String(v).trim();
  if (s.length > MAX_VALUE) throw new TesterInputError(`${what}: longer than ${MAX_VALUE} characters`);
  return s === '' ? undefined : s;
}

class TesterInputError extends Error {}

/** One series record from request attributes (only the routing keywords; others are ignored). */
function seriesRecord(o: unknown, what: string): Record<string, string | undefined> {
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new TesterInputError(`${what}: an object of DICOM keywords expected`);
  const r: Record<string, string | undefined> = {};
  for (const k of DICOM_ROUTING_FIELDS) {
    const v = (o as Record<string, unknown>)[k];
    if (v !== undefined) r[k] = text(v, `${what}.${k}`);
  }
  return r;
}

export function routeTestRouter(node: StrokeNode, registry: Pick<ModelRegistry, 'isReady'>): Router {
  const r = express.Router();
  const db = node.db;

  /** The StudyInstanceUID a key names: the UID itself or the study reference the page shows. */
  const resolve = (key: string): string | undefined => {
    const rows = db.prepare('SELECT DISTINCT study_uid AS u FROM instances').all() as { u: string }[];
    return rows.find((x) => x.u === key || ref(x.u) === key)?.u;
  };

  r.get('/stored', (_req: Request, res: Response) => {
    const rows = db
      .prepare(
        `SELECT study_uid AS u, COUNT(*) AS n, COUNT(DISTINCT series_uid) AS s, GROUP_CONCAT(DISTINCT modality) AS m, MAX(received_at) AS last
         FROM instances GROUP BY study_uid ORDER BY last DESC LIMIT 200`,
      )
      .all() as { u: string; n: number; s: number; m: string | null; last: string }[];
    const showIds = node.config.admin.showPatientIdentifiers;
    res.json({
      studies: rows.map((x) => ({ studyRef: ref(x.u), ...(showIds ? { studyInstanceUid: x.u } : {}), instances: x.n, series: x.s, modalities: (x.m ?? '').split(',').filter(Boolean), receivedAt: x.last })),
    });
  });

  r.post('/test', async (req: Request, res: Response) => {
    try {
      res.json(await runTest(req.body));
    } catch (e) {
      if (e instanceof TesterInputError) res.status(e.message.startsWith('no such study') ? 404 : 400).json({ error: e.message });
      else res.status(500).json({ error: `route test failed: ${(e as Error).message}` });
    }
  });

  async function runTest(body: unknown): Promise<RouteTestResult> {
    const b = (body ?? {}) as Record<string, unknown>;
    const now = at(b.time);
    if (typeof now === 'string') throw new TesterInputError(now);
    const routes = node.config.routes;
    const key = text(b.studyInstanceUid ?? b.study, 'study');
    if (key) {
      const uid = resolve(key);
      if (!uid) throw new TesterInputError('no such study stored (give the Study Instance UID or the study reference)');
      const rows = node.store.listStudy(uid);
      const firstOfSeries = [...new Map(rows.map((x) => [x.seriesInstanceUid, x])).values()].slice(0, MAX_SERIES);
      const headers = firstOfSeries.map((x) => readHeader(x)).filter((h) => !h.error).map((h) => h.ds);
      const facts = studyFacts(headers, { calledAeTitle: rows[0]?.calledAe ?? undefined, callingAeTitle: rows[0]?.sourceAe }, now);
      const chosen = chooseRoute(routes, facts);
      const out: RouteTestResult = base('stored study', facts, chosen);
      out.studyRef = ref(uid);
      const latest = (await node.queue.list({ limit: 500 })).filter((j) => j.studyUid === uid).sort((a, b) => b.id - a.id)[0];
      if (latest) {
        out.takenRoute = latest.route;
        if (latest.route !== out.route) {
          out.routeNote = `arrival pinned route "${latest.route}" on the series seen at the time (docs/routing.md: chosen at arrival, first match wins); on the whole study the rules now give ${out.route ? `"${out.route}"` : 'no route'}`;
        }
      }
      if (chosen.route) {
        const { av, from } = await availability(uid, rows, chosen.route);
        const sel = selectTasks(chosen.route, av, registry, facts);
        out.tasks = { availabilityFrom: from, available: CONTENT_KINDS.filter((k) => presentOf(av)[k]), decisions: sel.decisions, notes: sel.notes };
      }
      return out;
    }
    if (b.attributes === undefined && b.series === undefined) throw new TesterInputError('give studyInstanceUid (a stored study) or attributes / series (headers to test)');
    const study = b.attributes === undefined ? {} : seriesRecord(b.attributes, 'attributes');
    if (b.series !== undefined && (!Array.isArray(b.series) || b.series.length > MAX_SERIES)) throw new TesterInputError(`series: a list of at most ${MAX_SERIES} objects`);
    const series = Array.isArray(b.series) && b.series.length ? b.series.map((s, i) => ({ ...study, ...seriesRecord(s, `series.${i}`) })) : [study];
    const facts: RoutingFacts = { calledAeTitle: text(b.calledAeTitle, 'calledAeTitle'), callingAeTitle: text(b.callingAeTitle, 'callingAeTitle'), series, now };
    const chosen = chooseRoute(routes, facts);
    const out = base('attributes', facts, chosen);
    if (chosen.route) {
      const present = b.present === undefined ? [] : b.present;
      if (!Array.isArray(present) || present.some((p) => !(CONTENT_KINDS as readonly string[]).includes(String(p)))) throw new TesterInputError(`present: a list of ${CONTENT_KINDS.join(', ')}`);
      const available = Object.fromEntries(CONTENT_KINDS.map((k) => [k, present.includes(k)])) as AvailabilityRecord['available'];
      const av: AvailabilityRecord = { studyInstanceUid: '', available, series: [], notes: [] };
      const sel = selectTasks(chosen.route, av, registry, facts);
      out.tasks = { availabilityFrom: 'the request\'s "present" list', available: CONTENT_KINDS.filter((k) => available[k]), decisions: sel.decisions, notes: sel.notes };
    }
    return out;
  }

  function base(source: RouteTestResult['source'], facts: RoutingFacts, chosen: ReturnType<typeof chooseRoute>): RouteTestResult {
    return {
      source,
      facts: { calledAeTitle: facts.calledAeTitle, callingAeTitle: facts.callingAeTitle, series: facts.series, time: hhmm(facts.now) },
      route: chosen.route?.name ?? null,
      ...(chosen.route ? {} : { noRoute: 'no route matches: the study is kept (until retention) but not processed; the log says route.none' }),
      routes: chosen.evaluations,
    };
  }

  /** The study's availability: from its latest processed job, else assembled now. */
  async function availability(uid: string, rows: ReturnType<StrokeNode['store']['listStudy']>, route: Route): Promise<{ av: AvailabilityRecord; from: string }> {
    const jobs = (await node.queue.list({ limit: 500 })).filter((j) => j.studyUid === uid && j.outcome).sort((a, b) => b.id - a.id);
    for (const j of jobs) {
      const o = j.outcome as { availability?: { available?: AvailabilityRecord['available']; abdomen?: AvailabilityRecord['abdomen'] } };
      if (o.availability?.available) {
        const abdomen = o.availability.abdomen ? { abdomen: o.availability.abdomen } : {};
        return { av: { studyInstanceUid: uid, available: o.availability.available, series: [], notes: [], ...abdomen }, from: `its last processing (job ${j.id})` };
      }
    }
    const study = await assembleStudy(rows, { t1ContrastFromStudyContext: route.sequences.t1ContrastFromStudyContext });
    return { av: study.availability, from: 'the stored instances, assembled now (never processed)' };
  }

  return r;
}
