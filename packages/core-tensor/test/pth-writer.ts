/**
 * Writes synthetic PyTorch zip checkpoints with the library's own zip and pickle writers, but with
 * ZIP64 records on every entry, any archive folder name, views (strides over a larger storage) and
 * tensor bytes streamed in pieces — for tests and the multi-gigabyte streaming bench. The CRC is
 * left 0 (our reader does not need it; PyTorch would). Test code only.
 */
import * as fs from 'node:fs';
import { ZipWriter, statePickle } from '../src/checkpoint/pth-writer';

/** A float32 tensor of the synthetic checkpoint; `fill(offset, chunk)` writes its bytes in pieces. */
export interface SyntheticTensor {
  name: string;
  shape: number[];
  fill: (byteOffset: number, chunk: Uint8Array) => void;
  /** A view's strides (default contiguous) over a storage of `storageNumel` elements (default the tensor's). */
  stride?: number[];
  storageNumel?: number;
}

function* pieces(t: SyntheticTensor, bytes: number, chunk: Uint8Array): Generator<Uint8Array> {
  for (let off = 0; off < bytes; off += chunk.length) {
    const piece = chunk.subarray(0, Math.min(chunk.length, bytes - off));
    t.fill(off, piece);
    yield piece;
  }
}

/** Writes `tensors` as `<archive>/…` into `file` with ZIP64 headers. Returns the file size. */
export function writeSyntheticPth(file: string, tensors: SyntheticTensor[], archive = 'archive'): number {
  const fd = fs.openSync(file, 'w');
  try {
    const zip = new ZipWriter(fd, true);
    const pkl = statePickle(tensors.map((t) => ({ ...t, storage: 'FloatStorage' })));
    zip.add(`${archive}/data.pkl`, pkl.length, 0, [pkl]);
    const chunk = new Uint8Array(64 << 20);
    tensors.forEach((t, i) => {
      const bytes = 4 * (t.storageNumel ?? t.shape.reduce((a, b) => a * b, 1));
      zip.add(`${archive}/data/${i}`, bytes, 0, pieces(t, bytes, chunk));
    });
    zip.add(`${archive}/version`, 2, 0, [new TextEncoder().encode('3\n')]);
    zip.finish();
    return fs.fstatSync(fd).size;
  } finally {
    fs.closeSync(fd);
  }
}
