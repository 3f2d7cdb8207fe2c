// sample and apply_logit_penalties on every device against the host definition (the
// ops::sampling_rows functions, which the CPU backend runs): the same token ids and the same
// processed logits, bit for bit, over random rows, ties, -inf entries and parameter combinations.
#include "ops/sampling.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "op_test_util.h"

namespace hearth::ops::testing {
namespace {

const float kInf = std::numeric_limits<float>::infinity();

class SamplingTest : public OpTest {};

enum class Kind { random, tied, masked };

// Log-softmax rows [rows, cols] (double normalization): random logits, logits from a few values
// (ties everywhere), or random logits with ~30 % -inf entries.
Tensor logprobs_rows(int64_t rows, int64_t cols, Kind kind, Rng& rng) {
  Tensor t = Tensor::empty({rows, cols}, DType::f32);
  float* p = t.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    float* row = p + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      if (kind == Kind::tied)
        row[c] = float(rng.integer(-6, 2)) * 0.5f;
      else
        row[c] = rng.uniform(-8.0f, 8.0f);
      if (kind == Kind::masked && c > 0 && rng.integer(0, 9) < 3) row[c] = -kInf;
    }
    double max = -kInf, sum = 0;
    for (int64_t c = 0; c < cols; ++c) max = std::max(max, double(row[c]));
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(double(row[c]) - max);
    const double lse = max + std::log(sum);
    for (int64_t c = 0; c < cols; ++c) row[c] = float(double(row[c]) - lse);
  }
  return t;
}

std::vector<int32_t> host_tokens(const Tensor& lp, const SamplingParams& params,
                                 const std::vector<double>& uniforms) {
  std::vector<int32_t> out;
  const int64_t cols = lp.dim(1);
  for (int64_t r = 0; r < lp.dim(0); ++r) {
    std::vector<float> row(lp.data<float>() + r * cols, lp.data<float>() + (r + 1) * cols);
    out.push_back(sampling_rows::sample(row, params, params.temp > 0 ? uniforms[size_t(r)] : 0));
  }
  return out;
}

std::vector<int32_t> device_tokens(SamplingTest& t, const Tensor& lp, const SamplingParams& params,
                                   const std::vector<double>& uniforms) {
  Tensor ids = Tensor::empty({lp.dim(0)}, DType::i32);
  poison(ids);
  Tensor dids = t.to_dev(ids);
  Tensor dlp = t.to_dev(lp);
  sample(dlp, params, uniforms, dids);
  t.fetch(dids, ids);
  // The op leaves its input alone.
  EXPECT_EQ(t.to_host(dlp).to_vector<float>(), lp.to_vector<float>());
  return ids.to_vector<int32_t>();
}

std::vector<SamplingParams> parameter_sets(int64_t cols) {
  std::vector<SamplingParams> sets = {
      {0.0f, 0.0f, 0.0f, 1, 0},     // greedy
      {1.0f, 0.0f, 0.0f, 1, 0},     // temperature only
      {0.7f, 0.9f, 0.0f, 1, 0},     // top_p
      {1.3f, 0.5f, 0.0f, 1, 0},     // a tight top_p
      {1.0f, 0.999f, 0.0f, 1, 0},   // a loose one
      {0.8f, 0.0f, 0.05f, 1, 0},    // min_p
      {1.0f, 0.0f, 0.3f, 5, 0},     // min_p, min_tokens_to_keep > 1
      {1.0f, 0.0f, 1.0f, 40, 0},    // min_p 1: only the best and the 40 kept
      {0.6f, 0.0f, 0.0f, 1, 1},     // top_k 1
      {1.0f, 0.95f, 0.1f, 3, 20},   // everything
      {2.0f, 0.7f, 0.02f, 100, 7},  // everything, wide
  };
  if (cols > 40) sets.push_back({0.9f, 0.0f, 0.0f, 1, 40});
  return sets;
}

TEST_P(SamplingTest, MatchesTheHostChain) {
  Rng rng(71);
  std::mt19937_64 draws(72);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  int cases = 0;
  for (auto [rows, cols] :
       {std::pair<int64_t, int64_t>{1, 2}, {3, 7}, {2, 100}, {5, 1000}, {2, 32011}, {1, 128256}}) {
    for (Kind kind : {Kind::random, Kind::tied, Kind::masked}) {
      const Tensor lp = logprobs_rows(rows, cols, kind, rng);
      for (const SamplingParams& p : parameter_sets(cols)) {
        if (p.top_k >= cols) continue;
        // Several draws per case, the extremes included.
        for (int draw = 0; draw < (cols > 50000 ? 2 : 4); ++draw) {
          std::vector<double> u(static_cast<size_t>(rows));
          for (double& x : u) x = draw == 0 ? 0.0 : draw == 1 ? 0.9999999 : uniform(draws);
          SCOPED_TRACE(
              fmt::format("rows={} cols={} kind={} temp={} top_p={} min_p={} keep={} "
                          "top_k={} draw={}",
                          rows, cols, int(kind), p.temp, p.top_p, p.min_p, p.min_tokens_to_keep,
                          p.top_k, draw));
          ASSERT_EQ(device_tokens(*this, lp, p, u), host_tokens(lp, p, u));
          ++cases;
        }
      }
    }
  }
  EXPECT_GT(cases, 300);
}

// Rows whose mass is all on few tokens, and a row with a single finite entry.
TEST_P(SamplingTest, PeakedAndDegenerateRows) {
  Rng rng(73);
  const int64_t cols = 5000;
  Tensor lp = Tensor::empty({3, cols}, DType::f32);
  float* p = lp.data<float>();
  for (int64_t c = 0; c < 3 * cols; ++c) p[c] = rng.uniform(-60.0f, -40.0f);
  p[17] = -1e-6f;
  p[cols + 3] = std::log(0.6f);
  p[cols + 4000] = std::log(0.4f);
  for (int64_t c = 0; c < cols; ++c) p[2 * cols + c] = -kInf;
  p[2 * cols + 1234] = 0.0f;
  for (const SamplingParams& params : parameter_sets(cols)) {
    for (double u : {0.0, 0.3, 0.7, 0.9999999}) {
      std::vector<double> us(3, u);
      EXPECT_EQ(device_tokens(*this, lp, params, us), host_tokens(lp, params, us))
          << "temp " << params.temp << " top_p " << params.top_p << " min_p " << params.min_p
          << " top_k " << params.top_k << " u " << u;
    }
  }
}

TEST_P(SamplingTest, BadArgumentsAreRejected) {
  Tensor lp = to_dev(Tensor::empty({2, 10}, DType::f32));
  Tensor ids = to_dev(Tensor::empty({2}, DType::i32));
  std::vector<double> u = {0.5, 0.5};
  EXPECT_THROW(sample(lp, {1.0f, 0.0f, 0.0f, 1, 10}, u, ids), Error);  // top_k >= V
  EXPECT_THROW(sample(lp, {1.0f, 1.5f, 0.0f, 1, 0}, u, ids), Error);   // top_p
  EXPECT_THROW(sample(lp, {1.0f, 0.0f, 0.0f, 0, 0}, u, ids), Error);   // min_tokens_to_keep
  EXPECT_THROW(sample(lp, {1.0f, 0.0f, 0.0f, 1, 0}, {u.data(), 1}, ids), Error);  // uniforms
  EXPECT_THROW(sample(lp, {1.0f, 0.0f, 0.0f, 1, 0}, std::vector<double>{0.5, 1.0}, ids), Error);
  Tensor wrong = to_dev(Tensor::empty({3}, DType::i32));
  EXPECT_THROW(sample(lp, {1.0f, 0.0f, 0.0f, 1, 0}, u, wrong), Error);
}

// History rows of `width` ids drawn from a few values (repeats), the first `pad[r]` entries -1.
Tensor history_rows(int64_t rows, int64_t width, int64_t vocab, Rng& rng) {
  Tensor t = Tensor::empty({rows, width}, DType::i32);
  int32_t* h = t.data<int32_t>();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t pad = r % 3 == 1 ? width / 2 : r % 3 == 2 ? width : 0;
    for (int64_t j = 0; j < width; ++j)
      h[r * width + j] = j < pad ? -1 : int32_t(rng.integer(0, std::min<int64_t>(vocab, 12) - 1));
  }
  return t;
}

TEST_P(SamplingTest, PenaltiesMatchTheHostProcessors) {
  Rng rng(74);
  const int64_t rows = 4, vocab = 3000;
  for (const LogitPenalties& p :
       {LogitPenalties{1.3f, 20, 0.0f, 20, 0.0f, 20}, LogitPenalties{0.0f, 20, 0.5f, 7, 0.0f, 20},
        LogitPenalties{0.0f, 20, 0.0f, 20, 0.25f, 64}, LogitPenalties{1.7f, 10, 0.3f, 40, 0.1f, 64},
        LogitPenalties{0.8f, 64, 0.0f, 1, 0.0f, 0}}) {
    for (bool with_bias : {false, true}) {
      SCOPED_TRACE(fmt::format("repetition={}/{} presence={}/{} frequency={}/{} bias={}",
                               p.repetition, p.repetition_context, p.presence, p.presence_context,
                               p.frequency, p.frequency_context, with_bias));
      Tensor logits = random_float({rows, vocab}, DType::f32, rng, 5.0f);
      Tensor history = history_rows(rows, 64, vocab, rng);
      std::vector<int32_t> ids =
          with_bias ? std::vector<int32_t>{0, 3, 2999, 7} : std::vector<int32_t>{};
      std::vector<float> values =
          with_bias ? std::vector<float>{1.5f, -2.0f, 0.25f, -kInf} : std::vector<float>{};
      Tensor bias_ids = Tensor::from_vector(ids, {int64_t(ids.size())});
      Tensor bias_values = Tensor::from_vector(values, {int64_t(values.size())});

      // The definition: the row functions over each row's unpadded history.
      std::vector<float> expected = logits.to_vector<float>();
      for (int64_t r = 0; r < rows; ++r) {
        std::span<float> row(expected.data() + r * vocab, size_t(vocab));
        std::vector<int32_t> h;
        for (int64_t j = 0; j < 64; ++j)
          if (int32_t id = history.data<int32_t>()[r * 64 + j]; id >= 0) h.push_back(id);
        for (size_t b = 0; b < ids.size(); ++b) row[size_t(ids[b])] += values[b];
        using namespace sampling_rows;
        if (p.repetition != 0) repetition_penalty(last(h, p.repetition_context), row, p.repetition);
        if (p.presence != 0) presence_penalty(last(h, p.presence_context), row, p.presence);
        if (p.frequency != 0) frequency_penalty(last(h, p.frequency_context), row, p.frequency);
      }
      Tensor dlogits = to_dev(logits);
      apply_logit_penalties(dlogits, to_dev(history), to_dev(bias_ids), to_dev(bias_values), p);
      EXPECT_EQ(to_host(dlogits).to_vector<float>(), expected);
    }
  }
}

TEST_P(SamplingTest, PenaltyArgumentsAreChecked) {
  Tensor logits = to_dev(Tensor::empty({2, 10}, DType::f32));
  Tensor history = to_dev(Tensor::empty({2, 5}, DType::i32));
  Tensor ids = to_dev(Tensor::empty({0}, DType::i32));
  Tensor values = to_dev(Tensor::empty({0}, DType::f32));
  // A context wider than the history uploaded.
  EXPECT_THROW(apply_logit_penalties(logits, history, ids, values, {1.2f, 6, 0.0f, 20, 0.0f, 20}),
               Error);
  EXPECT_THROW(apply_logit_penalties(logits, history, ids, values, {-1.0f, 5, 0.0f, 5, 0.0f, 5}),
               Error);
  Tensor short_history = to_dev(Tensor::empty({1, 5}, DType::i32));
  EXPECT_THROW(
      apply_logit_penalties(logits, short_history, ids, values, {1.2f, 5, 0.0f, 5, 0.0f, 5}),
      Error);
}

HEARTH_OP_TEST_ON_ALL_DEVICES(SamplingTest);

}  // namespace
}  // namespace hearth::ops::testing
