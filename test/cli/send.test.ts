/**
 * The `send` command: a folder to the node by C-STORE and by STOW-RS, non-DICOM files skipped,
 * a refused association reported with its reason.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs, sendFiles } from '../../src/cli/send';
import { geHeadCt } from '../harness/data';
import { startTestNode } from '../helpers/node';

describe('send command', () => {
  test('sends a folder by C-STORE and by STOW-RS; skips non-DICOM; reports a refusal', async () => {
    const t = await startTestNode({ dimse: { allowAnyCaller: false, allowedPeers: [{ aeTitle: 'STROKESEND' }] } });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'send-'));
    try {
      for (const f of geHeadCt().slice(0, 4)) fs.copyFileSync(f, path.join(dir, path.basename(f)));
      fs.writeFileSync(path.join(dir, 'README.txt'), 'not dicom');
      const r = await sendFiles(parseArgs([dir, '--dimse', `127.0.0.1:${t.dimsePort}`]));
      expect(r).toMatchObject({ sent: 4, failed: [], skipped: [path.join(dir, 'README.txt')] });
      expect(t.node.store.count()).toBe(4);

      const stowDir = fs.mkdtempSync(path.join(os.tmpdir(), 'send-stow-'));
      for (const f of geHeadCt().slice(4, 7)) fs.copyFileSync(f, path.join(stowDir, path.basename(f)));
      const s = await sendFiles(parseArgs([stowDir, '--stow', `${t.httpUrl}/dicom-web`]));
      expect(s.sent).toBe(3);
      expect(t.node.store.count()).toBe(7);

      const refused = await sendFiles(parseArgs([dir, '--dimse', `127.0.0.1:${t.dimsePort}`, '--aet', 'STRANGER']));
      expect(refused.sent).toBe(0);
      expect(refused.failed[0].reason).toMatch(/STRANGER|calling AE|reject/i);
      fs.rmSync(stowDir, { recursive: true, force: true });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      await t.stop();
    }
  });
});
