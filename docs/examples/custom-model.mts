// Compose your own model — a Sentinel-2 ViT with an FCN head — and fine-tune it a few steps.
import { AdamW, disposeGradients, initBackend, manualSeed, tf, valueAndGrads } from '@skysense/core-tensor';
import { VisionTransformer } from '@skysense/vit';
import { FCNHead } from '@skysense/heads';
import { Segmentor } from '@skysense/skysense';

await initBackend();
manualSeed(0);
// skysense-s2 is ViT-L (embedDims 1024, 24 layers); a small one keeps the example quick
const backbone = new VisionTransformer({ inChannels: 10, embedDims: 64, numLayers: 2, numHeads: 4 });
const model = new Segmentor({
  backbone,
  decodeHead: new FCNHead({ inChannels: backbone.featureChannels[0]!, channels: 32, numClasses: 4, numConvs: 1 }),
});
const optimizer = new AdamW(model, { lr: 1e-3 });
const images = tf.randomNormal([2, 10, 64, 64], 0, 1, 'float32', 1); // normalised S2 patches
const labels = tf.randomUniform([2, 64, 64], 0, 4, 'int32', 2); // class per pixel
for (let step = 1; step <= 3; step++) {
  const { value, grads } = valueAndGrads(model, () => model.losses(images, labels).loss as tf.Scalar);
  optimizer.step(grads);
  disposeGradients(grads);
  console.log(`step ${step}: loss ${value.dataSync()[0]!.toFixed(4)}`);
  value.dispose();
}
tf.dispose([images, labels]);
optimizer.dispose();
model.dispose();
