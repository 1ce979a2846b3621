/**
 * Real-data check of the lesion models: the volume each marks on a real healthy volunteer (Siemens XA30, b = 2500,
 * test/helpers/real-volunteer.ts), through the node's own code path. Written to the manifests by write_manifests.py
 * (`metrics.realHealthyVolunteer`).
 *
 *   npx tsx models/training/eval_real.ts [out.json] [modelsDir]
 */
import * as fs from 'fs';
import * as path from 'path';
import { ModelRegistry } from '../../src/models/registry';
import { volunteerFalsePositives } from '../../test/helpers/real-volunteer';

async function main(): Promise<void> {
  const outFile = process.argv[2] ?? path.join(__dirname, 'out/real-volunteer.json');
  const dir = process.argv[3] ?? path.resolve(__dirname, '..');
  const models = ['dual-encoder', 'unet2d-baseline', 'shaspec-missing'];
  const reg = new ModelRegistry({ dir, providers: ['cpu'], intraOpThreads: 1 });
  await reg.loadAll();
  const results = await volunteerFalsePositives(reg, models);
  for (const r of results) console.log(`${r.model.padEnd(16)} ${r.input.padEnd(26)} ${r.markedMl.toFixed(2)} mL`);
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, JSON.stringify({ data: 'Siemens Prisma XA30 healthy volunteer, DWI b=2500, 72x72x39 @ 3 mm (neurolabusc/dcm_qa_xa30)', results }, null, 1));
  await reg.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
