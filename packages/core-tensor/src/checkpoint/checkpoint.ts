import * as fs from 'node:fs';
import * as path from 'node:path';
import { SkySenseError } from '../errors';
import { formatShape } from '../validate';
import { DTYPE_SIZE, SafetensorsFile, writeSafetensors, type RawTensor, type SafetensorsDType, type WritableTensor } from '../safetensors';
import type { CheckpointKeyRule, LoadReport, LoadStateDictOptions, Module, StateDictSource } from '../module';
import { PthFile, type PthOpenOptions } from './pth';

/** A checkpoint file of either kind, read tensor by tensor. */
export type CheckpointFile = (PthFile | SafetensorsFile) & StateDictSource & { readRaw(name: string): RawTensor; close(): void };

/** The file kinds SkySense reads. */
export type CheckpointFormat = 'safetensors' | 'pth-zip' | 'pth-legacy';

/** Recognises a checkpoint by its first bytes (not its extension). */
export function detectCheckpointFormat(file: string): CheckpointFormat {
  let head: Buffer;
  let size: number;
  try {
    const fd = fs.openSync(file, 'r');
    head = Buffer.alloc(16);
    fs.readSync(fd, head, 0, 16, 0);
    size = fs.fstatSync(fd).size;
    fs.closeSync(fd);
  } catch (e) {
    throw new SkySenseError('E_IO', `cannot open ${file}: ${(e as Error).message}`, { cause: e });
  }
  if (head.readUInt32LE(0) === 0x04034b50) return 'pth-zip';
  // safetensors before pickle: a header length whose low byte is 0x80 starts with a pickle's PROTO opcode
  if (head[8] === 0x7b && Number(head.readBigUInt64LE(0)) + 8 <= size) return 'safetensors';
  if (head[0] === 0x80) return 'pth-legacy';
  throw new SkySenseError('E_CHECKPOINT', `${file}: not a safetensors file or a PyTorch checkpoint`);
}

/**
 * Opens a `.pth` (zip or legacy) or `.safetensors` file, recognised by content.
 * @example
 * ```ts
 * import { initBackend, openCheckpoint } from '@skysense/core-tensor';
 * await initBackend();
 * const ckpt = openCheckpoint('skysense_model_fusion.pth'); // .pth or .safetensors, by content
 * console.log(ckpt.keys().slice(0, 3));
 * ckpt.close();
 * ```
 */
export function openCheckpoint(file: string, options: PthOpenOptions = {}): CheckpointFile {
  return (detectCheckpointFormat(file) === 'safetensors' ? SafetensorsFile.open(file) : PthFile.open(file, options)) as CheckpointFile;
}

/** Why a key of a load report is harmless, from the rules of `module` and its descendants (each applied to keys relative to it). */
function harmlessReason(module: Module | undefined, key: string, when: CheckpointKeyRule['when']): string | undefined {
  for (const [prefix, m] of module?.namedModules() ?? []) {
    const rel = prefix ? (key.startsWith(`${prefix}.`) ? key.slice(prefix.length + 1) : null) : key;
    const rule = rel === null ? undefined : m.checkpointKeyRules().find((r) => r.when === when && r.pattern.test(rel));
    if (rule) return rule.why;
  }
  return undefined;
}

/**
 * Formats a load report like PyTorch's `_IncompatibleKeys`; given the module, labels the keys its
 * {@link Module.checkpointKeyRules} call harmless.
 */
export function formatLoadReport(r: LoadReport, source = 'checkpoint', module?: Module): string {
  const lines = [`loaded ${r.loaded.length} tensors from ${source}`];
  const list = (title: string, keys: string[], when: 'missing' | 'unexpected' | 'ignored') => {
    if (!keys.length) return;
    lines.push(`${title} (${keys.length}):`);
    for (const k of keys) {
      const why = harmlessReason(module, k, when);
      lines.push(`  ${k}${why ? `  [harmless: ${why}]` : ''}`);
    }
  };
  list('missing keys', r.missing, 'missing');
  list('unexpected keys', r.unexpected, 'unexpected');
  if (r.mismatched.length)
    lines.push(
      `size mismatches (${r.mismatched.length}):`,
      ...r.mismatched.map((m) => `  ${m.key}: checkpoint ${formatShape(m.actual)}, model ${formatShape(m.expected)}`),
    );
  const known = r.ignored.filter((k) => harmlessReason(module, k, 'ignored'));
  list('skipped keys', known, 'ignored');
  if (r.ignored.length > known.length)
    lines.push(`${r.ignored.length - known.length} other keys skipped (outside the prefix or ignored on request)`);
  for (const n of r.notes ?? []) lines.push(`note: ${n}`);
  if (lines.length === 1) lines.push('<All keys matched successfully>');
  return lines.join('\n');
}

/** Options of {@link loadCheckpoint}. */
export interface LoadCheckpointOptions extends LoadStateDictOptions, PthOpenOptions {
  /** Where to print the report: `true` (default) = console.log, a function, or `false`. */
  log?: boolean | ((text: string) => void);
}

/**
 * Loads a `.pth` or `.safetensors` file into a module (the module's own loader rules apply: e.g.
 * Swin skips `mask_token`), prints a PyTorch-like report and returns it. Tensors are read one at
 * a time.
 * @example
 * ```ts
 * import { initBackend, loadCheckpoint } from '@skysense/core-tensor';
 * import { SwinTransformerV2 } from '@skysense/swin';
 * await initBackend();
 * const hr = SwinTransformerV2.fromPreset('skysense-hr');
 * const report = loadCheckpoint(hr, 'skysense_model_backbone_hr.pth', { prefix: 'backbone.' }); // prints the report
 * console.log(report.missing, report.unexpected);
 * ```
 */
export function loadCheckpoint(module: Module, file: string, options: LoadCheckpointOptions = {}): LoadReport {
  const { log = true, layout, maxPickleBytes, ...loadOptions } = options;
  const ckpt = openCheckpoint(file, { layout, maxPickleBytes });
  try {
    const report = module.loadStateDict(ckpt, loadOptions);
    const text = formatLoadReport(report, path.basename(file), module);
    if (log === true) console.log(text);
    else if (typeof log === 'function') log(text);
    return report;
  } finally {
    ckpt.close();
  }
}

/** Progress of a long operation. */
export interface Progress {
  done: number;
  total: number;
  /** What is being processed now. */
  item: string;
}

/** Options of {@link convertToSafetensors}. */
export interface ConvertOptions extends PthOpenOptions {
  /** Keep only tensors whose name starts with this. */
  prefix?: string;
  /** Remove this from the start of names (after selecting with `prefix`). */
  strip?: string;
  /** Called after each tensor with bytes done / total. */
  onProgress?: (p: Progress) => void;
}

/**
 * Converts a checkpoint to safetensors, streaming tensor by tensor (peak memory ≈ the largest
 * tensor, not the file), keeping each tensor's dtype, writing atomically. Non-tensor entries
 * (e.g. mmcv `meta`) go to the safetensors metadata as JSON (`pth_extra`).
 * @returns the names written.
 * @example
 * ```ts
 * import { convertToSafetensors, initBackend } from '@skysense/core-tensor';
 * await initBackend();
 * // a .pth (pickle) → .safetensors (no pickle, memory-mapped reads); keys kept, or selected and renamed
 * const names = convertToSafetensors('skysense_model_backbone_hr.pth', 'hr.safetensors', { prefix: 'backbone.', strip: 'backbone.' });
 * console.log(names.length, names[0]);
 * ```
 */
export function convertToSafetensors(input: string, output: string, options: ConvertOptions = {}): string[] {
  const ckpt = openCheckpoint(input, options);
  try {
    const names = ckpt.keys().filter((k) => !options.prefix || k.startsWith(options.prefix));
    if (names.length === 0)
      throw new SkySenseError('E_CHECKPOINT', `${input}: no tensor${options.prefix ? ` starts with '${options.prefix}'` : ''}`);
    const outName = (k: string) => (options.strip && k.startsWith(options.strip) ? k.slice(options.strip.length) : k);
    const seen = new Set<string>();
    for (const k of names) {
      if (seen.has(outName(k)))
        throw new SkySenseError('E_ARG', `convert: stripping '${options.strip}' makes two tensors named '${outName(k)}'`);
      seen.add(outName(k));
    }
    const info = (k: string): { dtype: SafetensorsDType; shape: number[] } =>
      ckpt instanceof PthFile ? ckpt.info(k) : { dtype: ckpt.info(k).dtype, shape: ckpt.info(k).shape };
    const total = names.reduce((a, k) => a + info(k).shape.reduce((x, y) => x * y, 1) * DTYPE_SIZE[info(k).dtype], 0);
    let done = 0;
    const pieces = (k: string): Iterable<Uint8Array> => (ckpt instanceof PthFile ? ckpt.readChunks(k) : [ckpt.readRaw(k).data]);
    const entries: [string, WritableTensor][] = names.map((k) => [
      outName(k),
      {
        ...info(k),
        data: {
          *chunks() {
            for (const piece of pieces(k)) {
              yield piece;
              done += piece.byteLength;
              options.onProgress?.({ done, total, item: k });
            }
          },
        },
      },
    ]);
    const metadata: Record<string, string> = { format: 'pt', source: path.basename(input) };
    if (ckpt instanceof PthFile && Object.keys(ckpt.extra).length) metadata.pth_extra = JSON.stringify(ckpt.extra);
    writeSafetensors(output, entries, { metadata });
    return names.map(outName);
  } finally {
    ckpt.close();
  }
}

/** What {@link inspectCheckpoint} reports. */
export interface CheckpointSummary {
  file: string;
  format: CheckpointFormat;
  /** pth only: where the tensors were found. */
  layout?: string;
  tensors: { name: string; dtype: SafetensorsDType; shape: number[] }[];
  totalParameters: number;
  totalBytes: number;
  /** pth: other top-level entries (mmcv meta); safetensors: `__metadata__`. */
  extra: Record<string, unknown>;
}

/**
 * Lists a checkpoint's tensors without reading their data.
 * @example
 * ```ts
 * import { initBackend, inspectCheckpoint } from '@skysense/core-tensor';
 * await initBackend();
 * const info = inspectCheckpoint('skysense_model_backbone_s2.pth'); // names, dtypes and shapes; no tensor data read
 * console.log(info.format, info.layout, info.tensors.length, info.totalParameters);
 * ```
 */
export function inspectCheckpoint(file: string, options: PthOpenOptions = {}): CheckpointSummary {
  const format = detectCheckpointFormat(file);
  const ckpt = openCheckpoint(file, options);
  try {
    const tensors = ckpt.keys().map((name) => {
      const i = ckpt.info(name);
      return { name, dtype: i.dtype, shape: [...i.shape] };
    });
    const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
    return {
      file,
      format,
      layout: ckpt instanceof PthFile ? ckpt.layout : undefined,
      tensors,
      totalParameters: tensors.reduce((a, t) => a + numel(t.shape), 0),
      totalBytes: tensors.reduce((a, t) => a + numel(t.shape) * DTYPE_SIZE[t.dtype], 0),
      extra: ckpt instanceof PthFile ? ckpt.extra : { ...ckpt.metadata },
    };
  } finally {
    ckpt.close();
  }
}
