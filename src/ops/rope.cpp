// rope and rope_qk front-ends (the rotation). The frequency tables are in rope_frequencies.cpp.
#include "ops/rope.h"

#include <cmath>

#include "ops/attention.h"
#include "ops/backend.h"
#include "ops/validate.h"

namespace hearth::ops {

using namespace detail;

namespace {

// x [T, H, D] against positions [T] and inv_freq [R/2], R <= D.
void check_rope_input(const char* op, const char* name, const Tensor& x, const Tensor& positions,
                      const Tensor& inv_freq) {
  check_defined(op, name, x);
  check_ndim(op, name, x, 3);
  check_activation(op, name, x);
  check_rows_contiguous(op, name, x);
  if (inv_freq.dim(0) * 2 > x.dim(2))
    fail(ErrorCode::invalid_argument,
         "{}: inv_freq has {} entries, so {} rotary dims, more than head_dim {}", op,
         inv_freq.dim(0), inv_freq.dim(0) * 2, x.dim(2));
  check_shape(op, "positions", positions, {x.dim(0)});
  check_device(op, name, x, positions.device());
}

void check_tables(const char* op, const Tensor& positions, const Tensor& inv_freq,
                  float attention_scaling) {
  check_defined(op, "positions", positions);
  check_defined(op, "inv_freq", inv_freq);
  check_dtype(op, "positions", positions, DType::i32);
  check_dtype(op, "inv_freq", inv_freq, DType::f32);
  check_ndim(op, "positions", positions, 1);
  check_ndim(op, "inv_freq", inv_freq, 1);
  check_contiguous(op, "inv_freq", inv_freq);
  if (!std::isfinite(attention_scaling))
    fail(ErrorCode::invalid_argument, "{}: attention_scaling must be finite, got {}", op,
         attention_scaling);
  check_device(op, "inv_freq", inv_freq, positions.device());
}

// rope_qk's arguments (rope_qk_write_kv's too): q and k rope inputs of one head_dim, apart.
void check_rope_qk(const char* op, const Tensor& q, const Tensor& k, const Tensor& positions,
                   const Tensor& inv_freq, float attention_scaling) {
  check_tables(op, positions, inv_freq, attention_scaling);
  check_rope_input(op, "q", q, positions, inv_freq);
  check_rope_input(op, "k", k, positions, inv_freq);
  if (k.dim(2) != q.dim(2))
    fail(ErrorCode::invalid_argument, "{}: k has head_dim {}, q has {}", op, k.dim(2), q.dim(2));
  check_no_overlap(op, "k", k, "q", q);
}

}  // namespace

void rope(const Tensor& x, const Tensor& positions, const Tensor& inv_freq, float attention_scaling,
          Tensor& out) {
  const char* op = "rope";
  check_tables(op, positions, inv_freq, attention_scaling);
  check_rope_input(op, "x", x, positions, inv_freq);
  check_defined(op, "out", out);
  check_dtype(op, "out", out, x.dtype());
  check_same_shape(op, "out", out, "x", x);
  check_rows_contiguous(op, "out", out);
  check_device(op, "out", out, x.device());
  check_alias_ok(op, "out", out, "x", x);
  backend_for(x.device()).rope(x, positions, inv_freq, attention_scaling, out);
}

void rope_qk(Tensor& q, Tensor& k, const Tensor& positions, const Tensor& inv_freq,
             float attention_scaling) {
  check_rope_qk("rope_qk", q, k, positions, inv_freq, attention_scaling);
  backend_for(q.device()).rope_qk(q, k, positions, inv_freq, attention_scaling);
}

void rope_qk_write_kv(Tensor& q, Tensor& k, const Tensor& v, const Tensor& positions,
                      const Tensor& inv_freq, float attention_scaling, const Tensor& slots,
                      Tensor& k_cache, Tensor& v_cache) {
  const char* op = "rope_qk_write_kv";
  check_rope_qk(op, q, k, positions, inv_freq, attention_scaling);
  check_write_kv(op, k, v, slots, k_cache, v_cache);
  check_device(op, "q", q, k_cache.device());
  check_no_overlap(op, "k", k, "v", v);
  backend_for(q.device())
      .rope_qk_write_kv(q, k, v, positions, inv_freq, attention_scaling, slots, k_cache, v_cache);
}

}  // namespace hearth::ops
