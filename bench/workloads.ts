/** Models the benchmarks share (bench/compare.ts, bench/profile.ts, the swin package's bench). */
import { SwinBlockV2 } from '@skysense/swin';

/** One stage-0 block of the SkySense HR encoder (Swin V2-H: width 352, 8 heads, window 8, shifted), as in the 655 M model; input `[1, 64, 64, 352]` for a 256 px tile. */
export function hrStage0Block(): SwinBlockV2 {
  return new SwinBlockV2(352, 8, {
    windowSize: 8,
    shift: true,
    extraNorm: false,
    dropPath: 0,
    padSmallMap: false,
    pretrainedWindowSize: 0,
  });
}

/**
 * `[rows, in, out]` of the models' linear layers, the GEMMs `bench:gemm` measures: ViT-L on 64² S2
 * (257 tokens: qkv, proj, fc1, fc2), Swin-H at 256² stage 0 (4096 tokens, 352 wide), stage 2 (256
 * tokens, 1408 wide) and stage 3 (64 tokens, 2816 wide).
 */
export const GEMM_SHAPES: readonly (readonly [number, number, number])[] = [
  [257, 1024, 3072],
  [257, 1024, 1024],
  [257, 1024, 4096],
  [257, 4096, 1024],
  [4096, 352, 1056],
  [4096, 352, 1408],
  [4096, 1408, 352],
  [256, 1408, 4224],
  [256, 1408, 5632],
  [256, 5632, 1408],
  [64, 2816, 11264],
  [64, 11264, 2816],
];

/** The workload name of a GEMM shape, as `torch_workloads.py --onnx` names it. */
export const gemmName = ([m, k, n]: readonly number[]) => `gemm ${m}×${k}→${n}`;
