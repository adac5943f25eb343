import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  SkySenseError,
  currentBackend,
  manualSeed,
  saveSafetensors,
  tf,
  writeFileAtomic,
  writePng,
  type Tensor,
} from '@skysense/core-tensor';
import { dayOfYear } from '@skysense/temporal-fusion';
import { SkySense } from './skysense';
import { type SkySensePresetName } from './presets';
import { type LoadedSample, type SampleManifest, loadSample, samplesDir } from '@skysense/data';
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
  fusedMean: number;
  fusedStd: number;
  files: string[];
  seconds: number;
}

/**
 * Runs the model on one loaded sample and writes into `dir`: `fused.safetensors` (the fused map,
 * and `with_geo_context` when the model has a bank), `pca.png` (first three principal components of
 * the fused features), `prototypes.png` (nearest geo-prototype per location) and, for Sentinel-2
 * input, `s2-rgb.png` (B4, B3, B2).
 */
export function embedSample(model: SkySense, sample: LoadedSample, dir: string): EmbedSummary {
  const t0 = performance.now();
  mkdirSync(dir, { recursive: true });
  const out = model.forward({
    hr: sample.hr,
    s2: sample.s2 && { frames: sample.s2.frames, dates: [sample.s2.dates] },
    s1: sample.s1 && { frames: sample.s1.frames, dates: [sample.s1.dates] },
    lat: [sample.lat],
    lon: [sample.lon],
  });
  const files: string[] = [];
  const keep = (name: string) => (files.push(name), join(dir, name));
  try {
    const tensors = new Map<string, Tensor>([['fused', out.fused]]);
    if (out.withGeoContext) tensors.set('with_geo_context', out.withGeoContext);
    saveSafetensors(keep('fused.safetensors'), tensors, {
      metadata: { sample: sample.name, lat: String(sample.lat), lon: String(sample.lon) },
    });
    const [, , h, w] = out.fused.shape as number[];
    const scale = Math.max(1, Math.floor(256 / Math.max(h!, w!)));
    const map = tf.tidy(() => tf.squeeze(out.fused, [0]));
    writePng(keep('pca.png'), enlarge(pcaRgb(map), w!, h!, scale), w! * scale, h! * scale);
    const region = model.geo ? model.geo.regionOf(sample.lat, sample.lon) : null;
    if (model.geo && region !== null) {
      model.geo.renderAssignmentMap(keep('prototypes.png'), map, region, scale);
    }
    map.dispose();
    if (sample.previewS2) {
      const p = sample.previewS2;
      const f = Math.max(1, Math.floor(256 / Math.max(p.height, p.width)));
      writePng(
        keep('s2-rgb.png'),
        enlarge(bandsRgb([p.bands[2]!, p.bands[1]!, p.bands[0]!]), p.width, p.height, f),
        p.width * f,
        p.height * f,
      );
    }
    const [mean, std] = tf.tidy(() => {
      const m = tf.moments(out.fused);
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
      files,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    tf.dispose([out.fused, ...(out.withGeoContext ? [out.withGeoContext] : [])]);
  }
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
        meta && (JSON.parse(readFileSync(join(s1Root, s1, meta), 'utf8')) as { corresponding_s2_patch?: string }).corresponding_s2_patch;
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
    s2: { frames: tf.tensor5d(s2, [1, 1, 10, n, n]), dates: ['2021-06-21'] },
    s1: { frames: tf.tensor5d(s1, [1, 1, 2, n, n]), dates: ['2021-06-21'] },
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
    try {
      summaries.push(embedSample(model, sample, join(out, sample.name)));
    } finally {
      tf.dispose([sample.s2?.frames, sample.s1?.frames, sample.hr].filter((t): t is Tensor => t !== undefined));
    }
    const s = (performance.now() - t0) / 1000;
    log(
      `[${i + 1}/${total}] ${sample.name}: lat ${sample.lat.toFixed(3)}, lon ${sample.lon.toFixed(3)} → ${out}/${sample.name}/ (${(s / (i + 1)).toFixed(1)} s/sample, ETA ${((s / (i + 1)) * (total - i - 1)).toFixed(0)} s)`,
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
