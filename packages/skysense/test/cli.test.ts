import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SkySenseError } from '@skysense/core-tensor';
import { createCli, reportCliError } from '../src/cli';

const bin = join(__dirname, '..', 'dist', 'bin.js');
const fixture = (f: string) => join(__dirname, 'fixtures', f);
const dir = fs.mkdtempSync(join(tmpdir(), 'skysense-cli-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(...args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, SKYSENSE_CACHE: join(dir, 'cache') } });
}

describe('skysense command', () => {
  it('inspect prints names, dtypes, shapes and totals, or JSON', () => {
    const table = run('inspect', fixture('model.pth'));
    expect(table.status).toBe(0);
    expect(table.stdout).toMatch(/pth-zip \(flat\), 28 tensors/);
    expect(table.stdout).toMatch(/layers\.0\.attn\.attn\.in_proj_weight\s+F32\s+\[192, 64\]/);
    const json = JSON.parse(run('inspect', fixture('model.pth'), '--json').stdout);
    expect(json.tensors).toHaveLength(28);
    expect(json.totalParameters).toBe(
      json.tensors.reduce((a: number, t: { shape: number[] }) => a + t.shape.reduce((x, y) => x * y, 1), 0),
    );
  });

  it('convert writes safetensors with prefix selection and stripping, showing progress', () => {
    const out = join(dir, 'layers1.safetensors');
    const r = run('convert', fixture('model.pth'), out, '--prefix', 'layers.1.', '--strip', 'layers.1.');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/wrote 12 tensors/);
    expect(r.stderr).toMatch(/converting 100%/);
    const json = JSON.parse(execFileSync(process.execPath, [bin, 'inspect', out, '--json'], { encoding: 'utf8' }));
    expect(json.format).toBe('safetensors');
    expect(json.tensors[0].name).toBe('ln1.weight');
  });

  it('refuses a malicious pickle with a one-line error and exit code 2, writing nothing', () => {
    const out = join(dir, 'evil.safetensors');
    const r = run('convert', fixture('malicious.pth'), out);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toMatch(/^skysense: E_UNSAFE_PICKLE: .*refusing to load global 'os\.system'/);
    expect(r.stdout).not.toContain('pwned');
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('.evil'))).toEqual([]);
  });

  it('usage errors name the problem', () => {
    const r = run('convert', fixture('model.pth'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/missing required argument 'output'/);
    expect(run('inspect', '--frobnicate').status).toBe(2);
    expect(run('--help').status).toBe(0);
    expect(run('--version').status).toBe(0);
  });

  it('one error discipline: what the user causes is one line and exit 2, file-system errors included; internal errors say they are bugs', () => {
    const oneLine = (r: { status: number | null; stderr: string }, pattern: RegExp) => {
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(pattern);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    };
    fs.mkdirSync(join(dir, 'a-folder'));
    oneLine(
      run('convert', fixture('model.pth'), join(dir, 'a-folder')),
      /^skysense: E_IO: cannot write .*a-folder: is a folder, expected a file \(EISDIR\)$/,
    );
    oneLine(
      run('convert', fixture('model.pth'), join(dir, 'no', 'such', 'x.safetensors')),
      /cannot write .*x\.safetensors: folder .*no\/such does not exist/,
    );
    oneLine(run('inspect', join(dir, 'missing.pth')), /missing\.pth/);
    oneLine(run('verify', join(dir, 'nowhere')), /nowhere/);
    fs.writeFileSync(join(dir, 'classes.json'), '[{"name": "a", "color": "#ff0000"},');
    oneLine(
      run('finetune', '--data', join(dir, 'a-folder'), '--classes', join(dir, 'classes.json'), '--out', join(dir, 'ft')),
      /E_DATA: class table .*classes\.json: not valid JSON \(/,
    );
    oneLine(
      run('finetune', '--data', join(dir, 'a-folder'), '--classes', join(dir, 'none.json'), '--out', join(dir, 'ft')),
      /E_IO: class table .*none\.json: no such file or folder \(ENOENT\)$/,
    );
    expect(fs.existsSync(join(dir, 'ft'))).toBe(false);
    // writing to a character device or through a symbolic link keeps the path's meaning
    expect(run('convert', fixture('model.pth'), '/dev/null').status).toBe(0);
    expect(fs.statSync('/dev/null').isCharacterDevice()).toBe(true);
    fs.writeFileSync(join(dir, 'target.safetensors'), '');
    fs.symlinkSync('target.safetensors', join(dir, 'link.safetensors'));
    expect(run('convert', fixture('model.pth'), join(dir, 'link.safetensors')).status).toBe(0);
    expect(fs.lstatSync(join(dir, 'link.safetensors')).isSymbolicLink()).toBe(true);
    expect(fs.statSync(join(dir, 'target.safetensors')).size).toBeGreaterThan(1000);
    // /sys refuses new files even to root (EACCES), a read-only mount says EROFS
    oneLine(
      run('convert', fixture('model.pth'), '/sys/skysense-out.safetensors'),
      /^skysense: E_IO: cannot write \/sys\/skysense-out\.safetensors: (permission denied \(EACCES\)|read-only file system \(EROFS\))$/,
    );
    // a fixture whose input file lacks a tensor
    const fx = join(dir, 'fixture');
    fs.cpSync(join(__dirname, '..', '..', 'vit', 'test', 'fixtures', 'parity', 'vit-skysense-small-a'), fx, { recursive: true });
    fs.copyFileSync(join(fx, 'weights.safetensors'), join(fx, 'input.safetensors'));
    oneLine(run('verify', fx), /E_DATA: .*fixture\/input\.safetensors: no input tensor '.*' \(the file has .*\)$/);
    if (process.getuid?.() !== 0) {
      fs.mkdirSync(join(dir, 'locked'), { mode: 0o500 });
      oneLine(
        run('convert', fixture('model.pth'), join(dir, 'locked', 'x.safetensors')),
        /cannot write .*locked\/x\.safetensors: permission denied \(EACCES\)$/,
      );
    }
  });

  it('CLI conventions: every command has --help (with the exit codes) and --json; bad option values exit 2 with one line', () => {
    const program = createCli();
    const leaves: [string[], (typeof program.commands)[number]][] = program.commands.flatMap((c) =>
      c.commands.length
        ? c.commands.map((sub): [string[], typeof sub] => [[c.name(), sub.name()], sub])
        : [[[c.name()], c] as [string[], typeof c]],
    );
    expect(leaves.length).toBe(15);
    for (const [path, cmd] of leaves) {
      expect(
        cmd.options.some((o) => o.long === '--json'),
        cmd.name(),
      ).toBe(true);
      const help = run(...path, '--help');
      expect(help.status, cmd.name()).toBe(0);
      expect(help.stdout, cmd.name()).toMatch(/Exit codes: 0 done; 1 a check failed .* 2 bad usage or input .* 70 an internal error/s);
    }
    const backend = run('--backend', 'bogus', 'info', '--list');
    expect(backend.status).toBe(2);
    expect(backend.stderr).toMatch(
      /option '--backend <kind>' argument 'bogus' is invalid\. Allowed choices are cuda, native, webgpu, wasm, cpu/,
    );
    const preset = run('demo', '--preset', 'bogus');
    expect(preset.status).toBe(2);
    expect(preset.stderr).toMatch(/argument 'bogus' is invalid/);
    const list = JSON.parse(run('weights', 'list', '--json').stdout);
    expect(list.map((w: { name: string }) => w.name)).toEqual(['skysense-hr', 'skysense-s2', 'skysense-s1']);
    expect(list[0].license).toMatch(/non-commercial/);
    expect(list[1].input.bands).toHaveLength(10);
    const none = run('weights', 'fetch', 'skysense-s1');
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(
      /E_WEIGHTS: skysense-s1: skysense_model_backbone_s1\.pth is not in the cache .*github\.com\/Jack-bo1220\/SkySense/,
    );
    const convert = run('convert', fixture('model.pth'), join(dir, 'json.safetensors'), '--json');
    expect(convert.status).toBe(0);
    expect(JSON.parse(convert.stdout).tensors).toHaveLength(28);
  });

  it('reportCliError: exit 2 for SkySenseError and file-system errors (details with verbose), 70 and a stack for anything else', () => {
    const lines: string[] = [];
    const print = (l: string) => lines.push(l);
    expect(reportCliError(new SkySenseError('E_ARG', 'steps: expected an integer >= 1, got 0'), false, print)).toBe(2);
    expect(lines).toEqual(['skysense: E_ARG: steps: expected an integer >= 1, got 0']);
    lines.length = 0;
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), {
      code: 'ENOSPC',
      syscall: 'write',
      path: '/data/out.bin',
    });
    expect(reportCliError(enospc, false, print)).toBe(2);
    expect(lines).toEqual(['skysense: E_IO: /data/out.bin: no space left on the device (ENOSPC)']);
    lines.length = 0;
    const keys = Array.from({ length: 150 }, (_, i) => `k${i}`);
    expect(reportCliError(new SkySenseError('E_STATE_DICT', '150 missing key(s)', { details: { missing: keys } }), true, print)).toBe(2);
    expect(lines[1]).toContain('"k149"');
    lines.length = 0;
    expect(reportCliError(new TypeError("Cannot read properties of undefined (reading 'shape')"), false, print)).toBe(70);
    expect(lines[0]).toBe('skysense: internal error — this is a bug; please report it with the command line and the lines below:');
    expect(lines[1]).toMatch(/^TypeError: Cannot read properties of undefined \(reading 'shape'\)\n\s+at /);
  });
});
