/**
 * results/: the DICOM objects the node sends back. Public API of the stage.
 *  - writeSeg / buildSeg: binary DICOM SEG over the source grid (seg/)
 *  - writeSyntheticSc: synthetic DWI as a 16-bit Secondary Capture series with a burned-in banner (sc/)
 *  - writeOverlaySc: RGB "overlay" Secondary Capture series for viewers without SEG support (sc/)
 *  - writeMeasurementSr: TID 1500 Measurement Report (Comprehensive SR) referencing the SEG (sr/)
 *  - Provenance: what every object records about the node and model that produced it
 *  - codes: coded concepts, refusing invalid codes
 *  - writeTumourResults: brain tumour SEG (three BraTS sub-regions) + TID 1500 SR (tumour.ts)
 *  - writeLiverResults: liver + liver tumour SEG + TID 1500 SR (liver.ts)
 */
export { CodedConcept, Codes, InvalidCodeError, code, rgbToDicomLab, type Rgb } from './codes';
export {
  type Provenance,
  validateProvenance,
  provenanceSummary,
  deviceUidForModel,
} from './provenance';
export { type DeploymentOptions, maskVolumeMl, formatMl } from './common';
export {
  writeSeg,
  buildSeg,
  ischaemicLesionSegment,
  SEG_SOP_CLASS_UID,
  type SegInput,
  type SegOptions,
  type SegResult,
  type SegmentDescription,
} from './seg';
export {
  writeSyntheticSc,
  writeOverlaySc,
  SC_IMAGE_STORAGE,
  SYNTHETIC_BANNER,
  type SyntheticScInput,
  type OverlayScInput,
  type ScOptions,
  type ScSeriesResult,
  type ScInstance,
} from './sc';
export { writeMeasurementSr, COMPREHENSIVE_SR, type MeasurementSrInput, type MeasurementSrResult } from './sr';
export { adcCoreVolumeMl, coreThresholdValidity, ADC_CORE_B_RANGE, ADC_CORE_THRESHOLD } from './measure';
export {
  writeTumourResults,
  buildTumourSeg,
  buildTumourSr,
  brainTumourSegments,
  tumourVolumes,
  sequencesText,
  TumourLabel,
  TUMOUR_SEQUENCES,
  type TumourSequence,
  type TumourSequences,
  type TumourVolumes,
  type TumourResultInput,
  type TumourResults,
} from './tumour';
export { writeLiverResults, buildLiverSeg, buildLiverSr, liverSegments, LiverLabel, NO_COUINAUD, type LiverResultInput, type LiverResults, type LiverTumourReport } from './liver';
