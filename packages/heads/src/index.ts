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
export { crossEntropyLoss, binaryCrossEntropyLoss, sigmoidCrossEntropy, type CrossEntropyOptions } from './losses';
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
export { FPN, type FPNOptions } from './fpn';
export {
  RPNHead,
  FASTER_RCNN_ANCHORS,
  keepByNms,
  type RPNHeadOptions,
  type ProposalOptions,
  type RPNOutputs,
  type RPNLosses,
  type RPNLossOptions,
} from './rpn-head';
export {
  SingleRoIExtractor,
  Shared2FCBBoxHead,
  StandardRoIHead,
  bbox2roi,
  type SingleRoIExtractorOptions,
  type BBoxHeadOptions,
  type BBoxOutputs,
  type RCNNTestOptions,
  type RCNNLossOptions,
  type RCNNLosses,
} from './roi-head';
export {
  MaxIoUAssigner,
  RandomSampler,
  withGtAsProposals,
  type AssignResult,
  type MaxIoUAssignerOptions,
  type RandomSamplerOptions,
  type BoxSampler,
  type SampledBoxes,
  type SampleContext,
} from './detection-targets';
export { FasterRCNN, type FasterRCNNOptions, type FasterRCNNLosses, type DetectionLossOptions } from './faster-rcnn';
export { flattenLevels, checkGt, type DetImageMeta, type GtBoxes, type ScoredBoxes, type Detections } from './detection-common';
export { detectionFixtureModel, runDetectionFixture, detectionFixtureTolerance, type DetectionFixtureConfig } from './detection-fixture';
