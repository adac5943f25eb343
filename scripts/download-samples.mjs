#!/usr/bin/env node
/**
 * `npm run samples`: downloads the public satellite samples SkySense's tests and demo use from their
 * original sources (BigEarthNet via kai-tub/bigearthnet_common and Eyobed-Abby/fusion-lora-skysense,
 * NAIP via opengeos/data, eo-learn's test patch, the Dubai aerial set), verifies every file's SHA-256
 * and writes it atomically into SKYSENSE_SAMPLES (default ./samples). Files already present with the
 * right checksum are skipped. Needs internet access, and `tar` with bzip2 for the BigEarthNet archives.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const { files } = JSON.parse(readFileSync(join(here, 'samples.json'), 'utf8'));
const target = resolve(process.env.SKYSENSE_SAMPLES ?? 'samples');
const sha = (bytes) => createHash('sha256').update(bytes).digest('hex');

function place(entry, bytes) {
  if (sha(bytes) !== entry.sha256) throw new Error(`${entry.path}: checksum mismatch (got ${sha(bytes)}, expected ${entry.sha256})`);
  const dest = join(target, entry.path);
  mkdirSync(dirname(dest), { recursive: true });
  const tmp = `${dest}.tmp-${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, dest);
}

async function fetchBytes(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

function findFile(dir, name) {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) {
      const hit = findFile(p, name);
      if (hit) return hit;
    } else if (e === name) return p;
  }
  return null;
}

const todo = files.filter((f) => !(existsSync(join(target, f.path)) && sha(readFileSync(join(target, f.path))) === f.sha256));
console.log(`${files.length - todo.length} of ${files.length} sample files already in ${target}; fetching ${todo.length}`);
let done = 0;
const t0 = Date.now();
const progress = (what) => console.log(`[${++done}/${todo.length}] ${what} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
try {
  for (const archive of [...new Set(todo.filter((f) => f.archive).map((f) => f.archive))]) {
    const work = mkdtempSync(join(tmpdir(), 'skysense-samples-'));
    try {
      writeFileSync(join(work, 'a.tar.bz2'), await fetchBytes(archive));
      execFileSync('tar', ['-xjf', 'a.tar.bz2'], { cwd: work });
      for (const f of todo.filter((x) => x.archive === archive)) {
        const found = findFile(work, f.member);
        if (!found) throw new Error(`${archive}: ${f.member} not in the archive`);
        place(f, readFileSync(found));
        progress(f.path);
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  for (const f of todo.filter((x) => x.url)) {
    place(f, await fetchBytes(f.url));
    progress(f.path);
  }
  console.log(`samples ready in ${target} (set SKYSENSE_SAMPLES=${target})`);
} catch (e) {
  console.error(`samples: ${e.message}\nThis needs internet access to GitHub; the files and their sources are listed in scripts/samples.json.`);
  process.exit(2);
}
