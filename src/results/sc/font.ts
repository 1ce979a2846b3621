/**
 * A tiny built-in 5x7 bitmap font (upper-case ASCII, digits, a few signs) and a rasteriser, so the
 * burned-in banners need no font files or packages. Each glyph: 7 rows, 5 bits a row (bit 4 = left).
 * Lower case is drawn as upper case; an en/em dash as "-"; anything else as "?".
 */
const G: Record<string, number[]> = {
  A: [0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
  B: [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e],
  C: [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e],
  D: [0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c],
  E: [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f],
  F: [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10],
  G: [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f],
  H: [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
  I: [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
  J: [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c],
  K: [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
  L: [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f],
  M: [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11],
  N: [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
  O: [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
  P: [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10],
  Q: [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d],
  R: [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11],
  S: [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e],
  T: [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
  U: [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
  V: [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04],
  W: [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a],
  X: [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11],
  Y: [0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04],
  Z: [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f],
  '0': [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
  '1': [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
  '2': [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
  '3': [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
  '4': [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
  '5': [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
  '6': [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
  '7': [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
  '8': [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
  '9': [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
  '-': [0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00],
  '.': [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c],
  ',': [0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08],
  ':': [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00],
  '/': [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
  '(': [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
  ')': [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
  '<': [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
  '>': [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
  '=': [0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00],
  '+': [0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00],
  '%': [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
  _: [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f],
  '?': [0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
  ' ': [0, 0, 0, 0, 0, 0, 0],
};

export const GLYPH_W = 5;
export const GLYPH_H = 7;
/** Advance per character and per line, in font pixels (1 px gap between glyphs and lines). */
export const ADVANCE_X = 6;
export const ADVANCE_Y = 9;

export function glyph(ch: string): number[] {
  const c = ch.replace(/[\u2010-\u2015]/, '-').toUpperCase();
  return G[c] ?? G['?'];
}

/** A rendered text block: mask[y * width + x] = 1 where ink is. */
export interface TextBitmap {
  width: number;
  height: number;
  mask: Uint8Array;
}

/** Render lines of text at an integer scale (each font pixel becomes scale x scale). */
export function renderText(lines: string[], scale = 1): TextBitmap {
  const s = Math.max(1, Math.floor(scale));
  const maxLen = Math.max(0, ...lines.map((l) => l.length));
  const width = Math.max(0, (maxLen * ADVANCE_X - 1) * s);
  const height = Math.max(0, (lines.length * ADVANCE_Y - (ADVANCE_Y - GLYPH_H)) * s);
  const mask = new Uint8Array(width * height);
  lines.forEach((line, li) => {
    for (let ci = 0; ci < line.length; ci++) {
      const rowsBits = glyph(line[ci]);
      for (let gy = 0; gy < GLYPH_H; gy++) {
        for (let gx = 0; gx < GLYPH_W; gx++) {
          if (!((rowsBits[gy] >> (GLYPH_W - 1 - gx)) & 1)) continue;
          const x0 = (ci * ADVANCE_X + gx) * s;
          const y0 = (li * ADVANCE_Y + gy) * s;
          for (let dy = 0; dy < s; dy++) for (let dx = 0; dx < s; dx++) mask[(y0 + dy) * width + x0 + dx] = 1;
        }
      }
    }
  });
  return { width, height, mask };
}

/**
 * Lay the text out to fit `maxWidth` pixels: the largest scale (<= maxScale) at which the lines fit,
 * splitting a line at " - "; on narrow images (scale 1) words are packed greedily into lines, a word
 * too long for a line is broken after a hyphen ("AI-" / "GENERATED"), and only a word with no such
 * break is cut into chunks. (Seen in OHIF on a 72-column Siemens DWI: cutting "AI-GENERATED" into
 * "AI-GENERATE" / "D" and one word a line covered half the image.)
 */
export function layoutText(text: string, maxWidth: number, maxScale = 3): { lines: string[]; scale: number } {
  const fits = (lines: string[], s: number): boolean => Math.max(...lines.map((l) => l.length)) * ADVANCE_X * s - s <= maxWidth;
  const oneOrTwo: string[][] = [[text]];
  if (text.includes(' - ')) oneOrTwo.push(text.split(' - ').map((p, i, a) => (i < a.length - 1 ? `${p} -` : p)));
  // readable size first (about 1 font pixel per 160 image pixels), then fewer lines, then smaller
  const target = Math.min(maxScale, Math.max(1, Math.floor(maxWidth / 160)));
  for (let s = target; s >= 1; s--) for (const c of oneOrTwo) if (fits(c, s)) return { lines: c, scale: s };
  const per = Math.max(1, Math.floor((maxWidth + 1) / ADVANCE_X)); // characters a line at scale 1
  // pieces: words, long words broken after their hyphens, then cut; `glue` = no space before it
  const pieces: Array<{ t: string; glue: boolean }> = [];
  for (const w of text.split(/\s+/).filter(Boolean)) {
    const parts = w.length <= per ? [w] : w.split(/(?<=-)/);
    parts.forEach((part, k) => {
      for (let i = 0; i < part.length; i += per) pieces.push({ t: part.slice(i, i + per), glue: k > 0 || i > 0 });
    });
  }
  const lines: string[] = [];
  for (const p of pieces) {
    const last = lines.length ? lines[lines.length - 1] : undefined;
    const joined = last === undefined ? undefined : `${last}${p.glue ? '' : ' '}${p.t}`;
    if (joined !== undefined && joined.length <= per) lines[lines.length - 1] = joined;
    else lines.push(p.t);
  }
  return { lines, scale: 1 };
}

/** Where a banner went, so tests (and readers) can find it. */
export interface BannerPlacement {
  x: number;
  y: number;
  /** Box (text + margin) filled with the background value. */
  boxWidth: number;
  boxHeight: number;
  text: TextBitmap;
  textX: number;
  textY: number;
  lines: string[];
  scale: number;
}

/** Compute the placement of a banner in the top-left corner of an image of `columns` x `rows`. */
export function placeBanner(text: string, rows: number, columns: number, maxScale = 3): BannerPlacement {
  const margin = 1;
  const { lines, scale } = layoutText(text, columns - 2 * margin - 2, maxScale);
  const bmp = renderText(lines, scale);
  const boxWidth = Math.min(columns, bmp.width + 2 * (margin + 1));
  const boxHeight = Math.min(rows, bmp.height + 2 * (margin + 1));
  return { x: 0, y: 0, boxWidth, boxHeight, text: bmp, textX: margin + 1, textY: margin + 1, lines, scale };
}

/** Burn a placed banner into one grayscale frame: box = bg, ink = fg. */
export function burnBannerGray(frame: Uint16Array, rows: number, columns: number, p: BannerPlacement, fg: number, bg: number): void {
  for (let y = p.y; y < p.y + p.boxHeight && y < rows; y++) {
    for (let x = p.x; x < p.x + p.boxWidth && x < columns; x++) frame[y * columns + x] = bg;
  }
  burnMask(p, rows, columns, (i) => {
    frame[i] = fg;
  });
}

/** Burn text ink into an RGB frame (interleaved) without a box, with a 1-px dark shadow for contrast. */
export function burnTextRgb(frame: Uint8Array, rows: number, columns: number, p: BannerPlacement, rgb: [number, number, number]): void {
  // shadow first
  const { text } = p;
  for (let ty = 0; ty < text.height; ty++) {
    for (let tx = 0; tx < text.width; tx++) {
      if (!text.mask[ty * text.width + tx]) continue;
      const x = p.x + p.textX + tx + 1;
      const y = p.y + p.textY + ty + 1;
      if (x < columns && y < rows) frame.set([0, 0, 0], (y * columns + x) * 3);
    }
  }
  burnMask(p, rows, columns, (i) => frame.set(rgb, i * 3));
}

function burnMask(p: BannerPlacement, rows: number, columns: number, put: (pixelIndex: number) => void): void {
  const { text } = p;
  for (let ty = 0; ty < text.height; ty++) {
    for (let tx = 0; tx < text.width; tx++) {
      if (!text.mask[ty * text.width + tx]) continue;
      const x = p.x + p.textX + tx;
      const y = p.y + p.textY + ty;
      if (x < columns && y < rows) put(y * columns + x);
    }
  }
}
