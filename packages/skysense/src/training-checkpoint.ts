import { existsSync, readFileSync } from 'node:fs';
import { SafetensorsFile, SkySenseError, loadSafetensors, saveSafetensors, tf, writeFileAtomic, type Tensor } from '@skysense/core-tensor';

/** A training checkpoint opened for resuming: named parts (state dicts) and JSON metadata. */
export interface TrainingCheckpoint {
  /** The state dict saved under `prefix` (keys without it). */
  part(prefix: string): Map<string, Tensor>;
  /** A metadata value, parsed from JSON. @throws SkySenseError `E_STATE_DICT` if missing or malformed. */
  json<T>(key: string): T;
  /** Frees the tensors. */
  dispose(): void;
}

/**
 * Writes a training checkpoint as one safetensors file, atomically (temp file + rename): every part's
 * tensors under `<part>.<key>`, the `format` tag, and each metadata value as JSON.
 */
export function saveTrainingCheckpoint(file: string, format: string, parts: Record<string, Map<string, Tensor> | undefined>, metadata: Record<string, unknown>): void {
  const state = new Map<string, Tensor>();
  for (const [prefix, dict] of Object.entries(parts)) dict?.forEach((t, k) => state.set(`${prefix}.${k}`, t));
  saveSafetensors(file, state, { metadata: { format, ...Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, JSON.stringify(v)])) } });
}

/**
 * Opens a checkpoint written by {@link saveTrainingCheckpoint}.
 * @throws SkySenseError `E_STATE_DICT` if the file's format tag is not `format`.
 */
export function openTrainingCheckpoint(file: string, format: string, what: string): TrainingCheckpoint {
  const header = SafetensorsFile.open(file);
  const metadata = header.metadata;
  header.close();
  if (metadata.format !== format) throw new SkySenseError('E_STATE_DICT', `${file}: not a ${what} checkpoint (format '${metadata.format ?? 'none'}', expected '${format}')`);
  const state = loadSafetensors(file);
  return {
    part: (prefix) => new Map([...state].filter(([k]) => k.startsWith(`${prefix}.`)).map(([k, t]) => [k.slice(prefix.length + 1), t])),
    json<T>(key: string): T {
      try {
        return JSON.parse(metadata[key] ?? '') as T;
      } catch {
        throw new SkySenseError('E_STATE_DICT', `${file}: checkpoint metadata '${key}' is missing or not valid JSON`);
      }
    },
    dispose: () => tf.dispose([...state.values()]),
  };
}

/**
 * Keeps only the lines of a JSONL metrics log whose `step` is ≤ `step` (on resume, the steps after
 * the checkpoint are run again); a line torn by a crash is dropped. Rewritten atomically.
 */
export function truncateMetricsLog(file: string, step: number): void {
  if (!existsSync(file)) return;
  const stepOf = (line: string) => {
    try {
      return (JSON.parse(line) as { step: number }).step;
    } catch {
      return Infinity;
    }
  };
  writeFileAtomic(file, readFileSync(file, 'utf8').split('\n').filter((l) => l && stepOf(l) <= step).map((l) => `${l}\n`).join(''));
}
