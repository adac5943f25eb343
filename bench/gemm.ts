/**
 * `npm run bench:gemm`: GFLOP/s of the GEMMs the models run (`x·wᵀ + b` of their linear layers,
 * {@link GEMM_SHAPES}) — the native kernels on the built-in GEMM, on OpenBLAS where the addon was
 * built against it, and ONNX Runtime on a single-layer ONNX model (nn.Linear exported by
 * `torch_workloads.py`, the weight an initializer ORT packs once). Environment: BENCH_REPS
 * (default 5), BENCH_PYTHON (the Python with torch that exports the models; default
 * /usr/bin/python3), BENCH_ORT (`none` skips ONNX Runtime).
 */
import { initBackend, linear, setNativeGemm, tf } from '@skysense/core-tensor';
import { findPython, selectBuiltinGemm, timeIt } from './harness';
import { ortResults } from './ort';
import { GEMM_SHAPES, gemmName } from './workloads';

const reps = Number(process.env.BENCH_REPS ?? 5);
const gflops = ([m, k, n]: readonly number[], ms: number) => (2 * m! * k! * n!) / ms / 1e6;

/** Median ms of `linear` on each shape with the GEMM in use. */
function ours(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const shape of GEMM_SHAPES) {
    const [m, k, n] = shape;
    const [x, w, b] = [tf.randomNormal([m, k]), tf.randomNormal([n, k]), tf.randomNormal([n])];
    out[gemmName(shape)] = timeIt(gemmName(shape), reps, () => {
      const y = linear(x, w, b);
      y.dataSync();
      y.dispose();
    });
    tf.dispose([x, w, b]);
  }
  return out;
}

async function main(): Promise<void> {
  await initBackend({ force: 'cpu' });
  const cols: Record<string, Record<string, number>> = {};
  const builtin = selectBuiltinGemm();
  console.log(`${builtin}:`);
  cols[builtin] = ours();
  try {
    const blas = setNativeGemm('openblas');
    console.log(`${blas}:`);
    cols[blas] = ours();
  } catch (e) {
    console.log(`OpenBLAS: skipped (${(e as Error).message})`);
  }
  setNativeGemm('auto');
  const python = findPython();
  const ort = python ? await ortResults(python, reps, (name) => name.startsWith('gemm ')) : null;
  if (ort) cols['ONNX Runtime'] = Object.fromEntries(Object.entries(ort).map(([name, r]) => [name, r.ms]));
  const names = Object.keys(cols);
  const width = (c: string) => Math.max(12, c.length + 2);
  console.log(`\n${'GEMM rows×in→out'.padEnd(24)}${names.map((c) => c.padStart(width(c))).join('')}   (GFLOP/s, median of ${reps})`);
  for (const shape of GEMM_SHAPES) {
    const cells = names.map((c) => {
      const ms = cols[c]![gemmName(shape)];
      return (ms === undefined ? '—' : gflops(shape, ms).toFixed(0)).padStart(width(c));
    });
    console.log(`${gemmName(shape).slice(5).padEnd(24)}${cells.join('')}`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
