// embedding gather against the reference (exact: widening to f32 loses nothing).
#include <fmt/format.h>

#include "op_test_util.h"
#include "ops/embedding.h"
#include "ops/reference/reference.h"

namespace hearth::ops::testing {
namespace {

class EmbeddingTest : public OpTest {};

TEST_P(EmbeddingTest, GathersRows) {
  Rng rng(21);
  for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    for (auto [vocab, hidden, tokens] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1},
                                         {10, 7, 5},
                                         {300, 64, 33},
                                         {1000, 100, 1},
                                         {77, 2051, 9}}) {
      SCOPED_TRACE(fmt::format("{} V={} H={} T={}", dtype_name(dtype), vocab, hidden, tokens));
      Tensor table = random_float({vocab, hidden}, dtype, rng);
      std::vector<int32_t> ids;
      for (int64_t t = 0; t < tokens; ++t) ids.push_back(int32_t(rng.integer(0, vocab - 1)));
      ids[0] = int32_t(vocab - 1);
      Tensor tid = Tensor::from_vector(ids, {tokens});
      Tensor out = empty_padded({tokens, hidden}, DType::f32, tokens % 2);
      poison(out);
      Tensor ref = Tensor::empty({tokens, hidden}, DType::f32);
      reference::embedding(table, tid, ref);
      Tensor dout = to_dev(out);
      embedding(to_dev(table), to_dev(tid), dout);
      fetch(dout, out);
      expect_close(out, ref, 0.0);
    }
  }
}

TEST_P(EmbeddingTest, OutOfRangeIdIsAnError) {
  if (!device().is_cpu()) GTEST_SKIP() << "id range is checked on the host only";
  Tensor table = Tensor::zeros({10, 4}, DType::f32);
  Tensor out = Tensor::empty({2, 4}, DType::f32);
  for (int32_t bad : {10, -1}) {
    Tensor ids = Tensor::from_vector(std::vector<int32_t>{3, bad}, {2});
    try {
      embedding(table, ids, out);
      ADD_FAILURE() << "no error for id " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
      EXPECT_NE(std::string(e.what()).find(std::to_string(bad)), std::string::npos) << e.what();
    }
  }
}

TEST_P(EmbeddingTest, OutOfRangeIdOnDeviceFailsAtTheNextRead) {
  // On CUDA the ids are checked by the kernel without a sync; the error comes with the next
  // device -> host transfer and names the first bad id and its position.
  if (device().is_cpu()) GTEST_SKIP() << "device-side id check: the CPU checks ids at once";
  Tensor table = to_dev(Tensor::zeros({10, 4}, DType::f32));
  Tensor out = to_dev(Tensor::empty({3, 4}, DType::f32));
  Tensor ids = to_dev(Tensor::from_vector(std::vector<int32_t>{3, 12, -1}, {3}));
  embedding(table, ids, out);
  try {
    to_host(out);
    ADD_FAILURE() << "no error for id 12";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("id 12 at position 1"), std::string::npos) << e.what();
  }
  // The error is reported once; valid ids afterwards work.
  Tensor good = to_dev(Tensor::from_vector(std::vector<int32_t>{9, 0, 4}, {3}));
  embedding(table, good, out);
  EXPECT_NO_THROW(to_host(out));
}

HEARTH_OP_TEST_ON_ALL_DEVICES(EmbeddingTest);

}  // namespace
}  // namespace hearth::ops::testing
