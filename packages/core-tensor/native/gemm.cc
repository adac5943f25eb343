// The GEMM driver: the built-in GEMM, or OpenBLAS where the addon was built against it and it was
// asked for (SetGemmKernel("openblas")). The built-in GEMM: each KC×NR panel of op(B) packed just
// before use into a buffer that stays in L1 and run against the MR-row panels of a block of up to
// MC rows of op(A), which the micro-kernel reads in place (a transposed A is packed first), the
// micro-kernel of gemm_kernel.h chosen once at load from what the CPU supports, the work split over
// (row block × column chunk × row part) tasks of the thread pool.
// The models' GEMMs have few rows (tokens) and large weights (op(B)): a weight is read once per
// 512 rows, straight into L1, with no packed copy of it written to or read back from memory.
#include <algorithm>
#include <atomic>
#include <memory>
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
constexpr int64_t MC = 512;   // rows of an A block (MC·KC floats, in L2) that one B panel meets
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
std::atomic<bool> useBlas{false};  // OpenBLAS only when asked for: the built-in GEMM is faster on the models' shapes

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

struct Problem {
  const GemmKernel* kern;
  bool tA, tB;
  int64_t M, N, K, lda, ldb, ldc;
  float alpha, beta;
  const float *A, *B;
  float* C;
  const float* bias = nullptr;  // added to every row of C (first depth block), when given
  bool gelu = false;            // the exact GELU over C (last depth block)
};

// The KC×NR panel of op(B) at depth p0, columns c0 … c0+cols (zero-padded to NR) → dst[k·NR + c].
void PackPanel(const Problem& p, int64_t p0, int64_t kc, int64_t c0, int64_t cols, float* dst) {
  const int nr = p.kern->nr;
  if (p.tB) {
    p.kern->packT(p.B + c0 * p.ldb + p0, p.ldb, kc, cols, dst);
    return;
  }
  for (int64_t k = 0; k < kc; k++) {
    std::memcpy(dst + k * nr, p.B + (p0 + k) * p.ldb + c0, sizeof(float) * size_t(cols));
    std::fill(dst + k * nr + cols, dst + (k + 1) * nr, 0.0f);
  }
}

// The depth of the next block when `rest` remains: KC, or all of it when that is under 1.5·KC (a
// thin last block would pass over C once more for little work).
constexpr int64_t kMaxDepth = KC + KC / 2;
int64_t DepthBlock(int64_t rest) { return rest <= kMaxDepth ? rest : KC; }

// How a GEMM is split: task t takes the rows of part t % rowParts of row block t / (chunks ·
// rowParts) (blockRows rows, a multiple of MR) and the NR-wide panels of chunk (t / rowParts) %
// chunks. Tasks write disjoint tiles of C, so they run with no barrier between depth blocks.
struct Plan {
  const Problem* p;
  const float* ap;  // op(A) packed whole in MR-high panels (transposed A), or null: A's rows read in place
  int64_t blockRows;
  size_t panels, perChunk, chunks, rowParts, slivers, perPart;
};

// C tile at (row, c0) of `rows` × `cols` from the kernel, through a full-size buffer at the edges.
void RunTile(const Problem& p, bool packedA, const float* a, int64_t lda, const float* b, int64_t row, int64_t rows, int64_t c0, int64_t cols,
             int64_t kc, float beta, bool first, bool last, float* tmp) {
  const GemmKernel& kern = *p.kern;
  const auto run = packedA ? kern.run : kern.runRows;
  float* c = p.C + row * p.ldc + c0;
  if (rows == kern.mr && cols == kern.nr) {
    run(kc, a, lda, b, c, p.ldc, p.alpha, beta);
  } else {
    run(kc, a, lda, b, tmp, kern.nr, p.alpha, 0.0f);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t q = 0; q < cols; q++) {
        float& out = c[r * p.ldc + q];
        out = beta == 0.0f ? tmp[r * kern.nr + q] : tmp[r * kern.nr + q] + beta * out;
      }
  }
  const float* bias = first && p.bias ? p.bias + c0 : nullptr;  // the tile's epilogue, while it is in L1
  if (bias || (last && p.gelu)) kern.epilogue(c, p.ldc, rows, cols, bias, last && p.gelu);
}

void RunTask(void* ctx, size_t t) {
  const Plan& pl = *static_cast<const Plan*>(ctx);
  const Problem& p = *pl.p;
  const int mr = p.kern->mr, nr = p.kern->nr;
  const size_t part = t % pl.rowParts, chunk = (t / pl.rowParts) % pl.chunks;
  const int64_t i0 = int64_t(t / (pl.rowParts * pl.chunks)) * pl.blockRows;
  const int64_t r0 = i0 + int64_t(part * pl.perPart) * mr;
  const int64_t r1 = std::min({p.M, i0 + pl.blockRows, r0 + int64_t(pl.perPart) * mr});
  const size_t pb = chunk * pl.perChunk, pe = std::min(pl.panels, pb + pl.perChunk);
  if (r0 >= r1 || pb >= pe) return;
  thread_local std::vector<float> panel, edge, tile;
  float* b = Scratch(panel, size_t(nr * kMaxDepth));
  float* ea = Scratch(edge, size_t(mr * kMaxDepth));
  float* tmp = Scratch(tile, size_t(mr * nr));
  for (int64_t pc = 0; pc < p.K; pc += DepthBlock(p.K - pc)) {
    const int64_t kc = DepthBlock(p.K - pc);
    const bool first = pc == 0, last = pc + kc == p.K;
    const float beta = first ? p.beta : 1.0f;
    for (size_t jp = pb; jp < pe; jp++) {
      const int64_t c0 = int64_t(jp) * nr, cols = std::min<int64_t>(nr, p.N - c0);
      PackPanel(p, pc, kc, c0, cols, b);
      for (int64_t row = r0; row < r1; row += mr) {
        const int64_t rows = std::min<int64_t>(mr, r1 - row);
        if (pl.ap) {
          RunTile(p, true, pl.ap + row * p.K + pc * mr, 0, b, row, rows, c0, cols, kc, beta, first, last, tmp);
        } else if (rows == mr) {
          RunTile(p, false, p.A + row * p.lda + pc, p.lda, b, row, rows, c0, cols, kc, beta, first, last, tmp);
        } else {  // the last rows: packed, zero-padded to MR
          PackA(p.A, p.lda, false, row, rows, pc, kc, mr, ea);
          RunTile(p, true, ea, 0, b, row, rows, c0, cols, kc, beta, first, last, tmp);
        }
      }
    }
  }
}

void BuiltinGemm(const Problem& p) {
  const int mr = p.kern->mr, nr = p.kern->nr;
  const size_t threads = p.M * p.N * p.K < kSerialWork ? 1 : threadCount();
  Plan pl{&p, nullptr, std::max<int64_t>(mr, MC / mr * mr), size_t((p.N + nr - 1) / nr), 0, 0, 0, 0, 0};
  const size_t slivers = size_t((p.M + mr - 1) / mr);
  std::unique_ptr<float[]> packedA;  // this call's only (not kept: it is M × K, the size of a gradient)
  if (p.tA) {  // a transposed A is read across its rows: packed once, whole (M × K), in MR-high panels
    packedA.reset(new float[slivers * size_t(mr) * size_t(p.K)]);
    float* ap = packedA.get();
    struct Job {
      const Problem* p;
      float* ap;
      size_t per, slivers;
    } job{&p, ap, (slivers + threads - 1) / threads, slivers};
    RunParallel(std::min(threads, slivers), [](void* ctx, size_t t) {
      const Job& j = *static_cast<const Job*>(ctx);
      const int m = j.p->kern->mr;
      const int64_t r0 = int64_t(t * j.per) * m, r1 = std::min(j.p->M, int64_t((t + 1) * j.per) * m);
      if (r0 < r1) PackA(j.p->A, j.p->lda, true, r0, r1 - r0, 0, j.p->K, m, j.ap + r0 * j.p->K);
    }, &job);
    pl.ap = ap;
  }
  // about 4 tasks per thread: row blocks, chunks of panels, and the rows split where the panels are few
  const size_t blocks = size_t((p.M + pl.blockRows - 1) / pl.blockRows), want = (4 * threads + blocks - 1) / blocks;
  pl.perChunk = threads == 1 ? pl.panels : std::max<size_t>(1, pl.panels / want);
  pl.chunks = (pl.panels + pl.perChunk - 1) / pl.perChunk;
  pl.slivers = size_t(pl.blockRows / mr);
  pl.rowParts = threads == 1 ? 1 : std::min(pl.slivers, (want + pl.chunks - 1) / pl.chunks);
  pl.perPart = (pl.slivers + pl.rowParts - 1) / pl.rowParts;
  RunParallel(blocks * pl.chunks * pl.rowParts, RunTask, &pl);
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
  BuiltinGemm(Problem{builtin.load(std::memory_order_relaxed), transA, transB, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C});
}

const GemmKernel& BuiltinKernel() { return *builtin.load(std::memory_order_relaxed); }

void LinearGemm(const float* x, const float* w, const float* bias, float* out, int64_t rows, int64_t outF, int64_t inF, bool gelu) {
  if (rows <= 0 || outF <= 0) return;
  const bool blas = kHaveBlas && useBlas.load(std::memory_order_relaxed);
  if (blas || inF <= 0) {  // OpenBLAS has no epilogue: the bias is written first, the GELU applied after
    parallelFor(size_t(rows), std::max<size_t>(1, 16384 / size_t(outF)), [&](size_t rb, size_t re) {
      for (size_t r = rb; r < re; r++) std::memcpy(out + r * size_t(outF), bias, sizeof(float) * size_t(outF));
    });
    Sgemm(false, true, rows, outF, inF, 1.0f, x, inF, w, inF, 1.0f, out, outF);
    if (gelu)
      parallelFor(size_t(rows) * size_t(outF), 16384, [&](size_t i, size_t e) {
        for (; i < e; i++) out[i] = Gelu(out[i]);
      });
    return;
  }
  Problem p{builtin.load(std::memory_order_relaxed), false, true, rows, outF, inF, inF, inF, outF, 1.0f, 0.0f, x, w, out};
  p.bias = bias;
  p.gelu = gelu;
  BuiltinGemm(p);
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
    useBlas = w == "openblas";
  } else if (const GemmKernel* k = KernelFor(w)) {
    builtin = k;
    useBlas = false;
  } else {
    return false;
  }
  return true;
}

}  // namespace skysense
