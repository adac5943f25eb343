// Band names shared by the encoders that consume them (@skysense/vit) and the loaders that produce
// them (@skysense/data).

/** Sentinel-2 bands in the order SkySense's S2 encoder expects (10 m and 20 m bands; no B1, B9, B10). */
export const SENTINEL2_BANDS = ['B2', 'B3', 'B4', 'B5', 'B6', 'B7', 'B8', 'B8A', 'B11', 'B12'] as const;

/** Sentinel-1 polarisations in the order SkySense's S1 encoder expects. */
export const SENTINEL1_BANDS = ['VV', 'VH'] as const;

/**
 * Normalisation presets (overridable everywhere they are used):
 * - `hr`: ImageNet statistics on 0–255 RGB, as SkySense's official downstream configs
 *   (mean 123.675, 116.28, 103.53; std 58.395, 57.12, 57.375). For RGB-NIR the NIR channel reuses
 *   the red statistics (no NIR constants are published).
 * - `s2`: BigEarthNet v1 band statistics of L2A reflectance ×10000 (Sumbul et al.; the `BAND_STATS`
 *   of the BigEarthNet reference code), in SkySense's band order B2…B12. SkySense itself publishes
 *   no Sentinel statistics.
 * - `s1`: BigEarthNet v1 Sentinel-1 statistics of backscatter in dB (VV −12.62 ± 5.12,
 *   VH −19.29 ± 5.46), same source.
 */
export const SENSOR_NORMALIZATION: Readonly<Record<'hr' | 'hr-rgbn' | 's2' | 's1', { mean: number[]; std: number[] }>> = {
  hr: { mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] },
  'hr-rgbn': { mean: [123.675, 116.28, 103.53, 123.675], std: [58.395, 57.12, 57.375, 58.395] },
  s2: {
    mean: [
      429.9430203, 614.21682446, 590.23569706, 950.68368468, 1792.46290469, 2075.46795189, 2218.94553375, 2266.46036911, 1594.42694882,
      1009.32729131,
    ],
    std: [
      572.41639287, 582.87945694, 675.88746967, 729.89827633, 1096.01480586, 1273.45393088, 1365.45589904, 1356.13789355, 1079.19066363,
      818.86747235,
    ],
  },
  s1: { mean: [-12.619993741972035, -19.29044597721542], std: [5.115911777546365, 5.464428464912864] },
};
