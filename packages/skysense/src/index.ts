/**
 * `@skysense/skysense`: the umbrella package — the assembled SkySense model (`SkySense`, presets
 * `skysense-2b` and `skysense-tiny`), pre-training, fine-tuning (`Segmentor`, `Classifier`,
 * `ChangeDetector`, `Finetuner`), data loading, the `skysense` command, and
 * the model packages re-exported as namespaces.
 * @packageDocumentation
 */
export {
  SkySense,
  SkySenseEncoder,
  formatBreakdown,
  type SkySenseInputs,
  type SkySenseOutputs,
  type SentinelSeries,
  type BreakdownRow,
  type ReleasedFiles,
} from './skysense';
export { SKYSENSE_PRESETS, type SkySenseConfig, type SkySensePresetName } from './presets';
export { createCli, runCli, reportCliError, EXIT } from './cli';
export {
  embedSample,
  runEmbed,
  runDemo,
  sampleInputs,
  disposeSample,
  describeNodata,
  bigEarthNetPairs,
  generatedScene,
  type EmbedSummary,
  type RunEmbedOptions,
  type DemoOptions,
} from './embed';
export {
  MODEL_REGISTRY,
  MODEL_PRESETS,
  createModel,
  listModels,
  modelInfo,
  PRETRAINED,
  fromPretrained,
  pretrainedPaths,
  type ModelInfo,
  type ModelEntry,
  type CreateModelOptions,
} from './registry';
export { pcaRgb, bandsRgb, enlarge } from './render';
/** `@skysense/core-tensor` as a namespace (documented in its own package). @hidden */
export * as core from '@skysense/core-tensor';
/** `@skysense/swin` as a namespace (documented in its own package). @hidden */
export * as swin from '@skysense/swin';
/** `@skysense/vit` as a namespace (documented in its own package). @hidden */
export * as vit from '@skysense/vit';
/** `@skysense/temporal-fusion` as a namespace (documented in its own package). @hidden */
export * as temporalFusion from '@skysense/temporal-fusion';
/** `@skysense/geo-prototypes` as a namespace (documented in its own package). @hidden */
export * as geoPrototypes from '@skysense/geo-prototypes';
export { Pretrainer, type PretrainOptions, type PretrainTerms, type PretrainBatch, type StepMetrics } from './pretrain';
export { runPretrain, type RunPretrainOptions } from './pretrain-run';
/** `@skysense/heads` as a namespace (documented in its own package). @hidden */
export * as heads from '@skysense/heads';
export {
  Segmentor,
  slideWindows,
  type FeatureEncoder,
  type SegmentorOptions,
  type SlideOptions,
  type SegmentationLosses,
} from './finetune/segmentor';
export { Classifier, ChangeDetector } from './finetune/classifier';
export { swinLayerId, vitLayerId, finetuneOptimizer, type FinetuneOptimizerOptions } from './finetune/layer-decay';
export {
  FINETUNE_PRESETS,
  DEFAULT_PRESETS,
  type FinetunePreset,
  type FinetunePresetName,
  type FinetuneTask,
  type EncoderSpec,
  type RecipeDefaults,
} from './finetune/presets';
export {
  Finetuner,
  buildFinetuneModel,
  buildEncoder,
  finetunePreset,
  type FinetuneOptions,
  type FinetuneSchedule,
  type FinetuneStepMetrics,
  type FinetuneBatch,
  type FinetuneModel,
} from './finetune/finetuner';
export {
  segmentationDataset,
  imageFolderDataset,
  bigEarthNetMultilabelDataset,
  changeDataset,
  cropBatch,
  CHANGE_CLASSES,
  type TaskDataset,
  type TaskSample,
  type TaskEvaluation,
} from './finetune/tasks';
export {
  runFinetune,
  runPredict,
  runEval,
  saveFinetuned,
  loadFinetuned,
  loadTaskDataset,
  resolveClasses,
  colorizeMask,
  type RunFinetuneOptions,
  type FinetuneResult,
  type RunPredictOptions,
  type RunEvalOptions,
  type FinetunedMeta,
} from './finetune/run';
export {
  registerTask,
  getTask,
  listTasks,
  taskBatch,
  splitHoldOut,
  evaluateTask,
  type FinetuneTaskDef,
  type EvaluateHooks,
  type TaskIndex,
} from './finetune/task';
export { segmentationTask, s2SegmentationTask } from './finetune/tasks/segmentation';
export { mmClassificationTask } from './finetune/tasks/multimodal-classification';
export { temporalClassificationTask } from './finetune/tasks/temporal-classification';
export { mmSegmentationTask } from './finetune/tasks/multimodal-segmentation';
export { classificationTask, multilabelTask } from './finetune/tasks/classification';
export { changeTask } from './finetune/tasks/change';
export { FusionSegmentor, type FusionSegmentorOptions } from './finetune/fusion-segmentor';

// Moved to @skysense/data (and the crop ops, the training loop and progress to @skysense/core-tensor) in 0.2: these re-exports keep
// 0.1 code working for one minor version.
export {
  /** @deprecated import from `@skysense/data` @hidden */ readGeoTiff,
  /** @deprecated import from `@skysense/data` @hidden */ rasterCentre,
  /** @deprecated import from `@skysense/data` @hidden */ toLatLon,
  /** @deprecated import from `@skysense/data` @hidden */ crsDefinition,
  /** @deprecated import from `@skysense/data` @hidden */ loadSentinel2,
  /** @deprecated import from `@skysense/data` @hidden */ loadSentinel1,
  /** @deprecated import from `@skysense/data` @hidden */ leeFilterDb,
  /** @deprecated import from `@skysense/data` @hidden */ loadHr,
  /** @deprecated import from `@skysense/data` @hidden */ findS2BandFiles,
  /** @deprecated import from `@skysense/data` @hidden */ stackOnFinestGrid,
  /** @deprecated import from `@skysense/data` @hidden */ NORMALIZATION,
  /** @deprecated import from `@skysense/data` @hidden */ normalizeChannels,
  /** @deprecated import from `@skysense/data` @hidden */ findAcquisitionDate,
  /** @deprecated import from `@skysense/data` @hidden */ requireAcquisitionDate,
  /** @deprecated import from `@skysense/data` @hidden */ readManifest,
  /** @deprecated import from `@skysense/data` @hidden */ loadSample,
  /** @deprecated import from `@skysense/data` @hidden */ samplesDir,
  /** @deprecated import from `@skysense/data` @hidden */ readImage,
  /** @deprecated import from `@skysense/data` @hidden */ readMask,
  /** @deprecated import from `@skysense/data` @hidden */ readClassTable,
  /** @deprecated import from `@skysense/data` @hidden */ loadSegmentationDataset,
  /** @deprecated import from `@skysense/data` @hidden */ listImages,
  /** @deprecated import from `@skysense/data` @hidden */ DUBAI_AERIAL_CLASSES,
  /** @deprecated import from `@skysense/data` @hidden */ IGNORE_INDEX,
  /** @deprecated import from `@skysense/data` @hidden */ cutWindow,
  /** @deprecated import from `@skysense/data` @hidden */ randomWindow,
  /** @deprecated import from `@skysense/data` @hidden */ normalizedImage,
  /** @deprecated import from `@skysense/data` @hidden */ randomResizedBox,
  /** @deprecated import from `@skysense/data` @hidden */ resolveMultiCrop,
  type Raster,
  type PixelWindow,
  type S2Band,
  type S2Source,
  type BandStack,
  type MissingBands,
  type Sentinel1Options,
  type ChannelStats,
  type SampleManifest,
  type LoadedSample,
  type S2FrameEntry,
  type S1FrameEntry,
  type PlanarImage,
  type ClassDef,
  type LabelledImage,
  type SegAugmentOptions,
  type CropWindow,
  type MultiCropOptions,
  type ResolvedMultiCrop,
} from '@skysense/data';
export {
  /** @deprecated import from `@skysense/skysense/verify` @hidden */ runFixture,
  /** @deprecated import from `@skysense/skysense/verify` @hidden */ forwardFixture,
  /** @deprecated import from `@skysense/skysense/verify` @hidden */ readFixtureConfig,
  type FixtureResult,
  type RunFixtureOptions,
  type FixtureConfig,
} from './verify';
export {
  /** @deprecated import from `@skysense/core-tensor` @hidden */ ProgressReporter,
  /** @deprecated import from `@skysense/core-tensor` @hidden */ progressBar,
  /** @deprecated import from `@skysense/core-tensor` @hidden */ saveTrainingCheckpoint,
  /** @deprecated import from `@skysense/core-tensor` @hidden */ openTrainingCheckpoint,
  /** @deprecated import from `@skysense/core-tensor` @hidden */ truncateMetricsLog,
  /** @deprecated import from `@skysense/core-tensor` @hidden */ openRun,
  /** @deprecated import from `@skysense/core-tensor` @hidden */ runSettings,
  /** @deprecated import from `@skysense/core-tensor` @hidden */ trainingLoop,
  type TrainingCheckpoint,
  type LoopTrainer,
  type TrainingLoopOptions,
  /** @deprecated import from `@skysense/core-tensor` @hidden */ cropResize,
  /** @deprecated import from `@skysense/core-tensor` @hidden */ intersect,
  /** @deprecated renamed `roiAlignCrops`, in `@skysense/core-tensor` @hidden */ roiAlignCrops as roiAlign,
  type CropBox,
} from '@skysense/core-tensor';
/** `@skysense/data` as a namespace, like the model packages (documented in its own package). @hidden */
export * as data from '@skysense/data';
