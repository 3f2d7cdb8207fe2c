// Row reductions over logits: softmax, log_softmax, argmax, top_k (f32 rows).
#include <cfloat>
#include <climits>
#include <cstdint>

#include "ops/cuda/device_types.cuh"
#include "ops/cuda/pdl.cuh"

namespace hearth::ops::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kSoftmaxThreads = 1024;

__device__ __forceinline__ float block_max(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float m = -INFINITY;
  for (int w = 0; w < (blockDim.x + 31) / 32; ++w) m = fmaxf(m, scratch[w]);
  __syncthreads();
  return m;
}

__device__ __forceinline__ float block_sum(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float s = 0.0f;
  for (int w = 0; w < (blockDim.x + 31) / 32; ++w) s += scratch[w];
  __syncthreads();
  return s;
}

// One block per row. Vocabulary-sized rows (decode logits: one row of 128K) need the whole block
// busy with several loads in flight: 1024 threads reading float4 where the row allows it (a
// 256-thread block reading one float at a time took ~350 us per 128K row on an H200).
template <bool kLog, bool kVec>
__global__ void __launch_bounds__(kSoftmaxThreads)
    softmax_kernel(const float* x, Rows xr, float* out, Rows outr) {
  __shared__ float scratch[32];
  const float* xp = x + xr.offset(blockIdx.x);
  float* op = out + outr.offset(blockIdx.x);
  const int64_t n = xr.cols, nv = kVec ? n / 4 : 0;
  const float4* xv = reinterpret_cast<const float4*>(xp);
  float m = -INFINITY;
  for (int64_t c = threadIdx.x; c < nv; c += blockDim.x) {
    const float4 v = xv[c];
    m = fmaxf(m, fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w)));
  }
  for (int64_t c = nv * 4 + threadIdx.x; c < n; c += blockDim.x) m = fmaxf(m, xp[c]);
  m = block_max(m, scratch);
  if (m == -INFINITY) m = 0.0f;  // an all -inf row: exp gives zeros
  float s = 0.0f;
  for (int64_t c = threadIdx.x; c < nv; c += blockDim.x) {
    const float4 v = xv[c];
    s += (expf(v.x - m) + expf(v.y - m)) + (expf(v.z - m) + expf(v.w - m));
  }
  for (int64_t c = nv * 4 + threadIdx.x; c < n; c += blockDim.x) s += expf(xp[c] - m);
  s = block_sum(s, scratch);
  const float lse = m + logf(s), inv = 1.0f / s;
  auto f = [&](float v) { return kLog ? v - lse : expf(v - m) * inv; };
  float4* ov = reinterpret_cast<float4*>(op);
  for (int64_t c = threadIdx.x; c < nv; c += blockDim.x) {
    const float4 v = xv[c];
    ov[c] = make_float4(f(v.x), f(v.y), f(v.z), f(v.w));
  }
  for (int64_t c = nv * 4 + threadIdx.x; c < n; c += blockDim.x) op[c] = f(xp[c]);
}

// a ranks before b: larger value, NaN above every number, then the lower index (torch's order).
__device__ __forceinline__ bool ranks_before(float av, int ai, float bv, int bi) {
  const bool an = isnan(av), bn = isnan(bv);
  if (an != bn) return an;
  if (!an && av != bv) return av > bv;
  return ai < bi;
}

// The best entry of a row, skipping the k_taken indices in `taken`.
__device__ void block_best(const float* xp, int64_t n, const int* taken, int k_taken, float* sv,
                           int* si, float* best_v, int* best_i) {
  float v = -INFINITY;
  int idx = INT_MAX;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    bool skip = false;
    for (int j = 0; j < k_taken; ++j) skip |= taken[j] == int(c);
    if (skip) continue;
    if (idx == INT_MAX || ranks_before(xp[c], int(c), v, idx)) {
      v = xp[c];
      idx = int(c);
    }
  }
  sv[threadIdx.x] = v;
  si[threadIdx.x] = idx;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) {
      const int oi = si[threadIdx.x + stride];
      if (oi != INT_MAX &&
          (si[threadIdx.x] == INT_MAX ||
           ranks_before(sv[threadIdx.x + stride], oi, sv[threadIdx.x], si[threadIdx.x]))) {
        sv[threadIdx.x] = sv[threadIdx.x + stride];
        si[threadIdx.x] = oi;
      }
    }
    __syncthreads();
  }
  *best_v = sv[0];
  *best_i = si[0];
  __syncthreads();
}

// Keeps (cv, ci) in (v, i) when it ranks before it (i == INT_MAX: nothing kept yet).
__device__ __forceinline__ void keep_best(float cv, int ci, float& v, int& i) {
  if (ci != INT_MAX && (i == INT_MAX || ranks_before(cv, ci, v, i))) {
    v = cv;
    i = ci;
  }
}

// argmax of one row per block. A decode step ends with it, over a vocabulary-sized row (128k
// logits for Llama 3): block_best's one 4-byte load at a time per thread put ~500 dependent loads
// in a row per thread, ~120 us on the H100 (3 % of an 8B 4-bit step, 8 % of a 1B one). Here 1024
// threads read 16-byte vectors, 4 in flight each. ranks_before is a total order, so the visiting
// order cannot change the result.
constexpr int kArgmaxThreads = 1024;
constexpr int kArgmaxUnroll = 4;

__global__ void __launch_bounds__(kArgmaxThreads)
    argmax_kernel(const float* x, Rows xr, int32_t* out, int64_t out_stride) {
  pdl_wait();
  pdl_trigger();
  __shared__ float sv[kArgmaxThreads / 32];
  __shared__ int si[kArgmaxThreads / 32];
  const float* xp = x + xr.offset(blockIdx.x);
  const int64_t n = xr.cols;
  float v = -INFINITY;
  int idx = INT_MAX;
  // Scalar entries up to the first 16-byte boundary, float4s, then the scalar tail.
  const int64_t head =
      min(n, int64_t((16 - reinterpret_cast<uintptr_t>(xp) % 16) % 16 / sizeof(float)));
  const int64_t nv = (n - head) / 4, tail = head + nv * 4;
  for (int64_t c = threadIdx.x; c < head; c += blockDim.x) keep_best(xp[c], int(c), v, idx);
  const float4* xv = reinterpret_cast<const float4*>(xp + head);
  for (int64_t c0 = threadIdx.x; c0 < nv; c0 += int64_t(blockDim.x) * kArgmaxUnroll) {
    float4 q[kArgmaxUnroll];
#pragma unroll
    for (int u = 0; u < kArgmaxUnroll; ++u) {
      const int64_t c = c0 + int64_t(u) * blockDim.x;
      q[u] = c < nv ? xv[c] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
#pragma unroll
    for (int u = 0; u < kArgmaxUnroll; ++u) {
      const int64_t c = c0 + int64_t(u) * blockDim.x;
      if (c >= nv) break;
      const int e = int(head + 4 * c);
      keep_best(q[u].x, e, v, idx);
      keep_best(q[u].y, e + 1, v, idx);
      keep_best(q[u].z, e + 2, v, idx);
      keep_best(q[u].w, e + 3, v, idx);
    }
  }
  for (int64_t c = tail + threadIdx.x; c < n; c += blockDim.x) keep_best(xp[c], int(c), v, idx);
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
    keep_best(ov, oi, v, idx);
  }
  if (threadIdx.x % 32 == 0) {
    sv[threadIdx.x / 32] = v;
    si[threadIdx.x / 32] = idx;
  }
  __syncthreads();
  if (threadIdx.x >= 32) return;
  v = threadIdx.x < blockDim.x / 32 ? sv[threadIdx.x] : -INFINITY;
  idx = threadIdx.x < blockDim.x / 32 ? si[threadIdx.x] : INT_MAX;
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
    keep_best(ov, oi, v, idx);
  }
  if (threadIdx.x == 0) out[blockIdx.x * out_stride] = idx;
}

// k passes of block_best: O(k V) work, fine for the small k of sampling.
__global__ void top_k_kernel(const float* x, Rows xr, int k, float* values, Rows vr,
                             int32_t* indices, Rows ir) {
  __shared__ float sv[kThreads];
  __shared__ int si[kThreads];
  extern __shared__ int taken[];
  const float* xp = x + xr.offset(blockIdx.x);
  for (int j = 0; j < k; ++j) {
    float v;
    int i;
    block_best(xp, xr.cols, taken, j, sv, si, &v, &i);
    if (threadIdx.x == 0) {
      taken[j] = i;
      values[vr.offset(blockIdx.x) + j] = v;
      indices[ir.offset(blockIdx.x) + j] = i;
    }
    __syncthreads();
  }
}

}  // namespace

cudaError_t launch_softmax(const float* x, Rows xr, float* out, Rows outr, bool log,
                           cudaStream_t stream) {
  if (xr.count == 0 || xr.cols == 0) return cudaSuccess;
  // float4 when every row starts 16-byte aligned in both tensors.
  bool vec = true;
  auto aligned_rows = [&](const float* p, const Rows& r) {
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
    for (int d = 0; d < r.lead; ++d)
      if (r.shape[d] > 1 && r.stride[d] % 4 != 0) return false;
    return true;
  };
  vec = aligned_rows(x, xr) && aligned_rows(out, outr);
  const unsigned rows = unsigned(xr.count);
  if (log && vec)
    softmax_kernel<true, true><<<rows, kSoftmaxThreads, 0, stream>>>(x, xr, out, outr);
  else if (log)
    softmax_kernel<true, false><<<rows, kSoftmaxThreads, 0, stream>>>(x, xr, out, outr);
  else if (vec)
    softmax_kernel<false, true><<<rows, kSoftmaxThreads, 0, stream>>>(x, xr, out, outr);
  else
    softmax_kernel<false, false><<<rows, kSoftmaxThreads, 0, stream>>>(x, xr, out, outr);
  return cudaGetLastError();
}

cudaError_t launch_argmax(const float* x, Rows xr, int32_t* out, int64_t out_stride,
                          cudaStream_t stream) {
  if (xr.count == 0) return cudaSuccess;
  launch_kernel(argmax_kernel, dim3(unsigned(xr.count)), dim3(kArgmaxThreads), 0, stream, x, xr,
                out, out_stride);
  return cudaGetLastError();
}

cudaError_t launch_top_k(const float* x, Rows xr, int k, float* values, Rows vr, int32_t* indices,
                         Rows ir, cudaStream_t stream) {
  if (xr.count == 0 || k == 0) return cudaSuccess;
  top_k_kernel<<<unsigned(xr.count), kThreads, size_t(k) * sizeof(int), stream>>>(x, xr, k, values,
                                                                                  vr, indices, ir);
  return cudaGetLastError();
}

}  // namespace hearth::ops::cuda
