// Front-end argument checks: mismatched shapes, dtypes, ranks and layouts raise hearth::Error
// (invalid_argument) with a message naming the op and the tensor, never crash.
#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <string>

#include "ops/attention.h"
#include "ops/copy.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "ops/softmax.h"
#include "ops/topk.h"

namespace hearth::ops {
namespace {

Tensor f32(Dims shape) {
  return Tensor::zeros(shape, DType::f32);
}
Tensor i32(Dims shape) {
  return Tensor::zeros(shape, DType::i32);
}
// An output argument (the ops take outputs by non-const reference).
Tensor& out_arg(Tensor t) {
  static std::deque<Tensor> kept;
  kept.push_back(std::move(t));
  return kept.back();
}

// Expects fn to throw an invalid_argument Error whose message contains every fragment.
void expect_bad(const std::function<void()>& fn, std::initializer_list<std::string> fragments) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning " << *fragments.begin();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument) << e.what();
    for (const std::string& f : fragments)
      EXPECT_NE(std::string(e.what()).find(f), std::string::npos)
          << "message \"" << e.what() << "\" lacks \"" << f << "\"";
  }
}

TEST(OpArguments, Matmul) {
  Tensor out = f32({2, 4});
  expect_bad([&] { matmul(f32({2, 3}), f32({4, 5}), out); }, {"matmul", "K must match"});
  expect_bad([&] { matmul(f32({2, 3}), f32({5, 3}), out); }, {"matmul", "out", "[2, 5]"});
  expect_bad(
      [&] {
        matmul(Tensor::zeros({2, 3}, DType::f16), f32({4, 3}), out);
      },
      {"matmul", "x must be f32/bf16"});
  expect_bad([&] { matmul(f32({2, 3}), i32({4, 3}), out); }, {"matmul", "w must be"});
  Tensor bias = f32({5});
  expect_bad(
      [&] {
        matmul(f32({2, 3}), f32({4, 3}), out, &bias);
      },
      {"matmul", "bias has 5 elements"});
  expect_bad([&] { matmul(f32({2, 3, 1}), f32({4, 3}), out); }, {"matmul", "x must have 2"});
  Tensor wide = f32({4, 6});
  expect_bad(
      [&] {
        matmul(f32({2, 3}), wide.slice(1, 0, 3), out);
      },
      {"matmul", "w must be contiguous"});
  expect_bad([&] { matmul(f32({2, 3}), Tensor(), out); }, {"matmul", "w is an undefined tensor"});
}

TEST(OpArguments, NormRopeElementwise) {
  Tensor x = f32({3, 64});
  Tensor out = f32({3, 64});
  expect_bad([&] { rms_norm(x, f32({63}), 1e-5f, out); },
             {"rms_norm: weight has 63 elements, x rows have 64"});
  expect_bad([&] { rms_norm(x, f32({64}), 1e-5f, out_arg(f32({3, 65}))); }, {"rms_norm", "out"});
  expect_bad([&] { rms_norm(x, f32({64}), -1.0f, out); }, {"rms_norm", "eps"});
  expect_bad(
      [&] {
        rms_norm(x.transpose(0, 1), f32({3}), 1e-5f, out_arg(f32({64, 3})));
      },
      {"rms_norm", "contiguous last dimension"});

  Tensor q = f32({4, 2, 8}), qo = f32({4, 2, 8});
  expect_bad([&] { rope(q, i32({3}), f32({4}), 1.0f, qo); }, {"rope", "positions"});
  expect_bad([&] { rope(q, i32({4}), f32({5}), 1.0f, qo); }, {"rope", "more than head_dim 8"});
  expect_bad([&] { rope(q, f32({4}), f32({4}), 1.0f, qo); }, {"rope", "positions must be i32"});
  expect_bad(
      [&] {
        rope(f32({4, 16}), i32({4}), f32({4}), 1.0f, qo);
      },
      {"rope", "x must have 3 dimensions"});

  expect_bad([&] { silu_mul(f32({2, 8}), f32({2, 9}), out_arg(f32({2, 8}))); }, {"silu_mul", "up"});
  expect_bad(
      [&] {
        add(f32({2, 8}), f32({8, 2}), out_arg(f32({2, 8})));
      },
      {"add", "b has shape [8, 2]"});
  Tensor base = f32({4, 8});
  Tensor shifted = base.slice(0, 1, 4);  // out == b exactly is fine, but out overlaps a partly
  expect_bad([&] { add(base.slice(0, 0, 3), shifted, shifted); }, {"add", "partly overlaps"});
  expect_bad([&] { softmax(f32({2, 5}), out_arg(f32({2, 6}))); }, {"softmax", "out"});
  expect_bad(
      [&] {
        log_softmax(i32({2, 5}), out_arg(f32({2, 5})));
      },
      {"log_softmax", "x must be f32"});
}

TEST(OpArguments, SelectEmbeddingCopy) {
  expect_bad([&] { argmax(f32({2, 5}), out_arg(i32({3}))); }, {"argmax", "out"});
  Tensor v = f32({2, 6}), i = i32({2, 6});
  expect_bad([&] { top_k(f32({2, 5}), 6, v, i); }, {"top_k", "k = 6"});
  expect_bad([&] { top_k(f32({2, 5}), 0, v, i); }, {"top_k", "k = 0"});
  Tensor v3 = f32({2, 3}), i3 = f32({2, 3});
  expect_bad([&] { top_k(f32({2, 5}), 3, v3, i3); }, {"top_k", "indices must be i32"});
  Tensor out = f32({3, 4});
  expect_bad([&] { embedding(f32({10, 4}), i32({2}), out); }, {"embedding", "out"});
  expect_bad([&] { embedding(f32({10, 4}), f32({3}), out); }, {"embedding", "ids must be i32"});
  Tensor dst = f32({2, 3});
  expect_bad([&] { copy(f32({3, 2}), dst); }, {"copy", "shape"});
  expect_bad([&] { copy(i32({2, 3}), dst); }, {"copy", "cannot convert"});
}

TEST(OpArguments, Attention) {
  Tensor kc = f32({4, 2, 16, 8}), vc = f32({4, 2, 16, 8});
  Tensor q = f32({3, 4, 8}), out = f32({3, 4, 8});
  AttentionMeta meta;
  meta.query_start = i32({2});
  meta.context_lens = i32({1});
  meta.block_tables = i32({1, 2});
  // query_start is all zeros: it does not cover the 3 query rows (a value check in the backend).
  expect_bad([&] { paged_attention(q, kc, vc, meta, 0.3f, out); }, {"query_start"});
  expect_bad(
      [&] {
        paged_attention(f32({3, 3, 8}), kc, vc, meta, 0.3f, out);
      },
      {"paged_attention", "out"});
  Tensor q3 = f32({3, 3, 8}), o3 = f32({3, 3, 8});
  expect_bad([&] { paged_attention(q3, kc, vc, meta, 0.3f, o3); },
             {"3 query heads is not a multiple of 2 kv heads"});
  expect_bad(
      [&] {
        paged_attention(f32({3, 4, 9}), kc, vc, meta, 0.3f, out_arg(f32({3, 4, 9})));
      },
      {"head_dim 9"});
  Tensor vc16 = Tensor::zeros({4, 2, 16, 8}, DType::f16);
  expect_bad([&] { paged_attention(q, kc, vc16, meta, 0.3f, out); }, {"v_cache is f16"});
  AttentionMeta bad = meta;
  bad.query_start = i32({3});
  expect_bad([&] { paged_attention(q, kc, vc, bad, 0.3f, out); }, {"meta.query_start", "[2]"});
  bad = meta;
  bad.sliding_window = -1;
  expect_bad([&] { paged_attention(q, kc, vc, bad, 0.3f, out); }, {"sliding_window"});
  expect_bad([&] { paged_attention(q, kc, vc, meta, 0.0f, out); }, {"scale"});
  expect_bad(
      [&] {
        write_kv(f32({3, 2, 8}), f32({3, 2, 8}), i32({2}), kc, vc);
      },
      {"write_kv", "slots"});
  expect_bad(
      [&] {
        write_kv(f32({3, 1, 8}), f32({3, 1, 8}), i32({3}), kc, vc);
      },
      {"write_kv", "kv heads"});
  Tensor slots = Tensor::from_vector(std::vector<int32_t>{0, 64, 1}, {3});
  expect_bad(
      [&] {
        write_kv(f32({3, 2, 8}), f32({3, 2, 8}), slots, kc, vc);
      },
      {"write_kv", "slot 64"});
  // rope_qk_write_kv: rope_qk's checks and write_kv's, under its own name.
  Tensor rq = f32({3, 4, 8}), rk = f32({3, 2, 8});
  expect_bad(
      [&] {
        rope_qk_write_kv(rq, rk, f32({3, 2, 8}), i32({3}), f32({4}), 1.0f, i32({2}), kc, vc);
      },
      {"rope_qk_write_kv", "slots"});
  expect_bad(
      [&] {
        rope_qk_write_kv(rq, rk, f32({3, 2, 4}), i32({3}), f32({4}), 1.0f, i32({3}), kc, vc);
      },
      {"rope_qk_write_kv", "v"});
  expect_bad(
      [&] {
        rope_qk_write_kv(rq, rk, f32({3, 2, 8}), i32({3}), f32({5}), 1.0f, i32({3}), kc, vc);
      },
      {"rope_qk_write_kv", "more than head_dim 8"});
}

TEST(OpArguments, RopeFrequencies) {
  RopeParams p;
  p.rotary_dim = 7;
  expect_bad([&] { rope_frequencies(p, 0); }, {"rotary_dim must be even"});
  p.rotary_dim = 64;
  p.type = RopeType::llama3;
  expect_bad([&] { rope_frequencies(p, 0); }, {"original_max_position_embeddings"});
  p.type = RopeType::dynamic;
  expect_bad([&] { rope_frequencies(p, 0); }, {"max_position_embeddings"});
  p.type = RopeType::linear;
  p.factor = 0.0;
  expect_bad([&] { rope_frequencies(p, 0); }, {"factor"});
}

}  // namespace
}  // namespace hearth::ops
