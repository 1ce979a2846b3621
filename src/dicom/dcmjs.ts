/**
 * The one typed wrapper around dcmjs (it ships no types). Every stage reads and writes DICOM
 * through these functions, so `any` never leaks past this module.
 *
 * A "naturalized" dataset is dcmjs's keyword-keyed form: { PatientName: [{Alphabetic:'..'}],
 * Rows: 256, PixelData: [ArrayBuffer], ... }; sequences are arrays of naturalized items.
 */
import { log } from '../util/log';
// eslint-disable-next-line @typescript-eslint/no-var-requires
const dcmjs = require('dcmjs');

/** A keyword-keyed dataset. Values are left as unknown: read them with the typed getters below. */
export type NaturalDataset = Record<string, unknown>;

/** dcmjs's tag-keyed form ("00100010": { vr, Value }). */
export type DenaturalDataset = Record<string, { vr: string; Value?: unknown[]; InlineBinary?: string }>;

export interface Part10 {
  /** File meta information (group 0002), naturalized. */
  meta: NaturalDataset;
  /** The dataset, naturalized. */
  dataset: NaturalDataset;
  /** Transfer syntax UID from the file meta. */
  transferSyntaxUid: string;
}

export interface ReadOptions {
  /** Stop before PixelData (fast header-only read). */
  untilPixelData?: boolean;
  /** Keep private tags that dcmjs cannot name (returned under their hex tag). */
  ignoreErrors?: boolean;
  /** Stop after this tag (e.g. "0020000E"), keeping its value: a fast header read. */
  untilTag?: string;
}

/**
 * dcmjs's own output goes into the structured log, never raw to the console: some of it quotes
 * bytes of the data it parses (attacker-controlled), and a newline in them would split a JSON log
 * line. Its loglevel messages are routed here (its errors at warn, the rest at debug: its warnings
 * are per-element data quirks, one line each); its direct console calls are captured the same way
 * while each dcmjs call runs (they are synchronous).
 */
export function dcmjsMessage(args: unknown[]): string {
  const text = args
    .map((a) => (typeof a === 'string' ? a : a instanceof Error ? a.message : (() => {
      try {
        return JSON.stringify(a);
      } catch {
        return String(a);
      }
    })()))
    .join(' ');
  // printable ASCII only: control bytes and anything else from the data become '?'
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 300);
}

function toLog(level: 'warn' | 'debug', args: unknown[]): void {
  log[level]('dcmjs message', { event: 'dcmjs.message', text: dcmjsMessage(args) });
}

interface LogLevelLogger {
  methodFactory: (method: string, level: number, name: string) => (...a: unknown[]) => void;
  setLevel(level: string): void;
  getLoggers?: () => Record<string, LogLevelLogger>;
}
try {
  // dcmjs logs through loglevel: its root logger and named children ("validation.dcmjs", …)
  const root = dcmjs.log as LogLevelLogger;
  for (const logger of [root, ...Object.values(root.getLoggers?.() ?? {})]) {
    logger.methodFactory = (method: string) => (...args: unknown[]) => toLog(method === 'error' ? 'warn' : 'debug', args);
    logger.setLevel('debug');
  }
} catch {
  /* older dcmjs */
}

/** Run a dcmjs call with console.log/info/warn/error captured into the structured log. */
function captured<T>(fn: () => T): T {
  const c = console as unknown as Record<string, (...a: unknown[]) => void>;
  const saved = { log: c.log, info: c.info, warn: c.warn, error: c.error };
  c.log = c.info = (...a: unknown[]) => toLog('debug', a);
  c.warn = (...a: unknown[]) => toLog('debug', a);
  c.error = (...a: unknown[]) => toLog('warn', a);
  try {
    return fn();
  } finally {
    Object.assign(c, saved);
  }
}

function toArrayBuffer(buf: Buffer | ArrayBuffer | Uint8Array): ArrayBuffer {
  if (buf instanceof ArrayBuffer) return buf;
  const u8 = buf as Uint8Array;
  return u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength) as ArrayBuffer;
}

/** Parse a Part 10 file. Throws a readable Error for non-DICOM or truncated input. */
export function readPart10(buf: Buffer | ArrayBuffer | Uint8Array, opts: ReadOptions = {}): Part10 {
  const ab = toArrayBuffer(buf);
  let dicomDict: { meta: DenaturalDataset; dict: DenaturalDataset };
  try {
    dicomDict = captured(() =>
      dcmjs.data.DicomMessage.readFile(ab, {
        ignoreErrors: opts.ignoreErrors ?? true,
        untilTag: opts.untilTag ?? (opts.untilPixelData ? '7FE00010' : undefined),
        includeUntilTagValue: !!opts.untilTag,
      }),
    );
  } catch (e) {
    throw new Error(`not a readable DICOM Part 10 file: ${errorText(e)}`);
  }
  const meta = naturalize(dicomDict.meta);
  const dataset = naturalize(dicomDict.dict);
  const transferSyntaxUid = String(meta.TransferSyntaxUID ?? '');
  return { meta, dataset, transferSyntaxUid };
}

/** Also exposes the raw tag-keyed dict (private tags kept under their hex tag). */
export function readPart10Raw(
  buf: Buffer | ArrayBuffer | Uint8Array,
  opts: ReadOptions = {},
): { meta: DenaturalDataset; dict: DenaturalDataset } {
  try {
    return captured(() =>
      dcmjs.data.DicomMessage.readFile(toArrayBuffer(buf), {
        ignoreErrors: opts.ignoreErrors ?? true,
        untilTag: opts.untilPixelData ? '7FE00010' : undefined,
        includeUntilTagValue: false,
      }),
    );
  } catch (e) {
    throw new Error(`not a readable DICOM Part 10 file: ${errorText(e)}`);
  }
}

/** A thrown value's text, never "undefined" (dcmjs throws strings and TypeErrors too). */
function errorText(e: unknown): string {
  const m = e instanceof Error ? e.message : typeof e === 'string' ? e : '';
  if (!m) return 'unknown parse error';
  return dcmjsMessage([e instanceof TypeError ? `malformed data (${m})` : m]);
}

export function naturalize(dict: DenaturalDataset): NaturalDataset {
  return captured(() => dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict) as NaturalDataset);
}

export function denaturalize(ds: NaturalDataset): DenaturalDataset {
  return captured(() => dcmjs.data.DicomMetaDictionary.denaturalizeDataset(ds) as DenaturalDataset);
}

export const TransferSyntax = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
} as const;

export const IMPLEMENTATION_CLASS_UID = '1.2.826.0.1.3680043.10.1453.1';
export const IMPLEMENTATION_VERSION_NAME = 'STROKENODE01';

/**
 * Serialise a naturalized dataset as a Part 10 file (Explicit VR Little Endian unless the
 * dataset's pixel data requires otherwise). File meta is built here.
 */
export function writePart10(
  dataset: NaturalDataset,
  transferSyntaxUid: string = TransferSyntax.ExplicitVRLittleEndian,
): Buffer {
  const meta: NaturalDataset = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: dataset.SOPClassUID,
    MediaStorageSOPInstanceUID: dataset.SOPInstanceUID,
    TransferSyntaxUID: transferSyntaxUid,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
  };
  const dicomDict = new dcmjs.data.DicomDict(denaturalize(meta));
  dicomDict.dict = denaturalize(dataset);
  const ab: ArrayBuffer = captured(() => dicomDict.write({ fragmentMultiframe: false, allowInvalidVRLength: false }));
  return Buffer.from(ab);
}

/** Generate a DICOM UID under the 2.25 (UUID-derived) root. */
export function newUid(): string {
  return dcmjs.data.DicomMetaDictionary.uid() as string;
}

/** Keyword for a tag like "00180087", or undefined. */
export function keywordOf(tag: string): string | undefined {
  const entry = dcmjs.data.DicomMetaDictionary.dictionary[`(${tag.slice(0, 4)},${tag.slice(4)})`];
  return entry?.name as string | undefined;
}

// ---- typed getters over naturalized datasets ----

export function str(ds: NaturalDataset, key: string): string | undefined {
  const v = ds[key];
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v)) {
    if (v.length === 0) return undefined;
    const first = v[0] as unknown;
    if (first && typeof first === 'object' && 'Alphabetic' in (first as object)) {
      return String((first as { Alphabetic: unknown }).Alphabetic ?? '');
    }
    return v.map((x) => String(x)).join('\\');
  }
  if (typeof v === 'object' && v !== null && 'Alphabetic' in (v as object)) {
    return String((v as { Alphabetic: unknown }).Alphabetic ?? '');
  }
  return String(v);
}

/** Multi-valued string attribute (e.g. ImageType) as an array of upper-case trimmed values. */
export function strs(ds: NaturalDataset, key: string): string[] {
  const v = ds[key];
  if (v === undefined || v === null) return [];
  const arr = Array.isArray(v) ? v : String(v).split('\\');
  return arr.map((x) => String(x).trim());
}

export function num(ds: NaturalDataset, key: string): number | undefined {
  const v = ds[key];
  const x = Array.isArray(v) ? v[0] : v;
  if (x === undefined || x === null || x === '') return undefined;
  const n = Number(x);
  return Number.isFinite(n) ? n : undefined;
}

export function nums(ds: NaturalDataset, key: string): number[] {
  const v = ds[key];
  if (v === undefined || v === null) return [];
  const arr = Array.isArray(v) ? v : String(v).split('\\');
  return arr.map((x) => Number(x));
}

/** A sequence attribute as an array of items ([] when absent). */
export function seq(ds: NaturalDataset, key: string): NaturalDataset[] {
  const v = ds[key];
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v as NaturalDataset[];
  return [v as NaturalDataset];
}
