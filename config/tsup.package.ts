import { defineConfig, type Options } from 'tsup';

/** The build every SkySense package shares: ESM + CJS + .d.ts for node 20, from `src/index.ts` (+ extra entries). */
export function packageBuild(extraEntries: string[] = [], overrides: Options = {}) {
  return defineConfig({
    entry: ['src/index.ts', ...extraEntries],
    format: ['esm', 'cjs'],
    dts: { entry: 'src/index.ts' },
    shims: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    external: ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'],
    ...overrides,
  });
}
