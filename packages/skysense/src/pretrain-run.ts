import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Generator,
  SkySenseError,
  checkOptions,
  checkRunFolder,
  manualSeed,
  openRun,
  runSettings,
  saveSafetensors,
  tf,
  trainingLoop,
  type Tensor,
} from '@skysense/core-tensor';
import { Pretrainer, type PretrainBatch, type PretrainOptions, type PretrainTerms, type StepMetrics, checkTerms } from './pretrain';
import { SKYSENSE_PRESETS, type SkySensePresetName } from './presets';
import { bigEarthNetPairs, disposeSample } from './embed';
import {
  FUSION_GRID_RATIO,
  hrOnFusionGrid,
  type LoadedSample,
  type MultiCropOptions,
  type SampleManifest,
  loadSample,
  readManifest,
  samplesDir,
} from '@skysense/data';

/** Options of {@link runPretrain} (the `skysense pretrain` command). */
export interface RunPretrainOptions {
  /** Default `skysense-tiny`. */
  preset?: SkySensePresetName;
  /** A sample folder (its BigEarthNet S1+S2 pairs, or with `hr` its NAIP tiles) or a manifest file. Default `SKYSENSE_SAMPLES`. */
  data?: string;
  /** Pre-train the HR branch on the folder's NAIP tiles (RGB) instead of the Sentinel pairs. */
  hr?: boolean;
  /** Output folder: `checkpoint.safetensors`, `teacher.safetensors`, `metrics.jsonl`. */
  out: string;
  /** Total steps. Default 100. */
  steps?: number;
  /** Samples per step. Default 4. */
  batchSize?: number;
  /** Side of the random crop in pixels of the input. Default 32 (Sentinel), 128 (HR). */
  crop?: number;
  /** Random fixed-length sub-sequences of the Sentinel series (frames per sample). Default: all frames. */
  frames?: { s2?: number; s1?: number };
  /** Micro-batches per step whose gradients are averaged (gradient accumulation). Default 1. */
  accumulate?: number;
  /** Checkpoint every N steps (and at the end). Default 25. */
  checkpointEvery?: number;
  /** Continue from `out/checkpoint.safetensors` with the run's settings (`steps` may extend it; other options that differ are refused). */
  resume?: boolean;
  /** Replace the run in `out`. Without it a fresh run into a folder holding a run is refused. */
  overwrite?: boolean;
  /** Seed. Default 0. */
  seed?: number;
  /** Peak learning rate. Default 5e-4. */
  lr?: number;
  /** HR multi-crop (with `hr`): two global and `localCrops` local crops per tile. Default: off. */
  multiCrop?: MultiCropOptions;
  /** Parts of the objective switched off (paper Tab. 5b ablations): `pixel`, `object`, `image`, `fusion`, `align`, `gcpl`. Default: none. */
  ablate?: (keyof PretrainTerms)[];
  /** The fusion term's feature (see {@link PretrainOptions.fusionFeature}). Default `geo-context`. */
  fusionFeature?: PretrainOptions['fusionFeature'];
  /** The teacher sees its own augmented view. Default `true`. */
  teacherAugment?: boolean;
  /** Photometric draws per image (`true`) or per micro-batch. Default `true`. */
  augmentPerImage?: boolean;
  /** Progress and summary lines. Default console.log. */
  log?: (line: string) => void;
}

/** Small heads for the toy preset; the paper-sized ones (65,536 / 8,192) otherwise. */
const HEADS: Partial<Record<SkySensePresetName, { outDim: number; pixelOutDim: number; hiddenDim: number; bottleneckDim: number }>> = {
  'skysense-tiny': { outDim: 1024, pixelOutDim: 256, hiddenDim: 256, bottleneckDim: 64 },
};

/**
 * Pre-trains SkySense on the Sentinel-2 + Sentinel-1 pairs of a folder or manifest (each step: random
 * samples, one random co-registered crop per sample), with progress lines (loss, terms, samples/s,
 * ETA), a JSONL metrics log, atomic checkpoints, and exact `--resume`. The model keeps the branches the
 * samples have: Sentinel pairs (S2 + S1, alignment between them) or, with `hr`, HR tiles (HR + fusion).
 * @returns the metrics of every step run in this call.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { runPretrain } from '@skysense/skysense';
 * await initBackend();
 * // SkySense pre-training on the samples (EMA teacher, MGCL + alignment), resumable from its run folder
 * const metrics = await runPretrain({ preset: 'skysense-tiny', out: 'pretrain-run', steps: 2, batchSize: 2 });
 * console.log(metrics.at(-1)); // loss terms of the last step
 * ```
 */
export async function runPretrain(o: RunPretrainOptions): Promise<StepMetrics[]> {
  const log = o.log ?? console.log;
  const resume = o.resume ?? false;
  checkPretrainOptions(o);
  checkRunFolder(o.out, { resume, overwrite: o.overwrite });
  const given = { preset: o.preset, data: o.data, hr: o.hr, crop: o.crop, batchSize: o.batchSize, accumulate: o.accumulate, seed: o.seed };
  const hrGiven = o.hr ?? false;
  const fresh = {
    ...given,
    preset: o.preset ?? 'skysense-tiny',
    hr: hrGiven,
    crop: o.crop,
    batchSize: o.batchSize ?? 4,
    accumulate: o.accumulate ?? 1,
    seed: o.seed ?? 0,
  };
  const run = resume ? runSettings(o.out, true, given, log) : fresh;
  const [preset, data, hr] = [run.preset ?? 'skysense-tiny', run.data, run.hr ?? false];
  const [batchSize, accumulate, seed] = [run.batchSize ?? 4, run.accumulate ?? 1, run.seed ?? 0];
  const samples = await loadSamples(data ?? samplesDir(), run.crop, hr, log);
  const has = { hr: !!samples[0]!.hr, s2: !!samples[0]!.s2, s1: !!samples[0]!.s1 };
  const crop = run.crop ?? defaultCrop(has);
  let opened: { trainer: Pretrainer; release: () => void };
  try {
    opened = openRun(
      o.out,
      {
        resume,
        overwrite: o.overwrite,
        settings: run,
        given: { steps: o.steps, lr: o.lr, frames: o.frames, multiCrop: o.multiCrop, ...fidelity(o) },
        log,
      },
      {
        fresh: () => {
          manualSeed(seed);
          const p = SKYSENSE_PRESETS[preset];
          const config = { ...p, hr: has.hr ? p.hr : undefined, s2: has.s2 ? p.s2 : undefined, s1: has.s1 ? p.s1 : undefined };
          return new Pretrainer({
            config,
            steps: o.steps ?? 100,
            seed,
            lr: o.lr,
            heads: HEADS[preset],
            frames: o.frames,
            multiCrop: o.multiCrop,
            ...fidelity(o),
          });
        },
        resume: (file, steps) => Pretrainer.resume(file, steps),
      },
    );
  } catch (e) {
    samples.forEach(disposeSample);
    throw e;
  }
  const { trainer, release } = opened;
  const total = trainer.options.steps;
  const ckpt = join(o.out, 'checkpoint.safetensors');
  try {
    const metrics = trainingLoop({
      trainer,
      total,
      seed,
      out: o.out,
      checkpointEvery: o.checkpointEvery ?? 25,
      samplesPerStep: batchSize * accumulate,
      log,
      step: (g) => {
        const micro = Array.from({ length: accumulate }, () => makeBatch(samples, batchSize, crop, g));
        try {
          return trainer.trainStep(micro);
        } finally {
          tf.dispose(micro.flatMap((b) => [b.hr, b.s2?.frames, b.s1?.frames]).filter((t): t is Tensor => t !== undefined));
        }
      },
      describe: (m) => {
        const parts = ['hr', 's2', 's1', 'fusion']
          .map((s) => [s, ['pixel', 'object', 'image'].reduce((a, t) => a + (m.terms[`${s}.${t}`] ?? 0), 0)] as const)
          .filter(([s]) => ['pixel', 'object', 'image'].some((t) => `${s}.${t}` in m.terms));
        return `loss ${m.loss.toFixed(4)} (mgcl ${m.mgcl.toFixed(3)} [${parts.map(([s, v]) => `${s} ${v.toFixed(3)}`).join(', ')}], align ${m.align.toFixed(3)}) lr ${m.lr.toExponential(2)}`;
      },
    });
    saveSafetensors(join(o.out, 'teacher.safetensors'), trainer.teacher, { metadata: { preset, steps: String(total) } });
    log(`wrote ${ckpt} and ${join(o.out, 'teacher.safetensors')} (the teacher: the model to use downstream)`);
    return metrics;
  } finally {
    trainer.dispose();
    samples.forEach(disposeSample);
    release();
  }
}

/**
 * Checks every option of {@link runPretrain} before anything is read or written.
 * @throws SkySenseError `E_ARG` naming the option, the expected and the actual value.
 */
export function checkPretrainOptions(o: RunPretrainOptions): void {
  checkOptions(o, {
    steps: { int: [1] },
    batchSize: { int: [1] },
    crop: { int: [8] },
    accumulate: { int: [1] },
    checkpointEvery: { int: [1] },
    seed: { int: [0] },
    lr: { positive: true },
  });
  checkOptions(o.frames ?? {}, { s2: { int: [1] }, s1: { int: [1] } });
  if (o.multiCrop) checkOptions(o.multiCrop, { localCrops: { int: [0] } });
  const parts = ['pixel', 'object', 'image', 'fusion', 'align', 'gcpl'];
  for (const t of o.ablate ?? [])
    if (!parts.includes(t)) throw new SkySenseError('E_ARG', `ablate: expected terms among ${parts.join(', ')}, got ${JSON.stringify(t)}`);
  checkTerms(fidelity(o).terms, o.fusionFeature);
  if (o.preset !== undefined && !(o.preset in SKYSENSE_PRESETS))
    throw new SkySenseError(
      'E_ARG',
      `preset: expected one of ${Object.keys(SKYSENSE_PRESETS).join(', ')}, got ${JSON.stringify(o.preset)}`,
    );
  if (typeof o.out !== 'string' || o.out === '')
    throw new SkySenseError('E_ARG', `out: expected an output folder, got ${JSON.stringify(o.out)}`);
}

/** The NAIP tiles of a sample folder as HR-only manifests (R, G, B). */
function naipTiles(root: string): SampleManifest[] {
  const dir = join(root, 'naip-timeseries');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.tif'))
    .sort()
    .map((f) => ({ name: f.replace(/\.tif$/, ''), hr: { file: join(dir, f), bands: 3 as const } }));
}

/** The fidelity and ablation options of a run as the trainer takes them (unset ones left out, so a resume compares only what was given). */
function fidelity(o: RunPretrainOptions): Partial<PretrainOptions> {
  return {
    ...(o.ablate?.length ? { terms: Object.fromEntries(o.ablate.map((t) => [t, false])) } : {}),
    ...(o.fusionFeature !== undefined ? { fusionFeature: o.fusionFeature } : {}),
    ...(o.teacherAugment !== undefined ? { teacherAugment: o.teacherAugment } : {}),
    ...(o.augmentPerImage !== undefined ? { augmentPerImage: o.augmentPerImage } : {}),
  };
}

/** Default crop in input pixels: 128 for HR tiles, 32 for Sentinel pairs, 4 Sentinel pixels (= 128 HR pixels) for co-registered triples. */
function defaultCrop(has: { hr: boolean; s2: boolean }): number {
  return has.hr ? (has.s2 ? 4 : 128) : 32;
}

/** Loads every sample; all must carry the same modalities (HR, Sentinel, or co-registered HR + S2 + S1, the HR resampled onto the fusion grid). */
async function loadSamples(data: string, crop: number | undefined, hr: boolean, log: (line: string) => void): Promise<LoadedSample[]> {
  const manifests = data.endsWith('.json') ? readManifest(data) : hr ? naipTiles(data) : bigEarthNetPairs(data);
  if (manifests.length === 0)
    throw new SkySenseError(
      'E_IO',
      `${data}: no ${hr ? 'NAIP HR tiles (naip-timeseries/*.tif)' : 'Sentinel-2 + Sentinel-1 pairs'} found (set SKYSENSE_SAMPLES, run 'skysense samples', or give a manifest)`,
    );
  const loaded: LoadedSample[] = [];
  try {
    for (const m of manifests) {
      const s = await loadSample(m);
      loaded.push(s);
      const grid = s.hr && s.s2 && hrOnFusionGrid(s.hr, s.s2.frames.shape.slice(-2) as [number, number]);
      if (grid) {
        log(
          `${s.name}: HR ${s.hr!.shape.slice(-2).join(' × ')} px resampled (bilinear) to ${grid.shape.slice(-2).join(' × ')}, ${FUSION_GRID_RATIO} HR pixels per Sentinel pixel (the fusion grid)`,
        );
        s.hr!.dispose();
        s.hr = grid;
        s.hrValid = undefined; // on the old grid; pre-training batches do not read it
      }
      checkSample(s, loaded[0]!, crop ?? defaultCrop({ hr: !!s.hr, s2: !!s.s2 }));
    }
    return loaded;
  } catch (e) {
    loaded.forEach(disposeSample);
    throw e;
  }
}

function checkSample(s: LoadedSample, first: LoadedSample, crop: number): void {
  const kinds = (x: LoadedSample) => (['hr', 's2', 's1'] as const).filter((k) => x[k]).join('+');
  if (kinds(s) !== kinds(first))
    throw new SkySenseError(
      'E_ARG',
      `${s.name}: every sample needs the same modalities (${kinds(first)} like ${first.name}), got ${kinds(s) || 'none'}`,
    );
  const size = (s.s2?.frames ?? s.hr ?? s.s1!.frames).shape.slice(-2);
  if (size[0]! < crop || size[1]! < crop)
    throw new SkySenseError('E_ARG', `${s.name}: images of at least ${crop} px are needed (--crop), got ${size.join(' × ')}`);
  if (s.s2 && s.s2.frames.shape[1] !== first.s2!.frames.shape[1])
    throw new SkySenseError(
      'E_ARG',
      `${s.name}: every sample needs the same number of S2 frames (${first.s2!.frames.shape[1]} like ${first.name}), got ${s.s2.frames.shape[1]}`,
    );
  if (s.s1 && s.s1.frames.shape[1] !== first.s1!.frames.shape[1])
    throw new SkySenseError(
      'E_ARG',
      `${s.name}: every sample needs the same number of S1 frames (${first.s1!.frames.shape[1]} like ${first.name}), got ${s.s1.frames.shape[1]}`,
    );
  if (!s.s2 !== !s.s1) throw new SkySenseError('E_ARG', `${s.name}: Sentinel pre-training needs both S2 and S1 frames`);
}

/** Random samples, each with one random crop shared by its modalities (in Sentinel pixels when it has both; the HR window is {@link FUSION_GRID_RATIO} times larger). */
function makeBatch(samples: LoadedSample[], n: number, crop: number, g: Generator): PretrainBatch {
  const picks = Array.from({ length: n }, () => samples[g.randint(samples.length)]!);
  const cut = (t: Tensor | undefined, y: number, x: number, k = 1) =>
    t && tf.slice(t, [...Array<number>(t.rank - 2).fill(0), k * y, k * x], [...Array<number>(t.rank - 2).fill(-1), k * crop, k * crop]);
  const crops = picks.map((s) => {
    const [h, w] = (s.s2?.frames ?? s.hr!).shape.slice(-2) as [number, number];
    const y = g.randint(h - crop + 1);
    const x = g.randint(w - crop + 1);
    const k = s.hr && s.s2 ? FUSION_GRID_RATIO : 1;
    return { hr: cut(s.hr, y, x, k), s2: cut(s.s2?.frames, y, x), s1: cut(s.s1?.frames, y, x) };
  });
  const stack = (k: 'hr' | 's2' | 's1') => {
    const parts = crops.map((c) => c[k]).filter((t): t is Tensor => t !== undefined);
    if (parts.length === 0) return undefined;
    const out = tf.concat(parts, 0);
    tf.dispose(parts);
    return out;
  };
  const [hr, s2, s1] = [stack('hr'), stack('s2'), stack('s1')];
  return {
    hr,
    s2: s2 && { frames: s2, dates: picks.map((s) => s.s2!.dates) },
    s1: s1 && { frames: s1, dates: picks.map((s) => s.s1!.dates) },
    lat: picks.map((s) => s.lat),
    lon: picks.map((s) => s.lon),
  };
}
