// Helpers shared by the native kernel files: threading and N-API argument access.
#pragma once
#include <napi.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <mutex>
#include <vector>

namespace skysense {

// The number of threads kernels use: SKYSENSE_THREADS when set (>= 1), else the hardware's (at most 16).
unsigned threadCount();

// Runs task(ctx, t) for t in [0, tasks) on the persistent thread pool, the calling thread taking
// part; returns when all are done. Calls made from inside a task (a GEMM inside a window-attention
// task, say) run inline on that thread.
void RunParallel(size_t tasks, void (*task)(void* ctx, size_t t), void* ctx);

// Runs fn(begin, end) over [0, n) split into at most threadCount() equal chunks of at least
// minPerThread items on the pool; small jobs run inline.
template <typename F>
void parallelFor(size_t n, size_t minPerThread, F fn) {
  size_t t = threadCount();
  if (t <= 1 || n < 2 * minPerThread) {
    fn(size_t(0), n);
    return;
  }
  t = std::min(t, n / std::max<size_t>(minPerThread, 1));
  struct Job {
    F* fn;
    size_t n, chunk;
  } job{&fn, n, (n + t - 1) / t};
  RunParallel(
      t,
      [](void* ctx, size_t i) {
        auto* j = static_cast<Job*>(ctx);
        size_t b = i * j->chunk, e = std::min(j->n, b + j->chunk);
        if (b < e) (*j->fn)(b, e);
      },
      &job);
}

inline float* F32(const Napi::Value& v) { return v.As<Napi::Float32Array>().Data(); }
inline size_t Len(const Napi::Value& v) { return v.As<Napi::Float32Array>().ElementLength(); }
inline int64_t I(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int64Value(); }
inline bool B(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Boolean>().Value(); }
inline std::vector<int64_t> Ints(const Napi::Value& v) {
  auto a = v.As<Napi::Int32Array>();
  return std::vector<int64_t>(a.Data(), a.Data() + a.ElementLength());
}

// exp in float: Cody–Waite range reduction and Cephes' degree-6 polynomial, relative error
// <= 1e-7 (about one ulp); branch-free, so loops over it vectorise (no libm call per element).
inline float ExpFast(float x) {
  const float xc = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -87.0f ? 0.0f : y * scale;
}

// The standard normal CDF Φ(x) and density φ(x) from one exp: Φ(−|x|) = erfc(|x|/√2)/2 by
// Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7; no cancellation in the lower tail). x·Φ(x) is
// within 4.1e-7 and Φ(x) + x·φ(x) within 2.4e-7 of the exact values on [−12, 12].
inline void NormalCdfPdf(float x, float& cdf, float& pdf) {
  const float a = std::fabs(x) * 0.70710678118654752f;
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  const float e = ExpFast(-a * a);
  const float tail = 0.5f * poly * e;
  cdf = x >= 0 ? 1.0f - tail : tail;
  pdf = 0.398942280401432678f * e;
}

// The exact GELU x·Φ(x).
inline float Gelu(float x) {
  float cdf, pdf;
  NormalCdfPdf(x, cdf, pdf);
  return x * cdf;
}

// Per-thread partial sums (double) of a `size`-long accumulator, merged into `out` under a lock.
class SharedSum {
 public:
  explicit SharedSum(size_t size) : total_(size, 0.0) {}
  void Merge(const std::vector<double>& part) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < part.size(); i++) total_[i] += part[i];
  }
  void WriteTo(float* out) const {
    for (size_t i = 0; i < total_.size(); i++) out[i] = float(total_[i]);
  }

 private:
  std::vector<double> total_;
  std::mutex mutex_;
};

// Registers the fused layer kernels (fused.cc) on the addon's exports.
void RegisterFused(Napi::Env env, Napi::Object exports);

}  // namespace skysense
