// The strided, converting element copy on the device (transfers are cudaMemcpy in the backend).
#include <algorithm>
#include <type_traits>

#include "ops/cuda/device_types.cuh"

namespace hearth::ops::cuda {
namespace {

template <typename S, typename D>
__global__ void strided_copy(const S* src, D* dst, CopyLayout layout, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rest = i, s = 0, d = 0;
    for (int k = layout.ndim - 1; k >= 0; --k) {
      const int64_t idx = rest % layout.shape[k];
      rest /= layout.shape[k];
      s += idx * layout.src_stride[k];
      d += idx * layout.dst_stride[k];
    }
    if constexpr (std::is_same_v<S, D>) {
      dst[d] = src[s];
    } else {
      dst[d] = from_f32<D>(to_f32(src[s]));
    }
  }
}

template <typename S, typename D>
cudaError_t run(const void* src, void* dst, const CopyLayout& layout, int64_t n,
                cudaStream_t stream) {
  const unsigned grid = std::min<unsigned>(blocks_for(n, 256), 65535u);
  strided_copy<S, D>
      <<<grid, 256, 0, stream>>>(static_cast<const S*>(src), static_cast<D*>(dst), layout, n);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_strided_copy(const void* src, Elem src_elem, void* dst, Elem dst_elem,
                                const CopyLayout& layout, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (src_elem == Elem::u8) return run<uint8_t, uint8_t>(src, dst, layout, n, stream);
  if (src_elem == Elem::u32) return run<uint32_t, uint32_t>(src, dst, layout, n, stream);
  if (src_elem == Elem::u64) return run<uint64_t, uint64_t>(src, dst, layout, n, stream);
  return dispatch_float(src_elem, [&](auto s) {
    return dispatch_float(dst_elem, [&](auto d) {
      return run<decltype(s), decltype(d)>(src, dst, layout, n, stream);
    });
  });
}

}  // namespace hearth::ops::cuda
