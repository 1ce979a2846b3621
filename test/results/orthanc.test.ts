/**
 * The objects results/ writes are accepted by a real PACS peer: C-STORE to Orthanc (what egress/ does),
 * then read back through Orthanc's REST API and DICOMweb (QIDO series list, WADO-RS metadata).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { NaturalDataset } from '../../src/dicom/dcmjs';
import { buildSeg, ischaemicLesionSegment, writeMeasurementSr, writeOverlaySc, writeSyntheticSc } from '../../src/results';
import { orthancAvailable, startOrthanc, type OrthancHandle } from '../harness/orthanc';
import { storescu } from '../harness/dcmtk';
import { deployment, provenanceFor, smallSeries, staircaseMask } from './fixtures';

const haveOrthanc = orthancAvailable() && fs.existsSync('/usr/bin/storescu');

(haveOrthanc ? describe : describe.skip)('results objects in Orthanc', () => {
  let pacs: OrthancHandle;
  let dir: string;
  beforeAll(async () => {
    pacs = await startOrthanc();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'results-orthanc-'));
  });
  afterAll(async () => {
    await pacs?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('SEG, synthetic SC, overlay SC and SR are stored by C-STORE and served back by DICOMweb', async () => {
    const s = smallSeries();
    const g = s.volume.geometry;
    const mask = staircaseMask(g.rows, g.columns, g.slices);
    const prov = provenanceFor([s.seriesInstanceUid]);
    const seg = buildSeg({ source: s.volume, mask, sourceHeaders: s.headers, segments: [ischaemicLesionSegment('m', '1')], provenance: prov, deployment });
    const syn = writeSyntheticSc({ image: s.volume, sourceHeaders: s.headers, provenance: { ...prov, synthetic: true }, deployment });
    const ov = writeOverlaySc({ image: s.volume, mask, sourceHeaders: s.headers, provenance: prov, deployment });
    const sr = writeMeasurementSr({
      sourceHeader: s.headers.values().next().value as NaturalDataset, sourceSlices: s.volume.sliceSources,
      seg: { sopInstanceUid: seg.sopInstanceUid, seriesInstanceUid: seg.seriesInstanceUid },
      lesionVolumeMl: seg.segmentVolumesMl[0], algorithmName: 'm', algorithmVersion: '1', provenance: prov, deployment,
    });
    const files: string[] = [];
    const put = (name: string, buf: Buffer): void => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, buf);
      files.push(f);
    };
    s.files.forEach((f, i) => put(`src${i}.dcm`, f.part10));
    put('seg.dcm', seg.part10);
    syn.instances.forEach((x, i) => put(`syn${i}.dcm`, x.part10));
    ov.instances.forEach((x, i) => put(`ov${i}.dcm`, x.part10));
    put('sr.dcm', sr.part10);

    const r = await storescu('127.0.0.1', pacs.dicomPort, files, { calledAet: pacs.aet, extraArgs: ['-R'] }); // -R: propose the files' own SOP classes (storescu's default list lacks SEG)
    expect(r.associationFailed).toBe(false);
    expect(r.files.filter((f) => f.outcome !== 'success')).toEqual([]);
    expect(r.files).toHaveLength(files.length);

    const studyUid = String((s.headers.values().next().value as NaturalDataset).StudyInstanceUID);
    const series = await pacs.get<Array<Record<string, { Value?: unknown[] }>>>(`/dicom-web/studies/${studyUid}/series`);
    const modalities = series.map((x) => String(x['00080060']?.Value?.[0])).sort();
    expect(modalities).toEqual(['MR', 'MR', 'OT', 'SEG', 'SR']); // synthetic SC: the source's modality; overlay SC: OT

    // Orthanc parsed the SEG's sequences
    const segId = await pacs.instanceIdOf(seg.sopInstanceUid);
    expect(segId).toBeDefined();
    const tags = await pacs.get<Record<string, unknown>>(`/instances/${segId}/simplified-tags`);
    expect(tags.Modality).toBe('SEG');
    expect(Number(tags.NumberOfFrames)).toBe(g.slices);
    expect((tags.SegmentSequence as Array<Record<string, unknown>>)[0].SegmentLabel).toBe('Ischaemic lesion');

    // WADO-RS metadata of the SR (what OHIF's SR viewer reads)
    const meta = await pacs.get<Array<Record<string, { Value?: unknown[] }>>>(
      `/dicom-web/studies/${studyUid}/series/${sr.seriesInstanceUid}/metadata`,
    );
    expect(meta).toHaveLength(1);
    expect(meta[0]['0040A730']?.Value?.length).toBeGreaterThan(5); // ContentSequence
  });
});
