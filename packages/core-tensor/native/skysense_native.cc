// Native kernels for the tfjs `cpu` backend: GEMM (gemm.cc: built-in or OpenBLAS), threaded element-wise and
// reduction kernels, im2col convolutions. Every function works in place on caller-owned typed
// arrays (inputs read, `out` written); shapes are validated on the TypeScript side.
#include "common.h"
#include "gemm.h"
#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <string>
#include <vector>
#include <uv.h>
#ifndef _WIN32
#include <fcntl.h>
#include <unistd.h>
#endif
#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace {
using namespace skysense;

// Calls fn(row, idx) for rows [rb, re) of a row-major iteration over `shape` (all axes but the
// last), with idx the multi-index of the row's first element (idx[rank-1] unused).
template <typename F>
void ForRows(const std::vector<int64_t>& shape, size_t rb, size_t re, F fn) {
  size_t rank = shape.size();
  std::vector<int64_t> idx(rank, 0);
  size_t r = rb;
  for (int64_t d = int64_t(rank) - 2; d >= 0; d--) {
    idx[d] = int64_t(r % size_t(shape[d]));
    r /= size_t(shape[d]);
  }
  for (size_t row = rb; row < re; row++) {
    fn(row, idx);
    for (int64_t d = int64_t(rank) - 2; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

// gemm(a, b, out, aIndex, bIndex, M, N, K, transA, transB): out[i] = op(a[aIndex[i]])·op(b[bIndex[i]])
// for each batch entry i (the indices count whole matrices; TypeScript resolves the broadcasting).
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  const float* a = F32(info[0]);
  const float* b = F32(info[1]);
  float* out = F32(info[2]);
  const auto aIndex = Ints(info[3]), bIndex = Ints(info[4]);
  const int64_t M = I(info, 5), N = I(info, 6), K = I(info, 7);
  const bool tA = B(info, 8), tB = B(info, 9);
  const int64_t batch = int64_t(aIndex.size()), countA = int64_t(Len(info[0])) / std::max<int64_t>(M * K, 1), countB = int64_t(Len(info[1])) / std::max<int64_t>(K * N, 1);
  bool ok = int64_t(bIndex.size()) == batch && int64_t(Len(info[2])) == batch * M * N;
  for (int64_t i = 0; ok && i < batch; i++) ok = aIndex[i] >= 0 && aIndex[i] < countA && bIndex[i] >= 0 && bIndex[i] < countB;
  if (!ok) {
    Napi::RangeError::New(info.Env(), "gemm: batch indices or output size out of range").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  auto one = [&](int64_t bi) {
    Sgemm(tA, tB, M, N, K, 1.0f, a + aIndex[bi] * M * K, tA ? M : K, b + bIndex[bi] * K * N, tB ? K : N, 0.0f, out + bi * M * N, N);
  };
  // Many small products (window attention): one thread each is best, so split the batch across
  // threads; large products are threaded inside the GEMM.
  if (batch >= 4 && M * N * K <= (int64_t(1) << 21)) {
    parallelFor(size_t(batch), 2, [&](size_t s, size_t e) {
      for (size_t bi = s; bi < e; bi++) one(int64_t(bi));
    });
  } else {
    for (int64_t bi = 0; bi < batch; bi++) one(bi);
  }
  return info.Env().Undefined();
}

// softmax(x, out, rows, cols) over the last axis.
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  const float* x = F32(info[0]);
  float* out = F32(info[1]);
  size_t rows = size_t(I(info, 2)), cols = size_t(I(info, 3));
  parallelFor(rows, std::max<size_t>(1, 16384 / std::max<size_t>(cols, 1)), [&](size_t b, size_t e) {
    for (size_t r = b; r < e; r++) {
      const float* xr = x + r * cols;
      float* o = out + r * cols;
      float m = -INFINITY;
      for (size_t c = 0; c < cols; c++) m = std::max(m, xr[c]);
      for (size_t c = 0; c < cols; c++) o[c] = ExpFast(xr[c] - m);
      double s = 0;
      for (size_t c = 0; c < cols; c++) s += o[c];
      float inv = float(1.0 / s);
      for (size_t c = 0; c < cols; c++) o[c] *= inv;
    }
  });
  return info.Env().Undefined();
}

template <typename F>
void Map1(const float* x, float* out, size_t n, F f) {
  parallelFor(n, 32768, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; i++) out[i] = f(x[i]);
  });
}

// The element-wise operations, by code; TypeScript reads the codes by name from the addon's
// `unaryOps` / `binaryOps` tables (one table, no numbers written twice).
enum UnaryOp : int { kErf, kExp, kTanh, kSquare, kRelu, kSigmoid, kRsqrt, kSqrt, kNeg, kGelu, kUnaryCount };
const char* const kUnaryNames[kUnaryCount] = {"erf", "exp", "tanh", "square", "relu", "sigmoid", "rsqrt", "sqrt", "neg", "gelu"};
enum BinaryOp : int { kAdd, kMul, kSub, kDiv, kBinaryCount };
const char* const kBinaryNames[kBinaryCount] = {"add", "mul", "sub", "div"};

Napi::Object OpTable(Napi::Env env, const char* const* names, int count) {
  Napi::Object table = Napi::Object::New(env);
  for (int i = 0; i < count; i++) table.Set(names[i], Napi::Number::New(env, i));
  return table;
}

// unary(op, x, out): out = op(x) for a UnaryOp code; an unknown code is a RangeError.
Napi::Value Unary(const Napi::CallbackInfo& info) {
  int op = int(I(info, 0));
  const float* x = F32(info[1]);
  float* out = F32(info[2]);
  size_t n = Len(info[1]);
  if (Len(info[2]) != n) {
    Napi::RangeError::New(info.Env(), "unary: out must have the input's length").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  switch (op) {
    case kErf: Map1(x, out, n, [](float v) { return std::erf(v); }); break;
    case kExp: Map1(x, out, n, [](float v) { return std::exp(v); }); break;
    case kTanh: Map1(x, out, n, [](float v) { return std::tanh(v); }); break;
    case kSquare: Map1(x, out, n, [](float v) { return v * v; }); break;
    case kRelu: Map1(x, out, n, [](float v) { return v > 0 ? v : 0.0f; }); break;
    case kSigmoid: Map1(x, out, n, [](float v) { return 1.0f / (1.0f + std::exp(-v)); }); break;
    case kRsqrt: Map1(x, out, n, [](float v) { return 1.0f / std::sqrt(v); }); break;
    case kSqrt: Map1(x, out, n, [](float v) { return std::sqrt(v); }); break;
    case kNeg: Map1(x, out, n, [](float v) { return -v; }); break;
    case kGelu: Map1(x, out, n, [](float v) { return Gelu(v); }); break;
    default: Napi::RangeError::New(info.Env(), "unary: unknown op code " + std::to_string(op)).ThrowAsJavaScriptException();
  }
  return info.Env().Undefined();
}

// reduceInner(x, out, outer, inner, mean): out[o] = sum_i x[o*inner + i] (double accumulation), / inner if mean.
Napi::Value ReduceInner(const Napi::CallbackInfo& info) {
  const float* x = F32(info[0]);
  float* out = F32(info[1]);
  size_t outer = size_t(I(info, 2)), inner = size_t(I(info, 3));
  bool mean = B(info, 4);
  parallelFor(outer, std::max<size_t>(1, 32768 / std::max<size_t>(inner, 1)), [&](size_t b, size_t e) {
    for (size_t o = b; o < e; o++) {
      double s = 0;
      const float* xr = x + o * inner;
      for (size_t i = 0; i < inner; i++) s += xr[i];
      out[o] = float(mean ? s / double(inner) : s);
    }
  });
  return info.Env().Undefined();
}

// reduceOuter(x, out, outer, inner, mean): out[c] = sum_r x[r*inner + c] (double accumulation), / outer if mean.
Napi::Value ReduceOuter(const Napi::CallbackInfo& info) {
  const float* x = F32(info[0]);
  float* out = F32(info[1]);
  size_t outer = size_t(I(info, 2)), inner = size_t(I(info, 3));
  bool mean = B(info, 4);
  parallelFor(inner, 256, [&](size_t b, size_t e) {
    std::vector<double> acc(e - b, 0.0);
    for (size_t r = 0; r < outer; r++) {
      const float* row = x + r * inner;
      for (size_t c = b; c < e; c++) acc[c - b] += row[c];
    }
    for (size_t c = b; c < e; c++) out[c] = float(mean ? acc[c - b] / double(outer) : acc[c - b]);
  });
  return info.Env().Undefined();
}

// gather(x, ids, out, outer, count, inner): GatherV2 along one axis as row copies — x [outer, count,
// inner], out [outer, ids.length, inner] with out[o, i] = x[o, ids[i]] (ids checked by the caller).
Napi::Value Gather(const Napi::CallbackInfo& info) {
  const float* x = F32(info[0]);
  const auto ids = info[1].As<Napi::Int32Array>();
  float* out = F32(info[2]);
  const size_t outer = size_t(I(info, 3)), count = size_t(I(info, 4)), inner = size_t(I(info, 5)), n = ids.ElementLength();
  const int32_t* id = ids.Data();
  parallelFor(outer * n, std::max<size_t>(1, 16384 / std::max<size_t>(1, inner)), [&](size_t b, size_t e) {
    for (size_t r = b; r < e; r++)
      std::memcpy(out + r * inner, x + ((r / n) * count + size_t(id[r % n])) * inner, sizeof(float) * inner);
  });
  return info.Env().Undefined();
}

// transpose(x, out, shape, perm): out = x.permute(perm), any rank.
Napi::Value Transpose(const Napi::CallbackInfo& info) {
  const float* x = F32(info[0]);
  float* out = F32(info[1]);
  auto shape = Ints(info[2]);
  auto perm = Ints(info[3]);
  size_t rank = shape.size();
  std::vector<int64_t> inStride(rank, 1), outShape(rank), srcStride(rank);
  for (int64_t d = int64_t(rank) - 2; d >= 0; d--) inStride[d] = inStride[d + 1] * shape[d + 1];
  for (size_t d = 0; d < rank; d++) {
    outShape[d] = shape[perm[d]];
    srcStride[d] = inStride[perm[d]];
  }
  size_t n = 1;
  for (auto s : shape) n *= size_t(s);
  if (n == 0) return info.Env().Undefined();
  size_t last = size_t(outShape[rank - 1]);
  size_t rowsTotal = n / last;
  int64_t step = srcStride[rank - 1];
  parallelFor(rowsTotal, std::max<size_t>(1, 16384 / last), [&](size_t b, size_t e) {
    ForRows(outShape, b, e, [&](size_t row, const std::vector<int64_t>& idx) {
      int64_t base = 0;
      for (size_t d = 0; d + 1 < rank; d++) base += idx[d] * srcStride[d];
      float* o = out + row * last;
      for (size_t j = 0; j < last; j++) o[j] = x[base + int64_t(j) * step];
    });
  });
  return info.Env().Undefined();
}

// binary(op, a, b, out, outShape, aStrides, bStrides): broadcasting add, mul, sub or div (a BinaryOp code).
Napi::Value Binary(const Napi::CallbackInfo& info) {
  int op = int(I(info, 0));
  if (op < 0 || op >= kBinaryCount) {
    Napi::RangeError::New(info.Env(), "binary: unknown op code " + std::to_string(op)).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  const float* a = F32(info[1]);
  const float* b = F32(info[2]);
  float* out = F32(info[3]);
  auto shape = Ints(info[4]);
  auto as = Ints(info[5]);
  auto bs = Ints(info[6]);
  size_t rank = shape.size();
  size_t n = Len(info[3]);
  if (n == 0) return info.Env().Undefined();
  size_t last = rank ? size_t(shape[rank - 1]) : 1;
  int64_t al = rank ? as[rank - 1] : 0, bl = rank ? bs[rank - 1] : 0;
  auto kernel = [op](const float* x, int64_t xs, const float* y, int64_t ys, float* o, size_t m) {
    if (xs == 1 && ys == 1) {
      switch (op) {
        case kAdd: for (size_t j = 0; j < m; j++) o[j] = x[j] + y[j]; break;
        case kMul: for (size_t j = 0; j < m; j++) o[j] = x[j] * y[j]; break;
        case kSub: for (size_t j = 0; j < m; j++) o[j] = x[j] - y[j]; break;
        default: for (size_t j = 0; j < m; j++) o[j] = x[j] / y[j]; break;  // kDiv (checked above)
      }
      return;
    }
    if (xs == 1 && ys == 0) {
      const float v = y[0];
      switch (op) {
        case kAdd: for (size_t j = 0; j < m; j++) o[j] = x[j] + v; break;
        case kMul: for (size_t j = 0; j < m; j++) o[j] = x[j] * v; break;
        case kSub: for (size_t j = 0; j < m; j++) o[j] = x[j] - v; break;
        default: for (size_t j = 0; j < m; j++) o[j] = x[j] / v; break;  // kDiv
      }
      return;
    }
    for (size_t j = 0; j < m; j++) {
      float u = x[int64_t(j) * xs], v = y[int64_t(j) * ys];
      o[j] = op == kAdd ? u + v : op == kMul ? u * v : op == kSub ? u - v : u / v;
    }
  };
  parallelFor(n / last, std::max<size_t>(1, 32768 / last), [&](size_t rb, size_t re) {
    ForRows(shape, rb, re, [&](size_t row, const std::vector<int64_t>& idx) {
      int64_t ao = 0, bo = 0;
      for (size_t d = 0; d + 1 < rank; d++) {
        ao += idx[d] * as[d];
        bo += idx[d] * bs[d];
      }
      kernel(a + ao, al, b + bo, bl, out + row * last, last);
    });
  });
  return info.Env().Undefined();
}

// slice(x, out, shape, begin, size): out = x[begin : begin + size] along every axis (row-wise memcpy).
Napi::Value Slice(const Napi::CallbackInfo& info) {
  const float* x = F32(info[0]);
  float* out = F32(info[1]);
  auto shape = Ints(info[2]);
  auto begin = Ints(info[3]);
  auto size = Ints(info[4]);
  size_t rank = shape.size();
  size_t n = Len(info[1]);
  if (n == 0) return info.Env().Undefined();
  std::vector<int64_t> stride(rank, 1);
  for (int64_t d = int64_t(rank) - 2; d >= 0; d--) stride[d] = stride[d + 1] * shape[d + 1];
  size_t last = size_t(size[rank - 1]);
  parallelFor(n / last, std::max<size_t>(1, 65536 / last), [&](size_t rb, size_t re) {
    ForRows(size, rb, re, [&](size_t row, const std::vector<int64_t>& idx) {
      int64_t src = begin[rank - 1];
      for (size_t d = 0; d + 1 < rank; d++) src += (idx[d] + begin[d]) * stride[d];
      std::memcpy(out + row * last, x + src, sizeof(float) * last);
    });
  });
  return info.Env().Undefined();
}

struct ConvGeom {
  int64_t N, H, W, C, KH, KW, CO, SH, SW, PT, PL, OH, OW;
};

ConvGeom Geom(const Napi::CallbackInfo& info, size_t at) {
  auto g = Ints(info[at]);
  return {g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12]};
}

// im2col for one image: cols[(oy*OW+ox), (ky*KW+kx)*C + c] (zeros outside the image).
void Im2col(const float* x, float* cols, const ConvGeom& g) {
  int64_t K = g.KH * g.KW * g.C;
  parallelFor(size_t(g.OH), 1, [&](size_t b, size_t e) {
    for (int64_t oy = int64_t(b); oy < int64_t(e); oy++)
      for (int64_t ox = 0; ox < g.OW; ox++) {
        float* row = cols + (oy * g.OW + ox) * K;
        for (int64_t ky = 0; ky < g.KH; ky++) {
          int64_t iy = oy * g.SH - g.PT + ky;
          for (int64_t kx = 0; kx < g.KW; kx++) {
            int64_t ix = ox * g.SW - g.PL + kx;
            float* dst = row + (ky * g.KW + kx) * g.C;
            if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) std::memset(dst, 0, sizeof(float) * size_t(g.C));
            else std::memcpy(dst, x + (iy * g.W + ix) * g.C, sizeof(float) * size_t(g.C));
          }
        }
      }
  });
}

// conv2d(x NHWC, w [KH,KW,C,CO], out NHWC, geom)
Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  const float* x = F32(info[0]);
  const float* w = F32(info[1]);
  float* out = F32(info[2]);
  ConvGeom g = Geom(info, 3);
  int64_t K = g.KH * g.KW * g.C, P = g.OH * g.OW;
  std::vector<float> cols(size_t(P * K));
  for (int64_t n = 0; n < g.N; n++) {
    Im2col(x + n * g.H * g.W * g.C, cols.data(), g);
    Sgemm(false, false, P, g.CO, K, 1.0f, cols.data(), K, w, g.CO, 0.0f, out + n * P * g.CO, g.CO);
  }
  return info.Env().Undefined();
}

// conv2dFilterGrad(x NHWC, dy NHWC, dw [KH,KW,C,CO], geom): dw = sum_n im2col(x_n)^T dy_n
Napi::Value Conv2dFilterGrad(const Napi::CallbackInfo& info) {
  const float* x = F32(info[0]);
  const float* dy = F32(info[1]);
  float* dw = F32(info[2]);
  ConvGeom g = Geom(info, 3);
  int64_t K = g.KH * g.KW * g.C, P = g.OH * g.OW;
  std::vector<float> cols(size_t(P * K));
  for (int64_t n = 0; n < g.N; n++) {
    Im2col(x + n * g.H * g.W * g.C, cols.data(), g);
    Sgemm(true, false, K, g.CO, P, 1.0f, cols.data(), K, dy + n * P * g.CO, g.CO, n == 0 ? 0.0f : 1.0f, dw, g.CO);
  }
  return info.Env().Undefined();
}

// conv2dInputGrad(dy NHWC, w [KH,KW,C,CO], dx NHWC, geom): dx = col2im(dy w^T)
Napi::Value Conv2dInputGrad(const Napi::CallbackInfo& info) {
  const float* dy = F32(info[0]);
  const float* w = F32(info[1]);
  float* dx = F32(info[2]);
  ConvGeom g = Geom(info, 3);
  int64_t K = g.KH * g.KW * g.C, P = g.OH * g.OW;
  std::vector<float> cols(size_t(P * K));
  std::fill(dx, dx + g.N * g.H * g.W * g.C, 0.0f);
  for (int64_t n = 0; n < g.N; n++) {
    Sgemm(false, true, P, K, g.CO, 1.0f, dy + n * P * g.CO, g.CO, w, g.CO, 0.0f, cols.data(), K);
    float* img = dx + n * g.H * g.W * g.C;
    for (int64_t oy = 0; oy < g.OH; oy++)
      for (int64_t ox = 0; ox < g.OW; ox++) {
        const float* row = cols.data() + (oy * g.OW + ox) * K;
        for (int64_t ky = 0; ky < g.KH; ky++) {
          int64_t iy = oy * g.SH - g.PT + ky;
          if (iy < 0 || iy >= g.H) continue;
          for (int64_t kx = 0; kx < g.KW; kx++) {
            int64_t ix = ox * g.SW - g.PL + kx;
            if (ix < 0 || ix >= g.W) continue;
            float* dst = img + (iy * g.W + ix) * g.C;
            const float* src = row + (ky * g.KW + kx) * g.C;
            for (int64_t c = 0; c < g.C; c++) dst[c] += src[c];
          }
        }
      }
  }
  return info.Env().Undefined();
}

// geluGrad(x, dy, out): out = dy · (Φ(x) + x·φ(x)), the derivative of the erf GELU x·Φ(x).
Napi::Value GeluGrad(const Napi::CallbackInfo& info) {
  const float* x = F32(info[0]);
  const float* dy = F32(info[1]);
  float* out = F32(info[2]);
  size_t n = Len(info[0]);
  parallelFor(n, 32768, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; i++) {
      float cdf, pdf;
      NormalCdfPdf(x[i], cdf, pdf);
      out[i] = dy[i] * (cdf + x[i] * pdf);
    }
  });
  return info.Env().Undefined();
}

// tuneAllocator(mmapThreshold, trimThreshold): glibc malloc serves blocks below mmapThreshold from
// its heap and keeps up to trimThreshold bytes of freed heap for reuse, so the large tensors a
// training step allocates and frees reuse resident pages instead of faulting in fresh zeroed ones
// each time. Returns false where the C library is not glibc.
Napi::Value TuneAllocator(const Napi::CallbackInfo& info) {
#ifdef __GLIBC__
  bool ok = mallopt(M_MMAP_THRESHOLD, int(I(info, 0))) == 1 && mallopt(M_TRIM_THRESHOLD, int(I(info, 1))) == 1;
  return Napi::Boolean::New(info.Env(), ok);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

// pumpEvents(): runs one non-blocking turn of Node's event loop and returns. The webgpu backend's
// synchronous reads call it until Dawn (which completes GPU work from setImmediate callbacks) has
// mapped their staging buffer: WebGPU itself has no synchronous read.
Napi::Value PumpEvents(const Napi::CallbackInfo& info) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(info.Env(), &loop) != napi_ok || !loop) return Napi::Boolean::New(info.Env(), false);
  uv_run(loop, UV_RUN_NOWAIT);
  return Napi::Boolean::New(info.Env(), true);
}

// muteStderr(): points file descriptor 2 at /dev/null and returns a duplicate of the old one (-1
// where that cannot be done); restoreStderr(fd) puts it back. For C/C++ libraries that print start-up
// warnings to stderr (Dawn on Mesa's lavapipe) while SkySense reports the backend itself.
Napi::Value MuteStderr(const Napi::CallbackInfo& info) {
#ifdef _WIN32
  return Napi::Number::New(info.Env(), -1);
#else
  fflush(stderr);
  int saved = dup(2);
  int devnull = open("/dev/null", O_WRONLY);
  if (saved < 0 || devnull < 0 || dup2(devnull, 2) < 0) {
    if (saved >= 0) close(saved);
    saved = -1;
  }
  if (devnull >= 0) close(devnull);
  return Napi::Number::New(info.Env(), saved);
#endif
}

Napi::Value RestoreStderr(const Napi::CallbackInfo& info) {
#ifndef _WIN32
  int saved = info[0].As<Napi::Number>().Int32Value();
  if (saved >= 0) {
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
  }
#endif
  return info.Env().Undefined();
}

// gemmName(): the GEMM in use, e.g. "built-in GEMM (avx512, 8x32)" or "OpenBLAS 0.3.21".
Napi::Value GemmNameJs(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), GemmName()); }

// setGemm(name): "auto", "openblas", "avx512", "avx2" or "baseline"; false if this CPU or build cannot.
Napi::Value SetGemmJs(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), SetGemmKernel(info[0].As<Napi::String>().Utf8Value().c_str()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("gemm", Napi::Function::New(env, Gemm));
  exports.Set("softmax", Napi::Function::New(env, Softmax));
  exports.Set("unary", Napi::Function::New(env, Unary));
  exports.Set("geluGrad", Napi::Function::New(env, GeluGrad));
  exports.Set("reduceInner", Napi::Function::New(env, ReduceInner));
  exports.Set("reduceOuter", Napi::Function::New(env, ReduceOuter));
  exports.Set("transpose", Napi::Function::New(env, Transpose));
  exports.Set("gather", Napi::Function::New(env, Gather));
  exports.Set("binary", Napi::Function::New(env, Binary));
  exports.Set("slice", Napi::Function::New(env, Slice));
  exports.Set("conv2d", Napi::Function::New(env, Conv2d));
  exports.Set("conv2dFilterGrad", Napi::Function::New(env, Conv2dFilterGrad));
  exports.Set("conv2dInputGrad", Napi::Function::New(env, Conv2dInputGrad));
  exports.Set("tuneAllocator", Napi::Function::New(env, TuneAllocator));
  exports.Set("pumpEvents", Napi::Function::New(env, PumpEvents));
  exports.Set("muteStderr", Napi::Function::New(env, MuteStderr));
  exports.Set("restoreStderr", Napi::Function::New(env, RestoreStderr));
  RegisterFused(env, exports);
  exports.Set("unaryOps", OpTable(env, kUnaryNames, kUnaryCount));
  exports.Set("binaryOps", OpTable(env, kBinaryNames, kBinaryCount));
  exports.Set("gemmName", Napi::Function::New(env, GemmNameJs));
  exports.Set("setGemm", Napi::Function::New(env, SetGemmJs));
  exports.Set("threads", Napi::Number::New(env, threadCount()));
  exports.Set("kernelRevision", Napi::Number::New(env, 3));  // bumped when a kernel's arguments change
  return exports;
}

}  // namespace

NODE_API_MODULE(skysense_native, Init)
