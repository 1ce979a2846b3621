/**
 * The synthetic series carry the synthesis model's own hallucination check in ImageComments: a reader of a
 * synthetic FLAIR sees how well a tumour survived on it in the model's TEST split (issue 15: "a synthetic
 * sequence that shows a tumour where there is none, or hides one, is the failure that matters").
 */
import * as fs from 'fs';
import * as path from 'path';
import type { ModelManifest } from '../../src/models/manifest';
import { qualityNoteOf } from '../../src/pipelines/brain-tumour-mr/synthetic-series';

const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '../../models/brats-m2dn.json'), 'utf8')) as ModelManifest & {
  metrics: { downstream: { synthesisedAlone: Record<string, { WT: number }>; trueAlone: Record<string, { WT: number }> } };
};

test('the note quotes the manifest figures of the sequence it stands for (T1C matches the manifest key T1c)', () => {
  for (const q of ['FLAIR', 'T1', 'T1C', 'T2'] as const) {
    const key = Object.keys(manifest.metrics.downstream.synthesisedAlone).find((k) => k.toUpperCase() === q)!;
    const note = qualityNoteOf(manifest, q)!;
    expect(note).toContain(`synthetic ${q} alone`);
    expect(note).toContain(`Dice ${manifest.metrics.downstream.synthesisedAlone[key].WT.toFixed(2)}`);
    expect(note).toContain(`acquired ${q} alone ${manifest.metrics.downstream.trueAlone[key].WT.toFixed(2)}`);
    expect(note).toContain(`${manifest.name} ${manifest.version}`);
  }
});

test('no note without the measurement (a site model with no downstream metrics)', () => {
  const bare = { ...manifest, metrics: {} } as unknown as ModelManifest;
  expect(qualityNoteOf(bare, 'FLAIR')).toBeUndefined();
  expect(qualityNoteOf(undefined, 'FLAIR')).toBeUndefined();
});
