import { afterEach, describe, expect, it } from 'vitest';
import {
  BACKEND_ORDER,
  SkySenseError,
  backendFromEnv,
  currentBackend,
  defaultBackendOrder,
  formatBackendReport,
  hasKernel,
  initBackend,
  tf,
} from '../src/index';
import { nativeAddon } from '../src/native';

const savedEnv = process.env.SKYSENSE_BACKEND;
afterEach(async () => {
  if (savedEnv === undefined) delete process.env.SKYSENSE_BACKEND;
  else process.env.SKYSENSE_BACKEND = savedEnv;
  await initBackend({ force: 'wasm' });
});

describe('initBackend', () => {
  it('tries CUDA, native, wasm, cpu in order and reports why each earlier one was skipped', async () => {
    delete process.env.SKYSENSE_BACKEND;
    const lines: string[] = [];
    const r = await initBackend({ log: (l) => lines.push(l) });
    expect(BACKEND_ORDER).toEqual(['cuda', 'native', 'wasm', 'cpu']);
    expect(defaultBackendOrder()).toEqual(nativeAddon() ? ['cuda', 'native', 'cpu', 'wasm'] : BACKEND_ORDER);
    const chosen = r.attempts.findIndex((a) => a.ok);
    expect(r.attempts[chosen]!.kind).toBe(r.kind);
    expect(r.attempts.map((a) => a.kind)).toEqual(defaultBackendOrder().slice(0, chosen + 1));
    if (r.kind === 'cpu') expect(r.nativeKernels).toContain('BatchMatMul');
    for (const skipped of r.attempts.slice(0, chosen))
      expect(skipped.reason).toMatch(
        /@tensorflow\/tfjs-node(-gpu)? is not (installed \(optional: npm install @tensorflow\/tfjs-node(-gpu)?@4\.22\.0|usable)/,
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
      /SKYSENSE_BACKEND: expected one of cuda, native, wasm, cpu or auto, got 'tpu'/,
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
