/**
 * Test helper for end-to-end tests: the one SEG and the one SR a task sent back into a study, as Orthanc holds
 * them (waits until both arrived; fails when there are more than one of either).
 */
import { readPart10, str, type NaturalDataset } from '../../src/dicom/dcmjs';
import type { OrthancHandle } from '../harness/orthanc';
import { waitFor } from './node';

export const SEG_CLASS = '1.2.840.10008.5.1.4.1.1.66.4';
export const SR_CLASSES = ['1.2.840.10008.5.1.4.1.1.88.22', '1.2.840.10008.5.1.4.1.1.88.33', '1.2.840.10008.5.1.4.1.1.88.34'];

export interface ReturnedObject {
  b: Buffer;
  ds: NaturalDataset;
}

export async function segAndSrInOrthanc(pacs: OrthancHandle, studyUid: string, timeoutMs = 60000): Promise<{ seg: ReturnedObject; sr: ReturnedObject }> {
  let parsed: ReturnedObject[] = [];
  const isSr = (x: ReturnedObject) => SR_CLASSES.includes(String(str(x.ds, 'SOPClassUID')));
  const isSeg = (x: ReturnedObject) => str(x.ds, 'SOPClassUID') === SEG_CLASS;
  await waitFor(
    async () => {
      const studies = await pacs.findStudies({ StudyInstanceUID: studyUid });
      if (studies.length !== 1) return false;
      const instances = await pacs.get<{ ID: string }[]>(`/studies/${studies[0]}/instances`);
      const files = await Promise.all(instances.map(async (i) => Buffer.from(await (await fetch(`${pacs.httpUrl}/instances/${i.ID}/file`)).arrayBuffer())));
      parsed = files.map((b) => ({ b, ds: readPart10(b).dataset }));
      return parsed.some(isSeg) && parsed.some(isSr);
    },
    timeoutMs,
    'SEG and SR in Orthanc',
    500,
  );
  const segs = parsed.filter(isSeg);
  const srs = parsed.filter(isSr);
  if (segs.length !== 1 || srs.length !== 1) throw new Error(`expected one SEG and one SR in the study, found ${segs.length} and ${srs.length}`);
  return { seg: segs[0], sr: srs[0] };
}

/** The job outcome as the e2e tests read it from the node's API (the fields they check; src/types.ts StudyOutcome is the full record). */
export interface E2eOutcome {
  decision: string;
  route: string;
  reason?: string;
  note?: string;
  model?: { name: string; version?: string; executionProvider: string };
  tasks: { task: string; listed: boolean; run: boolean; ran?: boolean; reason: string; inputsMissing?: boolean; measurements?: Record<string, number> }[];
  outputs: { kind: string; path: string; task?: string }[];
  timingsMs: Record<string, number>;
  availability: { abdomen?: { pick?: { kind: string; reason: string } } };
}
