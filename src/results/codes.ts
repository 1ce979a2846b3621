/**
 * Coded concepts used by the result writers (SEG, SC, SR).
 *
 * Shaped like highdicom's `sr/coding.py` + `content.py`: a `CodedConcept` refuses an invalid code in
 * its constructor, so a bad code never reaches a written object. The checks are those of the Basic
 * Code Sequence Macro (PS3.3 Table 8.8-1) and the coding-scheme conventions of PS3.16 8.1:
 *  - CodeValue (SH, <= 16 chars, no backslash); longer values belong in LongCodeValue, which these
 *    writers do not need, so they are refused;
 *  - CodingSchemeDesignator (SH, <= 16 chars); "SRT" / "SNM3" are retired in favour of "SCT" and refused;
 *  - CodeMeaning (LO, <= 64 chars, no backslash, not empty);
 *  - DCM and SCT code values are numeric (DCM identifiers and SNOMED CT concept ids are digits only);
 *  - private schemes must start with "99" (PS3.16 8.2).
 */
import type { NaturalDataset } from '../dicom/dcmjs';

const KNOWN_SCHEMES = new Set(['DCM', 'SCT', 'UCUM', 'RFC5646', 'LN', 'FMA', 'NCIt', 'UMLS', 'DCMUID']);
const RETIRED_SCHEMES: Record<string, string> = { SRT: 'SCT', SNM3: 'SCT', '99SDM': 'SCT' };

export class InvalidCodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidCodeError';
  }
}

function hasControlOrBackslash(s: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /[\\\x00-\x1f]/.test(s);
}

export class CodedConcept {
  readonly value: string;
  readonly scheme: string;
  readonly meaning: string;
  readonly schemeVersion?: string;

  constructor(value: string, scheme: string, meaning: string, schemeVersion?: string) {
    const where = `code (${value}, ${scheme}, "${meaning}")`;
    if (typeof value !== 'string' || value.trim() === '') throw new InvalidCodeError(`${where}: empty CodeValue`);
    if (value !== value.trim()) throw new InvalidCodeError(`${where}: CodeValue has leading/trailing spaces`);
    if (value.length > 16) throw new InvalidCodeError(`${where}: CodeValue longer than 16 characters (SH)`);
    if (hasControlOrBackslash(value)) throw new InvalidCodeError(`${where}: CodeValue contains a backslash or control character`);
    if (typeof scheme !== 'string' || scheme.trim() === '') throw new InvalidCodeError(`${where}: empty CodingSchemeDesignator`);
    if (scheme.length > 16 || hasControlOrBackslash(scheme) || scheme !== scheme.trim()) {
      throw new InvalidCodeError(`${where}: invalid CodingSchemeDesignator`);
    }
    if (RETIRED_SCHEMES[scheme]) {
      throw new InvalidCodeError(`${where}: coding scheme ${scheme} is retired, use ${RETIRED_SCHEMES[scheme]}`);
    }
    if (!KNOWN_SCHEMES.has(scheme) && !scheme.startsWith('99')) {
      throw new InvalidCodeError(`${where}: unknown coding scheme (private schemes must start with "99")`);
    }
    if ((scheme === 'DCM' || scheme === 'SCT') && !/^[0-9]+$/.test(value)) {
      throw new InvalidCodeError(`${where}: ${scheme} code values are numeric`);
    }
    if (typeof meaning !== 'string' || meaning.trim() === '') throw new InvalidCodeError(`${where}: empty CodeMeaning`);
    if (meaning.length > 64) throw new InvalidCodeError(`${where}: CodeMeaning longer than 64 characters (LO)`);
    if (hasControlOrBackslash(meaning)) throw new InvalidCodeError(`${where}: CodeMeaning contains a backslash or control character`);
    this.value = value;
    this.scheme = scheme;
    this.meaning = meaning;
    if (schemeVersion !== undefined) this.schemeVersion = schemeVersion;
    Object.freeze(this);
  }

  /** Same concept (value + scheme), meaning ignored as PS3.16 says. */
  equals(other: CodedConcept): boolean {
    return this.value === other.value && this.scheme === other.scheme;
  }

  /** One item of a code sequence, naturalized. */
  toItem(): NaturalDataset {
    const item: NaturalDataset = {
      CodeValue: this.value,
      CodingSchemeDesignator: this.scheme,
      CodeMeaning: this.meaning,
    };
    if (this.schemeVersion) item.CodingSchemeVersion = this.schemeVersion;
    return item;
  }

  toString(): string {
    return `(${this.value}, ${this.scheme}, "${this.meaning}")`;
  }
}

/** Shorthand constructor. */
export function code(value: string, scheme: string, meaning: string): CodedConcept {
  return new CodedConcept(value, scheme, meaning);
}

/** A one-item code sequence. */
export function codeSeq(c: CodedConcept): NaturalDataset[] {
  return [c.toItem()];
}

/** Codes the writers use, each checked at module load. */
export const Codes = {
  // SEG segment description (PS3.16 CID 7150/7151, SNOMED CT)
  MorphologicallyAbnormalStructure: code('49755003', 'SCT', 'Morphologically Abnormal Structure'),
  Infarct: code('55641003', 'SCT', 'Infarct'),
  Brain: code('12738006', 'SCT', 'Brain'),
  ArtificialIntelligence: code('123110', 'DCM', 'Artificial Intelligence'),
  // Derivation / purpose of reference (CID 7202, 7203)
  Segmentation: code('113076', 'DCM', 'Segmentation'),
  SourceImageForProcessing: code('121322', 'DCM', 'Source image for image processing operation'),
  // Contributing equipment purpose (CID 7005)
  SynthesizingEquipment: code('109100', 'DCM', 'Synthesizing Equipment'),
  ProcessingEquipment: code('109102', 'DCM', 'Processing Equipment'),
  // SR TID 1500 / 1411 / 1001
  ImagingMeasurementReport: code('126000', 'DCM', 'Imaging Measurement Report'),
  LanguageOfContent: code('121049', 'DCM', 'Language of Content Item and Descendants'),
  English: code('en-US', 'RFC5646', 'English (United States)'),
  ProcedureReported: code('121058', 'DCM', 'Procedure reported'),
  ImagingProcedure: code('363679005', 'SCT', 'Imaging procedure'),
  ObserverType: code('121005', 'DCM', 'Observer Type'),
  Device: code('121007', 'DCM', 'Device'),
  DeviceObserverUid: code('121012', 'DCM', 'Device Observer UID'),
  DeviceObserverName: code('121013', 'DCM', 'Device Observer Name'),
  DeviceObserverManufacturer: code('121014', 'DCM', 'Device Observer Manufacturer'),
  DeviceObserverModelName: code('121015', 'DCM', 'Device Observer Model Name'),
  ImageLibrary: code('111028', 'DCM', 'Image Library'),
  ImageLibraryGroup: code('126200', 'DCM', 'Image Library Group'),
  ImagingMeasurements: code('126010', 'DCM', 'Imaging Measurements'),
  MeasurementGroup: code('125007', 'DCM', 'Measurement Group'),
  TrackingIdentifier: code('112039', 'DCM', 'Tracking Identifier'),
  TrackingUniqueIdentifier: code('112040', 'DCM', 'Tracking Unique Identifier'),
  Finding: code('121071', 'DCM', 'Finding'),
  FindingSite: code('363698007', 'SCT', 'Finding Site'),
  ReferencedSegment: code('121191', 'DCM', 'Referenced Segment'),
  SourceSeriesForSegmentation: code('121232', 'DCM', 'Source series for segmentation'),
  Volume: code('118565006', 'SCT', 'Volume'),
  AlgorithmName: code('111001', 'DCM', 'Algorithm Name'),
  AlgorithmVersion: code('111003', 'DCM', 'Algorithm Version'),
  AlgorithmParameters: code('111002', 'DCM', 'Algorithm Parameters'),
  MeasurementMethod: code('370129005', 'SCT', 'Measurement Method'),
  Milliliter: code('ml', 'UCUM', 'milliliter'),
  /**
   * No standard concept exists for "volume with ADC below a threshold" (the usual definition of the
   * ischaemic core on DWI/ADC). A private code under this node's scheme, documented in README.md.
   */
  LesionVolumeAdcBelow620: code('ADC620LESION', '99STROKENODE', 'Lesion volume with ADC below 620 x10-6 mm2/s'),
  BrainVolumeAdcBelow620: code('ADC620BRAIN', '99STROKENODE', 'Brain volume with ADC below 620 x10-6 mm2/s'),
  SumOfSegmentedVoxelVolumes: code('126030', 'DCM', 'Sum of segmented voxel volumes'),
  QualitativeEvaluations: code('C0034375', 'UMLS', 'Qualitative Evaluations'),
  Comment: code('121106', 'DCM', 'Comment'),
  MagneticResonanceImaging: code('113091000', 'SCT', 'Magnetic resonance imaging'),
  ComputedTomography: code('77477000', 'SCT', 'Computerized axial tomography'),
  /**
   * Brain tumour sub-regions (tumour SEG and SR, results/tumour.ts). PS3.16 CID 7169 "Brain Lesion
   * Segmentation Types Without Necrosis" = {(125040, DCM, "Background"), (17621005, SCT, "Normal"),
   * (C81175, NCIt, "Non-Enhancing Lesion"), (C113842, NCIt, "Enhancing Lesion"), (79654002, SCT,
   * "Edema")}; CID 7168 "... With Necrosis" adds (6574001, SCT, "Necrosis"). The BraTS 2018 label 1
   * merges necrosis and non-enhancing tumour, so the node uses CID 7169 (necrosis not separated).
   */
  NonEnhancingLesion: code('C81175', 'NCIt', 'Non-Enhancing Lesion'),
  EnhancingLesion: code('C113842', 'NCIt', 'Enhancing Lesion'),
  Edema: code('79654002', 'SCT', 'Edema'),
  Necrosis: code('6574001', 'SCT', 'Necrosis'),
  /** Finding of the composite measurements (whole tumour, tumour core): CID 7151 (108369006, SCT, "Neoplasm"). */
  Neoplasm: code('108369006', 'SCT', 'Neoplasm'),
  /**
   * Liver task (results/liver.ts). Segment 1: category (123037004, SCT, "Anatomical Structure") (CID 7150), type
   * (10200004, SCT, "Liver") (CID 7154 Abdominal Segmentation Types, in CID 7151). Segment 2: category
   * "Morphologically Abnormal Structure", type "Neoplasm" (as the brain tumour composites), anatomic region Liver.
   */
  AnatomicalStructure: code('123037004', 'SCT', 'Anatomical Structure'),
  Liver: code('10200004', 'SCT', 'Liver'),
  /** Longest axial diameter of a tumour (as RECIST measurements in TID 1500 reports): (103339001, SCT, "Long Axis"), mm. */
  LongAxis: code('103339001', 'SCT', 'Long Axis'),
  Millimeter: code('mm', 'UCUM', 'millimeter'),
  NoUnits: code('1', 'UCUM', 'no units'),
  /** No standard concept for "number of tumours found in an organ": a private code under this node's scheme (README). */
  NumberOfLiverTumours: code('LIVERTUMOURS', '99STROKENODE', 'Number of liver tumours'),
} as const;

/** A display colour in sRGB (0..255). */
export interface Rgb {
  r: number;
  g: number;
  b: number;
}

/**
 * sRGB (0..255) → DICOM RecommendedDisplayCIELabValue (PS3.3 C.10.7.1.1: L* 0..100 → 0..0xFFFF,
 * a*, b* -128..127 → 0..0xFFFF), D65 white point, as highdicom's CIELabColor does.
 */
export function rgbToDicomLab(rgb: Rgb): [number, number, number] {
  for (const v of [rgb.r, rgb.g, rgb.b]) {
    if (!Number.isFinite(v) || v < 0 || v > 255) throw new RangeError(`RGB component ${v} outside 0..255`);
  }
  const lin = (c: number): number => {
    const x = c / 255;
    return x <= 0.04045 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
  };
  const R = lin(rgb.r);
  const G = lin(rgb.g);
  const B = lin(rgb.b);
  const X = (0.4124564 * R + 0.3575761 * G + 0.1804375 * B) / 0.95047;
  const Y = 0.2126729 * R + 0.7151522 * G + 0.072175 * B;
  const Z = (0.0193339 * R + 0.119192 * G + 0.9503041 * B) / 1.08883;
  const f = (t: number): number => (t > 216 / 24389 ? Math.cbrt(t) : (24389 / 27 * t + 16) / 116);
  const L = 116 * f(Y) - 16;
  const a = 500 * (f(X) - f(Y));
  const b = 200 * (f(Y) - f(Z));
  const clamp = (v: number): number => Math.max(0, Math.min(65535, Math.round(v)));
  return [clamp((L * 65535) / 100), clamp(((a + 128) * 65535) / 255), clamp(((b + 128) * 65535) / 255)];
}
