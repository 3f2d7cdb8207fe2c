// paged_attention and write_kv front-ends. Checks everything knowable from shapes and dtypes;
// values inside the metadata tensors (lengths, block ids, slots) live on the op's device and are
// checked by the backend.
#include "ops/attention.h"

#include <cmath>

#include "ops/backend.h"
#include "ops/validate.h"

namespace hearth::ops {

using namespace detail;
namespace {

void check_cache_pair(const char* op, const Tensor& k_cache, const Tensor& v_cache) {
  check_defined(op, "k_cache", k_cache);
  check_defined(op, "v_cache", v_cache);
  check_ndim(op, "k_cache", k_cache, 4);
  check_dtype_in(op, "k_cache", k_cache, {DType::f32, DType::f16, DType::bf16});
  check_same_shape(op, "v_cache", v_cache, "k_cache", k_cache);
  if (v_cache.dtype() != k_cache.dtype())
    fail(ErrorCode::invalid_argument, "{}: k_cache is {} but v_cache is {}", op,
         dtype_name(k_cache.dtype()), dtype_name(v_cache.dtype()));
  check_contiguous(op, "k_cache", k_cache);
  check_contiguous(op, "v_cache", v_cache);
  check_device(op, "v_cache", v_cache, k_cache.device());
  check_no_overlap(op, "v_cache", v_cache, "k_cache", k_cache);
}

}  // namespace

void check_attention_tables(const char* op, const AttentionMeta& meta, Device device) {
  check_defined(op, "meta.query_start", meta.query_start);
  check_defined(op, "meta.context_lens", meta.context_lens);
  check_defined(op, "meta.block_tables", meta.block_tables);
  check_dtype(op, "meta.query_start", meta.query_start, DType::i32);
  check_dtype(op, "meta.context_lens", meta.context_lens, DType::i32);
  check_dtype(op, "meta.block_tables", meta.block_tables, DType::i32);
  check_ndim(op, "meta.query_start", meta.query_start, 1);
  check_ndim(op, "meta.block_tables", meta.block_tables, 2);
  const int64_t num_seqs = meta.context_lens.dim(0);
  check_shape(op, "meta.context_lens", meta.context_lens, {num_seqs});
  check_shape(op, "meta.query_start", meta.query_start, {num_seqs + 1});
  if (meta.block_tables.dim(0) != num_seqs)
    fail(ErrorCode::invalid_argument, "{}: meta.block_tables has {} rows for {} sequences", op,
         meta.block_tables.dim(0), num_seqs);
  check_rows_contiguous(op, "meta.block_tables", meta.block_tables);
  if (meta.sliding_window < 0)
    fail(ErrorCode::invalid_argument, "{}: sliding_window must be >= 0, got {}", op,
         meta.sliding_window);
  check_device(op, "meta.query_start", meta.query_start, device);
  check_device(op, "meta.context_lens", meta.context_lens, device);
  check_device(op, "meta.block_tables", meta.block_tables, device);
}

void check_write_kv(const char* op, const Tensor& k, const Tensor& v, const Tensor& slots,
                    const Tensor& k_cache, const Tensor& v_cache) {
  check_cache_pair(op, k_cache, v_cache);
  check_defined(op, "k", k);
  check_defined(op, "v", v);
  check_defined(op, "slots", slots);
  check_ndim(op, "k", k, 3);
  check_dtype_in(op, "k", k, {DType::f32, DType::f16, DType::bf16});
  check_dtype_in(op, "v", v, {DType::f32, DType::f16, DType::bf16});
  check_same_shape(op, "v", v, "k", k);
  check_dtype(op, "slots", slots, DType::i32);
  check_shape(op, "slots", slots, {k.dim(0)});
  if (k.dim(1) != k_cache.dim(1) || k.dim(2) != k_cache.dim(3))
    fail(ErrorCode::invalid_argument,
         "{}: k {} has {} kv heads of dim {}, the cache {} has {} of dim {}", op, k.shape().str(),
         k.dim(1), k.dim(2), k_cache.shape().str(), k_cache.dim(1), k_cache.dim(3));
  check_rows_contiguous(op, "k", k);
  check_rows_contiguous(op, "v", v);
  Device device = k_cache.device();
  check_device(op, "k", k, device);
  check_device(op, "v", v, device);
  check_device(op, "slots", slots, device);
}

void write_kv(const Tensor& k, const Tensor& v, const Tensor& slots, Tensor& k_cache,
              Tensor& v_cache) {
  check_write_kv("write_kv", k, v, slots, k_cache, v_cache);
  backend_for(k_cache.device()).write_kv(k, v, slots, k_cache, v_cache);
}

void paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                     const AttentionMeta& meta, float scale, Tensor& out) {
  const char* op = "paged_attention";
  check_cache_pair(op, k_cache, v_cache);
  check_defined(op, "q", q);
  check_defined(op, "out", out);
  check_ndim(op, "q", q, 3);
  check_activation(op, "q", q);
  check_activation(op, "out", out);
  check_same_shape(op, "out", out, "q", q);
  check_rows_contiguous(op, "q", q);
  check_rows_contiguous(op, "out", out);
  int64_t n_heads = q.dim(1), n_kv = k_cache.dim(1), head_dim = q.dim(2);
  if (head_dim != k_cache.dim(3))
    fail(ErrorCode::invalid_argument, "paged_attention: q head_dim {} but the cache has {}",
         head_dim, k_cache.dim(3));
  if (n_kv == 0 || n_heads % n_kv != 0)
    fail(ErrorCode::invalid_argument,
         "paged_attention: {} query heads is not a multiple of {} kv heads", n_heads, n_kv);
  check_attention_tables(op, meta, k_cache.device());
  const int64_t num_seqs = meta.context_lens.dim(0);
  if (meta.key_positions.defined() != meta.query_positions.defined())
    fail(ErrorCode::invalid_argument,
         "paged_attention: meta.key_positions and meta.query_positions go together");
  if (meta.key_positions.defined()) {
    check_dtype(op, "meta.key_positions", meta.key_positions, DType::i32);
    check_dtype(op, "meta.query_positions", meta.query_positions, DType::i32);
    check_ndim(op, "meta.key_positions", meta.key_positions, 2);
    check_shape(op, "meta.query_positions", meta.query_positions, {q.dim(0)});
    if (meta.key_positions.dim(0) != num_seqs || meta.key_positions.dim(1) < meta.max_context_len)
      fail(ErrorCode::invalid_argument,
           "paged_attention: meta.key_positions is {} for {} sequences of up to {} slots",
           meta.key_positions.shape().str(), num_seqs, meta.max_context_len);
    check_rows_contiguous(op, "meta.key_positions", meta.key_positions);
    check_device(op, "meta.key_positions", meta.key_positions, k_cache.device());
    check_device(op, "meta.query_positions", meta.query_positions, k_cache.device());
  }
  if (!(scale > 0.0f) || !std::isfinite(scale))
    fail(ErrorCode::invalid_argument, "paged_attention: scale must be finite and > 0, got {}",
         scale);
  Device device = k_cache.device();
  check_device(op, "q", q, device);
  check_device(op, "out", out, device);
  check_no_overlap(op, "out", out, "q", q);
  backend_for(device).paged_attention(q, k_cache, v_cache, meta, scale, out);
}

}  // namespace hearth::ops
