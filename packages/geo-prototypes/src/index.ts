/**
 * `@skysense/geo-prototypes`: SkySense's geo-context prototypes — region lookup from latitude and
 * longitude, the prototype bank, the attention of Eq. 3, and the Sinkhorn + EMA learning of
 * Eq. 11–13 (no gradients), with PNG prototype maps.
 * @packageDocumentation
 */
export { PrototypeBank, type PrototypeBankOptions, type PrototypeUpdateOptions } from './prototype-bank';
export { regionIndex, regionBounds, DEFAULT_REGION_GRID, type RegionGrid } from './regions';
