import { SkySenseError, tf } from '@skysense/core-tensor';
import { type ChannelStats, type CropWindow, FUSION_GRID_RATIO, NORMALIZATION, type PlanarImage, cutWindow } from '@skysense/data';
import type { SkySenseInputs } from '../skysense';
import type { Classifier } from './classifier';
import { inputTensors, type TaskSample } from './tasks';

/** Which images of a sample form each Sentinel series (indices into `images`, in date order). */
export type SeriesLayout = (s: TaskSample) => { s2: number[]; s1: number[] };

/** The series as each sample's `sources` name them (every image Sentinel-2 where it names none). */
export const bySource: SeriesLayout = (s) => {
  const k = s.images.map((_, i) => i);
  return { s2: k.filter((i) => s.sources?.[i] !== 's1'), s1: k.filter((i) => s.sources?.[i] === 's1') };
};

/** One window of an image: normalised pixels and the validity of each (1 = data; outside the image = 0). */
function cut(img: PlanarImage, w: CropWindow, stats: ChannelStats): { data: Float32Array; valid: Uint8Array } {
  const v = cutWindow(img, img.valid ?? new Uint8Array(img.width * img.height).fill(1), w, stats);
  return { data: v.image, valid: Uint8Array.from(v.mask, (m) => (m === 1 ? 1 : 0)) };
}

/**
 * SkySense inputs of samples whose images are Sentinel frames (and, where every sample has one, its
 * HR image on the fusion grid, cut by the window scaled ×32): per modality a series `[B, T, bands, n, n]`
 * of each sample's window (the same window for all its frames), padded to the longest series with
 * frames marked not valid (`valid`, dates `null`, pixels 0), each frame's pixel validity (nodata is
 * masked by the fusion, never read as numbers), dates, and lat/lon when every sample has them.
 */
export function sentinelInputs(samples: readonly TaskSample[], windows: readonly CropWindow[], layout: SeriesLayout): SkySenseInputs {
  // every array is filled (and every check passed) before the first tensor is made: nothing leaks on an error
  const s2 = seriesArrays(samples, windows, layout, 's2', NORMALIZATION.s2);
  const s1 = seriesArrays(samples, windows, layout, 's1', NORMALIZATION.s1);
  const hr = hrArrays(samples, windows);
  const geo = samples.every((s) => s.lat !== undefined && s.lon !== undefined);
  const n = windows[0]!.size;
  const series = (x: SeriesArrays) => ({
    frames: tf.tensor5d(x.frames, [samples.length, x.t, x.c, n, n]),
    dates: x.dates,
    valid: x.valid,
    pixelValid: tf.tensor4d(x.pixelValid, [samples.length, x.t, n, n]),
  });
  return {
    ...(hr
      ? { hr: tf.tensor4d(hr.data, [samples.length, hr.c, hr.n, hr.n]), hrValid: tf.tensor3d(hr.valid, [samples.length, hr.n, hr.n]) }
      : {}),
    ...(s2 ? { s2: series(s2) } : {}),
    ...(s1 ? { s1: series(s1) } : {}),
    ...(geo ? { lat: samples.map((s) => s.lat!), lon: samples.map((s) => s.lon!) } : {}),
  };
}

interface SeriesArrays {
  t: number;
  c: number;
  frames: Float32Array;
  pixelValid: Float32Array;
  dates: (string | null)[][];
  valid: boolean[][];
}

/** One modality's series of every sample, padded to the longest, as arrays (null when no sample has that modality). */
function seriesArrays(
  samples: readonly TaskSample[],
  windows: readonly CropWindow[],
  layout: SeriesLayout,
  key: 's2' | 's1',
  stats: ChannelStats,
): SeriesArrays | null {
  const n = windows[0]!.size;
  const picks = samples.map((s) => layout(s)[key]);
  const t = Math.max(...picks.map((p) => p.length));
  if (t === 0) return null;
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
  const dates = samples.map((s, i) =>
    Array.from({ length: t }, (_, f) => {
      if (f >= picks[i]!.length) return null;
      const d = s.dates?.[picks[i]![f]!];
      if (!d)
        throw new SkySenseError('E_DATE', `${s.name}: no acquisition date for its ${key} frame ${f} (the calendar encoding needs one)`);
      return d;
    }),
  );
  return { t, c, frames, pixelValid, dates, valid: picks.map((p) => Array.from({ length: t }, (_, f) => f < p.length)) };
}

/** The co-registered HR images of samples (when every one has one) as arrays, cut by the windows scaled to the fusion grid. */
function hrArrays(
  samples: readonly TaskSample[],
  windows: readonly CropWindow[],
): { c: number; n: number; data: Float32Array; valid: Float32Array } | null {
  if (!samples.every((s) => s.hr)) return null;
  const c = samples[0]!.hr!.channels;
  const odd = samples.find((s) => s.hr!.channels !== c);
  if (odd)
    throw new SkySenseError(
      'E_BANDS',
      `${odd.name}: its HR image has ${odd.hr!.channels} bands, ${samples[0]!.name}'s ${c} (one batch, one HR encoder)`,
    );
  const n = windows[0]!.size * FUSION_GRID_RATIO;
  const stats = c === 4 ? NORMALIZATION['hr-rgbn'] : NORMALIZATION.hr;
  const data = new Float32Array(samples.length * c * n * n);
  const valid = new Float32Array(samples.length * n * n);
  samples.forEach((s, i) => {
    const w = windows[i]!;
    const x = cut(s.hr!, { ...w, y0: w.y0 * FUSION_GRID_RATIO, x0: w.x0 * FUSION_GRID_RATIO, size: n }, stats);
    data.set(x.data, i * c * n * n);
    valid.set(x.valid, i * n * n);
  });
  return { c, n, data, valid };
}

/** Runs `run` on a whole sample's inputs through {@link sentinelInputs} (one window covering it), freeing the inputs after. */
export function onWholeSample<T>(s: TaskSample, layout: SeriesLayout, run: (inputs: SkySenseInputs, window: CropWindow) => T): T {
  const window = wholeWindow(s.images[0]!);
  const inputs = sentinelInputs([s], [window], layout);
  try {
    return run(inputs, window);
  } finally {
    tf.dispose(inputTensors(inputs));
  }
}

/** Class probabilities of one whole sample from a classifier on SkySense inputs. */
export function sampleScores(model: Classifier<SkySenseInputs>, s: TaskSample, layout: SeriesLayout): number[] {
  return onWholeSample(s, layout, (inputs) => {
    const p = model.predict(inputs);
    const out = [...p.dataSync()];
    p.dispose();
    return out;
  });
}

/** The whole (square) image as one window. */
export const wholeWindow = (img: PlanarImage): CropWindow => ({
  scale: 1,
  y0: 0,
  x0: 0,
  size: Math.max(img.width, img.height),
  flip: false,
});
