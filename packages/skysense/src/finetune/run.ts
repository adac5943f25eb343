import { existsSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import {
  allInOrder,
  SafetensorsFile,
  SkySenseError,
  checkOptions,
  checkRunFolder,
  ensureDir,
  loadSafetensors,
  openRun,
  uniqueFileNames,
  runSettings,
  saveSafetensors,
  tf,
  trainingLoopAsync,
  stepGenerator,
  summarizeList,
  type Generator,
  writeFileAtomic,
  writePng,
} from '@skysense/core-tensor';
import {
  type ClassDef,
  DECODERS,
  InMemorySamples,
  type PlanarImage,
  type SampleLoader,
  StreamingSamples,
  ignoreNodata,
  listImages,
  readGeoTiff,
  readImage,
  s2TrueColour,
  toLatLon,
} from '@skysense/data';
import type { Detections } from '@skysense/heads';
import { type Bar, drawBars, drawBoxes } from './draw-boxes';
import { type FinetuneModel, type FinetuneStepMetrics, Finetuner, buildFinetuneModel } from './finetuner';
import { FINETUNE_PRESETS, type FinetunePresetName, type FinetuneTask } from './presets';
import { type FinetuneTaskDef, evaluateTask, getTask, listTasks, splitHoldOut, taskBatch } from './task';
import { type TaskDataset, type TaskEvaluation, type TaskSample, disposeBatch } from './tasks';
export { resolveClasses } from './tasks';

/** Options of {@link runFinetune} (the `skysense finetune` command). */
export interface RunFinetuneOptions {
  /** A registered task (`listTasks()`): `seg` (default), `cls`, `multilabel`, `change`, `det`, `mm-cls`, `temporal-cls`, `s2-seg`, `mm-seg`. */
  task?: FinetuneTask;
  /**
   * The data, as the task's `dataHelp` says. `seg`: `images/` + `masks/` (default: the Dubai aerial
   * samples under `SKYSENSE_SAMPLES`); `cls`: one sub-folder per class; `multilabel`: BigEarthNet-S2
   * patch folders; `mm-cls`: BigEarthNet v1 S2 + S1 patches (both default to the samples); `change`:
   * `A/`, `B/`, `label/`; `det`: VOC or COCO; `temporal-cls`: `<class>/<sample>/<frame>.tif`;
   * `s2-seg`: `images/*.tif` + `masks/`; `mm-seg`: `samples.json` + `classes.json`.
   */
  data?: string;
  /**
   * Classes: for `seg` / `s2-seg` / `mm-seg` a class table (`dubai-aerial` or a JSON file; default
   * `dubai-aerial` for the default data, else `<data>/classes.json`); for `multilabel` / `mm-cls` the
   * BigEarthNet nomenclature, `ben19` (default) or `ben43`.
   */
  classes?: string;
  /** Output folder. */
  out: string;
  /** Default: the task's (`getTask(task).defaultPreset`). */
  preset?: FinetunePresetName;
  /** Pre-trained encoder weights (pre-training checkpoint or teacher, released / mmseg file). Default: random initialisation. */
  init?: string;
  /** Held out for evaluation: the last N samples by name (for `cls`, the last N of each class). Default 2 (1 for `cls`). */
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
  /**
   * Continue from `out/checkpoint.safetensors`, with the run's own settings (`run.json`, the
   * checkpoint's options); `steps` may extend it, `checkpointEvery` and `stride` may change, any
   * other option given with a different value is refused.
   */
  resume?: boolean;
  /** Replace the run in `out` (its checkpoint, logs, model and predictions; other files are kept). Without it a fresh run into a folder holding a run is refused. */
  overwrite?: boolean;
  /** Default 0. */
  seed?: number;
  /** Sliding-window evaluation stride (`seg`). Default 2/3 of the crop. */
  stride?: number;
  /**
   * How a task with an index (`multilabel`, `mm-cls`, `temporal-cls`, `mm-seg`) reads its samples: `stream` decodes each batch in
   * worker threads, prefetched, so memory does not grow with the dataset; `memory` decodes the whole
   * dataset first. Same batches either way. Default `stream`.
   */
  loader?: 'stream' | 'memory';
  /** Decode worker threads of the streaming loader. Default: one per core but one (at least 1). */
  workers?: number;
  /** Batches decoded ahead by the streaming loader. Default 2. */
  prefetch?: number;
  /** Progress and summary lines. Default console.log. */
  log?: (line: string) => void;
}

/** Result of a fine-tuning run. */
export interface FinetuneResult {
  metrics: FinetuneStepMetrics[];
  /** Evaluation on the held-out samples (null when nothing is held out). */
  evaluation: TaskEvaluation | null;
}

const MODEL_FORMAT = 'skysense-finetuned-1';

/** Loads the dataset of a task (see {@link RunFinetuneOptions.data}); `classes` is the `seg` class table (a spec or the table itself). */
export async function loadTaskDataset(task: FinetuneTask, data: string | undefined, classes?: string | ClassDef[]): Promise<TaskDataset> {
  return getTask(task).loadDataset(data, classes);
}

/**
 * Fine-tunes a downstream model on a task's data, prints progress lines (loss, terms, lr, samples/s,
 * ETA), logs every step to `metrics.jsonl`, checkpoints atomically (exact `resume`), then writes
 * `model.safetensors`, evaluates the held-out samples (`eval.json`, metrics table) and, for `seg` and
 * `change`, writes their predicted masks and side-by-side pictures to `predictions/`.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { runFinetune } from '@skysense/skysense';
 * await initBackend();
 * // 100 steps to try it (about 30 s on 2 cores); 600 and more for a real run
 * const { evaluation } = await runFinetune({ task: 'seg', data: 'my-tiles', classes: 'my-tiles/classes.json', out: 'run1', steps: 100 });
 * console.log(evaluation?.table); // per-class IoU/F1, mIoU, OA on the held-out tiles
 * ```
 */
export async function runFinetune(o: RunFinetuneOptions): Promise<FinetuneResult> {
  const log = o.log ?? console.log;
  const resume = o.resume ?? false;
  checkFinetuneOptions(o);
  checkRunFolder(o.out, { resume, overwrite: o.overwrite });
  const given = { task: o.task, data: o.data, classes: o.classes, holdOut: o.holdOut, batchSize: o.batchSize, crop: o.crop, seed: o.seed };
  const fresh = {
    ...given,
    task: o.task ?? 'seg',
    holdOut: o.holdOut ?? getTask(o.task ?? 'seg').defaultHoldOut,
    batchSize: o.batchSize ?? 4,
    seed: o.seed ?? 0,
  };
  const run = resume ? runSettings(o.out, true, given, log) : fresh;
  const task = run.task ?? 'seg';
  const [holdOut, batchSize, seed] = [run.holdOut ?? getTask(task).defaultHoldOut, run.batchSize ?? 4, run.seed ?? 0];
  const data = await openTaskData(task, run, holdOut, o, log);
  const { d, held, loader } = data;
  let opened: { trainer: Finetuner; release: () => void };
  try {
    opened = openRun(
      o.out,
      {
        resume,
        overwrite: o.overwrite,
        settings: run,
        given: {
          preset: o.preset,
          steps: o.steps,
          lr: o.lr,
          layerDecayRate: o.layerDecayRate,
          warmupIters: o.warmupIters,
          freezeBackbone: o.freezeBackbone,
        },
        log,
      },
      {
        fresh: () => {
          const t = new Finetuner({
            task,
            preset: o.preset,
            numClasses: d.classes.length,
            steps: o.steps ?? 300,
            inChannels: data.channels,
            lr: o.lr,
            layerDecayRate: o.layerDecayRate,
            warmupIters: o.warmupIters,
            freezeBackbone: o.freezeBackbone,
            seed,
          });
          try {
            if (o.init) t.loadEncoder(o.init, log);
          } catch (e) {
            t.dispose();
            throw e;
          }
          return t;
        },
        resume: (file, steps) => Finetuner.resume(file, steps),
      },
    );
  } catch (e) {
    await loader.close();
    throw e;
  }
  const { trainer, release } = opened;
  if (trainer.options.numClasses !== d.classes.length) {
    trainer.dispose();
    release();
    await loader.close();
    throw new SkySenseError(
      'E_ARG',
      `resume: the run's model has ${trainer.options.numClasses} classes, its data now gives ${d.classes.length} (${summarizeList(
        d.classes.map((c) => c.name),
        4,
        'the class list',
      )}); a run from an older version with another class list cannot continue: start a new run`,
    );
  }
  const preset = trainer.options.preset;
  const crop = run.crop ?? FINETUNE_PRESETS[preset].train.crop;
  const total = trainer.options.steps;
  log(
    `fine-tuning ${preset} (${task}) on ${loader.length} samples (${held.length} held out: ${
      summarizeList(
        held.map((h) => h.name),
        6,
        'eval.json lists them',
      ) || 'none'
    }), ${d.classes.length} classes, ${total} steps × ${batchSize} crops of ${crop} px${o.init ? `, encoder from ${o.init}` : ', random-initialised encoder'}${data.streamed ? `; streaming (${data.streamed})` : ''}`,
  );
  const picksOf = (g: Generator) => Array.from({ length: batchSize }, () => g.randint(loader.length));
  try {
    const metrics = await trainingLoopAsync({
      trainer,
      total,
      seed,
      out: o.out,
      checkpointEvery: o.checkpointEvery ?? 50,
      samplesPerStep: batchSize,
      log,
      step: async (g) => {
        const at = trainer.step;
        const picks = await loader.take(at, picksOf(g));
        for (let k = 1; k <= (o.prefetch ?? 2) && at + k < total; k++) loader.prefetch(at + k, picksOf(stepGenerator(seed, at + k)));
        const batch = taskBatch(d, picks, crop, g);
        try {
          return trainer.trainStep(batch);
        } finally {
          disposeBatch(batch);
        }
      },
      describe: (m) => {
        const terms = Object.entries(m.terms)
          .map(([k, v]) => `${k} ${v.toFixed(4)}`)
          .join(', ');
        return `loss ${m.loss.toFixed(4)}${terms ? ` (${terms})` : ''} lr ${m.lr.toExponential(2)}`;
      },
    });
    const modelFile = join(o.out, 'model.safetensors');
    saveFinetuned(modelFile, trainer.model, { task, preset, classes: d.classes });
    log(`wrote ${modelFile}`);
    if (held.length === 0) return { metrics, evaluation: null };
    const evaluation = evaluateAndDraw(trainer.model, d, held, { crop, stride: o.stride, out: join(o.out, 'predictions'), log });
    writeFileAtomic(
      join(o.out, 'eval.json'),
      `${JSON.stringify({ task, samples: held.map((h) => h.name), classes: d.classes.map((c) => c.name), ...evaluation.scores }, null, 2)}\n`,
    );
    log(evaluation.table);
    return { metrics, evaluation };
  } finally {
    try {
      trainer.dispose();
    } finally {
      release();
      await loader.close();
    }
  }
}

/** A run's data: the dataset (its classes, statistics and held-out samples, decoded), the training samples' loader. */
interface TaskData {
  d: TaskDataset;
  held: TaskSample[];
  loader: SampleLoader;
  /** Bands of the images (the encoder's input). */
  channels: number;
  /** How the loader streams (for the log), when it does. */
  streamed?: string;
}

/**
 * Opens a run's data. A task with an index is split on the index; its held-out samples are decoded,
 * its training samples streamed (or decoded first with `loader: 'memory'`). Other tasks are read whole.
 */
async function openTaskData(
  task: FinetuneTask,
  run: { data?: string; classes?: string },
  holdOut: number,
  o: RunFinetuneOptions,
  log: (line: string) => void,
): Promise<TaskData> {
  const def = getTask(task);
  const streamOption = (['loader', 'workers', 'prefetch'] as const).find((k) => o[k] !== undefined);
  if (streamOption && !def.index)
    throw new SkySenseError(
      'E_ARG',
      `${streamOption}: task ${def.name} reads its data into memory (streaming serves ${listTasks()
        .filter((t) => getTask(t).index)
        .join(', ')}), got ${JSON.stringify(o[streamOption])}`,
    );
  const tooFew = (n: number) =>
    new SkySenseError('E_ARG', `holdOut: expected an integer ≥ 0 that leaves training samples (the dataset has ${n}), got ${holdOut}`);
  if (!def.index) {
    const d = await loadTaskDataset(task, run.data, run.classes);
    const { train, held } = splitHoldOut(d, holdOut);
    if (train.length === 0) throw tooFew(d.samples.length);
    return { d, held, loader: inMemory(train), channels: d.samples[0]!.images[0]!.channels };
  }
  const index = await def.index(run.data, run.classes);
  if (index.left?.length)
    log(
      `left out ${index.left.length} sample(s) without a label of the ${index.classes.length} classes: ${summarizeList(index.left, 4, 'as BigEarthNet-19 does')}`,
    );
  // the task's own split (per class for single-label tasks), on the index entries (names and labels are all it reads)
  const split = def.splitHoldOut({ task, classes: index.classes, samples: index.entries as TaskSample[], stats: index.stats }, holdOut);
  const [trainEntries, heldEntries] = [split.train, split.held];
  if (trainEntries.length === 0) throw tooFew(index.entries.length);
  const held = [...(await InMemorySamples.load(index.kind, heldEntries)).samples];
  const first = held[0] ?? (await InMemorySamples.load(index.kind, trainEntries.slice(0, 1))).samples[0]!;
  const d: TaskDataset = { task, classes: index.classes, samples: held, stats: index.stats };
  const channels = first.images[0]!.channels;
  if ((o.loader ?? 'stream') === 'memory') return { d, held, loader: await InMemorySamples.load(index.kind, trainEntries), channels };
  const loader = new StreamingSamples(index.kind, trainEntries, { workers: o.workers, prefetch: o.prefetch });
  return { d, held, loader, channels, streamed: `${loader.workers} decode worker(s), ${loader.depth} batches ahead` };
}

/** Samples already in memory behind the loader interface. */
function inMemory(samples: readonly TaskSample[]): SampleLoader {
  return {
    length: samples.length,
    prefetch: () => {},
    take: async (_key, indices) => indices.map((i) => samples[i]!),
    close: async () => {},
  };
}

/**
 * Checks every option of {@link runFinetune} before anything is read or written: numbers in range,
 * `stride` ≤ `crop`, the preset and task known, no `init` with `resume` (a resumed run's weights
 * are its checkpoint's).
 * @throws SkySenseError `E_ARG` naming the option, the expected and the actual value.
 */
export function checkFinetuneOptions(o: RunFinetuneOptions): void {
  checkOptions(o, {
    steps: { int: [1] },
    batchSize: { int: [1] },
    crop: { int: [8] },
    stride: { int: [1] },
    holdOut: { int: [0] },
    lr: { positive: true },
    layerDecayRate: { range: [0, 1] },
    warmupIters: { int: [0] },
    checkpointEvery: { int: [1] },
    seed: { int: [0] },
    workers: { int: [0] },
    prefetch: { int: [0] },
  });
  if (o.loader !== undefined && o.loader !== 'stream' && o.loader !== 'memory')
    throw new SkySenseError('E_ARG', `loader: expected 'stream' or 'memory', got ${JSON.stringify(o.loader)}`);
  if (o.task !== undefined) getTask(o.task);
  if (o.preset !== undefined && !(o.preset in FINETUNE_PRESETS))
    throw new SkySenseError(
      'E_ARG',
      `preset: expected one of ${Object.keys(FINETUNE_PRESETS).join(', ')}, got ${JSON.stringify(o.preset)}`,
    );
  const crop = o.crop ?? (o.preset ? FINETUNE_PRESETS[o.preset].train.crop : undefined);
  if (o.stride !== undefined && crop !== undefined && o.stride > crop)
    throw new SkySenseError(
      'E_ARG',
      `stride: expected at most the crop (${crop} px; larger strides leave pixels unpredicted), got ${o.stride}`,
    );
  const preset = FINETUNE_PRESETS[o.preset ?? getTask(o.task ?? 'seg').defaultPreset];
  if (o.batchSize === 1 && preset?.decodeHead?.poolScales.includes(1))
    throw new SkySenseError(
      'E_ARG',
      "batchSize: UperNet's pyramid pooling normalises a 1 × 1 map with BatchNorm, which needs at least 2 samples per step (as in PyTorch), got 1",
    );
  if (o.init && o.resume)
    throw new SkySenseError('E_ARG', "init: a resumed run's weights come from its checkpoint; drop --init or --resume");
  if (typeof o.out !== 'string' || o.out === '')
    throw new SkySenseError('E_ARG', `out: expected an output folder, got ${JSON.stringify(o.out)}`);
}

/** Evaluates and, where the task predicts masks and `out` is given, writes them. */
function evaluateAndDraw(
  model: FinetuneModel,
  d: TaskDataset,
  samples: readonly TaskSample[],
  o: { crop: number; stride?: number; out?: string; scoreThr?: number; log: (l: string) => void },
): TaskEvaluation {
  const out = o.out;
  const names = uniqueFileNames(samples.map((s) => s.name));
  if (out) ensureDir(out, 'predictions folder');
  const onMask = out
    ? (s: TaskSample, pred: Int32Array) => {
        const name = names.get(s.name)!;
        writeMaskPngs(out, name, s.preview ? [s.preview] : s.images, nodataBlack(pred.slice(), s), d.classes, s.mask);
        o.log(
          `${s.name}: wrote ${join(out, `${name}.png`)} and ${name}.side.png (input${s.images.length > 1 ? 's A | B' : ''} | prediction | ground truth)`,
        );
      }
    : undefined;
  const onDetections = out
    ? (s: TaskSample, dets: Detections) => {
        const name = names.get(s.name)!;
        const img = s.images[0]!;
        const truth = { boxes: s.boxes ?? new Float32Array(0), labels: s.boxLabels ?? new Int32Array(0) };
        const shown = aboveScore(dets, o.scoreThr);
        const panels = [
          drawBoxes(inputRgb(img), img.width, img.height, shown, d.classes),
          drawBoxes(inputRgb(img), img.width, img.height, truth, d.classes),
        ];
        writeSideBySide(join(out, `${name}.side.png`), panels, img.width, img.height);
        o.log(
          `${s.name}: ${dets.scores.length} boxes, ${shown.scores.length} drawn (score > ${o.scoreThr ?? DRAW_SCORE_THR}); wrote ${join(out, `${name}.side.png`)} (prediction | ground truth)`,
        );
      }
    : undefined;
  let scored = false;
  const onScores = out
    ? (s: TaskSample, scores: number[]) => {
        scored = true;
        const file = join(out, `${names.get(s.name)!}.bars.png`);
        writeBars(
          file,
          d.classes.map((c, k) => ({ label: c.name, value: scores[k]!, marked: s.targets ? s.targets[k] === 1 : s.label === k })),
        );
        o.log(`${s.name}: wrote ${file} (probability per class; green: the sample's labels; red line: 0.5)`);
      }
    : undefined;
  const r = evaluateTask(model, d, samples, { crop: o.crop, stride: o.stride, onMask, onDetections, onScores });
  const ap = r.scores.ap as number[] | undefined;
  if (out && ap && scored) {
    writeBars(
      join(out, 'classes.png'),
      d.classes.map((c, k) => ({ label: c.name, value: ap[k]!, marked: !Number.isNaN(ap[k]!) })),
    );
    o.log(`wrote ${join(out, 'classes.png')} (AP per class over the ${samples.length} samples; n/a: no positive among them)`);
  }
  return r;
}

/** A predicted mask with the sample's nodata marked ignore (drawn black): nodata in any image, or for the frames of a series where no frame has data. */
function nodataBlack(pred: Int32Array, s: TaskSample): Int32Array {
  return ignoreNodata(pred, s.images, s.sources || (s.dates?.length ?? 0) > 1 ? 'all' : 'any');
}

/** Writes bars (see `drawBars`) as a PNG. */
function writeBars(file: string, bars: Bar[]): void {
  const { rgb, width, height } = drawBars(bars);
  writePng(file, rgb, width, height);
}

/** Metadata stored with a fine-tuned model. */
export interface FinetunedMeta {
  task: FinetuneTask;
  preset: FinetunePresetName;
  classes: ClassDef[];
}

/** Writes a fine-tuned model's weights with what rebuilds it (task, preset, classes, bands), atomically. */
export function saveFinetuned(file: string, model: FinetuneModel, meta: FinetunedMeta): void {
  const inChannels = (model.backbone as unknown as { options?: { inChannels?: number } }).options?.inChannels;
  saveSafetensors(file, model.stateDict(), {
    metadata: {
      format: MODEL_FORMAT,
      task: meta.task,
      preset: meta.preset,
      classes: JSON.stringify(meta.classes),
      ...(inChannels !== undefined ? { in_channels: String(inChannels) } : {}),
    },
  });
}

/**
 * Rebuilds a model saved by {@link saveFinetuned} (eval mode).
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { loadFinetuned } from '@skysense/skysense';
 * await initBackend();
 * // a fine-tuned model with its task, preset and classes, as saved by runFinetune
 * const { model, task, preset, classes } = loadFinetuned('my-model.safetensors');
 * console.log(task, preset, classes.map((c) => c.name));
 * model.dispose();
 * ```
 */
export function loadFinetuned(file: string): FinetunedMeta & { model: FinetuneModel } {
  if (!existsSync(file)) throw new SkySenseError('E_IO', `${file}: no such file`);
  const header = SafetensorsFile.open(file);
  const meta = header.metadata;
  header.close();
  if (meta.format !== MODEL_FORMAT)
    throw new SkySenseError(
      'E_STATE_DICT',
      `${file}: not a SkySense fine-tuned model (format '${meta.format ?? 'none'}'; 'skysense finetune' writes model.safetensors)`,
    );
  const classes = JSON.parse(meta.classes ?? '[]') as ClassDef[];
  const task = meta.task as FinetuneTask;
  const preset = (meta.preset ?? getTask(task).defaultPreset) as FinetunePresetName;
  const model = buildFinetuneModel(task, preset, classes.length, meta.in_channels ? { inChannels: Number(meta.in_channels) } : {});
  const weights = loadSafetensors(file);
  try {
    model.loadStateDict(weights);
  } finally {
    tf.dispose([...weights.values()]);
  }
  model.eval();
  return { model, task, preset, classes };
}

/** Fraction of pixels that are nodata in any of the images (0 when none has a mask). */
function nodataFraction(images: readonly PlanarImage[]): number {
  const n = images[0]!.width * images[0]!.height;
  let bad = 0;
  for (let i = 0; i < n; i++) if (images.some((img) => img.valid && !img.valid[i])) bad++;
  return bad / n;
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

/** Writes `<name>.png` (colour mask) and `<name>.side.png` (input(s) | prediction [| ground truth], 8 px apart). */
function writeMaskPngs(
  dir: string,
  name: string,
  images: readonly PlanarImage[],
  pred: ArrayLike<number>,
  classes: readonly ClassDef[],
  truth?: ArrayLike<number>,
): void {
  const { width: w, height: h } = images[0]!;
  writePng(join(dir, `${name}.png`), colorizeMask(pred, classes), w, h);
  const panels = [...images.map(inputRgb), colorizeMask(pred, classes), ...(truth ? [colorizeMask(truth, classes)] : [])];
  writeSideBySide(join(dir, `${name}.side.png`), panels, w, h);
}

/** Writes RGB panels of one size side by side, 8 px of white apart. */
function writeSideBySide(file: string, panels: readonly Uint8Array[], w: number, h: number): void {
  const gap = 8;
  const W = panels.length * w + (panels.length - 1) * gap;
  const side = new Uint8Array(W * h * 3).fill(255);
  panels.forEach((p, k) => {
    for (let y = 0; y < h; y++) side.set(p.subarray(y * w * 3, (y + 1) * w * 3), (y * W + k * (w + gap)) * 3);
  });
  writePng(file, side, W, h);
}

/** The first three channels of an image as RGB bytes (values clamped to 0–255); a 10-band Sentinel-2 image in true colour. */
function inputRgb(input: PlanarImage): Uint8Array {
  const image = input.channels === 10 ? s2TrueColour(input) : input;
  const n = image.width * image.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++)
    for (let c = 0; c < 3; c++) out[3 * i + c] = Math.max(0, Math.min(255, Math.round(image.data[(image.channels >= 3 ? c : 0) * n + i]!)));
  return out;
}

/** Options of {@link runPredict}. */
export interface RunPredictOptions {
  /** A `model.safetensors` written by `skysense finetune`. */
  model: string;
  /** Image files or folders (for change detection: A and B images, alternating). */
  inputs: string[];
  /** Output folder. */
  out: string;
  /** Window side (`seg`). Default: the preset's training crop. */
  crop?: number;
  stride?: number;
  /** `det`: boxes scoring above this are drawn (mmdet's `show_result`; `detections.json` keeps every box). Default 0.3. */
  scoreThr?: number;
  log?: (line: string) => void;
}

/**
 * Predicts with a fine-tuned model: colour masks `<name>.png` and `<name>.side.png` (seg, change),
 * or class probabilities in `predictions.json` and one line per image (cls, multilabel).
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { runPredict } from '@skysense/skysense';
 * await initBackend();
 * // label maps for new images, tiled with overlap; returns the written files
 * const written = await runPredict({ model: 'my-model.safetensors', inputs: ['my-tiles/images/tile1_image_part_001.jpg'], out: 'predictions' });
 * console.log(written);
 * ```
 */
export async function runPredict(o: RunPredictOptions): Promise<string[]> {
  checkOptions(o, { crop: { int: [8] }, stride: { int: [1] }, scoreThr: { range: [0, 1] } });
  const log = o.log ?? console.log;
  const { model, classes, preset, task } = loadFinetuned(o.model);
  try {
    const def = getTask(task);
    if (def.index) return await predictIndexed(model, def, classes, o, log);
    const files = o.inputs.flatMap((p) => (existsSync(p) && statSync(p).isDirectory() ? listImages(p) : [p]));
    const step = def.inputs;
    if (files.length === 0 || files.length % step)
      throw new SkySenseError(
        'E_ARG',
        `predict: expected ${step === 2 ? 'pairs of images (A B A B …)' : 'input images'}, got ${files.length} file(s)`,
      );
    const names = uniqueFileNames(
      Array.from({ length: files.length / step }, (_, k) => basename(files[k * step]!, extname(files[k * step]!))),
    );
    ensureDir(o.out, '--out');
    const written: string[] = [];
    const results: Record<string, Record<string, number>> = {};
    const detections: Record<string, DetectionRecords> = {};
    for (let i = 0; i < files.length; i += step) {
      const images = await allInOrder(files.slice(i, i + step).map((f) => (def.readInput ? def.readInput(f) : readImage(f))));
      const name = names.get(basename(files[i]!, extname(files[i]!)))!;
      const p = def.predict(model, images, def.stats(images[0]!.channels), {
        crop: o.crop ?? FINETUNE_PRESETS[preset].train.crop,
        stride: o.stride,
      });
      if ('detections' in p) {
        const img = images[0]!;
        written.push(join(o.out, `${name}.png`));
        const shown = aboveScore(p.detections, o.scoreThr);
        writePng(written.at(-1)!, drawBoxes(inputRgb(img), img.width, img.height, shown, classes), img.width, img.height);
        detections[name] = await detectionRecords(files[i]!, p.detections, classes, log);
        log(`${files[i]}: ${p.detections.scores.length} boxes (${shown.scores.length} drawn) → ${written.at(-1)}`);
        continue;
      }
      if ('scores' in p) {
        results[name] = Object.fromEntries(classes.map((c, k) => [c.name, p.scores[k]!]));
        const top = classes
          .map((c, k) => [c.name, p.scores[k]!] as const)
          .sort((a, b) => b[1] - a[1])
          .slice(0, 3);
        log(`${files[i]}: ${top.map(([n, v]) => `${n} ${v.toFixed(3)}`).join(', ')}`);
        continue;
      }
      writeMaskPngs(o.out, name, images, ignoreNodata(p.mask, images), classes);
      written.push(join(o.out, `${name}.png`));
      const nodata = nodataFraction(images);
      log(
        `${files.slice(i, i + step).join(' + ')} → ${join(o.out, `${name}.png`)}, ${name}.side.png${nodata ? ` (${(100 * nodata).toFixed(1)}% nodata, drawn black)` : ''}`,
      );
    }
    if (Object.keys(results).length) {
      written.push(join(o.out, 'predictions.json'));
      writeFileAtomic(written.at(-1)!, `${JSON.stringify(results, null, 2)}\n`);
    }
    if (Object.keys(detections).length) written.push(...writeDetections(o.out, detections));
    return written;
  } finally {
    model.dispose();
  }
}

/** Predicts for the samples of data folders a task indexes: class scores (`predictions.json` and a bar picture per sample) or masks (`<name>.png`, `<name>.side.png`). */
async function predictIndexed(
  model: FinetuneModel,
  def: FinetuneTaskDef,
  classes: ClassDef[],
  o: RunPredictOptions,
  log: (line: string) => void,
): Promise<string[]> {
  ensureDir(o.out, '--out');
  const results: Record<string, Record<string, number>> = {};
  const written: string[] = [];
  for (const input of o.inputs) {
    const index = await def.index!(input); // labels, if any, are not used: the model's classes name the scores
    const names = uniqueFileNames(index.entries.map((e) => e.name));
    for (const entry of index.entries) {
      const s = await DECODERS[index.kind](entry as never); // one at a time: a large folder is never held whole
      const p = def.predict(model, s.images, index.stats, { crop: 0, sample: s });
      if ('mask' in p) {
        const name = names.get(s.name)!;
        writeMaskPngs(o.out, name, s.preview ? [s.preview] : s.images, nodataBlack(p.mask, s), classes);
        written.push(join(o.out, `${name}.png`));
        log(`${s.name} → ${written.at(-1)}, ${name}.side.png`);
        continue;
      }
      if (!('scores' in p)) continue;
      results[s.name] = Object.fromEntries(classes.map((c, k) => [c.name, p.scores[k]!]));
      written.push(join(o.out, `${names.get(s.name)!}.bars.png`));
      writeBars(
        written.at(-1)!,
        classes.map((c, k) => ({ label: c.name, value: p.scores[k]!, marked: false })),
      );
      const top = classes.map((c, k) => [c.name, p.scores[k]!] as const).filter(([, v]) => v >= 0.5);
      log(`${s.name}: ${top.map(([n, v]) => `${n} ${v.toFixed(3)}`).join(', ') || 'no class at p ≥ 0.5'} → ${written.at(-1)}`);
    }
  }
  if (Object.keys(results).length) {
    written.push(join(o.out, 'predictions.json'));
    writeFileAtomic(written.at(-1)!, `${JSON.stringify(results, null, 2)}\n`);
  }
  return written;
}

/** Options of {@link runEval}. */
export interface RunEvalOptions {
  model: string;
  /** The task's data (as for `finetune`; default: the task's sample data). */
  data?: string;
  /** Evaluate only the held-out part (`finetune --hold-out N`). Default: every sample. */
  last?: number;
  crop?: number;
  stride?: number;
  /** Where to write predicted masks and side-by-side pictures (seg, change, det). Default: none written. */
  out?: string;
  /** `det`: boxes scoring above this are drawn. Default 0.3. */
  scoreThr?: number;
  log?: (line: string) => void;
}

/**
 * Evaluates a fine-tuned model on its task's data and prints the metrics table.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { runEval } from '@skysense/skysense';
 * await initBackend();
 * // scores of a fine-tuned model (skysense finetune's model.safetensors) on labelled tiles
 * const evaluation = await runEval({ model: 'my-model.safetensors', data: 'my-tiles', last: 2 });
 * console.log(evaluation.table);
 * ```
 */
export async function runEval(o: RunEvalOptions): Promise<TaskEvaluation> {
  checkOptions(o, { last: { int: [1] }, crop: { int: [8] }, stride: { int: [1] }, scoreThr: { range: [0, 1] } });
  const log = o.log ?? console.log;
  const { model, classes, preset, task } = loadFinetuned(o.model);
  try {
    const d = { ...(await loadTaskDataset(task, o.data, classes)), classes };
    const items = o.last ? splitHoldOut(d, o.last).held : d.samples;
    const crop = o.crop ?? FINETUNE_PRESETS[preset].train.crop;
    const r = evaluateAndDraw(model, d, items, { crop, stride: o.stride, out: o.out, scoreThr: o.scoreThr, log });
    log(r.table);
    return r;
  } finally {
    model.dispose();
  }
}

/** One image's detections as records, and as GeoJSON features (lon/lat) where the input is a georeferenced GeoTIFF. */
interface DetectionRecords {
  boxes: { class: string; score: number; bbox: number[] }[];
  features: object[] | null;
}

/**
 * One image's detections as records and, for a GeoTIFF in a CRS we can convert, as GeoJSON polygons in
 * WGS 84 (corners in counter-clockwise order, RFC 7946). A CRS we cannot convert is reported, not fatal.
 */
async function detectionRecords(
  file: string,
  dets: Detections,
  classes: readonly ClassDef[],
  log: (line: string) => void,
): Promise<DetectionRecords> {
  const boxes = Array.from(dets.scores, (score, i) => ({
    class: classes[dets.labels[i]!]?.name ?? String(dets.labels[i]),
    score,
    bbox: Array.from(dets.boxes.subarray(4 * i, 4 * i + 4)),
  }));
  const geo = /\.tiff?$/i.test(file) ? await readGeoTiff(file) : null;
  if (!geo?.epsg) return { boxes, features: null };
  const at = (px: number, py: number) => {
    const [lat, lon] = toLatLon(geo.origin[0] + px * geo.resolution[0], geo.origin[1] + py * geo.resolution[1], geo.epsg!);
    return [lon, lat];
  };
  try {
    const features = boxes.map((b) => {
      const [x1, y1, x2, y2] = b.bbox as [number, number, number, number];
      return {
        type: 'Feature',
        properties: { class: b.class, score: b.score, image: basename(file) },
        geometry: { type: 'Polygon', coordinates: [[at(x1, y1), at(x1, y2), at(x2, y2), at(x2, y1), at(x1, y1)]] },
      };
    });
    return { boxes, features };
  } catch (e) {
    log(`${file}: no GeoJSON for this image (${(e as Error).message})`);
    return { boxes, features: null };
  }
}

/** Writes `detections.json` (pixel boxes per image) and, where any input was georeferenced, `detections.geojson`. */
function writeDetections(dir: string, all: Record<string, DetectionRecords>): string[] {
  const files = [join(dir, 'detections.json')];
  writeFileAtomic(files[0]!, `${JSON.stringify(Object.fromEntries(Object.entries(all).map(([k, v]) => [k, v.boxes])), null, 2)}\n`);
  const features = Object.values(all).flatMap((v) => v.features ?? []);
  if (features.length || Object.values(all).some((v) => v.features)) {
    files.push(join(dir, 'detections.geojson'));
    writeFileAtomic(files[1]!, `${JSON.stringify({ type: 'FeatureCollection', features })}\n`);
  }
  return files;
}

/** The score from which detections are drawn (mmdet's `show_result`). */
const DRAW_SCORE_THR = 0.3;

/** The detections scoring above `thr` (default {@link DRAW_SCORE_THR}), as mmdet's `imshow_det_bboxes`. */
function aboveScore(d: Detections, thr = DRAW_SCORE_THR): Detections {
  const keep = Array.from(d.scores.keys()).filter((i) => d.scores[i]! > thr);
  return {
    boxes: Float32Array.from(keep.flatMap((i) => Array.from(d.boxes.subarray(4 * i, 4 * i + 4)))),
    scores: Float32Array.from(keep, (i) => d.scores[i]!),
    labels: Int32Array.from(keep, (i) => d.labels[i]!),
  };
}
