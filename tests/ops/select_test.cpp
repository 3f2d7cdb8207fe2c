// argmax and top_k against the reference: exact, including ties (lower index wins) and NaN
// (ranks above every number, as in torch).
#include <fmt/format.h>

#include <cmath>

#include "op_test_util.h"
#include "ops/reference/reference.h"
#include "ops/topk.h"

namespace hearth::ops::testing {
namespace {

class SelectTest : public OpTest {};

// Rows whose values come from a small set, so ties are everywhere.
Tensor tied_logits(int64_t rows, int64_t cols, Rng& rng) {
  Tensor t = Tensor::empty({rows, cols}, DType::f32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < rows * cols; ++i) p[i] = float(rng.integer(-3, 3)) * 0.5f + 0.25f;
  return t;
}

void check_exact(SelectTest& t, const Tensor& x, int k) {
  int64_t rows = x.dim(0);
  Tensor ref_idx = Tensor::empty({rows}, DType::i32);
  reference::argmax(x, ref_idx);
  Tensor idx = Tensor::empty({rows}, DType::i32);
  poison(idx);
  Tensor didx = t.to_dev(idx);
  argmax(t.to_dev(x), didx);
  t.fetch(didx, idx);
  EXPECT_EQ(idx.to_vector<int32_t>(), ref_idx.to_vector<int32_t>()) << "argmax";

  Tensor ref_v = Tensor::empty({rows, k}, DType::f32), ref_i = Tensor::empty({rows, k}, DType::i32);
  reference::top_k(x, k, ref_v, ref_i);
  Tensor v = Tensor::empty({rows, k}, DType::f32), i = Tensor::empty({rows, k}, DType::i32);
  poison(v);
  poison(i);
  Tensor dv = t.to_dev(v), di = t.to_dev(i);
  top_k(t.to_dev(x), k, dv, di);
  t.fetch(dv, v);
  t.fetch(di, i);
  EXPECT_EQ(count_poison(v) + count_poison(i), 0);
  EXPECT_EQ(i.to_vector<int32_t>(), ref_i.to_vector<int32_t>()) << "top_k indices";
  std::vector<float> a = v.to_vector<float>(), b = ref_v.to_vector<float>();
  for (size_t j = 0; j < a.size(); ++j)
    EXPECT_TRUE(a[j] == b[j] || (std::isnan(a[j]) && std::isnan(b[j]))) << "value " << j;
}

TEST_P(SelectTest, RandomAndTiedRows) {
  Rng rng(61);
  for (auto [rows, cols, k] : {std::tuple<int64_t, int64_t, int>{1, 1, 1},
                               {3, 7, 3},
                               {2, 9, 9},
                               {5, 100, 10},
                               {2, 32011, 50},
                               {1, 128256, 40}}) {
    SCOPED_TRACE(fmt::format("rows={} cols={} k={}", rows, cols, k));
    check_exact(*this, random_float({rows, cols}, DType::f32, rng, 10.0f), k);
    check_exact(*this, tied_logits(rows, cols, rng), k);
  }
}

TEST_P(SelectTest, NanRanksFirst) {
  Rng rng(62);
  Tensor x = random_float({3, 20}, DType::f32, rng);
  float* p = x.data<float>();
  p[5] = NAN;
  p[20 + 3] = NAN;
  p[20 + 11] = NAN;
  check_exact(*this, x, 4);
  std::vector<int32_t> idx(3);
  Tensor out = Tensor::empty({3}, DType::i32);
  Tensor dout = to_dev(out);
  argmax(to_dev(x), dout);
  fetch(dout, out);
  EXPECT_EQ(out.to_vector<int32_t>()[0], 5);
  EXPECT_EQ(out.to_vector<int32_t>()[1], 3);
  // Long rows (vector loads on the GPU): NaNs far from the start, one of them before a tie of
  // the row's largest number; rows start at unaligned offsets (5001 columns).
  Tensor y = random_float({2, 5001}, DType::f32, rng);
  float* q = y.data<float>();
  q[4097] = NAN;
  q[4500] = NAN;
  q[5001 + 2] = 1e30f;
  q[5001 + 4999] = 1e30f;
  q[5001 + 3000] = NAN;
  check_exact(*this, y, 3);
}

HEARTH_OP_TEST_ON_ALL_DEVICES(SelectTest);

}  // namespace
}  // namespace hearth::ops::testing
