/** The parity fixtures' ViT (embed 64, 2 layers, patch 4, 10 bands) composed from core-tensor bricks, for tests. */
import {
  Module,
  ModuleList,
  PatchEmbed,
  TransformerEncoderLayer,
  tf,
  type CheckpointKeyRule,
  type Parameter,
  type Tensor,
  zeros,
} from '../src/index';

/** The fixture's ViT: patch conv, cls token, position table (exact grid), two layers, no final norm. */
export class TinyVit extends Module {
  readonly clsToken: Parameter = this.registerParameter('cls_token', [1, 1, 64], zeros);
  readonly posEmbed: Parameter = this.registerParameter('pos_embed', [1, 17, 64], zeros);
  readonly patchEmbed = this.registerModule('patch_embed', new PatchEmbed({ inChannels: 10, embedDims: 64, kernelSize: 4 }));
  readonly layers = this.registerModule(
    'layers',
    new ModuleList([0, 1].map(() => new TransformerEncoderLayer({ embedDims: 64, numHeads: 4, feedforwardChannels: 256 }))),
  );

  /** As @skysense/vit's encoder: the released S2 file's `ctpe` is expected to be unexpected. */
  override checkpointKeyRules(): readonly CheckpointKeyRule[] {
    return [{ pattern: /(^|\.)ctpe$/, when: 'unexpected', why: 'calendar-time position encoding; load it with @skysense/temporal-fusion' }];
  }

  forward(x: Tensor): { maps: Tensor[]; cls: Tensor[] } {
    const b = x.shape[0]!;
    const kept = tf.tidy(() => {
      const patches = this.patchEmbed.forward(x);
      const [h, w] = [patches.shape[1]!, patches.shape[2]!];
      let t = tf.reshape(patches, [b, h * w, 64]);
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
