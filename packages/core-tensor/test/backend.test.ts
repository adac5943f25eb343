import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BACKEND_ORDER,
  SkySenseError,
  backendFromEnv,
  currentBackend,
  defaultBackendOrder,
  formatBackendReport,
  hasKernel,
  initBackend,
  formatAdapter,
  probeWebGPU,
  tf,
  type BackendReport,
  type WebGPUAdapter,
} from '../src/index';
import { nativeAddon } from '../src/native';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const savedEnv = process.env.SKYSENSE_BACKEND;
beforeEach(() => {
  delete process.env.SKYSENSE_BACKEND; // these tests choose backends themselves (CI also runs the suite with it set)
});
afterEach(async () => {
  if (savedEnv === undefined) delete process.env.SKYSENSE_BACKEND;
  else process.env.SKYSENSE_BACKEND = savedEnv;
  await initBackend({ force: 'wasm' });
});

describe('initBackend', () => {
  it('tries CUDA, native, WebGPU, then the CPU paths in order and reports why each earlier one was skipped', async () => {
    const lines: string[] = [];
    const r = await initBackend({ log: (l) => lines.push(l) });
    expect(BACKEND_ORDER).toEqual(['cuda', 'native', 'webgpu', 'wasm', 'cpu']);
    expect(defaultBackendOrder()).toEqual(nativeAddon() ? ['cuda', 'native', 'webgpu', 'cpu', 'wasm'] : BACKEND_ORDER);
    const chosen = r.attempts.findIndex((a) => a.ok);
    expect(r.attempts[chosen]!.kind).toBe(r.kind);
    expect(r.attempts.map((a) => a.kind)).toEqual(defaultBackendOrder().slice(0, chosen + 1));
    if (r.kind === 'cpu') expect(r.nativeKernels).toContain('BatchMatMul');
    for (const skipped of r.attempts.slice(0, chosen))
      expect(skipped.reason).toMatch(
        skipped.kind === 'webgpu'
          ? /^(no GPU adapter|only a software adapter \(.+\), slower than the CPU backends: force it with SKYSENSE_BACKEND=webgpu|webgpu.* not installed \(optional: npm install webgpu@0\.6\.2 @tensorflow\/tfjs-backend-webgpu@4\.22\.0\))/
          : /@tensorflow\/tfjs-node(-gpu)? is not (installed \(optional: npm install @tensorflow\/tfjs-node(-gpu)?@4\.22\.0|usable)/,
      );
    if (r.nativeKernels.length) expect(r.gemm).toBe(nativeAddon()!.gemmName());
    if (r.gemm) expect(r.reason).toContain(r.gemm);
    expect(tf.getBackend()).toBe(r.tfjsName);
    expect(currentBackend()).toBe(r);
    expect(lines).toEqual([formatBackendReport(r)]);
    expect(lines[0]).toMatch(new RegExp(`^\\[skysense\\] backend ${r.kind}: `));
  });

  it('prefer puts one backend first and keeps the others as fallbacks', async () => {
    const r = await initBackend({ prefer: 'cpu' });
    expect(r.kind).toBe('cpu');
    expect(r.attempts).toHaveLength(1);
    // with the addon, the cpu kind runs on the derived `cpu-native` backend; tfjs's `cpu` backend keeps its own kernels
    expect(tf.getBackend()).toBe(nativeAddon() ? 'cpu-native' : 'cpu');
    expect(r.tfjsName).toBe(tf.getBackend());
    if (nativeAddon()) {
      expect(tf.getKernel('BatchMatMul', 'cpu-native')!.kernelFunc).not.toBe(tf.getKernel('BatchMatMul', 'cpu')!.kernelFunc);
      expect(tf.getKernel('Atan2', 'cpu-native')!.kernelFunc).toBe(tf.getKernel('Atan2', 'cpu')!.kernelFunc);
    }
  });

  it('SKYSENSE_BACKEND forces exactly one backend', async () => {
    process.env.SKYSENSE_BACKEND = 'cpu';
    const r = await initBackend({ prefer: 'wasm' });
    expect(r.kind).toBe('cpu');
    expect(r.reason).toMatch(/forced by SKYSENSE_BACKEND/);
  });

  it('a forced backend that cannot load is a loud E_BACKEND error', async () => {
    const attempt = async (kind: 'cuda' | 'native') => {
      try {
        await initBackend({ force: kind });
      } catch (e) {
        return e as SkySenseError;
      }
      return null;
    };
    for (const kind of ['cuda', 'native'] as const) {
      const err = await attempt(kind);
      if (err === null) continue; // a machine with libtensorflow installed
      expect(err.code).toBe('E_BACKEND');
      expect(err.message).toMatch(new RegExp(`backend '${kind}' was forced but cannot load`));
    }
    process.env.SKYSENSE_BACKEND = 'native';
    const viaEnv = await initBackend().catch((e: SkySenseError) => e);
    if (viaEnv instanceof SkySenseError) expect(viaEnv.message).toMatch(/forced but cannot load/);
  });

  it('rejects unknown backend names', async () => {
    expect(() => backendFromEnv({ SKYSENSE_BACKEND: 'tpu' })).toThrow(
      /SKYSENSE_BACKEND: expected one of cuda, native, webgpu, wasm, cpu or auto, got 'tpu'/,
    );
    expect(backendFromEnv({ SKYSENSE_BACKEND: 'auto' })).toBeUndefined();
    expect(backendFromEnv({})).toBeUndefined();
    await expect(initBackend({ prefer: 'gpu' as never })).rejects.toThrow(/prefer: expected one of/);
  });

  it('hasKernel tells which kernels the active backend lacks', async () => {
    await initBackend({ force: 'wasm' });
    expect(hasKernel('BatchMatMul')).toBe(true);
    expect(hasKernel('Conv2DBackpropFilter')).toBe(false);
    await initBackend({ force: 'cpu' });
    expect(hasKernel('Conv2DBackpropFilter')).toBe(true);
    const report = await initBackend({ force: 'cpu' });
    expect(report.nativeKernels.length > 0).toBe(nativeAddon() !== null);
    expect(report.reason).toMatch(nativeAddon() ? /native kernels \((OpenBLAS|built-in GEMM)/ : /native kernels (not built|disabled)/);
  });
});

const webgpuInstalled = probeWebGPU().reason?.includes('not installed') !== true;
const dist = join(__dirname, '..', 'dist', 'index.js');

describe.runIf(webgpuInstalled && process.platform === 'linux' && existsSync(dist))('the webgpu backend', () => {
  /** Runs initBackend({ log: true }) in a child process; its stderr lines and the report. */
  function initInChild(env: Record<string, string>): { lines: string[]; report: BackendReport } {
    const script = `const m = await import(${JSON.stringify(pathToFileURL(dist).href)}); const r = await m.initBackend({ log: true }); process.stdout.write(JSON.stringify(r));`;
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, SKYSENSE_BACKEND: '', ...env },
      encoding: 'utf8',
    });
    expect(out.status, out.stderr).toBe(0);
    return { lines: out.stderr.split('\n').filter((l) => l), report: JSON.parse(out.stdout) as BackendReport };
  }

  it('with no adapter (no Vulkan driver), one line says why webgpu was skipped and the CPU path is chosen, without other output', () => {
    const { lines, report } = initInChild({ VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^\[skysense\] backend (cpu|wasm): .*webgpu: no GPU adapter \(no Vulkan, Metal or D3D12 driver with WebGPU support\)/,
    );
    expect(report.attempts.find((a) => a.kind === 'webgpu')?.ok).toBe(false);
  });

  const probe = probeWebGPU();
  it.runIf(probe.adapter?.software === true)('a software adapter (lavapipe) is skipped by default and named', () => {
    const { report } = initInChild({});
    const webgpu = report.attempts.find((a) => a.kind === 'webgpu')!;
    expect(webgpu.ok).toBe(false);
    expect(webgpu.reason).toContain(`only a software adapter (${formatAdapter(probe.adapter!)})`);
  });

  it.runIf(probe.adapter !== undefined)('SKYSENSE_BACKEND=webgpu runs on the adapter, names it, and reads synchronously', () => {
    const script = `const m = await import(${JSON.stringify(pathToFileURL(dist).href)}); const r = await m.initBackend();
      const x = m.tf.tensor([[1, 2], [3, 4]]); const y = m.tf.matMul(x, x);
      process.stdout.write(JSON.stringify({ kind: r.kind, backend: m.tf.getBackend(), adapter: r.adapter, reason: r.reason, values: Array.from(y.dataSync()) }));`;
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, SKYSENSE_BACKEND: 'webgpu' },
      encoding: 'utf8',
    });
    expect(out.status, out.stderr).toBe(0);
    expect(out.stderr, 'Dawn and the driver print nothing').toBe('');
    const r = JSON.parse(out.stdout) as { kind: string; backend: string; adapter: WebGPUAdapter; reason: string; values: number[] };
    expect(r.kind).toBe('webgpu');
    expect(r.backend).toBe('webgpu');
    expect(r.adapter).toEqual(probe.adapter);
    expect(r.reason).toContain(`adapter ${formatAdapter(probe.adapter!)}`);
    expect(r.values).toEqual([7, 10, 15, 22]);
  });
});
