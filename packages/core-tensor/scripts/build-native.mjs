#!/usr/bin/env node
/**
 * Builds the optional native kernels (node-gyp + OpenBLAS found with pkg-config). A failure is not
 * an error: SkySense then uses the pure-JS kernels, and `initBackend` says so.
 */
import { execFileSync, execSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (process.env.SKYSENSE_NATIVE === '0') {
  console.log('native kernels: skipped (SKYSENSE_NATIVE=0)');
  process.exit(0);
}
try {
  execSync('pkg-config --exists openblas', { stdio: 'ignore' });
} catch {
  console.log('native kernels: not built (OpenBLAS not found by pkg-config; on Debian: apt-get install libopenblas-dev pkg-config)');
  process.exit(0);
}
try {
  const gyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  // Use the installed Node's own headers when it ships them (no download needed).
  const prefix = dirname(dirname(process.execPath));
  const nodedir = process.env.npm_config_nodedir ?? (existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
  execFileSync(process.execPath, [gyp, 'rebuild', '--silent', ...(nodedir ? [`--nodedir=${nodedir}`] : [])], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  console.log('native kernels: built (build/Release/skysense_native.node)');
} catch (e) {
  console.log(`native kernels: build failed, using the JavaScript kernels (${e.message.split('\n')[0]})`);
}
