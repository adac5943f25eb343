/**
 * Core layers composed the way the official SkySense / mmseg code composes them, loaded with the
 * fixture weights by their PyTorch names, against outputs of the original PyTorch code.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Module, ModuleList, ReLU, Sequential, TransformerEncoderLayer, UnaryModule,
  interpolate, tf, type Parameter, type Tensor, zeros,
} from '../src/index';
import { TEST_BACKENDS, expectClose, loadFixture, useBackend } from './helpers';

/** The fixture's ViT: patch conv, cls token, position table (exact grid), two layers, no final norm. */
class TinyVit extends Module {
  readonly clsToken: Parameter = this.registerParameter('cls_token', [1, 1, 64], zeros);
  readonly posEmbed: Parameter = this.registerParameter('pos_embed', [1, 17, 64], zeros);
  readonly patchEmbed = this.registerModule('patch_embed', new (class extends Module {
    readonly projection = this.registerModule('projection', new Conv2d(10, 64, 4, { stride: 4 }));
  })());
  readonly layers = this.registerModule(
    'layers',
    new ModuleList([0, 1].map(() => new TransformerEncoderLayer({ embedDims: 64, numHeads: 4, feedforwardChannels: 256 }))),
  );

  forward(x: Tensor): { maps: Tensor[]; cls: Tensor[] } {
    const b = x.shape[0]!;
    const kept = tf.tidy(() => {
      const patches = this.patchEmbed.projection.forward(x);
      const [h, w] = [patches.shape[2]!, patches.shape[3]!];
      let t = tf.transpose(tf.reshape(patches, [b, 64, h * w]), [0, 2, 1]);
      t = tf.add(tf.concat([tf.tile(this.clsToken.value, [b, 1, 1]), t], 1), this.posEmbed.value);
      const maps: Tensor[] = [];
      const cls: Tensor[] = [];
      for (const layer of this.layers) {
        t = layer.forward(t);
        maps.push(tf.transpose(tf.reshape(tf.slice(t, [0, 1, 0], [b, h * w, 64]), [b, h, w, 64]), [0, 3, 1, 2]));
        cls.push(tf.reshape(tf.slice(t, [0, 0, 0], [b, 1, 64]), [b, 64]));
      }
      return [...maps, ...cls];
    });
    return { maps: kept.slice(0, 2), cls: kept.slice(2) };
  }
}

/** mmcv ConvModule: conv (no bias) → BN → ReLU, keys `conv.*`, `bn.*`. */
class ConvModule extends UnaryModule {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  constructor(inC: number, outC: number, k: number) {
    super();
    this.conv = this.registerModule('conv', new Conv2d(inC, outC, k, { padding: (k - 1) / 2, bias: false }));
    this.bn = this.registerModule('bn', new BatchNorm2d(outC));
  }
  forward(x: Tensor): Tensor {
    return tf.tidy(() => new ReLU().forward(this.bn.forward(this.conv.forward(x))));
  }
}

/** mmseg PPM + bottleneck on the last UPerHead input (`psp_forward`). */
class PspPart extends Module {
  readonly scales = [1, 2, 3, 6];
  readonly psp = this.registerModule('psp_modules', new ModuleList(this.scales.map((s) => new Sequential(new AdaptiveAvgPool2d(s), new ConvModule(32, 16, 1)))));
  readonly bottleneck = this.registerModule('bottleneck', new ConvModule(32 + 4 * 16, 16, 3));
  forward(x: Tensor): Tensor {
    return tf.tidy(() => {
      const size: [number, number] = [x.shape[2]!, x.shape[3]!];
      const pooled = [...this.psp].map((m) => interpolate(m.forward(x), { size, mode: 'bilinear', alignCorners: false }));
      return this.bottleneck.forward(tf.concat([x, ...pooled], 1));
    });
  }
}

describe.each(TEST_BACKENDS)('parity with PyTorch on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  it('Conv2d + mmseg TransformerEncoderLayer (LayerNorm, MultiheadAttention, FFN with GELU) as the official ViT (vit-skysense-small-a, 1e-4)', () => {
    const weights = loadFixture('vit-skysense-small-a', 'weights');
    const vit = new TinyVit().eval();
    expect([...vit.stateShapes().keys()]).toEqual([...weights.keys()]);
    const report = vit.loadStateDict(weights);
    expect(report.loaded).toHaveLength(weights.size);
    const input = loadFixture('vit-skysense-small-a', 'input').get('input')!;
    const out = loadFixture('vit-skysense-small-a', 'output');
    const { maps, cls } = vit.forward(input);
    expectClose(maps[0]!, out.get('out0')!, 1e-4);
    expectClose(maps[1]!, out.get('out1')!, 1e-4);
    expectClose(cls[0]!, out.get('out0_cls')!, 1e-4);
    expectClose(cls[1]!, out.get('out1_cls')!, 1e-4);
    vit.dispose();
  });

  it('AdaptiveAvgPool2d + Conv2d + BatchNorm2d(eval) + bilinear interpolate as mmseg PPM (uperhead-a psp_out, 1e-4)', () => {
    const weights = loadFixture('uperhead-a', 'weights');
    const psp = new PspPart().eval();
    // the fixture stores 0-dim num_batches_tracked as shape [1]; the rest of the head is not built here
    const report = psp.loadStateDict(weights, { strict: false, ignore: [/num_batches_tracked$/] });
    expect(report.missing.filter((k) => !k.endsWith('num_batches_tracked'))).toEqual([]);
    expect(report.loaded.length).toBe(5 * 5);
    const input = loadFixture('uperhead-a', 'input');
    const out = loadFixture('uperhead-a', 'output');
    expectClose(psp.forward(input.get('in3')!), out.get('psp_out')!, 1e-4);
    psp.dispose();
  });

  it('bilinear interpolate to the image size (uperhead-a logits_resized, 1e-4)', () => {
    const out = loadFixture('uperhead-a', 'output');
    const y = interpolate(out.get('logits')!, { size: [128, 96], mode: 'bilinear', alignCorners: false });
    expectClose(y, out.get('logits_resized')!, 1e-4);
  });
});
