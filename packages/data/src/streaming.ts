import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { SkySenseError, type SkySenseErrorCode, assertInt } from '@skysense/core-tensor';
import type { LabelledSample } from './datasets';
import { DECODERS, type DecodeRequest, type DecoderKind } from './decoders';

/** Options of a {@link DecodePool}. */
export interface DecodePoolOptions {
  /** Worker threads. Default: one per core but one (at least 1); 0 decodes on the calling thread. */
  workers?: number;
}

/** The worker script: beside this module in `dist/`, or in `dist/` when this module runs from `src/` (the package's tests). */
function workerFile(): string {
  for (const rel of ['./decode-worker.js', '../dist/decode-worker.js']) {
    const f = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(f)) return f;
  }
  throw new SkySenseError('E_IO', `decode-worker.js: not found beside ${fileURLToPath(import.meta.url)} (build @skysense/data)`);
}

interface Job {
  req: DecodeRequest;
  resolve: (s: LabelledSample) => void;
  reject: (e: Error) => void;
}

/**
 * A pool of worker threads decoding samples (GeoTIFF reading, band resampling) off the training
 * thread, each worker one sample at a time, jobs served in the order asked. Errors come back as the
 * `SkySenseError` the decoder threw.
 */
export class DecodePool {
  readonly workers: number;
  private readonly idle: Worker[] = [];
  private readonly threads: Worker[] = [];
  private readonly queue: Job[] = [];
  private readonly running = new Map<Worker, Job>();
  private nextId = 0;

  constructor(o: DecodePoolOptions = {}) {
    this.workers = o.workers ?? Math.max(1, availableParallelism() - 1);
    assertInt('workers', this.workers, 0);
    const file = this.workers > 0 ? workerFile() : '';
    try {
      for (let i = 0; i < this.workers; i++) this.start(file);
    } catch (e) {
      void this.close();
      throw e;
    }
  }

  private start(file: string): void {
    // workerData must be an object: geotiff's web-worker shim reads workerData.mod in every worker thread
    const w = new Worker(file, { workerData: {} });
    w.on('message', (msg: { sample?: LabelledSample; error?: { code?: string; message: string } }) => {
      const job = this.running.get(w)!;
      this.running.delete(w);
      if (msg.error)
        job.reject(new SkySenseError((msg.error.code ?? 'E_DATA') as SkySenseErrorCode, msg.error.message.replace(/^E_\w+: /, '')));
      else job.resolve(msg.sample!);
      this.idle.push(w);
      this.pump();
    });
    const lost = (why: string) => {
      if (!this.threads.includes(w)) return;
      this.threads.splice(this.threads.indexOf(w), 1);
      if (this.idle.includes(w)) this.idle.splice(this.idle.indexOf(w), 1);
      this.running.get(w)?.reject(new SkySenseError('E_INTERNAL', `a decode worker stopped (${why}) while decoding`));
      this.running.delete(w);
      if (this.threads.length === 0)
        for (const j of this.queue.splice(0)) j.reject(new SkySenseError('E_INTERNAL', `every decode worker has stopped (${why})`));
    };
    w.on('error', (e) => lost(e.message));
    w.on('exit', (code) => lost(`exit code ${code}`));
    this.threads.push(w);
    this.idle.push(w);
  }

  /** Decodes one index entry with a built-in decoder. */
  decode(kind: DecoderKind, entry: unknown): Promise<LabelledSample> {
    if (this.workers === 0) return DECODERS[kind](entry as never);
    if (this.threads.length === 0) return Promise.reject(new SkySenseError('E_INTERNAL', 'DecodePool: no decode worker is running'));
    return new Promise((resolve, reject) => {
      this.queue.push({ req: { id: this.nextId++, kind, entry }, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length && this.queue.length) {
      const w = this.idle.shift()!;
      const job = this.queue.shift()!;
      this.running.set(w, job);
      w.postMessage(job.req);
    }
  }

  /** Stops the workers (jobs still queued are refused). */
  async close(): Promise<void> {
    for (const j of this.queue.splice(0)) j.reject(new SkySenseError('E_ARG', 'DecodePool: closed'));
    const threads = this.threads.splice(0);
    this.idle.length = 0;
    await Promise.all(threads.map((w) => w.terminate()));
  }
}

/** Samples handed out per batch, by index into a dataset's index (see {@link StreamingSamples}, {@link InMemorySamples}). */
export interface SampleLoader {
  /** Samples in the index. */
  readonly length: number;
  /** Starts loading a future batch (`key`: its step); a no-op where everything is in memory. */
  prefetch(key: number, indices: readonly number[]): void;
  /** The samples of a batch, in the order of `indices` (prefetched, or loaded now). */
  take(key: number, indices: readonly number[]): Promise<LabelledSample[]>;
  /** Frees the loader's resources (worker threads). */
  close(): Promise<void>;
}

/** Options of {@link StreamingSamples}. */
export interface StreamingOptions extends DecodePoolOptions {
  /** Batches decoded ahead of the one trained on (the bounded queue). Default 2. */
  prefetch?: number;
}

/**
 * A dataset read lazily from its index: each batch's samples are decoded by a {@link DecodePool} when
 * asked, up to `prefetch` batches ahead, and dropped once handed out — what is held is the index and
 * the in-flight batches, so memory does not grow with the dataset. Which samples a batch holds is
 * the caller's (a seeded draw), so the order is as deterministic as with {@link InMemorySamples}.
 */
export class StreamingSamples<E> implements SampleLoader {
  private readonly pool: DecodePool;
  /** Decode worker threads. */
  readonly workers: number;
  private readonly inFlight = new Map<number, Promise<LabelledSample[]>>();
  readonly depth: number;

  constructor(
    readonly kind: DecoderKind,
    readonly entries: readonly E[],
    o: StreamingOptions = {},
  ) {
    this.depth = o.prefetch ?? 2;
    assertInt('prefetch', this.depth, 0);
    this.pool = new DecodePool(o);
    this.workers = this.pool.workers;
  }

  get length(): number {
    return this.entries.length;
  }

  private async load(indices: readonly number[]): Promise<LabelledSample[]> {
    const bad = indices.find((i) => this.entries[i] === undefined);
    if (bad !== undefined) throw new SkySenseError('E_ARG', `sample index: expected 0 … ${this.entries.length - 1}, got ${bad}`);
    return Promise.all(indices.map((i) => this.pool.decode(this.kind, this.entries[i])));
  }

  prefetch(key: number, indices: readonly number[]): void {
    if (this.inFlight.has(key) || this.inFlight.size >= this.depth) return;
    const p = this.load(indices);
    p.catch(() => {}); // reported by take()
    this.inFlight.set(key, p);
  }

  take(key: number, indices: readonly number[]): Promise<LabelledSample[]> {
    const p = this.inFlight.get(key);
    this.inFlight.delete(key);
    return p ?? this.load(indices);
  }

  async close(): Promise<void> {
    this.inFlight.clear();
    await this.pool.close();
  }
}

/** A dataset decoded whole into memory (on the calling thread), behind the same interface as {@link StreamingSamples}. */
export class InMemorySamples implements SampleLoader {
  private constructor(readonly samples: readonly LabelledSample[]) {}

  /** Decodes every entry, in order. */
  static async load<E>(kind: DecoderKind, entries: readonly E[]): Promise<InMemorySamples> {
    const samples: LabelledSample[] = [];
    for (const e of entries) samples.push(await DECODERS[kind](e as never));
    return new InMemorySamples(samples);
  }

  get length(): number {
    return this.samples.length;
  }

  prefetch(): void {}

  async take(_key: number, indices: readonly number[]): Promise<LabelledSample[]> {
    return indices.map((i) => this.samples[i]!);
  }

  async close(): Promise<void> {}
}
