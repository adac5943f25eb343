import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Generator,
  Module,
  PthFile,
  SafetensorsFile,
  SkySenseError,
  bufferSource,
  convertToSafetensors,
  formatLoadReport,
  initBackend,
  inspectCheckpoint,
  loadCheckpoint,
  readZipDirectory,
  readZipEntry,
  savePth,
  tf,
  type Tensor,
} from '../src/index';
import { fixturePath } from './helpers';
import { TinyVit } from './tiny-vit';
import { writeSyntheticPth } from './pth-writer';

const PTH = (f: string) => fixturePath('pth-small-a', f);
const VIEWS = (f: string) => join(__dirname, 'fixtures', 'pth-views', f);
const dir = fs.mkdtempSync(join(tmpdir(), 'skysense-pth-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function reference(): SafetensorsFile {
  return SafetensorsFile.open(fixturePath('vit-skysense-small-a', 'weights.safetensors'));
}

/** Byte ranges a parser reads (pickle, zip directory): mutations there exercise the parsers, not the tensor data. */
function parserRegions(bytes: Uint8Array): [number, number][] {
  if (bytes[0] === 0x80) return [[0, 3000]];
  const entries = [...readZipDirectory(bufferSource(bytes)).values()];
  const pkl = entries.find((e) => e.name.endsWith('data.pkl'))!;
  const dirStart = Math.max(...entries.map((e) => e.dataOffset + e.compressedSize));
  return [
    [pkl.dataOffset, pkl.size],
    [dirStart, bytes.length - dirStart],
    ...entries.map((e): [number, number] => [e.dataOffset - 64, 64]),
  ];
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a).equals(Buffer.from(b));
}

describe('PyTorch checkpoints', () => {
  beforeAll(() => initBackend());

  it.each([
    ['model.pth', 'zip', 'flat'],
    ['checkpoint.pth', 'zip', 'state_dict'],
    ['legacy.pth', 'legacy', 'flat'],
    ['release_s2.pth', 'zip', 'flat'],
  ])('%s (%s, %s) holds the fixture tensors bit for bit', (file, format, layout) => {
    const pth = PthFile.open(PTH(file));
    const ref = reference();
    expect(pth.format).toBe(format);
    expect(pth.layout).toBe(layout);
    expect(pth.keys().filter((k) => k !== 'ctpe')).toEqual(ref.keys());
    for (const k of ref.keys()) {
      const a = pth.readRaw(k);
      expect(a.dtype).toBe('F32');
      expect(a.shape).toEqual(ref.shape(k));
      expect(sameBytes(a.data, ref.readRaw(k).data), k).toBe(true);
    }
    if (file === 'release_s2.pth') expect(pth.shape('ctpe')).toEqual([1, 365, 48]);
    pth.close();
    ref.close();
  });

  it('keeps the mmcv meta of checkpoint.pth as plain data', () => {
    const pth = PthFile.open(PTH('checkpoint.pth'));
    const meta = pth.extra.meta as Record<string, unknown>;
    expect(Object.keys(meta).length).toBeGreaterThan(0);
    expect(JSON.parse(JSON.stringify(meta))).toEqual(meta);
    pth.close();
  });

  it.each(['views.pth', 'views_legacy.pth'])('%s (written by torch 1.13): views, shared storages and every dtype', (file) => {
    const expected = JSON.parse(fs.readFileSync(VIEWS('expected.json'), 'utf8')) as Record<
      string,
      { dtype: string; shape: number[]; stride: number[]; storage_offset: number; values: number[] }
    >;
    const pth = PthFile.open(VIEWS(file));
    const dtypes: Record<string, string> = {
      float32: 'F32',
      float16: 'F16',
      bfloat16: 'BF16',
      int64: 'I64',
      int32: 'I32',
      uint8: 'U8',
      bool: 'BOOL',
      float64: 'F64',
    };
    for (const [name, e] of Object.entries(expected)) {
      if (name === '_meta') continue;
      const info = pth.info(name);
      expect(info.dtype, name).toBe(dtypes[e.dtype]);
      expect(info.shape, name).toEqual(e.shape);
      expect(info.stride, name).toEqual(e.stride);
      expect(info.offset, name).toBe(e.storage_offset);
      const values = Array.from(pth.read(name).dataSync());
      const want = e.values.map((v) => (e.dtype === 'float32' || e.dtype === 'float64' ? Math.fround(v) : v));
      expect(values, name).toEqual(want);
    }
    expect(pth.info('offset_view').storageKey).toBe(pth.info('shared_a').storageKey);
    expect(pth.info('transposed').contiguous).toBe(false);
    expect(pth.extra.meta).toEqual({
      epoch: 12,
      best: 0.875,
      iter: 4000,
      blob: (expected._meta as unknown as { blob_latin1: string }).blob_latin1,
      classes: ['a', 'b'],
      ok: true,
    });
    const half = pth.readRaw('half');
    expect(half.dtype).toBe('F16');
    expect(half.data.length).toBe(10);
    pth.close();
  });

  it('refuses malicious.pth with E_UNSAFE_PICKLE naming os.system, executing nothing', () => {
    const marker = join(dir, 'pwned-marker');
    const script = `
      const m = require(${JSON.stringify(join(__dirname, '..', 'dist', 'index.cjs'))});
      try { m.PthFile.open(${JSON.stringify(PTH('malicious.pth'))}); console.log('LOADED'); }
      catch (e) { console.log(e.code + ' ' + e.message); }`;
    const out = execFileSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      cwd: dir,
      env: { ...process.env, PWNED_MARKER: marker },
    });
    expect(out).toMatch(/^E_UNSAFE_PICKLE .*refusing to load global 'os\.system'/);
    expect(out).not.toContain('pwned');
    expect(out).not.toContain('LOADED');
    expect(fs.readdirSync(dir)).toEqual([]);
    expect(() => PthFile.open(PTH('malicious.pth'))).toThrow(SkySenseError);
  });

  it('truncated and corrupted files fail with a clear SkySenseError', () => {
    for (const file of ['model.pth', 'legacy.pth']) {
      const bytes = fs.readFileSync(PTH(file));
      for (const cut of [0, 7, 100, 1000, bytes.length >> 1, bytes.length - 100, bytes.length - 1]) {
        const err = (() => {
          try {
            const p = PthFile.open(bytes.subarray(0, cut));
            p.keys().forEach((k) => p.readRaw(k));
            return null;
          } catch (e) {
            return e;
          }
        })();
        expect(err, `${file} cut at ${cut}`).toBeInstanceOf(SkySenseError);
        expect((err as SkySenseError).code).toMatch(/^E_(CHECKPOINT|UNSUPPORTED)$/);
      }
    }
  });

  it('fuzz: 3000 mutated checkpoints each load or throw a SkySenseError, within the time bound', () => {
    const rng = new Generator(2026);
    const started = performance.now();
    let loaded = 0;
    const targets = ['model.pth', 'legacy.pth'].map((f) => {
      const bytes = new Uint8Array(fs.readFileSync(PTH(f)));
      return { bytes, hot: parserRegions(bytes) };
    });
    for (let i = 0; i < 3000; i++) {
      const { bytes, hot } = targets[i % 2]!;
      let copy = bytes.slice();
      const flips = 1 + rng.randint(8);
      for (let f = 0; f < flips; f++) {
        const region = hot[rng.randint(hot.length)]!;
        const at = rng.random() < 0.8 ? region[0] + rng.randint(Math.max(1, region[1])) : rng.randint(copy.length);
        copy[Math.min(at, copy.length - 1)] = rng.randint(256);
      }
      if (rng.random() < 0.1) copy = copy.subarray(0, rng.randint(copy.length));
      try {
        const p = PthFile.open(copy);
        p.keys().forEach((k) => p.readRaw(k));
        loaded++;
      } catch (e) {
        if (!(e instanceof SkySenseError)) throw new Error(`mutation ${i} escaped as ${(e as Error).name}: ${(e as Error).message}`);
      }
    }
    expect(loaded).toBeGreaterThan(0);
    expect(performance.now() - started).toBeLessThan(90_000);
  });

  it('converts to safetensors (atomically, dtypes kept) and re-reads identical tensors; prefix and strip select and rename', () => {
    for (const file of ['model.pth', 'legacy.pth', 'checkpoint.pth']) {
      const out = join(dir, `${file}.safetensors`);
      const progress: number[] = [];
      convertToSafetensors(PTH(file), out, { onProgress: (p) => progress.push(p.done / p.total) });
      expect(progress.at(-1)).toBe(1);
      const st = SafetensorsFile.open(out);
      const ref = reference();
      expect(st.keys()).toEqual(ref.keys());
      for (const k of ref.keys()) expect(sameBytes(st.readRaw(k).data, ref.readRaw(k).data), k).toBe(true);
      if (file === 'checkpoint.pth') expect(JSON.parse(st.metadata.pth_extra!).meta).toBeDefined();
      st.close();
      ref.close();
    }
    const views = join(dir, 'views.safetensors');
    convertToSafetensors(VIEWS('views.pth'), views);
    const st = SafetensorsFile.open(views);
    expect(st.info('bfloat16').dtype).toBe('BF16');
    expect(Array.from(st.read('transposed').shape)).toEqual([6, 4]);
    st.close();
    const sub = join(dir, 'layers.safetensors');
    expect(convertToSafetensors(PTH('release_s2.pth'), sub, { prefix: 'layers.1.', strip: 'layers.1.' })).toEqual([
      'ln1.weight',
      'ln1.bias',
      'attn.attn.in_proj_weight',
      'attn.attn.in_proj_bias',
      'attn.attn.out_proj.weight',
      'attn.attn.out_proj.bias',
      'ln2.weight',
      'ln2.bias',
      'ffn.layers.0.0.weight',
      'ffn.layers.0.0.bias',
      'ffn.layers.1.weight',
      'ffn.layers.1.bias',
    ]);
    expect(() => convertToSafetensors(PTH('model.pth'), join(dir, 'none.safetensors'), { prefix: 'nothing.' })).toThrow(
      /no tensor starts with 'nothing\.'/,
    );
  });

  it('reads ZIP64 archives (as torch writes files over 4 GiB) and any archive folder name', () => {
    const file = join(dir, 'zip64.pth');
    const fill = (seed: number) => (off: number, chunk: Uint8Array) => {
      const f = new Float32Array(chunk.buffer, chunk.byteOffset, chunk.byteLength / 4);
      for (let i = 0; i < f.length; i++) f[i] = seed + (off / 4 + i) * 0.5;
    };
    writeSyntheticPth(
      file,
      [
        { name: 'a.weight', shape: [3, 4], fill: fill(1) },
        { name: 'b', shape: [5], fill: fill(-2) },
      ],
      'my_model-v2',
    );
    const pth = PthFile.open(file);
    expect(pth.keys()).toEqual(['a.weight', 'b']);
    expect(Array.from(pth.read('b').dataSync())).toEqual([-2, -1.5, -1, -0.5, 0]);
    expect(pth.shape('a.weight')).toEqual([3, 4]);
    pth.close();
  });

  it('savePth writes what torch.save writes: the reference tensors bit for bit, int64 and bool buffers, a prefix; torch.load reads it where Python has torch', () => {
    const vit = new TinyVit();
    vit.loadStateDict(reference());
    const file = join(dir, 'saved.pth');
    savePth(file, vit, { prefix: 'backbone.' });
    const ours = PthFile.open(file);
    const torchSaved = PthFile.open(PTH('release_s2.pth'));
    expect(ours.keys()).toEqual(
      torchSaved
        .keys()
        .filter((k) => k !== 'ctpe')
        .map((k) => `backbone.${k}`),
    );
    for (const k of torchSaved.keys().filter((k) => k !== 'ctpe')) {
      expect(sameBytes(ours.readRaw(`backbone.${k}`).data, torchSaved.readRaw(k).data)).toBe(true);
    }
    ours.close();
    torchSaved.close();
    const back = new TinyVit();
    expect(loadCheckpoint(back, file, { prefix: 'backbone.', log: false }).missing).toEqual([]);
    back.dispose();
    vit.dispose();
    const buffers = new Map<string, Tensor>([
      [
        'index',
        tf.tensor2d(
          [
            [0, 1],
            [2, 70000],
          ],
          undefined,
          'int32',
        ),
      ],
      ['mask', tf.tensor1d([true, false, true], 'bool')],
    ]);
    savePth(join(dir, 'buffers.pth'), buffers);
    const b = PthFile.open(join(dir, 'buffers.pth'));
    expect([b.info('index').dtype, b.info('mask').dtype]).toEqual(['I64', 'BOOL']);
    expect(Array.from(b.read('index').dataSync())).toEqual([0, 1, 2, 70000]);
    expect(Array.from(b.read('mask').dataSync())).toEqual([1, 0, 1]);
    b.close();
    tf.dispose([...buffers.values()]);
    // a dtype a .pth of ours cannot hold (the check comes before any data is read, so a stand-in will do on every backend)
    const complex = { dtype: 'complex64', shape: [1], size: 1 } as unknown as Tensor;
    expect(() => savePth(join(dir, 'c.pth'), new Map([['c', complex]]))).toThrow(
      /^E_DTYPE: savePth: tensor 'c' is complex64; expected float32, int32 or bool$/,
    );
    expect(fs.existsSync(join(dir, 'c.pth'))).toBe(false);
    // Debian's python3-torch lives in /usr/bin/python3, which another python3 on PATH may hide
    const script =
      'import torch, sys; sd = torch.load(sys.argv[1], weights_only=True); print(len(sd), float(sd["backbone.layers.1.ln2.bias"].sum()))';
    const tries = ['python3', '/usr/bin/python3'].map((py) => spawnSync(py, ['-c', script, file], { encoding: 'utf8' }));
    const python = tries.find((t) => t.status === 0) ?? tries[0]!;
    if (python.status === 0) {
      const ref = reference();
      const expected = tf.tidy(() => ref.read('layers.1.ln2.bias').sum().dataSync()[0]!);
      ref.close();
      const [n, sum] = python.stdout.trim().split(' ').map(Number);
      expect(n).toBe(28);
      expect(Math.abs(sum! - expected)).toBeLessThan(1e-5);
    } else console.log(`torch.load not tried: ${python.stderr.trim().split('\n').at(-1) ?? 'python3 missing'}`);
  });

  it('inspect lists names, dtypes, shapes and totals without reading data', () => {
    const s = inspectCheckpoint(PTH('checkpoint.pth'));
    expect(s.format).toBe('pth-zip');
    expect(s.layout).toBe('state_dict');
    expect(s.tensors[0]).toEqual({ name: 'cls_token', dtype: 'F32', shape: [1, 1, 64] });
    expect(s.totalParameters).toBe(s.tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0));
    expect(s.totalBytes).toBe(4 * s.totalParameters);
  });

  it('loadCheckpoint loads .pth and .safetensors and prints a PyTorch-like report with harmless keys labelled', () => {
    const lines: string[] = [];
    const vit = new TinyVit();
    const report = loadCheckpoint(vit, PTH('release_s2.pth'), { strict: false, log: (t) => lines.push(t) });
    expect(report.unexpected).toEqual(['ctpe']);
    expect(lines[0]).toMatch(/loaded 28 tensors from release_s2\.pth/);
    expect(lines[0]).toMatch(/ctpe {2}\[harmless: calendar-time position encoding/);
    expect(() => loadCheckpoint(vit, PTH('release_s2.pth'), { log: false })).toThrow(/unexpected key\(s\): ctpe/);
    // the rules belong to the model: nested under another module they apply below its prefix, and a bare report labels nothing
    class Wrapper extends Module {
      readonly enc = this.registerModule('backbone_s2', new TinyVit());
    }
    const wrapped = new Wrapper();
    const text = formatLoadReport(
      { loaded: [], missing: [], unexpected: ['backbone_s2.ctpe', 'ctpe'], mismatched: [], ignored: [] },
      'file',
      wrapped,
    );
    expect(text).toMatch(/backbone_s2\.ctpe {2}\[harmless: calendar-time/);
    expect(text).toMatch(/\n {2}ctpe\n|\n {2}ctpe$/);
    expect(formatLoadReport(report)).not.toMatch(/harmless/);
    wrapped.dispose();
    const r2 = loadCheckpoint(vit, fixturePath('vit-skysense-small-a', 'weights.safetensors'), { log: false });
    expect(formatLoadReport(r2)).toMatch(/<All keys matched successfully>|loaded 28 tensors/);
    vit.dispose();
  });
});

describe('expansion limits', () => {
  it('a view that repeats a small storage (stride 0) into 400 MB is refused before allocating; small broadcasts still read', () => {
    const file = join(dir, 'broadcast.pth');
    writeSyntheticPth(file, [
      { name: 'big', shape: [100_000_000], stride: [0], storageNumel: 1, fill: (_, c) => c.fill(1) },
      {
        name: 'small',
        shape: [4, 3],
        stride: [0, 1],
        storageNumel: 3,
        fill: (o, c) => new Float32Array(c.buffer, c.byteOffset, c.length / 4).set([1, 2, 3].slice(o / 4)),
      },
    ]);
    const f = PthFile.open(file);
    const rss0 = process.memoryUsage().rss;
    expect(() => f.readRaw('big')).toThrow(
      /^E_LIMIT: .*broadcast\.pth: tensor 'big' \[100000000\]: expands 4 bytes to 400 MB \(100000000×; at most 200× beyond 67 MB\): a decompression bomb or a corrupt file$/,
    );
    expect(process.memoryUsage().rss - rss0).toBeLessThan(100e6);
    expect(Array.from(new Float32Array(f.readRaw('small').data.slice().buffer))).toEqual([1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
    expect(() => convertToSafetensors(file, join(dir, 'broadcast.safetensors'))).toThrow(/E_LIMIT: .*tensor 'big'/);
    expect(fs.readdirSync(dir).filter((n) => n.includes('broadcast.safetensors'))).toEqual([]);
    f.close();
  });

  it('a deflated zip entry that would inflate past the ratio is refused from its declared sizes', () => {
    const src = bufferSource(new Uint8Array(16), 'bomb.pth');
    const entry = { name: 'archive/data/0', method: 8, compressedSize: 1_600_000, size: 1_200_000_000, dataOffset: 0 };
    expect(() => readZipEntry(src, entry)).toThrow(/^E_LIMIT: bomb\.pth: entry 'archive\/data\/0': expands 1\.6 MB to 1\.2 GB \(750×/);
  });
});
