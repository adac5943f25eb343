// Fused layer kernels, forward and backward: LayerNorm, a linear layer with its bias, and Swin V2's
// cosine window attention. Each replaces a chain of tfjs kernels and the tensors between them;
// sums are accumulated in double. Shapes are validated on the TypeScript side.
#include "gemm.h"
#include <cmath>
#include <cstring>
#include "common.h"

namespace skysense {
namespace {

double D(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().DoubleValue(); }

// layerNorm(x, w, b, y, mean, rstd, rows, cols, eps): per row y = (x − mean)·rstd·w + b with the
// biased variance; w and b empty = no affine. mean and rstd are kept for the backward pass.
Napi::Value LayerNormForward(const Napi::CallbackInfo& info) {
  const float* x = F32(info[0]);
  const bool affine = Len(info[1]) > 0;
  const float* w = F32(info[1]);
  const float* bias = F32(info[2]);
  float* y = F32(info[3]);
  float* mean = F32(info[4]);
  float* rstd = F32(info[5]);
  const size_t rows = size_t(I(info, 6)), cols = size_t(I(info, 7));
  const double eps = D(info, 8);
  parallelFor(rows, std::max<size_t>(1, 8192 / cols), [&](size_t rb, size_t re) {
    for (size_t r = rb; r < re; r++) {
      const float* xr = x + r * cols;
      const double m = SumD(cols, [&](size_t c) { return double(xr[c]); }) / double(cols);
      const double v = SumD(cols, [&](size_t c) { return (xr[c] - m) * (xr[c] - m); });
      const float mf = float(m), rf = float(1.0 / std::sqrt(v / double(cols) + eps));
      mean[r] = mf;
      rstd[r] = rf;
      float* yr = y + r * cols;
      if (affine) {
        for (size_t c = 0; c < cols; c++) yr[c] = (xr[c] - mf) * rf * w[c] + bias[c];
      } else {
        for (size_t c = 0; c < cols; c++) yr[c] = (xr[c] - mf) * rf;
      }
    }
  });
  return info.Env().Undefined();
}

// layerNormBackward(x, w, dy, mean, rstd, dx, dw, db, rows, cols): with x̂ = (x − mean)·rstd and
// g = dy·w, dx = rstd·(g − mean(g) − x̂·mean(g·x̂)); dw = Σ dy·x̂, db = Σ dy (empty without affine).
Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  const float* x = F32(info[0]);
  const bool affine = Len(info[1]) > 0;
  const float* w = F32(info[1]);
  const float* dy = F32(info[2]);
  const float* mean = F32(info[3]);
  const float* rstd = F32(info[4]);
  float* dx = F32(info[5]);
  const size_t rows = size_t(I(info, 8)), cols = size_t(I(info, 9));
  SharedSum dw(affine ? cols : 0), db(affine ? cols : 0);
  parallelFor(rows, std::max<size_t>(1, 8192 / cols), [&](size_t rb, size_t re) {
    std::vector<double> pw(affine ? cols : 0, 0.0), pb(affine ? cols : 0, 0.0);
    std::vector<float> xhat(cols), g(cols);
    for (size_t r = rb; r < re; r++) {
      const float* xr = x + r * cols;
      const float* dyr = dy + r * cols;
      for (size_t c = 0; c < cols; c++) {
        xhat[c] = (xr[c] - mean[r]) * rstd[r];
        g[c] = affine ? dyr[c] * w[c] : dyr[c];
      }
      const double sg = SumD(cols, [&](size_t c) { return double(g[c]); });
      const double sgx = SumD(cols, [&](size_t c) { return double(g[c]) * xhat[c]; });
      const float mg = float(sg / double(cols)), mgx = float(sgx / double(cols));
      float* dxr = dx + r * cols;
      for (size_t c = 0; c < cols; c++) dxr[c] = rstd[r] * (g[c] - mg - xhat[c] * mgx);
      if (affine) {
        for (size_t c = 0; c < cols; c++) {
          pw[c] += double(dyr[c]) * xhat[c];
          pb[c] += dyr[c];
        }
      }
    }
    if (affine) {
      dw.Merge(pw);
      db.Merge(pb);
    }
  });
  if (affine) {
    dw.WriteTo(F32(info[6]));
    db.WriteTo(F32(info[7]));
  }
  return info.Env().Undefined();
}

// linear(x, w, b, out, rows, outF, inF, act): out = act(x·wᵀ + b) (x [rows, inF], w [outF, inF],
// b [outF]; act 0 = none, 1 = the exact GELU), by LinearGemm.
Napi::Value LinearForward(const Napi::CallbackInfo& info) {
  const float* x = F32(info[0]);
  const float* w = F32(info[1]);
  const float* b = F32(info[2]);
  float* out = F32(info[3]);
  const int64_t rows = I(info, 4), outF = I(info, 5), inF = I(info, 6);
  LinearGemm(x, w, b, out, rows, outF, inF, I(info, 7) == 1);
  return info.Env().Undefined();
}

// The gradient through the kernel's normalizeRows: dx = (dx̂ − x̂·(x̂·dx̂)) / norm (dx̂ / norm where Σx² < eps²).
void NormalizeRowsBackward(const float* xhat, const float* dxhat, const double* sumSq, const float* norm, size_t n, size_t d, float* dx, size_t ld) {
  for (size_t i = 0; i < n; i++) {
    const float* xr = xhat + i * d;
    const float* gr = dxhat + i * d;
    const double dot = sumSq[i] >= kNormEps2 ? SumD(d, [&](size_t j) { return double(xr[j]) * gr[j]; }) : 0.0;
    const float dotf = float(dot);
    for (size_t j = 0; j < d; j++) dx[i * ld + j] = (gr[j] - xr[j] * dotf) / norm[i];
  }
}

struct AttnGeom {
  size_t B, N, H, D, nW;
  size_t C() const { return H * D; }
};

AttnGeom Geometry(const Napi::CallbackInfo& info, size_t at) {
  return {size_t(I(info, at)), size_t(I(info, at + 1)), size_t(I(info, at + 2)), size_t(I(info, at + 3)), size_t(I(info, at + 4))};
}

// One (window, head) pair's normalised q and k and their cosine similarities S = q̂·k̂ᵀ.
struct HeadState {
  std::vector<float> qn, kn, nq, nk, s;
  std::vector<double> sq, sk;
  explicit HeadState(const AttnGeom& g) : qn(g.N * g.D), kn(g.N * g.D), nq(g.N), nk(g.N), s(g.N * g.N), sq(g.N), sk(g.N) {}
  // S = q̂·k̂ᵀ, or q·kᵀ (the rows as they are) when not `normalize`.
  void Load(const float* qkv, const AttnGeom& g, size_t b, size_t h, bool normalize = true) {
    const size_t C = g.C(), ld = 3 * C;
    const float* base = qkv + b * g.N * ld + h * g.D;
    if (!normalize) {
      Sgemm(false, true, g.N, g.N, g.D, 1.0f, base, ld, base + C, ld, 0.0f, s.data(), g.N);
      return;
    }
    const GemmKernel& kern = BuiltinKernel();
    kern.normalizeRows(base, ld, g.N, g.D, qn.data(), sq.data(), nq.data());
    kern.normalizeRows(base + C, ld, g.N, g.D, kn.data(), sk.data(), nk.data());
    Sgemm(false, true, g.N, g.N, g.D, 1.0f, qn.data(), g.D, kn.data(), g.D, 0.0f, s.data(), g.N);
  }
};

// cosineAttention(qkv, scale, bias, mask, out, probs, B, N, H, D, nW, normalize): Swin V2's window
// attention after the qkv projection. qkv [B, N, 3C] (q | k | v, head h at columns h·D…), scale [H]
// (the clamped exp of logit_scale), bias [H, N, N] (the position bias) or empty, mask [nW, N, N] or
// empty (window b uses mask b mod nW). P = softmax(scale·q̂k̂ᵀ + bias + mask) is written to probs
// [B, H, N, N] for the backward pass; out [B, N, C] = P·v with the heads side by side. With
// `normalize` false, q and k are not normalised: scaled dot-product attention (scale 1/√D).
Napi::Value CosineAttention(const Napi::CallbackInfo& info) {
  const float* qkv = F32(info[0]);
  const float* scale = F32(info[1]);
  const float* bias = F32(info[2]);
  const bool masked = Len(info[3]) > 0;
  const float* mask = F32(info[3]);
  float* out = F32(info[4]);
  float* probs = F32(info[5]);
  const AttnGeom g = Geometry(info, 6);
  const bool normalize = B(info, 11), biased = Len(info[2]) > 0;
  const size_t N = g.N, C = g.C(), NN = N * N;
  parallelFor(g.B * g.H, 1, [&](size_t tb, size_t te) {
    HeadState st(g);
    for (size_t t = tb; t < te; t++) {
      const size_t b = t / g.H, h = t % g.H;
      st.Load(qkv, g, b, h, normalize);
      float* P = probs + t * NN;
      const float* bh = biased ? bias + h * NN : nullptr;
      const float* mw = masked ? mask + (b % g.nW) * NN : nullptr;
      const GemmKernel& kern = BuiltinKernel();
      for (size_t i = 0; i < N; i++)
        kern.softmaxRow(st.s.data() + i * N, scale[h], bh ? bh + i * N : nullptr, mw ? mw + i * N : nullptr, P + i * N, int64_t(N));
      Sgemm(false, false, N, g.D, N, 1.0f, P, N, qkv + b * N * 3 * C + 2 * C + h * g.D, 3 * C, 0.0f,
                  out + b * N * C + h * g.D, C);
    }
  });
  return info.Env().Undefined();
}

// cosineAttentionBackward(qkv, scale, probs, dout, dqkv, dscale, dbias, B, N, H, D, nW): the
// gradients of CosineAttention's output with respect to qkv [B, N, 3C], scale [H] and bias [H, N, N].
Napi::Value CosineAttentionBackward(const Napi::CallbackInfo& info) {
  const float* qkv = F32(info[0]);
  const float* scale = F32(info[1]);
  const float* probs = F32(info[2]);
  const float* dout = F32(info[3]);
  float* dqkv = F32(info[4]);
  const AttnGeom g = Geometry(info, 7);
  const size_t N = g.N, D = g.D, C = g.C(), NN = N * N, ld = 3 * C;
  SharedSum dscale(g.H), dbias(g.H * NN);
  parallelFor(g.B * g.H, 1, [&](size_t tb, size_t te) {
    HeadState st(g);
    std::vector<float> dl(NN), dqn(N * D), dkn(N * D);
    std::vector<double> ps(g.H, 0.0), pb(g.H * NN, 0.0);
    for (size_t t = tb; t < te; t++) {
      const size_t b = t / g.H, h = t % g.H;
      st.Load(qkv, g, b, h);
      const float* P = probs + t * NN;
      const float* dO = dout + b * N * C + h * D;
      const float* v = qkv + b * N * ld + 2 * C + h * D;
      float* dq = dqkv + b * N * ld + h * D;
      // dP = dO·vᵀ (into dl), dv = Pᵀ·dO
      Sgemm(false, true, N, N, D, 1.0f, dO, C, v, ld, 0.0f, dl.data(), N);
      Sgemm(true, false, N, D, N, 1.0f, P, N, dO, C, 0.0f, dq + 2 * C, ld);
      // softmax backward: dL = P ⊙ (dP − Σⱼ dP·P); dbias += dL, dscale += Σ dL ⊙ S; dS = scale·dL
      for (size_t i = 0; i < N; i++) {
        const float dotf = float(SumD(N, [&](size_t j) { return double(dl[i * N + j]) * P[i * N + j]; }));
        double sumScale = 0;
        for (size_t j = 0; j < N; j++) {
          const size_t ij = i * N + j;
          const float d = P[ij] * (dl[ij] - dotf);
          pb[h * NN + ij] += d;
          sumScale += double(d) * st.s[ij];
          dl[ij] = d * scale[h];
        }
        ps[h] += sumScale;
      }
      // dq̂ = dS·k̂, dk̂ = dSᵀ·q̂, then through the normalisation
      Sgemm(false, false, N, D, N, 1.0f, dl.data(), N, st.kn.data(), D, 0.0f, dqn.data(), D);
      Sgemm(true, false, N, D, N, 1.0f, dl.data(), N, st.qn.data(), D, 0.0f, dkn.data(), D);
      NormalizeRowsBackward(st.qn.data(), dqn.data(), st.sq.data(), st.nq.data(), N, D, dq, ld);
      NormalizeRowsBackward(st.kn.data(), dkn.data(), st.sk.data(), st.nk.data(), N, D, dq + C, ld);
    }
    dscale.Merge(ps);
    dbias.Merge(pb);
  });
  dscale.WriteTo(F32(info[5]));
  dbias.WriteTo(F32(info[6]));
  return info.Env().Undefined();
}

}  // namespace

void RegisterFused(Napi::Env env, Napi::Object exports) {
  exports.Set("layerNorm", Napi::Function::New(env, LayerNormForward));
  exports.Set("layerNormBackward", Napi::Function::New(env, LayerNormBackward));
  exports.Set("linear", Napi::Function::New(env, LinearForward));
  exports.Set("cosineAttention", Napi::Function::New(env, CosineAttention));
  exports.Set("cosineAttentionBackward", Napi::Function::New(env, CosineAttentionBackward));
}

}  // namespace skysense
