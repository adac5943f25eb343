import { packageBuild } from '../../config/tsup.package';

// the decode worker is its own entry: DecodePool starts it from dist/decode-worker.js
export default packageBuild(['src/decode-worker.ts']);
