#!/usr/bin/env node
/**
 * The documentation's examples as tests:
 * - every `docs/examples/*.mts` (the landing page includes them) is type-checked against the built
 *   packages as a user's NodeNext project would, then run; any error or non-zero exit fails (the
 *   cache is an empty temporary folder, so the pretrained example shows what a user without the
 *   weights sees);
 * - every ```ts block of the READMEs and every TSDoc `@example` is extracted and type-checked (they
 *   name files and 2-billion-parameter models a test machine does not have, so they are not run).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { extractDoctests } from './extract-doctests.mjs';

const docs = fileURLToPath(new URL('..', import.meta.url));
const examples = readdirSync(join(docs, 'examples'))
  .filter((f) => f.endsWith('.mts'))
  .sort();
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
  for (const f of examples) {
    const t0 = performance.now();
    const out = execFileSync('npx', ['tsx', join('examples', f)], { cwd: docs, env, encoding: 'utf8' });
    console.log(`ran ${f} in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${out.trim().split('\n').at(-1)}`);
  }
  console.log(`all ${examples.length} examples ran`);
} finally {
  rmSync(cache, { recursive: true, force: true });
}
