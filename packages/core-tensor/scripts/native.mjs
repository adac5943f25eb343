#!/usr/bin/env node
/**
 * The native kernels' build, one line of output per run. A failure is never an error: SkySense then
 * runs on the JavaScript kernels and `initBackend` says why.
 *
 *   node scripts/native.mjs install   npm's install step: a prebuilt binary that loads, else compile
 *   node scripts/native.mjs build     the repository's build: compile when sources or settings changed
 *   node scripts/native.mjs prebuild  `prepack`: prebuilds/<platform>-<arch>/ with the built-in GEMM
 *   node scripts/native.mjs clean-prebuild  `postpack`: removes prebuilds/ and rebuilds the working copy's addon
 *   node scripts/native.mjs --blas    (binding.gyp) prints `openblas` or `builtin`
 *
 * Environment: SKYSENSE_NATIVE=0 skips the build; SKYSENSE_BLAS=builtin ignores an installed OpenBLAS
 * (default `auto`: OpenBLAS when pkg-config finds it); npm's `--build-from-source` compiles even
 * when a prebuilt binary would load.
 */
import { execFileSync, execSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const addon = join(root, 'build', 'Release', 'skysense_native.node');
const stampFile = join(root, 'build', 'native-stamp.json');

function hasOpenBlas() {
  try {
    execSync('pkg-config --exists openblas', { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** `openblas` or `builtin`, from SKYSENSE_BLAS and what pkg-config finds. */
function blasChoice() {
  const want = (process.env.SKYSENSE_BLAS ?? 'auto').toLowerCase();
  if (want === 'builtin') return 'builtin';
  if (hasOpenBlas()) return 'openblas';
  if (want === 'openblas')
    console.error('native kernels: SKYSENSE_BLAS=openblas but pkg-config finds no openblas; using the built-in GEMM');
  return 'builtin';
}

/** What the binary depends on: the choice of BLAS and the contents of every source file. */
function stamp(blas) {
  const hash = createHash('sha256');
  for (const f of [
    'binding.gyp',
    ...readdirSync(join(root, 'native'))
      .sort()
      .map((n) => join('native', n)),
  ])
    hash.update(f).update(readFileSync(join(root, f)));
  return JSON.stringify({ blas, sources: hash.digest('hex').slice(0, 16) });
}

/** node-gyp: npm's own copy in npm scripts (`npm_config_node_gyp`), else the workspace's. */
function nodeGyp() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return fromNpm;
  return require.resolve('node-gyp/bin/node-gyp.js');
}

/** The installed Node's own headers when it ships them (no download needed), or undefined. */
function nodedir() {
  const prefix = dirname(dirname(process.execPath));
  return process.env.npm_config_nodedir ?? (existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
}

const describe = (blas) => (blas === 'openblas' ? 'with OpenBLAS' : 'with the built-in GEMM');

/** Whether the binary loads in a fresh Node (a child process: a crash there cannot take this script down). */
function loads(path) {
  return spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path)})`], { stdio: 'ignore' }).status === 0;
}

/** Compiles with `blas`; an OpenBLAS build that does not load (a library the loader cannot find) is redone without it. */
function compile(blas, why) {
  try {
    const env = { ...process.env, SKYSENSE_BLAS: blas };
    const headers = nodedir() ? [`--nodedir=${nodedir()}`] : [];
    execFileSync(process.execPath, [nodeGyp(), 'rebuild', '--jobs=max', ...headers], { cwd: root, env, stdio: 'pipe' });
  } catch (e) {
    const out = `${e.stdout ?? ''}\n${e.stderr ?? ''}`.split('\n');
    const detail =
      out.find((l) => /error/i.test(l) && !/^gyp (ERR|info)/.test(l)) ?? out.find((l) => /error/i.test(l)) ?? e.message.split('\n')[0];
    return void console.log(`native kernels: not built, using the JavaScript kernels (${detail.trim()})`);
  }
  if (!loads(addon)) {
    rmSync(join(root, 'build'), { recursive: true, force: true });
    if (blas === 'openblas') return compile('builtin', ' (the OpenBLAS build did not load)');
    return void console.log('native kernels: compiled but the binary does not load here; using the JavaScript kernels');
  }
  writeFileSync(stampFile, stamp(blas));
  console.log(`native kernels: compiled ${describe(blas)}${why}`);
}

/** A prebuilt binary under prebuilds/ that loads in this Node, or null. */
function loadablePrebuild() {
  try {
    const path = require('node-gyp-build').resolve(root);
    return relative(root, path).startsWith('prebuilds') && loads(path) ? path : null;
  } catch {
    return null;
  }
}

const upToDate = (blas) => existsSync(addon) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp(blas);

/**
 * prebuilds/linux-x64/ with the built-in GEMM, made by prebuildify (Node-API: one binary serves
 * every Node ≥ 20). Published tarballs carry the linux-x64 binary, so packing anywhere else fails.
 */
function prebuild() {
  if (`${process.platform}-${process.arch}` !== 'linux-x64')
    throw new Error(`native.mjs prebuild: pack on linux-x64 (the published prebuilt binary), not ${process.platform}-${process.arch}`);
  rmSync(join(root, 'prebuilds'), { recursive: true, force: true });
  // node-gyp reads npm_config_nodedir: the local headers, so nothing is downloaded
  const env = { ...process.env, SKYSENSE_BLAS: 'builtin', ...(nodedir() ? { npm_config_nodedir: nodedir() } : {}) };
  const args = [require.resolve('prebuildify/bin.js'), '--napi', '--strip', '--quiet', `--node-gyp=${nodeGyp()}`];
  execFileSync(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'] });
  rmSync(stampFile, { force: true }); // build/ now holds the prebuilt's build: the next `build` recompiles
  console.log(`native kernels: prebuilt ${readdirSync(join(root, 'prebuilds')).join(', ')} with the built-in GEMM`);
}

function main(mode) {
  if (mode === '--blas') return void process.stdout.write(blasChoice());
  if (!['install', 'build', 'prebuild', 'clean-prebuild'].includes(mode))
    throw new Error(`usage: native.mjs install|build|prebuild|clean-prebuild|--blas (got ${mode})`);
  if (mode === 'prebuild') return prebuild(); // a published package always carries the binary
  if (mode === 'clean-prebuild') rmSync(join(root, 'prebuilds'), { recursive: true, force: true }); // then build as configured
  if (process.env.SKYSENSE_NATIVE === '0') return void console.log('native kernels: skipped (SKYSENSE_NATIVE=0)');
  const blas = blasChoice();
  if (mode === 'install' && process.env.npm_config_build_from_source !== 'true') {
    const prebuilt = loadablePrebuild();
    if (prebuilt) return void console.log(`native kernels: prebuilt binary ${relative(root, prebuilt)} (built-in GEMM)`);
  }
  if (upToDate(blas)) return void console.log(`native kernels: up to date (${describe(blas)})`);
  const why =
    blas === 'builtin' && process.env.SKYSENSE_BLAS?.toLowerCase() !== 'builtin'
      ? ' (no OpenBLAS found by pkg-config: it is optional)'
      : '';
  compile(blas, why);
}

main(process.argv[2]);
