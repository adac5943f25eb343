#!/usr/bin/env node
/**
 * The documentation's examples as tests:
 * - every `docs/examples/*.mts` (the landing page includes them) is type-checked against the built
 *   packages as a user's NodeNext project would, then run; any error or non-zero exit fails (the
 *   cache is an empty temporary folder, so the pretrained example shows what a user without the
 *   weights sees);
 * - every ```ts block of the READMEs and every TSDoc `@example` is extracted, type-checked and run
 *   as written, each in a fresh folder prepared by `doctest-world.mjs`: the files they name exist
 *   (released-layout checkpoints, the real samples of `SKYSENSE_SAMPLES`) and the released presets
 *   are narrowed to test widths.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { extractDoctests } from './extract-doctests.mjs';
import { disposeWorld, prepareWorld } from './doctest-world.mjs';

const docs = fileURLToPath(new URL('..', import.meta.url));

const examples = readdirSync(join(docs, 'examples'))
  .filter((f) => f.endsWith('.mts'))
  .sort();
const tsx = join(docs, '..', 'node_modules', '.bin', 'tsx');
const cache = mkdtempSync(join(tmpdir(), 'skysense-doc-cache-'));
const env = { ...process.env, SKYSENSE_CACHE: cache };
try {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.examples.json'], { cwd: docs, stdio: 'inherit' });
  console.log(`type-checked ${examples.length} examples`);
  const doctests = extractDoctests(join(docs, '..'), join(docs, '.doctest'));
  execFileSync('npx', ['tsc', '-p', 'tsconfig.doctest.json'], { cwd: docs, stdio: 'inherit' });
  console.log(
    `type-checked ${doctests.length} README and TSDoc examples (${new Set(doctests.map((d) => d.from.split(' ')[0])).size} files)`,
  );
  const samples = resolve(process.env.SKYSENSE_SAMPLES ?? 'samples');
  if (!existsSync(samples))
    throw new Error(`the doc tests read the real samples: none in ${samples} (set SKYSENSE_SAMPLES; npm run samples fetches them)`);
  const world = new URL('./doctest-world.mjs', import.meta.url).href;
  // 5 minutes an example; 15 on webgpu, which CI runs on lavapipe (a CPU emulating a GPU: the
  // 100-step fine-tuning example takes about 6 minutes there)
  const exampleTimeout = (process.env.SKYSENSE_BACKEND === 'webgpu' ? 15 : 5) * 60_000;
  const failed = [];
  let ran = 0;
  const only = process.argv[2]; // a part of the source name (e.g. `sentinel.ts`) runs just those
  const selected = doctests.filter((e) => !only || e.from.includes(only));
  if (!selected.length) throw new Error(`no README or TSDoc example comes from a source matching '${only}'`);
  for (const d of selected) {
    const work = mkdtempSync(join(tmpdir(), 'skysense-doctest-'));
    const weights = mkdtempSync(join(tmpdir(), 'skysense-doctest-cache-'));
    try {
      await prepareWorld(work, weights, samples);
      const t0 = performance.now();
      const run = spawnSync(tsx, ['--import', world, d.file], {
        cwd: work,
        env: { ...env, SKYSENSE_CACHE: weights },
        encoding: 'utf8',
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: exampleTimeout, // an example that hangs fails instead of stalling CI
      });
      ran++;
      if (run.status === 0) console.log(`ran ${d.from} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      else {
        console.error(`FAILED: ${d.from} (${d.file}), exit ${run.status ?? run.signal}:\n${run.stderr}`);
        failed.push(d.from);
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
      rmSync(weights, { recursive: true, force: true });
    }
  }
  if (failed.length) throw new Error(`${failed.length} of ${doctests.length} README and TSDoc examples failed: ${failed.join('; ')}`);
  console.log(`ran all ${only ? `${ran} selected` : doctests.length} of them`);
  for (const f of examples) {
    const t0 = performance.now();
    const out = execFileSync('npx', ['tsx', join('examples', f)], { cwd: docs, env, encoding: 'utf8' });
    console.log(`ran ${f} in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${out.trim().split('\n').at(-1)}`);
  }
  console.log(`all ${examples.length} examples ran`);
} finally {
  disposeWorld();
  rmSync(cache, { recursive: true, force: true });
}
