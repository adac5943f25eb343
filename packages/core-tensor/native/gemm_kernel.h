// The built-in GEMM's micro-kernel, written once with GCC/Clang vector extensions and compiled per
// instruction set (gemm_avx512.cc, gemm_avx2.cc, gemm_baseline.cc include it with their own flags).
// Only this header, fastmath.h (static functions) and <cstdint>/<cstring> go into those files: nothing they compile may be shared
// with code that runs on a CPU without that instruction set.
#pragma once
#include <cstdint>
#include <cstring>
#include "fastmath.h"
#include "gemm.h"

namespace {

typedef int IntV4 __attribute__((vector_size(16)));
typedef int IntV8 __attribute__((vector_size(32)));
typedef int IntV16 __attribute__((vector_size(64)));
template <int W>
struct IntVec;
template <>
struct IntVec<4> {
  typedef IntV4 T;
};
template <>
struct IntVec<8> {
  typedef IntV8 T;
};
template <>
struct IntVec<16> {
  typedef IntV16 T;
};

// Transposes the W×W block of floats held in rows[0..W) (vectors of W) in place: stage S swaps the
// off-diagonal S×S blocks of each 2S×2S diagonal block with two-input shuffles (W·log2 W in all).
template <int W, int S = W / 2>
inline void Transpose(void* rows) {
  typedef float V __attribute__((vector_size(W * sizeof(float))));
  typedef typename IntVec<W>::T IV;
  V* r = static_cast<V*>(rows);
  IV lo, hi;
#pragma GCC unroll 16
  for (int j = 0; j < W; j++) {
    lo[j] = (j & S) ? W + j - S : j;
    hi[j] = (j & S) ? W + j : j + S;
  }
#pragma GCC unroll 16
  for (int i = 0; i < W; i++)
    if (!(i & S)) {
      const V a = r[i], b = r[i + S];
      r[i] = __builtin_shuffle(a, b, lo);
      r[i + S] = __builtin_shuffle(a, b, hi);
    }
  if constexpr (S > 1) Transpose<W, S / 2>(rows);
}

// One KC×NR panel of Bᵀ for a row-major B (a weight [out, in] read as its transpose):
// dst[k·NR + c] = b[c·ldb + k] for c < cols, zero beyond; whole panels W×W blocks at a time,
// transposed in registers.
template <int NR, int W>
void PackPanelT(const float* __restrict b, int64_t ldb, int64_t kc, int64_t cols, float* __restrict dst) {
  typedef float V __attribute__((vector_size(W * sizeof(float))));
  int64_t k = 0;
  if (cols == NR) {
    for (; k + W <= kc; k += W)
#pragma GCC unroll 4
      for (int cb = 0; cb < NR; cb += W) {
        V r[W];
#pragma GCC unroll 16
        for (int i = 0; i < W; i++) std::memcpy(&r[i], b + (cb + i) * ldb + k, sizeof(V));
        Transpose<W>(r);
#pragma GCC unroll 16
        for (int i = 0; i < W; i++) std::memcpy(dst + (k + i) * NR + cb, &r[i], sizeof(V));
      }
  }
  for (; k < kc; k++)
    for (int c = 0; c < NR; c++) dst[k * NR + c] = c < cols ? b[c * ldb + k] : 0.0f;
}

// Adds the bias (when given) to each of `rows` rows of c (ldc apart), then applies the exact GELU
// (when asked): the epilogue of a linear layer's tile, vectorised for this file's instruction set.
void TileEpilogue(float* c, int64_t ldc, int64_t rows, int64_t cols, const float* __restrict bias, bool gelu) {
  for (int64_t r = 0; r < rows; r++) {
    float* __restrict cr = c + r * ldc;
    if (bias)
      for (int64_t q = 0; q < cols; q++) cr[q] += bias[q];
    if (gelu)
      for (int64_t q = 0; q < cols; q++) cr[q] = Gelu(cr[q]);
  }
}

void NormalizeRows(const float* x, int64_t ld, int64_t n, int64_t d, float* __restrict dst, double* sumSq, float* norm) {
  for (int64_t i = 0; i < n; i++) {
    const float* __restrict xr = x + i * ld;
    if (i + 4 < n) {  // rows ld apart, a few lines each: too short for the hardware prefetcher
      for (int64_t j = 0; j < d; j += 16) __builtin_prefetch(xr + 4 * ld + j);
      __builtin_prefetch(xr + 4 * ld + d - 1);
    }
    const double ss = SumD(d, [&](int64_t j) { return double(xr[j]) * xr[j]; });
    sumSq[i] = ss;
    norm[i] = float(std::sqrt(std::max(ss, skysense::kNormEps2)));
    const float inv = 1.0f / norm[i];
    for (int64_t j = 0; j < d; j++) dst[i * d + j] = xr[j] * inv;
  }
}

void SoftmaxRow(const float* __restrict s, float scale, const float* __restrict bias, const float* __restrict mask, float* __restrict row, int64_t n) {
  for (int64_t j = 0; j < n; j++) row[j] = s[j] * scale;
  if (bias)
    for (int64_t j = 0; j < n; j++) row[j] += bias[j];
  if (mask)
    for (int64_t j = 0; j < n; j++) row[j] += mask[j];
  float p[16];
  for (float& v : p) v = row[0];
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
#pragma GCC unroll 16
    for (int l = 0; l < 16; l++) p[l] = p[l] > row[j + l] ? p[l] : row[j + l];
  for (; j < n; j++) p[0] = p[0] > row[j] ? p[0] : row[j];
  float mx = p[0];
  for (float v : p) mx = mx > v ? mx : v;
  for (int64_t q = 0; q < n; q++) row[q] = ExpFast(row[q] - mx);
  const float inv = float(1.0 / SumD(n, [&](int64_t q) { return double(row[q]); }));
  for (int64_t q = 0; q < n; q++) row[q] *= inv;
}

// MR rows × NV vectors of W floats: MR·NV accumulators stay in registers for the whole k loop. The
// rows of A come packed (a[k·MR + i], PackedA) or are read where they are (a[i·lda + k]: a
// row-major A needs no packing, its rows streaming through the cache as the k loop reads them).
template <int MR, int NV, int W, bool PackedA>
void MicroKernel(int64_t kc, const float* __restrict a, int64_t lda, const float* __restrict b, float* c, int64_t ldc, float alpha, float beta) {
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
      const float ai = PackedA ? a[k * MR + i] : a[i * lda + k];
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
    static const GemmKernel k{Isa,                                                                                 \
                              "built-in GEMM (" Isa ", " #MR "x" #NR ")",                                        \
                              MR,                                                                                \
                              NR,                                                                                \
                              &MicroKernel<MR, (NR) / (W), W, true>,                                             \
                              &MicroKernel<MR, (NR) / (W), W, false>,                                            \
                              &PackPanelT<NR, W>,                                                                \
                              &TileEpilogue,                                                                     \
                              &NormalizeRows,                                                                    \
                              &SoftmaxRow};                                                                      \
    return &k;                                                                                                     \
  }                                                                                                                \
  }
