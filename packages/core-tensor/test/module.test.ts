import { beforeAll, describe, expect, it } from 'vitest';
import {
  BatchNorm2d,
  LayerNorm,
  Linear,
  Module,
  MultiheadAttention,
  Parameter,
  SkySenseError,
  constant,
  disposeGradients,
  initBackend,
  valueAndGrads,
  type DerivedTensor,
  shapeOnly,
  tf,
  type Tensor,
  zeros,
} from '../src/index';
import { expectClose } from './helpers';

class Block extends Module {
  readonly norm = this.registerModule('norm', new LayerNorm(4));
  readonly fc = this.registerModule('fc', new Linear(4, 2));
  readonly scale: Parameter = this.registerParameter('scale', [2], zeros);
  readonly bn = this.registerModule('bn', new BatchNorm2d(2));
  forward(x: Tensor): Tensor {
    return tf.mul(this.fc.forward(this.norm.forward(x)), this.scale.value);
  }
}

class Net extends Module {
  readonly token: Parameter = this.registerParameter('token', [1, 4], zeros);
  readonly blocks = [this.registerModule('b0', new Block()), this.registerModule('b1', new Block())];
}

function stateOf(net: Module, value: number): Map<string, Tensor> {
  return new Map(
    [...net.stateShapes()].map(([k, s]) => [k, k.endsWith('num_batches_tracked') ? tf.scalar(7, 'int32') : tf.fill([...s], value)]),
  );
}

describe('Module', () => {
  beforeAll(() => initBackend());

  it('names parameters and buffers with PyTorch dotted names in state_dict order', () => {
    const keys = [...new Net().stateDict().keys()];
    expect(keys.slice(0, 11)).toEqual([
      'token',
      'b0.scale',
      'b0.norm.weight',
      'b0.norm.bias',
      'b0.fc.weight',
      'b0.fc.bias',
      'b0.bn.weight',
      'b0.bn.bias',
      'b0.bn.running_mean',
      'b0.bn.running_var',
      'b0.bn.num_batches_tracked',
    ]);
    expect(keys).toHaveLength(21);
    expect(new Net().namedParameters().map(([k]) => k)).not.toContain('b0.bn.running_mean');
  });

  it('loads a matching state dict and reports what it loaded', () => {
    const net = new Net();
    const report = net.loadStateDict(stateOf(net, 0.5));
    expect(report).toMatchObject({ missing: [], unexpected: [], mismatched: [], ignored: [] });
    expect(report.loaded).toHaveLength(21);
    expectClose(net.blocks[1]!.fc.weight.value, new Array(8).fill(0.5), 0);
    expect(net.blocks[0]!.bn.numBatchesTracked.value.dataSync()[0]).toBe(7);
    expect(net.blocks[0]!.bn.numBatchesTracked.value.dtype).toBe('int32');
  });

  it('strict mode refuses missing and unexpected keys and names them; non-strict reports them', () => {
    const net = new Net();
    const dict = stateOf(net, 1);
    dict.delete('b1.fc.bias');
    dict.set('head.weight', tf.ones([3]));
    const err = (() => {
      try {
        net.loadStateDict(dict);
      } catch (e) {
        return e as SkySenseError;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(SkySenseError);
    expect(err!.code).toBe('E_STATE_DICT');
    expect(err!.message).toMatch(/missing key\(s\): b1\.fc\.bias/);
    expect(err!.message).toMatch(/unexpected key\(s\): head\.weight/);
    expectClose(net.token.value, [0, 0, 0, 0], 0);
    const report = net.loadStateDict(dict, { strict: false });
    expect(report.missing).toEqual(['b1.fc.bias']);
    expect(report.unexpected).toEqual(['head.weight']);
    expectClose(net.token.value, [1, 1, 1, 1], 0);
  });

  it('a shape mismatch is an error even when not strict, and nothing is loaded', () => {
    const net = new Net();
    const dict = stateOf(net, 2);
    dict.set('b0.fc.weight', tf.ones([2, 5]));
    expect(() => net.loadStateDict(dict, { strict: false })).toThrow(
      /size mismatch for 1 key\(s\): b0\.fc\.weight: checkpoint \[2, 5\], module \[2, 4\]/,
    );
    expectClose(net.token.value, [0, 0, 0, 0], 0);
  });

  it('prefix selects and strips keys; ignore skips keys', () => {
    const inner = new Block();
    const dict = new Map<string, Tensor>();
    for (const [k, s] of inner.stateShapes()) dict.set(`backbone.${k}`, k.endsWith('tracked') ? tf.scalar(0, 'int32') : tf.fill([...s], 3));
    dict.set('decode_head.conv_seg.weight', tf.ones([2]));
    dict.set('backbone.mask_token', tf.ones([1]));
    const report = inner.loadStateDict(dict, { prefix: 'backbone.', ignore: ['mask_token'] });
    expect(report.ignored.sort()).toEqual(['backbone.mask_token', 'decode_head.conv_seg.weight']);
    expectClose(inner.scale.value, [3, 3], 0);
  });

  it('train/eval, freeze/unfreeze and parameter counts', () => {
    const net = new Net();
    expect(net.training).toBe(true);
    net.eval();
    expect(net.namedModules().every(([, m]) => !m.training)).toBe(true);
    net.train();
    expect(net.blocks[1]!.bn.training).toBe(true);
    const total = 4 + 2 * (2 + 8 + 10 + 4);
    expect(net.parameterCount()).toBe(total);
    net.blocks[0]!.freeze();
    expect(net.parameterCount({ trainableOnly: true })).toBe(total - 24);
    expect(net.trainableVariables()).toHaveLength(1 + 7);
    net.blocks[0]!.unfreeze();
    expect(net.trainableVariables()).toHaveLength(1 + 14);
  });

  it('adoptMembers exposes a part’s members at the top level, sharing the objects', () => {
    class Wrapper extends Module {
      readonly inner = new Block();
      readonly extra = this.registerModule('extra', new Linear(2, 2));
      constructor() {
        super();
        this.adoptMembers(this.inner);
      }
    }
    const w = new Wrapper();
    expect([...w.stateShapes().keys()].slice(0, 3)).toEqual(['scale', 'extra.weight', 'extra.bias']);
    expect(w.stateShapes().has('fc.weight')).toBe(true);
    w.loadStateDict(
      new Map([...w.stateShapes()].map(([k, s]) => [k, k.endsWith('tracked') ? tf.scalar(1, 'int32') : tf.fill([...s], 0.25)])),
    );
    expectClose(w.inner.fc.weight.value, new Array(8).fill(0.25), 0);
    w.dispose();
  });

  it('dispose frees every tensor', () => {
    const before = tf.memory().numTensors;
    const net = new Net();
    expect(tf.memory().numTensors - before).toBe(21);
    net.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(() => net.token.value).toThrow(SkySenseError);
  });

  it('shape-only mode lists a multi-billion-parameter model without allocating it', () => {
    const tensorsBefore = tf.memory().numTensors;
    const bytesBefore = tf.memory().numBytes;
    const heapBefore = process.memoryUsage().heapUsed;
    const big = shapeOnly(() => {
      const m = new (class extends Module {
        readonly layers = Array.from({ length: 40 }, (_, i) => this.registerModule(`l${i}`, new Linear(8192, 8192)));
        readonly attn = this.registerModule('attn', new MultiheadAttention(4096, 32));
      })();
      return m;
    });
    const expected = 40 * (8192 * 8192 + 8192) + (3 * 4096 * 4096 + 3 * 4096 + 4096 * 4096 + 4096);
    expect(big.parameterCount()).toBe(expected);
    expect(expected).toBeGreaterThan(2.7e9);
    expect(big.stateShapes().get('l39.weight')).toEqual([8192, 8192]);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(tf.memory().numBytes).toBe(bytesBefore);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(50 * 1024 * 1024);
    expect(() => big.stateDict()).toThrow(/shape-only mode/);
    const normal = new Linear(2, 2);
    expect(normal.weight.allocated).toBe(true);
    normal.dispose();
  });
});

/** `y = x · sum(2·w)`: the doubled weights are a tensor derived from the parameter alone. */
class Doubler extends Module {
  readonly w: Parameter = this.registerParameter('w', [3], constant(1));
  computed = 0;
  readonly doubled: DerivedTensor = this.registerDerived(() => {
    this.computed++;
    return tf.mul(this.w.value, 2);
  });
  forward(x: Tensor): Tensor {
    return tf.tidy(() => tf.mul(x, tf.sum(this.doubled.get())));
  }
}

describe('Module.registerDerived', () => {
  beforeAll(() => initBackend({ force: 'cpu' }));

  it('keeps the tensor between eval-mode calls and computes it again once a parameter has new data', () => {
    const m = new Doubler();
    m.eval();
    const x = tf.scalar(1);
    const run = () => {
      const y = m.forward(x);
      const v = y.dataSync()[0]!;
      y.dispose();
      return v;
    };
    expect([run(), run(), run()]).toEqual([6, 6, 6]);
    expect(m.computed).toBe(1);
    m.w.assign(tf.tensor1d([1, 2, 3])); // what an optimizer step or loadStateDict does
    expect(run()).toBe(12);
    expect(m.computed).toBe(2);
    const before = tf.memory().numTensors;
    m.dispose();
    expect(tf.memory().numTensors).toBe(before - 2); // the parameter and the kept tensor
    x.dispose();
  });

  it('computes it again when a buffer it reads changes, or when a caller disposed the kept tensor', () => {
    class Shifted extends Module {
      readonly p: Parameter = this.registerParameter('p', [2], constant(0));
      readonly offset = this.registerBuffer('offset', [2], () => tf.zeros([2]));
      readonly shifted: DerivedTensor = this.registerDerived(() => tf.add(tf.exp(this.p.value), this.offset.value));
    }
    const m = new Shifted();
    m.eval();
    const read = () => Array.from(tf.tidy(() => m.shifted.get().dataSync()));
    expect(read()).toEqual([1, 1]);
    m.offset.assign(tf.tensor1d([100, 200]));
    expect(read()).toEqual([101, 201]);
    tf.tidy(() => m.shifted.get()).dispose(); // a caller's mistake: the next call computes it again
    expect(read()).toEqual([101, 201]);
    m.dispose();
  });

  it('computes it afresh in training mode and while gradients are recorded, so gradients reach the parameter', () => {
    const m = new Doubler();
    const x = tf.scalar(1);
    m.train();
    m.forward(x).dispose();
    m.forward(x).dispose();
    expect(m.computed).toBe(2);
    m.eval();
    const { value, grads } = valueAndGrads(m, () => m.forward(x) as tf.Scalar);
    expect(m.computed).toBe(3);
    expect(Array.from(grads.get(m.w)!.dataSync())).toEqual([2, 2, 2]);
    value.dispose();
    disposeGradients(grads);
    const before = tf.memory().numTensors;
    m.forward(x).dispose(); // eval, no gradients: kept from now on
    m.forward(x).dispose();
    expect(m.computed).toBe(4);
    expect(tf.memory().numTensors).toBe(before + 1);
    tf.dispose(x);
    m.dispose();
  });
});
