// Rotating caches with sink tokens through a whole model, against an independent float64 numpy
// forward whose per-layer caches and masks follow mlx-lm's RotatingKVCache (rotating_reference.py,
// run with Debian's python3-numpy). Prompts are longer than the ring; prefill runs in one chunk or
// in several, decode steps wrap the ring, and chunks arrive after it wrapped. The reference
// reproduces transformers' logits when its ring is larger than the text (checked below), so the
// comparison tests hearth's ring, not a second copy of its model code.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "../common/test_python.h"
#include "io/safetensors.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "ops/backend.h"
#include "ops/copy.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

model::LoadOptions on(Device device) {
  model::LoadOptions o;
  o.device = device;
  return o;
}

const fs::path kModel = fs::path(HEARTH_TEST_DATA_DIR) / "models" / "qwen3-plain";

std::vector<int32_t> fixture_ids() {
  auto file = io::SafetensorsFile::open(kModel / "golden_logits.safetensors");
  return file->tensor("input_ids").to_vector<int32_t>();
}

// Logits [rows, vocab] of every row of every chunk from the numpy reference.
std::vector<float> reference_logits(int64_t max_size, int64_t keep,
                                    const std::vector<std::vector<int32_t>>& chunks) {
  char tmpl[] = "/tmp/hearth_rotating_ref_XXXXXX";
  const char* dir = mkdtemp(tmpl);
  EXPECT_NE(dir, nullptr);
  const fs::path out = fs::path(dir) / "logits.f32";
  std::string cmd = test_env::test_python() + " '" + std::string(HEARTH_SOURCE_DIR) +
                    "/tests/model/rotating_reference.py' '" + kModel.string() + "' " +
                    std::to_string(max_size) + " " + std::to_string(keep) + " '" + out.string() +
                    "'";
  for (const auto& c : chunks) {
    cmd += " ";
    for (size_t i = 0; i < c.size(); ++i) {
      if (i) cmd += ',';  // (a char, not "," + string: g++ 12 warns -Wrestrict on that)
      cmd += std::to_string(c[i]);
    }
  }
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(out, std::ios::binary);
  std::vector<float> values;
  float v;
  while (in.read(reinterpret_cast<char*>(&v), sizeof v)) values.push_back(v);
  fs::remove_all(dir);
  return values;
}

// Splits the fixture's ids into chunks of the given sizes.
std::vector<std::vector<int32_t>> chunked(const std::vector<int64_t>& sizes) {
  std::vector<int32_t> ids = fixture_ids();
  std::vector<std::vector<int32_t>> chunks;
  size_t at = 0;
  for (int64_t n : sizes) {
    EXPECT_LE(at + size_t(n), ids.size());
    chunks.emplace_back(ids.begin() + int64_t(at), ids.begin() + int64_t(at) + n);
    at += size_t(n);
  }
  return chunks;
}

class RotatingReference : public testing::TestWithParam<Device> {
 protected:
  void SetUp() override {
    if (std::system((test_env::test_python() + " -c 'import numpy' 2>/dev/null").c_str()) != 0)
      GTEST_SKIP() << "needs " << test_env::test_python()
                   << " with numpy (Debian python3-numpy, or HEARTH_TEST_PYTHON)";
    try {
      ops::backend_for(GetParam());
    } catch (const Error& e) {
      GTEST_SKIP() << "no backend for " << GetParam().str() << ": " << e.what();
    }
  }

  void check(int64_t max_size, int64_t keep, const std::vector<int64_t>& sizes) {
    SCOPED_TRACE(testing::Message() << "max_size " << max_size << " keep " << keep);
    std::vector<std::vector<int32_t>> chunks = chunked(sizes);
    std::vector<float> want = reference_logits(max_size, keep, chunks);
    auto model = model::load_model(kModel, on(GetParam()));
    const int64_t V = model->config().vocab_size;
    auto pool = std::make_shared<kv::BlockPool>(model->kv_layout(4), 64);
    kv::KvCache cache(pool, std::vector<kv::CachePolicy>(size_t(model->config().num_layers),
                                                         kv::CachePolicy{max_size, keep}));
    int64_t row = 0;
    for (size_t c = 0; c < chunks.size(); ++c) {
      model::SequenceInput in{.tokens = chunks[c], .cache = &cache, .all_logits = true};
      std::vector<float> got =
          ops::to_device(model->forward(std::span<const model::SequenceInput>(&in, 1)),
                         Device::cpu())
              .to_vector<float>();
      for (size_t r = 0; r < chunks[c].size(); ++r, ++row) {
        ASSERT_LE(size_t((row + 1) * V), want.size());
        double max_ref = 0, max_diff = 0;
        for (int64_t v = 0; v < V; ++v) {
          const double w = want[size_t(row * V + v)], g = got[r * size_t(V) + size_t(v)];
          max_ref = std::max(max_ref, std::fabs(w));
          max_diff = std::max(max_diff, std::fabs(g - w));
        }
        EXPECT_LE(max_diff / max_ref, 1e-4) << "chunk " << c << " row " << r << " (token " << row
                                            << ", cache offset " << cache.size() << ")";
      }
    }
    EXPECT_EQ(size_t(row * V), want.size());
  }
};

TEST_P(RotatingReference, ReferenceEqualsTransformersWithoutRotation) {
  // The reference itself: a ring larger than the text reproduces HF's golden logits.
  std::vector<int32_t> ids = fixture_ids();
  std::vector<float> ref = reference_logits(1000, 4, {ids});
  auto file = io::SafetensorsFile::open(kModel / "golden_logits.safetensors");
  std::vector<float> hf = file->tensor("logits").to_vector<float>();
  ASSERT_EQ(ref.size(), hf.size());
  double max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < hf.size(); ++i) {
    max_ref = std::max(max_ref, double(std::fabs(hf[i])));
    max_diff = std::max(max_diff, double(std::fabs(ref[i] - hf[i])));
  }
  EXPECT_LE(max_diff / max_ref, 1e-5);
}

TEST_P(RotatingReference, SinksWithThePromptInOneChunk) {
  check(8, 4, {20, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1});
}

TEST_P(RotatingReference, SinksAcrossChunks) {
  check(8, 4, {3, 5, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 6, 1, 1, 1, 1, 1});
  check(10, 2, {13, 1, 1, 1, 7, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3});
}

TEST_P(RotatingReference, NoSinks) {
  check(7, 0, {9, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1, 1, 1, 1});
}

INSTANTIATE_TEST_SUITE_P(Devices, RotatingReference,
                         testing::Values(Device::cpu(), Device::cuda(0)),
                         [](const testing::TestParamInfo<Device>& info) {
                           return info.param.is_cpu() ? std::string("cpu") : std::string("cuda");
                         });

}  // namespace
}  // namespace hearth
