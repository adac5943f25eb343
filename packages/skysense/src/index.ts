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
export * as core from '@skysense/core-tensor';
export * as swin from '@skysense/swin';
export * as vit from '@skysense/vit';
export * as temporalFusion from '@skysense/temporal-fusion';
export * as geoPrototypes from '@skysense/geo-prototypes';
export { Pretrainer, type PretrainOptions, type PretrainBatch, type StepMetrics } from './pretrain';
export { runPretrain, type RunPretrainOptions } from './pretrain-run';
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
export { registerTask, getTask, listTasks, taskBatch, splitHoldOut, evaluateTask, type FinetuneTaskDef } from './finetune/task';
export { segmentationTask } from './finetune/tasks/segmentation';
export { classificationTask, multilabelTask } from './finetune/tasks/classification';
export { changeTask } from './finetune/tasks/change';
export { FusionSegmentor, type FusionSegmentorOptions } from './finetune/fusion-segmentor';

// Moved to @skysense/data (and the crop ops, the training loop and progress to @skysense/core-tensor) in 0.2: these re-exports keep
// 0.1 code working for one minor version.
export {
  /** @deprecated import from `@skysense/data` */ readGeoTiff,
  /** @deprecated import from `@skysense/data` */ rasterCentre,
  /** @deprecated import from `@skysense/data` */ toLatLon,
  /** @deprecated import from `@skysense/data` */ crsDefinition,
  /** @deprecated import from `@skysense/data` */ loadSentinel2,
  /** @deprecated import from `@skysense/data` */ loadSentinel1,
  /** @deprecated import from `@skysense/data` */ leeFilterDb,
  /** @deprecated import from `@skysense/data` */ loadHr,
  /** @deprecated import from `@skysense/data` */ findS2BandFiles,
  /** @deprecated import from `@skysense/data` */ stackOnFinestGrid,
  /** @deprecated import from `@skysense/data` */ NORMALIZATION,
  /** @deprecated import from `@skysense/data` */ normalizeChannels,
  /** @deprecated import from `@skysense/data` */ findAcquisitionDate,
  /** @deprecated import from `@skysense/data` */ requireAcquisitionDate,
  /** @deprecated import from `@skysense/data` */ readManifest,
  /** @deprecated import from `@skysense/data` */ loadSample,
  /** @deprecated import from `@skysense/data` */ samplesDir,
  /** @deprecated import from `@skysense/data` */ readImage,
  /** @deprecated import from `@skysense/data` */ readMask,
  /** @deprecated import from `@skysense/data` */ readClassTable,
  /** @deprecated import from `@skysense/data` */ loadSegmentationDataset,
  /** @deprecated import from `@skysense/data` */ listImages,
  /** @deprecated import from `@skysense/data` */ DUBAI_AERIAL_CLASSES,
  /** @deprecated import from `@skysense/data` */ IGNORE_INDEX,
  /** @deprecated import from `@skysense/data` */ cutWindow,
  /** @deprecated import from `@skysense/data` */ randomWindow,
  /** @deprecated import from `@skysense/data` */ normalizedImage,
  /** @deprecated import from `@skysense/data` */ randomResizedBox,
  /** @deprecated import from `@skysense/data` */ resolveMultiCrop,
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
  /** @deprecated import from `@skysense/skysense/verify` */ runFixture,
  /** @deprecated import from `@skysense/skysense/verify` */ forwardFixture,
  /** @deprecated import from `@skysense/skysense/verify` */ readFixtureConfig,
  type FixtureResult,
  type RunFixtureOptions,
  type FixtureConfig,
} from './verify';
export {
  /** @deprecated import from `@skysense/core-tensor` */ ProgressReporter,
  /** @deprecated import from `@skysense/core-tensor` */ progressBar,
  /** @deprecated import from `@skysense/core-tensor` */ saveTrainingCheckpoint,
  /** @deprecated import from `@skysense/core-tensor` */ openTrainingCheckpoint,
  /** @deprecated import from `@skysense/core-tensor` */ truncateMetricsLog,
  /** @deprecated import from `@skysense/core-tensor` */ openRun,
  /** @deprecated import from `@skysense/core-tensor` */ runSettings,
  /** @deprecated import from `@skysense/core-tensor` */ trainingLoop,
  type TrainingCheckpoint,
  type LoopTrainer,
  type TrainingLoopOptions,
  /** @deprecated import from `@skysense/core-tensor` */ cropResize,
  /** @deprecated import from `@skysense/core-tensor` */ intersect,
  /** @deprecated renamed `roiAlignCrops`, in `@skysense/core-tensor` */ roiAlignCrops as roiAlign,
  type CropBox,
} from '@skysense/core-tensor';
/** `@skysense/data` as a namespace, like the model packages. */
export * as data from '@skysense/data';
