import { packageBuild } from '../../config/tsup.package';

// tfjs-core's gradient and chained-op registrations exist only as ES modules: inline them (see
// src/tf.ts). The declarations keep the chained ops' type augmentation (`t.reshape(…)` typed).
// (with its .js extension, so that projects on moduleResolution NodeNext resolve it too)
const chainedOps = "import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';";
export default packageBuild(['src/self-check.ts'], {
  noExternal: [/register_all_gradients/, /register_all_chained_ops/],
  dts: { entry: 'src/index.ts', banner: chainedOps },
});
