/**
 * The liver task's series acceptance (issue 16): which CT / MR series of a study is an abdominal liver input,
 * and which one the task runs on. Kept apart from classify.ts (the head protocols' classifier), whose
 * decisions and volumes are untouched: this adds its own judgement of every CT/MR series, with the reason.
 *
 * Region (per series: BodyPartExamined is a series attribute; the study's descriptions are read too):
 *   BodyPartExamined ABDOMEN / LIVER / ABDOMENPELVIS / CHESTABDOMEN... → abdominal; HEAD / BRAIN / NECK... → not;
 *   CHEST (or THORAX) alone → not, unless a description names the abdomen or liver (a chest-abdomen study);
 *   no BodyPartExamined → StudyDescription, RequestedProcedureDescription, ProtocolName or SeriesDescription
 *   must name the abdomen, the liver or an abdominal examination / organ (abdomen, abd, liver, hepat, Leber,
 *   Oberbauch, CAP, TAP, colon(ography), pancreas, kidney / renal, spleen, biliary, urography, enterography).
 * CT series: CT Image / Enhanced CT; not a localizer or projection; axial (slice normal within 25° of the
 *   patient's z axis: the model sees axial slices only); slice thickness <= 5 mm (the model was trained on 1-5 mm
 *   slices; thicker slices hide the tumours below ~1 cm in partial volume); at least 3 slices; one geometric stack.
 *   Phase: ContrastBolusAgent (and the other contrast tags) + the delay ContrastBolusStartTime → AcquisitionTime
 *   (< 45 s arterial, 45-150 s portal-venous, later delayed) when both are sent; else the series' own
 *   description / protocol words (arterial, portal / venous / PV, delayed, native / non-contrast / pre);
 *   contrast recorded with no phase named → portal-venous (the routine abdominal phase, said so).
 * MR series: the head classifier's MR weighting rules (classify.ts: AcquisitionContrast, TR/TE/TI, contrast
 *   tags, description last) without its head-only body-part rule: T1 post-contrast, T2 and T1 are liver inputs
 *   (DWI, ADC, FLAIR, STIR, PD, T2* are not); axial; slice thickness <= 8 mm (the MRI phantoms had 2-7 mm slices;
 *   abdominal T2 is routinely 5-8 mm); at least 3 slices.
 * Pick: CT before MR (the task's results are read on the CT in the viewer, and the CT phantoms are the larger
 *   half of the training data); CT portal-venous > arterial > non-contrast > delayed; MR T1 post-contrast > T2 >
 *   T1; then the thinnest slices, then the most slices.
 */
import { NaturalDataset, num, str, strs } from '../dicom/dcmjs';
import type { AbdomenAvailability, AbdomenKind, AbdomenSeriesDecision, VolumeGeometry } from '../types';
import { classifySeries, mrContrastEvidence, type ClassifyOptions } from './classify';
import type { FrameInfo, InstanceHeader } from './header';
import { stackGeometry } from './volume';

export const CT_MAX_SLICE_THICKNESS_MM = 5;
export const MR_MAX_SLICE_THICKNESS_MM = 8;
export const MIN_SLICES = 3;
/** cos(25°): the slice normal's z component must be at least this (axial or near-axial oblique). */
const AXIAL_MIN_NZ = Math.cos((25 * Math.PI) / 180);

const CT_CLASSES = new Set(['1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.5.1.4.1.1.2.1', '1.2.840.10008.5.1.4.1.1.2.2']);
const MR_CLASSES = new Set(['1.2.840.10008.5.1.4.1.1.4', '1.2.840.10008.5.1.4.1.1.4.1', '1.2.840.10008.5.1.4.1.1.4.4']);
const NOT_IMAGES = ['LOCALIZER', 'SCOUT', 'PROJECTION IMAGE', 'MIP', 'MINIP', 'VOLUME RENDERING', 'SCREEN SAVE'];

/** The abdomen, the liver, or an examination / organ of the abdomen (CT colonography, urography, pancreas, kidneys...). */
const ABDOMEN_WORDS = /abdom|\babd\b|\babdo\b|liver|hepat|leber|oberbauch|bauch|\bcap\b|\btap\b|torso|whole.?body|trunk|\bupper.?abd|colon|pancrea|kidney|renal|spleen|gallbladder|biliar|urogra|enterogra/i;
const HEAD_WORDS = /head|brain|skull|neuro|cerebr|crani|\bneck\b|orbit|sinus|\biac\b|kopf|schaedel|schädel/i;
const CHEST_WORDS = /chest|thorax|lung|pulmo|thorac/i;

/** Rank of each kind (lower runs first). */
export const ABDOMEN_KIND_RANK: Record<AbdomenKind, number> = {
  CT_PORTAL_VENOUS: 0,
  CT_ARTERIAL: 1,
  CT_NON_CONTRAST: 2,
  CT_DELAYED: 3,
  MR_T1C: 10,
  MR_T2: 11,
  MR_T1: 12,
};

export const ABDOMEN_KIND_TEXT: Record<AbdomenKind, string> = {
  CT_PORTAL_VENOUS: 'portal-venous CT',
  CT_ARTERIAL: 'arterial-phase CT',
  CT_NON_CONTRAST: 'non-contrast CT',
  CT_DELAYED: 'delayed-phase CT',
  MR_T1C: 'T1 post-contrast MRI',
  MR_T2: 'T2-weighted MRI',
  MR_T1: 'T1-weighted MRI',
};

const q = (s: string | undefined): string => `"${(s ?? '').trim()}"`;

/** The study-level texts a region decision reads, in words for the reason. */
function describedFields(ds: NaturalDataset): { field: string; value: string }[] {
  return ['StudyDescription', 'RequestedProcedureDescription', 'ProtocolName', 'SeriesDescription']
    .map((field) => ({ field, value: (str(ds, field) ?? '').trim() }))
    .filter((x) => x.value);
}

/** Is this series (its first header) part of an abdominal examination? */
export function abdominalRegion(ds: NaturalDataset): { ok: boolean; reason: string } {
  const bodyPart = (str(ds, 'BodyPartExamined') ?? '').trim();
  const texts = describedFields(ds);
  const abdText = texts.find((t) => ABDOMEN_WORDS.test(t.value));
  const headText = texts.find((t) => HEAD_WORDS.test(t.value));
  const bp = bodyPart.replace(/[_\s-]+/g, '');
  if (bodyPart) {
    if (ABDOMEN_WORDS.test(bp) || /ABDOMEN|LIVER|CHESTABDOMEN|ABDOMENPELVIS/i.test(bp)) return { ok: true, reason: `BodyPartExamined ${bodyPart}` };
    if (HEAD_WORDS.test(bodyPart)) return { ok: false, reason: `BodyPartExamined ${bodyPart}: a head/neck examination, not the abdomen` };
    if (CHEST_WORDS.test(bodyPart)) {
      return abdText
        ? { ok: true, reason: `BodyPartExamined ${bodyPart}, but ${abdText.field} ${q(abdText.value)} names the abdomen or an abdominal organ (chest-abdomen)` }
        : { ok: false, reason: `BodyPartExamined ${bodyPart} and no description names the abdomen or liver: a chest-only examination` };
    }
    return abdText
      ? { ok: true, reason: `BodyPartExamined ${bodyPart}, and ${abdText.field} ${q(abdText.value)} names the abdomen or an abdominal organ` }
      : { ok: false, reason: `BodyPartExamined ${bodyPart}: not an abdominal examination (no description names the abdomen or liver)` };
  }
  if (abdText && !(headText && !ABDOMEN_WORDS.test(headText.value))) {
    return { ok: true, reason: `no BodyPartExamined; ${abdText.field} ${q(abdText.value)} names the abdomen or an abdominal organ` };
  }
  if (headText) return { ok: false, reason: `no BodyPartExamined; ${headText.field} ${q(headText.value)} names a head/neck examination` };
  return { ok: false, reason: 'no BodyPartExamined, and no StudyDescription / RequestedProcedureDescription / ProtocolName / SeriesDescription names the abdomen or liver' };
}

const ARTERIAL = /arteri|\bart\b|\bhap\b|\blap\b|\beap\b/i;
const PORTAL = /portal|venous|\bpv\b|\bpvp\b|\bven\b/i;
const DELAYED = /delay|equilib|\bspät|\blate\b(?!.{0,3}arter)|\d\s?min\b|excret|urogra/i;
const NATIVE = /non.?contrast|non.?con\b|\bnative?\b|\bnc\b|plain|w\/o|without contrast|pre.?contrast|\bpre\b|unenhanced|non.?enhanced|\bsine\b|ohne\s?km/i;

/** hhmmss(.frac) → seconds since midnight. */
function tmSeconds(v: string | undefined): number | undefined {
  const m = /^(\d{2})(\d{2})?(\d{2})?(\.\d+)?$/.exec((v ?? '').trim().replace(/:/g, ''));
  if (!m) return undefined;
  return Number(m[1]) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0) + Number(m[4] ?? 0);
}

/** The CT contrast phase, with the evidence in words. */
export function ctPhase(ds: NaturalDataset): { kind: AbdomenKind; reason: string } {
  const words = `${str(ds, 'SeriesDescription') ?? ''} ${str(ds, 'ProtocolName') ?? ''}`.replace(/_/g, ' ');
  const contrast = mrContrastEvidence(ds);
  const said = (k: AbdomenKind, what: string) => ({ kind: k, reason: what });
  const wordKind: [RegExp, AbdomenKind, string][] = [
    [NATIVE, 'CT_NON_CONTRAST', 'before contrast'],
    [ARTERIAL, 'CT_ARTERIAL', 'the arterial phase'],
    [DELAYED, 'CT_DELAYED', 'a delayed phase'],
    [PORTAL, 'CT_PORTAL_VENOUS', 'the portal-venous phase'],
  ];
  const byWord = wordKind.find(([re]) => re.test(words));
  const quoted = `SeriesDescription/ProtocolName ${q(words.trim())}`;
  if (!contrast) {
    if (byWord && byWord[1] !== 'CT_NON_CONTRAST') return said(byWord[1], `no contrast tag, but ${quoted} names ${byWord[2]}`);
    return said('CT_NON_CONTRAST', `no contrast agent recorded (ContrastBolusAgent and the other contrast tags absent)${byWord ? `; ${quoted} agrees` : ''}`);
  }
  if (byWord?.[1] === 'CT_NON_CONTRAST') return said('CT_NON_CONTRAST', `${contrast} (study-level), but ${quoted} names the series ${byWord[2]}`);
  const start = tmSeconds(str(ds, 'ContrastBolusStartTime'));
  const acq = tmSeconds(str(ds, 'AcquisitionTime')) ?? tmSeconds(str(ds, 'SeriesTime'));
  if (start !== undefined && acq !== undefined && acq > start && acq - start < 3600) {
    const d = Math.round(acq - start);
    const k: AbdomenKind = d < 45 ? 'CT_ARTERIAL' : d <= 150 ? 'CT_PORTAL_VENOUS' : 'CT_DELAYED';
    return said(k, `${contrast}; acquired ${d} s after ContrastBolusStartTime (< 45 s arterial, 45-150 s portal-venous, later delayed)`);
  }
  if (byWord) return said(byWord[1], `${contrast}; ${quoted} names ${byWord[2]}`);
  return said('CT_PORTAL_VENOUS', `${contrast}; no phase named or timed: taken as portal-venous, the routine abdominal phase`);
}

export interface AbdomenJudgement {
  decision: AbdomenSeriesDecision;
  /** For a usable series: its checked stack, to load when the task runs. */
  geometry?: VolumeGeometry;
  sorted?: FrameInfo[];
}

function thicknessOf(frames: FrameInfo[], geometry?: VolumeGeometry): number | undefined {
  const th = frames.map((f) => f.sliceThickness).filter((x): x is number => x !== undefined && x > 0).sort((a, b) => a - b);
  return th.length ? th[th.length >> 1] : geometry?.sliceSpacing;
}

/** Judge one series (all its instance headers) as a liver input. */
export function judgeAbdomenSeries(uid: string, headers: InstanceHeader[], opts: ClassifyOptions = {}): AbdomenJudgement {
  const readable = headers.filter((h) => !h.error);
  const ds = readable[0]?.ds ?? {};
  const modality = (str(ds, 'Modality') ?? '').toUpperCase();
  const decision: AbdomenSeriesDecision = { seriesInstanceUid: uid, seriesDescription: str(ds, 'SeriesDescription'), modality, usable: false, reason: '' };
  const no = (reason: string): AbdomenJudgement => ({ decision: { ...decision, reason } });
  if (!readable.length) return no(headers[0]?.error ?? 'no readable instance');
  const sop = str(ds, 'SOPClassUID') ?? '';
  if (!(modality === 'CT' && CT_CLASSES.has(sop)) && !(modality === 'MR' && MR_CLASSES.has(sop))) {
    return no(`Modality ${modality || '(none)'}, SOP class ${sop || '(none)'}: not an acquired CT or MR image series`);
  }
  const frames = readable.flatMap((h) => h.frames);
  const imageTypes = new Set(frames.flatMap((f) => f.imageType));
  const bad = NOT_IMAGES.find((t) => imageTypes.has(t));
  if (bad) return no(`ImageType ${strs(ds, 'ImageType').join('\\')} contains ${bad}`);
  const region = abdominalRegion(ds);
  if (!region.ok) return no(region.reason);

  let kind: AbdomenKind;
  let why: string;
  if (modality === 'CT') {
    const p = ctPhase(ds);
    kind = p.kind;
    why = p.reason;
  } else {
    const c = classifySeries(readable, { ...opts, anyBodyPart: true });
    const map: Partial<Record<string, AbdomenKind>> = { T1C: 'MR_T1C', T2: 'MR_T2', T1: 'MR_T1' };
    const k = map[c.classification];
    if (!k || !c.usable) return no(`${region.reason}; MR ${c.classification}: ${c.reason} — the liver model reads T1 post-contrast, T2 or T1`);
    kind = k;
    why = c.reason;
  }
  const forUid = str(ds, 'FrameOfReferenceUID') ?? '';
  if (!/^[0-2](\.(0|[1-9]\d*))+$/.test(forUid)) return no(`${region.reason}; no valid FrameOfReferenceUID: results could not be placed on this series`);
  const tilt = num(ds, 'GantryDetectorTilt');
  const g = stackGeometry(frames, forUid, tilt !== undefined && tilt !== 0 ? tilt : undefined);
  if (!g.ok) return no(`${region.reason}; ${ABDOMEN_KIND_TEXT[kind]} rejected: ${g.reason}`);
  const geometry = g.geometry;
  const thickness = thicknessOf(frames, geometry);
  const base = { ...decision, kind, sliceThicknessMm: thickness, slices: geometry.slices };
  const nz = Math.abs(geometry.normal[2]);
  if (nz < AXIAL_MIN_NZ) {
    const plane = Math.abs(geometry.normal[0]) > Math.abs(geometry.normal[1]) ? 'sagittal' : 'coronal';
    return { decision: { ...base, reason: `${region.reason}; ${ABDOMEN_KIND_TEXT[kind]} but ${plane} (slice normal [${geometry.normal.map((x) => x.toFixed(2)).join(', ')}]): the model reads axial slices only` } };
  }
  const maxTh = modality === 'CT' ? CT_MAX_SLICE_THICKNESS_MM : MR_MAX_SLICE_THICKNESS_MM;
  if (thickness !== undefined && thickness > maxTh + 1e-3) {
    const why2 =
      modality === 'CT'
        ? `thicker than ${maxTh} mm: the model was trained on 1-5 mm CT slices, and tumours below ~1 cm vanish in the partial volume of thick slices`
        : `thicker than ${maxTh} mm: the MRI phantoms had 2-7 mm slices`;
    return { decision: { ...base, reason: `${region.reason}; ${ABDOMEN_KIND_TEXT[kind]}, slice thickness ${thickness} mm ${why2}` } };
  }
  if (geometry.slices < MIN_SLICES) return { decision: { ...base, reason: `${region.reason}; ${ABDOMEN_KIND_TEXT[kind]} of ${geometry.slices} slice(s): fewer than ${MIN_SLICES}, not a volume` } };
  const warn = geometry.warnings.length ? `; ${geometry.warnings.join('; ')}` : '';
  return {
    decision: {
      ...base,
      usable: true,
      reason: `${region.reason}; ${ABDOMEN_KIND_TEXT[kind]}: ${why}; axial, ${geometry.slices} slices of ${thickness ?? '?'} mm, ${geometry.columns}x${geometry.rows} at ${geometry.pixelSpacing[0].toFixed(2)} mm${warn}`,
    },
    geometry,
    sorted: g.sorted,
  };
}

/** The series the liver task runs on, with why that one (CT before MR; by phase / sequence; thinnest; most slices). */
export function pickAbdomenSeries(decisions: AbdomenSeriesDecision[]): AbdomenAvailability['pick'] {
  const usable = decisions.filter((d) => d.usable && d.kind);
  if (!usable.length) return undefined;
  const sorted = [...usable].sort(
    (a, b) =>
      ABDOMEN_KIND_RANK[a.kind!] - ABDOMEN_KIND_RANK[b.kind!] ||
      (a.sliceThicknessMm ?? 99) - (b.sliceThicknessMm ?? 99) ||
      (b.slices ?? 0) - (a.slices ?? 0),
  );
  const p = sorted[0];
  const others = sorted.slice(1);
  const modality = p.kind!.startsWith('CT') ? 'CT' : 'MR';
  const order = modality === 'CT' ? 'portal-venous > arterial > non-contrast > delayed' : 'T1 post-contrast > T2 > T1';
  const beaten = others.length
    ? `; preferred over ${others
        .map((o) =>
          ABDOMEN_KIND_RANK[o.kind!] !== ABDOMEN_KIND_RANK[p.kind!]
            ? `${ABDOMEN_KIND_TEXT[o.kind!]} ${q(o.seriesDescription)} (${o.kind!.startsWith('CT') === (modality === 'CT') ? order : 'CT before MR'})`
            : `${q(o.seriesDescription)} (${o.sliceThicknessMm} mm, ${o.slices} slices: thinnest, then most slices)`,
        )
        .join(', ')}`
    : '';
  return {
    seriesInstanceUid: p.seriesInstanceUid,
    modality,
    kind: p.kind!,
    reason: `${ABDOMEN_KIND_TEXT[p.kind!]} ${q(p.seriesDescription)}, ${p.sliceThicknessMm} mm x ${p.slices} slices${beaten}`,
  };
}

/** Judge every series of a study; the usable stacks by series UID for loading. */
export function assessAbdomen(series: { uid: string; headers: InstanceHeader[] }[], opts: ClassifyOptions = {}): { availability: AbdomenAvailability; stacks: Map<string, AbdomenJudgement> } {
  const stacks = new Map<string, AbdomenJudgement>();
  const decisions: AbdomenSeriesDecision[] = [];
  for (const s of series) {
    const j = judgeAbdomenSeries(s.uid, s.headers, opts);
    decisions.push(j.decision);
    if (j.decision.usable) stacks.set(s.uid, j);
  }
  const pick = pickAbdomenSeries(decisions);
  const first = series.map((s) => s.headers.find((h) => !h.error)?.ds).find((d) => d);
  const region = first ? abdominalRegion(first).reason : 'no readable instance';
  return { availability: { series: decisions, pick, region }, stacks };
}
