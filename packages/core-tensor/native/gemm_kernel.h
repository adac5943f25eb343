// The built-in GEMM's micro-kernel, written once with GCC/Clang vector extensions and compiled per
// instruction set (gemm_avx512.cc, gemm_avx2.cc, gemm_baseline.cc include it with their own flags).
// Only this header and <cstdint>/<cstring> go into those files: nothing they compile may be shared
// with code that runs on a CPU without that instruction set.
#pragma once
#include <cstdint>
#include <cstring>
#include "gemm.h"

namespace {

// MR rows × NV vectors of W floats: MR·NV accumulators stay in registers for the whole k loop.
template <int MR, int NV, int W>
void MicroKernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc, float alpha, float beta) {
  typedef float V __attribute__((vector_size(W * sizeof(float))));
  constexpr int NR = NV * W;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) acc[i][j] = V{};
  for (int64_t k = 0; k < kc; k++) {
    V bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) std::memcpy(&bv[j], b + k * NR + j * W, sizeof(V));
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      const float ai = a[k * MR + i];
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) acc[i][j] += ai * bv[j];
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) {
      V out = acc[i][j] * alpha;
      float* cp = c + i * ldc + j * W;
      if (beta != 0.0f) {
        V old;
        std::memcpy(&old, cp, sizeof(V));
        out += old * beta;
      }
      std::memcpy(cp, &out, sizeof(V));
    }
}

}  // namespace

// Defines skysense::GemmKernel<Name>() returning this file's micro-kernel.
// MR rows × NR columns, NR a multiple of the vector width W (floats).
#define SKYSENSE_GEMM_KERNEL(Name, Isa, MR, NR, W)                                                                 \
  namespace skysense {                                                                                             \
  const GemmKernel* GemmKernel##Name() {                                                                           \
    static const GemmKernel k{Isa, "built-in GEMM (" Isa ", " #MR "x" #NR ")", MR, NR, &MicroKernel<MR, (NR) / (W), W>}; \
    return &k;                                                                                                     \
  }                                                                                                                \
  }
