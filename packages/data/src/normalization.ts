import { SENSOR_NORMALIZATION, SkySenseError } from '@skysense/core-tensor';

/** Per-channel mean and standard deviation, in the units of the loaded data. */
export interface ChannelStats {
  mean: number[];
  std: number[];
}

/**
 * Normalisation presets (overridable everywhere they are used), kept with the band lists in
 * `@skysense/core-tensor` ({@link @skysense/core-tensor!SENSOR_NORMALIZATION}, described there) so that the encoders'
 * pretrained configs carry them too.
 */
export const NORMALIZATION: Readonly<Record<'hr' | 'hr-rgbn' | 's2' | 's1', ChannelStats>> = SENSOR_NORMALIZATION;

/**
 * `(x − mean) / std` per channel of `[C, H·W]` data, in place; returns it.
 * @throws SkySenseError `E_BANDS` for a channel count that differs, `E_ARG` for a mean that is not
 * finite or a std that is not finite and > 0 (which would turn the data into NaN/Inf).
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { NORMALIZATION, normalizeChannels } from '@skysense/data';
 * await initBackend();
 * // (x − mean) / std per band, with the statistics of a sensor
 * const bands = Array.from({ length: 10 }, () => new Float32Array([1000, 2000]));
 * const normalised = normalizeChannels(bands, NORMALIZATION.s2, 'my S2 frame');
 * console.log(normalised[0]);
 * ```
 */
export function normalizeChannels(data: Float32Array[], stats: ChannelStats, what: string): Float32Array[] {
  if (stats.mean.length !== data.length || stats.std.length !== data.length) {
    throw new SkySenseError('E_BANDS', `${what}: normalisation has ${stats.mean.length} channels, the data ${data.length}`);
  }
  stats.mean.forEach((m, c) => {
    if (!Number.isFinite(m)) throw new SkySenseError('E_ARG', `${what}: normalisation mean[${c}]: expected a finite number, got ${m}`);
  });
  stats.std.forEach((v, c) => {
    if (!(Number.isFinite(v) && v > 0))
      throw new SkySenseError('E_ARG', `${what}: normalisation std[${c}]: expected a finite number > 0, got ${v}`);
  });
  data.forEach((band, c) => {
    const m = stats.mean[c]!;
    const s = stats.std[c]!;
    for (let i = 0; i < band.length; i++) band[i] = (band[i]! - m) / s;
  });
  return data;
}
