// The baseline micro-kernel: 6 rows × 8 columns of 128-bit vectors (SSE on x86-64-v2, NEON on
// ARM), compiled with the build's default flags; runs on every CPU the addon runs on.
#include "gemm_kernel.h"
SKYSENSE_GEMM_KERNEL(Baseline, "baseline", 6, 8, 4)
