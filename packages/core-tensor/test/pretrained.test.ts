import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Linear,
  SkySenseError,
  initBackend,
  loadPretrained,
  resolvePretrained,
  saveSafetensors,
  tf,
  type PretrainedConfig,
} from '../src/index';

// fromPretrained end to end against a checkpoint served from 127.0.0.1 (never the internet):
// download with progress, checksum, a download cut half-way and resumed, the cache.
const dir = fs.mkdtempSync(join(tmpdir(), 'skysense-pretrained-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let server: Server;
let base = '';
let body = Buffer.alloc(0);
const requests: { url: string; range?: string }[] = [];
let cutNext = false;

beforeAll(async () => {
  await initBackend();
  const src = new Linear(64, 256);
  const file = join(dir, 'source.safetensors');
  saveSafetensors(file, new Map([...src.stateDict()].map(([k, t]) => [`backbone.${k}`, t])));
  src.dispose();
  body = fs.readFileSync(file);
  server = createServer((req, res) => {
    requests.push({ url: req.url!, range: req.headers.range });
    if (!req.url!.endsWith('/tiny.safetensors')) return res.writeHead(404).end();
    const from = req.headers.range ? Number(/bytes=(\d+)-/.exec(req.headers.range)![1]) : 0;
    res.writeHead(from ? 206 : 200, { 'content-length': String(body.length - from) });
    if (cutNext) {
      cutNext = false;
      res.write(body.subarray(from, from + 20_000));
      setTimeout(() => res.socket?.destroy(), 50);
      return;
    }
    res.end(body.subarray(from));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}/weights`;
});
afterAll(() => server.close());

const config = (sha256?: string): PretrainedConfig => ({
  files: [{ name: 'tiny.safetensors', prefix: 'backbone.', sha256 }],
  source: 'a test server',
  license: 'test only',
  input: { bands: ['a'], units: 'none', mean: [0], std: [1], normalizationSource: 'none' },
});
const sha = () => createHash('sha256').update(body).digest('hex');

describe('pretrained weights', () => {
  it('downloads into the cache with a checksum, loads the weights (prefix stripped), and serves the second call from the cache', async () => {
    const cacheDir = join(dir, 'cache');
    const tensors = tf.memory().numTensors;
    const before = requests.length;
    const model = await loadPretrained('tiny', config(sha()), () => new Linear(64, 256), { cacheDir, url: base });
    expect(requests.length - before).toBe(1);
    expect(fs.readFileSync(join(cacheDir, 'tiny.safetensors')).equals(body)).toBe(true);
    const again = await loadPretrained('tiny', config(sha()), () => new Linear(64, 256), { cacheDir, url: base });
    expect(requests.length - before).toBe(1);
    expect(Array.from(again.stateDict().get('weight')!.dataSync().slice(0, 5))).toEqual(
      Array.from(model.stateDict().get('weight')!.dataSync().slice(0, 5)),
    );
    model.dispose();
    again.dispose();
    expect(tf.memory().numTensors).toBe(tensors);
  });

  it('a checksum mismatch is a clear error and leaves no file', async () => {
    const cacheDir = join(dir, 'bad');
    await expect(resolvePretrained('tiny', config('0'.repeat(64)), { cacheDir, url: base })).rejects.toThrow(
      /^E_CHECKSUM: http:\/\/127\.0\.0\.1:\d+\/weights\/tiny\.safetensors: SHA-256 [0-9a-f]{64} does not match the expected 0{64}; the download was removed$/,
    );
    expect(fs.readdirSync(cacheDir)).toEqual([]);
  });

  it('a download cut half-way is resumed with a Range request and completes with the right checksum', async () => {
    const cacheDir = join(dir, 'resume');
    cutNext = true;
    const error = await resolvePretrained('tiny', config(sha()), { cacheDir, url: base }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SkySenseError);
    expect((error as Error).message).toMatch(
      /download of .*tiny\.safetensors was cut after 20 kB; run it again to resume from .*tiny\.safetensors\.partial/,
    );
    expect(fs.existsSync(join(cacheDir, 'tiny.safetensors'))).toBe(false);
    expect(fs.statSync(join(cacheDir, 'tiny.safetensors.partial')).size).toBe(20_000);
    const [file] = await resolvePretrained('tiny', config(sha()), { cacheDir, url: base });
    expect(requests.at(-1)!.range).toBe('bytes=20000-');
    expect(fs.readFileSync(file!).equals(body)).toBe(true);
    expect(fs.readdirSync(cacheDir)).toEqual(['tiny.safetensors']);
  });

  it('without a file, a cache entry or a URL, the error says where the official files come from and their licence', async () => {
    await expect(resolvePretrained('tiny', config(), { cacheDir: join(dir, 'empty') })).rejects.toThrow(
      /^E_WEIGHTS: tiny: tiny\.safetensors is not in the cache \(.*empty\) and no download location is recorded\. The official files come from a test server; licence: test only\. Put the file there, or pass weights: <file> \(--weights\) or url: <base URL> \(--url\)$/,
    );
    await expect(resolvePretrained('tiny', config(), { weights: join(dir, 'nope.pth') })).rejects.toThrow(
      /E_IO: weights .*nope\.pth: no such file/,
    );
    await expect(
      resolvePretrained('tiny', { ...config(), files: [{ name: 'missing.safetensors' }] }, { cacheDir: join(dir, 'e2'), url: base }),
    ).rejects.toThrow(/^E_NETWORK: cannot download .*missing\.safetensors: HTTP 404$/);
  });
});
