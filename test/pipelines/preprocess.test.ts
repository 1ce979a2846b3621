import { normalise, selectKth } from '../../src/pipelines/preprocess';

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('selectKth', () => {
  const cases: Array<[string, Float32Array]> = [];
  const r = rng(7);
  cases.push(['random', Float32Array.from({ length: 10001 }, () => r() * 1000)]);
  cases.push(['few distinct values', Float32Array.from({ length: 5000 }, () => Math.floor(r() * 4))]);
  cases.push(['already sorted', Float32Array.from({ length: 4096 }, (_, i) => i)]);
  cases.push(['reversed', Float32Array.from({ length: 4096 }, (_, i) => 4096 - i)]);
  cases.push(['constant', new Float32Array(3000).fill(5)]);
  cases.push(['two elements', Float32Array.from([9, 1])]);
  cases.push(['one element', Float32Array.from([3])]);
  it.each(cases)('%s: equals the sorted array at k for several k', (_name, a) => {
    const sorted = Float32Array.from(a).sort();
    for (const k of [0, Math.floor(a.length / 2), a.length - 1, Math.floor(a.length / 3)]) {
      expect(selectKth(Float32Array.from(a), k)).toBe(sorted[k]);
    }
  });
});

describe('normalise median-foreground (models/README.md contract)', () => {
  it('divides by the upper-middle foreground value (voxels above the volume mean) and clips', () => {
    const r = rng(3);
    const data = Float32Array.from({ length: 20000 }, (_, i) => (i % 3 === 0 ? 0 : 200 + r() * 1800));
    const mean = data.reduce((s, v) => s + v, 0) / data.length;
    const fg = Array.from(data).filter((v) => v > mean).sort((a, b) => a - b);
    const s = fg[Math.floor(fg.length / 2)];
    const out = normalise(data, { method: 'median-foreground', clip: [0, 10] });
    for (let i = 0; i < data.length; i += 97) expect(out[i]).toBeCloseTo(Math.min(10, data[i] / s), 6);
  });
});
