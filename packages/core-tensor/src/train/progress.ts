/**
 * Progress for long work: on a terminal a single updating line (bar, percent, rate, ETA) on
 * stderr; otherwise (logs, CI) a line every 10 %.
 * @example
 * ```ts
 * import { initBackend, ProgressReporter } from '@skysense/core-tensor';
 * await initBackend();
 * const progress = new ProgressReporter('copying'); // a bar on a terminal, a line per 10 % in logs
 * const total = 64 * 1024 * 1024;
 * for (let done = 0; done <= total; done += 8 * 1024 * 1024) progress.update(done, total);
 * ```
 */
export class ProgressReporter {
  private readonly start = performance.now();
  private lastDecile = -1;

  constructor(
    private readonly label: string,
    private readonly unit: { name: string; scale: number } = { name: 'MiB', scale: 1024 * 1024 },
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  /** Reports `done` of `total`. */
  update(done: number, total: number): void {
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const secs = (performance.now() - this.start) / 1000;
    const rate = secs > 0 ? done / this.unit.scale / secs : 0;
    const eta = frac > 0 ? (secs / frac) * (1 - frac) : 0;
    const text = `${this.label} ${(100 * frac).toFixed(0).padStart(3)}% ${(done / this.unit.scale).toFixed(0)}/${(total / this.unit.scale).toFixed(0)} ${this.unit.name}, ${rate.toFixed(0)} ${this.unit.name}/s, ETA ${eta.toFixed(0)} s`;
    if (this.stream.isTTY) {
      this.stream.write(`\r${progressBar(frac)} ${text}   `);
      if (frac >= 1) this.stream.write('\n');
      return;
    }
    const decile = Math.floor(frac * 10);
    if (decile > this.lastDecile) {
      this.lastDecile = decile;
      this.stream.write(`${text}\n`);
    }
  }
}

/** A 24-cell text bar for a fraction in [0, 1]. */
export function progressBar(frac: number, width = 24): string {
  return '█'.repeat(Math.round(Math.min(1, Math.max(0, frac)) * width)).padEnd(width, '·');
}
