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
import type { NaturalDataset } from '../../src/dicom/dcmjs';
import type { Vec3, VolumeKind } from '../../src/types';
import { readNifti } from './nifti';
import { ModelRegistry } from '../../src/models/registry';
import { newStudyContext, writeSeries, writeSeriesToDir, type SeriesSpec, type StudyContext, type WrittenSeries } from './series-writer';
import { modelsSubset } from './tumour-seg';

/** The repository root: the nearest folder above this file with a package.json (test/helpers or dist/test/helpers, for the bench). */
function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

export const LIVER_FIXTURES = path.join(repoRoot(), 'test', 'fixtures', 'liver');

/** An abdominal series: series-writer's geometry and data, a CT or MR modality, axial unless told. */
export interface AbdomenSeriesSpec
  extends Pick<SeriesSpec, 'rows' | 'columns' | 'slices' | 'pixelSpacing' | 'sliceThickness' | 'sliceSpacing' | 'imagePositionPatientFirst' | 'data' | 'seriesNumber' | 'tags'> {
  modality: 'CT' | 'MR';
  /** Default axial [1,0,0,0,1,0]. */
  imageOrientationPatient?: SeriesSpec['imageOrientationPatient'];
  seriesDescription: string;
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

/** The abdominal defaults a liver series carries on top of series-writer's (synthetic, de-identified). */
const ABDOMEN_DEFAULTS: NaturalDataset = {
  PatientIdentityRemoved: 'YES',
  DeidentificationMethod: 'synthetic phantom, no patient data',
  PatientPosition: 'FFS',
  // series-writer's head / diffusion defaults that an abdominal series does not have
  StudyDescription: undefined,
  BodyPartExamined: undefined,
  ScanningSequence: undefined,
  SequenceVariant: undefined,
  EchoTime: undefined,
  RepetitionTime: undefined,
};

/**
 * One series, one instance a slice (InstanceNumber ascending along the normal): series-writer's writeSeries with
 * ImageType ORIGINAL\PRIMARY\AXIAL and the abdominal tags; files written under outDir when given.
 */
export function writeAbdomenSeries(spec: AbdomenSeriesSpec, study: StudyContext, outDir?: string): WrittenSeries {
  const ct = spec.modality === 'CT';
  const s = writeSeries(
    {
      kind: ct ? 'CT' : 'B0',
      rows: spec.rows,
      columns: spec.columns,
      slices: spec.slices,
      pixelSpacing: spec.pixelSpacing,
      sliceThickness: spec.sliceThickness,
      sliceSpacing: spec.sliceSpacing,
      imageOrientationPatient: spec.imageOrientationPatient ?? [1, 0, 0, 0, 1, 0],
      imagePositionPatientFirst: spec.imagePositionPatientFirst,
      data: spec.data,
      seriesDescription: spec.seriesDescription,
      seriesNumber: spec.seriesNumber ?? 2,
      imageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'],
      tags: { ...ABDOMEN_DEFAULTS, ...(ct ? { WindowCenter: '60', WindowWidth: '400' } : {}), ...(spec.tags ?? {}) },
    },
    study,
  );
  s.volume.kind = spec.kind ?? (ct ? 'CT' : 'T1C');
  return outDir ? writeSeriesToDir(s, outDir) : s;
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

/** A registry holding only the liver model (quick loads; 1 CPU thread, as the python reference ran it). */
export async function liverRegistry(): Promise<ModelRegistry> {
  const registry = new ModelRegistry({ dir: modelsSubset(['liver-aqcf']), providers: ['cpu'], intraOpThreads: 1 });
  await registry.loadAll();
  return registry;
}
