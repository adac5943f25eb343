// Load the official weights by name: from the cache, a file ({ weights }) or a mirror ({ url }).
import { SkySenseError, initBackend } from '@skysense/core-tensor';
import { VIT_PRETRAINED, VisionTransformer } from '@skysense/vit';

await initBackend();
const { input, license } = VIT_PRETRAINED['skysense-s2'];
console.log(`S2 encoder input: ${input.bands.join(', ')} in ${input.units}, ${input.size} px frames`);
console.log(`weights licence: ${license}`);
try {
  const s2 = await VisionTransformer.fromPretrained('skysense-s2');
  console.log(`loaded ${s2.parameterCount().toLocaleString('en-US')} parameters`);
  s2.dispose();
} catch (e) {
  if (!(e instanceof SkySenseError) || e.code !== 'E_WEIGHTS') throw e;
  console.log(e.message); // not cached yet: says where the official files come from
}
