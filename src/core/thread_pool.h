// A small persistent thread pool for data-parallel loops: the caller plus n_threads-1 workers
// run the contiguous pieces of one range, then the caller returns. Workers spin briefly after
// each job (back-to-back ops are the common case) and then sleep on a condition variable.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace mamba2 {

class ThreadPool {
 public:
  // n_threads <= 0: std::thread::hardware_concurrency(). The caller counts as one thread.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int n_threads() const { return n_threads_; }

  // Splits [0, n) into k = min(n_threads, ceil(n / min_chunk)) contiguous pieces of nearly equal
  // size and calls fn(begin, end) once per piece, in parallel; returns when all are done.
  // k == 1 (and calls from inside a running job) run inline on the calling thread.
  // fn must not throw. No allocation per call.
  template <typename F>
  void ParallelFor(int64_t n, F&& fn, int64_t min_chunk = 1) {
    if (n <= 0) return;
    if (min_chunk < 1) min_chunk = 1;
    int64_t k = (n + min_chunk - 1) / min_chunk;
    if (k > n_threads_) k = n_threads_;
    if (k <= 1 || InJob()) {
      fn(int64_t(0), n);
      return;
    }
    using Fn = std::remove_reference_t<F>;
    struct Ctx {
      Fn* fn;
      int64_t n, k;
    } ctx{&fn, n, k};
    Run(
        int(k),
        [](void* p, int piece) {
          auto* c = static_cast<Ctx*>(p);
          const int64_t begin = c->n * piece / c->k;
          const int64_t end = c->n * (piece + 1) / c->k;
          (*c->fn)(begin, end);
        },
        &ctx);
  }

  // Splits [0, n) into pieces of `grain` (the last one shorter) that the threads claim one at a
  // time, and calls fn(begin, end) per piece: threads that run faster (or get their core back
  // sooner on a shared machine) take more pieces, so all finish together. For loops bound by
  // memory bandwidth, where a fixed split leaves one thread waiting on the other.
  // One piece, or a call from inside a running job, runs inline. No allocation per call.
  template <typename F>
  void ParallelForDynamic(int64_t n, int64_t grain, F&& fn) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    const int64_t pieces = (n + grain - 1) / grain;
    if (pieces <= 1 || n_threads_ == 1 || InJob()) {
      fn(int64_t(0), n);
      return;
    }
    using Fn = std::remove_reference_t<F>;
    struct Ctx {
      Fn* fn;
      int64_t n, grain;
    } ctx{&fn, n, grain};
    Run(
        int(pieces),
        [](void* p, int piece) {
          auto* c = static_cast<Ctx*>(p);
          const int64_t begin = c->grain * piece;
          const int64_t end = begin + c->grain < c->n ? begin + c->grain : c->n;
          (*c->fn)(begin, end);
        },
        &ctx);
  }

  // Calls fn(thread_index) exactly once on each pool thread (index 0 is the caller), e.g. to set
  // per-thread library state. Blocks until all are done.
  template <typename F>
  void RunOnEachThread(F&& fn) {
    using Fn = std::remove_reference_t<F>;
    Fn* f = &fn;
    RunPinned([](void* p, int t) { (*static_cast<Fn*>(p))(t); }, f);
  }

  // True on a pool thread while it runs a piece of a job (nested loops then run inline).
  static bool InJob();

 private:
  using TaskFn = void (*)(void* ctx, int piece);

  // Runs pieces 0..n_pieces-1; any thread may take any piece.
  void Run(int n_pieces, TaskFn fn, void* ctx);
  // Runs piece t on thread t, for every thread.
  void RunPinned(TaskFn fn, void* ctx);
  void Dispatch(int n_pieces, TaskFn fn, void* ctx, bool pinned);
  void WorkerLoop(int index);
  void DoPieces(int index);

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex dispatch_mu_;  // one job at a time when several threads share the pool

  // The current job; written by the dispatching thread before generation_ is bumped.
  TaskFn job_fn_ = nullptr;
  void* job_ctx_ = nullptr;
  int job_pieces_ = 0;
  bool job_pinned_ = false;
  alignas(64) std::atomic<int> next_piece_{0};
  alignas(64) std::atomic<uint64_t> generation_{0};
  alignas(64) std::atomic<int> workers_done_{0};
  std::atomic<bool> stop_{false};

  // Sleeping, after the spin: the counters let the fast path skip the mutex when nobody sleeps.
  // (Not std::atomic::wait: libstdc++ 12's implementation can miss wake-ups.)
  std::mutex sleep_mu_;
  std::condition_variable work_cv_;  // workers wait for a new generation
  std::condition_variable done_cv_;  // the dispatcher waits for workers_done_
  std::atomic<int> sleeping_workers_{0};
  std::atomic<bool> dispatcher_sleeping_{false};
};

}  // namespace mamba2
