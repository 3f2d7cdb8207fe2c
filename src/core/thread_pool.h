// A fixed pool of worker threads, sized to the machine, for data-parallel CPU kernels.
// Workers spin briefly before sleeping: decode calls parallel_for hundreds of times per token, and
// waking a sleeping thread costs more than most of those calls take.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace hearth {

class ThreadPool {
 public:
  // num_threads counts the calling thread too; 1 means everything runs inline.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return int(workers_.size()) + 1; }

  // Calls fn(task) for every task in [0, num_tasks) across the threads and returns when all are
  // done. Calls made from inside a task run inline (no nested parallelism).
  template <typename Fn>
  void run(int64_t num_tasks, Fn&& fn) {
    run_erased(num_tasks, &fn, [](void* f, int64_t task) { (*static_cast<Fn*>(f))(task); });
  }

  // The process-wide pool: HEARTH_NUM_THREADS if set, else the number of hardware threads.
  static ThreadPool& global();

 private:
  using TaskFn = void (*)(void*, int64_t);
  void run_erased(int64_t num_tasks, void* ctx, TaskFn fn);
  void worker_loop();
  void work_on_current_job();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  // Current job.
  void* ctx_ = nullptr;
  TaskFn fn_ = nullptr;
  int64_t num_tasks_ = 0;
  std::atomic<int64_t> next_task_{0};
  std::atomic<int64_t> pending_{0};
  std::atomic<int> active_workers_{0};  // workers inside the current job
  std::mutex run_mutex_;                // one job at a time
};

// Splits [0, n) into contiguous ranges of at least `grain` items (one or a few per thread) and
// calls fn(begin, end) on each in parallel.
template <typename Fn>
void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return;
  ThreadPool& pool = ThreadPool::global();
  if (grain < 1) grain = 1;
  int64_t max_chunks = (n + grain - 1) / grain;
  int64_t chunks = std::min<int64_t>(max_chunks, pool.num_threads());
  if (chunks <= 1) {
    fn(int64_t(0), n);
    return;
  }
  int64_t per = (n + chunks - 1) / chunks;
  pool.run(chunks, [&](int64_t c) {
    int64_t begin = c * per;
    int64_t end = std::min(n, begin + per);
    if (begin < end) fn(begin, end);
  });
}

}  // namespace hearth
