/** The sample downloader against a server on 127.0.0.1 that serves the real sample files (never the internet). */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SkySenseError } from '@skysense/core-tensor';
import { SAMPLE_FILES, downloadSamples, samplesDir, type SampleFile } from '../src/index';

const target = mkdtempSync(join(tmpdir(), 'skysense-samples-test-'));
let server: Server;
let corrupt = false;
let base = '';
const served = SAMPLE_FILES.filter((f) => f.url && f.bytes < 400_000).slice(0, 2);
/** The same entries with their URLs pointing at the local server. */
const local = (): SampleFile[] => served.map((f) => ({ ...f, url: `${base}/${f.path}` }));

beforeAll(async () => {
  server = createServer((req, res) => {
    const file = join(samplesDir(), decodeURIComponent(req.url!.slice(1)));
    if (!existsSync(file)) return void res.writeHead(404).end();
    const bytes = readFileSync(file);
    if (corrupt) bytes[0] ^= 0xff;
    res.writeHead(200).end(bytes);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => {
  server.close();
  rmSync(target, { recursive: true, force: true });
});

describe('downloadSamples', () => {
  it('lists every sample with a source and a SHA-256', () => {
    expect(SAMPLE_FILES.length).toBeGreaterThan(20);
    for (const f of SAMPLE_FILES) {
      expect(f.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(Boolean(f.url) !== Boolean(f.archive && f.member)).toBe(true);
    }
  });

  it('no connection is one clear error naming the URL, not a stack trace', async () => {
    const offline = (() =>
      Promise.reject(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }))) as unknown as typeof fetch;
    const fresh = mkdtempSync(join(tmpdir(), 'skysense-samples-offline-'));
    await expect(downloadSamples({ target: fresh, files: local(), fetch: offline })).rejects.toThrow(
      /^E_NETWORK: cannot download http:\/\/127\.0\.0\.1:\d+\/.*: ECONNREFUSED \(no internet access\? copy the samples into .* instead\)$/,
    );
    rmSync(fresh, { recursive: true, force: true });
  });

  it('fetches, checks and places files; a second run fetches nothing; a checksum mismatch names the file and leaves nothing', async () => {
    expect(served).toHaveLength(2);
    const progress: string[] = [];
    const first = await downloadSamples({ target, files: local(), onProgress: (d, t, f) => progress.push(`${d}/${t} ${f.path}`) });
    expect(first).toEqual({ target, fetched: 2, present: 0 });
    expect(progress).toEqual(served.map((f, i) => `${i + 1}/2 ${f.path}`));
    for (const f of served) expect(readFileSync(join(target, f.path)).equals(readFileSync(join(samplesDir(), f.path)))).toBe(true);
    expect(await downloadSamples({ target, files: local() })).toEqual({ target, fetched: 0, present: 2 });

    const fresh = mkdtempSync(join(tmpdir(), 'skysense-samples-bad-'));
    corrupt = true;
    try {
      const error = await downloadSamples({ target: fresh, files: local() }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SkySenseError);
      expect((error as Error).message).toMatch(new RegExp(`E_FORMAT: ${served[0]!.path}: checksum mismatch`));
      const files = readdirSync(fresh, { recursive: true })
        .map(String)
        .filter((p) => statSync(join(fresh, p)).isFile());
      expect(files, 'no file (and no temp file) is left by a refused download').toEqual([]);
    } finally {
      corrupt = false;
      rmSync(fresh, { recursive: true, force: true });
    }
    const missing = await downloadSamples({ target: fresh, files: [{ ...served[0]!, url: `${base}/no/such/file` }] }).catch(
      (e: unknown) => e,
    );
    expect((missing as Error).message).toMatch(/E_IO: http:\/\/127\.0\.0\.1:\d+\/no\/such\/file: HTTP 404/);
  });
});
