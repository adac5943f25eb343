import { packageBuild } from '../../config/tsup.package';

export default packageBuild(['src/bin.ts', 'src/verify.ts'], { dts: { entry: ['src/index.ts', 'src/verify.ts'] } });
