/**
 * `@skysense/core-tensor`: the tensor layer every SkySense package stands on.
 *
 * - {@link initBackend}: CUDA → native CPU → WebGPU → native kernels / wasm → pure-JS backend choice, reported and forceable.
 * - {@link Module}: PyTorch-style parameters, buffers, dotted state-dict names, strict loading,
 *   train/eval, freezing, shape-only construction.
 * - Layers with PyTorch semantics and weight layouts (Linear, Conv2d, LayerNorm, BatchNorm2d,
 *   GELU, MultiheadAttention, mmcv FFN, …) and ops (interpolate, adaptive pooling, pixel shuffle).
 * - Seeded initialisation, safetensors I/O, optimizers, schedules, EMA, Sinkhorn-Knopp.
 * @packageDocumentation
 */
export { tf } from './tf';
export type { Tensor, Tensor1D, Tensor2D, Tensor3D, Tensor4D, Scalar, Variable, DataType, Rank } from './tf';
export { SkySenseError, type SkySenseErrorCode } from './errors';
export { readConfig, camelCase } from './config';
export {
  assertShape,
  assertRank,
  assertDtype,
  assertInt,
  assertPositive,
  assertInRange,
  formatShape,
  pair,
  checkOptions,
  type DimSpec,
  type OptionRule,
} from './validate';
export {
  initBackend,
  currentBackend,
  formatBackendReport,
  backendFromEnv,
  hasKernel,
  BACKEND_ORDER,
  defaultBackendOrder,
  type BackendKind,
  type BackendAttempt,
  type BackendReport,
  type InitBackendOptions,
} from './backend';
export { WEBGPU_PACKAGES, formatAdapter, probeWebGPU, webgpuSyncReadCount, type WebGPUAdapter, type WebGPUProbe } from './webgpu';
export { webgpuKernelCount } from './ops/webgpu-kernels';
export { Generator, defaultRng, manualSeed, type GeneratorState } from './rng';
export {
  nativeKernelsAvailable,
  nativeCallCount,
  nativeReason,
  setNativeGemm,
  GEMM_CHOICES,
  enableNativeKernels,
  disableNativeKernels,
  nativeKernelsActive,
  NATIVE_BACKEND,
  type GemmChoice,
} from './native';
export { bufferPoolStats, emptyBufferPool, setBufferPoolLimit, type BufferPoolStats } from './buffer-pool';
export {
  type Initializer,
  type KaimingOptions,
  constant,
  zeros,
  ones,
  uniform,
  normal,
  truncNormal,
  kaimingUniform,
  kaimingNormal,
  xavierUniform,
  xavierNormal,
  fanInUniform,
  fans,
  gain,
  initValues,
  erf,
  erfinv,
} from './init';
export {
  Module,
  Parameter,
  Buffer,
  DerivedTensor,
  recordingGradients,
  shapeOnly,
  isBuildingShapeOnly,
  inferPrefix,
  toStateDictSource,
  type StateDType,
  type StateDictSource,
  type StateDictLike,
  type LoadReport,
  type LoadStateDictOptions,
  type ShapeMismatch,
  type CheckpointKeyRule,
} from './module';
export { matMul, transposeLast2, sumToShape } from './ops/matmul';
export { gatherRows, invertPermutation, permuteRows } from './ops/gather';
export { l2Normalize } from './ops/normalize';
export { withGradient, stopGradient } from './ops/custom-grad';
export { cosineWindowAttention, nativeCosineAttention, selfAttention, type CosineAttentionArgs } from './ops/fused';
export { windowPartition, windowMerge, windowOrder } from './ops/windows';
export { conv2d, type Conv2dOptions } from './ops/conv2d';
export {
  interpolate,
  adaptiveAvgPool2d,
  pixelShuffle,
  resampleMatrix,
  adaptivePoolMatrix,
  type InterpolateMode,
  type InterpolateOptions,
} from './ops/resample';
export { cropResize, roiAlignCrops, intersect, type CropBox } from './ops/crops';
export { roiAlign, type RoiAlignOptions } from './ops/roi-align';
export { boxIou, nms, batchedNms, bbox2delta, delta2bbox, type DeltaNormalization, type Delta2BboxOptions } from './ops/boxes';
export { AnchorGenerator, type AnchorGeneratorOptions } from './ops/anchors';
export { runBoxOp, boxOpTolerance, BOX_OPS, type BoxOpName } from './ops/box-op-fixtures';
export { poolValidity, nonFiniteMask } from './ops/validity';
export { dayOfYear, type AcquisitionDate } from './dates';
export { SENTINEL2_BANDS, SENTINEL1_BANDS, SENSOR_NORMALIZATION } from './sensors';
export {
  cacheDir,
  downloadFile,
  resolvePretrained,
  loadPretrained,
  SKYSENSE_RELEASE,
  type PretrainedConfig,
  type PretrainedFile,
  type PretrainedInput,
  type PretrainedOptions,
} from './pretrained';
export { UnaryModule, Identity, Sequential, ModuleList, ModuleDict } from './layers/containers';
export { Linear, linear, type LinearOptions } from './layers/linear';
export { Conv2d, type Conv2dModuleOptions } from './layers/conv';
export { LayerNorm, BatchNorm2d, type LayerNormOptions, type BatchNormOptions } from './layers/norm';
export { GELU, ReLU, gelu, makeActivation, type ActivationName } from './layers/activation';
export { Dropout, Dropout2d, DropPath } from './layers/dropout';
export { ConvModule, type ConvModuleOptions } from './layers/conv-module';
export { FFN, type FFNOptions } from './layers/ffn';
export { MultiheadAttention, type MultiheadAttentionOptions, type AttentionCallOptions } from './layers/multihead-attention';
export { Embedding } from './layers/embedding';
export { AdaptiveAvgPool2d, PixelShuffle, Upsample } from './layers/resample';
export { PatchEmbed, type PatchEmbedOptions } from './layers/patch-embed';
export {
  MmcvMultiheadAttention,
  TransformerEncoderLayer,
  resolveTransformerStack,
  transformerConfigEps,
  TRANSFORMER_STACK_CONFIG_KEYS,
  TRANSFORMER_STACK_IGNORED_KEYS,
  transformerEncoderStack,
  type MmcvAttentionOptions,
  type TransformerEncoderLayerOptions,
  type TransformerStackOptions,
} from './layers/transformer-encoder-layer';
export {
  SafetensorsFile,
  writeSafetensors,
  saveSafetensors,
  loadSafetensors,
  rawToTensor,
  tensorToRaw,
  DTYPE_SIZE,
  type SafetensorsDType,
  type SafetensorsEntry,
  type SafetensorsOpenOptions,
  type RawTensor,
  type WritableTensor,
  type WriteSafetensorsOptions,
} from './safetensors';
export { withAtomicFile, writeFileAtomic, ensureDir, removeStaleTemps, pidAlive, fsError, isFsError, withFsErrors } from './atomic-file';
export {
  decodeBudget,
  checkDecodeBudget,
  checkExpansion,
  formatBytes,
  readJsonFile,
  summarizeList,
  safeFileName,
  uniqueFileNames,
  allInOrder,
  DEFAULT_DECODE_BUDGET,
  MAX_EXPANSION_RATIO,
  EXPANSION_FLOOR,
} from './limits';
export { encodePng, decodePng, writePng, categoricalColors, markNodata, NODATA_RGB, type DecodedImage } from './png';
export { PthFile, type PthLayout, type PthTensorInfo, type PthOpenOptions } from './checkpoint/pth';
export { savePth, type SavePthOptions } from './checkpoint/pth-writer';
export { type ByteSource, fileSource, bufferSource } from './checkpoint/byte-source';
export { readZipDirectory, readZipEntry, type ZipEntry } from './checkpoint/zip';
export {
  unpickle,
  PyDict,
  PyTuple,
  PyTensor,
  PyStorage,
  PyStorageType,
  PyNumpyDtype,
  PyCallable,
  STORAGE_DTYPES,
  type PyValue,
  type PersistentLoad,
} from './checkpoint/pickle';
export {
  openCheckpoint,
  loadCheckpoint,
  convertToSafetensors,
  inspectCheckpoint,
  detectCheckpointFormat,
  formatLoadReport,
  type CheckpointFile,
  type CheckpointFormat,
  type CheckpointSummary,
  type ConvertOptions,
  type LoadCheckpointOptions,
  type Progress,
} from './checkpoint/checkpoint';
export { f32ToF16Bits, f16BitsToF32, f32ToBf16Bits, bf16BitsToF32 } from './dtype-convert';
export { valueAndGrads, disposeGradients, clipGradNorm, trainableParameters, type Gradients, type ParamSource } from './train/grads';
export { Optimizer, AdamW, SGD, type AdamWOptions, type SGDOptions, type ParamGroup, type ResolvedGroup } from './train/optimizers';
export {
  buildParamGroups,
  defaultNoDecay,
  DEFAULT_NO_DECAY_NAMES,
  type ParamGroupOptions,
  type LayerDecayOptions,
} from './train/param-groups';
export { type LrSchedule, constantLr, stepLr, polyLr, cosineLr, linearWarmup, cosineMomentum } from './train/schedules';
export { emaUpdate, type EmaOptions } from './train/ema';
export { sinkhornKnopp, type SinkhornOptions } from './train/sinkhorn';
export {
  saveTrainer,
  resumeTrainer,
  saveTrainingCheckpoint,
  openTrainingCheckpoint,
  truncateMetricsLog,
  openRun,
  runSettings,
  checkRunFolder,
  acquireRunLock,
  refuseChanges,
  trainingLoop,
  trainingLoopAsync,
  stepGenerator,
  RUN_LOCK,
  RUN_ARTEFACTS,
  RESUMABLE_OPTIONS,
  type RunFolderOptions,
  type RunLock,
  type OpenRunOptions,
  type CheckpointableTrainer,
  type TrainingCheckpoint,
  type LoopTrainer,
  type TrainingLoopOptions,
} from './train/run';
export { ProgressReporter, progressBar } from './train/progress';
export type { FeatureEncoder } from './encoder';
