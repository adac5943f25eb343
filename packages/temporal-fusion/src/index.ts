/**
 * `@skysense/temporal-fusion`: SkySense's multi-modal temporal fusion — up-heads, the calendar
 * position encoding `ctpe`, the fusion transformer (`porj_linear`, cls token) and the wiring that
 * turns HR + Sentinel-2 + Sentinel-1 features into one fused map, with variable-length series.
 * @packageDocumentation
 */
export { UpHead, icnr } from './up-head';
export { FusionTransformer, type FusionTransformerOptions } from './fusion-transformer';
export {
  MultiModalFusion,
  type MultiModalFusionOptions,
  type FusionInputs,
  type ModalitySeries,
  type DateEncoding,
} from './multimodal-fusion';
export { calendarRow, CALENDAR_DAYS } from './dates';
/** Re-exported from `@skysense/core-tensor`, where date parsing now lives (shared with `@skysense/data`). */
export { dayOfYear, type AcquisitionDate } from '@skysense/core-tensor';
