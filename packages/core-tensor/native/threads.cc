// The persistent thread pool behind parallelFor and the built-in GEMM: threadCount() − 1 workers
// started on first use and kept for the life of the process (never destroyed, so exit does not
// wait for them). Workers spin briefly for the next job, then sleep on a condition variable.
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include "common.h"

namespace skysense {
namespace {

thread_local int insideTask = 0;  // > 0 while this thread runs a pool task: nested calls run inline

// A job is published under the mutex; a worker joins it under the same mutex (recording the
// generation it joined and counting itself active), so the fields of a job never change while a
// worker is inside it: the next job starts only when the previous one has no active worker.
class Pool {
 public:
  explicit Pool(unsigned workers) {
    for (unsigned i = 0; i < workers; i++) std::thread([this] { Work(); }).detach();
  }

  // Runs the job if the pool is free; returns false (nothing run) when another thread holds it.
  bool TryRun(size_t tasks, void (*task)(void*, size_t), void* ctx) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      idle_.wait(lock, [&] { return active_ == 0; });  // a late worker may still be leaving the last job
      task_ = task;
      ctx_ = ctx;
      tasks_ = tasks;
      done_.store(0);
      next_.store(0);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    Drain();
    for (int spin = 0; done_.load(std::memory_order_acquire) < tasks; spin++) {
      if (spin < kSpin) continue;
      std::unique_lock<std::mutex> lock(mutex_);
      idle_.wait(lock, [&] { return done_.load() >= tasks; });
    }
    return true;
  }

 private:
  static constexpr int kSpin = 20000;  // polls (tens of microseconds) before sleeping

  void Drain() {
    insideTask++;
    size_t ran = 0;
    for (size_t t; (t = next_.fetch_add(1)) < tasks_;) {
      task_(ctx_, t);
      ran++;
    }
    insideTask--;
    if (ran) done_.fetch_add(ran);
  }

  void Work() {
    uint64_t seen = 0;
    for (;;) {
      for (int spin = 0; spin < kSpin && generation_.load(std::memory_order_acquire) == seen; spin++) {
      }
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load() != seen; });
        seen = generation_.load();
        active_++;
      }
      Drain();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        active_--;
      }
      idle_.notify_all();
    }
  }

  std::mutex busy_, mutex_;
  std::condition_variable wake_, idle_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<size_t> next_{0}, done_{0};
  unsigned active_ = 0;  // workers inside a job; guarded by mutex_
  void (*task_)(void*, size_t) = nullptr;
  void* ctx_ = nullptr;
  size_t tasks_ = 0;
};

}  // namespace

unsigned threadCount() {
  static const unsigned n = [] {
    const char* env = std::getenv("SKYSENSE_THREADS");
    long v = env ? std::strtol(env, nullptr, 10) : 0;
    if (v >= 1) return unsigned(std::min(v, 256L));
    unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1u : std::min(hw, 16u);
  }();
  return n;
}

void RunParallel(size_t tasks, void (*task)(void*, size_t), void* ctx) {
  static Pool* pool = threadCount() > 1 ? new Pool(threadCount() - 1) : nullptr;  // never freed: see above
  if (tasks > 1 && pool && insideTask == 0 && pool->TryRun(tasks, task, ctx)) return;
  insideTask++;
  for (size_t t = 0; t < tasks; t++) task(ctx, t);
  insideTask--;
}

}  // namespace skysense
