import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  SkySenseError,
  checkOptions,
  currentBackend,
  ensureDir,
  formatShape,
  manualSeed,
  markNodata,
  readJsonFile,
  safeFileName,
  saveSafetensors,
  tf,
  uniqueFileNames,
  writeFileAtomic,
  writePng,
  type Tensor,
} from '@skysense/core-tensor';
import { dayOfYear } from '@skysense/temporal-fusion';
import { SkySense, type ReleasedFiles, type SkySenseInputs, type SkySenseOutputs } from './skysense';
import { SKYSENSE_PRESETS } from './presets';
import { type SkySensePresetName } from './presets';
import { type LoadedSample, type NodataSummary, type SampleManifest, loadSample, readManifest, samplesDir } from '@skysense/data';
import { bandsRgb, enlarge, pcaRgb } from './render';

/** What was written for one sample. */
export interface EmbedSummary {
  name: string;
  lat: number;
  lon: number;
  region: number | null;
  dates: { s2: string[]; s1: string[] };
  dayOfYear: number[];
  fusedShape: number[];
  /** Mean and standard deviation of the fused map over the locations that hold data. */
  fusedMean: number;
  fusedStd: number;
  /**
   * How much was masked: per input the fraction of nodata pixels and the frames dropped; on the
   * output the fraction of locations without any observation (`output`, nodata in `fused.safetensors`'s
   * `coverage`) and with some inputs masked (`outputPartial`).
   */
  nodata: NodataSummary & { output: number; outputPartial: number };
  files: string[];
  seconds: number;
}

/** The model inputs of a loaded sample (batch of one), with its validity masks; `owned` are the tensors made here. */
export function sampleInputs(sample: LoadedSample): { inputs: SkySenseInputs; owned: Tensor[] } {
  const owned: Tensor[] = [];
  const own = <T extends Tensor>(t: T) => (owned.push(t), t);
  const series = (s: LoadedSample['s2']) => {
    if (!s) return undefined;
    const [, t, , h, w] = s.frames.shape as number[];
    const anyInvalid = s.pixelValid.some((v) => v === 0);
    return {
      frames: s.frames,
      dates: [s.dates],
      valid: s.frameValid.every(Boolean) ? undefined : [s.frameValid],
      pixelValid: anyInvalid ? own(tf.tensor4d(Float32Array.from(s.pixelValid), [1, t!, h!, w!])) : undefined,
    };
  };
  const [, , h, w] = (sample.hr?.shape ?? []) as number[];
  return {
    inputs: {
      hr: sample.hr,
      hrValid: sample.hrValid && own(tf.tensor3d(Float32Array.from(sample.hrValid), [1, h!, w!])),
      s2: series(sample.s2),
      s1: series(sample.s1),
      lat: [sample.lat],
      lon: [sample.lon],
    },
    owned,
  };
}

/**
 * Runs the model on one loaded sample and writes into `dir`: `fused.safetensors` (the fused map,
 * `with_geo_context` when the model has a bank, and `coverage` when the sample had nodata: locations
 * at 0 are nodata), `pca.png` (first three principal components of the fused features, fitted on the
 * locations with data; nodata striped magenta, partly masked locations hatched white),
 * `prototypes.png` (nearest geo-prototype per location) and, for Sentinel-2 input, `s2-rgb.png`
 * (B4, B3, B2 of the first frame, its nodata marked the same way).
 */
export function embedSample(model: SkySense, sample: LoadedSample, dir: string): EmbedSummary {
  const t0 = performance.now();
  ensureDir(dir);
  const { inputs, owned } = sampleInputs(sample);
  let out: SkySenseOutputs;
  try {
    out = model.forward(inputs);
  } finally {
    tf.dispose(owned);
  }
  const files: string[] = [];
  const keep = (name: string) => (files.push(name), join(dir, name));
  try {
    const [, , h, w] = out.fused.shape as number[];
    const coverage = out.coverage ? (out.coverage.dataSync() as Float32Array) : new Float32Array(h! * w!).fill(1);
    const tensors = new Map<string, Tensor>([['fused', out.fused]]);
    if (out.withGeoContext) tensors.set('with_geo_context', out.withGeoContext);
    if (out.coverage) tensors.set('coverage', out.coverage);
    saveSafetensors(keep('fused.safetensors'), tensors, {
      metadata: {
        sample: sample.name,
        lat: String(sample.lat),
        lon: String(sample.lon),
        ...(out.coverage ? { nodata: 'locations where coverage is 0 hold no observation' } : {}),
      },
    });
    const scale = Math.max(1, Math.floor(256 / Math.max(h!, w!)));
    const map = tf.tidy(() => tf.squeeze(out.fused, [0]));
    writePng(keep('pca.png'), markNodata(enlarge(pcaRgb(map, coverage), w!, h!, scale), coverage, w!, h!, scale), w! * scale, h! * scale);
    const region = model.geo ? model.geo.regionOf(sample.lat, sample.lon) : null;
    if (model.geo && region !== null) {
      model.geo.renderAssignmentMap(keep('prototypes.png'), map, region, scale, coverage);
    }
    map.dispose();
    if (sample.previewS2) {
      const p = sample.previewS2;
      const f = Math.max(1, Math.floor(256 / Math.max(p.height, p.width)));
      const rgb = enlarge(bandsRgb([p.bands[2]!, p.bands[1]!, p.bands[0]!]), p.width, p.height, f);
      writePng(keep('s2-rgb.png'), markNodata(rgb, p.valid, p.width, p.height, f), p.width * f, p.height * f);
    }
    const withData = Array.from(coverage, (c, i) => (c > 0 ? i : -1)).filter((i) => i >= 0);
    const [mean, std] = tf.tidy(() => {
      const cells = tf.reshape(tf.transpose(out.fused, [0, 2, 3, 1]), [h! * w!, -1]);
      const m = tf.moments(withData.length ? tf.gather(cells, withData) : cells);
      return [m.mean.dataSync()[0]!, Math.sqrt(m.variance.dataSync()[0]!)];
    });
    return {
      name: sample.name,
      lat: sample.lat,
      lon: sample.lon,
      region,
      dates: { s2: sample.s2?.dates ?? [], s1: sample.s1?.dates ?? [] },
      dayOfYear: (sample.s2?.dates ?? []).map((d) => dayOfYear(d)),
      fusedShape: [...out.fused.shape],
      fusedMean: mean!,
      fusedStd: std!,
      nodata: {
        ...sample.nodata,
        output: coverage.filter((c) => c <= 0).length / coverage.length,
        outputPartial: coverage.filter((c) => c > 0 && c < 1).length / coverage.length,
      },
      files,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    tf.dispose([out.fused, out.withGeoContext, out.coverage].filter((t): t is Tensor => t !== undefined));
  }
}

/** One line about a sample's nodata, or '' when it has none. */
export function describeNodata(n: EmbedSummary['nodata']): string {
  const pct = (f: number) => `${(100 * f).toFixed(1)}%`;
  const parts = [
    n.hr ? `HR ${pct(n.hr)}` : '',
    n.s2?.some((f) => f > 0) ? `S2 ${n.s2.map(pct).join('/')}` : '',
    n.s1?.some((f) => f > 0) ? `S1 ${n.s1.map(pct).join('/')}` : '',
  ].filter(Boolean);
  if (!parts.length) return '';
  const dropped = [...n.dropped.s2.map((i) => `S2 #${i}`), ...n.dropped.s1.map((i) => `S1 #${i}`)];
  return `nodata ${parts.join(', ')}${dropped.length ? ` (dropped ${dropped.join(', ')})` : ''}; output ${pct(n.output)} nodata, ${pct(n.outputPartial)} partly masked`;
}

/** Frees a loaded sample's tensors. */
export function disposeSample(s: LoadedSample): void {
  tf.dispose([s.hr, s.s2?.frames, s.s1?.frames].filter((t): t is Tensor => t !== undefined));
}

/** Options of {@link runEmbed} (the `skysense embed` command). */
export interface RunEmbedOptions {
  /** A JSON sample manifest (see `readManifest`). */
  manifest?: string;
  /** Without a manifest: Sentinel-2 frames (folders of band files). */
  s2?: string[];
  /** Without a manifest: Sentinel-1 frames (folders with `…_VV.tif`, `…_VH.tif`). */
  s1?: string[];
  /** Without a manifest: an HR RGB(-NIR) GeoTIFF. */
  hr?: string;
  /** Tile-centre latitude (with `lon`; default: from the georeferencing). */
  lat?: number;
  lon?: number;
  /** Default `skysense-tiny`. */
  preset?: SkySensePresetName;
  /** Released weights to load (default: seeded random weights). */
  weights?: ReleasedFiles;
  /** Seed of the weights when none are loaded. Default 0. */
  seed?: number;
  /** Output folder: one sub-folder per sample (named after it, made safe). */
  out: string;
  log?: (line: string) => void;
}

/** The released files a sample's model uses: no HR file without an HR image, no S2/S1 files (encoder, up-head) without that series. */
function filesFor(files: ReleasedFiles, m: SampleManifest): ReleasedFiles {
  const s2 = Boolean(m.s2?.length);
  const s1 = Boolean(m.s1?.length);
  return {
    hr: m.hr ? files.hr : undefined,
    s2: s2 ? files.s2 : undefined,
    headS2: s2 ? files.headS2 : undefined,
    s1: s1 ? files.s1 : undefined,
    headS1: s1 ? files.headS1 : undefined,
    fusion: files.fusion,
  };
}

/**
 * Runs SkySense on the samples of a manifest (or one sample from files): per sample, the fused
 * features, pictures and a summary line with its nodata. Every option and sample name is checked
 * before anything is written.
 * @returns one summary per sample.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { runEmbed } from '@skysense/skysense';
 * await initBackend();
 * // features of real samples with the released weights: fused maps, pictures, a summary per sample
 * const weights = {
 *   hr: 'skysense_model_backbone_hr.pth', s2: 'skysense_model_backbone_s2.pth', s1: 'skysense_model_backbone_s1.pth',
 *   headS2: 'skysense_model_head_s2.pth', headS1: 'skysense_model_head_s1.pth', fusion: 'skysense_model_fusion.pth',
 * };
 * const [summary] = await runEmbed({ manifest: 'samples.json', preset: 'skysense-2b', weights, out: 'embeddings' });
 * console.log(summary);
 * ```
 */
export async function runEmbed(o: RunEmbedOptions): Promise<EmbedSummary[]> {
  const log = o.log ?? console.log;
  if ((o.lat === undefined) !== (o.lon === undefined))
    throw new SkySenseError('E_ARG', `--lat and --lon: give both or neither, got only --${o.lat === undefined ? 'lon' : 'lat'}`);
  checkOptions(o, { seed: { int: [0] }, lat: { range: [-90, 90] }, lon: { range: [-180, 360] } });
  const preset = o.preset ?? 'skysense-tiny';
  if (!(preset in SKYSENSE_PRESETS))
    throw new SkySenseError('E_ARG', `preset: expected one of ${Object.keys(SKYSENSE_PRESETS).join(', ')}, got ${JSON.stringify(preset)}`);
  const manifests: SampleManifest[] = o.manifest
    ? readManifest(o.manifest)
    : [
        {
          name: 'sample',
          s2: o.s2?.map((folder) => ({ folder })),
          s1: o.s1?.map((folder) => ({ folder })),
          hr: o.hr,
          lat: o.lat,
          lon: o.lon,
        },
      ];
  if (!manifests.some((m) => m.hr || m.s2?.length || m.s1?.length))
    throw new SkySenseError('E_ARG', 'embed: give --manifest, or at least one of --s2, --s1, --hr');
  const names = uniqueFileNames(manifests.map((m) => m.name ?? 'sample'));
  if (existsSync(o.out) && !statSync(o.out).isDirectory())
    throw new SkySenseError('E_IO', `--out ${o.out}: is a file, expected a folder (ENOTDIR)`);
  const summaries: EmbedSummary[] = [];
  for (const m of manifests) {
    manualSeed(o.seed ?? 0);
    const model = SkySense.fromPreset(preset, { hr: m.hr ? {} : null, s2: m.s2?.length ? {} : null, s1: m.s1?.length ? {} : null }).eval();
    try {
      if (o.weights) model.loadReleased(filesFor(o.weights, m), { log });
      else log(`note: no --weights-dir, ${preset} runs with seeded random weights`);
      const sample = await loadSample(m);
      const dir = join(o.out, names.get(m.name ?? 'sample')!);
      try {
        const summary = embedSample(model, sample, dir);
        summaries.push(summary);
        const masked = describeNodata(summary.nodata);
        log(
          `${sample.name}: fused ${formatShape(summary.fusedShape)} at lat ${sample.lat.toFixed(4)}, lon ${sample.lon.toFixed(4)}${masked ? `; ${masked}` : ''}; wrote ${summary.files.map((f) => join(dir, f)).join(', ')}`,
        );
      } finally {
        disposeSample(sample);
      }
    } finally {
      model.dispose();
    }
  }
  return summaries;
}

/** BigEarthNet v1 S1/S2 pairs of a sample folder as manifests (pairs read from the S1 metadata; S1 Lee-filtered). */
export function bigEarthNetPairs(root: string): SampleManifest[] {
  const base = join(root, 'bigearthnet', 'v1-s1s2-example');
  const s1Root = join(base, 'BigEarthNet-S1');
  if (!existsSync(s1Root)) return [];
  return readdirSync(s1Root)
    .sort()
    .flatMap((s1) => {
      const meta = readdirSync(join(s1Root, s1)).find((f) => f.endsWith('_labels_metadata.json'));
      const s2 =
        meta &&
        readJsonFile<{ corresponding_s2_patch?: string } | null>(join(s1Root, s1, meta), 'BigEarthNet labels metadata')
          ?.corresponding_s2_patch;
      const s2Dir = s2 && join(base, 'BigEarthNet-S2', s2);
      return s2Dir && existsSync(s2Dir)
        ? [{ name: s2, s2: [{ folder: s2Dir }], s1: [{ folder: join(s1Root, s1), speckleFilter: 'lee' as const }] }]
        : [];
    });
}

/** A generated 120 × 120 px Sentinel scene (fields, a river, a town) for running without samples. */
export function generatedScene(): LoadedSample {
  const n = 120;
  const s2 = new Float32Array(10 * n * n);
  const s1 = new Float32Array(2 * n * n);
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const river = Math.abs(y - 60 - 18 * Math.sin(x / 17)) < 5;
      const town = (x - 92) ** 2 + (y - 25) ** 2 < 300;
      const field = ((Math.floor(x / 24) + 2 * Math.floor(y / 30)) % 4) / 3;
      for (let b = 0; b < 10; b++) {
        const nir = b >= 3 && b <= 7;
        s2[(b * n + y) * n + x] = river ? -1.2 : town ? 0.8 : (nir ? 1 : -0.5) * field + 0.1 * Math.sin(x * 0.9 + y * 1.3);
      }
      s1[y * n + x] = river ? -2 : town ? 2 : 0.5 * field;
      s1[(n + y) * n + x] = river ? -2 : town ? 1 : 0.3 * field;
    }
  }
  return {
    name: 'generated-scene',
    s2: { frames: tf.tensor5d(s2, [1, 1, 10, n, n]), dates: ['2021-06-21'], pixelValid: new Uint8Array(n * n).fill(1), frameValid: [true] },
    s1: { frames: tf.tensor5d(s1, [1, 1, 2, n, n]), dates: ['2021-06-21'], pixelValid: new Uint8Array(n * n).fill(1), frameValid: [true] },
    nodata: { s2: [0], s1: [0], dropped: { s2: [], s1: [] } },
    lat: 43.6,
    lon: 1.44,
    filledBands: [],
  };
}

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** Sample folder (default `SKYSENSE_SAMPLES`, else `./samples`). */
  samples?: string;
  /** Output folder. Default `./skysense-demo`. */
  out?: string;
  /** Default `skysense-tiny`. */
  preset?: SkySensePresetName;
  /** Seed of the model's weights. Default 0. */
  seed?: number;
  /** Progress lines. Default console.log. */
  log?: (line: string) => void;
}

/**
 * The main job: the BigEarthNet S1 + S2 pairs of the sample folder through a small SkySense preset
 * (seeded, no HR branch), pictures and fused maps per pair plus `summary.json`. Without samples it
 * says how to get them and runs on a generated scene.
 */
export async function runDemo(options: DemoOptions = {}): Promise<{ out: string; summaries: EmbedSummary[] }> {
  const log = options.log ?? console.log;
  const root = options.samples ?? samplesDir();
  if (options.samples !== undefined && !existsSync(options.samples))
    throw new SkySenseError(
      'E_IO',
      `--samples ${options.samples}: no such folder (without --samples the demo runs on a generated scene when no samples are found)`,
    );
  const out = options.out ?? 'skysense-demo';
  const preset = options.preset ?? 'skysense-tiny';
  manualSeed(options.seed ?? 0);
  const model = SkySense.fromPreset(preset, { hr: null }).eval();
  const pairs = bigEarthNetPairs(root);
  if (pairs.length === 0)
    log(`no BigEarthNet samples under ${root} (set SKYSENSE_SAMPLES, or run 'skysense samples'); running on a generated scene`);
  const t0 = performance.now();
  const summaries: EmbedSummary[] = [];
  const total = Math.max(1, pairs.length);
  for (let i = 0; i < total; i++) {
    const sample = pairs.length ? await loadSample(pairs[i]!) : generatedScene();
    const name = safeFileName(sample.name);
    try {
      summaries.push(embedSample(model, sample, join(out, name)));
    } finally {
      disposeSample(sample);
    }
    const s = (performance.now() - t0) / 1000;
    const masked = describeNodata(summaries.at(-1)!.nodata);
    log(
      `[${i + 1}/${total}] ${sample.name}: lat ${sample.lat.toFixed(3)}, lon ${sample.lon.toFixed(3)}${masked ? `, ${masked}` : ''} → ${out}/${name}/ (${(s / (i + 1)).toFixed(1)} s/sample, ETA ${((s / (i + 1)) * (total - i - 1)).toFixed(0)} s)`,
    );
  }
  model.dispose();
  if (!existsSync(out)) throw new SkySenseError('E_IO', `${out} was not created`);
  const summary = {
    preset,
    seed: options.seed ?? 0,
    backend: currentBackend()?.kind ?? 'unknown',
    samples: summaries,
    seconds: (performance.now() - t0) / 1000,
  };
  writeFileAtomic(join(out, 'summary.json'), JSON.stringify(summary, null, 2));
  log(`wrote ${summaries.length} sample(s) and ${out}/summary.json in ${summary.seconds.toFixed(1)} s`);
  return { out, summaries };
}
