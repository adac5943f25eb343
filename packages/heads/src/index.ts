/**
 * `@skysense/heads`: the downstream heads SkySense is evaluated with, with mmseg / mmcls key names
 * so their checkpoints load as is — {@link UPerHead}, {@link FCNHead}, {@link LinearClsHead}
 * (single- and multi-label), {@link ChangeDetectionHead}, the ViT {@link MultiLevelNeck} — plus the
 * task losses and metrics.
 * @packageDocumentation
 */
export { BaseDecodeHead, resizeTo, decodeHeadOptionsFromConfig, type DecodeHeadOptions } from './decode-head';
export { UPerHead, type UPerHeadOptions } from './uper-head';
export { FCNHead, type FCNHeadOptions } from './fcn-head';
export { LinearClsHead, type LinearClsHeadOptions } from './cls-head';
export { ChangeDetectionHead, type ChangeDetectionHeadOptions, type BitemporalFusion } from './change-head';
export { MultiLevelNeck, type MultiLevelNeckOptions } from './neck';
export { crossEntropyLoss, binaryCrossEntropyLoss, type CrossEntropyOptions } from './losses';
export { ConfusionMatrix, averagePrecision, meanAveragePrecision, type SegmentationScores, type ChangeScores } from './metrics';
export {
  evalMap,
  type EvalMapOptions,
  type MapResult,
  type ClassAP,
  type GroundTruth,
  type ImageDetections,
  type Box,
} from './detection-metrics';
