import { type Generator, SkySenseError, assertInt, tf, type Tensor } from '@skysense/core-tensor';
import { type ChannelStats, normalizeChannels } from './normalization';
import { IGNORE_INDEX, type PlanarImage } from './images';

/** Training-time augmentation of segmentation crops (mmseg's RandomResize → RandomCrop → RandomFlip → Normalize → Pad). */
export interface SegAugmentOptions {
  /** Side of the square training crop, in pixels. */
  crop: number;
  /** Random rescale factor range of the whole image before cropping. Default [0.5, 2] (mmseg's ratio_range). */
  scaleRange?: [number, number];
  /** Horizontal flip probability. Default 0.5. */
  flip?: number;
}

/** One view of an image at `scale`, cut at `(y0, x0)` to `size`, optionally flipped: bilinear image (align_corners false), nearest mask; outside the image → 0 / ignore. */
export interface CropWindow {
  scale: number;
  y0: number;
  x0: number;
  size: number;
  flip: boolean;
}

/**
 * Samples one crop window (planar normalised image `C × size × size` and its mask).
 * Pixels beyond the rescaled image are padding: 0 after normalisation and label 255, as mmseg pads.
 */
export function cutWindow(
  image: PlanarImage,
  mask: Uint8Array,
  w: CropWindow,
  stats: ChannelStats,
): { image: Float32Array; mask: Uint8Array } {
  const { width: W, height: H, channels: C } = image;
  if (stats.mean.length !== C)
    throw new SkySenseError('E_BANDS', `normalisation: ${stats.mean.length} channel statistics for an image of ${C} channels`);
  if (mask.length !== W * H)
    throw new SkySenseError('E_SHAPE', `cutWindow mask: expected ${W}×${H} = ${W * H} labels (the image's size), got ${mask.length}`);
  const sh = Math.round(H * w.scale),
    sw = Math.round(W * w.scale);
  const n = w.size;
  const out = new Float32Array(C * n * n);
  const labels = cutMask(mask, W, H, w);
  for (let y = 0; y < n; y++) {
    const ty = w.y0 + y;
    if (ty >= sh) continue;
    const fy = Math.min(Math.max((ty + 0.5) * (H / sh) - 0.5, 0), H - 1);
    const y0 = Math.floor(fy),
      y1 = Math.min(y0 + 1, H - 1),
      ly = fy - y0;
    for (let x = 0; x < n; x++) {
      const tx = w.x0 + x;
      if (tx >= sw) continue;
      const fx = Math.min(Math.max((tx + 0.5) * (W / sw) - 0.5, 0), W - 1);
      const x0 = Math.floor(fx),
        x1 = Math.min(x0 + 1, W - 1),
        lx = fx - x0;
      const ox = w.flip ? n - 1 - x : x;
      for (let c = 0; c < C; c++) {
        const p = image.data.subarray(c * H * W, (c + 1) * H * W);
        const v = (1 - ly) * ((1 - lx) * p[y0 * W + x0]! + lx * p[y0 * W + x1]!) + ly * ((1 - lx) * p[y1 * W + x0]! + lx * p[y1 * W + x1]!);
        out[c * n * n + y * n + ox] = (v - stats.mean[c]!) / stats.std[c]!;
      }
    }
  }
  return { image: out, mask: labels };
}

/**
 * The labels of a crop window (nearest, as {@link cutWindow} cuts them): `mask` is `width × height`;
 * pixels beyond the rescaled image are {@link IGNORE_INDEX}.
 */
export function cutMask(mask: Uint8Array, width: number, height: number, w: CropWindow): Uint8Array {
  if (mask.length !== width * height)
    throw new SkySenseError('E_SHAPE', `cutMask mask: expected ${width}×${height} = ${width * height} labels, got ${mask.length}`);
  const sh = Math.round(height * w.scale),
    sw = Math.round(width * w.scale);
  const n = w.size;
  const labels = new Uint8Array(n * n).fill(IGNORE_INDEX);
  for (let y = 0; y < n && w.y0 + y < sh; y++) {
    const my = Math.min(Math.floor((w.y0 + y) * (height / sh)), height - 1);
    for (let x = 0; x < n && w.x0 + x < sw; x++)
      labels[y * n + (w.flip ? n - 1 - x : x)] = mask[my * width + Math.min(Math.floor((w.x0 + x) * (width / sw)), width - 1)]!;
  }
  return labels;
}

/**
 * Boxes (flat x1, y1, x2, y2 in image pixels) as they land in a crop window: rescaled, shifted,
 * clipped to the window, mirrored with the flip. Boxes left narrower or lower than `minSize` px are
 * dropped (mmdet's `RandomCrop` drops those cut away). Returns the kept boxes and their indices.
 */
export function windowBoxes(
  boxes: Float32Array,
  image: { width: number; height: number },
  w: CropWindow,
  minSize = 1,
): { boxes: Float32Array; kept: number[] } {
  const sx = Math.round(image.width * w.scale) / image.width;
  const sy = Math.round(image.height * w.scale) / image.height;
  const n = w.size;
  const out: number[] = [];
  const kept: number[] = [];
  for (let i = 0; i < boxes.length / 4; i++) {
    const c = (v: number) => Math.min(Math.max(v, 0), n);
    let x1 = c(boxes[4 * i]! * sx - w.x0);
    let x2 = c(boxes[4 * i + 2]! * sx - w.x0);
    const y1 = c(boxes[4 * i + 1]! * sy - w.y0);
    const y2 = c(boxes[4 * i + 3]! * sy - w.y0);
    if (x2 - x1 < minSize || y2 - y1 < minSize) continue;
    if (w.flip) [x1, x2] = [n - x2, n - x1];
    out.push(x1, y1, x2, y2);
    kept.push(i);
  }
  return { boxes: Float32Array.from(out), kept };
}

/** A random window: scale in the range, a crop position inside the rescaled image (or at 0 where it is smaller), a coin for the flip. */
export function randomWindow(image: PlanarImage, o: SegAugmentOptions, g: Generator): CropWindow {
  const size = assertInt('crop', o.crop, 1);
  const [lo, hi] = o.scaleRange ?? [0.5, 2];
  const scale = g.uniform(lo, hi);
  const sh = Math.round(image.height * scale),
    sw = Math.round(image.width * scale);
  return {
    scale,
    size,
    y0: g.randint(Math.max(sh - size, 0) + 1),
    x0: g.randint(Math.max(sw - size, 0) + 1),
    flip: g.random() < (o.flip ?? 0.5),
  };
}

/** The whole image normalised, as `[1, C, H, W]`. */
export function normalizedImage(image: PlanarImage, stats: ChannelStats): Tensor {
  const hw = image.width * image.height;
  const channels = normalizeChannels(
    Array.from({ length: image.channels }, (_, c) => image.data.slice(c * hw, (c + 1) * hw)),
    stats,
    'image',
  );
  const out = new Float32Array(image.data.length);
  channels.forEach((ch, c) => out.set(ch, c * hw));
  return tf.tensor4d(out, [1, image.channels, image.height, image.width]);
}
