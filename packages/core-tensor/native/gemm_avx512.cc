// The AVX-512 micro-kernel: 8 rows × 32 columns (16 zmm accumulators). Compiled with -mavx512f;
// used only on CPUs that report AVX-512F (gemm.cc checks before choosing it).
#include "gemm_kernel.h"
SKYSENSE_GEMM_KERNEL(Avx512, "avx512", 8, 32, 16)
