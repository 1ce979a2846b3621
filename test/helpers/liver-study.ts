/**
 * Test helper: abdominal CT / MRI series for the liver task (issue 16), written as clinical-looking DICOM with
 * abdominal headers and synthetic (de-identified placeholder) patient attributes, no patient data:
 *  - writeAbdomenSeries: any in-memory volume as a CT Image or MR Image series (one instance a slice, axial or any
 *    orientation), with the tags the liver acceptance reads (BodyPartExamined, StudyDescription, ProtocolName,
 *    RequestedProcedureDescription, SeriesDescription, ContrastBolusAgent + timing, MR TR/TE/flip, thickness);
 *  - liverFixture / writeLiverFixtureStudy: the committed phantoms test/fixtures/liver/{ct,mr}-phantom.nii.gz with
 *    their labels and expected.json (the python reference), as a portal-venous CT or a T1 post-contrast MRI study;
 *  - the store's records of written series: bratsStoredInstances({ study, list }) (brats-study.ts).
 * NIfTI convention (test/fixtures/liver/README.md): data[i = column, j = row, k = slice], slice k at increasing z,
 * ImageOrientationPatient [1,0,0,0,1,0], ImagePositionPatient of slice k = firstIppLps + (0, 0, k * spacing).
 */
import * as fs from 'fs';
import * as path from 'path';
import { newUid, writePart10, type NaturalDataset } from '../../src/dicom/dcmjs';
import type { SliceSource, Vec3, Volume, VolumeKind } from '../../src/types';
import { readNifti } from './nifti';
import { CT_IMAGE_STORAGE, MR_IMAGE_STORAGE, newStudyContext, type StudyContext, type WrittenInstance, type WrittenSeries } from './series-writer';

export const LIVER_FIXTURES = path.resolve(__dirname, '../fixtures/liver');

export interface AbdomenSeriesSpec {
  modality: 'CT' | 'MR';
  rows: number;
  columns: number;
  slices: number;
  pixelSpacing: [number, number];
  sliceThickness: number;
  sliceSpacing: number;
  /** Default axial [1,0,0,0,1,0]. */
  imageOrientationPatient?: [number, number, number, number, number, number];
  imagePositionPatientFirst: Vec3;
  /** Stored values, slice-major (ascending along the normal), row-major. CT: HU (slope 1, intercept 0). */
  data: Int16Array | Uint16Array;
  seriesDescription: string;
  seriesNumber?: number;
  /** Extra / overriding attributes of every instance (e.g. BodyPartExamined, ContrastBolusAgent, EchoTime). */
  tags?: NaturalDataset;
  kind?: VolumeKind;
}

/** The tags of a portal-venous abdominal CT (70 s after the bolus). */
export const CT_PORTAL_TAGS: NaturalDataset = {
  BodyPartExamined: 'ABDOMEN',
  StudyDescription: 'CT ABDOMEN PELVIS WITH CONTRAST',
  RequestedProcedureDescription: 'CT abdomen with IV contrast',
  ProtocolName: 'ABDOMEN_PV',
  ContrastBolusAgent: 'IOHEXOL 350',
  ContrastBolusRoute: 'IV',
  ContrastBolusVolume: '100',
  ContrastBolusStartTime: '120000',
  AcquisitionTime: '120110',
  ConvolutionKernel: 'STANDARD',
  KVP: '120',
};

/** The tags of a T1 post-contrast fat-saturated 3-D gradient echo of the liver (VIBE-like). */
export const MR_T1C_TAGS: NaturalDataset = {
  BodyPartExamined: 'ABDOMEN',
  StudyDescription: 'MRI LIVER WITH AND WITHOUT CONTRAST',
  RequestedProcedureDescription: 'MRI liver',
  ProtocolName: 'AX T1 VIBE FS POST',
  ScanningSequence: 'GR',
  SequenceVariant: ['SP', 'SK'],
  ScanOptions: 'FS',
  MRAcquisitionType: '3D',
  RepetitionTime: '4.5',
  EchoTime: '2.1',
  FlipAngle: '10',
  MagneticFieldStrength: '1.5',
  ContrastBolusAgent: 'Gadoterate',
  ContrastBolusRoute: 'IV',
  ContrastBolusVolume: '15',
};

export const MR_T2_TAGS: NaturalDataset = {
  BodyPartExamined: 'ABDOMEN',
  StudyDescription: 'MRI LIVER WITH AND WITHOUT CONTRAST',
  ProtocolName: 'AX T2 HASTE',
  ScanningSequence: 'SE',
  SequenceVariant: ['SK', 'SP'],
  ScanOptions: '',
  MRAcquisitionType: '2D',
  RepetitionTime: '1600',
  EchoTime: '90',
  FlipAngle: '150',
  MagneticFieldStrength: '1.5',
};

export const MR_T1_TAGS: NaturalDataset = {
  ...MR_T1C_TAGS,
  ProtocolName: 'AX T1 VIBE FS PRE',
  ContrastBolusAgent: undefined,
  ContrastBolusRoute: undefined,
  ContrastBolusVolume: undefined,
};

const fmt = (x: number): string => {
  const s = String(Math.round(x * 1e6) / 1e6);
  return s.length > 16 ? x.toPrecision(10) : s;
};
const cross = (a: Vec3, b: Vec3): Vec3 => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];

/** One series, one instance a slice (InstanceNumber ascending along the normal). */
export function writeAbdomenSeries(spec: AbdomenSeriesSpec, study: StudyContext, outDir?: string): WrittenSeries {
  const { rows, columns, slices } = spec;
  const ppf = rows * columns;
  if (spec.data.length !== ppf * slices) throw new Error(`data has ${spec.data.length} values, expected ${ppf * slices}`);
  const ct = spec.modality === 'CT';
  const sopClassUid = ct ? CT_IMAGE_STORAGE : MR_IMAGE_STORAGE;
  const seriesInstanceUid = newUid();
  const iop = spec.imageOrientationPatient ?? [1, 0, 0, 0, 1, 0];
  const rowCos: Vec3 = [iop[0], iop[1], iop[2]];
  const colCos: Vec3 = [iop[3], iop[4], iop[5]];
  const normal = cross(rowCos, colCos);
  const positions: Vec3[] = [];
  for (let z = 0; z < slices; z++) positions.push([0, 1, 2].map((a) => spec.imagePositionPatientFirst[a] + z * spec.sliceSpacing * normal[a]) as Vec3);
  const files: WrittenInstance[] = [];
  const headers = new Map<string, NaturalDataset>();
  const sliceSources: SliceSource[] = [];
  const vol = new Float32Array(ppf * slices);
  const signed = spec.data instanceof Int16Array;
  if (outDir) fs.mkdirSync(outDir, { recursive: true });
  for (let z = 0; z < slices; z++) {
    const sopInstanceUid = newUid();
    const pixels = spec.data.slice(z * ppf, (z + 1) * ppf);
    for (let i = 0; i < ppf; i++) vol[z * ppf + i] = pixels[i];
    const p = positions[z];
    const ds: NaturalDataset = {
      SpecificCharacterSet: 'ISO_IR 100',
      SOPClassUID: sopClassUid,
      SOPInstanceUID: sopInstanceUid,
      ImageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'],
      StudyDate: study.studyDate,
      SeriesDate: study.studyDate,
      ContentDate: study.studyDate,
      StudyTime: study.studyTime,
      SeriesTime: study.studyTime,
      ContentTime: study.studyTime,
      AccessionNumber: study.accessionNumber,
      Modality: spec.modality,
      Manufacturer: 'PHANTOM',
      ReferringPhysicianName: '',
      SeriesDescription: spec.seriesDescription,
      PatientName: study.patientName,
      PatientID: study.patientId,
      PatientBirthDate: '',
      PatientSex: 'O',
      PatientIdentityRemoved: 'YES',
      DeidentificationMethod: 'synthetic phantom, no patient data',
      StudyInstanceUID: study.studyInstanceUid,
      SeriesInstanceUID: seriesInstanceUid,
      StudyID: study.studyId,
      SeriesNumber: spec.seriesNumber ?? 2,
      InstanceNumber: z + 1,
      PatientOrientation: '',
      PatientPosition: 'FFS',
      ImagePositionPatient: p.map(fmt),
      ImageOrientationPatient: iop.map(fmt),
      FrameOfReferenceUID: study.frameOfReferenceUid,
      PositionReferenceIndicator: '',
      SliceLocation: fmt(p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2]),
      SliceThickness: fmt(spec.sliceThickness),
      SamplesPerPixel: 1,
      PhotometricInterpretation: 'MONOCHROME2',
      Rows: rows,
      Columns: columns,
      PixelSpacing: spec.pixelSpacing.map(fmt),
      BitsAllocated: 16,
      BitsStored: 16,
      HighBit: 15,
      PixelRepresentation: signed ? 1 : 0,
      AcquisitionNumber: 1,
      PixelData: [pixels.buffer.slice(pixels.byteOffset, pixels.byteOffset + pixels.byteLength)],
      _vrMap: { PixelData: 'OW' },
    };
    if (ct) Object.assign(ds, { RescaleIntercept: '0', RescaleSlope: '1', RescaleType: 'HU', WindowCenter: '60', WindowWidth: '400' });
    else Object.assign(ds, { SpacingBetweenSlices: fmt(spec.sliceSpacing), EchoTrainLength: 1, ImagingFrequency: '63.9' });
    for (const [k, v] of Object.entries(spec.tags ?? {})) {
      if (v === undefined) delete ds[k];
      else ds[k] = v;
    }
    headers.set(sopInstanceUid, ds);
    sliceSources.push({ sopInstanceUid, sopClassUid, seriesInstanceUid });
    const f: WrittenInstance = { sopInstanceUid, sliceIndex: z, part10: writePart10(ds) };
    if (outDir) {
      f.path = path.join(outDir, `${sopInstanceUid}.dcm`);
      fs.writeFileSync(f.path, f.part10);
    }
    files.push(f);
  }
  const volume: Volume = {
    kind: spec.kind ?? (ct ? 'CT' : 'T1C'),
    geometry: {
      rows,
      columns,
      slices,
      pixelSpacing: [spec.pixelSpacing[0], spec.pixelSpacing[1]],
      sliceSpacing: spec.sliceSpacing,
      rowCosines: rowCos,
      columnCosines: colCos,
      normal,
      slicePositions: positions,
      frameOfReferenceUid: study.frameOfReferenceUid,
      warnings: [],
    },
    data: vol,
    sliceSources,
    seriesInstanceUid,
    seriesDescription: spec.seriesDescription,
  };
  return { seriesInstanceUid, sopClassUid, files, headers, volume };
}

export interface ExpectedTumour {
  ml: number;
  voxels: number;
  longestAxialDiameterMm: number;
  centroidVoxel: { slice: number; row: number; column: number };
  centroidLpsMm?: [number, number, number];
}
export interface ExpectedCase {
  modality: 'CT' | 'MR';
  shape: { slices: number; rows: number; columns: number };
  pixelSpacingMm: number;
  sliceSpacingMm: number;
  firstIppLps: Vec3;
  truth: { liverMl: number; tumourCount: number; tumourMl: number; tumours: { ml: number; longestAxialDiameterMm: number }[] };
  expected: { liverMl: number; tumourCount: number; tumourMl: number; tumours: ExpectedTumour[]; labelSha256: string; raw: { liverMl: number; tumourVoxels: number } };
}
export interface ExpectedFile {
  model: { name: string; version: string; sha256: string };
  minTumourMl: number;
  cases: { ct: ExpectedCase; mr: ExpectedCase };
}

export function liverFixturesAvailable(): boolean {
  return ['ct-phantom.nii.gz', 'ct-phantom-label.nii.gz', 'mr-phantom.nii.gz', 'mr-phantom-label.nii.gz', 'expected.json'].every((f) => fs.existsSync(path.join(LIVER_FIXTURES, f)));
}

export function liverExpected(): ExpectedFile {
  return JSON.parse(fs.readFileSync(path.join(LIVER_FIXTURES, 'expected.json'), 'utf8')) as ExpectedFile;
}

export interface LiverFixture {
  which: 'ct' | 'mr';
  modality: 'CT' | 'MR';
  /** Stored values [slice][row][column]. */
  data: Int16Array | Uint16Array;
  truth: Uint8Array;
  rows: number;
  columns: number;
  slices: number;
  pixelSpacing: number;
  sliceSpacing: number;
  firstIpp: Vec3;
  expected: ExpectedCase;
}

/** A committed phantom (NIfTI data[i, j, k] is already [k][j = row][i = column] in memory order). */
export function liverFixture(which: 'ct' | 'mr'): LiverFixture {
  const exp = liverExpected().cases[which];
  const img = readNifti(path.join(LIVER_FIXTURES, `${which}-phantom.nii.gz`));
  const lab = readNifti(path.join(LIVER_FIXTURES, `${which}-phantom-label.nii.gz`));
  const [columns, rows, slices] = img.dims;
  if (rows !== exp.shape.rows || columns !== exp.shape.columns || slices !== exp.shape.slices) throw new Error(`${which}: NIfTI ${img.dims.join('x')} vs expected.json ${JSON.stringify(exp.shape)}`);
  const data = which === 'ct' ? Int16Array.from(img.data) : Uint16Array.from(img.data);
  return {
    which,
    modality: which === 'ct' ? 'CT' : 'MR',
    data,
    truth: Uint8Array.from(lab.data),
    rows,
    columns,
    slices,
    pixelSpacing: exp.pixelSpacingMm,
    sliceSpacing: exp.sliceSpacingMm,
    firstIpp: exp.firstIppLps,
    expected: exp,
  };
}

export interface LiverFixtureStudy {
  study: StudyContext;
  series: WrittenSeries;
  fixture: LiverFixture;
}

/** A fixture as a portal-venous abdominal CT study or a T1 post-contrast liver MRI study. */
export function writeLiverFixtureStudy(which: 'ct' | 'mr', opts: { outDir?: string; study?: StudyContext; tags?: NaturalDataset } = {}): LiverFixtureStudy {
  const fx = liverFixture(which);
  const study = opts.study ?? newStudyContext({ patientName: 'PHANTOM^LIVER', patientId: `LIVER-${which.toUpperCase()}` });
  const series = writeAbdomenSeries(
    {
      modality: fx.modality,
      rows: fx.rows,
      columns: fx.columns,
      slices: fx.slices,
      pixelSpacing: [fx.pixelSpacing, fx.pixelSpacing],
      sliceThickness: fx.sliceSpacing,
      sliceSpacing: fx.sliceSpacing,
      imagePositionPatientFirst: fx.firstIpp,
      data: fx.data,
      seriesDescription: which === 'ct' ? 'ABD PORTAL VENOUS 3.0 STD' : 'AX T1 VIBE FS POST',
      tags: { ...(which === 'ct' ? CT_PORTAL_TAGS : MR_T1C_TAGS), ...(opts.tags ?? {}) },
    },
    study,
    opts.outDir,
  );
  return { study, series, fixture: fx };
}
