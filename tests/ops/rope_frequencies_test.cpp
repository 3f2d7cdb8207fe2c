// rope_frequencies against HF transformers itself: tests/data/ops/rope_frequencies.txt holds the
// inv_freq and attention_scaling that transformers 5.17's LlamaRotaryEmbedding uses in a forward
// pass (written on the GPU machine by make_rope_frequencies.py beside it) for every rope type:
// default, linear, dynamic NTK below/at/beyond the original length, llama3 (3.1 and 3.2 settings)
// and YaRN (defaults, mscale/mscale_all_dim, explicit attention_factor, truncate off, partial).
//
// We follow HF's float32 order of operations; torch's vectorized powf is accurate to 1 ulp where
// we round the exact value, so a few entries may differ by an ulp, never more.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "ops/rope.h"

namespace hearth::ops {
namespace {

struct FixtureCase {
  std::map<std::string, std::string> fields;
  float attention_scaling = 0.0f;
  std::vector<float> inv_freq;
};

std::vector<FixtureCase> load_fixture() {
  std::string path = std::string(HEARTH_TEST_DATA_DIR) + "/ops/rope_frequencies.txt";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::vector<FixtureCase> cases;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string tag;
    ls >> tag;
    if (tag == "case") {
      cases.emplace_back();
      std::string kv;
      while (ls >> kv) {
        size_t eq = kv.find('=');
        cases.back().fields[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
    } else if (tag == "attention_scaling") {
      std::string v;
      ls >> v;
      cases.back().attention_scaling = float(std::strtod(v.c_str(), nullptr));
    } else if (tag == "inv_freq") {
      size_t n;
      ls >> n;
      std::string v;
      while (ls >> v) cases.back().inv_freq.push_back(float(std::strtod(v.c_str(), nullptr)));
      EXPECT_EQ(cases.back().inv_freq.size(), n);
    }
  }
  return cases;
}

RopeParams params_of(const FixtureCase& c, int64_t* seq_len) {
  auto num = [&](const char* key) { return std::strtod(c.fields.at(key).c_str(), nullptr); };
  auto has = [&](const char* key) { return c.fields.count(key) > 0; };
  RopeParams p;
  const std::string& type = c.fields.at("rope_type");
  p.type = type == "default"   ? RopeType::standard
           : type == "linear"  ? RopeType::linear
           : type == "dynamic" ? RopeType::dynamic
           : type == "llama3"  ? RopeType::llama3
                               : RopeType::yarn;
  p.theta = num("rope_theta");
  p.rotary_dim = int64_t(num("rotary_dim"));
  p.max_position_embeddings = int64_t(num("max_position_embeddings"));
  if (has("factor")) p.factor = num("factor");
  if (has("original_max_position_embeddings"))
    p.original_max_position_embeddings = int64_t(num("original_max_position_embeddings"));
  if (has("low_freq_factor")) p.low_freq_factor = num("low_freq_factor");
  if (has("high_freq_factor")) p.high_freq_factor = num("high_freq_factor");
  if (has("beta_fast")) p.beta_fast = num("beta_fast");
  if (has("beta_slow")) p.beta_slow = num("beta_slow");
  if (has("mscale")) p.mscale = num("mscale");
  if (has("mscale_all_dim")) p.mscale_all_dim = num("mscale_all_dim");
  if (has("attention_factor")) p.attention_factor = num("attention_factor");
  if (has("truncate")) p.truncate = c.fields.at("truncate") == "True";
  *seq_len = int64_t(num("seq_len"));
  return p;
}

int64_t ulp_distance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  return std::abs(int64_t(ia) - int64_t(ib));  // same sign here: all frequencies are positive
}

TEST(RopeFrequencies, MatchesHfTransformers) {
  std::vector<FixtureCase> cases = load_fixture();
  ASSERT_GE(cases.size(), 19u);
  int64_t total = 0, off_by_one = 0;
  for (const FixtureCase& c : cases) {
    SCOPED_TRACE(c.fields.at("name"));
    int64_t seq_len = 0;
    RopeParams p = params_of(c, &seq_len);
    RopeFrequencies f = rope_frequencies(p, seq_len);
    EXPECT_EQ(f.attention_scaling, c.attention_scaling);
    ASSERT_EQ(f.inv_freq.size(), c.inv_freq.size());
    for (size_t i = 0; i < f.inv_freq.size(); ++i) {
      int64_t d = ulp_distance(f.inv_freq[i], c.inv_freq[i]);
      EXPECT_LE(d, 1) << "inv_freq[" << i << "] = " << f.inv_freq[i] << ", HF has "
                      << c.inv_freq[i];
      off_by_one += d == 1;
      ++total;
    }
  }
  std::printf("  %lld of %lld frequencies bit-identical to HF, %lld one ulp off\n",
              (long long)(total - off_by_one), (long long)total, (long long)off_by_one);
}

TEST(RopeFrequencies, DynamicOnlyChangesBeyondTheTrainedLength) {
  RopeParams p;
  p.type = RopeType::dynamic;
  p.rotary_dim = 64;
  p.factor = 4.0;
  p.max_position_embeddings = 4096;
  RopeParams standard;
  standard.rotary_dim = 64;
  EXPECT_EQ(rope_frequencies(p, 1).inv_freq, rope_frequencies(standard, 0).inv_freq);
  EXPECT_EQ(rope_frequencies(p, 4096).inv_freq, rope_frequencies(standard, 0).inv_freq);
  std::vector<float> longer = rope_frequencies(p, 8192).inv_freq;
  EXPECT_EQ(longer[0], 1.0f);
  for (size_t i = 1; i < longer.size(); ++i)
    EXPECT_LT(longer[i], rope_frequencies(standard, 0).inv_freq[i]);
}

}  // namespace
}  // namespace hearth::ops
