/**
 * The decode worker of {@link DecodePool}: decodes one sample per message with a built-in decoder
 * and posts it back, its pixel buffers transferred (not copied). Runs tensor ops (resampling of the
 * 20 m bands) on tfjs's plain CPU backend.
 */
import { parentPort } from 'node:worker_threads';
import { initBackend } from '@skysense/core-tensor';
import { DECODERS, type DecodeRequest, transferables } from './decoders';

const ready = initBackend({ force: 'cpu' });
parentPort!.on('message', async (req: DecodeRequest) => {
  try {
    await ready;
    const sample = await DECODERS[req.kind](req.entry as never);
    parentPort!.postMessage({ id: req.id, sample }, transferables(sample));
  } catch (e) {
    const err = e as { code?: string; message?: string };
    const name = (req.entry as { name?: string } | null)?.name;
    const message = err.code ? (err.message ?? String(e)) : `${name ?? 'sample'}: ${err.message ?? String(e)}`;
    parentPort!.postMessage({ id: req.id, error: { code: err.code, message } });
  }
});
