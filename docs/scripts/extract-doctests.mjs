/**
 * Collects the TypeScript examples users read: the ```ts blocks of every README and the `@example`
 * blocks of the packages' TSDoc, each written as a module under `docs/.doctest/` (ignored by git),
 * so that `run-examples.mjs` type-checks them all against the built packages.
 * @returns the written files with where each example came from.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const blocks = (text) => [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);

function sources(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : n.endsWith('.ts') ? [p] : [];
  });
}

/** `@example` bodies of a source file (TSDoc lines with their leading ` * ` removed). */
function tsdocExamples(file) {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/\/\*\*([\s\S]*?)\*\//g)].flatMap((c) => {
    const lines = c[1].split('\n').map((l) => l.replace(/^\s*\* ?/, ''));
    const at = lines.findIndex((l) => l.startsWith('@example'));
    return at < 0 ? [] : blocks(lines.slice(at + 1).join('\n'));
  });
}

export function extractDoctests(repo, out) {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const found = [];
  const readmes = [join(repo, 'README.md'), ...readdirSync(join(repo, 'packages')).map((p) => join(repo, 'packages', p, 'README.md'))];
  for (const f of readmes) {
    try {
      blocks(readFileSync(f, 'utf8')).forEach((code, i) => found.push({ from: `${relative(repo, f)} #${i + 1}`, code }));
    } catch {
      // a package without a README
    }
  }
  for (const f of readdirSync(join(repo, 'packages')).flatMap((p) => {
    try {
      return sources(join(repo, 'packages', p, 'src'));
    } catch {
      return [];
    }
  }))
    tsdocExamples(f).forEach((code, i) => found.push({ from: `${relative(repo, f)} @example #${i + 1}`, code }));
  return found.map((e, i) => {
    const file = join(out, `example-${String(i + 1).padStart(2, '0')}.mts`);
    writeFileSync(file, `// ${e.from}\nexport {};\n${e.code}`);
    return { file, from: e.from };
  });
}
