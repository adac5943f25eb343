import { tf } from '@skysense/core-tensor';
import { type ChannelStats, type CropWindow, NORMALIZATION, type PlanarImage, cutWindow } from '@skysense/data';
import type { SkySenseInputs } from '../skysense';
import type { TaskSample } from './tasks';

/** Which images of a sample form each Sentinel series (indices into `images`, in date order). */
export type SeriesLayout = (s: TaskSample) => { s2: number[]; s1: number[] };

/** One window of an image: normalised pixels and the validity of each (1 = data; outside the image = 0). */
function cut(img: PlanarImage, w: CropWindow, stats: ChannelStats): { data: Float32Array; valid: Uint8Array } {
  const v = cutWindow(img, img.valid ?? new Uint8Array(img.width * img.height).fill(1), w, stats);
  return { data: v.image, valid: Uint8Array.from(v.mask, (m) => (m === 1 ? 1 : 0)) };
}

/**
 * SkySense inputs of samples whose images are Sentinel frames: per modality a series `[B, T, bands, n, n]`
 * of each sample's window (the same window for all its frames), padded to the longest series with
 * frames marked not valid (`valid`, dates `null`, pixels 0), each frame's pixel validity (nodata is
 * masked by the fusion, never read as numbers), dates, and lat/lon when every sample has them.
 */
export function sentinelInputs(samples: readonly TaskSample[], windows: readonly CropWindow[], layout: SeriesLayout): SkySenseInputs {
  const n = windows[0]!.size;
  const series = (key: 's2' | 's1', stats: ChannelStats) => {
    const picks = samples.map((s) => layout(s)[key]);
    const t = Math.max(...picks.map((p) => p.length));
    if (t === 0) return undefined;
    const c = stats.mean.length;
    const frames = new Float32Array(samples.length * t * c * n * n);
    const pixelValid = new Float32Array(samples.length * t * n * n);
    samples.forEach((s, i) =>
      picks[i]!.forEach((k, f) => {
        const x = cut(s.images[k]!, windows[i]!, stats);
        frames.set(x.data, (i * t + f) * c * n * n);
        pixelValid.set(x.valid, (i * t + f) * n * n);
      }),
    );
    return {
      frames: tf.tensor5d(frames, [samples.length, t, c, n, n]),
      dates: samples.map((s, i) => Array.from({ length: t }, (_, f) => (f < picks[i]!.length ? s.dates![picks[i]![f]!]! : null))),
      valid: picks.map((p) => Array.from({ length: t }, (_, f) => f < p.length)),
      pixelValid: tf.tensor4d(pixelValid, [samples.length, t, n, n]),
    };
  };
  const geo = samples.every((s) => s.lat !== undefined && s.lon !== undefined);
  const s2 = series('s2', NORMALIZATION.s2);
  const s1 = series('s1', NORMALIZATION.s1);
  return {
    ...(s2 ? { s2 } : {}),
    ...(s1 ? { s1 } : {}),
    ...(geo ? { lat: samples.map((s) => s.lat!), lon: samples.map((s) => s.lon!) } : {}),
  };
}

/** The whole (square) image as one window. */
export const wholeWindow = (img: PlanarImage): CropWindow => ({
  scale: 1,
  y0: 0,
  x0: 0,
  size: Math.max(img.width, img.height),
  flip: false,
});
