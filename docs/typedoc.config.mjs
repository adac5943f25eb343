// @ts-check
/**
 * TypeDoc configuration. A module (not JSON) for one computed value: while each package is
 * converted, `@skysense/*` imports resolve to the other packages' sources (an absolute `baseUrl`
 * is required), so a swin class's base `Module` links to its core-tensor page instead of an
 * unlinked name from a dist declaration file.
 */
import { fileURLToPath } from 'node:url';

const packages = fileURLToPath(new URL('../packages', import.meta.url));

/** @type {Partial<import('typedoc').TypeDocOptions>} */
const config = {
  $schema: 'https://typedoc.org/schema.json',
  name: 'SkySense in TypeScript',
  entryPointStrategy: 'packages',
  entryPoints: [
    '../packages/core-tensor',
    '../packages/data',
    '../packages/swin',
    '../packages/vit',
    '../packages/temporal-fusion',
    '../packages/geo-prototypes',
    '../packages/losses',
    '../packages/heads',
    '../packages/skysense',
  ],
  packageOptions: {
    entryPoints: ['src/index.ts'],
    tsconfig: 'tsconfig.json',
    disableSources: true,
    excludeExternals: true,
    externalPattern: ['**/node_modules/**', '**/packages/*/dist/**'],
  },
  projectDocuments: ['guides/*.md'],
  readme: 'index.md',
  out: 'site',
  disableSources: true,
  treatWarningsAsErrors: true,
  validation: {
    notExported: true,
    invalidLink: true,
  },
  excludeExternals: true,
  externalPattern: ['**/node_modules/**', '**/packages/*/dist/**'],
  externalSymbolLinkMappings: {
    '@tensorflow/tfjs-core': {
      '*': 'https://js.tensorflow.org/api/latest/',
    },
  },
};
config.packageOptions = { ...config.packageOptions, compilerOptions: { baseUrl: packages, paths: { '@skysense/*': ['*/src/index.ts'] } } };

export default config;
