/**
 * ONNX Runtime as a column of the benchmarks: the workloads of `torch_workloads.py`, exported by it
 * (`--onnx DIR`: opset 17, eval, seed 0), run with `onnxruntime-node` on its CPU provider with 2
 * intra-op threads. Each model's output is checked against PyTorch's before any time is taken.
 *
 * `onnxruntime-node` is not a dependency of the workspace (its install script downloads CUDA
 * binaries and fails without internet; `npm ci` stays clean): it is installed on first use into a
 * scratch folder outside the repository with its install script skipped (the CPU binaries are in
 * the package itself). Environment: BENCH_ORT_DIR (default ~/.cache/skysense/bench-ort), where the
 * package and the exported models go; BENCH_ORT=none skips ONNX Runtime.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GEMM_SHAPES } from './workloads';

const here = dirname(fileURLToPath(import.meta.url));
/** The onnxruntime-node release the bench installs. */
export const ORT_VERSION = '1.30.0';
/** An output of ONNX Runtime may differ from PyTorch's by this much, relative to max(1, max |PyTorch|). */
export const ORT_TOLERANCE = 1e-3;

type OrtTensor = { data: Float32Array; dims: readonly number[] };
interface Ort {
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => OrtTensor;
  InferenceSession: {
    create(
      path: string,
      options: Record<string, unknown>,
    ): Promise<{
      run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
      release(): Promise<void>;
    }>;
  };
}

/** One exported workload: its model, inputs and PyTorch's output (paths relative to the manifest). */
interface Exported {
  name: string;
  model: string;
  inputs: { name: string; file: string; shape: number[] }[];
  output: { file: string; shape: number[] };
}

/** What ONNX Runtime measured for one workload. */
export interface OrtResult {
  /** Median milliseconds of `session.run`. */
  ms: number;
  /** max |ORT − PyTorch| / max(1, max |PyTorch|). */
  error: number;
}

const scratch = () => process.env.BENCH_ORT_DIR ?? join(homedir(), '.cache', 'skysense', 'bench-ort');

/** onnxruntime-node from the scratch folder, installed there first when missing. */
function loadOrt(): Ort {
  const dir = join(scratch(), `onnxruntime-node-${ORT_VERSION}`);
  const entry = join(dir, 'node_modules', 'onnxruntime-node');
  if (!existsSync(join(entry, 'package.json'))) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{ "private": true }\n');
    console.log(`ONNX Runtime: installing onnxruntime-node@${ORT_VERSION} into ${dir} (install script skipped) …`);
    execFileSync(
      'npm',
      ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--no-package-lock', `onnxruntime-node@${ORT_VERSION}`],
      {
        cwd: dir,
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
  }
  return createRequire(join(dir, 'package.json'))('onnxruntime-node') as Ort;
}

/** The exported workloads for this version of torch_workloads.py and these GEMMs, exported first when missing. */
function exported(python: string, gemms: string): { dir: string; workloads: Exported[] } {
  const script = join(here, 'torch_workloads.py');
  const hash = createHash('sha256').update(readFileSync(script)).update(gemms).digest('hex').slice(0, 12);
  const dir = join(scratch(), `onnx-${hash}`);
  const manifest = join(dir, 'manifest.json');
  if (!existsSync(manifest)) {
    mkdirSync(dir, { recursive: true });
    console.log(`ONNX Runtime: exporting the workloads with ${python} into ${dir} (a few minutes, once) …`);
    execFileSync(python, [script, '--onnx', dir, gemms], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, PYTHONWARNINGS: 'ignore' },
    });
  }
  return { dir, workloads: (JSON.parse(readFileSync(manifest, 'utf8')) as { workloads: Exported[] }).workloads };
}

const readF32 = (file: string) => {
  const b = readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

function relativeError(got: Float32Array, want: Float32Array): number {
  let err = 0;
  let scale = 1;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return got.length === want.length ? err / scale : Infinity;
}

/**
 * Runs the exported workloads whose names `select` accepts in ONNX Runtime (CPU, 2 intra-op
 * threads, all graph optimisations): median of `reps` runs after a warm-up, each checked against
 * PyTorch's output first. A workload whose output differs by more than {@link ORT_TOLERANCE} gets
 * no time (it is reported and skipped). Returns null (and says why) where there is no Python with
 * torch or onnxruntime-node cannot be installed.
 */
export async function ortResults(
  python: string,
  reps: number,
  select: (name: string) => boolean,
): Promise<Record<string, OrtResult> | null> {
  const gemms = GEMM_SHAPES.map((s) => s.join('x')).join(',');
  if (process.env.BENCH_ORT === 'none') return null;
  let ort: Ort;
  let models: ReturnType<typeof exported>;
  try {
    ort = loadOrt();
    models = exported(python, gemms);
  } catch (e) {
    console.log(`ONNX Runtime: skipped (${(e as Error).message.split('\n')[0]})`);
    return null;
  }
  const out: Record<string, OrtResult> = {};
  for (const w of models.workloads.filter((x) => select(x.name))) {
    const session = await ort.InferenceSession.create(join(models.dir, w.model), {
      executionProviders: ['cpu'],
      intraOpNumThreads: 2,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    }).catch((e: Error) => {
      console.log(`  ONNX Runtime ${w.name}: cannot load ${w.model} (${e.message.split('\n')[0]}); delete ${models.dir} to export again`);
      return null;
    });
    if (!session) continue;
    const feeds = Object.fromEntries(w.inputs.map((i) => [i.name, new ort.Tensor('float32', readF32(join(models.dir, i.file)), i.shape)]));
    const error = relativeError((await session.run(feeds)).y!.data, readF32(join(models.dir, w.output.file)));
    if (!(error <= ORT_TOLERANCE)) {
      console.log(`  ONNX Runtime ${w.name}: output differs from PyTorch's by ${error.toExponential(1)} (> ${ORT_TOLERANCE}); not timed`);
      await session.release();
      continue;
    }
    const times: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t = performance.now();
      await session.run(feeds);
      times.push(performance.now() - t);
      process.stdout.write(`\r  ONNX Runtime ${w.name}: run ${i + 1}/${reps}, last ${times[i]!.toFixed(1)} ms   `);
    }
    process.stdout.write(`(matches PyTorch within ${error.toExponential(1)})\n`);
    await session.release();
    out[w.name] = { ms: [...times].sort((a, b) => a - b)[Math.floor(reps / 2)]!, error };
  }
  return out;
}
