// Run the HR encoder on a real image: a NAIP tile, normalised as the checkpoint expects.
import { initBackend, tf } from '@skysense/core-tensor';
import { SWIN_V2_PRETRAINED, SwinTransformerV2 } from '@skysense/swin';
import { loadHr, normalizeChannels, samplesDir } from '@skysense/data';

await initBackend();
const { input } = SWIN_V2_PRETRAINED['skysense-hr']!; // bands R, G, B on 0–255, ImageNet mean/std
const tile = await loadHr(`${samplesDir()}/naip-timeseries/m_4709963_se_14_1_20150926.tif`);
normalizeChannels(tile.bands, { mean: [...input.mean], std: [...input.std] }, 'NAIP tile');
const image = tf.tidy(() => {
  const planes = tile.bands.map((b) => tf.tensor2d(b, [tile.height, tile.width]));
  return tf.slice(tf.expandDims(tf.stack(planes), 0), [0, 0, 0, 0], [1, 3, 256, 256]); // a 256 px crop
});
// 'skysense-hr' is SkySense's 655 M-parameter encoder (SwinTransformerV2.fromPretrained loads its
// weights); the 'tiny' arch keeps this example quick.
const model = SwinTransformerV2.fromPreset('tiny', { outIndices: [0, 1, 2, 3] }).eval();
const maps = model.forward(image);
console.log(JSON.stringify(maps.map((m) => m.shape))); // [[1,96,64,64],[1,192,32,32],[1,384,16,16],[1,768,8,8]]
tf.dispose([image, ...maps]);
model.dispose();
