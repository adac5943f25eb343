/**
 * `@skysense/data`: satellite data for SkySense — GeoTIFF rasters with their georeferencing,
 * Sentinel-2 / Sentinel-1 / high-resolution loaders in the encoders' band order, normalisation
 * presets, acquisition dates, JSON sample manifests, images and masks, crops and augmentations,
 * and the downloader of the public sample files. Depends on `@skysense/core-tensor` only.
 * @packageDocumentation
 */
export { readGeoTiff, rasterCentre, toLatLon, crsDefinition, type Raster, type PixelWindow, type ReadGeoTiffOptions } from './raster';
export {
  loadSentinel2,
  loadSentinel1,
  leeFilterDb,
  loadHr,
  findS2BandFiles,
  stackOnFinestGrid,
  fillInvalid,
  SCL_INVALID,
  S2_PRODUCT_BANDS,
  planarStack,
  s2TrueColour,
  PRODUCT_DTYPES,
  type ProductCheckOptions,
  type Sentinel2Options,
  type S2Band,
  type S2Source,
  type BandStack,
  type MissingBands,
  type Sentinel1Options,
} from './sentinel';
export { NORMALIZATION, normalizeChannels, type ChannelStats } from './normalization';
export { findAcquisitionDate, requireAcquisitionDate } from './dates';
export {
  readManifest,
  loadSample,
  samplesDir,
  type SampleManifest,
  type LoadedSample,
  type LoadedSeries,
  type NodataSummary,
  type S2FrameEntry,
  type S1FrameEntry,
} from './sample';
export {
  readImage,
  readMask,
  ignoreNodata,
  type ReadImageOptions,
  readClassTable,
  loadSegmentationDataset,
  listImages,
  DUBAI_AERIAL_CLASSES,
  IGNORE_INDEX,
  type PlanarImage,
  type ClassDef,
  type LabelledImage,
} from './images';
export { cutWindow, cutMask, windowBoxes, randomWindow, normalizedImage, type SegAugmentOptions, type CropWindow } from './augment';
export { randomResizedBox, resolveMultiCrop, type MultiCropOptions, type ResolvedMultiCrop } from './multicrop';
export {
  readSegmentationFolder,
  readImageFolder,
  readSentinel2SegmentationFolder,
  readChangeFolder,
  imageStats,
  CHANGE_CLASSES,
  type LabelledSample,
  type LabelledDataset,
} from './datasets';
export { downloadSamples, SAMPLE_FILES, type SampleFile, type DownloadSamplesOptions } from './samples';
export {
  readVocAnnotation,
  readVocFolder,
  readDetectionFolder,
  readCocoDetection,
  writeVocAnnotation,
  boxesFromMask,
  segmentationToDetection,
  type VocAnnotation,
  type DetectionObject,
  type DetectionSample,
  type BoxesFromMaskOptions,
  type SegmentationToDetectionOptions,
} from './detection';
export { FUSION_GRID_RATIO, hrOnFusionGrid } from './fusion-grid';
export {
  BEN19_CLASSES,
  BEN43_CLASSES,
  BEN19_FROM_BEN43,
  indexBigEarthNet,
  decodeBigEarthNet,
  readBigEarthNetFolder,
  type BigEarthNetNomenclature,
  type BigEarthNetIndexOptions,
  type BigEarthNetEntry,
  type BigEarthNetIndex,
} from './bigearthnet';
export { DECODERS, type DecoderKind } from './decoders';
export {
  DecodePool,
  StreamingSamples,
  InMemorySamples,
  type DecodePoolOptions,
  type SampleLoader,
  type StreamingOptions,
} from './streaming';
export { indexSeriesFolder, decodeSeries, type SeriesEntry, type SeriesFolderOptions } from './series';
export { indexManifestSegmentation, decodeManifestSample, type ManifestEntry } from './multimodal';
