#include "core/thread_pool.h"

#include <chrono>
#include <cstdlib>
#include <string>

namespace hearth {
namespace {

thread_local bool in_pool_task = false;

// How long an idle worker polls before blocking (tuned on the 2-core dev VM: decode issues a job
// every ~20-100 us, so 200 us of spinning keeps workers hot between them).
constexpr auto kSpinDuration = std::chrono::microseconds(200);

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool([] {
    if (const char* env = std::getenv("HEARTH_NUM_THREADS")) {
      int n = std::atoi(env);
      if (n > 0) return n;
    }
    unsigned hw = std::thread::hardware_concurrency();
    return hw ? int(hw) : 1;
  }());
  return pool;
}

void ThreadPool::work_on_current_job() {
  in_pool_task = true;
  for (;;) {
    int64_t task = next_task_.fetch_add(1);
    if (task >= num_tasks_) break;
    fn_(ctx_, task);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
  in_pool_task = false;
}

void ThreadPool::run_erased(int64_t num_tasks, void* ctx, TaskFn fn) {
  if (num_tasks <= 0) return;
  if (workers_.empty() || in_pool_task || num_tasks == 1) {
    bool was = in_pool_task;
    in_pool_task = true;
    for (int64_t t = 0; t < num_tasks; ++t) fn(ctx, t);
    in_pool_task = was;
    return;
  }
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ctx_ = ctx;
    fn_ = fn;
    num_tasks_ = num_tasks;
    next_task_.store(0);
    pending_.store(num_tasks);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  work_on_current_job();
  // Wait until every task is done and every worker has left the job, so no worker can touch the
  // job's fields once the next job is posted.
  while (pending_.load(std::memory_order_acquire) > 0 ||
         active_workers_.load(std::memory_order_acquire) > 0) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    auto spin_until = std::chrono::steady_clock::now() + kSpinDuration;
    while (generation_.load(std::memory_order_acquire) == seen &&
           std::chrono::steady_clock::now() < spin_until) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      seen = generation_.load();
      if (stop_) return;
      // Join only while unclaimed tasks remain: a late worker must not touch a finished job whose
      // fields the caller may be overwriting for the next one.
      if (next_task_.load() >= num_tasks_) continue;
      active_workers_.fetch_add(1);
    }
    work_on_current_job();
    active_workers_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace hearth
