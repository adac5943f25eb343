import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  SkySenseError,
  checkDecodeBudget,
  checkExpansion,
  decodeBudget,
  ensureDir,
  fsError,
  readJsonFile,
  safeFileName,
  summarizeList,
  allInOrder,
  writeFileAtomic,
} from '../src/index';

const dir = mkdtempSync(join(tmpdir(), 'skysense-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const root = process.getuid?.() === 0;

describe('writeFileAtomic keeps what the path means', () => {
  it('writes through a symbolic link (the link stays, its target gets the content)', () => {
    const target = join(dir, 'real.txt');
    writeFileSync(target, 'old');
    const link = join(dir, 'link.txt');
    symlinkSync('real.txt', link);
    writeFileAtomic(link, 'new');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe('real.txt');
    expect(readFileSync(target, 'utf8')).toBe('new');
    // a dangling link creates its target
    symlinkSync('made.txt', join(dir, 'dangling.txt'));
    writeFileAtomic(join(dir, 'dangling.txt'), 'made');
    expect(readFileSync(join(dir, 'made.txt'), 'utf8')).toBe('made');
  });

  it('keeps the permission bits of the file it replaces', () => {
    const f = join(dir, 'secret.json');
    writeFileSync(f, '{}');
    chmodSync(f, 0o600);
    writeFileAtomic(f, '{"a":1}');
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readFileSync(f, 'utf8')).toBe('{"a":1}');
  });

  it('writes a character device and a FIFO in place, never replacing them', () => {
    writeFileAtomic('/dev/null', 'x'.repeat(1000));
    expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
    const fifo = join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const reader = spawnSync(
      process.execPath,
      [
        '-e',
        `const{spawn}=require('child_process');const fs=require('fs');` +
          `const w=spawn(process.execPath,['-e',"require(process.argv[1]).writeFileAtomic(process.argv[2],'through the pipe')",${JSON.stringify(require.resolve('../dist/index.cjs'))},${JSON.stringify(fifo)}]);` +
          `process.stdout.write(fs.readFileSync(${JSON.stringify(fifo)},'utf8'));`,
      ],
      { timeout: 20_000 },
    );
    expect(reader.stdout.toString()).toBe('through the pipe');
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    // /dev/stdout when it is a pipe (a link to pipe:[N] that exists only as a file descriptor)
    const piped = spawnSync(process.execPath, [
      '-e',
      `require(${JSON.stringify(require.resolve('../dist/index.cjs'))}).writeFileAtomic('/dev/stdout', 'to stdout')`,
    ]);
    expect(piped.stderr.toString()).toBe('');
    expect(piped.stdout.toString()).toBe('to stdout');
  });

  it('refuses a folder, and names the target (not the temporary file) when it cannot write', () => {
    mkdirSync(join(dir, 'afolder'));
    expect(() => writeFileAtomic(join(dir, 'afolder'), 'x')).toThrow(
      /E_IO: cannot write .*afolder: is a folder, expected a file \(EISDIR\)/,
    );
    expect(() => writeFileAtomic(join(dir, 'no', 'such', 'x.json'), 'x')).toThrow(
      /cannot write .*x\.json: folder .*no\/such does not exist/,
    );
    if (root) return; // root writes anywhere
    const ro = join(dir, 'readonly');
    mkdirSync(ro);
    chmodSync(ro, 0o500);
    try {
      expect(() => writeFileAtomic(join(ro, 'out.png'), 'x')).toThrow(
        /^E_IO: cannot write .*readonly\/out\.png: permission denied \(EACCES\)$/,
      );
    } finally {
      chmodSync(ro, 0o700);
    }
  });

  it('removes the temporary files crashed writes left in a folder (their process is gone) on the first write there, not those of a live process', () => {
    const dead = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());
    const crash = join(dir, 'crash');
    mkdirSync(crash);
    const f = join(crash, 'model.safetensors');
    writeFileSync(join(crash, `.model.safetensors.tmp-${dead}-deadbeef`), 'x'.repeat(100));
    writeFileSync(join(crash, `.model.safetensors.tmp-${process.pid}-cafebabe`), 'busy');
    writeFileAtomic(f, 'done');
    const left = readdirSync(crash).filter((n) => n.startsWith('.model.safetensors.tmp-'));
    expect(left).toEqual([`.model.safetensors.tmp-${process.pid}-cafebabe`]);
  });

  it('ensureDir refuses a file where a folder is expected', () => {
    writeFileSync(join(dir, 'plain'), '');
    expect(() => ensureDir(join(dir, 'plain'), '--out')).toThrow(/--out .*plain: is a file, expected a folder \(ENOTDIR\)/);
    ensureDir(join(dir, 'a', 'b'));
    expect(existsSync(join(dir, 'a', 'b'))).toBe(true);
  });
});

describe('limits and messages', () => {
  it('decode budget: default 4 GiB, SKYSENSE_MAX_DECODE_BYTES with a suffix; refusal names the size, how it comes about and the budget', () => {
    expect(decodeBudget({})).toBe(4 * 1024 ** 3);
    expect(decodeBudget({ SKYSENSE_MAX_DECODE_BYTES: '500M' })).toBe(500 * 1024 ** 2);
    expect(decodeBudget({ SKYSENSE_MAX_DECODE_BYTES: '8G' })).toBe(8 * 1024 ** 3);
    expect(() => decodeBudget({ SKYSENSE_MAX_DECODE_BYTES: '0' })).toThrow(/expected a byte count above 0/);
    expect(() => decodeBudget({ SKYSENSE_MAX_DECODE_BYTES: 'lots' })).toThrow(
      /SKYSENSE_MAX_DECODE_BYTES: expected a byte count above 0 such as 8G or 500M, got 'lots'/,
    );
    expect(() => checkDecodeBudget('big.tif', 20000 * 20000 * 3 * 4, '20000 × 20000 × 3 float32')).toThrow(
      /^E_LIMIT: big\.tif: decoding needs 4\.8 GB \(20000 × 20000 × 3 float32\), over the 4\.3 GB budget \(raise SKYSENSE_MAX_DECODE_BYTES to allow it\)$/,
    );
    expect(() => checkExpansion('x.pth: entry data/0', 1.6e6, 1.2e9)).toThrow(
      /expands 1\.6 MB to 1\.2 GB \(750×; at most 200× beyond 67 MB\)/,
    );
    expect(() => checkExpansion('small', 1000, 60e6)).not.toThrow();
  });

  it('readJsonFile names the file and the parser position; fsError maps errno codes to words', () => {
    writeFileSync(join(dir, 'bad.json'), '{"a": 1,,}');
    expect(() => readJsonFile(join(dir, 'bad.json'), 'class table')).toThrow(
      /^E_DATA: class table .*bad\.json: not valid JSON \(.*position 8\)$/,
    );
    expect(() => readJsonFile(join(dir, 'none.json'), 'class table')).toThrow(
      /^E_IO: class table .*none\.json: no such file or folder \(ENOENT\)$/,
    );
    const e = fsError(Object.assign(new Error('x'), { code: 'ENOSPC' }), 'cannot write out.bin');
    expect(e).toBeInstanceOf(SkySenseError);
    expect((e as Error).message).toBe('E_IO: cannot write out.bin: no space left on the device (ENOSPC)');
    const other = new TypeError('bug');
    expect(fsError(other, 'x')).toBe(other);
  });

  it('summarizeList and safeFileName', () => {
    const keys = Array.from({ length: 150 }, (_, i) => `k${i}`);
    expect(summarizeList(keys)).toBe('k0, k1, k2, k3, k4, … and 145 more (error.details / --verbose list them all)');
    expect(summarizeList(['a', 'b'])).toBe('a, b');
    expect(safeFileName('../../escape')).toBe('_.._escape');
    expect(join('/out', safeFileName('../../escape'))).toBe('/out/_.._escape');
    expect(safeFileName('..')).toBe('_');
    expect(safeFileName('S2A_MSIL2A_20170613T101031_87_48')).toBe('S2A_MSIL2A_20170613T101031_87_48');
    expect(safeFileName('a b/c\\d')).toBe('a_b_c_d');
  });

  it('allInOrder reports the first failure in input order, whichever settles first', async () => {
    const later = (ms: number, v: string, fail = false) =>
      new Promise<string>((ok, no) => setTimeout(() => (fail ? no(new Error(v)) : ok(v)), ms));
    await expect(allInOrder([later(30, 'first', true), later(1, 'second', true)])).rejects.toThrow(/^first$/);
    await expect(allInOrder([later(5, 'a'), later(1, 'b')])).resolves.toEqual(['a', 'b']);
  });
});
