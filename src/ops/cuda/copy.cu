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

// Rows [m, k] contiguous in k on both sides, 4 elements a thread: the conversion of activations
// into bf16 before each prefill GEMM, which the generic index arithmetic above ran at ~1/3 of the
// memory bandwidth.
template <typename T>
struct alignas(4 * sizeof(T)) Vec4 {
  T v[4];
};

template <typename S, typename D>
__global__ void rows4_copy(const S* src, int64_t src_stride, D* dst, int64_t dst_stride,
                           int64_t quads_per_row, int64_t quads) {
  for (int64_t q = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; q < quads;
       q += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = q / quads_per_row, col = (q % quads_per_row) * 4;
    const Vec4<S> in = *reinterpret_cast<const Vec4<S>*>(src + row * src_stride + col);
    Vec4<D> out;
#pragma unroll
    for (int e = 0; e < 4; ++e) out.v[e] = from_f32<D>(to_f32(in.v[e]));
    *reinterpret_cast<Vec4<D>*>(dst + row * dst_stride + col) = out;
  }
}

// Whether rows4_copy can serve the layout: 2 dimensions, unit inner strides, rows of whole
// 4-element groups aligned to 4 elements on both sides.
template <typename S, typename D>
bool rows4_fits(const void* src, const void* dst, const CopyLayout& l) {
  auto aligned = [](const void* p, size_t bytes) {
    return reinterpret_cast<uintptr_t>(p) % bytes == 0;
  };
  return l.ndim == 2 && l.src_stride[1] == 1 && l.dst_stride[1] == 1 && l.shape[1] % 4 == 0 &&
         l.src_stride[0] % 4 == 0 && l.dst_stride[0] % 4 == 0 && aligned(src, 4 * sizeof(S)) &&
         aligned(dst, 4 * sizeof(D));
}

template <typename S, typename D>
cudaError_t run(const void* src, void* dst, const CopyLayout& layout, int64_t n,
                cudaStream_t stream) {
  if constexpr (!std::is_same_v<S, D>) {
    if (rows4_fits<S, D>(src, dst, layout)) {
      const int64_t quads = n / 4;
      const unsigned grid = std::min<unsigned>(blocks_for(quads, 256), 65535u);
      rows4_copy<S, D><<<grid, 256, 0, stream>>>(static_cast<const S*>(src), layout.src_stride[0],
                                                 static_cast<D*>(dst), layout.dst_stride[0],
                                                 layout.shape[1] / 4, quads);
      return cudaGetLastError();
    }
  }
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
