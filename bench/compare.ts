/**
 * `npm run bench:compare`: the same workloads in tfjs on each backend (wasm; cpu with the native
 * kernels on their default, built-in GEMM; cpu with the native kernels on OpenBLAS, where the addon
 * was compiled against it; cpu with tfjs's JavaScript kernels) and in PyTorch (2
 * threads) and ONNX Runtime (CPU provider, 2 intra-op threads; the inference workloads exported from
 * PyTorch, outputs checked against PyTorch's first: ./ort.ts) when a Python with torch is found, with
 * the ratios native / OpenBLAS, tfjs / PyTorch and tfjs / ORT per workload. PyTorch uses OpenBLAS when Debian's BLAS
 * alternative points at it (`apt-get install libopenblas0-pthread`, or put its libblas.so.3 on
 * LD_LIBRARY_PATH); its reference BLAS is far slower.
 *
 * The `webgpu` column (tfjs's webgpu backend with SkySense's WGSL kernels, on Dawn) is there when Dawn
 * finds an adapter. On a software adapter (Mesa's lavapipe: a CPU emulating a GPU) its figures say
 * nothing about GPU performance; the table labels them so, and the full models are skipped there.
 *
 * Environment: BENCH_REPS (default 3), BENCH_BACKENDS (default webgpu where an adapter exists, then
 * wasm,cpu-native,cpu-openblas,cpu-js), BENCH_WORKLOADS (comma-separated parts of workload names;
 * default all), BENCH_PYTHON (default /usr/bin/python3, then python3; BENCH_PYTHON=none skips
 * PyTorch and ONNX Runtime), BENCH_TORCH_DEVICE (`cpu`, default, or `cuda`), BENCH_ORT (`none` skips ONNX
 * Runtime) and BENCH_ORT_DIR (see ./ort.ts). The pure-JS cpu backend runs only the
 * matmul and single-block workloads (the full models take many minutes there).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  TransformerEncoderLayer,
  disableNativeKernels,
  disposeGradients,
  enableNativeKernels,
  formatAdapter,
  initBackend,
  matMul,
  probeWebGPU,
  setNativeGemm,
  tf,
  valueAndGrads,
  type Module,
  type Tensor,
} from '@skysense/core-tensor';
import { SwinTransformerV2 } from '@skysense/swin';
import type { FasterRCNN } from '@skysense/heads';
import { createModel } from '@skysense/skysense';
import { hrStage0Block } from './workloads';
import { VisionTransformer } from '@skysense/vit';
import { findPython, timeIt } from './harness';
import { ortResults } from './ort';

const here = dirname(fileURLToPath(import.meta.url));
const reps = Number(process.env.BENCH_REPS ?? 3);
type Workload = { name: string; heavy: boolean; run: (reps: number) => number };

function forward(model: Module & { forward(x: Tensor): Tensor | Tensor[] }, x: Tensor, label: string, r: number): number {
  model.eval();
  return timeIt(label, r, () => {
    const y = [model.forward(x)].flat();
    y.at(-1)!.dataSync();
    tf.dispose(y);
  });
}

function forwardBackward(model: Module & { forward(x: Tensor): Tensor | Tensor[] }, x: Tensor, label: string, r: number): number {
  model.train();
  return timeIt(label, r, () => {
    const { value, grads } = valueAndGrads(model, () => tf.mean(tf.square([model.forward(x)].flat().at(-1)!)) as tf.Scalar);
    value.dataSync();
    value.dispose();
    disposeGradients(grads);
  });
}

function peakRss(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : process.memoryUsage().rss / 2 ** 20;
}

const workloads: Workload[] = [
  {
    name: 'matmul 1024³',
    heavy: false,
    run: (r) => {
      const [a, b] = [tf.randomNormal([1024, 1024]), tf.randomNormal([1024, 1024])];
      const ms = timeIt('matmul 1024³', r, () => {
        const c = matMul(a, b);
        c.dataSync();
        c.dispose();
      });
      console.log(`  matmul 1024³: ${((2 * 1024 ** 3) / ms / 1e6).toFixed(0)} GFLOP/s`);
      tf.dispose([a, b]);
      return ms;
    },
  },
  ...(['fwd', 'fwd+bwd'] as const).map((mode) => ({
    name: `ViT-L block ${mode}`,
    heavy: false,
    run: (r: number) => {
      const layer = new TransformerEncoderLayer({ embedDims: 1024, numHeads: 16, feedforwardChannels: 4096 });
      const m = Object.assign(layer, { forward: (x: Tensor) => TransformerEncoderLayer.prototype.forward.call(layer, x) });
      const x = tf.randomNormal([1, 257, 1024]);
      const ms = mode === 'fwd' ? forward(m, x, `ViT-L block ${mode}`, r) : forwardBackward(m, x, `ViT-L block ${mode}`, r);
      tf.dispose(x);
      layer.dispose();
      return ms;
    },
  })),
  ...(['fwd', 'fwd+bwd'] as const).map((mode) => ({
    name: `Swin-H stage-0 block ${mode}`,
    heavy: false,
    run: (r: number) => {
      const block = hrStage0Block();
      const x = tf.randomNormal([1, 64, 64, 352]);
      const ms = mode === 'fwd' ? forward(block, x, `Swin-H block ${mode}`, r) : forwardBackward(block, x, `Swin-H block ${mode}`, r);
      tf.dispose(x);
      block.dispose();
      return ms;
    },
  })),
  {
    name: 'Swin-H forward 256²',
    heavy: true,
    run: (r) => {
      const model = SwinTransformerV2.fromPreset('huge');
      const x = tf.randomNormal([1, 3, 256, 256]);
      const weightsMiB = (model.parameterCount() * 4) / 2 ** 20;
      const before = peakRss();
      const ms = forward(model, x, 'Swin-H forward 256²', r);
      console.log(
        `  Swin-H weights ${weightsMiB.toFixed(0)} MiB; peak RSS ${peakRss().toFixed(0)} MiB (before the forward passes: ${before.toFixed(0)} MiB)`,
      );
      tf.dispose(x);
      model.dispose();
      return ms;
    },
  },
  {
    name: 'S2 ViT-L forward 64²',
    heavy: true,
    run: (r) => {
      const model = VisionTransformer.fromPreset('skysense-s2');
      const x = tf.randomNormal([1, 10, 64, 64]);
      const ms = forward(model, x, 'S2 ViT-L forward 64²', r);
      tf.dispose(x);
      model.dispose();
      return ms;
    },
  },
  ...(['tiny', 'hr'] as const).map((size) => ({
    name: `Faster R-CNN ${size} 512²`,
    heavy: size === 'hr',
    run: (r: number) => {
      const model = createModel(`faster-rcnn-skysense-${size}`) as FasterRCNN;
      model.eval();
      const x = tf.randomNormal([1, 3, 512, 512]);
      const ms = timeIt(`Faster R-CNN ${size} 512²`, r, () => model.predict(x));
      tf.dispose(x);
      model.dispose();
      return ms;
    },
  })),
];

function torchResults(py: string): Record<string, number> {
  console.log(`PyTorch (${py}, 2 threads): running …`);
  const out = execFileSync(py, [join(here, 'torch_workloads.py'), String(reps)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return (JSON.parse(out.trim().split('\n').pop()!) as { results: Record<string, number> }).results;
}

const wanted = process.env.BENCH_WORKLOADS?.split(',').map((p) => p.trim().toLowerCase());
const selected = workloads.filter((w) => !wanted || wanted.some((p) => w.name.toLowerCase().includes(p)));

/** The adapter under the webgpu column, named, or why there is none. */
function webgpuAdapter(): { name: string; software: boolean } | string {
  const { adapter, reason } = probeWebGPU();
  return adapter ? { name: formatAdapter(adapter), software: adapter.software } : reason!;
}

async function main(): Promise<void> {
  const gpu = webgpuAdapter();
  const defaults = `${typeof gpu === 'string' ? '' : 'webgpu,'}wasm,cpu-native,cpu-openblas,cpu-js`;
  const backends = (process.env.BENCH_BACKENDS ?? defaults).split(',');
  const softwareGpu = typeof gpu !== 'string' && gpu.software;
  const table: Record<string, Record<string, number>> = {};
  for (const backend of backends) {
    if (backend === 'webgpu' && typeof gpu === 'string') {
      console.log(`webgpu: skipped (${gpu})`);
      continue;
    }
    await initBackend({ force: backend === 'wasm' || backend === 'webgpu' ? backend : 'cpu' });
    if (backend === 'webgpu')
      console.log(`webgpu on ${(gpu as { name: string }).name}${softwareGpu ? ' — software: not GPU performance' : ''}`);
    if (backend === 'cpu-js') disableNativeKernels();
    if (backend.startsWith('cpu-') && backend !== 'cpu-js' && enableNativeKernels().length === 0) {
      console.log(`${backend}: the native kernels are not built; skipped`);
      continue;
    }
    let gemm = '';
    try {
      gemm = backend === 'cpu-openblas' ? setNativeGemm('openblas') : backend === 'cpu-native' ? setNativeGemm('auto') : '';
    } catch (e) {
      console.log(`${backend}: skipped (${(e as Error).message})`);
      continue;
    }
    console.log(`${backend}${gemm ? ` (${gemm})` : ''}:`);
    for (const w of selected) {
      if ((backend === 'cpu-js' || (backend === 'webgpu' && softwareGpu)) && w.heavy) continue;
      try {
        (table[w.name] ??= {})[backend] = w.run(backend === 'cpu-js' ? 1 : reps);
      } catch (e) {
        console.log(`  ${w.name} failed on ${backend}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    if (backend === 'cpu-js') enableNativeKernels();
    if (gemm) setNativeGemm('auto');
  }
  const python = findPython();
  const torch = python ? torchResults(python) : null;
  const ort = python ? await ortResults(python, reps, (name) => selected.some((w) => w.name === name)) : null;
  const torchCol = process.env.BENCH_TORCH_DEVICE === 'cuda' ? 'pytorch-cuda' : 'pytorch';
  const both = backends.includes('cpu-native') && backends.includes('cpu-openblas');
  const cols = [
    ...backends,
    ...(both ? ['native / openblas'] : []),
    ...(torch ? [torchCol, `best tfjs / ${torchCol}`, `native / ${torchCol}`] : []),
    ...(torch && backends.includes('webgpu') && typeof gpu !== 'string' ? [`webgpu / ${torchCol}`] : []),
    ...(ort ? ['onnxruntime', 'best tfjs / ort'] : []),
  ];
  const width = (c: string) => Math.max(12, c.length + 2);
  const ratio = (x: number | undefined, y: number | undefined) => (x === undefined || y === undefined ? '—' : (x / y).toFixed(2));
  console.log(`\n${'workload'.padEnd(30)}${cols.map((c) => c.padStart(width(c))).join('')}   (median ms of ${reps})`);
  for (const w of selected) {
    const row = table[w.name] ?? {};
    const best = Math.min(...Object.values(row).filter((v) => Number.isFinite(v)));
    const cells = backends.map((b) => (row[b] === undefined ? '—' : row[b]!.toFixed(0)));
    if (both) cells.push(ratio(row['cpu-native'], row['cpu-openblas']));
    if (torch) cells.push(torch[w.name]?.toFixed(0) ?? '—', ratio(best, torch[w.name]), ratio(row['cpu-native'], torch[w.name]));
    if (cols.includes(`webgpu / ${torchCol}`)) cells.push(ratio(row.webgpu, torch![w.name]));
    if (ort) cells.push(ort[w.name]?.ms.toFixed(0) ?? '—', ratio(best, ort[w.name]?.ms));
    console.log(`${w.name.padEnd(30)}${cells.map((c, i) => c.padStart(width(cols[i]!))).join('')}`);
  }
  if (backends.includes('webgpu') && typeof gpu !== 'string') {
    console.log(
      softwareGpu
        ? `webgpu ran on a software adapter (${gpu.name}): a CPU emulating a GPU — correctness, not performance; full models skipped`
        : `webgpu: ${gpu.name}`,
    );
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
