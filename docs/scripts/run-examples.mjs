#!/usr/bin/env node
/**
 * The documentation's examples as tests:
 * - every `docs/examples/*.mts` (the landing page includes them) is type-checked against the built
 *   packages as a user's NodeNext project would, then run; any error or non-zero exit fails (the
 *   cache is an empty temporary folder, so the pretrained example shows what a user without the
 *   weights sees);
 * - every ```ts block of the READMEs and every TSDoc `@example` is extracted and type-checked; those
 *   that are self-contained (they call `initBackend`, read no user file and build no released-size
 *   model: {@link NOT_RUNNABLE}) are run too, in an empty folder.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { extractDoctests } from './extract-doctests.mjs';

const docs = fileURLToPath(new URL('..', import.meta.url));

/** What keeps an example from running here: files a user supplies, the released weights, the full-size models. */
const NOT_RUNNABLE =
  /skysense_model_|\.(tif|png|jpg|json|pth)'|'my-|SafetensorsFile\.open|readManifest|runFinetune|fromPreset\('skysense-(hr|s2|s1|2b)'|downloadSamples|loadSentinel|samplesDir|readImage|readGeoTiff/;
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
  const runnable = doctests.filter((d) => {
    const code = readFileSync(d.file, 'utf8');
    return code.includes('initBackend(') && !NOT_RUNNABLE.test(code);
  });
  const work = mkdtempSync(join(tmpdir(), 'skysense-doctest-'));
  try {
    for (const d of runnable) {
      const t0 = performance.now();
      execFileSync(tsx, [d.file], { cwd: work, env, encoding: 'utf8', stdio: ['ignore', 'ignore', 'inherit'] });
      console.log(`ran ${d.from} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`ran ${runnable.length} of them (the others read files a user supplies or build the full-size models)`);
  for (const f of examples) {
    const t0 = performance.now();
    const out = execFileSync('npx', ['tsx', join('examples', f)], { cwd: docs, env, encoding: 'utf8' });
    console.log(`ran ${f} in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${out.trim().split('\n').at(-1)}`);
  }
  console.log(`all ${examples.length} examples ran`);
} finally {
  rmSync(cache, { recursive: true, force: true });
}
