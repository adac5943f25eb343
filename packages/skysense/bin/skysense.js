#!/usr/bin/env node
// The `skysense` command. This small file is committed so that npm links the command when it
// installs the package — in a fresh clone too, before anything is built; the program is dist/bin.js.
import { existsSync } from 'node:fs';

const program = new URL('../dist/bin.js', import.meta.url);
if (!existsSync(program)) {
  console.error('skysense: the package is not built (dist/bin.js is missing). In a clone of the repository, run `npm run build` first.');
  process.exit(2);
}
await import(program.href);
