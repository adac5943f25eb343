import { type Tensor, interpolate, tf } from '@skysense/core-tensor';

/**
 * HR pixels per Sentinel pixel on SkySense's fusion grid: the Swin encoder's last stage is 1/32 of
 * its input, the ViT's patch-4 tokens are brought back to the Sentinel pixel grid by the ×4 up-heads,
 * and the fusion concatenates the two per location. A 10 m Sentinel pixel so meets 32 × 32 HR pixels
 * (0.3125 m): co-registered HR tiles are resampled onto that grid ({@link hrOnFusionGrid}).
 */
export const FUSION_GRID_RATIO = 32;

/**
 * An HR image `[B, C, H, W]` resampled onto the fusion grid of a Sentinel crop of `sentinel` = `[h, w]`
 * pixels: bilinear (half-pixel centres, as `F.interpolate(align_corners=False)`) to
 * `[32·h, 32·w]`. Returns a new tensor (the input is left alone), or null when it is already there.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { hrOnFusionGrid } from '@skysense/data';
 * await initBackend();
 * // a 1 m HR tile over 4 × 4 Sentinel-2 pixels (40 m) → 128 × 128 pixels on the fusion grid
 * const hr = hrOnFusionGrid(tf.randomNormal([1, 3, 40, 40]), [4, 4]);
 * console.log(hr?.shape); // [1, 3, 128, 128]
 * ```
 */
export function hrOnFusionGrid(hr: Tensor, sentinel: readonly [number, number]): Tensor | null {
  const size: [number, number] = [FUSION_GRID_RATIO * sentinel[0], FUSION_GRID_RATIO * sentinel[1]];
  if (hr.shape[2] === size[0] && hr.shape[3] === size[1]) return null;
  return tf.tidy(() => interpolate(hr, { size, mode: 'bilinear', alignCorners: false }));
}
