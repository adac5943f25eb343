import { SkySenseError, assertInt } from '@skysense/core-tensor';

/** An equirectangular grid of regions over the globe. */
export interface RegionGrid {
  /** Latitude bands, north to south. Default 64. */
  rows: number;
  /** Longitude bands, from −180° eastwards. Default 64. */
  cols: number;
}

/** SkySense's default: 64 × 64 = 4096 regions (architecture guide §4, a documented choice: the paper gives no rule). */
export const DEFAULT_REGION_GRID: Readonly<RegionGrid> = { rows: 64, cols: 64 };

/**
 * The region of a location: `row = clamp(⌊(90 − lat) / 180 · rows⌋)`, `col = ⌊(lon + 180) / 360 ·
 * cols⌋ mod cols`, index `row · cols + col`. Latitude must lie in [−90, 90] (the poles fall in the
 * first / last band); longitude must lie in [−180, 360] (both the ±180° and the 0–360° conventions)
 * and is wrapped (180° and −180° are the same meridian). Anything else — a projected coordinate,
 * swapped lat/lon — is refused rather than wrapped into a wrong region.
 * @throws SkySenseError `E_LATLON` for a latitude outside [−90, 90], a longitude outside [−180, 360] or a non-finite coordinate.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { regionIndex } from '@skysense/geo-prototypes';
 * await initBackend();
 * // the geo-context region of a location on the default 64 × 64 lat/lon grid
 * console.log(regionIndex(43.6, 1.44), regionIndex(-33.9, 151.2)); // Toulouse, Sydney
 * ```
 */
export function regionIndex(lat: number, lon: number, grid: RegionGrid = DEFAULT_REGION_GRID): number {
  assertInt('grid.rows', grid.rows, 1);
  assertInt('grid.cols', grid.cols, 1);
  if (typeof lat !== 'number' || !Number.isFinite(lat) || lat < -90 || lat > 90)
    throw new SkySenseError('E_LATLON', `lat: expected a latitude in [-90, 90], got ${String(lat)}`);
  if (typeof lon !== 'number' || !Number.isFinite(lon) || lon < -180 || lon > 360)
    throw new SkySenseError('E_LATLON', `lon: expected a longitude in [-180, 360], got ${String(lon)}`);
  const wrapped = ((((lon + 180) % 360) + 360) % 360) - 180;
  const row = Math.min(grid.rows - 1, Math.max(0, Math.floor(((90 - lat) / 180) * grid.rows)));
  const col = Math.floor(((wrapped + 180) / 360) * grid.cols) % grid.cols;
  return row * grid.cols + col;
}

/** The latitude/longitude box of a region: `[south, north]`, `[west, east]` in degrees. */
export function regionBounds(index: number, grid: RegionGrid = DEFAULT_REGION_GRID): { lat: [number, number]; lon: [number, number] } {
  assertInt('index', index, 0, grid.rows * grid.cols - 1);
  const row = Math.floor(index / grid.cols);
  const col = index % grid.cols;
  const dLat = 180 / grid.rows;
  const dLon = 360 / grid.cols;
  return { lat: [90 - (row + 1) * dLat, 90 - row * dLat], lon: [-180 + col * dLon, -180 + (col + 1) * dLon] };
}
