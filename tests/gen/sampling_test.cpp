// Sampler and logits-processor semantics against mlx-lm's sample_utils.py, computed here from the
// definitions with small hand-checkable distributions.
#include "gen/sampling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>

#include "core/error.h"
#include "ops/sampling.h"
#include "ops/softmax.h"

namespace hearth::gen {
namespace {

const float kInf = std::numeric_limits<float>::infinity();

std::vector<float> logprobs_of(const std::vector<double>& probs) {
  std::vector<float> out;
  for (double p : probs) out.push_back(float(std::log(p)));
  return out;
}

std::vector<bool> kept(const std::vector<float>& lp) {
  std::vector<bool> k;
  for (float v : lp) k.push_back(v != -kInf);
  return k;
}

TEST(Sampling, TopPKeepsSmallestSetAboveThreshold) {
  // Ascending probs 0.1, 0.2, 0.3, 0.4: cumulative 0.1, 0.3, 0.6, 1.0 > 1 - 0.7 = 0.3? The token
  // with cumulative exactly 0.3 is dropped (strict >), as in mlx-lm.
  std::vector<float> lp = logprobs_of({0.3, 0.1, 0.4, 0.2});
  apply_top_p(lp, 0.7f);
  EXPECT_EQ(kept(lp), (std::vector<bool>{true, false, true, false}));
  lp = logprobs_of({0.3, 0.1, 0.4, 0.2});
  apply_top_p(lp, 0.75f);
  EXPECT_EQ(kept(lp), (std::vector<bool>{true, false, true, true}));
}

TEST(Sampling, MinPScalesByTopProbability) {
  std::vector<float> lp = logprobs_of({0.5, 0.3, 0.15, 0.05});
  apply_min_p(lp, 0.2f, 1);  // threshold 0.1
  EXPECT_EQ(kept(lp), (std::vector<bool>{true, true, true, false}));
  lp = logprobs_of({0.5, 0.3, 0.15, 0.05});
  apply_min_p(lp, 0.9f, 3);  // threshold 0.45 keeps one, min_tokens_to_keep restores three
  EXPECT_EQ(kept(lp), (std::vector<bool>{true, true, true, false}));
}

TEST(Sampling, TopKKeepsK) {
  std::vector<float> lp = logprobs_of({0.1, 0.4, 0.2, 0.3});
  apply_top_k(lp, 2);
  EXPECT_EQ(kept(lp), (std::vector<bool>{false, true, false, true}));
}

TEST(Sampling, XtcRemovesAllAboveThresholdButTheLeastLikely) {
  Rng rng(1);
  std::vector<float> lp = logprobs_of({0.4, 0.3, 0.2, 0.1});
  std::vector<int32_t> none;
  apply_xtc(lp, 1.0f, 0.15f, none, rng);  // above 0.15: 0.4, 0.3, 0.2 -> keep 0.2 (and 0.1)
  EXPECT_EQ(kept(lp), (std::vector<bool>{false, false, true, true}));
  lp = logprobs_of({0.4, 0.3, 0.2, 0.1});
  std::vector<int32_t> special{0};
  apply_xtc(lp, 1.0f, 0.15f, special, rng);
  EXPECT_EQ(kept(lp), (std::vector<bool>{true, false, true, true}));
  lp = logprobs_of({0.4, 0.3, 0.2, 0.1});
  apply_xtc(lp, 0.0f, 0.15f, none, rng);  // never applied
  EXPECT_EQ(kept(lp), (std::vector<bool>{true, true, true, true}));
}

TEST(Sampling, CategoricalFollowsTemperatureScaledDistribution) {
  std::vector<float> lp = logprobs_of({0.5, 0.25, 0.125, 0.125});
  Rng rng(42);
  std::map<int, int> counts;
  const int n = 200000;
  for (int i = 0; i < n; ++i) ++counts[categorical_sample(lp, 1.0f, rng)];
  EXPECT_NEAR(counts[0] / double(n), 0.5, 0.01);
  EXPECT_NEAR(counts[1] / double(n), 0.25, 0.01);
  // Temperature 0.5 squares the probabilities: 0.25, 0.0625, 0.015625 x2 -> normalised.
  counts.clear();
  for (int i = 0; i < n; ++i) ++counts[categorical_sample(lp, 0.5f, rng)];
  double z = 0.25 + 0.0625 + 2 * 0.015625;
  EXPECT_NEAR(counts[0] / double(n), 0.25 / z, 0.01);
  EXPECT_NEAR(counts[2] / double(n), 0.015625 / z, 0.005);
}

TEST(Sampling, MaskedTokensAreNeverSampled) {
  std::vector<float> lp = {-kInf, std::log(0.5f), -kInf, std::log(0.5f)};
  Rng rng(3);
  for (int i = 0; i < 10000; ++i) {
    int32_t t = categorical_sample(lp, 0.7f, rng);
    ASSERT_TRUE(t == 1 || t == 3);
  }
}

TEST(Sampling, GreedyIsFirstArgmaxAndSeedsRepeat) {
  Sampler greedy = make_sampler({}, 4);
  std::vector<float> lp = {0.1f, 0.7f, 0.7f, 0.2f};
  Rng rng(0);
  EXPECT_EQ(greedy(lp, rng), 1);
  SamplerParams p;
  p.temp = 1.0f;
  p.top_k = 3;
  Sampler s = make_sampler(p, 4);
  Rng a(7), b(7);
  for (int i = 0; i < 50; ++i) {
    std::vector<float> x = logprobs_of({0.1, 0.2, 0.3, 0.4}), y = x;
    ASSERT_EQ(s(x, a), s(y, b));
  }
}

TEST(Sampling, InvalidParametersAreRejected) {
  SamplerParams p;
  p.temp = 1.0f;
  p.top_k = 4;
  EXPECT_THROW(make_sampler(p, 4), Error);
  p.top_k = 0;
  p.min_p = 1.5f;
  EXPECT_THROW(make_sampler(p, 4), Error);
  p.min_p = 0;
  p.xtc_probability = 0.5f;
  p.xtc_threshold = 0.7f;
  EXPECT_THROW(make_sampler(p, 4), Error);
}

TEST(LogitsProcessors, PenaltiesAndBias) {
  LogitsProcessorParams p;
  p.logit_bias = {{0, 1.0f}};
  p.repetition_penalty = 2.0f;
  p.repetition_context_size = 3;
  auto procs = make_logits_processors(p, 4);
  ASSERT_EQ(procs.size(), 2u);
  std::vector<int32_t> history = {3, 1, 2, 2};  // last 3: 1, 2, 2
  std::vector<float> logits = {1.0f, 4.0f, -4.0f, 8.0f};
  for (auto& f : procs) f(history, logits);
  EXPECT_EQ(logits, (std::vector<float>{2.0f, 2.0f, -8.0f, 8.0f}));

  LogitsProcessorParams q;
  q.presence_penalty = 0.5f;
  q.frequency_penalty = 0.25f;
  procs = make_logits_processors(q, 4);
  logits = {0.0f, 0.0f, 0.0f, 0.0f};
  for (auto& f : procs) f(history, logits);  // presence once, frequency per occurrence
  EXPECT_EQ(logits, (std::vector<float>{0.0f, -0.75f, -1.0f, -0.75f}));
}

TEST(LogitsProcessors, BiasOutsideVocabularyIsAnError) {
  LogitsProcessorParams p;
  p.logit_bias = {{9, 1.0f}};
  EXPECT_THROW(make_logits_processors(p, 4), Error);
}

// The device op (here its CPU backend) and make_sampler are one implementation: for the same seed
// they pick the same tokens, also when the op samples several rows at once.
TEST(DeviceSampling, OpEqualsMakeSampler) {
  const int64_t vocab = 3000, rows = 3;
  std::mt19937_64 gen(5);
  std::uniform_real_distribution<float> logit(-6.0f, 6.0f);
  for (SamplerParams p :
       {SamplerParams{0.0f}, SamplerParams{0.8f}, SamplerParams{1.0f, 0.9f},
        SamplerParams{1.2f, 0.0f, 0.1f, 4}, SamplerParams{0.7f, 0.0f, 0.0f, 1, 30},
        SamplerParams{1.0f, 0.8f, 0.05f, 2, 50}}) {
    Sampler sampler = make_sampler(p, vocab);
    Rng a(11), b(11);
    for (int step = 0; step < 20; ++step) {
      std::vector<float> logits(size_t(rows * vocab));
      for (float& v : logits) v = logit(gen);
      Tensor lp = Tensor::empty({rows, vocab}, DType::f32);
      ops::log_softmax(Tensor::from_vector(logits, {rows, vocab}), lp);
      std::vector<int32_t> expected;
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<float> row(lp.data<float>() + r * vocab, lp.data<float>() + (r + 1) * vocab);
        expected.push_back(sampler(row, a));
      }
      std::vector<double> u;
      if (p.temp > 0)
        for (int64_t r = 0; r < rows; ++r) u.push_back(b.uniform());
      Tensor ids = Tensor::empty({rows}, DType::i32);
      ops::sample(lp, {p.temp, p.top_p, p.min_p, p.min_tokens_to_keep, p.top_k}, u, ids);
      ASSERT_EQ(ids.to_vector<int32_t>(), expected) << "temp " << p.temp << " step " << step;
    }
  }
}

// DeviceSampler on the CPU device runs the same ops: its tokens and logprobs are the host path's
// (processors, log_softmax_inplace, the sampler).
TEST(DeviceSampling, DeviceSamplerEqualsTheHostPath) {
  const int64_t vocab = 500;
  SamplerParams sp{0.9f, 0.95f, 0.02f, 3, 40};
  LogitsProcessorParams pp;
  pp.logit_bias = {{4, 2.0f}, {7, -1.0f}};
  pp.repetition_penalty = 1.3f;
  pp.repetition_context_size = 8;
  pp.presence_penalty = 0.4f;
  pp.frequency_penalty = 0.2f;
  pp.frequency_context_size = 12;
  Sampler sampler = make_sampler(sp, vocab);
  auto processors = make_logits_processors(pp, vocab);
  DeviceSampler device(sp, pp, Device::cpu());
  std::mt19937_64 gen(9);
  std::uniform_real_distribution<float> logit(-5.0f, 5.0f);
  std::vector<int32_t> history = {1, 4, 4, 9, 7, 4};
  Rng a(3), b(3);
  for (int step = 0; step < 30; ++step) {
    std::vector<float> logits(static_cast<size_t>(vocab));
    for (float& v : logits) v = logit(gen);
    std::vector<float> host = logits;
    for (auto& f : processors) f(history, host);
    log_softmax_inplace(host);
    std::vector<float> scratch = host;
    const int32_t expected = sampler(scratch, a);
    Tensor t = Tensor::from_vector(logits, {1, vocab}), logprobs;
    const std::span<const int32_t> h(history);
    const int32_t token = device.sample(t, {&h, 1}, b, &logprobs)[0];
    ASSERT_EQ(token, expected) << "step " << step;
    ASSERT_EQ(logprobs.to_vector<float>(), host) << "step " << step;
    history.push_back(token);
  }
}

// Pipelined decode hands DeviceSampler the newest id on the device (sample_ids' `newest`) and a
// history without it: the penalties see the same window, so tokens and logprobs equal those of the
// full history, for histories shorter and longer than the widest penalty context (12).
TEST(DeviceSampling, NewestIdOnTheDeviceEqualsTheFullHistory) {
  const int64_t vocab = 300;
  SamplerParams sp{0.8f, 0.9f, 0.0f, 1, 0};
  LogitsProcessorParams pp;
  pp.repetition_penalty = 1.5f;
  pp.repetition_context_size = 5;
  pp.frequency_penalty = 0.7f;
  pp.frequency_context_size = 12;
  DeviceSampler sampler(sp, pp, Device::cpu());
  std::mt19937_64 gen(5);
  std::uniform_real_distribution<float> logit(-3.0f, 3.0f);
  std::vector<int32_t> history = {3};
  Rng a(11), b(11);
  for (int step = 0; step < 20; ++step) {
    std::vector<float> logits(static_cast<size_t>(vocab));
    for (float& v : logits) v = logit(gen);
    Tensor full_logits = Tensor::from_vector(logits, {1, vocab}), full_logprobs;
    const std::span<const int32_t> full(history);
    const int32_t expected = sampler.sample(full_logits, {&full, 1}, a, &full_logprobs)[0];
    Tensor t = Tensor::from_vector(logits, {1, vocab}), logprobs;
    const std::span<const int32_t> older(history.data(), history.size() - 1);
    Tensor newest = Tensor::from_vector(std::vector<int32_t>{history.back()}, {1});
    Tensor ids = sampler.sample_ids(t, {&older, 1}, b, &logprobs, &newest);
    ASSERT_EQ(ids.to_vector<int32_t>()[0], expected) << "step " << step;
    ASSERT_EQ(logprobs.to_vector<float>(), full_logprobs.to_vector<float>()) << "step " << step;
    history.push_back(int32_t(gen() % 8));  // few distinct ids: the penalties bite
  }
}

}  // namespace
}  // namespace hearth::gen
