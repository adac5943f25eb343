import { deflateSync, inflateSync } from 'node:zlib';
import { SkySenseError } from './errors';
import { writeFileAtomic } from './atomic-file';
import { checkDecodeBudget } from './limits';
import { crc32 } from './crc32';

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
  const parts = [
    Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A decoded 8-bit image: `height × width × channels` bytes, row-major, channels interleaved. */
export interface DecodedImage {
  width: number;
  height: number;
  /** 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA); palette images decode to RGB(A). */
  channels: number;
  data: Uint8Array;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/**
 * Decodes a non-interlaced 8-bit PNG (grey, grey+alpha, RGB, RGBA or palette), checking every
 * chunk's CRC — enough for masks and image tiles.
 * @param name used in error messages (e.g. the file path).
 * @throws SkySenseError `E_FORMAT` for a corrupt or truncated file, `E_UNSUPPORTED` for 16-bit,
 * sub-byte or interlaced images.
 */
export function decodePng(bytes: Uint8Array, name = 'PNG'): DecodedImage {
  const fail = (why: string): never => {
    throw new SkySenseError('E_FORMAT', `${name}: not a valid PNG (${why})`);
  };
  if (bytes.length < 8 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) fail('no PNG signature');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0,
    height = 0,
    colorType = -1,
    palette: Uint8Array | null = null,
    alpha: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  for (let o = 8; ;) {
    if (o + 12 > bytes.length) fail('truncated before IEND');
    const len = dv.getUint32(o);
    if (o + 12 + len > bytes.length) fail(`chunk at byte ${o} runs past the end`);
    const type = String.fromCharCode(...bytes.subarray(o + 4, o + 8));
    if (crc32(bytes.subarray(o + 4, o + 8 + len)) !== dv.getUint32(o + 8 + len)) fail(`CRC mismatch in ${type}`);
    const data = bytes.subarray(o + 8, o + 8 + len);
    o += 12 + len;
    if (type === 'IHDR') {
      if (len !== 13) fail(`IHDR has ${len} bytes, 13 expected`);
      const ihdr = new DataView(data.buffer, data.byteOffset, 13);
      width = ihdr.getUint32(0);
      height = ihdr.getUint32(4);
      const [depth, ct, , , interlace] = data.subarray(8, 13);
      if (depth !== 8) throw new SkySenseError('E_UNSUPPORTED', `${name}: expected an 8-bit PNG, got bit depth ${depth}`);
      if (interlace) throw new SkySenseError('E_UNSUPPORTED', `${name}: interlaced PNGs are not supported`);
      if (!(ct! in PNG_CHANNELS)) fail(`colour type ${ct}`);
      colorType = ct!;
    } else if (type === 'PLTE') palette = data.slice();
    else if (type === 'tRNS') alpha = data.slice();
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
  }
  if (!(width > 0 && height > 0) || colorType < 0) fail('no IHDR');
  const bpp = PNG_CHANNELS[colorType]!;
  const stride = width * bpp;
  checkDecodeBudget(name, 2 * height * (stride + 1), `${width} × ${height} px × ${bpp} channel(s), filtered and unfiltered`);
  let raw: Uint8Array;
  try {
    // the size the header promises bounds the inflation (a small file cannot expand without limit)
    raw = inflateSync(Buffer.concat(idat), { maxOutputLength: height * (stride + 1) + 1 });
  } catch {
    return fail(`image data does not inflate to the ${width}×${height} the header states`);
  }
  if (raw.length < height * (stride + 1)) fail(`image data holds ${raw.length} bytes, ${height * (stride + 1)} needed`);
  const px = unfilter(raw, width, height, bpp, fail);
  if (colorType !== 3) return { width, height, channels: bpp, data: px };
  if (!palette) return fail('palette image without PLTE');
  const channels = alpha ? 4 : 3;
  const out = new Uint8Array(width * height * channels);
  for (let i = 0; i < width * height; i++) {
    const k = px[i]!;
    if (3 * k + 2 >= palette.length) fail(`palette index ${k} out of range`);
    out.set(palette.subarray(3 * k, 3 * k + 3), i * channels);
    if (alpha) out[i * channels + 3] = k < alpha.length ? alpha[k]! : 255;
  }
  return { width, height, channels, data: out };
}

/** Undoes the per-row PNG filters (None, Sub, Up, Average, Paeth). */
function unfilter(raw: Uint8Array, width: number, height: number, bpp: number, fail: (why: string) => never): Uint8Array {
  const stride = width * bpp;
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = out.subarray(y * stride, (y + 1) * stride);
    const up = y > 0 ? out.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? row[i - bpp]! : 0;
      const b = up[i]!;
      const c = i >= bpp ? up[i - bpp]! : 0;
      let pred: number;
      if (filter === 0) pred = 0;
      else if (filter === 1) pred = a;
      else if (filter === 2) pred = b;
      else if (filter === 3) pred = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c,
          pa = Math.abs(p - a),
          pb = Math.abs(p - b),
          pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else return fail(`row ${y} has filter type ${filter}`);
      row[i] = (src[i]! + pred) & 0xff;
    }
  }
  return out;
}

/**
 * Writes an RGB image as a PNG file, atomically.
 * @example
 * ```ts
 * import { initBackend, writePng } from '@skysense/core-tensor';
 * await initBackend();
 * const [w, h] = [64, 32];
 * const rgb = new Uint8Array(w * h * 3).map((_, i) => (i % 3 === 0 ? (i / 3) % w * 4 : 80)); // a red ramp
 * writePng('ramp.png', rgb, w, h); // atomic
 * ```
 */
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

/** Colour of nodata in pictures (magenta / black stripes); locations with partial data get white hatching. */
export const NODATA_RGB: readonly [number, number, number] = [255, 0, 255];

/**
 * Marks nodata on an enlarged picture (`w·factor × h·factor`, RGB, in place): locations whose
 * `coverage` (`[h·w]`, fraction of inputs with data) is 0 get magenta/black stripes, those with
 * partial coverage a white diagonal hatch, so the masked area is visible.
 */
export function markNodata(rgb: Uint8Array, coverage: ArrayLike<number>, w: number, h: number, factor: number): Uint8Array {
  const W = w * factor;
  for (let y = 0; y < h * factor; y++) {
    for (let x = 0; x < W; x++) {
      const c = coverage[Math.floor(y / factor) * w + Math.floor(x / factor)]!;
      if (c >= 1) continue;
      const o = (y * W + x) * 3;
      if (c <= 0) rgb.set((x + y) % 8 < 4 ? NODATA_RGB : [0, 0, 0], o);
      else if ((x - y + 8 * W) % 4 === 0) rgb.set([255, 255, 255], o);
    }
  }
  return rgb;
}
