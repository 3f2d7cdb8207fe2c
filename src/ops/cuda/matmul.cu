// out[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]) with f32 activations and f32/f16/bf16 weights,
// f32 accumulation. Correct-first kernels: a warp-per-output-column GEMV for few rows and a
// shared-memory tiled GEMM above that (cuBLASLt / wgmma kernels replace them in issue 4's
// performance work; docs/perf records what these reach).
#include "ops/cuda/device_types.cuh"

namespace hearth::ops::cuda {
namespace {

// Rows of x up to which one warp per output column reads each weight row once for all rows.
constexpr int kGemvMaxRows = 8;
constexpr int kGemvWarps = 8;

template <typename W, int kM>
__global__ void gemv_kernel(const float* x, int64_t x_stride, const W* w, const void* bias,
                            Elem bias_elem, float* out, int64_t out_stride, int64_t n_cols,
                            int64_t k, int m) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t n = int64_t(blockIdx.x) * kGemvWarps + warp;
  if (n >= n_cols) return;
  const W* wr = w + n * k;
  float acc[kM];
#pragma unroll
  for (int i = 0; i < kM; ++i) acc[i] = 0.0f;
  for (int64_t p = lane; p < k; p += 32) {
    const float wv = to_f32(wr[p]);
#pragma unroll
    for (int i = 0; i < kM; ++i)
      if (i < m) acc[i] += wv * x[i * x_stride + p];
  }
#pragma unroll
  for (int i = 0; i < kM; ++i)
    for (int o = 16; o > 0; o >>= 1) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], o);
  if (lane == 0) {
    float b = 0.0f;
    if (bias) {
      if (bias_elem == Elem::f32)
        b = static_cast<const float*>(bias)[n];
      else if (bias_elem == Elem::bf16)
        b = to_f32(static_cast<const __nv_bfloat16*>(bias)[n]);
      else
        b = to_f32(static_cast<const __half*>(bias)[n]);
    }
    for (int i = 0; i < m; ++i) out[i * out_stride + n] = acc[i] + b;
  }
}

// 64 x 64 output tile per block, 16-deep slices of K through shared memory, 4 x 4 outputs per
// thread.
constexpr int kTile = 64, kDepth = 16;

template <typename W>
__global__ void gemm_kernel(const float* x, int64_t x_stride, const W* w, const void* bias,
                            Elem bias_elem, float* out, int64_t out_stride, int64_t m, int64_t n,
                            int64_t k) {
  __shared__ float xs[kDepth][kTile + 1];
  __shared__ float ws[kDepth][kTile + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m0 = int64_t(blockIdx.y) * kTile, n0 = int64_t(blockIdx.x) * kTile;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < k; k0 += kDepth) {
    for (int i = threadIdx.x; i < kDepth * kTile; i += blockDim.x) {
      const int kk = i % kDepth, r = i / kDepth;
      const int64_t gm = m0 + r, gn = n0 + r, gk = k0 + kk;
      xs[kk][r] = (gm < m && gk < k) ? x[gm * x_stride + gk] : 0.0f;
      ws[kk][r] = (gn < n && gk < k) ? to_f32(w[gn * k + gk]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kDepth; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = xs[kk][ty * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = ws[kk][tx * 4 + j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t gm = m0 + ty * 4 + i;
    if (gm >= m) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t gn = n0 + tx * 4 + j;
      if (gn >= n) continue;
      float b = 0.0f;
      if (bias) {
        if (bias_elem == Elem::f32)
          b = static_cast<const float*>(bias)[gn];
        else if (bias_elem == Elem::bf16)
          b = to_f32(static_cast<const __nv_bfloat16*>(bias)[gn]);
        else
          b = to_f32(static_cast<const __half*>(bias)[gn]);
      }
      out[gm * out_stride + gn] = acc[i][j] + b;
    }
  }
}

}  // namespace

cudaError_t launch_matmul(const float* x, int64_t x_stride, const void* w, Elem w_elem,
                          const void* bias, Elem bias_elem, float* out, int64_t out_stride,
                          int64_t m, int64_t n, int64_t k, cudaStream_t stream) {
  if (m == 0 || n == 0) return cudaSuccess;
  return dispatch_float(w_elem, [&](auto tag) {
    using W = decltype(tag);
    const W* wp = static_cast<const W*>(w);
    if (m <= kGemvMaxRows) {
      gemv_kernel<W, kGemvMaxRows><<<blocks_for(n, kGemvWarps), 32 * kGemvWarps, 0, stream>>>(
          x, x_stride, wp, bias, bias_elem, out, out_stride, n, k, int(m));
    } else {
      dim3 grid(blocks_for(n, kTile), blocks_for(m, kTile));
      gemm_kernel<W>
          <<<grid, 256, 0, stream>>>(x, x_stride, wp, bias, bias_elem, out, out_stride, m, n, k);
    }
    return cudaGetLastError();
  });
}

}  // namespace hearth::ops::cuda
