import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { SkySenseError } from './errors';
import { ensureDir, fsError } from './atomic-file';
import { formatBytes } from './limits';
import { ProgressReporter } from './train/progress';
import { loadCheckpoint, openCheckpoint } from './checkpoint/checkpoint';
import type { Module } from './module';

/** The input a checkpoint was trained on: what a user must feed it. */
export interface PretrainedInput {
  /** Band names in the encoder's channel order. */
  bands: readonly string[];
  /** Units of the values before normalisation (e.g. `0–255`, `L2A reflectance ×10000`, `dB`). */
  units: string;
  /** Per-band normalisation `(x − mean) / std`, in `units`. */
  mean: readonly number[];
  std: readonly number[];
  /** Side of the training crops in pixels, when the checkpoint expects one. */
  size?: number;
  /** Where the normalisation comes from (it is not always the checkpoint's own). */
  normalizationSource: string;
}

/** One file of a pretrained checkpoint. */
export interface PretrainedFile {
  /** The official file name (also its name in the cache). */
  name: string;
  /** The key prefix the encoder's tensors carry in the file (`backbone.`). */
  prefix?: string;
  /** SHA-256 of the file, checked after every download (and of a cached file on request). */
  sha256?: string;
}

/** Everything that belongs to a released checkpoint besides its tensors. */
export interface PretrainedConfig {
  files: readonly PretrainedFile[];
  /** Where the official files come from, in words (and a link). */
  source: string;
  /** A URL the files can be downloaded from (`<url>/<name>`), when one is published; else the user gives one or a local file. */
  url?: string;
  /** The licence of the weights (not of this code). */
  license: string;
  input: PretrainedInput;
}

/**
 * Where SkySense's released files come from and under which terms, shared by the encoders'
 * pretrained configs. No direct download URL is recorded: the authors distribute the files
 * through their repository's instructions, so users fetch them there (or pass a mirror `url`).
 */
export const SKYSENSE_RELEASE: Pick<PretrainedConfig, 'source' | 'license'> = {
  source: "the SkySense authors' repository, https://github.com/Jack-bo1220/SkySense (see its README for how the weights are obtained)",
  license:
    "released by the SkySense authors for non-commercial research use only (see their repository); not covered by this package's Apache-2.0 licence",
};

/** Options of {@link resolvePretrained} and the `fromPretrained` builders. */
export interface PretrainedOptions {
  /** A local file to load instead of the cache (the first file of the checkpoint). */
  weights?: string;
  /** Cache folder. Default: `SKYSENSE_CACHE`, else `~/.cache/skysense`. */
  cacheDir?: string;
  /** Download from this base URL (`<url>/<file name>`) when the file is not cached. Default: the config's `url`. */
  url?: string;
  /** Progress lines. Default: none. */
  log?: (line: string) => void;
  /** The fetch to use. Default: the global `fetch`. */
  fetch?: typeof fetch;
}

/** The cache folder: `SKYSENSE_CACHE`, else `~/.cache/skysense`. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.SKYSENSE_CACHE ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'skysense');
}

const sha256File = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/**
 * Downloads `url` to `target`: into `<target>.partial` first (resumed with an HTTP Range request
 * when a previous attempt was cut), with a progress bar, then checked against `sha256` and renamed
 * into place — `target` never holds a partial or wrong file.
 * @throws SkySenseError `E_NETWORK` (no connection, HTTP error), `E_CHECKSUM` (the partial file is removed).
 */
export async function downloadFile(
  url: string,
  target: string,
  options: { sha256?: string; fetch?: typeof fetch; label?: string } = {},
): Promise<void> {
  ensureDir(dirname(target), 'cache folder');
  const partial = `${target}.partial`;
  const have = existsSync(partial) ? statSync(partial).size : 0;
  let res: Response;
  try {
    res = await (options.fetch ?? fetch)(url, have ? { headers: { Range: `bytes=${have}-` } } : undefined);
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause;
    throw new SkySenseError('E_NETWORK', `cannot download ${url}: ${cause?.code ?? (e as Error).message}`, { cause: e });
  }
  if (!res.ok || !res.body)
    throw new SkySenseError('E_NETWORK', `cannot download ${url}: HTTP ${res.status}${res.body ? '' : ', no body'}`);
  const resumed = have > 0 && res.status === 206;
  const total = Number(res.headers.get('content-length') ?? NaN) + (resumed ? have : 0);
  const fd = openSync(partial, resumed ? 'a' : 'w');
  const progress = new ProgressReporter(options.label ?? `downloading ${basename(target)}`);
  let done = resumed ? have : 0;
  try {
    const reader = res.body.getReader();
    for (;;) {
      let chunk: { done: boolean; value?: Uint8Array };
      try {
        chunk = await reader.read();
      } catch (e) {
        throw new SkySenseError(
          'E_NETWORK',
          `download of ${url} was cut after ${formatBytes(done)}; run it again to resume from ${partial}`,
          { cause: e },
        );
      }
      if (chunk.done || !chunk.value) break;
      writeSync(fd, chunk.value);
      done += chunk.value.length;
      if (Number.isFinite(total)) progress.update(done, total);
    }
  } catch (e) {
    throw fsError(e, `cannot write ${partial}`);
  } finally {
    closeSync(fd);
  }
  if (options.sha256) {
    const got = sha256File(partial);
    if (got !== options.sha256) {
      rmSync(partial, { force: true });
      throw new SkySenseError(
        'E_CHECKSUM',
        `${url}: SHA-256 ${got} does not match the expected ${options.sha256}; the download was removed`,
      );
    }
  }
  renameSync(partial, target);
}

/**
 * The local files of a pretrained checkpoint: `weights` when given, else the cached files, else
 * downloaded from `url` (the option, or the config's) into the cache.
 * @throws SkySenseError `E_IO` for a missing `weights` file, `E_WEIGHTS` when a file is neither cached
 * nor downloadable (saying where the official files come from and under which licence).
 */
export async function resolvePretrained(name: string, config: PretrainedConfig, options: PretrainedOptions = {}): Promise<string[]> {
  if (options.weights) {
    if (!existsSync(options.weights)) throw new SkySenseError('E_IO', `weights ${options.weights}: no such file`);
    return [options.weights];
  }
  const dir = options.cacheDir ?? cacheDir();
  const url = options.url ?? config.url;
  const out: string[] = [];
  for (const f of config.files) {
    const file = join(dir, f.name);
    if (!existsSync(file)) {
      if (!url)
        throw new SkySenseError(
          'E_WEIGHTS',
          `${name}: ${f.name} is not in the cache (${dir}) and no download location is recorded. The official files come from ${config.source}; licence: ${config.license}. Put the file there, or pass weights: <file> (--weights) or url: <base URL> (--url)`,
        );
      options.log?.(`${name}: downloading ${f.name} from ${url} into ${dir}`);
      await downloadFile(`${url.replace(/\/$/, '')}/${f.name}`, file, {
        sha256: f.sha256,
        fetch: options.fetch,
        label: `downloading ${f.name}`,
      });
    }
    out.push(file);
  }
  return out;
}

/**
 * Builds a model and loads a pretrained checkpoint into it ({@link resolvePretrained} finds or
 * fetches the file; the first file's `prefix` is stripped when its keys carry it, so a converted
 * file without it loads too). The builders of the packages
 * (`SwinTransformerV2.fromPretrained`, `VisionTransformer.fromPretrained`, the umbrella's
 * `fromPretrained`) call this with their own configs.
 */
export async function loadPretrained<M extends Module>(
  name: string,
  config: PretrainedConfig,
  build: () => M,
  options: PretrainedOptions = {},
): Promise<M> {
  const [file] = await resolvePretrained(name, config, options);
  const prefix = config.files[0]!.prefix;
  const ckpt = openCheckpoint(file!);
  const prefixed = prefix !== undefined && ckpt.keys().some((k) => k.startsWith(prefix));
  ckpt.close();
  const model = build();
  try {
    loadCheckpoint(model, file!, { prefix: prefixed ? prefix : undefined, log: options.log ?? false });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
