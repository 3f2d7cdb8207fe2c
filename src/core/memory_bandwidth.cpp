#include "core/memory_bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "core/storage.h"
#include "core/thread_pool.h"
#include "core/timer.h"

namespace hearth {

double measure_read_bandwidth(size_t bytes, int repeats) {
  size_t n = bytes / sizeof(float) / 64 * 64;
  float* data = static_cast<float*>(aligned_host_alloc(n * sizeof(float)));
  parallel_for(int64_t(n), 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) data[i] = float(i & 1023) * 0.001f;
  });
  double best = 0.0;
  std::atomic<double> sink{0.0};
  for (int r = 0; r < repeats; ++r) {
    Stopwatch clock;
    parallel_for(int64_t(n / 64), 1 << 10, [&](int64_t b, int64_t e) {
      __m256 acc[8];
      for (auto& a : acc) a = _mm256_setzero_ps();
      for (int64_t blk = b; blk < e; ++blk) {
        const float* p = data + blk * 64;
        for (int j = 0; j < 8; ++j) acc[j] = _mm256_add_ps(acc[j], _mm256_load_ps(p + 8 * j));
      }
      for (int j = 1; j < 8; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
      float lanes[8];
      _mm256_storeu_ps(lanes, acc[0]);
      double s = 0;
      for (float l : lanes) s += l;
      double cur = sink.load();
      while (!sink.compare_exchange_weak(cur, cur + s)) {
      }
    });
    best = std::max(best, double(n * sizeof(float)) / clock.seconds());
  }
  aligned_host_free(data);
  return best;
}

}  // namespace hearth
