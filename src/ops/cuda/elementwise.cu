// Row-wise and elementwise kernels: add, silu_mul, rms_norm, rope, embedding gather.
#include <algorithm>

#include "ops/cuda/device_types.cuh"

namespace hearth::ops::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float block_sum(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < (blockDim.x + 31) / 32; ++w) total += scratch[w];
  __syncthreads();
  return total;
}

__global__ void add_kernel(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = a[i] + b[i];
}

__global__ void silu_mul_kernel(const float* gate, Rows gr, const float* up, Rows ur, float* out,
                                Rows outr) {
  const int64_t row = blockIdx.x;
  const float* g = gate + gr.offset(row);
  const float* u = up + ur.offset(row);
  float* o = out + outr.offset(row);
  for (int64_t c = threadIdx.x; c < gr.cols; c += blockDim.x) {
    const float x = g[c];
    o[c] = x / (1.0f + expf(-x)) * u[c];
  }
}

template <typename W>
__global__ void rms_norm_kernel(const float* x, Rows xr, const W* weight, float eps, float* out,
                                Rows outr) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const float* xp = x + xr.offset(row);
  float* op = out + outr.offset(row);
  float ss = 0.0f;
  for (int64_t c = threadIdx.x; c < xr.cols; c += blockDim.x) ss += xp[c] * xp[c];
  ss = block_sum(ss, scratch);
  const float inv = rsqrtf(ss / float(xr.cols) + eps);
  for (int64_t c = threadIdx.x; c < xr.cols; c += blockDim.x)
    op[c] = to_f32(weight[c]) * (xp[c] * inv);
}

// x [T, H, D]: rotates the first 2 * half dims of each head in HF's rotate_half layout.
__global__ void rope_kernel(const float* x, Rows xr, const int32_t* positions,
                            const float* inv_freq, int half, float scaling, float* out, Rows outr,
                            int64_t heads) {
  const int64_t row = blockIdx.x;  // (t, h)
  const int64_t t = row / heads;
  const float* xp = x + xr.offset(row);
  float* op = out + outr.offset(row);
  const float pos = float(positions[t]);
  for (int64_t i = threadIdx.x; i < xr.cols; i += blockDim.x) {
    if (i < half) {
      const float angle = pos * inv_freq[i];  // f32 product, as HF computes it
      const float c = cosf(angle) * scaling, s = sinf(angle) * scaling;
      const float x1 = xp[i], x2 = xp[i + half];
      op[i] = x1 * c - x2 * s;
      op[i + half] = x2 * c + x1 * s;
    } else if (i >= 2 * half) {
      op[i] = xp[i];
    }
  }
}

template <typename T>
__global__ void embedding_kernel(const T* table, int64_t vocab, int64_t hidden, const int32_t* ids,
                                 int64_t id_stride, float* out, Rows outr, int* bad) {
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t * id_stride];
  if (id < 0 || id >= vocab) {
    if (threadIdx.x == 0) atomicMin(bad, int(t));
    return;
  }
  float* o = out + outr.offset(t);
  const T* row = table + int64_t(id) * hidden;
  for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) o[c] = to_f32(row[c]);
}

}  // namespace

cudaError_t launch_add(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  add_kernel<<<std::min<unsigned>(blocks_for(n, kThreads), 65535u), kThreads, 0, stream>>>(a, b,
                                                                                           out, n);
  return cudaGetLastError();
}

cudaError_t launch_silu_mul(const float* gate, Rows gr, const float* up, Rows ur, float* out,
                            Rows outr, cudaStream_t stream) {
  if (gr.count == 0 || gr.cols == 0) return cudaSuccess;
  silu_mul_kernel<<<unsigned(gr.count), kThreads, 0, stream>>>(gate, gr, up, ur, out, outr);
  return cudaGetLastError();
}

cudaError_t launch_rms_norm(const float* x, Rows xr, const void* weight, Elem weight_elem,
                            float eps, float* out, Rows outr, cudaStream_t stream) {
  if (xr.count == 0) return cudaSuccess;
  return dispatch_float(weight_elem, [&](auto w) {
    using W = decltype(w);
    rms_norm_kernel<W><<<unsigned(xr.count), kThreads, 0, stream>>>(
        x, xr, static_cast<const W*>(weight), eps, out, outr);
    return cudaGetLastError();
  });
}

cudaError_t launch_rope(const float* x, Rows xr, const int32_t* positions, const float* inv_freq,
                        int half, float scaling, float* out, Rows outr, int64_t heads,
                        cudaStream_t stream) {
  if (xr.count == 0) return cudaSuccess;
  rope_kernel<<<unsigned(xr.count), 128, 0, stream>>>(x, xr, positions, inv_freq, half, scaling,
                                                      out, outr, heads);
  return cudaGetLastError();
}

cudaError_t launch_embedding(const void* table, Elem elem, int64_t vocab, int64_t hidden,
                             const int32_t* ids, int64_t id_stride, int64_t tokens, float* out,
                             Rows outr, int* bad, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  return dispatch_float(elem, [&](auto e) {
    using T = decltype(e);
    embedding_kernel<T><<<unsigned(tokens), kThreads, 0, stream>>>(
        static_cast<const T*>(table), vocab, hidden, ids, id_stride, out, outr, bad);
    return cudaGetLastError();
  });
}

}  // namespace hearth::ops::cuda
