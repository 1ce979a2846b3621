/**
 * Render slices of the real scans (b0 | trace DWI | ADC | DWI with the model's mask before and after the lesion
 * post-processing) to an RGB PNG, to look at what the rules remove and at the brain mask.
 *
 *   [PP_SCALE=3] npx tsx render_pp.ts <scan index 0-3> <out.png> [model] [slices, comma-separated]
 * Colours on the last panel: red = removed by the post-processing, yellow = kept, blue = brain-mask edge.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { ModelRegistry } from '../../src/models/registry';
import { segmentLesion } from '../../src/pipelines/processor';
import { postprocessLesionMask } from '../../src/pipelines/lesion-postprocess';
import { Volume } from '../../src/types';
import { realScans } from '../../test/helpers/real-volunteer';

function crc32(buf: Buffer): number {
  let c = ~0;
  for (let i = 0; i < buf.length; i++) {
    c ^= buf[i];
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}
export function writePng(file: string, w: number, h: number, rgb: Uint8Array): void {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    Buffer.from(rgb.buffer, rgb.byteOffset + y * w * 3, w * 3).copy(raw, y * (w * 3 + 1) + 1);
  }
  fs.writeFileSync(file, Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]));
}

function pct(v: Float32Array, p: number): number {
  const s = Float32Array.from(v).sort();
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

async function main(): Promise<void> {
  const [idx, out, model = 'dual-encoder', sl] = process.argv.slice(2);
  const sc = (await realScans())[Number(idx)];
  const reg = new ModelRegistry({ dir: path.resolve(__dirname, '..'), providers: ['cpu'], intraOpThreads: 1 });
  await reg.loadAll();
  const { mask: raw } = await segmentLesion(reg, model, { DWI: sc.dwi, ADC: sc.adc }, {});
  const { mask, brain, report } = postprocessLesionMask(raw, { ref: sc.dwi, dwi: sc.dwi, b0: sc.b0, adc: sc.adc });
  console.log(report.summary);
  const g = sc.dwi.geometry;
  const { rows: R, columns: C } = g;
  const plane = R * C;
  // default: the (up to) 6 slices where the model marked most
  const perSlice = Array.from({ length: g.slices }, (_, z) => ({ z, n: raw.subarray(z * plane, (z + 1) * plane).reduce((a, x) => a + x, 0) }));
  const slices = sl ? sl.split(',').map(Number) : perSlice.filter((p) => p.n > 0).sort((a, b) => b.n - a.n).slice(0, 6).map((p) => p.z).sort((a, b) => a - b);
  const panels: { v?: Volume; lo: number; hi: number }[] = [
    { v: sc.b0, lo: 0, hi: sc.b0 ? pct(sc.b0.data, 0.995) : 1 },
    { v: sc.dwi, lo: 0, hi: pct(sc.dwi.data, 0.995) },
    { v: sc.adc, lo: 0, hi: 2000 },
    { v: sc.dwi, lo: 0, hi: pct(sc.dwi.data, 0.995) },
  ];
  const W = C * panels.length;
  const H = R * slices.length;
  const img = new Uint8Array(W * H * 3);
  slices.forEach((z, row) => {
    panels.forEach((p, pi) => {
      for (let y = 0; y < R; y++) {
        for (let x = 0; x < C; x++) {
          const i = z * plane + y * C + x;
          const val = p.v ? Math.max(0, Math.min(255, ((p.v.data[i] - p.lo) / (p.hi - p.lo)) * 255)) : 0;
          let rgb = [val, val, val];
          if (pi === 3) {
            const edge = brain && brain[i] && ((x > 0 && !brain[i - 1]) || (x < C - 1 && !brain[i + 1]) || (y > 0 && !brain[i - C]) || (y < R - 1 && !brain[i + C]));
            if (edge) rgb = [60, 120, 255];
            if (raw[i] && !mask[i]) rgb = [255, 40, 40];
            if (mask[i]) rgb = [255, 230, 0];
          }
          const o = ((row * R + y) * W + pi * C + x) * 3;
          img[o] = rgb[0];
          img[o + 1] = rgb[1];
          img[o + 2] = rgb[2];
        }
      }
    });
  });
  const k = Number(process.env.PP_SCALE ?? 1);
  if (k > 1) {
    const big = new Uint8Array(W * k * H * k * 3);
    for (let y = 0; y < H * k; y++) for (let x = 0; x < W * k; x++) for (let c = 0; c < 3; c++) big[(y * W * k + x) * 3 + c] = img[(Math.floor(y / k) * W + Math.floor(x / k)) * 3 + c];
    writePng(out, W * k, H * k, big);
  } else writePng(out, W, H, img);
  console.log(`${sc.name}: slices ${slices.join(',')} -> ${out} (${W}x${H})`);
  await reg.close();
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
