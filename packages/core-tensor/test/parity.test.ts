/**
 * Core layers composed the way the official SkySense / mmseg code composes them, loaded with the
 * fixture weights by their PyTorch names, against outputs of the original PyTorch code.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { AdaptiveAvgPool2d, ConvModule, Module, ModuleList, Sequential, interpolate, tf, type Tensor } from '../src/index';
import { TEST_BACKENDS, expectClose, loadFixture, useBackend } from './helpers';
import { TinyVit } from './tiny-vit';

/** mmseg PPM + bottleneck on the last UPerHead input (`psp_forward`). */
class PspPart extends Module {
  readonly scales = [1, 2, 3, 6];
  readonly psp = this.registerModule(
    'psp_modules',
    new ModuleList(this.scales.map((s) => new Sequential(new AdaptiveAvgPool2d(s), new ConvModule(32, 16, 1)))),
  );
  readonly bottleneck = this.registerModule('bottleneck', new ConvModule(32 + 4 * 16, 16, 3, { padding: 1 }));
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
    // the fixture stores 0-dim num_batches_tracked as shape [1] (loaded as PyTorch does); the rest of the head is not built here
    const report = psp.loadStateDict(weights, { strict: false });
    expect(report.missing).toEqual([]);
    expect(report.loaded.length).toBe(5 * 6);
    expect(psp.bottleneck.bn!.numBatchesTracked.value.shape).toEqual([]);
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
