// The AVX2/FMA micro-kernel: 6 rows × 16 columns (12 ymm accumulators). Compiled with -mavx2 -mfma;
// used only on CPUs that report both (gemm.cc checks before choosing it).
#include "gemm_kernel.h"
SKYSENSE_GEMM_KERNEL(Avx2, "avx2", 6, 16, 8)
