// Single-precision GEMM used by every native kernel: the built-in one, or OpenBLAS when the addon was
// built against it and it is selected (packed panels, a register-blocked micro-kernel chosen at run time among
// AVX-512, AVX2/FMA and a baseline SIMD path, threads of the persistent pool).
#pragma once
#include <cstdint>

namespace skysense {

// Row-major C[M×N] = alpha·op(A)·op(B) + beta·C, as cblas_sgemm(CblasRowMajor, …): op(A) is
// A [M×K] (lda) or, with transA, Aᵀ of A [K×M]; likewise op(B). beta == 0 never reads C.
void Sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
           float beta, float* C, int64_t ldc);

// A linear layer: out [rows×outF] = act(x·wᵀ + bias) for x [rows×inF], w [outF×inF], bias [outF];
// act is the exact GELU when `gelu`. The built-in GEMM adds the bias and applies the GELU to each
// tile of out as it finishes it (in L1); with OpenBLAS they are passes before and after.
void LinearGemm(const float* x, const float* w, const float* bias, float* out, int64_t rows, int64_t outF, int64_t inF, bool gelu);

// Which GEMM Sgemm runs, e.g. "OpenBLAS 0.3.21" or "built-in GEMM (avx512, 8x32)" (a string
// that lives as long as the process).
const char* GemmName();

// Selects the built-in micro-kernel: "auto" (the best the CPU supports), "avx512", "avx2" or
// "baseline". Returns false (nothing changed) for a name the CPU or this build cannot run.
bool SetGemmKernel(const char* name);

// The built-in micro-kernel: C[MR×NR] (ldc) = alpha·Σₖ A[i, k]·b[k·NR + j] (+ beta·C unless
// beta == 0) from a packed panel b [kc×NR] and MR rows of A, packed (a[k·MR + i], lda unused) or
// read in place (a[i·lda + k]).
struct GemmKernel {
  const char* name;   // "avx512", "avx2", "baseline"
  const char* label;  // what GemmName() reports, e.g. "built-in GEMM (avx512, 8x32)"
  int mr, nr;
  void (*run)(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, float alpha, float beta);
  void (*runRows)(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, float alpha, float beta);
  // Packs a kc×NR panel of Bᵀ from a row-major B: dst[k·NR + c] = b[c·ldb + k] (c < cols, else 0).
  void (*packT)(const float* b, int64_t ldb, int64_t kc, int64_t cols, float* dst);
  // A linear layer's tile epilogue: rows × cols of c (ldc) += bias (when given), then the exact GELU (when asked).
  void (*epilogue)(float* c, int64_t ldc, int64_t rows, int64_t cols, const float* bias, bool gelu);
  // The element-wise parts of attention, vectorised for the same instruction set:
  // F.normalize of n rows of d (x, ld apart): dst[i·d + j] = x[i·ld + j] / norm[i], norm[i] =
  // √max(Σx², eps²) with sumSq[i] = Σx² (double) kept for the backward pass;
  void (*normalizeRows)(const float* x, int64_t ld, int64_t n, int64_t d, float* dst, double* sumSq, float* norm);
  // one row of attention probabilities: row = softmax(s·scale + bias + mask) over n ≥ 1 keys (bias,
  // mask null when absent; the sum in double).
  void (*softmaxRow)(const float* s, float scale, const float* bias, const float* mask, float* row, int64_t n);
};

// (1e-12)²: F.normalize's eps, squared.
constexpr double kNormEps2 = 1e-24;

// The built-in micro-kernel in use (also when OpenBLAS runs the GEMMs: its element-wise functions
// serve the fused kernels).
const GemmKernel& BuiltinKernel();

// The micro-kernels of this build (each compiled for its instruction set in its own file); null
// where the build has none for that set.
const GemmKernel* GemmKernelAvx512();
const GemmKernel* GemmKernelAvx2();
const GemmKernel* GemmKernelBaseline();

}  // namespace skysense
