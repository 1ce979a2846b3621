/**
 * Study stability on the embedded queue, with a controlled clock: quiet period, early hand-off on
 * required series, late instances → a new linked job, state surviving a restart.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openDb } from '../../src/store/db';
import { EmbeddedQueue, offPeakDelayMs, REQUIRED_SERIES_SETTLE_MS, StabilityRule } from '../../src/jobs/queue';

const rules = new Map<string, StabilityRule>([
  ['stroke', { route: 'stroke', quietPeriodMs: 5000, requiredSeries: ['DWI', 'ADC'], priority: 'urgent' }],
  ['research', { route: 'research', quietPeriodMs: 5000, requiredSeries: [], priority: 'research' }],
]);

function tmpDb() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stroke-queue-'));
  return { dir, db: openDb(dir) };
}

describe('study stability', () => {
  test('a study is handed on only after the quiet period with no new instance', async () => {
    const { db } = tmpDb();
    const q = new EmbeddedQueue(db);
    const t0 = 1_000_000;
    await q.noteArrival('1.2.3', 'research', 'OTHER', 'research', t0);
    await q.noteArrival('1.2.3', 'research', 'OTHER', 'research', t0 + 3000);
    expect(await q.promoteStable(rules, t0 + 7000)).toHaveLength(0); // 4 s since the last instance
    const moved = await q.promoteStable(rules, t0 + 8000);
    expect(moved).toHaveLength(1);
    expect(moved[0]).toMatchObject({ state: 'ready', handoff: 'quiet-period', instanceCount: 2 });
    db.close();
  });

  test('the required series hand a study on early (after a short settle), not before they are all there', async () => {
    const { db } = tmpDb();
    const q = new EmbeddedQueue(db);
    const t0 = 2_000_000;
    await q.noteArrival('9.9', 'stroke', 'DWI', 'urgent', t0);
    expect(await q.promoteStable(rules, t0 + REQUIRED_SERIES_SETTLE_MS + 10)).toHaveLength(0); // ADC missing
    await q.noteArrival('9.9', 'stroke', 'ADC', 'urgent', t0 + 100);
    expect(await q.promoteStable(rules, t0 + 100 + REQUIRED_SERIES_SETTLE_MS - 1)).toHaveLength(0);
    const moved = await q.promoteStable(rules, t0 + 100 + REQUIRED_SERIES_SETTLE_MS);
    expect(moved.map((j) => j.handoff)).toEqual(['required-series']);
    db.close();
  });

  test('an instance arriving after hand-off starts a new job linked to the first, never lost', async () => {
    const { db } = tmpDb();
    const q = new EmbeddedQueue(db);
    const t0 = 3_000_000;
    const first = await q.noteArrival('5.5', 'research', 'OTHER', 'research', t0);
    await q.promoteStable(rules, t0 + 6000);
    const claimed = (await q.claim(t0 + 6000))!;
    expect(claimed.id).toBe(first.id);
    await q.complete(first.id, 'done', { ok: true }, t0 + 7000);
    const late = await q.noteArrival('5.5', 'research', 'OTHER', 'research', t0 + 9000);
    expect(late.id).not.toBe(first.id);
    expect(late.previousJobId).toBe(first.id);
    expect(late.state).toBe('collecting');
    expect((await q.get(first.id))!.state).toBe('done');
    db.close();
  });

  test('urgent stroke studies are claimed before research ones', async () => {
    const { db } = tmpDb();
    const q = new EmbeddedQueue(db);
    const t0 = 4_000_000;
    await q.noteArrival('research.1', 'research', 'OTHER', 'research', t0);
    await q.noteArrival('stroke.1', 'stroke', 'CT', 'urgent', t0 + 10);
    await q.promoteStable(rules, t0 + 10_000);
    expect((await q.claim(t0 + 10_000))!.studyUid).toBe('stroke.1');
    expect((await q.claim(t0 + 10_000))!.studyUid).toBe('research.1');
    db.close();
  });

  test('collecting and running state survive a restart; a job running at the crash runs again', async () => {
    const { dir, db } = tmpDb();
    const q = new EmbeddedQueue(db);
    const t0 = 5_000_000;
    await q.noteArrival('a', 'research', 'OTHER', 'research', t0);
    await q.noteArrival('b', 'research', 'OTHER', 'research', t0);
    await q.promoteStable(rules, t0 + 6000);
    const running = (await q.claim(t0 + 6000))!;
    await q.noteArrival('c', 'research', 'OTHER', 'research', t0 + 6500); // still collecting at the crash
    db.close();

    const db2 = openDb(dir);
    const q2 = new EmbeddedQueue(db2);
    expect((await q2.get(running.id))!.state).toBe('ready');
    expect((await q2.get(running.id))!.handoff).toBe('restart');
    const collecting = await q2.list({ states: ['collecting'] });
    expect(collecting.map((j) => j.studyUid)).toEqual(['c']);
    expect((await q2.promoteStable(rules, t0 + 12_000)).map((j) => j.studyUid)).toEqual(['c']);
    db2.close();
  });

  test('failures back off, then go dead after the maximum attempts; an operator retry revives it', async () => {
    const { db } = tmpDb();
    const q = new EmbeddedQueue(db);
    const t0 = 6_000_000;
    await q.noteArrival('f', 'research', 'OTHER', 'research', t0);
    await q.promoteStable(rules, t0 + 6000);
    let j = (await q.claim(t0 + 6000))!;
    j = await q.fail(j.id, 'model crashed', 2, t0 + 6100);
    expect(j.state).toBe('ready');
    expect(await q.claim(t0 + 6200)).toBeUndefined(); // backing off
    j = (await q.claim(j.readyAt!))!;
    j = await q.fail(j.id, 'model crashed again', 2, j.readyAt! + 10);
    expect(j.state).toBe('dead');
    expect(j.error).toBe('model crashed again');
    expect(await q.retry(j.id, t0 + 100_000)).toBe(true);
    expect((await q.claim(t0 + 100_000))!.id).toBe(j.id);
    db.close();
  });

  test('with an off-peak window, research studies become ready at its start; urgent ones at once', async () => {
    const { db } = tmpDb();
    const q = new EmbeddedQueue(db, { start: '20:00', end: '06:00' });
    const noon = new Date(2026, 0, 5, 12, 0, 0).getTime();
    await q.noteArrival('r', 'research', 'OTHER', 'research', noon);
    await q.noteArrival('s', 'stroke', 'CT', 'urgent', noon);
    await q.promoteStable(rules, noon + 6000);
    expect((await q.claim(noon + 6000))!.studyUid).toBe('s');
    expect(await q.claim(noon + 6000)).toBeUndefined(); // research waits for 20:00
    expect((await q.claim(new Date(2026, 0, 5, 20, 0, 0).getTime()))!.studyUid).toBe('r');
    db.close();
  });

  test('off-peak delay: zero inside the window (also past midnight), time to its start outside', () => {
    const at = (h: number, m = 0) => new Date(2026, 0, 5, h, m, 0).getTime();
    const w = { start: '20:00', end: '06:00' };
    expect(offPeakDelayMs(undefined, at(12))).toBe(0);
    expect(offPeakDelayMs(w, at(23))).toBe(0);
    expect(offPeakDelayMs(w, at(3))).toBe(0);
    expect(offPeakDelayMs(w, at(6))).toBe(14 * 3600_000);
    expect(offPeakDelayMs(w, at(19, 30))).toBe(30 * 60_000);
    expect(offPeakDelayMs({ start: '01:00', end: '05:00' }, at(0, 0))).toBe(3600_000);
    expect(offPeakDelayMs({ start: '01:00', end: '05:00' }, at(2, 0))).toBe(0);
  });
});
