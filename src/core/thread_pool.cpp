#include "core/thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace mamba2 {
namespace {

thread_local bool t_in_job = false;

// About 20-50 us of polling before sleeping: long enough to bridge the gap between the ops of
// one layer, short enough not to steal much from other processes when idle.
constexpr int kSpinIters = 4000;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Restores the previous value, so that a nested inline job (RunPinned inside a job) does not
// mark the rest of the outer job as outside one.
struct InJobScope {
  bool saved = t_in_job;
  InJobScope() { t_in_job = true; }
  ~InJobScope() { t_in_job = saved; }
};

}  // namespace

bool ThreadPool::InJob() { return t_in_job; }

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = int(std::thread::hardware_concurrency());
  if (n_threads <= 0) n_threads = 1;
  n_threads_ = n_threads;
  workers_.reserve(size_t(n_threads_ - 1));
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  {
    std::lock_guard<std::mutex> lock(sleep_mu_);
    work_cv_.notify_all();
  }
  for (auto& t : workers_) t.join();
}

void ThreadPool::Run(int n_pieces, TaskFn fn, void* ctx) { Dispatch(n_pieces, fn, ctx, false); }

void ThreadPool::RunPinned(TaskFn fn, void* ctx) {
  if (n_threads_ == 1 || InJob()) {
    InJobScope scope;
    fn(ctx, 0);
    return;
  }
  Dispatch(n_threads_, fn, ctx, true);
}

void ThreadPool::DoPieces(int index) {
  InJobScope scope;
  if (job_pinned_) {
    job_fn_(job_ctx_, index);
    return;
  }
  // Claiming pieces (rather than fixing piece i to thread i) lets the threads that are awake
  // take the work of one that is slow to wake up.
  for (;;) {
    const int piece = next_piece_.fetch_add(1, std::memory_order_relaxed);
    if (piece >= job_pieces_) break;
    job_fn_(job_ctx_, piece);
  }
}

void ThreadPool::Dispatch(int n_pieces, TaskFn fn, void* ctx, bool pinned) {
  std::lock_guard<std::mutex> lock(dispatch_mu_);
  job_fn_ = fn;
  job_ctx_ = ctx;
  job_pieces_ = n_pieces;
  job_pinned_ = pinned;
  next_piece_.store(0, std::memory_order_relaxed);
  workers_done_.store(0, std::memory_order_relaxed);
  // seq_cst on both sides (bump then read the sleeper count here; count then re-read the
  // generation in the worker): at least one side sees the other, so no wake-up is lost.
  generation_.fetch_add(1, std::memory_order_seq_cst);
  if (sleeping_workers_.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard<std::mutex> lock(sleep_mu_);
    work_cv_.notify_all();
  }

  DoPieces(0);

  // Every worker acknowledges every job, so none can still be reading job_* when we return.
  const int n_workers = n_threads_ - 1;
  for (int i = 0; i < kSpinIters; ++i) {
    if (workers_done_.load(std::memory_order_acquire) == n_workers) return;
    CpuRelax();
  }
  dispatcher_sleeping_.store(true, std::memory_order_seq_cst);
  {
    std::unique_lock<std::mutex> lock(sleep_mu_);
    done_cv_.wait(lock, [&] { return workers_done_.load(std::memory_order_seq_cst) == n_workers; });
  }
  dispatcher_sleeping_.store(false, std::memory_order_relaxed);
}

void ThreadPool::WorkerLoop(int index) {
  // Not the current value: a job may already have been dispatched before this thread started.
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int i = 0; gen == seen && i < kSpinIters; ++i) {
      CpuRelax();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      sleeping_workers_.fetch_add(1, std::memory_order_seq_cst);
      {
        std::unique_lock<std::mutex> lock(sleep_mu_);
        work_cv_.wait(lock, [&] { return generation_.load(std::memory_order_seq_cst) != seen; });
      }
      sleeping_workers_.fetch_sub(1, std::memory_order_relaxed);
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load(std::memory_order_relaxed)) return;
    DoPieces(index);
    if (workers_done_.fetch_add(1, std::memory_order_seq_cst) + 1 == n_threads_ - 1 &&
        dispatcher_sleeping_.load(std::memory_order_seq_cst)) {
      std::lock_guard<std::mutex> lock(sleep_mu_);
      done_cv_.notify_one();
    }
  }
}

}  // namespace mamba2
