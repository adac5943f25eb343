// Helpers shared by the native kernel files: threading and N-API argument access.
#pragma once
#include <napi.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <mutex>
#include <vector>
#include "fastmath.h"

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
