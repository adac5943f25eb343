import { deflateSync } from 'node:zlib';
import { SkySenseError } from './errors';
import { writeFileAtomic } from './atomic-file';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/**
 * Encodes an 8-bit RGB image (`width × height × 3` bytes, row-major) as PNG.
 * @throws SkySenseError `E_ARG` if the buffer size does not match.
 */
export function encodePng(rgb: Uint8Array, width: number, height: number): Uint8Array {
  if (!(width > 0 && height > 0) || rgb.length !== width * height * 3) {
    throw new SkySenseError('E_ARG', `encodePng: expected ${width}×${height}×3 = ${width * height * 3} bytes, got ${rgb.length}`);
  }
  const raw = new Uint8Array(height * (1 + width * 3));
  for (let y = 0; y < height; y++) raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (1 + width * 3) + 1);
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const parts = [Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Writes an RGB image as a PNG file, atomically. */
export function writePng(path: string, rgb: Uint8Array, width: number, height: number): void {
  writeFileAtomic(path, encodePng(rgb, width, height));
}

/** `n` well-separated colours (golden-ratio hues), as RGB triples, for label maps. */
export function categoricalColors(n: number): [number, number, number][] {
  return Array.from({ length: n }, (_, i) => {
    const h = (i * 0.618033988749895) % 1;
    const s = 0.65 + 0.3 * ((i >> 1) % 2);
    const v = 0.95 - 0.25 * (i % 2);
    const f = (k: number) => {
      const x = (k + h * 6) % 6;
      return Math.round(255 * (v - v * s * Math.max(0, Math.min(x, 4 - x, 1))));
    };
    return [f(5), f(3), f(1)];
  });
}
