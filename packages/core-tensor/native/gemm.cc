// The GEMM driver: OpenBLAS where the addon was built against it (and no built-in kernel was
// asked for), else the built-in GEMM — Goto/BLIS blocking (B packed in KC×NC blocks of NR-wide
// panels, A in MC×KC blocks of MR-high panels), the micro-kernel of gemm_kernel.h chosen once at
// load from what the CPU supports, and the work split over (row block × column chunk) tasks of the
// thread pool.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <vector>
#include "common.h"
#include "gemm.h"
#ifdef SKYSENSE_OPENBLAS
#include <cblas.h>
extern "C" char* openblas_get_config(void);
#endif

namespace skysense {

#ifndef SKYSENSE_X86_KERNELS
const GemmKernel* GemmKernelAvx512() { return nullptr; }
const GemmKernel* GemmKernelAvx2() { return nullptr; }
#endif

namespace {

constexpr int64_t KC = 256;   // depth of a block: an NR-wide B panel (KC·NR floats) stays in L1
constexpr int64_t MC = 128;   // rows of an A block (MC·KC floats, in L2); rounded down to MR
constexpr int64_t NC = 4096;  // columns of a B block (KC·NC floats, in L3)
constexpr int64_t kSerialWork = int64_t(1) << 17;  // M·N·K below which one thread does it all

bool CpuHas(const char* feature) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (std::strcmp(feature, "avx512") == 0) return __builtin_cpu_supports("avx512f");
  if (std::strcmp(feature, "avx2") == 0) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return std::strcmp(feature, "baseline") == 0;
}

// The kernel for an instruction-set name, or null where this CPU or build has none. The CPU is
// checked first: a kernel's file may only be entered on a CPU that runs its instructions.
const GemmKernel* KernelFor(const std::string& isa) {
  if (isa == "avx512") return CpuHas("avx512") ? GemmKernelAvx512() : nullptr;
  if (isa == "avx2") return CpuHas("avx2") ? GemmKernelAvx2() : nullptr;
  return isa == "baseline" ? GemmKernelBaseline() : nullptr;
}

const GemmKernel* BestKernel() {
  for (const char* isa : {"avx512", "avx2"})
    if (const GemmKernel* k = KernelFor(isa)) return k;
  return GemmKernelBaseline();
}

#ifdef SKYSENSE_OPENBLAS
constexpr bool kHaveBlas = true;
#else
constexpr bool kHaveBlas = false;
#endif

std::atomic<const GemmKernel*> builtin{BestKernel()};
std::atomic<bool> useBlas{kHaveBlas};

#ifdef SKYSENSE_OPENBLAS
// "OpenBLAS 0.3.21" from openblas_get_config() ("OpenBLAS 0.3.21 DYNAMIC_ARCH …"), made once.
const char* BlasName() {
  static const std::string name = [] {
    std::string config = openblas_get_config();
    return config.substr(0, config.find(' ', config.find(' ') + 1));
  }();
  return name.c_str();
}
#endif

// A 64-byte aligned scratch buffer per thread and role, grown on demand and kept.
float* Scratch(std::vector<float>& buf, size_t floats) {
  if (buf.size() < floats + 16) buf.resize(floats + 16);
  auto p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<float*>((p + 63) & ~uintptr_t(63));
}

// op(A)[i0 : i0+mc, p0 : p0+kc] → panels of MR rows, dst[(ip/MR)·kc·MR + k·MR + r], zero-padded.
void PackA(const float* A, int64_t lda, bool tA, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int mr, float* dst) {
  for (int64_t ip = 0; ip < mc; ip += mr) {
    const int64_t rows = std::min<int64_t>(mr, mc - ip);
    float* d = dst + ip * kc;
    if (tA) {
      for (int64_t k = 0; k < kc; k++) {
        const float* s = A + (p0 + k) * lda + i0 + ip;
        for (int64_t r = 0; r < rows; r++) d[k * mr + r] = s[r];
        for (int64_t r = rows; r < mr; r++) d[k * mr + r] = 0.0f;
      }
    } else {
      for (int64_t r = 0; r < rows; r++) {
        const float* s = A + (i0 + ip + r) * lda + p0;
        for (int64_t k = 0; k < kc; k++) d[k * mr + r] = s[k];
      }
      for (int64_t r = rows; r < mr; r++)
        for (int64_t k = 0; k < kc; k++) d[k * mr + r] = 0.0f;
    }
  }
}

// op(B)[p0 : p0+kc, j0 + jp·NR …] for panels [pb, pe) → dst[jp·kc·NR + k·NR + c], zero-padded.
void PackB(const float* B, int64_t ldb, bool tB, int64_t p0, int64_t kc, int64_t j0, int64_t nc, int nr, size_t pb, size_t pe, float* dst) {
  for (size_t jp = pb; jp < pe; jp++) {
    const int64_t c0 = int64_t(jp) * nr, cols = std::min<int64_t>(nr, nc - c0);
    float* d = dst + c0 * kc;
    if (!tB) {
      for (int64_t k = 0; k < kc; k++) {
        std::memcpy(d + k * nr, B + (p0 + k) * ldb + j0 + c0, sizeof(float) * size_t(cols));
        std::fill(d + k * nr + cols, d + (k + 1) * nr, 0.0f);
      }
    } else {
      for (int64_t c = 0; c < cols; c++) {
        const float* s = B + (j0 + c0 + c) * ldb + p0;
        for (int64_t k = 0; k < kc; k++) d[k * nr + c] = s[k];
      }
      for (int64_t c = cols; c < nr; c++)
        for (int64_t k = 0; k < kc; k++) d[k * nr + c] = 0.0f;
    }
  }
}

struct Problem {
  const GemmKernel* kern;
  bool tA, tB;
  int64_t M, N, K, lda, ldb, ldc;
  float alpha;
  const float *A, *B;
  float* C;
};

// One KC×NC block of B (already packed in bp) times the row blocks of A: the task t covers row
// block t / chunks and the chunk t % chunks of the block's B panels.
struct BlockTask {
  const Problem* p;
  const float* bp;
  int64_t jc, nc, pc, kc, mcRows;
  float beta;
  size_t panels, chunks, perChunk;
};

void RunBlockTask(void* ctx, size_t t) {
  const BlockTask& bt = *static_cast<const BlockTask*>(ctx);
  const Problem& p = *bt.p;
  const int mr = p.kern->mr, nr = p.kern->nr;
  const int64_t i0 = int64_t(t / bt.chunks) * bt.mcRows, mc = std::min(bt.mcRows, p.M - i0);
  const size_t pb = (t % bt.chunks) * bt.perChunk, pe = std::min(bt.panels, pb + bt.perChunk);
  if (pb >= pe) return;
  thread_local std::vector<float> abuf, tile;
  float* ap = Scratch(abuf, size_t((mc + mr) * bt.kc));
  float* tmp = Scratch(tile, size_t(mr * nr));
  PackA(p.A, p.lda, p.tA, i0, mc, bt.pc, bt.kc, mr, ap);
  for (size_t jp = pb; jp < pe; jp++) {
    const int64_t c0 = int64_t(jp) * nr, cols = std::min<int64_t>(nr, bt.nc - c0);
    const float* b = bt.bp + c0 * bt.kc;
    for (int64_t ip = 0; ip < mc; ip += mr) {
      const int64_t rows = std::min<int64_t>(mr, mc - ip);
      float* c = p.C + (i0 + ip) * p.ldc + bt.jc + c0;
      const float* a = ap + ip * bt.kc;
      if (rows == mr && cols == nr) {
        p.kern->run(bt.kc, a, b, c, p.ldc, p.alpha, bt.beta);
        continue;
      }
      p.kern->run(bt.kc, a, b, tmp, nr, p.alpha, 0.0f);  // edge tile: through a full-size buffer
      for (int64_t r = 0; r < rows; r++)
        for (int64_t q = 0; q < cols; q++) {
          float& out = c[r * p.ldc + q];
          out = bt.beta == 0.0f ? tmp[r * nr + q] : tmp[r * nr + q] + bt.beta * out;
        }
    }
  }
}

void BuiltinGemm(const Problem& p, float beta) {
  const int mr = p.kern->mr, nr = p.kern->nr;
  const bool serial = p.M * p.N * p.K < kSerialWork;
  const size_t threads = serial ? 1 : threadCount();
  const int64_t mcRows = std::max<int64_t>(mr, MC / mr * mr);
  thread_local std::vector<float> bbuf;
  for (int64_t jc = 0; jc < p.N; jc += NC) {
    const int64_t nc = std::min(NC, p.N - jc);
    const size_t panels = size_t((nc + nr - 1) / nr);
    for (int64_t pc = 0; pc < p.K; pc += KC) {
      const int64_t kc = std::min(KC, p.K - pc);
      float* bp = Scratch(bbuf, panels * size_t(nr * kc));
      struct PackJob {
        const Problem* p;
        int64_t pc, kc, jc, nc;
        size_t panels, per;
        float* dst;
      } pj{&p, pc, kc, jc, nc, panels, (panels + threads - 1) / threads, bp};
      RunParallel(std::min(threads, panels), [](void* ctx, size_t t) {
        const PackJob& j = *static_cast<const PackJob*>(ctx);
        PackB(j.p->B, j.p->ldb, j.p->tB, j.pc, j.kc, j.jc, j.nc, j.p->kern->nr, t * j.per, std::min(j.panels, (t + 1) * j.per), j.dst);
      }, &pj);
      const size_t rowBlocks = size_t((p.M + mcRows - 1) / mcRows);
      const size_t chunks = serial ? 1 : std::min(panels, std::max<size_t>(1, (2 * threads + rowBlocks - 1) / rowBlocks));
      BlockTask bt{&p, bp, jc, nc, pc, kc, mcRows, pc == 0 ? beta : 1.0f, panels, chunks, (panels + chunks - 1) / chunks};
      if (serial) {
        for (size_t t = 0; t < rowBlocks; t++) RunBlockTask(&bt, t);
      } else {
        RunParallel(rowBlocks * chunks, RunBlockTask, &bt);
      }
    }
  }
}

}  // namespace

void Sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
           float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
#ifdef SKYSENSE_OPENBLAS
  if (useBlas.load(std::memory_order_relaxed)) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, int(M), int(N), int(K), alpha, A, int(lda), B,
                int(ldb), beta, C, int(ldc));
    return;
  }
#endif
  BuiltinGemm(Problem{builtin.load(std::memory_order_relaxed), transA, transB, M, N, K, lda, ldb, ldc, alpha, A, B, C}, beta);
}

const char* GemmName() {
#ifdef SKYSENSE_OPENBLAS
  if (useBlas.load()) return BlasName();
#endif
  return builtin.load()->label;
}

bool SetGemmKernel(const char* which) {
  const std::string w = which;
  if (w == "auto" || (w == "openblas" && kHaveBlas)) {
    builtin = BestKernel();
    useBlas = kHaveBlas;
  } else if (const GemmKernel* k = KernelFor(w)) {
    builtin = k;
    useBlas = false;
  } else {
    return false;
  }
  return true;
}

}  // namespace skysense
