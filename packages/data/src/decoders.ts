import { type BigEarthNetEntry, decodeBigEarthNet } from './bigearthnet';
import type { LabelledSample } from './datasets';
import { type SeriesEntry, decodeSeries } from './series';
import { type ManifestEntry, decodeManifestSample } from './multimodal';

/** The built-in sample decoders a {@link DecodePool} worker runs, by kind; each takes a JSON index entry. */
export const DECODERS = {
  bigearthnet: (e: BigEarthNetEntry) => decodeBigEarthNet(e),
  series: (e: SeriesEntry) => decodeSeries(e),
  manifest: (e: ManifestEntry) => decodeManifestSample(e),
} as const;

/** A decoder's name. */
export type DecoderKind = keyof typeof DECODERS;

/** One message to a decode worker. */
export interface DecodeRequest {
  id: number;
  kind: DecoderKind;
  entry: unknown;
}

/** The pixel buffers of a sample (moved, not copied, to the main thread). */
export function transferables(s: LabelledSample): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const img of [...s.images, ...(s.hr ? [s.hr] : []), ...(s.preview ? [s.preview] : [])]) {
    out.add(img.data.buffer as ArrayBuffer);
    if (img.valid) out.add(img.valid.buffer as ArrayBuffer);
  }
  if (s.mask) out.add(s.mask.buffer as ArrayBuffer);
  return [...out];
}
