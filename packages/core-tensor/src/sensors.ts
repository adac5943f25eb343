// Band names shared by the encoders that consume them (@skysense/vit) and the loaders that produce
// them (@skysense/data).

/** Sentinel-2 bands in the order SkySense's S2 encoder expects (10 m and 20 m bands; no B1, B9, B10). */
export const SENTINEL2_BANDS = ['B2', 'B3', 'B4', 'B5', 'B6', 'B7', 'B8', 'B8A', 'B11', 'B12'] as const;

/** Sentinel-1 polarisations in the order SkySense's S1 encoder expects. */
export const SENTINEL1_BANDS = ['VV', 'VH'] as const;
