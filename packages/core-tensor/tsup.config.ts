import { packageBuild } from '../../config/tsup.package';

// tfjs-core's gradient and chained-op registrations exist only as ES modules: inline them (see src/tf.ts).
export default packageBuild(['src/self-check.ts'], { noExternal: [/register_all_gradients/, /register_all_chained_ops/] });
