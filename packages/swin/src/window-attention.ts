import {
  Dropout,
  DropPath,
  type DerivedTensor,
  Linear,
  Module,
  ReLU,
  Sequential,
  SkySenseError,
  assertShape,
  constant,
  cosineWindowAttention,
  formatShape,
  gatherRows,
  linear,
  tf,
  windowMerge,
  windowOrder,
  windowPartition,
  zeros,
  type Parameter,
  type Tensor,
} from '@skysense/core-tensor';

const LOGIT_SCALE_MAX = Math.log(1 / 0.01);

/**
 * The continuous-position-bias input table of Swin V2, `[(2·Wh − 1)·(2·Ww − 1), 2]` row-major over
 * (dy, dx): offsets divided by `pretrained − 1` (or `window − 1`), ×8, then `sign·log2(1 + |r|) / 3`,
 * in float32 as mmcls computes it.
 */
export function relativeCoordsTable(window: [number, number], pretrained: [number, number] = [0, 0]): Float32Array {
  const [wh, ww] = window;
  const div = [pretrained[0] > 0 ? pretrained[0] - 1 : wh - 1, pretrained[1] > 0 ? pretrained[1] - 1 : ww - 1];
  const f = Math.fround;
  const out = new Float32Array((2 * wh - 1) * (2 * ww - 1) * 2);
  let i = 0;
  for (let dy = -(wh - 1); dy < wh; dy++) {
    for (let dx = -(ww - 1); dx < ww; dx++) {
      for (const [d, k] of [
        [dy, 0],
        [dx, 1],
      ] as const) {
        const r = f(f(d / div[k]!) * 8);
        out[i++] = f((Math.sign(r) * f(Math.log2(f(Math.abs(r) + 1)))) / 3);
      }
    }
  }
  return out;
}

/** Index into the bias table for query token i and key token j of a window (row-major tokens). */
export function relativePositionIndex(window: [number, number]): Int32Array {
  const [wh, ww] = window;
  const n = wh * ww;
  const out = new Int32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const dy = Math.floor(i / ww) - Math.floor(j / ww);
      const dx = (i % ww) - (j % ww);
      out[i * n + j] = (dy + wh - 1) * (2 * ww - 1) + (dx + ww - 1);
    }
  }
  return out;
}

/**
 * The shifted-window attention mask `[nW, N, N]` on a padded `hPad × wPad` grid: tokens of the same
 * window see each other (0) only when they come from the same of the 3 × 3 regions cut at
 * `−window` and `−shift`; otherwise −100.
 */
export function shiftWindowMask(hPad: number, wPad: number, window: number, shift: number): Float32Array {
  const band = (v: number, size: number) => (v < size - window ? 0 : v < size - shift ? 1 : 2);
  const n = window * window;
  const nh = hPad / window;
  const nw = wPad / window;
  const out = new Float32Array(nh * nw * n * n);
  const ids = new Int32Array(n);
  for (let wy = 0; wy < nh; wy++) {
    for (let wx = 0; wx < nw; wx++) {
      for (let t = 0; t < n; t++) ids[t] = 3 * band(wy * window + Math.floor(t / window), hPad) + band(wx * window + (t % window), wPad);
      const base = (wy * nw + wx) * n * n;
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[base + i * n + j] = ids[i] === ids[j] ? 0 : -100;
    }
  }
  return out;
}

/** Options of {@link WindowMSAV2}. */
export interface WindowMSAV2Options {
  /** Learnable q and v biases (`q_bias`, `v_bias`; k has none). Default `true`. */
  qkvBias?: boolean;
  /** Attention-weight dropout. Default 0. */
  attnDrop?: number;
  /** Output dropout. Default 0. */
  projDrop?: number;
  /** Hidden width of the position-bias MLP. Default 512. */
  cpbMlpHiddenDims?: number;
  /** Window size of pre-training (0 = the current window). Default [0, 0]. */
  pretrainedWindowSize?: [number, number];
}

/**
 * mmcls `WindowMSAV2`: cosine attention with a learnable, clamped per-head scale and a
 * continuous relative position bias (`16 · sigmoid(cpb_mlp(table))`). No 1/√d scaling.
 * Keys: `logit_scale`, `q_bias`, `v_bias`, `cpb_mlp.{0,2}.*`, `qkv.weight`, `proj.*`.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { WindowMSAV2 } from '@skysense/swin';
 * await initBackend();
 * // attention inside windows: cosine similarity, learned logit scale, continuous position bias (cpb_mlp)
 * const attn = new WindowMSAV2(16, [4, 4], 2);
 * console.log(attn.forward(tf.randomNormal([3, 16, 16])).shape); // 3 windows of 16 tokens: [3, 16, 16]
 * ```
 */
export class WindowMSAV2 extends Module {
  readonly logitScale: Parameter;
  readonly qBias: Parameter | null;
  readonly vBias: Parameter | null;
  readonly cpbMlp: Sequential;
  readonly qkv: Linear;
  readonly proj: Linear;
  private readonly attnDrop: Dropout;
  private readonly projDrop: Dropout;
  private readonly coordsTable: Float32Array;
  private readonly positionIndex: Int32Array;
  /** {@link positionBias}, kept between eval-mode calls (it depends on the weights alone). */
  private readonly keptPositionBias: DerivedTensor;

  constructor(
    readonly embedDims: number,
    readonly window: [number, number],
    readonly numHeads: number,
    options: WindowMSAV2Options = {},
  ) {
    super();
    if (embedDims % numHeads !== 0) throw new SkySenseError('E_ARG', `embedDims ${embedDims} must be divisible by numHeads ${numHeads}`);
    this.logitScale = this.registerParameter('logit_scale', [numHeads, 1, 1], constant(Math.log(10)));
    const bias = options.qkvBias ?? true;
    this.qBias = bias ? this.registerParameter('q_bias', [embedDims], zeros) : null;
    this.vBias = bias ? this.registerParameter('v_bias', [embedDims], zeros) : null;
    const hidden = options.cpbMlpHiddenDims ?? 512;
    this.cpbMlp = this.registerModule(
      'cpb_mlp',
      new Sequential(new Linear(2, hidden), new ReLU(), new Linear(hidden, numHeads, { bias: false })),
    );
    this.qkv = this.registerModule('qkv', new Linear(embedDims, 3 * embedDims, { bias: false }));
    this.attnDrop = this.registerModule('attn_drop', new Dropout(options.attnDrop ?? 0));
    this.proj = this.registerModule('proj', new Linear(embedDims, embedDims));
    this.projDrop = this.registerModule('proj_drop', new Dropout(options.projDrop ?? 0));
    this.coordsTable = relativeCoordsTable(window, options.pretrainedWindowSize);
    this.positionIndex = relativePositionIndex(window);
    this.keptPositionBias = this.registerDerived(() => this.positionBias());
  }

  /** The position bias `[heads, N, N]` (already `16 · sigmoid(·)`). */
  positionBias(): Tensor {
    return tf.tidy(() => {
      const n = this.window[0] * this.window[1];
      const table = this.cpbMlp.forward(tf.tensor2d(this.coordsTable, [this.coordsTable.length / 2, 2]));
      const gathered = gatherRows(table, tf.tensor1d(this.positionIndex, 'int32'));
      return tf.mul(tf.sigmoid(tf.transpose(tf.reshape(gathered, [n, n, this.numHeads]), [2, 0, 1])), 16);
    });
  }

  /**
   * Attention within windows.
   * @param x `[B·nW, N, C]` window tokens.
   * @param mask `[nW, N, N]` additive mask (shifted windows), or none.
   */
  forward(x: Tensor, mask?: Tensor): Tensor {
    const n = this.window[0] * this.window[1];
    if (x.rank !== 3 || x.shape[1] !== n || x.shape[2] !== this.embedDims) {
      throw new SkySenseError('E_SHAPE', `WindowMSAV2 input: expected [B, ${n}, ${this.embedDims}], got ${formatShape(x.shape)}`);
    }
    return tf.tidy(() => {
      const c = this.embedDims;
      const qkvBias = this.qBias ? tf.concat([this.qBias.value, tf.zeros([c]), this.vBias!.value]) : null;
      const qkv = linear(x, this.qkv.weight.value, qkvBias);
      const scale = tf.exp(tf.minimum(this.logitScale.value, LOGIT_SCALE_MAX));
      const bias = this.keptPositionBias.get();
      const dropout = this.training && this.attnDrop.p > 0 ? (p: Tensor) => this.attnDrop.forward(p) : undefined;
      const attn = cosineWindowAttention({
        qkv,
        scale: tf.reshape(scale, [this.numHeads]),
        bias,
        mask: mask ?? null,
        heads: this.numHeads,
        dropout,
      });
      return this.projDrop.forward(this.proj.forward(attn));
    });
  }
}

/** Options of {@link ShiftWindowMSA}. */
export interface ShiftWindowMSAOptions extends WindowMSAV2Options {
  /** Cyclic shift (0 or window / 2). Default 0. */
  shiftSize?: number;
  /** Drop-path rate on the output. Default 0. */
  dropPath?: number;
  /** Pad maps smaller than the window (and keep the shift) instead of refusing them. Default `false`. */
  padSmallMap?: boolean;
}

/** Re-exported from `@skysense/core-tensor`, where window partition and merge are ops. */
export { windowOrder };

/**
 * mmcls `ShiftWindowMSA` on a channels-last map `[B, H, W, C]`: zero-pad to whole windows, roll by
 * −shift, attend within windows (masked when shifted), undo, crop, drop-path. With
 * `padSmallMap: false` a map whose shorter side equals the window runs unshifted and a smaller
 * map is refused, as in the reference.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { ShiftWindowMSA } from '@skysense/swin';
 * await initBackend();
 * // windows of 4 × 4 shifted by 2, masked so shifted windows do not mix regions
 * const msa = new ShiftWindowMSA(16, 2, 4, { shiftSize: 2 });
 * console.log(msa.forward(tf.randomNormal([1, 8, 8, 16])).shape); // [1, 8, 8, 16]
 * ```
 */
export class ShiftWindowMSA extends Module {
  readonly wMsa: WindowMSAV2;
  private readonly drop: DropPath;
  readonly shiftSize: number;
  readonly padSmallMap: boolean;
  private readonly masks = new Map<string, Float32Array>();

  constructor(
    readonly embedDims: number,
    numHeads: number,
    readonly windowSize: number,
    options: ShiftWindowMSAOptions = {},
  ) {
    super();
    this.shiftSize = options.shiftSize ?? 0;
    if (!(this.shiftSize >= 0 && this.shiftSize < windowSize))
      throw new SkySenseError('E_ARG', `shiftSize must be in [0, ${windowSize}), got ${this.shiftSize}`);
    this.padSmallMap = options.padSmallMap ?? false;
    this.wMsa = this.registerModule('w_msa', new WindowMSAV2(embedDims, [windowSize, windowSize], numHeads, options));
    this.drop = this.registerModule('drop', new DropPath(options.dropPath ?? 0));
  }

  /** The shift actually used for an `h × w` map (see the class note). */
  effectiveShift(h: number, w: number): number {
    const side = Math.min(h, w);
    if (side < this.windowSize && !this.padSmallMap) {
      throw new SkySenseError(
        'E_SHAPE',
        `The input shape (${h}, ${w}) is smaller than the window size (${this.windowSize}). Set padSmallMap: true, or decrease the window size.`,
      );
    }
    return side === this.windowSize && !this.padSmallMap ? 0 : this.shiftSize;
  }

  private mask(hPad: number, wPad: number, shift: number): Float32Array {
    const key = `${hPad}x${wPad}`;
    let m = this.masks.get(key);
    if (!m) {
      m = shiftWindowMask(hPad, wPad, this.windowSize, shift);
      this.masks.set(key, m);
    }
    return m;
  }

  /** @param x `[B, H, W, embedDims]` (channels last). */
  forward(x: Tensor): Tensor {
    assertShape('ShiftWindowMSA input', x, [null, null, null, this.embedDims]);
    const [b, h, w, c] = x.shape as [number, number, number, number];
    const ws = this.windowSize;
    const shift = this.effectiveShift(h, w);
    return tf.tidy(() => {
      const hPad = Math.ceil(h / ws) * ws;
      const wPad = Math.ceil(w / ws) * ws;
      const t =
        hPad > h || wPad > w
          ? tf.pad(x, [
              [0, 0],
              [0, hPad - h],
              [0, wPad - w],
              [0, 0],
            ])
          : x;
      const [nh, nw] = [hPad / ws, wPad / ws];
      const windows = windowPartition(t, ws, shift);
      const mask = shift ? tf.tensor3d(this.mask(hPad, wPad, shift), [nh * nw, ws * ws, ws * ws]) : undefined;
      let y = windowMerge(this.wMsa.forward(windows, mask), b, hPad, wPad, ws, shift);
      if (hPad > h || wPad > w) y = tf.slice(y, [0, 0, 0, 0], [b, h, w, c]);
      return this.drop.forward(y);
    });
  }
}
