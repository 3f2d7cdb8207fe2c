// The quantized KV cache on the GPU (ops/quantized_attention.h): quantize-on-write of new keys and
// values, and causal GQA paged attention (sliding window) that decodes each key and value element
// from its code, scale and bias inside the kernel. Correct-first, shaped like attention.cu: one
// thread block per (query row, head), each warp walks a strided share of the keys with its own
// online softmax, and the warps' states are merged at the end.
#include <cfloat>
#include <type_traits>

#include "ops/cuda/device_types.cuh"
#include "ops/cuda/quantized_kv_launch.h"

namespace hearth::ops::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxHeadDim = kMaxAttentionHeadDim;
constexpr int kPerLane = kMaxHeadDim / 32;
constexpr int kMaxGroupWords = 128 * 8 / 32;  // group_size 128 at 8 bits

// Code `i` of a row's little-endian bit stream of `bits`-bit codes.
__device__ __forceinline__ uint32_t code_at(const uint32_t* row, int64_t i, int bits) {
  const int64_t bit = i * bits;
  const int64_t word = bit >> 5;
  const int shift = int(bit & 31);
  uint32_t v = row[word] >> shift;
  if (shift + bits > 32) v |= row[word + 1] << (32 - shift);
  return v & ((1u << bits) - 1u);
}

// One thread per group of one (token, kv head) row. The arithmetic is MLX's Metal/CUDA quantizer
// step by step, each operation rounded on its own (no contraction into FMAs).
template <typename S, typename C>
__global__ void write_kv_quantized_kernel(const S* src, Rows sr, const int32_t* slots,
                                          int64_t tokens, uint32_t* packed, C* scales, C* biases,
                                          int bits, int group_size, int block_size,
                                          int64_t kv_heads, int64_t head_dim) {
  const int64_t row = blockIdx.x;  // (t, h)
  const int64_t t = row / kv_heads, h = row % kv_heads;
  const int32_t slot = slots[t];
  if (slot < 0) return;  // padding: skipped
  const int64_t block = slot / block_size, r = slot % block_size;
  const int64_t dst_row = (block * kv_heads + h) * block_size + r;
  const int64_t groups = head_dim / group_size;
  const int64_t words_per_group = int64_t(group_size) * bits / 32;
  const S* x = src + sr.offset(row);
  const float n_bins = float((1 << bits) - 1);
  const float eps = 1e-7f;
  for (int64_t g = threadIdx.x; g < groups; g += blockDim.x) {
    const S* xg = x + g * group_size;
    // The values as the cache dtype holds them.
    auto value = [&](int j) { return to_f32(from_f32<C>(to_f32(xg[j]))); };
    float w_min = __int_as_float(0x7f800000);  // +inf
    float w_max = 0.0f;                        // the GPU kernels start the maximum at 0
    for (int j = 0; j < group_size; ++j) {
      const float v = value(j);
      w_min = fminf(w_min, v);
      w_max = fmaxf(w_max, v);
    }
    const bool min_side = fabsf(w_min) > fabsf(w_max);
    float scale = fmaxf(__fdiv_rn(__fsub_rn(w_max, w_min), n_bins), eps);
    if (!min_side) scale = -scale;
    const float edge = min_side ? w_min : w_max;
    const float q0 = roundf(__fdiv_rn(edge, scale));
    float bias = 0.0f;
    if (q0 != 0.0f) {
      scale = __fdiv_rn(edge, q0);
      bias = edge;
    }
    uint32_t words[kMaxGroupWords];
    for (int64_t w = 0; w < words_per_group; ++w) words[w] = 0;
    for (int j = 0; j < group_size; ++j) {
      float c = roundf(__fdiv_rn(__fsub_rn(value(j), bias), scale));
      c = fminf(fmaxf(c, 0.0f), n_bins);
      const uint32_t code = uint32_t(c);
      const int bit = j * bits, word = bit >> 5, shift = bit & 31;
      words[word] |= code << shift;
      if (shift + bits > 32) words[word + 1] |= code >> (32 - shift);
    }
    uint32_t* out = packed + dst_row * (head_dim * bits / 32) + g * words_per_group;
    for (int64_t w = 0; w < words_per_group; ++w) out[w] = words[w];
    scales[dst_row * groups + g] = from_f32<C>(scale);
    biases[dst_row * groups + g] = from_f32<C>(bias);
  }
}

template <typename C>
__device__ __forceinline__ float decode(const uint32_t* packed, const C* scales, const C* biases,
                                        int64_t row, int64_t d, int64_t words_per_row,
                                        int64_t groups, int bits, int group_size) {
  const float code = float(code_at(packed + row * words_per_row, d, bits));
  const int64_t g = row * groups + d / group_size;
  // scale * code + bias with two roundings, as affine_dequantize into f32.
  return __fadd_rn(__fmul_rn(code, to_f32(scales[g])), to_f32(biases[g]));
}

template <typename C>
__global__ void quantized_attention_kernel(AttentionArgs a, QuantizedKvArgs c) {
  __shared__ float qs[kMaxHeadDim];
  __shared__ float part_m[kWarps], part_l[kWarps];
  __shared__ float part_acc[kWarps][kMaxHeadDim];
  const int64_t row = blockIdx.x;  // (t, h)
  const int64_t t = row / a.heads, h = row % a.heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int s = 0;
  while (s + 1 < a.num_seqs && a.query_start[s + 1] <= t) ++s;
  const int64_t q_len = a.query_start[s + 1] - a.query_start[s];
  const int64_t ctx = a.context_lens[s];
  const int64_t pos = ctx - q_len + (t - a.query_start[s]);
  const int64_t first = a.window > 0 ? max(int64_t(0), pos - a.window + 1) : 0;
  const int64_t kvh = h / (a.heads / a.kv_heads);
  const int64_t head_dim = a.head_dim;
  const float* qp = a.q + a.qr.offset(row);
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) qs[d] = qp[d] * a.scale;
  __syncthreads();

  const int64_t words_per_row = head_dim * c.bits / 32;
  const int64_t groups = head_dim / c.group_size;
  const C* k_scales = static_cast<const C*>(c.k_scales);
  const C* k_biases = static_cast<const C*>(c.k_biases);
  const C* v_scales = static_cast<const C*>(c.v_scales);
  const C* v_biases = static_cast<const C*>(c.v_biases);
  float m = -FLT_MAX, l = 0.0f;
  float acc[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) acc[i] = 0.0f;
  const int32_t* table = a.block_tables + s * a.table_stride;
  for (int64_t j = first + warp; j <= pos; j += kWarps) {
    const int64_t block = table[j / a.block_size], r = j % a.block_size;
    const int64_t kv_row = (block * a.kv_heads + kvh) * a.block_size + r;
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      if (d < head_dim)
        dot += qs[d] * decode(c.k_packed, k_scales, k_biases, kv_row, d, words_per_row, groups,
                              c.bits, c.group_size);
    }
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    const float m_new = fmaxf(m, dot);
    const float correction = expf(m - m_new), p = expf(dot - m_new);
    l = l * correction + p;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      if (d < head_dim)
        acc[i] = acc[i] * correction + p * decode(c.v_packed, v_scales, v_biases, kv_row, d,
                                                  words_per_row, groups, c.bits, c.group_size);
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
  float* op = a.out + a.outr.offset(row);
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float sum = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (part_l[w] > 0.0f) sum += part_acc[w][d] * expf(part_m[w] - gm);
    op[d] = gl > 0.0f ? sum / gl : 0.0f;
  }
}

}  // namespace

cudaError_t launch_write_kv_quantized(const void* k, Rows kr, const void* v, Rows vr, Elem kv_elem,
                                      const int32_t* slots, int64_t tokens,
                                      const QuantizedKvArgs& c, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  if (int64_t(c.group_size) * c.bits / 32 > kMaxGroupWords) return cudaErrorInvalidValue;
  return dispatch_float(kv_elem, [&](auto src_tag) {
    using S = decltype(src_tag);
    return dispatch_float(c.scale_elem, [&](auto tag) {
      using C = decltype(tag);
      const unsigned grid = unsigned(tokens * c.kv_heads);
      write_kv_quantized_kernel<S, C><<<grid, 32, 0, stream>>>(
          static_cast<const S*>(k), kr, slots, tokens, c.k_packed, static_cast<C*>(c.k_scales),
          static_cast<C*>(c.k_biases), c.bits, c.group_size, c.block_size, c.kv_heads, c.head_dim);
      write_kv_quantized_kernel<S, C><<<grid, 32, 0, stream>>>(
          static_cast<const S*>(v), vr, slots, tokens, c.v_packed, static_cast<C*>(c.v_scales),
          static_cast<C*>(c.v_biases), c.bits, c.group_size, c.block_size, c.kv_heads, c.head_dim);
      return cudaGetLastError();
    });
  });
}

cudaError_t launch_paged_attention_quantized(const AttentionArgs& a, const QuantizedKvArgs& c,
                                             cudaStream_t stream) {
  if (a.tokens == 0) return cudaSuccess;
  if (a.head_dim > kMaxHeadDim) return cudaErrorInvalidValue;
  return dispatch_float(c.scale_elem, [&](auto tag) {
    using C = decltype(tag);
    quantized_attention_kernel<C><<<unsigned(a.tokens * a.heads), 32 * kWarps, 0, stream>>>(a, c);
    return cudaGetLastError();
  });
}

}  // namespace hearth::ops::cuda
