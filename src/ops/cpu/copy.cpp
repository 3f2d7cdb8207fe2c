// CPU copy: any strides, float dtype conversion in registers (F16C for f16, shifts for bf16).
// Dimensions that are contiguous in both tensors are merged first, so most copies become one
// flat run or a loop over rows of contiguous runs.
#include <cstring>

#include "core/thread_pool.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/simd.h"

namespace hearth::ops::cpu {
namespace {

// Copies below this many bytes run on the calling thread: waking the pool costs more.
constexpr int64_t kParallelCopyBytes = 1 << 18;

template <typename S, typename D>
void convert_run(const S* s, D* d, int64_t n) {
  if constexpr (std::is_same_v<S, D>) {
    std::memcpy(d, s, size_t(n) * sizeof(S));
  } else {
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) store8(d + i, load8(s + i));
    if (i < n) store_partial(d + i, load_partial(s + i, int(n - i)), int(n - i));
  }
}

template <typename S, typename D>
void convert_strided(const S* s, int64_t ss, D* d, int64_t ds, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float v = load_as_f32(s + i * ss, dtype_of<S>::value);
    if constexpr (std::is_same_v<D, float>) d[i * ds] = v;
    if constexpr (std::is_same_v<D, F16>) d[i * ds] = f32_to_f16(v);
    if constexpr (std::is_same_v<D, BF16>) d[i * ds] = f32_to_bf16(v);
  }
}

template <typename S, typename D>
void convert_any(const void* s, int64_t ss, void* d, int64_t ds, int64_t n) {
  if (ss == 1 && ds == 1)
    convert_run(static_cast<const S*>(s), static_cast<D*>(d), n);
  else
    convert_strided(static_cast<const S*>(s), ss, static_cast<D*>(d), ds, n);
}

using RunFn = void (*)(const void*, int64_t, void*, int64_t, int64_t);

template <typename S>
RunFn pick_dst(DType dst) {
  switch (dst) {
    case DType::f32:
      return convert_any<S, float>;
    case DType::f16:
      return convert_any<S, F16>;
    case DType::bf16:
      return convert_any<S, BF16>;
    default:
      return nullptr;
  }
}

RunFn pick_float_run(DType src, DType dst) {
  switch (src) {
    case DType::f32:
      return pick_dst<float>(dst);
    case DType::f16:
      return pick_dst<F16>(dst);
    case DType::bf16:
      return pick_dst<BF16>(dst);
    default:
      return nullptr;
  }
}

template <size_t kSize>
void raw_strided(const void* s, int64_t ss, void* d, int64_t ds, int64_t n) {
  const char* sp = static_cast<const char*>(s);
  char* dp = static_cast<char*>(d);
  if (ss == 1 && ds == 1) {
    std::memcpy(dp, sp, size_t(n) * kSize);
    return;
  }
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(dp + i * ds * int64_t(kSize), sp + i * ss * int64_t(kSize), kSize);
}

RunFn pick_raw_run(size_t element_size) {
  switch (element_size) {
    case 1:
      return raw_strided<1>;
    case 2:
      return raw_strided<2>;
    case 4:
      return raw_strided<4>;
    case 8:
      return raw_strided<8>;
    default:
      return nullptr;
  }
}

}  // namespace

void copy(const Tensor& src, Tensor& dst) {
  HEARTH_CHECK(src.device().is_cpu() && dst.device().is_cpu(),
               "the CPU backend copies host tensors only ({} to {})", src.describe(),
               dst.describe());
  if (src.numel() == 0) return;
  if (src.raw_data() == dst.raw_data() && src.dtype() == dst.dtype() &&
      src.strides() == dst.strides())
    return;  // a tensor copied onto itself
  RunFn run = is_floating(src.dtype()) ? pick_float_run(src.dtype(), dst.dtype())
                                       : pick_raw_run(src.element_size());
  HEARTH_CHECK(run != nullptr, "copy {} to {}", src.describe(), dst.describe());

  // Merge dimensions that are contiguous in both tensors; drop size-1 dimensions.
  int64_t shape[Dims::kMaxDims], ss[Dims::kMaxDims], ds[Dims::kMaxDims];
  int nd = 0;
  for (int d = 0; d < src.ndim(); ++d) {
    if (src.dim(d) == 1) continue;
    if (nd > 0 && ss[nd - 1] == src.stride(d) * src.dim(d) &&
        ds[nd - 1] == dst.stride(d) * dst.dim(d)) {
      shape[nd - 1] *= src.dim(d);
      ss[nd - 1] = src.stride(d);
      ds[nd - 1] = dst.stride(d);
    } else {
      shape[nd] = src.dim(d);
      ss[nd] = src.stride(d);
      ds[nd] = dst.stride(d);
      ++nd;
    }
  }
  if (nd == 0) {
    shape[0] = 1;
    ss[0] = ds[0] = 1;
    nd = 1;
  }
  const char* s = static_cast<const char*>(src.raw_data());
  char* d = static_cast<char*>(dst.raw_data());
  int64_t ses = int64_t(src.element_size()), des = int64_t(dst.element_size());
  int64_t inner = shape[nd - 1];
  int64_t outer = src.numel() / inner;
  int64_t bytes = src.numel() * std::max(ses, des);

  if (outer == 1) {
    // One run: split it into chunks across threads.
    int64_t grain = bytes < kParallelCopyBytes ? inner : std::max<int64_t>(inner / 64, 4096);
    parallel_for(inner, grain, [&](int64_t b, int64_t e) {
      run(s + b * ss[0] * ses, ss[0], d + b * ds[0] * des, ds[0], e - b);
    });
    return;
  }
  int64_t grain = bytes < kParallelCopyBytes ? outer : std::max<int64_t>(1, 4096 / inner);
  parallel_for(outer, grain, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      int64_t so = 0, doff = 0, rest = r;
      for (int i = nd - 2; i >= 0; --i) {
        int64_t idx = rest % shape[i];
        rest /= shape[i];
        so += idx * ss[i];
        doff += idx * ds[i];
      }
      run(s + so * ses, ss[nd - 1], d + doff * des, ds[nd - 1], inner);
    }
  });
}

}  // namespace hearth::ops::cpu
