/**
 * The study stage: from the stored instances of a stable study to classified, geometrically
 * checked volumes and an availability record saying what the models can use and why.
 *
 *   assembleStudy(instances) → { availability, volumes, headers }
 *
 * See src/study/README.md for the tags each decision reads.
 */
import { AvailabilityRecord, SeriesDecision, StoredInstance, Vec3, Volume, VolumeKind } from '../types';
import { NaturalDataset, num, str } from '../dicom/dcmjs';
import { FrameInfo, InstanceHeader, readHeader } from './header';
import { bKey, Classification, ClassifyOptions, classifySeries, SeriesClass } from './classify';
import { dot, loadVolume, PixelCache, stackGeometry } from './volume';
import { computeAdc, geometricMeanTrace } from './diffusion';
import { AbdomenAvailability, VolumeGeometry } from '../types';
import { assessAbdomen } from './abdomen';

export { toModelGrid, fromModelGrid, slicesBySource, sliceSourceKey } from './resample';
export type { ModelGrid, ModelGridVolume } from './resample';
export { computeAdc, geometricMeanTrace } from './diffusion';
export { classifySeries, mrContrastEvidence } from './classify';
export type { ClassifyOptions } from './classify';
/** Site options of the study stage (config: see src/study/README.md). */
export type AssembleOptions = ClassifyOptions;
export type { InstanceHeader, FrameInfo } from './header';

export interface StudyVolumes {
  /** High-b isotropic trace DWI (scanner TRACEW, or computed from directions: computed=true). */
  DWI?: Volume;
  DWI_B0?: Volume;
  ADC?: Volume;
  CT?: Volume;
  FLAIR?: Volume;
  T1?: Volume;
  T1C?: Volume;
  T2?: Volume;
}

export interface AssembledStudy {
  availability: AvailabilityRecord;
  volumes: StudyVolumes;
  /**
   * The liver task's series (src/study/abdomen.ts), loaded only when a task asks for it (an abdominal CT is
   * ~100 MB of pixels: a route without the liver task never reads them).
   */
  abdomen?: { pick: NonNullable<AbdomenAvailability['pick']>; load(): Promise<Volume> };
  /** One parsed header an instance, without PixelData, keyed by SOPInstanceUID. */
  headers: Map<string, NaturalDataset>;
}

/** One checked stack (not yet loaded) that can become a volume. */
interface Stack {
  seriesUid: string;
  cls: SeriesClass;
  bValue?: number;
  /** One sorted frame list a direction/repeat; one entry for non-diffusion stacks. */
  parts: { geometry: VolumeGeometry; sorted: FrameInfo[] }[];
  thickness: number;
  description?: string;
}

interface SeriesState {
  uid: string;
  headers: InstanceHeader[];
  ds: NaturalDataset;
  cls: Classification;
  decision: SeriesDecision;
  stacks: Stack[];
}

const round = (x: number, d: number): number => Math.round(x * 10 ** d) / 10 ** d;

/**
 * Split frames into sub-stacks, one a gradient direction (when every frame carries one), and
 * within each, one a repeat when several frames share a slice position (k-th occurrence in
 * acquisition order → k-th sub-stack).
 */
function splitDirections(frames: FrameInfo[], useGradient: boolean): FrameInfo[][] {
  const groups = new Map<string, FrameInfo[]>();
  const allGrad = useGradient && frames.every((f) => f.gradient && f.gradient.every((x) => Number.isFinite(x)));
  for (const f of frames) {
    const k = allGrad ? (f.gradient as Vec3).map((x) => round(x, 3).toFixed(3)).join(',') : 'all';
    const g = groups.get(k) ?? [];
    g.push(f);
    groups.set(k, g);
  }
  const out: FrameInfo[][] = [];
  for (const g of groups.values()) {
    const o = g[0].orientation ?? [];
    const n: Vec3 | undefined =
      o.length >= 6 ? [o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]] : undefined;
    if (!n || g.some((f) => !f.position)) {
      out.push(g);
      continue;
    }
    const byPos = new Map<string, FrameInfo[]>();
    const ordered = [...g].sort(
      (a, b) => a.instanceNumber - b.instanceNumber || (a.acquisitionTime ?? '').localeCompare(b.acquisitionTime ?? '') || a.frameIndex - b.frameIndex,
    );
    for (const f of ordered) {
      const k = round(dot(f.position as Vec3, n), 1).toFixed(1);
      const l = byPos.get(k) ?? [];
      l.push(f);
      byPos.set(k, l);
    }
    const reps = Math.max(...[...byPos.values()].map((l) => l.length));
    if (reps === 1) {
      out.push(g);
      continue;
    }
    for (let r = 0; r < reps; r++) out.push([...byPos.values()].map((l) => l[r]).filter((x): x is FrameInfo => !!x));
  }
  return out;
}

function gantryTilt(ds: NaturalDataset): number | undefined {
  const t = num(ds, 'GantryDetectorTilt');
  return t !== undefined && t !== 0 ? t : undefined;
}

function buildStacks(s: SeriesState): { stacks: Stack[]; problems: string[]; notes: string[] } {
  const frames = s.headers.filter((h) => !h.error).flatMap((h) => h.frames);
  const forUid = str(s.ds, 'FrameOfReferenceUID') ?? '';
  if (!/^[0-2](\.(0|[1-9]\d*))+$/.test(forUid) || forUid.length > 64) {
    // Every SEG, SR and SC the node writes is placed on the source's frame of reference: a series
    // without one cannot get results, and retrying would not change that (not a transient failure).
    return { stacks: [], problems: ['no valid FrameOfReferenceUID (0020,0052): results could not be placed on this series'], notes: [] };
  }
  const tilt = gantryTilt(s.ds);
  const problems: string[] = [];
  const notes: string[] = [];
  const stacks: Stack[] = [];
  const th = frames.map((f) => f.sliceThickness).filter((x): x is number => x !== undefined && x > 0);
  const thickness = th.length ? th.sort((a, b) => a - b)[th.length >> 1] : Number.POSITIVE_INFINITY;
  const description = str(s.ds, 'SeriesDescription');
  const bySplit: { b?: number; groups: FrameInfo[][] }[] = [];
  if (s.cls.classification === 'DWI' || s.cls.classification === 'TRACEW') {
    const byB = new Map<number, FrameInfo[]>();
    for (const f of frames) {
      const k = bKey(f.bValue ?? 0);
      const l = byB.get(k) ?? [];
      l.push(f);
      byB.set(k, l);
    }
    for (const [b, all] of [...byB.entries()].sort((x, y) => x[0] - y[0])) {
      let fs = all;
      // Philips/GE put the scanner's isotropic image (DiffusionDirectionality ISOTROPIC or a zero
      // gradient at b > 0) beside the directional ones: use it as the trace when present.
      const iso = (f: FrameInfo): boolean =>
        (f.directionality ?? '').toUpperCase() === 'ISOTROPIC' || (!!f.gradient && Math.hypot(...f.gradient) < 1e-6);
      if (b > 0 && s.cls.classification === 'DWI' && all.some(iso) && !all.every(iso)) {
        fs = all.filter(iso);
        notes.push(`b=${b}: the scanner's isotropic images in the series used as the trace (${all.length - fs.length} directional frames set aside)`);
      }
      bySplit.push({ b, groups: splitDirections(fs, s.cls.classification === 'DWI' && b > 0) });
    }
  } else {
    bySplit.push({ groups: [frames] });
  }
  for (const { b, groups } of bySplit) {
    const parts: Stack['parts'] = [];
    let failed: string | undefined;
    for (const g of groups) {
      const r = stackGeometry(g, forUid, tilt);
      if (!r.ok) {
        failed = r.reason;
        break;
      }
      parts.push({ geometry: r.geometry, sorted: r.sorted });
    }
    const label = b !== undefined ? `b=${b}` : s.cls.classification;
    if (!failed && parts.length > 1) {
      const g0 = parts[0].geometry;
      const same = parts.every(
        (p) =>
          p.geometry.slices === g0.slices &&
          p.geometry.rows === g0.rows &&
          p.geometry.columns === g0.columns &&
          p.geometry.slicePositions.every((q, i) => Math.hypot(q[0] - g0.slicePositions[i][0], q[1] - g0.slicePositions[i][1], q[2] - g0.slicePositions[i][2]) < 0.1),
      );
      if (!same) failed = `the ${parts.length} directions/repeats at ${label} do not cover the same slices`;
    }
    if (failed) {
      problems.push(`${label}: ${failed}`);
      continue;
    }
    const w = parts[0].geometry.warnings;
    if (w.length) notes.push(`${label}: ${w.join('; ')}`);
    if (b !== undefined && parts.length > 1) notes.push(`${label}: ${parts.length} directions/repeats → isotropic trace computed (geometric mean)`);
    stacks.push({ seriesUid: s.uid, cls: s.cls.classification, bValue: b, parts, thickness, description });
  }
  return { stacks, problems, notes };
}

function sameGrid(a: VolumeGeometry, b: VolumeGeometry): boolean {
  return (
    a.rows === b.rows &&
    a.columns === b.columns &&
    a.slices === b.slices &&
    a.slicePositions.every((p, i) => Math.hypot(p[0] - b.slicePositions[i][0], p[1] - b.slicePositions[i][1], p[2] - b.slicePositions[i][2]) < 0.5) &&
    a.rowCosines.every((x, i) => Math.abs(x - b.rowCosines[i]) < 1e-3) &&
    a.columnCosines.every((x, i) => Math.abs(x - b.columnCosines[i]) < 1e-3)
  );
}

async function stackVolume(st: Stack, kind: VolumeKind, cache: PixelCache): Promise<Volume> {
  const vols: Volume[] = [];
  for (const p of st.parts) {
    vols.push(await loadVolume(kind, p.geometry, p.sorted, cache, { bValue: st.bValue, seriesDescription: st.description }));
  }
  if (vols.length === 1) return vols[0];
  const t = geometricMeanTrace(vols, st.bValue ?? 0);
  t.kind = kind;
  return t;
}

/** Pick the high-b DWI: highest b in 800–1500, else the highest; scanner trace before computed. */
function pickDwi(cands: Stack[]): Stack | undefined {
  const high = cands.filter((c) => (c.bValue ?? 0) > 50);
  if (high.length === 0) return undefined;
  const score = (c: Stack): number => {
    const b = c.bValue ?? 0;
    const inRange = b >= 800 && b <= 1500 ? 1e6 : 0;
    return inRange + b * 10 + (c.cls === 'TRACEW' ? 5 : 0) + (c.parts.length > 1 ? 1 : 0);
  };
  return [...high].sort((a, b) => score(b) - score(a))[0];
}

/** Read the header of every instance (stops before PixelData; never throws). */
export function readStudyHeaders(instances: StoredInstance[]): InstanceHeader[] {
  return instances.map(readHeader);
}

/** Classify, check and load the study: the public entry point of the study stage. */
export async function assembleStudy(instances: StoredInstance[], options: AssembleOptions = {}): Promise<AssembledStudy> {
  return assembleFromHeaders(readStudyHeaders(instances), options);
}

/**
 * assembleStudy on headers already read (e.g. when a study is re-assembled after more series
 * arrived, the headers of the instances seen before need not be parsed again).
 */
export async function assembleFromHeaders(headerList: InstanceHeader[], options: AssembleOptions = {}): Promise<AssembledStudy> {
  const instances = headerList.map((h) => h.instance);
  const headers = new Map<string, NaturalDataset>();
  const headerByUid = new Map<string, InstanceHeader>();
  const notes: string[] = [];
  for (const h of headerList) {
    const uid = str(h.ds, 'SOPInstanceUID') ?? h.instance.sopInstanceUid;
    if (!h.error) headers.set(uid, h.ds);
    headerByUid.set(uid, h);
    if (h.error) notes.push(`instance …${uid.slice(-12)}: ${h.error}`);
  }
  const studyInstanceUid =
    (headerList.find((h) => !h.error) ? str(headerList.find((h) => !h.error)!.ds, 'StudyInstanceUID') : undefined) ??
    instances[0]?.studyInstanceUid ??
    '';

  // Group by series.
  const bySeries = new Map<string, InstanceHeader[]>();
  for (const h of headerList) {
    const uid = str(h.ds, 'SeriesInstanceUID') ?? h.instance.seriesInstanceUid;
    const l = bySeries.get(uid) ?? [];
    l.push(h);
    bySeries.set(uid, l);
  }
  const series: SeriesState[] = [];
  for (const [uid, hs] of bySeries) {
    const first = hs.find((h) => !h.error);
    const ds = first?.ds ?? {};
    const cls = classifySeries(hs, options);
    const bValues =
      cls.classification === 'DWI' || cls.classification === 'TRACEW'
        ? [...new Set(hs.flatMap((h) => h.frames.map((f) => bKey(f.bValue ?? 0))))].sort((a, b) => a - b)
        : undefined;
    const decision: SeriesDecision = {
      seriesInstanceUid: uid,
      seriesDescription: str(ds, 'SeriesDescription'),
      modality: str(ds, 'Modality'),
      classification: cls.classification,
      bValues,
      usable: cls.usable,
      reason: cls.reason,
      instanceCount: hs.length,
    };
    const s: SeriesState = { uid, headers: hs, ds, cls, decision, stacks: [] };
    const broken = hs.filter((h) => h.error).length;
    if (broken) decision.reason += `; ${broken} unreadable instance(s) left out`;
    if (cls.usable) {
      const { stacks, problems, notes: n } = buildStacks(s);
      s.stacks = stacks;
      if (n.length) decision.reason += `; ${n.join('; ')}`;
      if (problems.length) {
        decision.reason += `; rejected: ${problems.join('; ')}`;
        if (stacks.length === 0) decision.usable = false;
      }
    }
    series.push(s);
  }

  const cache = new PixelCache(headerByUid);
  const volumes: StudyVolumes = {};
  const usable = (c: SeriesClass): Stack[] =>
    series.filter((s) => s.decision.usable && s.cls.classification === c).flatMap((s) => s.stacks);
  const decisionOf = (uid: string): SeriesDecision | undefined => series.find((s) => s.uid === uid)?.decision;
  const fail = (uid: string, what: string, e: unknown): void => {
    const d = decisionOf(uid);
    const msg = `${what}: ${(e as Error).message}`;
    if (d) {
      d.usable = false;
      d.reason += `; rejected: ${msg}`;
    }
    notes.push(`series …${uid.slice(-12)} ${msg}`);
  };

  // ---- diffusion ----
  const dwiStacks = [...usable('TRACEW'), ...usable('DWI')];
  const chosen = pickDwi(dwiStacks);
  if (chosen) {
    try {
      volumes.DWI = await stackVolume(chosen, chosen.cls === 'TRACEW' ? 'TRACEW' : 'DWI', cache);
    } catch (e) {
      fail(chosen.seriesUid, 'pixel data', e);
    }
  }
  if (volumes.DWI) {
    // b0 on the same grid: same series first, then any diffusion series.
    const b0s = dwiStacks
      .filter((c) => (c.bValue ?? 0) === 0 && sameGrid(c.parts[0].geometry, volumes.DWI!.geometry))
      .sort((a, b) => (b.seriesUid === chosen!.seriesUid ? 1 : 0) - (a.seriesUid === chosen!.seriesUid ? 1 : 0));
    if (b0s[0]) {
      try {
        volumes.DWI_B0 = await stackVolume(b0s[0], 'DWI', cache);
        volumes.DWI_B0.bValue = 0;
      } catch (e) {
        fail(b0s[0].seriesUid, 'b0 pixel data', e);
      }
    }
  } else if (dwiStacks.length > 0 && !chosen) {
    notes.push('diffusion series present but no b-value above 50 s/mm²: no DWI for the lesion model');
  }

  const adcStacks = usable('ADC').sort((a, b) => {
    const ga = volumes.DWI && sameGrid(a.parts[0].geometry, volumes.DWI.geometry) ? 1 : 0;
    const gb = volumes.DWI && sameGrid(b.parts[0].geometry, volumes.DWI.geometry) ? 1 : 0;
    return gb - ga;
  });
  // A scanner ADC is preferred, unless it is not on the DWI's grid while the node can compute one
  // that is (the lesion model reads DWI and ADC slice by slice).
  const canCompute = !!(volumes.DWI && volumes.DWI_B0 && (volumes.DWI.bValue ?? 0) > 0);
  for (const st of adcStacks) {
    if (volumes.DWI && canCompute && !sameGrid(st.parts[0].geometry, volumes.DWI.geometry)) {
      notes.push(`scanner ADC series …${st.seriesUid.slice(-12)} is not on the DWI grid: ADC computed from the DWI instead`);
      continue;
    }
    try {
      volumes.ADC = await stackVolume(st, 'ADC', cache);
      break;
    } catch (e) {
      fail(st.seriesUid, 'pixel data', e);
    }
  }
  if (!volumes.ADC && volumes.DWI && volumes.DWI_B0 && (volumes.DWI.bValue ?? 0) > 0) {
    volumes.ADC = computeAdc(volumes.DWI_B0, volumes.DWI, volumes.DWI.bValue as number);
    notes.push(`ADC computed from b=0 and b=${volumes.DWI.bValue} (no scanner ADC available)`);
  } else if (!volumes.ADC && volumes.DWI) {
    notes.push('no scanner ADC and no b=0 on the DWI grid: ADC not available');
  }

  // ---- CT and structural MR: smallest slice thickness, then most slices ----
  const pickStructural = async (cls: SeriesClass, key: keyof StudyVolumes, kind: VolumeKind): Promise<void> => {
    const cands = usable(cls).sort((a, b) => a.thickness - b.thickness || b.parts[0].geometry.slices - a.parts[0].geometry.slices);
    for (const st of cands) {
      try {
        volumes[key] = await stackVolume(st, kind, cache);
        return;
      } catch (e) {
        fail(st.seriesUid, 'pixel data', e);
      }
    }
  };
  await pickStructural('CT', 'CT', 'CT');
  await pickStructural('FLAIR', 'FLAIR', 'FLAIR');
  await pickStructural('T1', 'T1', 'T1');
  await pickStructural('T1C', 'T1C', 'T1C');
  await pickStructural('T2', 'T2', 'T2');

  // ---- the liver task's abdominal series (own judgement of every CT/MR series; loaded on demand) ----
  const abd = assessAbdomen(series.map((s) => ({ uid: s.uid, headers: s.headers })), options);
  let abdomen: AssembledStudy['abdomen'];
  const pick = abd.availability.pick;
  if (pick) {
    const j = abd.stacks.get(pick.seriesInstanceUid)!;
    const kind: VolumeKind = pick.modality === 'CT' ? 'CT' : pick.kind === 'MR_T1C' ? 'T1C' : pick.kind === 'MR_T2' ? 'T2' : 'T1';
    let loaded: Promise<Volume> | undefined;
    abdomen = {
      pick,
      load: () => (loaded ??= loadVolume(kind, j.geometry!, j.sorted!, cache, { seriesDescription: j.decision.seriesDescription })),
    };
  }

  const available = {
    DWI: !!volumes.DWI,
    ADC: !!volumes.ADC,
    CT: !!volumes.CT,
    FLAIR: !!volumes.FLAIR,
    T1: !!volumes.T1,
    T1C: !!volumes.T1C,
    T2: !!volumes.T2,
    // set only when true: the head protocols' records (and their tests) keep their seven keys
    ...(abd.availability.series.some((d) => d.usable && d.modality === 'CT') ? { CT_ABDOMEN: true } : {}),
    ...(abd.availability.series.some((d) => d.usable && d.modality === 'MR') ? { MR_ABDOMEN: true } : {}),
  };
  for (const [k, v] of Object.entries(volumes) as [string, Volume | undefined][]) {
    if (v) {
      notes.push(
        `${k}: series …${v.seriesInstanceUid.slice(-12)}${v.bValue !== undefined ? ` b=${v.bValue}` : ''}${v.computed ? ' (computed)' : ''}, ${v.geometry.columns}x${v.geometry.rows}x${v.geometry.slices}`,
      );
    }
  }
  if (pick) notes.push(`liver series: ${pick.reason}`);
  if (!Object.values(available).some((x) => x)) {
    notes.push(
      instances.length === 0
        ? 'the study has no instances'
        : 'no series could be used as DWI, ADC, CT, FLAIR, T1, T1C or T2 (see the series reasons)',
    );
  }
  return {
    availability: { studyInstanceUid, available, series: series.map((s) => s.decision), notes, abdomen: abd.availability },
    volumes,
    abdomen,
    headers,
  };
}
