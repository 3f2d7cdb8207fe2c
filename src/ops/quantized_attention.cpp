// write_kv_quantized and paged_attention_quantized front-ends: every check knowable from shapes,
// dtypes and devices (as ops/attention.cpp does for the dense cache); values inside the metadata
// tensors (lengths, block ids, slots) are checked by the backend.
#include "ops/quantized_attention.h"

#include <algorithm>
#include <cmath>

#include "ops/backend.h"
#include "ops/validate.h"

namespace hearth::ops {

using namespace detail;
namespace {

template <size_t N>
bool contains(const int (&values)[N], int v) {
  return std::find(std::begin(values), std::end(values), v) != std::end(values);
}

void check_plane_group(const char* op, const char* which, const Tensor& packed,
                       const char* packed_name, const Tensor& scales, const char* scales_name,
                       const Tensor& biases, const char* biases_name, const Tensor& reference,
                       int64_t head_dim, const QuantizedKvPlanes& c) {
  check_defined(op, packed_name, packed);
  check_defined(op, scales_name, scales);
  check_defined(op, biases_name, biases);
  check_ndim(op, packed_name, packed, 4);
  check_dtype(op, packed_name, packed, DType::u32);
  check_dtype_in(op, scales_name, scales, {DType::f32, DType::f16, DType::bf16});
  check_dtype(op, biases_name, biases, scales.dtype());
  if (scales.dtype() != c.k_scales.dtype())
    fail(ErrorCode::invalid_argument, "{}: {} scales are {} but the key scales are {}", op, which,
         dtype_name(scales.dtype()), dtype_name(c.k_scales.dtype()));
  const Dims expected_packed{reference.dim(0), reference.dim(1), reference.dim(2),
                             head_dim * c.bits / 32};
  const Dims expected_groups{reference.dim(0), reference.dim(1), reference.dim(2),
                             head_dim / c.group_size};
  check_shape(op, packed_name, packed, expected_packed);
  check_shape(op, scales_name, scales, expected_groups);
  check_shape(op, biases_name, biases, expected_groups);
  check_contiguous(op, packed_name, packed);
  check_contiguous(op, scales_name, scales);
  check_contiguous(op, biases_name, biases);
  check_device(op, packed_name, packed, reference.device());
  check_device(op, scales_name, scales, reference.device());
  check_device(op, biases_name, biases, reference.device());
}

void check_meta(const char* op, const AttentionMeta& meta, Device device) {
  check_attention_tables(op, meta, device);
  // Positions come only with a wrapped rotating cache, and mlx-lm has no rotating quantized cache.
  if (meta.key_positions.defined() || meta.query_positions.defined())
    fail(ErrorCode::unsupported,
         "{}: meta.key_positions/query_positions (a rotating cache) are not supported with a "
         "quantized KV cache (mlx-lm has no rotating quantized cache)",
         op);
}

}  // namespace

void check_kv_quantization(const char* what, int bits, int group_size, int64_t head_dim) {
  if (!contains(kKvQuantBits, bits))
    fail(ErrorCode::invalid_argument, "{}: kv_bits must be 2, 3, 4, 5, 6 or 8, got {}", what, bits);
  if (!contains(kKvQuantGroupSizes, group_size))
    fail(ErrorCode::invalid_argument, "{}: kv_group_size must be 32, 64 or 128, got {}", what,
         group_size);
  if (head_dim <= 0 || head_dim % group_size != 0)
    fail(ErrorCode::invalid_argument,
         "{}: kv_group_size {} does not divide the head dimension {} (MLX quantizes each head "
         "vector in whole groups)",
         what, group_size, head_dim);
}

void QuantizedKvPlanes::validate(const char* op) const {
  check_defined(op, "k_packed", k_packed);
  check_ndim(op, "k_packed", k_packed, 4);
  if (!contains(kKvQuantBits, bits))
    fail(ErrorCode::invalid_argument, "{}: kv_bits must be 2, 3, 4, 5, 6 or 8, got {}", op, bits);
  if ((k_packed.dim(3) * 32) % bits != 0)
    fail(ErrorCode::invalid_argument,
         "{}: k_packed {} has {} u32 words per row, not a whole number of {}-bit codes", op,
         k_packed.shape().str(), k_packed.dim(3), bits);
  const int64_t d = head_dim();
  check_kv_quantization(op, bits, group_size, d);
  check_plane_group(op, "key", k_packed, "k_packed", k_scales, "k_scales", k_biases, "k_biases",
                    k_packed, d, *this);
  check_plane_group(op, "value", v_packed, "v_packed", v_scales, "v_scales", v_biases, "v_biases",
                    k_packed, d, *this);
  const Tensor* planes[] = {&k_packed, &k_scales, &k_biases, &v_packed, &v_scales, &v_biases};
  const char* names[] = {"k_packed", "k_scales", "k_biases", "v_packed", "v_scales", "v_biases"};
  for (int i = 0; i < 6; ++i)
    for (int j = i + 1; j < 6; ++j)
      check_no_overlap(op, names[j], *planes[j], names[i], *planes[i]);
}

void write_kv_quantized(const Tensor& k, const Tensor& v, const Tensor& slots,
                        QuantizedKvPlanes& cache) {
  const char* op = "write_kv_quantized";
  cache.validate(op);
  check_defined(op, "k", k);
  check_defined(op, "v", v);
  check_defined(op, "slots", slots);
  check_ndim(op, "k", k, 3);
  check_dtype_in(op, "k", k, {DType::f32, DType::f16, DType::bf16});
  check_dtype_in(op, "v", v, {DType::f32, DType::f16, DType::bf16});
  check_same_shape(op, "v", v, "k", k);
  check_dtype(op, "slots", slots, DType::i32);
  check_shape(op, "slots", slots, {k.dim(0)});
  if (k.dim(1) != cache.kv_heads() || k.dim(2) != cache.head_dim())
    fail(ErrorCode::invalid_argument,
         "write_kv_quantized: k {} has {} kv heads of dim {}, the cache has {} of dim {}",
         k.shape().str(), k.dim(1), k.dim(2), cache.kv_heads(), cache.head_dim());
  check_rows_contiguous(op, "k", k);
  check_rows_contiguous(op, "v", v);
  const Device device = cache.device();
  check_device(op, "k", k, device);
  check_device(op, "v", v, device);
  check_device(op, "slots", slots, device);
  backend_for(device).write_kv_quantized(k, v, slots, cache);
}

void paged_attention_quantized(const Tensor& q, const QuantizedKvPlanes& cache,
                               const AttentionMeta& meta, float scale, Tensor& out) {
  const char* op = "paged_attention_quantized";
  cache.validate(op);
  check_defined(op, "q", q);
  check_defined(op, "out", out);
  check_ndim(op, "q", q, 3);
  check_activation(op, "q", q);
  check_activation(op, "out", out);
  check_same_shape(op, "out", out, "q", q);
  check_rows_contiguous(op, "q", q);
  check_rows_contiguous(op, "out", out);
  const int64_t n_heads = q.dim(1), n_kv = cache.kv_heads(), head_dim = q.dim(2);
  if (head_dim != cache.head_dim())
    fail(ErrorCode::invalid_argument,
         "paged_attention_quantized: q head_dim {} but the cache holds {}-bit codes of dim {}",
         head_dim, cache.bits, cache.head_dim());
  if (n_kv == 0 || n_heads % n_kv != 0)
    fail(ErrorCode::invalid_argument,
         "paged_attention_quantized: {} query heads is not a multiple of {} kv heads", n_heads,
         n_kv);
  const Device device = cache.device();
  check_meta(op, meta, device);
  if (!(scale > 0.0f) || !std::isfinite(scale))
    fail(ErrorCode::invalid_argument,
         "paged_attention_quantized: scale must be finite and > 0, got {}", scale);
  check_device(op, "q", q, device);
  check_device(op, "out", out, device);
  check_no_overlap(op, "out", out, "q", q);
  backend_for(device).paged_attention_quantized(q, cache, meta, scale, out);
}

// ---- Backend defaults: no quantized KV kernels on this backend --------------------------------

void Backend::write_kv_quantized(const Tensor&, const Tensor&, const Tensor&, QuantizedKvPlanes&) {
  fail(ErrorCode::unsupported, "write_kv_quantized: not implemented on the {} backend", name());
}
void Backend::paged_attention_quantized(const Tensor&, const QuantizedKvPlanes&,
                                        const AttentionMeta&, float, Tensor&) {
  fail(ErrorCode::unsupported, "paged_attention_quantized: not implemented on the {} backend",
       name());
}

}  // namespace hearth::ops
