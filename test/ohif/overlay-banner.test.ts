/**
 * The overlay SC banner on a narrow image (found viewing the Siemens XA30 72x72 DWI overlay in OHIF:
 * "AI-GENERATED" was cut into "AI-GENERATE" / "D", one word a line, covering half the image).
 * Long words break after a hyphen before they are cut, and words share lines when they fit.
 */
import { ADVANCE_X, layoutText, placeBanner } from '../../src/results/sc/font';

describe('overlay banner layout on narrow images', () => {
  test('a 72-column image: no word cut, words packed, every line fits', () => {
    const width = 72 - 4; // placeBanner's margins
    const { lines, scale } = layoutText('AI-GENERATED - LESION 12.2 mL', width);
    expect(scale).toBe(1);
    expect(lines).toEqual(['AI-', 'GENERATED -', 'LESION 12.2', 'mL']);
    for (const l of lines) expect(l.length * ADVANCE_X - 1).toBeLessThanOrEqual(width);
    const p = placeBanner('AI-GENERATED - LESION 12.2 mL', 72, 72, 2);
    expect(p.lines).toHaveLength(4); // was 6: one word a line, "AI-GENERATE" / "D"
  });

  test('a word with no hyphen wider than a line is still cut, and the text is kept whole', () => {
    const { lines } = layoutText('ABCDEFGHIJKLMNOPQRSTUVWXYZ', 30);
    expect(lines.join('')).toBe('ABCDEFGHIJKLMNOPQRSTUVWXYZ');
    for (const l of lines) expect(l.length * ADVANCE_X - 1).toBeLessThanOrEqual(30);
  });

  test('wide images keep the one- or two-line banner', () => {
    expect(layoutText('AI-GENERATED - NOT ACQUIRED', 124)).toEqual({ lines: ['AI-GENERATED -', 'NOT ACQUIRED'], scale: 1 });
    expect(layoutText('AI-GENERATED - NOT ACQUIRED', 508)).toEqual({ lines: ['AI-GENERATED - NOT ACQUIRED'], scale: 3 });
  });
});
