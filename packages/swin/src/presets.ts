/** The architecture numbers of a Swin V2 (mmcls `arch` dict). */
export interface SwinV2Arch {
  embedDims: number;
  depths: number[];
  numHeads: number[];
  /** An extra LayerNorm (`norm3`) after every n-th block of a stage; 0 = none. */
  extraNormEveryNBlocks: number;
}

/** mmcls 0.25 `SwinTransformerV2.arch_zoo`. `huge` is SkySense's HR encoder (architecture guide §1). */
export const SWIN_V2_ARCHS: Readonly<Record<'tiny' | 'small' | 'base' | 'large' | 'huge' | 'giant', SwinV2Arch>> = {
  tiny: { embedDims: 96, depths: [2, 2, 6, 2], numHeads: [3, 6, 12, 24], extraNormEveryNBlocks: 0 },
  small: { embedDims: 96, depths: [2, 2, 18, 2], numHeads: [3, 6, 12, 24], extraNormEveryNBlocks: 0 },
  base: { embedDims: 128, depths: [2, 2, 18, 2], numHeads: [4, 8, 16, 32], extraNormEveryNBlocks: 0 },
  large: { embedDims: 192, depths: [2, 2, 18, 2], numHeads: [6, 12, 24, 48], extraNormEveryNBlocks: 0 },
  huge: { embedDims: 352, depths: [2, 2, 18, 2], numHeads: [8, 16, 32, 64], extraNormEveryNBlocks: 6 },
  giant: { embedDims: 512, depths: [2, 2, 42, 4], numHeads: [16, 32, 64, 128], extraNormEveryNBlocks: 6 },
};

/** Names accepted by `arch` (mmcls's short aliases included). */
export type SwinV2ArchName = keyof typeof SWIN_V2_ARCHS | 't' | 's' | 'b' | 'l' | 'h' | 'g';

const ALIASES: Record<string, keyof typeof SWIN_V2_ARCHS> = { t: 'tiny', s: 'small', b: 'base', l: 'large', h: 'huge', g: 'giant' };

/** Resolves an arch name or alias; `undefined` for unknown names. */
export function archByName(name: string): SwinV2Arch | undefined {
  const key = (ALIASES[name.toLowerCase()] ?? name.toLowerCase()) as keyof typeof SWIN_V2_ARCHS;
  return SWIN_V2_ARCHS[key];
}
