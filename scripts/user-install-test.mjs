#!/usr/bin/env node
/**
 * The user-install test: packs every package as `npm publish` would (prepack builds, core-tensor
 * carries its prebuilt addon), installs subsets into empty folders outside the repository — from
 * npm's cache (\`--prefer-offline\`: only metadata the cache lacks is asked of the registry, which
 * has no @skysense package, so a lookup of one fails the test), with OpenBLAS hidden from
 * pkg-config — and runs README examples in
 * ESM and CommonJS, `skysense --version` and `skysense info`. Prints what was installed, the size
 * of node_modules and where the native kernels came from; exits 1 on the first failure.
 *
 *   node scripts/user-install-test.mjs [--keep]     (--keep leaves the temporary folder)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'skysense-user-install-'));
const noBlas = join(work, 'no-pkgconfig'); // an empty pkg-config search path: OpenBLAS is invisible
mkdirSync(noBlas);
const env = {
  ...process.env,
  PKG_CONFIG_LIBDIR: noBlas,
  PKG_CONFIG_PATH: '',
  npm_config_prefer_offline: 'true',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
};
delete env.SKYSENSE_NATIVE;
delete env.SKYSENSE_BACKEND;

const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** An example written once, run as an ES module and as CommonJS. */
function variants(imports, body) {
  const names = Object.entries(imports);
  const esm = `${names.map(([pkg, n]) => `import { ${n.join(', ')} } from '${pkg}';`).join('\n')}\n${body}\n`;
  const cjs = `${names.map(([pkg, n]) => `const { ${n.join(', ')} } = require('${pkg}');`).join('\n')}\n(async () => {\n${body}\n})().catch((e) => { console.error(e); process.exit(1); });\n`;
  return { 'example.mjs': esm, 'example.cjs': cjs };
}

// Each check prints one line; the backend line must say the kernels came from the prebuilt binary.
const backendCheck = `const report = await initBackend();
if (report.kind !== 'cpu' || !report.reason.includes('prebuilt binary')) throw new Error('native kernels not from the prebuilt binary: ' + report.reason);
console.log('backend:', report.reason);`;

const subsets = [
  {
    name: 'core-tensor + swin',
    packages: ['core-tensor', 'swin'],
    examples: variants(
      { '@skysense/core-tensor': ['initBackend', 'tf'], '@skysense/swin': ['SwinTransformerV2'] },
      `${backendCheck}
const model = SwinTransformerV2.fromPreset('tiny', { outIndices: [0, 1, 2, 3] }).eval();
const feats = model.forward(tf.randomNormal([1, 3, 256, 256]));
const shapes = JSON.stringify(feats.map((f) => f.shape));
if (shapes !== '[[1,96,64,64],[1,192,32,32],[1,384,16,16],[1,768,8,8]]') throw new Error('unexpected shapes ' + shapes);
console.log('swin tiny features:', shapes);`,
    ),
  },
  {
    name: 'core-tensor + vit + heads',
    packages: ['core-tensor', 'vit', 'heads'],
    examples: variants(
      {
        '@skysense/core-tensor': ['initBackend', 'tf'],
        '@skysense/vit': ['VisionTransformer'],
        '@skysense/heads': ['UPerHead', 'crossEntropyLoss', 'resizeTo'],
      },
      `${backendCheck}
const vit = new VisionTransformer({ embedDims: 64, numLayers: 2, numHeads: 4, outIndices: [0, 1] }).eval();
const [, layer1] = vit.forwardSeries(tf.randomNormal([1, 3, 10, 64, 64]));
const head = new UPerHead({ inChannels: [8, 16, 24, 32], channels: 16, numClasses: 5 });
const feats = [32, 16, 8, 4].map((s, i) => tf.randomNormal([2, 8 * (i + 1), s, s]));
const loss = crossEntropyLoss(resizeTo(head.forward(feats), [128, 128]), tf.zeros([2, 128, 128], 'int32')).dataSync()[0];
if (JSON.stringify(layer1.shape) !== '[1,3,64,16,16]' || !Number.isFinite(loss)) throw new Error('unexpected vit/heads output');
console.log('vit series:', JSON.stringify(layer1.shape), 'upernet loss:', loss.toFixed(4));`,
    ),
  },
  {
    name: 'core-tensor + data',
    packages: ['core-tensor', 'data'],
    examples: variants(
      { '@skysense/core-tensor': ['initBackend'], '@skysense/data': ['loadSentinel2', 'samplesDir'] },
      `${backendCheck}
const folder = samplesDir() + '/bigearthnet/v1-s1s2-example/BigEarthNet-S2/S2A_MSIL2A_20170613T101031_87_48';
const s2 = await loadSentinel2({ folder });
if (s2.names.length !== 10 || s2.height !== 120) throw new Error('unexpected Sentinel-2 stack');
console.log('sentinel-2 bands:', s2.names.join(','), s2.height + 'x' + s2.width);`,
    ),
  },
  {
    name: '@skysense/skysense (umbrella)',
    packages: ['core-tensor', 'data', 'swin', 'vit', 'temporal-fusion', 'geo-prototypes', 'losses', 'heads', 'skysense'],
    examples: variants(
      { '@skysense/core-tensor': ['initBackend', 'tf'], '@skysense/skysense': ['SkySense'] },
      `${backendCheck}
const model = SkySense.fromPreset('skysense-tiny').eval();
const { fused } = model.forward({
  hr: tf.randomNormal([1, 3, 128, 128]),
  s2: { frames: tf.randomNormal([1, 3, 10, 4, 4]), dates: [['2021-04-01', '2021-06-01', '2021-08-01']] },
  s1: { frames: tf.randomNormal([1, 2, 2, 4, 4]) },
  lat: [43.6], lon: [1.44],
});
console.log('skysense-tiny fused:', JSON.stringify(fused.shape));`,
    ),
    cli: true,
  },
];

/** Packs every package (dependencies first: prepack builds each) with the caller's environment. */
function pack() {
  const dir = join(work, 'tarballs');
  mkdirSync(dir);
  const published = readdirSync(join(repo, 'packages')).filter(
    (p) => !JSON.parse(readFileSync(join(repo, 'packages', p, 'package.json'), 'utf8')).private,
  );
  const order = ['core-tensor', ...published.filter((p) => !['core-tensor', 'skysense'].includes(p)), 'skysense'];
  for (const p of order)
    execFileSync('npm', ['pack', '--silent', '-w', `packages/${p}`, '--pack-destination', dir], {
      cwd: repo,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  const files = readdirSync(dir);
  console.log(`packed ${files.length} packages: ${files.join(', ')}`);
  return Object.fromEntries(
    order.map((p) => [
      p,
      join(
        dir,
        files.find((f) => f.startsWith(`skysense-${p}-`)),
      ),
    ]),
  );
}

function megabytes(dir) {
  return Number(run('du', ['-sm', dir]).split('\t')[0]);
}

function trial(subset, tarballs) {
  const dir = join(work, subset.name.replace(/[^a-z]+/gi, '-'));
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'user-project', private: true, version: '1.0.0' }));
  // Nothing is published yet: the @skysense/* packages a subset needs are all named as tarballs
  // (once published, `npm install @skysense/skysense` alone does the same); the rest is npm's cache.
  const out = run('npm', ['install', '--foreground-scripts', ...subset.packages.map((p) => tarballs[p])], dir);
  const nativeLine = out.split('\n').find((l) => l.startsWith('native kernels:')) ?? '(no line from the install step)';
  const installed = readdirSync(join(dir, 'node_modules', '@skysense')).join(', ');
  console.log(`\n## ${subset.name}\ninstalled @skysense/{${installed}}; install step: ${nativeLine}`);
  console.log(
    `node_modules: ${megabytes(join(dir, 'node_modules'))} MB (@tensorflow: ${megabytes(join(dir, 'node_modules', '@tensorflow'))} MB)`,
  );
  for (const [file, code] of Object.entries(subset.examples)) {
    writeFileSync(join(dir, file), code);
    console.log(`${file}:\n${run(process.execPath, [file], dir).trim().replace(/^/gm, '  ')}`);
  }
  if (subset.cli) {
    console.log(`npx skysense --version: ${run('npx', ['--offline', 'skysense', '--version'], dir).trim()}`);
    const info = run('npx', ['--offline', 'skysense', 'info', 'skysense-2b'], dir).trim().split('\n');
    console.log(
      `npx skysense info skysense-2b:\n${info
        .slice(0, 4)
        .map((l) => `  ${l}`)
        .join('\n')}\n  … (${info.length} lines)`,
    );
  }
}

try {
  const tarballs = pack();
  for (const subset of subsets) trial(subset, tarballs);
  console.log('\nuser-install test: passed');
} catch (e) {
  console.error(`user-install test: FAILED\n${e.stderr ?? ''}${e.stdout ?? ''}${e.message}`);
  process.exitCode = 1;
} finally {
  if (!process.argv.includes('--keep')) rmSync(work, { recursive: true, force: true });
  else console.log(`kept ${work}`);
}
