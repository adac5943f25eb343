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
