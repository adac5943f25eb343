import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { Generator, SafetensorsFile, SkySenseError, loadSafetensors, saveSafetensors, tf, writeFileAtomic, writePng } from '@skysense/core-tensor';
import { ConfusionMatrix, type SegmentationScores } from '@skysense/heads';
import { NORMALIZATION, type ChannelStats } from '../data/normalization';
import { samplesDir } from '../data/sample';
import { normalizedImage, segmentationBatch } from './augment';
import { type FinetuneStepMetrics, SegmentationFinetuner, buildSegmentor } from './finetuner';
import { type ClassDef, DUBAI_AERIAL_CLASSES, IGNORE_INDEX, type LabelledImage, type PlanarImage, listImages, loadSegmentationDataset, readClassTable, readImage } from './images';
import type { SegmentorPresetName } from './presets';
import { SEGMENTOR_PRESETS } from './presets';
import type { Segmentor } from './segmentor';
import { truncateMetricsLog } from '../training-checkpoint';

/** Options of {@link runFinetune} (the `skysense finetune --task seg` command). */
export interface RunFinetuneOptions {
  /** A folder with `images/` and `masks/`. Default: the Dubai aerial samples under `SKYSENSE_SAMPLES`. */
  data?: string;
  /** Class table: `dubai-aerial` or a JSON file. Default: `dubai-aerial` for the default data, else `<data>/classes.json`. */
  classes?: string;
  /** Output folder. */
  out: string;
  /** Default `upernet-skysense-tiny`. */
  preset?: SegmentorPresetName;
  /** Pre-trained encoder weights (pre-training checkpoint or teacher, released / mmseg file). Default: random initialisation. */
  init?: string;
  /** The last N images (by name) are held out for evaluation. Default 2. */
  holdOut?: number;
  /** Default 300. */
  steps?: number;
  /** Default 4. */
  batchSize?: number;
  /** Training crop side. Default: the preset's. */
  crop?: number;
  /** Base learning rate. Default: the preset's. */
  lr?: number;
  /** Layer-wise decay rate (1 = none). Default: the preset's (0.9). */
  layerDecayRate?: number;
  /** Warm-up iterations. Default: the preset's. */
  warmupIters?: number;
  /** Train only the heads. */
  freezeBackbone?: boolean;
  /** Checkpoint every N steps and at the end. Default 50. */
  checkpointEvery?: number;
  /** Continue from `out/checkpoint.safetensors`. */
  resume?: boolean;
  /** Default 0. */
  seed?: number;
  /** Sliding-window evaluation stride. Default 2/3 of the crop. */
  stride?: number;
  /** Progress and summary lines. Default console.log. */
  log?: (line: string) => void;
}

/** Result of a fine-tuning run. */
export interface FinetuneResult {
  metrics: FinetuneStepMetrics[];
  /** Scores on the held-out images (none when `holdOut` is 0). */
  scores: SegmentationScores | null;
  /** The metrics table as printed. */
  table: string | null;
}

const MODEL_FORMAT = 'skysense-segmentor-1';

/** Resolves a class-table option: `dubai-aerial` or a JSON file. */
export function resolveClasses(spec: string): ClassDef[] {
  return spec === 'dubai-aerial' ? [...DUBAI_AERIAL_CLASSES] : readClassTable(spec);
}

/**
 * Fine-tunes a UperNet segmentor on image/mask pairs, prints progress lines (loss, lr, samples/s,
 * ETA), logs every step to `metrics.jsonl`, checkpoints atomically (exact `resume`), then writes
 * `model.safetensors`, evaluates the held-out images with sliding-window inference (metrics table,
 * `eval.json`) and writes their predicted masks and side-by-side pictures to `predictions/`.
 */
export async function runFinetune(o: RunFinetuneOptions): Promise<FinetuneResult> {
  const log = o.log ?? console.log;
  const data = o.data ?? join(samplesDir(), 'dubai-aerial-segmentation');
  const classes = resolveClasses(o.classes ?? (o.data ? join(data, 'classes.json') : 'dubai-aerial'));
  const all = await loadSegmentationDataset(data, classes);
  const holdOut = o.holdOut ?? 2;
  if (!Number.isInteger(holdOut) || holdOut < 0 || holdOut >= all.length) throw new SkySenseError('E_ARG', `holdOut: expected an integer in [0, ${all.length - 1}] (the dataset has ${all.length} images), got ${holdOut}`);
  const train = all.slice(0, all.length - holdOut);
  const held = all.slice(all.length - holdOut);
  mkdirSync(o.out, { recursive: true });
  const ckptFile = join(o.out, 'checkpoint.safetensors');
  const seed = o.seed ?? 0;
  let trainer: SegmentationFinetuner;
  if (o.resume) {
    if (!existsSync(ckptFile)) throw new SkySenseError('E_IO', `--resume: no checkpoint at ${ckptFile}`);
    trainer = SegmentationFinetuner.resume(ckptFile);
    truncateMetricsLog(join(o.out, 'metrics.jsonl'), trainer.step);
    log(`resumed ${ckptFile} at step ${trainer.step} of ${trainer.options.steps}`);
  } else {
    trainer = new SegmentationFinetuner({
      preset: o.preset, numClasses: classes.length, steps: o.steps ?? 300, inChannels: all[0]!.image.channels, lr: o.lr, layerDecayRate: o.layerDecayRate,
      warmupIters: o.warmupIters, freezeBackbone: o.freezeBackbone, seed,
    });
    if (o.init) trainer.loadEncoder(o.init, log);
    writeFileAtomic(join(o.out, 'metrics.jsonl'), '');
  }
  const preset = trainer.options.preset;
  const crop = o.crop ?? SEGMENTOR_PRESETS[preset].train.crop;
  const stats = statsFor(all[0]!.image.channels);
  const batchSize = o.batchSize ?? 4;
  const total = trainer.options.steps;
  log(`fine-tuning ${preset} on ${train.length} images (${held.length} held out: ${held.map((h) => h.name).join(', ') || 'none'}), ${classes.length} classes, ${total} steps × ${batchSize} crops of ${crop} px${o.init ? `, encoder from ${o.init}` : ', random-initialised encoder'}`);
  const metrics: FinetuneStepMetrics[] = [];
  const t0 = performance.now();
  const first = trainer.step;
  try {
    while (trainer.step < total) {
      const g = new Generator(seed * 1_000_003 + trainer.step);
      const picks = Array.from({ length: batchSize }, () => train[g.randint(train.length)]!);
      const { images, labels } = segmentationBatch(picks, { crop }, stats, g);
      let m: FinetuneStepMetrics;
      try {
        m = trainer.trainStep(images, labels);
      } finally {
        tf.dispose([images, labels]);
      }
      metrics.push(m);
      appendFileSync(join(o.out, 'metrics.jsonl'), `${JSON.stringify({ ...m, time: new Date().toISOString() })}\n`);
      const done = trainer.step - first;
      const secs = (performance.now() - t0) / 1000;
      if (done === 1 || trainer.step % Math.max(1, Math.round(total / 20)) === 0 || trainer.step === total) {
        log(`step ${trainer.step}/${total} loss ${m.loss.toFixed(4)} (decode ${m.decode.toFixed(4)}, aux ${m.aux.toFixed(4)}) lr ${m.lr.toExponential(2)} · ${((done * batchSize) / secs).toFixed(2)} samples/s · ETA ${((secs / done) * (total - trainer.step)).toFixed(0)} s`);
      }
      if (trainer.step % (o.checkpointEvery ?? 50) === 0 || trainer.step === total) trainer.save(ckptFile);
    }
    const modelFile = join(o.out, 'model.safetensors');
    saveSegmentor(modelFile, trainer.model, preset, classes);
    log(`wrote ${modelFile}`);
    if (held.length === 0) return { metrics, scores: null, table: null };
    const { scores, table } = evaluateAndRender(trainer.model, held, classes, stats, { crop, stride: o.stride, out: join(o.out, 'predictions'), log });
    writeFileAtomic(join(o.out, 'eval.json'), `${JSON.stringify({ images: held.map((h) => h.name), classes: classes.map((c) => c.name), ...scores }, null, 2)}\n`);
    log(table);
    return { metrics, scores, table };
  } finally {
    trainer.dispose();
  }
}

/** The input statistics for an image of `channels` bands (ImageNet on 0–255 for RGB / RGB-NIR). */
function statsFor(channels: number): ChannelStats {
  if (channels === 3) return NORMALIZATION.hr;
  if (channels === 4) return NORMALIZATION['hr-rgbn'];
  throw new SkySenseError('E_BANDS', `images: expected 3 (RGB) or 4 (RGB-NIR) bands, got ${channels}`);
}

/** Writes a segmentor's weights with what is needed to rebuild it (preset, classes), atomically. */
export function saveSegmentor(file: string, model: Segmentor, preset: SegmentorPresetName, classes: readonly ClassDef[]): void {
  const inChannels = (model.backbone as unknown as { options: { inChannels: number } }).options.inChannels;
  saveSafetensors(file, model.stateDict(), { metadata: { format: MODEL_FORMAT, preset, classes: JSON.stringify(classes), in_channels: String(inChannels) } });
}

/** Rebuilds a segmentor saved by {@link saveSegmentor} (eval mode). */
export function loadSegmentor(file: string): { model: Segmentor; classes: ClassDef[]; preset: SegmentorPresetName } {
  if (!existsSync(file)) throw new SkySenseError('E_IO', `${file}: no such file`);
  const header = SafetensorsFile.open(file);
  const meta = header.metadata;
  header.close();
  if (meta.format !== MODEL_FORMAT) throw new SkySenseError('E_STATE_DICT', `${file}: not a SkySense segmentor (format '${meta.format ?? 'none'}'; 'skysense finetune' writes model.safetensors)`);
  const classes = JSON.parse(meta.classes ?? '[]') as ClassDef[];
  const preset = meta.preset as SegmentorPresetName;
  const model = buildSegmentor(preset, classes.length, { inChannels: Number(meta.in_channels ?? 3) });
  const weights = loadSafetensors(file);
  try {
    model.loadStateDict(weights);
  } finally {
    tf.dispose([...weights.values()]);
  }
  return { model: model.eval(), classes, preset };
}

/** Class index per pixel of one image by sliding-window inference. */
function predictImage(model: Segmentor, image: PlanarImage, stats: ChannelStats, crop: number, stride?: number): Int32Array {
  const x = normalizedImage(image, stats);
  try {
    const logits = model.slideInference(x, { crop, stride });
    const pred = tf.tidy(() => tf.argMax(logits, 1));
    logits.dispose();
    const out = pred.dataSync() as Int32Array;
    pred.dispose();
    return out;
  } finally {
    x.dispose();
  }
}

/** Evaluates images with masks (confusion matrix over all of them) and writes their predictions. */
function evaluateAndRender(
  model: Segmentor, items: readonly LabelledImage[], classes: readonly ClassDef[], stats: ChannelStats, o: { crop: number; stride?: number; out?: string; log: (l: string) => void },
): { scores: SegmentationScores; table: string } {
  model.eval();
  const cm = new ConfusionMatrix(classes.length, IGNORE_INDEX);
  if (o.out) mkdirSync(o.out, { recursive: true });
  for (const it of items) {
    const pred = predictImage(model, it.image, stats, o.crop, o.stride);
    cm.update(pred, it.mask);
    if (!o.out) continue;
    writePredictionPngs(o.out, it.name, it.image, pred, classes, it.mask);
    o.log(`${it.name}: wrote ${join(o.out, `${it.name}.png`)} and ${it.name}.side.png (input | prediction | ground truth)`);
  }
  return { scores: cm.scores(), table: cm.table(classes.map((c) => c.name)) };
}

/** Class indices → RGB bytes through the class colours (ignore = black). */
export function colorizeMask(labels: ArrayLike<number>, classes: readonly ClassDef[]): Uint8Array {
  const out = new Uint8Array(labels.length * 3);
  for (let i = 0; i < labels.length; i++) {
    const c = classes[labels[i]!];
    if (c) out.set(c.color, 3 * i);
  }
  return out;
}

/** Writes `<name>.png` (colour mask) and `<name>.side.png` (input | prediction [| ground truth], 8 px apart). */
function writePredictionPngs(dir: string, name: string, image: PlanarImage, pred: ArrayLike<number>, classes: readonly ClassDef[], truth?: ArrayLike<number>): void {
  const { width: w, height: h } = image;
  writePng(join(dir, `${name}.png`), colorizeMask(pred, classes), w, h);
  const panels = [inputRgb(image), colorizeMask(pred, classes), ...(truth ? [colorizeMask(truth, classes)] : [])];
  const gap = 8;
  const W = panels.length * w + (panels.length - 1) * gap;
  const side = new Uint8Array(W * h * 3).fill(255);
  panels.forEach((p, k) => {
    for (let y = 0; y < h; y++) side.set(p.subarray(y * w * 3, (y + 1) * w * 3), (y * W + k * (w + gap)) * 3);
  });
  writePng(join(dir, `${name}.side.png`), side, W, h);
}

/** The first three channels of an image as RGB bytes (values clamped to 0–255). */
function inputRgb(image: PlanarImage): Uint8Array {
  const n = image.width * image.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[3 * i + c] = Math.max(0, Math.min(255, Math.round(image.data[(image.channels >= 3 ? c : 0) * n + i]!)));
  return out;
}

/** Options of {@link runPredict}. */
export interface RunPredictOptions {
  /** A `model.safetensors` written by `skysense finetune`. */
  model: string;
  /** Image files or folders of images. */
  inputs: string[];
  /** Output folder. */
  out: string;
  /** Window side. Default: the preset's training crop. */
  crop?: number;
  stride?: number;
  log?: (line: string) => void;
}

/** Predicts class masks for images (sliding window), writing `<name>.png` colour masks and `<name>.side.png`. */
export async function runPredict(o: RunPredictOptions): Promise<string[]> {
  const log = o.log ?? console.log;
  const { model, classes, preset } = loadSegmentor(o.model);
  const files = o.inputs.flatMap((p) => (existsSync(p) && extname(p) === '' ? listImages(p) : [p]));
  if (files.length === 0) throw new SkySenseError('E_ARG', 'predict: no input images');
  mkdirSync(o.out, { recursive: true });
  const written: string[] = [];
  try {
    for (const file of files) {
      const image = await readImage(file);
      const pred = predictImage(model, image, statsFor(image.channels), o.crop ?? SEGMENTOR_PRESETS[preset].train.crop, o.stride);
      const name = basename(file, extname(file));
      writePredictionPngs(o.out, name, image, pred, classes);
      written.push(join(o.out, `${name}.png`));
      log(`${file} → ${join(o.out, `${name}.png`)}, ${name}.side.png`);
    }
    return written;
  } finally {
    model.dispose();
  }
}

/** Options of {@link runEval}. */
export interface RunEvalOptions {
  model: string;
  /** Folder with `images/` and `masks/`. Default: the Dubai aerial samples. */
  data?: string;
  /** Evaluate only the last N images (the ones `finetune --hold-out N` held out). Default: all. */
  last?: number;
  crop?: number;
  stride?: number;
  /** Where to write the predicted masks and side-by-side pictures. Default: none written. */
  out?: string;
  log?: (line: string) => void;
}

/** Evaluates a fine-tuned segmentor on image/mask pairs and prints the metrics table. */
export async function runEval(o: RunEvalOptions): Promise<{ scores: SegmentationScores; table: string }> {
  const log = o.log ?? console.log;
  const { model, classes, preset } = loadSegmentor(o.model);
  try {
    const all = await loadSegmentationDataset(o.data ?? join(samplesDir(), 'dubai-aerial-segmentation'), classes);
    const items = o.last ? all.slice(-o.last) : all;
    const r = evaluateAndRender(model, items, classes, statsFor(items[0]!.image.channels), { crop: o.crop ?? SEGMENTOR_PRESETS[preset].train.crop, stride: o.stride, out: o.out, log });
    log(r.table);
    return r;
  } finally {
    model.dispose();
  }
}
