// Reference quantized KV cache: quantize each token's head vectors with the reference MLX
// quantizer, and attend by dequantizing every plane to f32 and running the reference
// paged_attention (dequantize-then-attend, mlx-lm's quantized_scaled_dot_product_attention).
#include <cstring>

#include "ops/reference/reference.h"

namespace hearth::ops::reference {
namespace {

void write_plane(const Tensor& src, int64_t t, int64_t h, int64_t block, int64_t row,
                 const Tensor& packed, const Tensor& scales, const Tensor& biases, int bits,
                 int group_size) {
  const int64_t d = src.dim(2);
  // The head vector in the cache's dtype (what a dense cache would hold), then MLX's quantizer.
  Tensor vec = Tensor::empty({1, d}, scales.dtype());
  for (int64_t c = 0; c < d; ++c) set(vec, {0, c}, get(src, {t, h, c}));
  QuantizedWeight q =
      reference::affine_quantize(vec, bits, group_size, scales.dtype(), MlxQuantizer::gpu);
  for (int64_t w = 0; w < packed.dim(3); ++w)
    set(packed, {block, h, row, w}, get(q.packed, {0, w}));
  for (int64_t g = 0; g < scales.dim(3); ++g) {
    set(scales, {block, h, row, g}, get(q.scales, {0, g}));
    set(biases, {block, h, row, g}, get(q.biases, {0, g}));
  }
}

}  // namespace

void write_kv_quantized(const Tensor& k, const Tensor& v, const Tensor& slots,
                        QuantizedKvPlanes& cache) {
  const int64_t block_size = cache.block_size();
  const int64_t capacity = cache.num_blocks() * block_size;
  for (int64_t t = 0; t < k.dim(0); ++t) {
    const int64_t slot = get_int(slots, {t});
    if (slot < 0) continue;  // padding token
    if (slot >= capacity)
      fail(ErrorCode::invalid_argument,
           "write_kv_quantized: slot {} of token {} is past the cache ({} slots)", slot, t,
           capacity);
    const int64_t block = slot / block_size, row = slot % block_size;
    for (int64_t h = 0; h < k.dim(1); ++h) {
      write_plane(k, t, h, block, row, cache.k_packed, cache.k_scales, cache.k_biases, cache.bits,
                  cache.group_size);
      write_plane(v, t, h, block, row, cache.v_packed, cache.v_scales, cache.v_biases, cache.bits,
                  cache.group_size);
    }
  }
}

Tensor dequantize_kv_plane(const QuantizedKvPlanes& cache, bool keys) {
  const int64_t rows = cache.num_blocks() * cache.kv_heads() * cache.block_size();
  const Tensor& packed = keys ? cache.k_packed : cache.v_packed;
  const Tensor& scales = keys ? cache.k_scales : cache.v_scales;
  const Tensor& biases = keys ? cache.k_biases : cache.v_biases;
  QuantizedWeight w;
  w.bits = cache.bits;
  w.group_size = cache.group_size;
  w.packed = packed.reshape({rows, packed.dim(3)});
  w.scales = scales.reshape({rows, scales.dim(3)});
  w.biases = biases.reshape({rows, biases.dim(3)});
  Tensor dense = Tensor::empty({rows, cache.head_dim()}, DType::f32);
  reference::affine_dequantize(w, dense);
  return dense.reshape(
      {cache.num_blocks(), cache.kv_heads(), cache.block_size(), cache.head_dim()});
}

void paged_attention_quantized(const Tensor& q, const QuantizedKvPlanes& cache,
                               const AttentionMeta& meta, float scale, Tensor& out) {
  reference::paged_attention(q, dequantize_kv_plane(cache, true), dequantize_kv_plane(cache, false),
                             meta, scale, out);
}

}  // namespace hearth::ops::reference
