import { SkySenseError, formatShape, tf, type Tensor } from '@skysense/core-tensor';

function topEigenvectors(cov: Float64Array, d: number, k: number): Float64Array[] {
  const vecs: Float64Array[] = [];
  const m = Float64Array.from(cov);
  for (let c = 0; c < Math.min(k, d); c++) {
    let v = new Float64Array(d).map((_, i) => Math.sin(i * 12.9898 + c * 78.233) + 1e-3);
    let lambda = 0;
    for (let it = 0; it < 200; it++) {
      const w = new Float64Array(d);
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) w[i]! += m[i * d + j]! * v[j]!;
      const norm = Math.hypot(...w);
      if (norm < 1e-20) break;
      v = w.map((x) => x / norm);
      lambda = norm;
    }
    vecs.push(v);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) m[i * d + j]! -= lambda * v[i]! * v[j]!;
  }
  return vecs;
}

/** Maps values to 0–255 between their 2nd and 98th percentiles. */
function stretch(values: Float64Array): Uint8Array {
  const sorted = Float64Array.from(values).sort();
  const lo = sorted[Math.floor(0.02 * (sorted.length - 1))]!;
  const hi = sorted[Math.floor(0.98 * (sorted.length - 1))]!;
  const span = hi - lo || 1;
  return Uint8Array.from(values, (v) => Math.round(255 * Math.min(1, Math.max(0, (v - lo) / span))));
}

/**
 * The first three principal components of a feature map `[d, H, W]` (over its locations) as an
 * RGB image (`H × W × 3` bytes), each component contrast-stretched. With `coverage` (`[H·W]`,
 * see `SkySenseOutputs.coverage`) the components are fitted on the locations that hold data only.
 */
export function pcaRgb(features: Tensor, coverage?: ArrayLike<number>): Uint8Array {
  if (features.rank !== 3) throw new SkySenseError('E_SHAPE', `pcaRgb: expected [d, H, W], got ${formatShape(features.shape)}`);
  const [d, h, w] = features.shape as [number, number, number];
  const used = coverage ? Array.from({ length: h * w }, (_, p) => p).filter((p) => coverage[p]! > 0) : null;
  const { x, cov } = tf.tidy(() => {
    const tokens = tf.reshape(tf.transpose(features, [1, 2, 0]), [h * w, d]);
    const fit = used && used.length ? tf.gather(tokens, used) : tokens;
    const mean = tf.mean(fit, 0, true);
    const centredFit = tf.sub(fit, mean);
    return {
      x: tf.sub(tokens, mean).dataSync().slice() as Float32Array,
      cov: tf
        .div(tf.matMul(centredFit, centredFit, true, false), fit.shape[0]!)
        .dataSync()
        .slice() as Float32Array,
    };
  });
  const comps = topEigenvectors(Float64Array.from(cov), d, 3);
  const channels = comps.map((v) =>
    stretch(Float64Array.from({ length: h * w }, (_, p) => v.reduce((a, vi, i) => a + vi * x[p * d + i]!, 0))),
  );
  while (channels.length < 3) channels.push(channels[0]!);
  const rgb = new Uint8Array(h * w * 3);
  for (let p = 0; p < h * w; p++) for (let c = 0; c < 3; c++) rgb[p * 3 + c] = channels[c]![p]!;
  return rgb;
}

/** Three bands (e.g. B4, B3, B2 reflectance) as an RGB image, each contrast-stretched. */
export function bandsRgb(bands: Float32Array[]): Uint8Array {
  const channels = bands.slice(0, 3).map((b) => stretch(Float64Array.from(b)));
  const n = channels[0]!.length;
  const rgb = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) rgb[p * 3 + c] = channels[Math.min(c, channels.length - 1)]![p]!;
  return rgb;
}

/** Nearest-neighbour enlargement of an RGB image by an integer factor. */
export function enlarge(rgb: Uint8Array, w: number, h: number, factor: number): Uint8Array {
  const out = new Uint8Array(w * factor * h * factor * 3);
  for (let y = 0; y < h * factor; y++) {
    for (let x = 0; x < w * factor; x++) {
      const src = (Math.floor(y / factor) * w + Math.floor(x / factor)) * 3;
      out.set(rgb.subarray(src, src + 3), (y * w * factor + x) * 3);
    }
  }
  return out;
}
