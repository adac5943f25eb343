/**
 * `npm run bench:pth` (core-tensor): streams a synthetic ~3 GB PyTorch zip checkpoint (ZIP64, 12 ×
 * 256 MB float32 tensors) to safetensors in a child process and reports its peak resident memory
 * (VmHWM), showing that conversion never holds the file in memory.
 * Environment: PTH_BENCH_GB (default 3), PTH_BENCH_DIR (default the system temp folder).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSyntheticPth } from '../test/pth-writer';

const here = dirname(fileURLToPath(import.meta.url));
const gb = Number(process.env.PTH_BENCH_GB ?? 3);
const dir = mkdtempSync(join(process.env.PTH_BENCH_DIR ?? tmpdir(), 'skysense-pth-bench-'));
try {
  const perTensor = 64 * 1024 * 1024;
  const count = Math.max(1, Math.round((gb * 1024 ** 3) / (4 * perTensor)));
  const input = join(dir, 'big.pth');
  const t0 = performance.now();
  const size = writeSyntheticPth(
    input,
    Array.from({ length: count }, (_, i) => ({
      name: `blocks.${i}.weight`,
      shape: [8192, perTensor / 8192],
      fill: (off: number, chunk: Uint8Array) => chunk.fill((off / chunk.length + i) & 0xff),
    })),
  );
  console.log(
    `wrote ${(size / 1024 ** 3).toFixed(2)} GiB synthetic checkpoint (${count} tensors) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const output = join(dir, 'big.safetensors');
  const child = `
    const m = require(${JSON.stringify(join(here, '..', 'dist', 'index.cjs'))});
    const t0 = performance.now();
    let last = 0;
    m.convertToSafetensors(${JSON.stringify(input)}, ${JSON.stringify(output)}, { onProgress: (p) => {
      const pct = Math.floor((100 * p.done) / p.total);
      if (pct >= last + 25) { last = pct; const s = (performance.now() - t0) / 1000; console.log('  ' + pct + '% ' + (p.done / 1024 ** 2 / s).toFixed(0) + ' MiB/s, ETA ' + ((s / p.done) * (p.total - p.done)).toFixed(0) + ' s'); }
    } });
    const hwm = require('fs').readFileSync('/proc/self/status', 'utf8').match(/VmHWM:\\s+(\\d+) kB/)[1];
    console.log('converted in ' + ((performance.now() - t0) / 1000).toFixed(1) + ' s; peak RSS ' + (hwm / 1024).toFixed(0) + ' MiB');`;
  process.stdout.write(execFileSync(process.execPath, ['-e', child], { encoding: 'utf8' }));
  console.log(
    `input ${(statSync(input).size / 1024 ** 2).toFixed(0)} MiB, output ${(statSync(output).size / 1024 ** 2).toFixed(0)} MiB; largest tensor 256 MiB`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
