// Paged attention on the GPU: writing new K/V rows into the block pool, and causal GQA attention
// (sliding window) over block tables with an online softmax. Correct-first: one block per
// (query row, head), each warp walks a strided share of the keys with its own running max/sum and
// the warps' partial states are merged at the end (the split-KV flash-decoding kernel of issue 4
// replaces it).
#include <cfloat>
#include <type_traits>

#include "ops/cuda/device_types.cuh"

namespace hearth::ops::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxHeadDim = kMaxAttentionHeadDim;
constexpr int kPerLane = kMaxHeadDim / 32;

template <typename S, typename C>
__global__ void write_kv_kernel(const S* k, const S* v, Rows kr, Rows vr, const int32_t* slots,
                                C* k_cache, C* v_cache, int block_size, int64_t kv_heads,
                                int64_t head_dim, int64_t tokens) {
  const int64_t row = blockIdx.x;  // (t, h)
  const int64_t t = row / kv_heads, h = row % kv_heads;
  const int32_t slot = slots[t];
  if (slot < 0) return;  // padding: skipped
  const int64_t block = slot / block_size, r = slot % block_size;
  const int64_t base = ((block * kv_heads + h) * block_size + r) * head_dim;
  const S* kp = k + kr.offset(row);
  const S* vp = v + vr.offset(row);
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    if constexpr (std::is_same_v<S, C>) {
      k_cache[base + d] = kp[d];
      v_cache[base + d] = vp[d];
    } else {
      k_cache[base + d] = from_f32<C>(to_f32(kp[d]));
      v_cache[base + d] = from_f32<C>(to_f32(vp[d]));
    }
  }
}

template <typename C>
__global__ void attention_kernel(const float* q, Rows qr, const C* k_cache, const C* v_cache,
                                 const int32_t* query_start, const int32_t* context_lens,
                                 const int32_t* block_tables, int64_t table_stride, int num_seqs,
                                 int block_size, int64_t heads, int64_t kv_heads, int64_t head_dim,
                                 float scale, int window, const int32_t* key_positions,
                                 int64_t key_positions_stride, const int32_t* query_positions,
                                 float* out, Rows outr) {
  __shared__ float qs[kMaxHeadDim];
  __shared__ float part_m[kWarps], part_l[kWarps];
  __shared__ float part_acc[kWarps][kMaxHeadDim];
  const int64_t row = blockIdx.x;  // (t, h)
  const int64_t t = row / heads, h = row % heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // The sequence that owns query row t.
  int s = 0;
  while (s + 1 < num_seqs && query_start[s + 1] <= t) ++s;
  const int64_t q_len = query_start[s + 1] - query_start[s];
  const int64_t ctx = context_lens[s];
  const int64_t pos = ctx - q_len + (t - query_start[s]);
  // Slot order: slots [first, last]. By position: every slot, each checked against its position.
  const int32_t* key_pos = key_positions ? key_positions + s * key_positions_stride : nullptr;
  const int64_t qpos = key_pos ? query_positions[t] : pos;
  const int64_t first = key_pos ? 0 : window > 0 ? max(int64_t(0), pos - window + 1) : 0;
  const int64_t last = key_pos ? ctx - 1 : pos;
  const int64_t kvh = h / (heads / kv_heads);
  const float* qp = q + qr.offset(row);
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) qs[d] = qp[d] * scale;
  __syncthreads();

  float m = -FLT_MAX, l = 0.0f;
  float acc[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) acc[i] = 0.0f;
  const int32_t* table = block_tables + s * table_stride;
  for (int64_t j = first + warp; j <= last; j += kWarps) {
    if (key_pos) {
      const int64_t kpos = key_pos[j];
      if (kpos < 0 || kpos > qpos || (window > 0 && qpos - kpos >= window)) continue;
    }
    const int64_t block = table[j / block_size], r = j % block_size;
    const int64_t base = ((block * kv_heads + kvh) * block_size + r) * head_dim;
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      if (d < head_dim) dot += qs[d] * to_f32(k_cache[base + d]);
    }
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    const float m_new = fmaxf(m, dot);
    const float correction = expf(m - m_new), p = expf(dot - m_new);
    l = l * correction + p;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      if (d < head_dim) acc[i] = acc[i] * correction + p * to_f32(v_cache[base + d]);
    }
    m = m_new;
  }
  if (lane == 0) {
    part_m[warp] = m;
    part_l[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t d = lane + 32 * i;
    if (d < head_dim) part_acc[warp][d] = acc[i];
  }
  __syncthreads();
  float gm = -FLT_MAX;
  for (int w = 0; w < kWarps; ++w)
    if (part_l[w] > 0.0f) gm = fmaxf(gm, part_m[w]);
  float gl = 0.0f;
  for (int w = 0; w < kWarps; ++w)
    if (part_l[w] > 0.0f) gl += part_l[w] * expf(part_m[w] - gm);
  float* op = out + outr.offset(row);
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float sum = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (part_l[w] > 0.0f) sum += part_acc[w][d] * expf(part_m[w] - gm);
    op[d] = gl > 0.0f ? sum / gl : 0.0f;
  }
}

}  // namespace

cudaError_t launch_write_kv(const void* k, Rows kr, const void* v, Rows vr, Elem kv_elem,
                            const int32_t* slots, void* k_cache, void* v_cache, Elem cache_elem,
                            int block_size, int64_t kv_heads, int64_t head_dim, int64_t tokens,
                            cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  return dispatch_float(kv_elem, [&](auto src_tag) {
    using S = decltype(src_tag);
    return dispatch_float(cache_elem, [&](auto tag) {
      using C = decltype(tag);
      write_kv_kernel<S, C><<<unsigned(tokens * kv_heads), 128, 0, stream>>>(
          static_cast<const S*>(k), static_cast<const S*>(v), kr, vr, slots,
          static_cast<C*>(k_cache), static_cast<C*>(v_cache), block_size, kv_heads, head_dim,
          tokens);
      return cudaGetLastError();
    });
  });
}

cudaError_t launch_paged_attention(const AttentionArgs& a, cudaStream_t stream) {
  if (a.tokens == 0) return cudaSuccess;
  if (a.head_dim > kMaxHeadDim) return cudaErrorInvalidValue;
  return dispatch_float(a.cache_elem, [&](auto tag) {
    using C = decltype(tag);
    attention_kernel<C><<<unsigned(a.tokens * a.heads), 32 * kWarps, 0, stream>>>(
        a.q, a.qr, static_cast<const C*>(a.k_cache), static_cast<const C*>(a.v_cache),
        a.query_start, a.context_lens, a.block_tables, a.table_stride, a.num_seqs, a.block_size,
        a.heads, a.kv_heads, a.head_dim, a.scale, a.window, a.key_positions, a.key_positions_stride,
        a.query_positions, a.out, a.outr);
    return cudaGetLastError();
  });
}

}  // namespace hearth::ops::cuda
