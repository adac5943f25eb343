import type { ClassDef } from '@skysense/data';
import type { Detections } from '@skysense/heads';

/** A 3 × 5 pixel font (rows top to bottom, 1 = ink) for box labels: digits, letters (upper case), `.`, `,`, `/`, `-`, `_`. */
const GLYPHS: Record<string, string> = {
  '0': '111101101101111',
  '1': '010110010010111',
  '2': '111001111100111',
  '3': '111001111001111',
  '4': '101101111001001',
  '5': '111100111001111',
  '6': '111100111101111',
  '7': '111001001001001',
  '8': '111101111101111',
  '9': '111101111001111',
  A: '010101111101101',
  B: '110101110101110',
  C: '011100100100011',
  D: '110101101101110',
  E: '111100110100111',
  F: '111100110100100',
  G: '011100101101011',
  H: '101101111101101',
  I: '111010010010111',
  J: '001001001101010',
  K: '101101110101101',
  L: '100100100100111',
  M: '101111111101101',
  N: '110101101101101',
  O: '010101101101010',
  P: '110101110100100',
  Q: '010101101110011',
  R: '110101110101101',
  S: '011100010001110',
  T: '111010010010010',
  U: '101101101101111',
  V: '101101101101010',
  W: '101101111111101',
  X: '101101010101101',
  Y: '101101010010010',
  Z: '111001010100111',
  '.': '000000000000010',
  ',': '000000000010100',
  '/': '001001010100100',
  '-': '000000111000000',
  _: '000000000000111',
  ' ': '000000000000000',
};
const SCALE = 2;

function put(rgb: Uint8Array, w: number, h: number, x: number, y: number, c: readonly number[]): void {
  if (x >= 0 && y >= 0 && x < w && y < h) rgb.set(c, 3 * (y * w + x));
}

/** Writes `text` (unknown characters as blanks) with its top-left at (x, y), white on a `bg` strip. */
function drawText(rgb: Uint8Array, w: number, h: number, x: number, y: number, text: string, bg: readonly number[]): void {
  const cw = 4 * SCALE;
  for (let yy = -1; yy < 5 * SCALE + 1; yy++) for (let xx = -1; xx < text.length * cw; xx++) put(rgb, w, h, x + xx, y + yy, bg);
  [...text.toUpperCase()].forEach((ch, k) => {
    const g = GLYPHS[ch] ?? GLYPHS[' ']!;
    for (let r = 0; r < 5; r++)
      for (let col = 0; col < 3; col++)
        if (g[r * 3 + col] === '1')
          for (let sy = 0; sy < SCALE; sy++)
            for (let sx = 0; sx < SCALE; sx++) put(rgb, w, h, x + k * cw + col * SCALE + sx, y + r * SCALE + sy, [255, 255, 255]);
  });
}

/**
 * Draws boxes on an RGB image (`w × h × 3` bytes, modified in place): a 2 px outline in the class
 * colour and, above it, the class name and score in a small pixel font.
 */
export function drawBoxes(
  rgb: Uint8Array,
  w: number,
  h: number,
  dets: Omit<Detections, 'scores'> & { scores?: Float32Array },
  classes: readonly ClassDef[],
): Uint8Array {
  for (let i = dets.labels.length - 1; i >= 0; i--) {
    const [x1, y1, x2, y2] = Array.from(dets.boxes.subarray(4 * i, 4 * i + 4), Math.round) as [number, number, number, number];
    const cls = classes[dets.labels[i]!];
    const color = cls?.color ?? [255, 255, 0];
    for (let t = 0; t < 2; t++) {
      for (let x = x1; x <= x2; x++) [put(rgb, w, h, x, y1 + t, color), put(rgb, w, h, x, y2 - t, color)];
      for (let y = y1; y <= y2; y++) [put(rgb, w, h, x1 + t, y, color), put(rgb, w, h, x2 - t, y, color)];
    }
    const label = `${cls?.name ?? dets.labels[i]}${dets.scores ? ` ${dets.scores[i]!.toFixed(2)}` : ''}`;
    drawText(rgb, w, h, x1, Math.max(y1 - 5 * SCALE - 2, 0), label, color);
  }
  return rgb;
}

/** One bar of {@link drawBars}: a label, a value in [0, 1], and whether it is marked (a true label). */
export interface Bar {
  label: string;
  value: number;
  marked: boolean;
}

/**
 * Horizontal bars as an RGB picture: per row the label (first 28 characters, pixel font), a bar of
 * `value` × 200 px (green when marked, grey otherwise; NaN draws no bar and reads n/a), the value, and a
 * line at 0.5 (the decision threshold).
 */
export function drawBars(bars: readonly Bar[]): { rgb: Uint8Array; width: number; height: number } {
  const [rowH, labelW, barW] = [14, 28 * 4 * SCALE + 6, 200];
  const width = labelW + barW + 6 * 4 * SCALE;
  const height = bars.length * rowH + 4;
  const rgb = new Uint8Array(width * height * 3).fill(255);
  bars.forEach((b, i) => {
    const y = 2 + i * rowH;
    drawText(rgb, width, height, 2, y + 2, b.label.slice(0, 28), [60, 60, 60]);
    const len = Number.isNaN(b.value) ? 0 : Math.round(Math.max(0, Math.min(1, b.value)) * barW);
    const color = b.marked ? [46, 160, 67] : [160, 160, 160];
    for (let yy = y + 1; yy < y + rowH - 2; yy++) for (let x = 0; x < len; x++) put(rgb, width, height, labelW + x, yy, color);
    for (let yy = y; yy < y + rowH; yy++) put(rgb, width, height, labelW + barW / 2, yy, [200, 40, 40]);
    drawText(rgb, width, height, labelW + barW + 6, y + 2, Number.isNaN(b.value) ? 'N/A' : b.value.toFixed(2), [60, 60, 60]);
  });
  return { rgb, width, height };
}
