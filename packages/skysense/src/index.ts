/**
 * `@skysense/skysense`: the umbrella package — the assembled SkySense model (`SkySense`, presets
 * `skysense-2b` and `skysense-tiny`), pre-training, fine-tuning (`Segmentor`, `Classifier`,
 * `ChangeDetector`, `Finetuner`), data loading, the `skysense` command, and
 * the model packages re-exported as namespaces.
 * @packageDocumentation
 */
export { SkySense, formatBreakdown, type SkySenseInputs, type SkySenseOutputs, type SentinelSeries, type BreakdownRow, type ReleasedFiles } from './skysense';
export { SKYSENSE_PRESETS, type SkySenseConfig, type SkySensePresetName } from './presets';
export { createCli, runCli } from './cli';
export { embedSample, runDemo, bigEarthNetPairs, generatedScene, type EmbedSummary, type DemoOptions } from './embed';
export { runFixture, forwardFixture, readFixtureConfig, type FixtureResult, type RunFixtureOptions, type FixtureConfig } from './fixtures';
export { MODEL_PRESETS, modelInfo, type ModelInfo } from './registry';
export { pcaRgb, bandsRgb, enlarge } from './render';
export { readGeoTiff, rasterCentre, toLatLon, crsDefinition, type Raster, type PixelWindow } from './data/raster';
export { loadSentinel2, loadSentinel1, leeFilterDb, loadHr, findS2BandFiles, stackOnFinestGrid, type S2Band, type S2Source, type BandStack, type MissingBands, type Sentinel1Options } from './data/sentinel';
export { NORMALIZATION, normalizeChannels, type ChannelStats } from './data/normalization';
export { findAcquisitionDate, requireAcquisitionDate } from './data/dates';
export { readManifest, loadSample, samplesDir, type SampleManifest, type LoadedSample, type S2FrameEntry, type S1FrameEntry } from './data/sample';
export { ProgressReporter, progressBar } from './progress';
export * as core from '@skysense/core-tensor';
export * as swin from '@skysense/swin';
export * as vit from '@skysense/vit';
export * as temporalFusion from '@skysense/temporal-fusion';
export * as geoPrototypes from '@skysense/geo-prototypes';
export { Pretrainer, type PretrainOptions, type PretrainBatch, type StepMetrics } from './pretrain';
export { runPretrain, type RunPretrainOptions } from './pretrain-run';
export { cropResize, roiAlign, intersect, randomResizedBox, resolveMultiCrop, type CropBox, type MultiCropOptions, type ResolvedMultiCrop } from './multicrop';
export * as heads from '@skysense/heads';
export { Segmentor, slideWindows, type FeatureEncoder, type SegmentorOptions, type SlideOptions, type SegmentationLosses } from './finetune/segmentor';
export { Classifier, ChangeDetector } from './finetune/classifier';
export { swinLayerId, vitLayerId, finetuneOptimizer, type FinetuneOptimizerOptions } from './finetune/layer-decay';
export { FINETUNE_PRESETS, DEFAULT_PRESETS, type FinetunePreset, type FinetunePresetName, type FinetuneTask, type EncoderSpec, type RecipeDefaults } from './finetune/presets';
export {
  Finetuner, buildFinetuneModel, buildEncoder, finetunePreset, type FinetuneOptions, type FinetuneSchedule, type FinetuneStepMetrics, type FinetuneBatch, type FinetuneModel,
} from './finetune/finetuner';
export {
  segmentationDataset, imageFolderDataset, bigEarthNetMultilabelDataset, changeDataset, splitHoldOut, taskBatch, evaluateTask, CHANGE_CLASSES, type TaskDataset, type TaskSample, type TaskEvaluation,
} from './finetune/tasks';
export {
  readImage, readMask, readClassTable, loadSegmentationDataset, listImages, DUBAI_AERIAL_CLASSES, IGNORE_INDEX, type PlanarImage, type ClassDef, type LabelledImage,
} from './finetune/images';
export { cutWindow, randomWindow, normalizedImage, type SegAugmentOptions, type CropWindow } from './finetune/augment';
export {
  runFinetune, runPredict, runEval, saveFinetuned, loadFinetuned, loadTaskDataset, resolveClasses, colorizeMask, type RunFinetuneOptions, type FinetuneResult, type RunPredictOptions, type RunEvalOptions,
  type FinetunedMeta,
} from './finetune/run';
export {
  saveTrainingCheckpoint, openTrainingCheckpoint, truncateMetricsLog, openRun, runSettings, trainingLoop, type TrainingCheckpoint, type LoopTrainer, type TrainingLoopOptions,
} from './training-checkpoint';
export { FusionSegmentor, type FusionSegmentorOptions } from './finetune/fusion-segmentor';
