import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DTYPE_SIZE,
  Linear,
  SafetensorsFile,
  SkySenseError,
  bf16BitsToF32,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  detectCheckpointFormat,
  initBackend,
  openCheckpoint,
  rawToTensor,
  saveSafetensors,
  tensorToRaw,
  tf,
  writeSafetensors,
  type SafetensorsDType,
} from '../src/index';
import { expectClose, fixturePath } from './helpers';

const dir = fs.mkdtempSync(join(tmpdir(), 'skysense-st-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Writes a raw safetensors file: 8-byte length, header text, then `data`. */
function rawFile(name: string, header: string | object, data: Uint8Array = new Uint8Array(0), declaredLen?: bigint): string {
  const text = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(declaredLen ?? BigInt(text.length));
  const p = join(dir, name);
  fs.writeFileSync(p, Buffer.concat([len, text, data]));
  return p;
}

function openError(p: string): SkySenseError {
  try {
    SafetensorsFile.open(p).close();
  } catch (e) {
    return e as SkySenseError;
  }
  throw new Error(`expected ${p} to be refused`);
}

describe('safetensors', () => {
  beforeAll(() => initBackend());

  it('reads the PyTorch-made fixture files', () => {
    const f = SafetensorsFile.open(fixturePath('vit-skysense-small-a', 'weights.safetensors'));
    expect(f.keys()[0]).toBe('cls_token');
    expect(f.shape('patch_embed.projection.weight')).toEqual([64, 10, 4, 4]);
    expect(f.info('pos_embed').dtype).toBe('F32');
    expect(f.metadata).toEqual({});
    const pos = f.read('pos_embed');
    expect(pos.shape).toEqual([1, 17, 64]);
    expect(Number.isFinite(tf.sum(pos).dataSync()[0]!)).toBe(true);
    expect(f.totalElements()).toBe(f.keys().reduce((a, k) => a + f.shape(k).reduce((x, y) => x * y, 1), 0));
    f.close();
    const q = SafetensorsFile.open(fixturePath('sinkhorn-a', 'output.safetensors'));
    expectClose(tf.sum(q.read('Q_row_sums')), [16], 1e-4);
    q.close();
  });

  it('round-trips raw bytes bit-exactly for every dtype, with metadata', () => {
    const dtypes = Object.keys(DTYPE_SIZE) as SafetensorsDType[];
    const entries = dtypes.map((dtype, i): [string, { dtype: SafetensorsDType; shape: number[]; data: Uint8Array }] => {
      const shape = [3, i + 1];
      const data = new Uint8Array(3 * (i + 1) * DTYPE_SIZE[dtype]).map((_, j) => (j * 37 + i * 11) & 0xff);
      if (dtype === 'BOOL') data.forEach((_, j) => (data[j] = j % 2));
      return [`t_${dtype}`, { dtype, shape, data }];
    });
    const p = join(dir, 'all.safetensors');
    writeSafetensors(p, entries, { metadata: { format: 'pt', note: 'round trip' } });
    const f = SafetensorsFile.open(p);
    expect(f.metadata).toEqual({ format: 'pt', note: 'round trip' });
    for (const [name, t] of entries) {
      const raw = f.readRaw(name);
      expect(raw.dtype).toBe(t.dtype);
      expect(raw.shape).toEqual(t.shape);
      expect(Buffer.from(raw.data).equals(Buffer.from(t.data))).toBe(true);
    }
    f.close();
    const headerLen = Number(fs.readFileSync(p).readBigUInt64LE(0));
    expect((8 + headerLen) % 8).toBe(0);
  });

  it('converts tensors to and from every dtype exactly where the value is representable', () => {
    const floats = tf.tensor1d([0, -0, 1, -2, 0.5, 1 / 1024, -3.75, 256]);
    for (const dtype of ['F32', 'F64', 'F16', 'BF16'] as const) {
      expectClose(rawToTensor(tensorToRaw(floats, dtype)), floats, 0);
    }
    expectClose(rawToTensor(tensorToRaw(tf.tensor1d([65504]), 'F16')), [65504], 0);
    expectClose(rawToTensor(tensorToRaw(tf.tensor1d([65504]), 'BF16')), [65536], 0);
    const ints = tf.tensor1d([0, 1, -5, 127, 100], 'int32');
    for (const dtype of ['I64', 'I32', 'I16', 'I8'] as const) expectClose(rawToTensor(tensorToRaw(ints, dtype)), ints, 0);
    expectClose(rawToTensor(tensorToRaw(tf.tensor1d([0, 255, 7], 'int32'), 'U8')), [0, 255, 7], 0);
    expect(() => tensorToRaw(tf.tensor1d([300], 'int32'), 'U8')).toThrow(/300 does not fit U8/);
    const bools = rawToTensor(tensorToRaw(tf.tensor1d([1, 0, 1], 'bool')));
    expect(bools.dtype).toBe('bool');
    const big = new BigInt64Array([2n ** 40n]);
    expect(() => rawToTensor({ dtype: 'I64', shape: [1], data: new Uint8Array(big.buffer) })).toThrow(/does not fit int32/);
  });

  it('half and bfloat16 conversions round to nearest even', () => {
    const v = Float32Array.from([1, -2, 65504, 65520, 2 ** -24, 1 / 3, Infinity, 2 ** -25, 1 + 2 ** -11, 1 + 3 * 2 ** -11]);
    expect(Array.from(f32ToF16Bits(v))).toEqual([0x3c00, 0xc000, 0x7bff, 0x7c00, 0x0001, 0x3555, 0x7c00, 0x0000, 0x3c00, 0x3c02]);
    expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(Float32Array.from([NaN])))[0])).toBe(true);
    expect(Array.from(f16BitsToF32(Uint16Array.from([0x3c00, 0x0001, 0x7bff, 0xfc00])))).toEqual([1, 2 ** -24, 65504, -Infinity]);
    expect(Array.from(f32ToBf16Bits(Float32Array.from([1, Math.fround(Math.PI), -0.5])))).toEqual([0x3f80, 0x4049, 0xbf00]);
    expect(Array.from(bf16BitsToF32(Uint16Array.from([0x3f80, 0x4049])))).toEqual([1, 3.140625]);
  });

  const good = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const hostile: [string, () => string, RegExp][] = [
    [
      'a file shorter than 8 bytes',
      () => (fs.writeFileSync(join(dir, 'tiny'), Buffer.from([1, 2, 3])), join(dir, 'tiny')),
      /3 bytes, shorter than the 8-byte header/,
    ],
    ['a header length beyond the file', () => rawFile('long', good, new Uint8Array(8), 5000n), /header length 5000 exceeds the file size/],
    [
      'a header over 100 MB',
      () => rawFile('huge', good, new Uint8Array(8), 200_000_000n),
      /header length 200000000 exceeds the 100000000-byte limit/,
    ],
    ['a header that is not JSON', () => rawFile('json', '{"a": [', new Uint8Array(0)), /header is not valid JSON/],
    ['a header that is not an object', () => rawFile('arr', '[1, 2]'), /header is not a JSON object/],
    [
      'an unknown dtype',
      () => rawFile('dtype', { a: { dtype: 'F8', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2)),
      /tensor 'a' has unknown dtype "F8"/,
    ],
    [
      'a negative shape',
      () => rawFile('shape', { a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /invalid shape \[-2\]/,
    ],
    [
      'a byte count that does not match the shape',
      () => rawFile('count', { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /needs 12 bytes but data_offsets \[0, 8\] hold 8/,
    ],
    [
      'offsets beyond the data (truncated file)',
      () => rawFile('range', good, new Uint8Array(4)),
      /data_offsets end 8 is beyond the 4 data bytes/,
    ],
    [
      'overlapping tensors',
      () =>
        rawFile(
          'overlap',
          { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } },
          new Uint8Array(8),
        ),
      /overlaps tensor 'a'/,
    ],
    [
      'a gap between tensors',
      () => rawFile('gap', { a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)),
      /unused bytes 0-4/,
    ],
    ['trailing bytes', () => rawFile('trail', good, new Uint8Array(12)), /4 trailing bytes/],
    [
      'inverted offsets',
      () => rawFile('inv', { a: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, new Uint8Array(8)),
      /invalid data_offsets \[8,0\]/,
    ],
    [
      'non-string metadata',
      () => rawFile('meta', { __metadata__: { n: 1 }, ...good }, new Uint8Array(8)),
      /__metadata__ must map strings to strings/,
    ],
  ];

  it.each(hostile)('refuses %s with E_SAFETENSORS naming the file', (_what, make, msg) => {
    const p = make();
    const e = openError(p);
    expect(e).toBeInstanceOf(SkySenseError);
    expect(e.code).toBe('E_SAFETENSORS');
    expect(e.message).toContain(p);
    expect(e.message).toMatch(msg);
  });

  it('a missing file is E_IO', () => {
    expect(() => SafetensorsFile.open(join(dir, 'nope.safetensors'))).toThrow(/E_IO: cannot open/);
  });

  it('writes atomically: a failure mid-write leaves the old file and no temporary file', () => {
    const p = join(dir, 'atomic.safetensors');
    writeSafetensors(p, { a: { dtype: 'U8', shape: [2], data: new Uint8Array([1, 2]) } });
    const before = fs.readFileSync(p);
    expect(() =>
      writeSafetensors(p, [
        ['a', { dtype: 'U8', shape: [2], data: new Uint8Array([3, 4]) }],
        [
          'b',
          {
            dtype: 'U8',
            shape: [2],
            data: () => {
              throw new Error('disk on fire');
            },
          },
        ],
      ]),
    ).toThrow('disk on fire');
    expect(fs.readFileSync(p).equals(before)).toBe(true);
    expect(fs.readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
    expect(() => writeSafetensors(join(dir, 'no-such-dir', 'x.safetensors'), {})).toThrow(/E_IO: .*does not exist/);
  });

  it('saves a module state dict (int buffers as I64) and loads it back into a fresh module', () => {
    const a = new Linear(3, 2);
    const p = join(dir, 'linear.safetensors');
    saveSafetensors(p, a, { floatDtype: 'F32' });
    const b = new Linear(3, 2);
    const f = SafetensorsFile.open(p);
    b.loadStateDict(f);
    f.close();
    expectClose(b.weight.value, a.weight.value, 0);
    expectClose(b.bias!.value, a.bias!.value, 0);
  });

  it('reads a tensor beyond 4 GiB by offset without reading the rest (sparse 5 GB file)', () => {
    const big = 5_000_000_000;
    const header = JSON.stringify({
      big: { dtype: 'U8', shape: [big], data_offsets: [0, big] },
      small: { dtype: 'F32', shape: [3], data_offsets: [big, big + 12] },
    });
    const p = join(dir, 'sparse.safetensors');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    const fd = fs.openSync(p, 'w');
    fs.writeSync(fd, len);
    fs.writeSync(fd, header);
    fs.writeSync(fd, Buffer.from(Float32Array.from([1.5, -2, 3]).buffer), 0, 12, 8 + header.length + big);
    fs.closeSync(fd);
    const rssBefore = process.memoryUsage().rss;
    const f = SafetensorsFile.open(p);
    expect(f.info('big').byteLength).toBe(big);
    expectClose(f.read('small'), [1.5, -2, 3], 0);
    f.close();
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(100 * 1024 * 1024);
    fs.rmSync(p);
  });
});

describe('format detection', () => {
  beforeAll(() => initBackend());

  it('a safetensors file whose header length has the low byte 0x80 (a pickle PROTO opcode) is still safetensors', () => {
    let file = '';
    for (let len = 1; len < 300 && !file; len++) {
      const candidate = join(dir, `x80-${len}.safetensors`);
      saveSafetensors(candidate, new Map([['k'.repeat(len), tf.ones([2])]]));
      if (fs.readFileSync(candidate)[0] === 0x80) file = candidate;
    }
    expect(file, 'some name length gives a header length ending in 0x80').not.toBe('');
    expect(detectCheckpointFormat(file)).toBe('safetensors');
    const ckpt = openCheckpoint(file);
    expect(ckpt.keys()).toHaveLength(1);
    ckpt.close();
  });
});
