// Row-wise and elementwise kernels: add, silu_mul, rms_norm, rope, embedding gather.
#include <algorithm>
#include <cstdint>

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

// 16-byte loads and stores (n4 = n / 4 groups; the launcher checks alignment).
__global__ void add4_kernel(const float4* a, const float4* b, float4* out, int64_t n4) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n4;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float4 x = a[i], y = b[i];
    out[i] = make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w);
  }
}

// Whether every row of a Rows view over p starts 16-byte aligned and holds whole float4s.
bool rows_vec4(const float* p, const Rows& r) {
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0 || r.cols % 4 != 0) return false;
  for (int d = 0; d < r.lead; ++d)
    if (r.shape[d] > 1 && r.stride[d] % 4 != 0) return false;
  return true;
}

__device__ __forceinline__ float silu_times(float g, float u) {
  return g / (1.0f + expf(-g)) * u;
}

__global__ void silu_mul4_kernel(const float* gate, Rows gr, const float* up, Rows ur, float* out,
                                 Rows outr) {
  const int64_t row = blockIdx.x;
  const float4* g = reinterpret_cast<const float4*>(gate + gr.offset(row));
  const float4* u = reinterpret_cast<const float4*>(up + ur.offset(row));
  float4* o = reinterpret_cast<float4*>(out + outr.offset(row));
  for (int64_t c = threadIdx.x; c < gr.cols / 4; c += blockDim.x) {
    const float4 x = g[c], y = u[c];
    o[c] = make_float4(silu_times(x.x, y.x), silu_times(x.y, y.y), silu_times(x.z, y.z),
                       silu_times(x.w, y.w));
  }
}

__global__ void silu_mul_kernel(const float* gate, Rows gr, const float* up, Rows ur, float* out,
                                Rows outr) {
  const int64_t row = blockIdx.x;
  const float* g = gate + gr.offset(row);
  const float* u = up + ur.offset(row);
  float* o = out + outr.offset(row);
  for (int64_t c = threadIdx.x; c < gr.cols; c += blockDim.x) o[c] = silu_times(g[c], u[c]);
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

// Same with 16-byte loads of x and stores of out (the launcher checks alignment).
template <typename W>
__global__ void rms_norm4_kernel(const float* x, Rows xr, const W* weight, float eps, float* out,
                                 Rows outr) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const float4* xp = reinterpret_cast<const float4*>(x + xr.offset(row));
  float4* op = reinterpret_cast<float4*>(out + outr.offset(row));
  const int64_t n4 = xr.cols / 4;
  float ss = 0.0f;
  for (int64_t c = threadIdx.x; c < n4; c += blockDim.x) {
    const float4 v = xp[c];
    ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
  }
  ss = block_sum(ss, scratch);
  const float inv = rsqrtf(ss / float(xr.cols) + eps);
  for (int64_t c = threadIdx.x; c < n4; c += blockDim.x) {
    const float4 v = xp[c];
    const W* wp = weight + 4 * c;
    op[c] = make_float4(to_f32(wp[0]) * (v.x * inv), to_f32(wp[1]) * (v.y * inv),
                        to_f32(wp[2]) * (v.z * inv), to_f32(wp[3]) * (v.w * inv));
  }
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
                                 int64_t id_stride, float* out, Rows outr,
                                 unsigned long long* bad) {
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t * id_stride];
  if (id < 0 || id >= vocab) {
    if (threadIdx.x == 0) atomicMin(bad, (static_cast<unsigned long long>(t) << 32) | uint32_t(id));
    return;
  }
  float* o = out + outr.offset(t);
  const T* row = table + int64_t(id) * hidden;
  for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) o[c] = to_f32(row[c]);
}

}  // namespace

cudaError_t launch_add(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const bool vec4 = n % 4 == 0 && (reinterpret_cast<uintptr_t>(a) | reinterpret_cast<uintptr_t>(b) |
                                   reinterpret_cast<uintptr_t>(out)) %
                                          16 ==
                                      0;
  if (vec4) {
    add4_kernel<<<std::min<unsigned>(blocks_for(n / 4, kThreads), 65535u), kThreads, 0, stream>>>(
        reinterpret_cast<const float4*>(a), reinterpret_cast<const float4*>(b),
        reinterpret_cast<float4*>(out), n / 4);
  } else {
    add_kernel<<<std::min<unsigned>(blocks_for(n, kThreads), 65535u), kThreads, 0, stream>>>(
        a, b, out, n);
  }
  return cudaGetLastError();
}

cudaError_t launch_silu_mul(const float* gate, Rows gr, const float* up, Rows ur, float* out,
                            Rows outr, cudaStream_t stream) {
  if (gr.count == 0 || gr.cols == 0) return cudaSuccess;
  if (rows_vec4(gate, gr) && rows_vec4(up, ur) && rows_vec4(out, outr))
    silu_mul4_kernel<<<unsigned(gr.count), kThreads, 0, stream>>>(gate, gr, up, ur, out, outr);
  else
    silu_mul_kernel<<<unsigned(gr.count), kThreads, 0, stream>>>(gate, gr, up, ur, out, outr);
  return cudaGetLastError();
}

cudaError_t launch_rms_norm(const float* x, Rows xr, const void* weight, Elem weight_elem,
                            float eps, float* out, Rows outr, cudaStream_t stream) {
  if (xr.count == 0) return cudaSuccess;
  return dispatch_float(weight_elem, [&](auto w) {
    using W = decltype(w);
    if (rows_vec4(x, xr) && rows_vec4(out, outr))
      rms_norm4_kernel<W><<<unsigned(xr.count), kThreads, 0, stream>>>(
          x, xr, static_cast<const W*>(weight), eps, out, outr);
    else
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
                             Rows outr, unsigned long long* bad, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  return dispatch_float(elem, [&](auto e) {
    using T = decltype(e);
    embedding_kernel<T><<<unsigned(tokens), kThreads, 0, stream>>>(
        static_cast<const T*>(table), vocab, hidden, ids, id_stride, out, outr, bad);
    return cudaGetLastError();
  });
}

}  // namespace hearth::ops::cuda
