// CPU argmax and top_k over rows of logits. NaN ranks above every number (torch's convention);
// ties go to the lower index. top_k keeps a k-entry heap of the best so far: one pass over the
// row, and most elements are rejected by one comparison with the current k-th best.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/thread_pool.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/rows.h"
#include "ops/cpu/simd.h"

namespace hearth::ops::cpu {
namespace {

struct Entry {
  float value;
  int32_t index;
};

// a ranks before b: larger value, NaN largest, then lower index.
inline bool ranks_before(const Entry& a, const Entry& b) {
  bool an = std::isnan(a.value), bn = std::isnan(b.value);
  if (an != bn) return an;
  if (!an && a.value != b.value) return a.value > b.value;
  return a.index < b.index;
}

int64_t row_argmax(const float* x, int64_t n) {
  __m256 m = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256 any_nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    __m256 v = _mm256_loadu_ps(x + i);
    any_nan = _mm256_or_ps(any_nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    m = _mm256_max_ps(m, v);
  }
  float mx = hmax(m);
  bool nan = _mm256_movemask_ps(any_nan) != 0;
  for (; i < n; ++i) {
    nan |= std::isnan(x[i]);
    mx = std::max(mx, x[i]);
  }
  for (int64_t j = 0; j < n; ++j)
    if (nan ? std::isnan(x[j]) : x[j] == mx) return j;
  return 0;
}

}  // namespace

void argmax(const Tensor& x, Tensor& out) {
  Rows xr(x);
  const float* xb = x.data<float>();
  int32_t* ob = out.data<int32_t>();
  const int64_t os = out.stride(0), n = xr.length();
  int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(n, 1));
  parallel_for(xr.count(), grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) ob[r * os] = int32_t(row_argmax(xb + xr.offset(r), n));
  });
}

void top_k(const Tensor& x, int k, Tensor& values, Tensor& indices) {
  Rows xr(x), vr(values), ir(indices);
  const float* xb = x.data<float>();
  float* vb = values.data<float>();
  int32_t* ib = indices.data<int32_t>();
  const int64_t n = xr.length();
  int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(n, 1));
  parallel_for(xr.count(), grain, [&](int64_t begin, int64_t end) {
    std::vector<Entry> heap;
    heap.reserve(size_t(k));
    // Heap order: the worst-ranked entry on top.
    auto heap_cmp = [](const Entry& a, const Entry& b) { return ranks_before(a, b); };
    for (int64_t r = begin; r < end; ++r) {
      const float* xp = xb + xr.offset(r);
      heap.clear();
      for (int64_t i = 0; i < n; ++i) {
        Entry e{xp[i], int32_t(i)};
        if (int(heap.size()) < k) {
          heap.push_back(e);
          std::push_heap(heap.begin(), heap.end(), heap_cmp);
        } else if (ranks_before(e, heap.front())) {
          std::pop_heap(heap.begin(), heap.end(), heap_cmp);
          heap.back() = e;
          std::push_heap(heap.begin(), heap.end(), heap_cmp);
        }
      }
      std::sort(heap.begin(), heap.end(), heap_cmp);
      float* vp = vb + vr.offset(r);
      int32_t* ip = ib + ir.offset(r);
      for (int j = 0; j < k; ++j) {
        vp[j] = heap[size_t(j)].value;
        ip[j] = heap[size_t(j)].index;
      }
    }
  });
}

}  // namespace hearth::ops::cpu
