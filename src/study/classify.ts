/**
 * Series classification. Order of evidence: SOP class and Modality, ImageType/FrameType values,
 * DiffusionBValue (0018,9087) per frame (classic or MRDiffusionSequence), vendor private b-values
 * where the standard one is absent, AcquisitionContrast and MR timing (TR/TE/TI), contrast agent;
 * SeriesDescription only as a last resort. Every decision carries the reason in words.
 */
import { NaturalDataset, num, nums, seq, str, strs } from '../dicom/dcmjs';
import { FrameInfo, InstanceHeader, privateRaw } from './header';
import { abdominalRegion } from './abdomen';

export type SeriesClass = 'DWI' | 'ADC' | 'TRACEW' | 'CT' | 'FLAIR' | 'T1' | 'T1C' | 'T2' | 'IGNORED';

export interface Classification {
  classification: SeriesClass;
  usable: boolean;
  reason: string;
}

const IMAGE_SOP_CLASSES: Record<string, string> = {
  '1.2.840.10008.5.1.4.1.1.2': 'CT Image',
  '1.2.840.10008.5.1.4.1.1.2.1': 'Enhanced CT Image',
  '1.2.840.10008.5.1.4.1.1.2.2': 'Legacy Converted Enhanced CT Image',
  '1.2.840.10008.5.1.4.1.1.4': 'MR Image',
  '1.2.840.10008.5.1.4.1.1.4.1': 'Enhanced MR Image',
  '1.2.840.10008.5.1.4.1.1.4.4': 'Legacy Converted Enhanced MR Image',
};

const IGNORED_IMAGE_TYPES = ['LOCALIZER', 'SCOUT', 'MIP', 'MINIP', 'PROJECTION IMAGE', 'VOLUME RENDERING', 'SCREEN SAVE'];
/** Diffusion derivatives the models do not use. */
const DIFFUSION_DERIVATIVES: Record<string, string> = {
  FA: 'fractional anisotropy',
  COLFA: 'colour FA',
  FA_COLOR: 'colour FA',
  TENSOR: 'diffusion tensor',
  TENSOR_B0: 'diffusion tensor b0',
  EADC: 'exponential ADC',
  EXP: 'exponential ADC',
  EXPONENTIAL: 'exponential ADC',
  TRACE_EXP: 'exponential ADC',
  EXP_ADC: 'exponential ADC',
};
const HEAD_BODY_PART = /HEAD|BRAIN|SKULL|NEURO|CEREBR|CRANI/i;

function timing(ds: NaturalDataset): { tr?: number; te?: number; ti?: number } {
  const shared = seq(ds, 'SharedFunctionalGroupsSequence')[0];
  const perFrame = seq(ds, 'PerFrameFunctionalGroupsSequence')[0];
  const fg = (name: string): NaturalDataset | undefined =>
    (perFrame ? seq(perFrame, name)[0] : undefined) ?? (shared ? seq(shared, name)[0] : undefined);
  const trSeq = fg('MRTimingAndRelatedParametersSequence');
  const tr = num(ds, 'RepetitionTime') ?? (trSeq ? num(trSeq, 'RepetitionTime') : undefined);
  const echo = fg('MREchoSequence');
  const te = num(ds, 'EchoTime') ?? (echo ? num(echo, 'EffectiveEchoTime') : undefined) ?? num(ds, 'EffectiveEchoTime');
  const mod = fg('MRModifierSequence');
  const ti =
    num(ds, 'InversionTime') ??
    (nums(ds, 'InversionTimes')[0] as number | undefined) ??
    (mod ? (nums(mod, 'InversionTimes')[0] as number | undefined) ?? num(mod, 'InversionTime') : undefined);
  return { tr, te, ti: ti !== undefined && Number.isFinite(ti) && ti > 0 ? ti : undefined };
}

export function hasContrast(ds: NaturalDataset): boolean {
  const agent = (str(ds, 'ContrastBolusAgent') ?? '').trim();
  if (agent && !/^(NONE|NO|N\/A|-)$/i.test(agent)) return true;
  return seq(ds, 'ContrastBolusAgentSequence').length > 0;
}

/** Options a site may set (documented in src/study/README.md). */
export interface ClassifyOptions {
  /**
   * When a T1 series carries no contrast tag, call it T1C if the study says contrast
   * (StudyDescription / RequestedProcedureDescription / PerformedProcedureStepDescription) and the
   * series itself says post-contrast (description/protocol post/+C/gad) or is fat-suppressed
   * (ScanOptions FS, description "FS"/"fat sat"). Default false: tags only.
   */
  t1ContrastFromStudyContext?: boolean;
}

const NONE_VALUE = /^(NONE|NO|N\/A|NA|-|0|FALSE|UNKNOWN)$/i;

/**
 * Evidence of an administered contrast agent in an MR header, in words; undefined when none.
 * ContrastBolusAgent (0018,0010), ContrastBolusAgentSequence (0018,0012), ContrastBolusIngredient
 * (0018,1048), ContrastBolusVolume (0018,1041) > 0, ContrastBolusStartTime (0018,1042),
 * ContrastBolusTotalDose (0018,1044) > 0; enhanced MR: ContrastBolusUsageSequence (0018,9341) with
 * ContrastBolusAgentAdministered (0018,9342) YES (top level or shared/per-frame functional groups).
 */
export function mrContrastEvidence(ds: NaturalDataset): string | undefined {
  const agent = (str(ds, 'ContrastBolusAgent') ?? '').trim();
  if (agent && !NONE_VALUE.test(agent)) return `ContrastBolusAgent (0018,0010) "${agent}"`;
  if (seq(ds, 'ContrastBolusAgentSequence').length > 0) return 'ContrastBolusAgentSequence (0018,0012) present';
  const ingr = (str(ds, 'ContrastBolusIngredient') ?? '').trim();
  if (ingr && !NONE_VALUE.test(ingr)) return `ContrastBolusIngredient (0018,1048) ${ingr}`;
  const vol = num(ds, 'ContrastBolusVolume');
  if (vol !== undefined && vol > 0) return `ContrastBolusVolume (0018,1041) ${vol} mL`;
  const dose = num(ds, 'ContrastBolusTotalDose');
  if (dose !== undefined && dose > 0) return `ContrastBolusTotalDose (0018,1044) ${dose} mL`;
  const start = (str(ds, 'ContrastBolusStartTime') ?? '').trim();
  if (start) return `ContrastBolusStartTime (0018,1042) present`;
  const usage = [
    ...seq(ds, 'ContrastBolusUsageSequence'),
    ...seq(ds, 'SharedFunctionalGroupsSequence').flatMap((g) => seq(g, 'ContrastBolusUsageSequence')),
    ...(seq(ds, 'PerFrameFunctionalGroupsSequence').slice(0, 1).flatMap((g) => seq(g, 'ContrastBolusUsageSequence'))),
  ];
  if (usage.some((u) => (str(u, 'ContrastBolusAgentAdministered') ?? '').toUpperCase() === 'YES')) {
    return 'ContrastBolusUsageSequence (0018,9341) ContrastBolusAgentAdministered YES';
  }
  return undefined;
}

const CONTRAST_WORDS = /contrast|kontrast|\bgad|gado|\+\s?c\b|\bc\+|\bpost\b|\bkm\b|\bce\b|\bmit km\b/i;
const studyText = (ds: NaturalDataset): string =>
  ['StudyDescription', 'RequestedProcedureDescription', 'PerformedProcedureStepDescription']
    .map((k) => str(ds, k) ?? '')
    .filter((x) => x)
    .join(' / ');

/** Study-level hint of contrast (never decides without the site's option). */
function studyContextNote(ds: NaturalDataset): string {
  const t = studyText(ds);
  return CONTRAST_WORDS.test(t)
    ? ' (the study description names contrast, but no tag says this series was acquired after it: kept as T1; a site may set t1ContrastFromStudyContext)'
    : '';
}

function studyContextContrast(ds: NaturalDataset): string | undefined {
  if (!CONTRAST_WORDS.test(studyText(ds))) return undefined;
  const sd = `${str(ds, 'SeriesDescription') ?? ''} ${str(ds, 'ProtocolName') ?? ''}`;
  if (/post|\+\s?c\b|\bc\+|gad|gd\b|contrast|kontrast|\bkm\b|\bce\b/i.test(sd)) return 'the study names contrast and the series description/protocol says post-contrast';
  const opts = strs(ds, 'ScanOptions').map((x) => x.toUpperCase());
  if (opts.includes('FS') || /\bfs\b|fat.?sat|_fs\b|spir|spair/i.test(sd.replace(/[-_]/g, ' '))) {
    return `the study names contrast and the series is fat-suppressed (ScanOptions ${opts.join('\\') || '-'}), as post-contrast T1 usually is`;
  }
  return undefined;
}

/** Philips (2001,xx20) "Philips Imaging DD 001" scanning technique (e.g. SE, TSE, TIR, FFE, DwiSE). */
function philipsScanTechnique(ds: NaturalDataset): string | undefined {
  const v = privateRaw(ds, 0x2001, 'Philips Imaging DD 001', 0x20);
  if (v === undefined || v === null) return undefined;
  const first = Array.isArray(v) ? v[0] : v;
  const t =
    typeof first === 'string'
      ? first
      : first instanceof ArrayBuffer || Object.prototype.toString.call(first) === '[object ArrayBuffer]'
        ? Buffer.from(first as ArrayBuffer).toString('latin1')
        : undefined;
  const s = t?.replace(/\0+$/, '').trim().toUpperCase();
  return s || undefined;
}

/** AcquisitionContrast from the enhanced MR frame type functional group (shared or first frame). */
function frameAcquisitionContrast(ds: NaturalDataset): string {
  const shared = seq(ds, 'SharedFunctionalGroupsSequence')[0];
  const perFrame = seq(ds, 'PerFrameFunctionalGroupsSequence')[0];
  for (const g of [perFrame, shared]) {
    const ft = g ? seq(g, 'MRImageFrameTypeSequence')[0] : undefined;
    const a = ft ? str(ft, 'AcquisitionContrast') : undefined;
    if (a) return a.toUpperCase();
  }
  return '';
}

/** b-value clusters: b ≤ 50 counts as b0; others rounded to the nearest 10 s/mm². */
export function bKey(b: number): number {
  return b <= 50 ? 0 : Math.round(b / 10) * 10;
}

/**
 * Classify one series from its headers. `frames` are all frames of the series.
 */
export function classifySeries(headers: InstanceHeader[], opts: ClassifyOptions & { anyBodyPart?: boolean } = {}): Classification {
  const readable = headers.filter((h) => !h.error);
  if (readable.length === 0) {
    return { classification: 'IGNORED', usable: false, reason: headers[0]?.error ?? 'no readable instance' };
  }
  const ds = readable[0].ds;
  const frames: FrameInfo[] = readable.flatMap((h) => h.frames);
  const sopClass = str(ds, 'SOPClassUID') ?? '';
  const modality = (str(ds, 'Modality') ?? '').toUpperCase();
  const desc = str(ds, 'SeriesDescription') ?? '';
  const imageTypes = new Set(frames.flatMap((f) => f.imageType));
  const itText = [...new Set(readable.map((h) => strs(h.ds, 'ImageType').join('\\')))].join(' | ');

  if (!(sopClass in IMAGE_SOP_CLASSES)) {
    const sc = sopClass.startsWith('1.2.840.10008.5.1.4.1.1.7') ? 'Secondary Capture' : `SOP class ${sopClass || '(none)'}`;
    return { classification: 'IGNORED', usable: false, reason: `${sc}: not an acquired CT/MR image` };
  }
  const ignoredType = IGNORED_IMAGE_TYPES.find((t) => imageTypes.has(t));
  if (ignoredType) {
    return { classification: 'IGNORED', usable: false, reason: `ImageType contains ${ignoredType} (${itText})` };
  }
  const bodyPart = str(ds, 'BodyPartExamined');
  // anyBodyPart: the liver task (abdomen.ts) reuses the MR weighting rules on abdominal series.
  const bodyPartOk = opts.anyBodyPart === true || !bodyPart || HEAD_BODY_PART.test(bodyPart);

  if (modality === 'CT') {
    const kernel = str(ds, 'ConvolutionKernel');
    const th = frames.map((f) => f.sliceThickness).filter((x): x is number => x !== undefined && Number.isFinite(x));
    const tmin = th.length ? Math.min(...th) : undefined;
    const tmax = th.length ? Math.max(...th) : undefined;
    const thick = tmin === undefined ? 'unknown' : tmin === tmax ? `${tmin}` : `${tmin}–${tmax}`;
    const detail = `kernel ${kernel ?? 'unknown'}, slice thickness ${thick} mm`;
    if (!bodyPartOk) return { classification: 'CT', usable: false, reason: `CT of BodyPartExamined ${bodyPart}, not head (${detail})` };
    // No BodyPartExamined: a description that names the abdomen or an abdominal organ (and no head) is not a head CT,
    // or a stroke route would send a synthetic DWI of an abdomen (abdomen.ts holds the words the liver task uses).
    const region = bodyPart || opts.anyBodyPart ? undefined : abdominalRegion(ds);
    if (region?.ok) return { classification: 'CT', usable: false, reason: `not a head CT: ${region.reason} (${detail})` };
    if (hasContrast(ds)) {
      return {
        classification: 'CT',
        usable: false,
        reason: `contrast-enhanced CT (ContrastBolusAgent "${str(ds, 'ContrastBolusAgent') ?? 'sequence'}"): the synthesis model expects non-contrast CT (${detail})`,
      };
    }
    return { classification: 'CT', usable: true, reason: `Modality CT, ImageType ${itText}, no contrast agent; ${detail}` };
  }
  if (modality !== 'MR') return { classification: 'IGNORED', usable: false, reason: `Modality ${modality || '(none)'} is not CT or MR` };
  if (!bodyPartOk) {
    return { classification: 'IGNORED', usable: false, reason: `BodyPartExamined ${bodyPart}: not a head examination` };
  }

  // Diffusion derivatives named in ImageType/FrameType (Siemens, Philips, GE use values 3/4).
  const deriv = Object.keys(DIFFUSION_DERIVATIVES).find((t) => imageTypes.has(t));
  if (deriv) {
    return {
      classification: 'IGNORED',
      usable: false,
      reason: `diffusion derivative (${DIFFUSION_DERIVATIVES[deriv]}), ImageType ${itText}: not a model input`,
    };
  }
  if (imageTypes.has('ADC') || imageTypes.has('ADC_UNSPECIFIED')) {
    return { classification: 'ADC', usable: true, reason: `ImageType ${itText} names an ADC map computed by the scanner` };
  }
  const derivedIso = imageTypes.has('DERIVED') && frames.some((f) => (f.directionality ?? '').toUpperCase() === 'ISOTROPIC');
  if (imageTypes.has('TRACEW') || imageTypes.has('TRACE') || imageTypes.has('ISOTROPIC') || (derivedIso && frames.some((f) => (f.bValue ?? 0) > 50))) {
    const bs = [...new Set(frames.map((f) => bKey(f.bValue ?? 0)))].sort((a, b) => a - b);
    return {
      classification: 'TRACEW',
      usable: true,
      reason: `isotropic (trace) DWI from the scanner: ImageType ${itText}; b = ${bs.join(', ')} s/mm² from ${frames.find((f) => f.bValueSource)?.bValueSource ?? 'no b-value tag'}`,
    };
  }
  const acqContrast = (str(ds, 'AcquisitionContrast') ?? '').toUpperCase();
  const hasStdB = frames.some((f) => f.bValueSource?.includes('0018,9087'));
  const maxB = Math.max(0, ...frames.map((f) => f.bValue ?? 0));
  if (maxB > 50 || (hasStdB && (acqContrast === 'DIFFUSION' || imageTypes.has('DIFFUSION')))) {
    const srcs = [...new Set(frames.map((f) => f.bValueSource).filter((x): x is string => !!x))];
    const bs = [...new Set(frames.map((f) => bKey(f.bValue ?? 0)))].sort((a, b) => a - b);
    return {
      classification: 'DWI',
      usable: true,
      reason: `diffusion-weighted: b = ${bs.join(', ')} s/mm² from ${srcs.join(' and ')}${acqContrast ? `, AcquisitionContrast ${acqContrast}` : ''}`,
    };
  }
  if (acqContrast === 'DIFFUSION') {
    return { classification: 'IGNORED', usable: false, reason: 'AcquisitionContrast DIFFUSION but no b-value found in any standard or private tag' };
  }

  const contrastWhy = mrContrastEvidence(ds);
  const contextWhy = !contrastWhy && opts.t1ContrastFromStudyContext ? studyContextContrast(ds) : undefined;
  const contrast = !!contrastWhy;
  const t1 = (why: string): Classification =>
    contrastWhy
      ? { classification: 'T1C', usable: true, reason: `${why}; ${contrastWhy} → post-contrast` }
      : contextWhy
        ? {
            classification: 'T1C',
            usable: true,
            reason: `${why}; no contrast tag, but ${contextWhy} and the site allows study context (t1ContrastFromStudyContext) → post-contrast`,
          }
        : { classification: 'T1', usable: true, reason: `${why}; no contrast agent recorded (ContrastBolusAgent/Ingredient/Volume/StartTime, ContrastBolusUsageSequence absent)${studyContextNote(ds)}` };
  const notModel = (why: string): Classification => ({ classification: 'IGNORED', usable: false, reason: `${why}: not one of FLAIR/T1/T1C/T2` });
  const acqRaw = acqContrast || frameAcquisitionContrast(ds);
  if (acqRaw === 'FLUID_ATTENUATED' || acqRaw === 'FLAIR') {
    return { classification: 'FLAIR', usable: true, reason: `AcquisitionContrast (0008,9209) ${acqRaw}` };
  }
  if (acqRaw === 'T1') return t1('AcquisitionContrast (0008,9209) T1');
  if (acqRaw === 'T2') return { classification: 'T2', usable: true, reason: 'AcquisitionContrast (0008,9209) T2' };
  if (['PROTON_DENSITY', 'STIR', 'T2_STAR', 'PERFUSION', 'FLOW_ENCODED', 'TOF', 'TAGGING'].includes(acqRaw)) {
    return notModel(`AcquisitionContrast (0008,9209) ${acqRaw}`);
  }

  const { tr, te, ti } = timing(ds);
  const scanSeq = strs(ds, 'ScanningSequence').map((x) => x.toUpperCase());
  const variant = strs(ds, 'SequenceVariant').map((x) => x.toUpperCase());
  const philipsTech = philipsScanTechnique(ds);
  const flip = num(ds, 'FlipAngle');
  // Inversion recovery named by the standard ScanningSequence, ImageType (Philips M_IR / IR) or
  // Philips (2001,xx20) scanning technique ("IR", "TIR", "TIRM"...).
  const irBy = scanSeq.includes('IR')
    ? 'ScanningSequence IR'
    : imageTypes.has('IR') || imageTypes.has('M_IR')
      ? `ImageType ${itText}`
      : philipsTech && /^(T?IR|IR_?TSE|TIRM|IRTSE|FLAIR)/.test(philipsTech)
        ? `Philips scanning technique (2001,xx20) ${philipsTech}`
        : undefined;
  const gre = scanSeq.includes('GR') || (!!philipsTech && /FFE|GRE/.test(philipsTech));
  const tt = `TR ${tr ?? '?'} ms, TE ${te ?? '?'} ms${ti ? `, TI ${ti} ms` : ''}${scanSeq.length ? `, ScanningSequence ${scanSeq.join('\\')}` : ''}${variant.length ? `\\${variant.join('\\')}` : ''}${philipsTech ? `, Philips technique ${philipsTech}` : ''}`;
  if (ti !== undefined && te !== undefined) {
    if (ti >= 1400 && te >= 50) return { classification: 'FLAIR', usable: true, reason: `long-TI inversion recovery with long TE (${tt})` };
    if (ti >= 300 && ti < 1400 && te < 30) return t1(`inversion-prepared short-TE acquisition, T1-weighted (${tt})`);
    if (ti < 300 && te >= 30) return notModel(`short-TI inversion recovery (STIR, ${tt})`);
  }
  if (ti === undefined && irBy && te !== undefined && te >= 50 && (tr === undefined || tr >= 4000)) {
    return { classification: 'FLAIR', usable: true, reason: `inversion recovery (${irBy}) with long TR/TE, InversionTime not sent (${tt})` };
  }
  if (ti === undefined && te !== undefined && tr !== undefined) {
    if (gre && te >= 15 && tr >= 150 && (flip === undefined || flip <= 40)) return notModel(`gradient echo with long TE (T2*-weighted, ${tt})`);
    if (te < 30 && tr < 1000) return t1(`short TR and short TE, T1-weighted (${tt})`);
    if (te >= 60 && tr >= 1500) return { classification: 'T2', usable: true, reason: `long TR and long TE, T2-weighted (${tt})` };
    if (te < 30 && tr >= 1500 && !irBy) return notModel(`long TR and short TE, proton-density-weighted (${tt})`);
  }

  // Last resort: SeriesDescription.
  const d = desc.toLowerCase();
  const why = (k: string): string => `SeriesDescription "${desc}" suggests ${k} (tags were not conclusive: ${tt})`;
  if (/flair|\bdark.?fluid/.test(d)) return { classification: 'FLAIR', usable: true, reason: why('FLAIR') };
  if (/\badc\b|apparent diff/.test(d)) return { classification: 'ADC', usable: true, reason: why('ADC') };
  if (/t1|mprage|spgr|bravo|tfl|mp-rage/.test(d)) {
    if (contrast || /post|\+c|gad|\bgd\b|contrast|\bkm\b|\bce\b/.test(d)) {
      return { classification: 'T1C', usable: true, reason: why('post-contrast T1') };
    }
    return { classification: 'T1', usable: true, reason: why('T1') };
  }
  if (/t2/.test(d)) return { classification: 'T2', usable: true, reason: why('T2') };
  return { classification: 'IGNORED', usable: false, reason: `no rule matched (Modality MR, ImageType ${itText}, ${tt}, SeriesDescription "${desc}")` };
}
