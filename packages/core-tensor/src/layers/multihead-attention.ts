import { tf, type Tensor } from '../tf';
import { SkySenseError } from '../errors';
import { assertInRange, assertInt, formatShape } from '../validate';
import { xavierUniform, zeros } from '../init';
import { Module, type Parameter } from '../module';
import { matMul } from '../ops/matmul';
import { checkKeyPadding, checkedSelfAttention } from '../ops/fused';
import { Dropout } from './dropout';
import { Linear, linear } from './linear';

/** Options of {@link MultiheadAttention}, with PyTorch's defaults. */
export interface MultiheadAttentionOptions {
  /** Attention-weight dropout (training only). Default 0. */
  dropout?: number;
  /** Biases on the input and output projections. Default `true`. */
  bias?: boolean;
  /** Inputs and output are `[N, L, E]` instead of `[L, N, E]`. Default `false`, as PyTorch. */
  batchFirst?: boolean;
}

/** Call options of {@link MultiheadAttention.forward}. */
export interface AttentionCallOptions {
  /** `[N, S]` bool: `true` marks key positions to ignore (padding). */
  keyPaddingMask?: Tensor;
  /** `[L, S]` or `[N·heads, L, S]`: bool (`true` = not allowed) or float (added to the logits). */
  attnMask?: Tensor;
  /** Also return the attention weights averaged over heads, `[N, L, S]`. Default `false`. */
  needWeights?: boolean;
}

/**
 * `torch.nn.MultiheadAttention` with its weight layout (`in_proj_weight` `[3E, E]` packing q, k, v;
 * `in_proj_bias`; `out_proj.weight`, `out_proj.bias`) and math: q is scaled by 1/√(E / heads)
 * before the dot product; heads are contiguous chunks of E / heads channels.
 * @example
 * ```ts
 * import { initBackend, MultiheadAttention, tf } from '@skysense/core-tensor';
 * await initBackend();
 * // torch.nn.MultiheadAttention: in_proj_weight, out_proj.*; batch-first here
 * const attn = new MultiheadAttention(64, 4, { batchFirst: true });
 * const x = tf.randomNormal([2, 10, 64]);
 * const { output, weights } = attn.forward(x); // self-attention (key = value = query)
 * console.log(output.shape, weights?.shape); // [2, 10, 64] [2, 10, 10], averaged over heads
 * ```
 */
export class MultiheadAttention extends Module {
  readonly inProjWeight: Parameter;
  readonly inProjBias: Parameter | null;
  readonly outProj: Linear;
  readonly headDim: number;
  readonly batchFirst: boolean;
  private readonly attnDrop: Dropout;

  constructor(
    readonly embedDim: number,
    readonly numHeads: number,
    options: MultiheadAttentionOptions = {},
  ) {
    super();
    assertInt('embedDim', embedDim, 1);
    assertInt('numHeads', numHeads, 1);
    if (embedDim % numHeads !== 0) throw new SkySenseError('E_ARG', `embedDim ${embedDim} must be divisible by numHeads ${numHeads}`);
    this.headDim = embedDim / numHeads;
    this.batchFirst = options.batchFirst ?? false;
    const bias = options.bias ?? true;
    this.inProjWeight = this.registerParameter('in_proj_weight', [3 * embedDim, embedDim], xavierUniform());
    this.inProjBias = bias ? this.registerParameter('in_proj_bias', [3 * embedDim], zeros) : null;
    this.outProj = this.registerModule('out_proj', new Linear(embedDim, embedDim, { bias, biasInit: zeros }));
    this.attnDrop = new Dropout(assertInRange('dropout', options.dropout ?? 0, 0, 1));
  }

  /**
   * Attention of `query` over `key`/`value` (default: self-attention on `query`).
   * @returns `output` shaped like `query`, and `weights` `[N, L, S]` when `needWeights`.
   */
  forward(
    query: Tensor,
    key: Tensor = query,
    value: Tensor = key,
    options: AttentionCallOptions = {},
  ): { output: Tensor; weights?: Tensor } {
    this.checkInputs(query, key, value);
    this.attnDrop.training = this.training;
    const self = query === key && key === value;
    const kept = tf.tidy(() => {
      const toBatchFirst = (t: Tensor) => (this.batchFirst ? t : tf.transpose(t, [1, 0, 2]));
      const restore = (t: Tensor) => (this.batchFirst ? t : tf.transpose(t, [1, 0, 2]));
      if (!this.training && self && !options.attnMask && !options.needWeights) {
        // eval mode: one fused kernel for the heads (what the branch below computes, dropout off)
        const qkv = linear(toBatchFirst(query), this.inProjWeight.value, this.inProjBias?.value ?? null);
        const padding = options.keyPaddingMask ?? null;
        if (padding) checkKeyPadding(padding, qkv.shape[0]!, qkv.shape[1]!, 'keyPaddingMask');
        return [restore(this.outProj.forward(checkedSelfAttention(qkv, this.numHeads, padding)))];
      }
      const [q, k, v] = this.project(toBatchFirst(query), toBatchFirst(key), toBatchFirst(value), self);
      const [n, l] = [q.shape[0]!, q.shape[1]!];
      const s = k.shape[1]!;
      let logits = matMul(tf.mul(this.splitHeads(q), 1 / Math.sqrt(this.headDim)), this.splitHeads(k), false, true);
      logits = this.applyMasks(logits, n, l, s, options);
      const attn = tf.softmax(logits, -1);
      const ctx = matMul(this.attnDrop.forward(attn), this.splitHeads(v));
      const merged = tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [n, l, this.embedDim]);
      const output = restore(this.outProj.forward(merged));
      return options.needWeights ? [output, tf.mean(attn, 1)] : [output];
    });
    return { output: kept[0]!, weights: kept[1] };
  }

  private checkInputs(query: Tensor, key: Tensor, value: Tensor): void {
    for (const [name, t] of [
      ['query', query],
      ['key', key],
      ['value', value],
    ] as const) {
      if (t.rank !== 3 || t.shape[2] !== this.embedDim) {
        const layout = this.batchFirst ? '[N, L, E]' : '[L, N, E]';
        throw new SkySenseError(
          'E_SHAPE',
          `MultiheadAttention ${name}: expected ${layout} with E = ${this.embedDim}, got ${formatShape(t.shape)}`,
        );
      }
    }
    const batchAxis = this.batchFirst ? 0 : 1;
    if (
      key.shape[batchAxis] !== query.shape[batchAxis] ||
      value.shape[batchAxis] !== query.shape[batchAxis] ||
      key.shape[1 - batchAxis] !== value.shape[1 - batchAxis]
    ) {
      throw new SkySenseError(
        'E_SHAPE',
        `MultiheadAttention: query ${formatShape(query.shape)}, key ${formatShape(key.shape)} and value ${formatShape(value.shape)} do not agree on batch and source length`,
      );
    }
  }

  private project(q: Tensor, k: Tensor, v: Tensor, same: boolean): Tensor[] {
    const w = this.inProjWeight.value;
    const b = this.inProjBias?.value;
    const proj = (x: Tensor, wi: Tensor, bi?: Tensor) => linear(x, wi, bi ?? null);
    if (same) return tf.split(proj(q, w, b), 3, 2);
    const ws = tf.split(w, 3, 0);
    const bs = b ? tf.split(b, 3, 0) : [undefined, undefined, undefined];
    return [proj(q, ws[0]!, bs[0]), proj(k, ws[1]!, bs[1]), proj(v, ws[2]!, bs[2])];
  }

  /** `[N, L, E]` → `[N, heads, L, headDim]`. */
  private splitHeads(t: Tensor): Tensor {
    return tf.transpose(tf.reshape(t, [t.shape[0]!, t.shape[1]!, this.numHeads, this.headDim]), [0, 2, 1, 3]);
  }

  private applyMasks(logits: Tensor, n: number, l: number, s: number, options: AttentionCallOptions): Tensor {
    let out = logits;
    const { keyPaddingMask, attnMask } = options;
    if (attnMask) {
      const ok2 = attnMask.rank === 2 && attnMask.shape[0] === l && attnMask.shape[1] === s;
      const ok3 = attnMask.rank === 3 && attnMask.shape[0] === n * this.numHeads && attnMask.shape[1] === l && attnMask.shape[2] === s;
      if (!ok2 && !ok3)
        throw new SkySenseError(
          'E_SHAPE',
          `attnMask: expected [${l}, ${s}] or [${n * this.numHeads}, ${l}, ${s}], got ${formatShape(attnMask.shape)}`,
        );
      const m = ok3 ? tf.reshape(attnMask, [n, this.numHeads, l, s]) : attnMask;
      out = attnMask.dtype === 'bool' ? tf.where(tf.broadcastTo(m, out.shape), tf.fill(out.shape, -Infinity), out) : tf.add(out, m);
    }
    if (keyPaddingMask) {
      checkKeyPadding(keyPaddingMask, n, s, 'keyPaddingMask');
      const m = tf.broadcastTo(tf.reshape(keyPaddingMask, [n, 1, 1, s]), out.shape);
      out = tf.where(m, tf.fill(out.shape, -Infinity), out);
    }
    return out;
  }
}
