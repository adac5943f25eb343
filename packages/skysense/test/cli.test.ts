import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const bin = join(__dirname, '..', 'dist', 'bin.js');
const fixture = (f: string) => join(__dirname, 'fixtures', f);
const dir = fs.mkdtempSync(join(tmpdir(), 'skysense-cli-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(...args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
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
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/missing required argument 'output'/);
  });
});
