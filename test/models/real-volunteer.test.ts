/**
 * The lesion models on a real scan: a healthy volunteer (Siemens Prisma XA30, b = 2500, 72 x 72 x 39 @ 3 mm; see
 * test/helpers/real-volunteer.ts), through the node's own path. There is no lesion, so every marked millilitre is a
 * false positive on real data, from a scanner, coil and protocol the phantoms were never drawn from.
 * Measured (models/README.md "Real data"): lesion models 0.2.0 marked 29-126 mL here (bright coil periphery and
 * susceptibility pile-up read as lesion); 0.3.0, fine-tuned on realism-2 phantoms, the values by MAX_ML.
 * Not a blind test: this scan showed what realism 2 had to add (models/training/README.md). It guards against a
 * model that reads a normal high-b scan as infarct, which the 0.2.0 models did.
 *
 * The second block is what the node sends: the model's mask after the lesion post-processing
 * (src/pipelines/lesion-postprocess.ts, default thresholds chosen on the VAL phantoms), on the three real scans
 * without a labelled infarct (Siemens volunteer with both sets of maps, GE DWI, Philips Achieva).
 */
import * as path from 'path';
import { ModelRegistry } from '../../src/models/registry';
import { volunteerFalsePositives, FalsePositiveResult, realScanFalsePositives, RealScanResult } from '../helpers/real-volunteer';

jest.setTimeout(240_000);

/**
 * Largest volume (mL) accepted per model, scanner and node-computed maps alike, of the model's own mask. 0.3.0
 * measured (scanner / computed): dual-encoder 5.37 / 5.64, shaspec-missing 0.32 / 0.35, unet2d-baseline 7.13 / 4.46
 * (the lowest slices, skull base); 0.2.0: 66 / 63, 29 / 26, 126 / 107. (Bounds before issue 17: 10 / 3 / 12 mL.)
 */
const MAX_ML: Record<string, number> = {
  // 0.4.0, the DWI+ADC default: 0 / 0 measured; NOT blind (this scan is one of its training negatives), kept as a guard
  'shaspec-realbg': 1,
  'dual-encoder': 7,
  'shaspec-missing': 1,
  'unet2d-baseline': 8.5,
};

/** The aim for what the node sends on a scan without an infarct. */
const AIM = { ml: 1, components: 5 };
/**
 * What the node sends after post-processing (default rules), each model, each real scan: the aim on the GE and
 * Philips scans (measured: 0 / 0.24-0.80 mL, 0 / 1-4 components), and on the b = 2500 Siemens volunteer the
 * measured values with a margin where a model misses the aim there (scanner / node maps: dual-encoder 5.13 / 5.40 mL,
 * 16 / 17 components; unet2d-baseline 6.59 / 4.16 mL, 2 / 3 components; shaspec-missing 0.16 / 0.22 mL, 2 / 3).
 */
const SIEMENS_AFTER: Record<string, { ml: number; components: number }> = {
  'shaspec-realbg': AIM, // measured 0 / 0 (scanner and node maps); not blind: a training negative
  'dual-encoder': { ml: 6, components: 20 },
  'unet2d-baseline': { ml: 7.5, components: 5 },
  'shaspec-missing': AIM,
};

describe('lesion models on a real healthy volunteer (no lesion)', () => {
  let registry: ModelRegistry;
  let results: FalsePositiveResult[];
  let after: RealScanResult[];
  beforeAll(async () => {
    registry = new ModelRegistry({ dir: path.resolve(__dirname, '../../models'), providers: ['cpu'], intraOpThreads: 1 });
    await registry.loadAll();
    results = await volunteerFalsePositives(registry, Object.keys(MAX_ML));
    for (const r of results) process.stdout.write(`${r.model} (${r.input}): ${r.markedMl} mL\n`);
    after = await realScanFalsePositives(registry, Object.keys(SIEMENS_AFTER));
    for (const r of after) process.stdout.write(`${r.scan} ${r.model}: ${r.rawMl} mL / ${r.rawComponents} components -> ${r.markedMl} mL / ${r.components}\n`);
  });
  afterAll(async () => {
    await registry?.close();
  });

  test.each(Object.keys(MAX_ML))('%s marks little healthy brain, from the scanner maps and from its own', (model) => {
    const mine = results.filter((r) => r.model === model);
    expect(mine).toHaveLength(2);
    for (const r of mine) expect(r.markedMl).toBeLessThan(MAX_ML[model]);
  });

  test.each(Object.keys(SIEMENS_AFTER))('%s after post-processing: few false mL and components on every real scan', (model) => {
    const mine = after.filter((r) => r.model === model);
    expect(mine).toHaveLength(4);
    for (const r of mine) {
      const bound = r.scan.startsWith('Siemens') ? SIEMENS_AFTER[model] : AIM;
      expect({ scan: r.scan, ml: r.markedMl < bound.ml, components: r.components < bound.components }).toEqual({ scan: r.scan, ml: true, components: true });
    }
  });
});
