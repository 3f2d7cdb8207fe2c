#include "quant/recipes.h"

#include <gtest/gtest.h>

#include <set>

#include "core/error.h"

namespace hearth::quant {
namespace {

std::vector<std::string> llama_modules(int layers, bool tied) {
  std::vector<std::string> m = {"model.embed_tokens"};
  for (int i = 0; i < layers; ++i) {
    std::string l = "model.layers." + std::to_string(i) + ".";
    for (const char* s : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                          "self_attn.o_proj", "mlp.gate_proj", "mlp.down_proj", "mlp.up_proj",
                          "input_layernorm", "post_attention_layernorm"})
      m.push_back(l + s);
  }
  m.push_back("model.norm");
  if (!tied) m.push_back("lm_head");
  return m;
}

TEST(MixedRecipes, BitWidths) {
  auto m = llama_modules(32, false);
  struct Case {
    const char* name;
    int low, high;
  };
  for (Case c : {Case{"mixed_2_6", 2, 6}, Case{"mixed_3_4", 3, 4}, Case{"mixed_3_6", 3, 6},
                 Case{"mixed_4_6", 4, 6}}) {
    MixedRecipe r = MixedRecipe::build(c.name, m, 32, 64);
    EXPECT_EQ(r.low_bits(), c.low) << c.name;
    EXPECT_EQ(r.high_bits(), c.high) << c.name;
    EXPECT_EQ(r.spec_for("lm_head"), (QuantSpec{64, c.high, "affine"}));
    // Embeddings take the low width (mlx-lm has no rule for them).
    EXPECT_EQ(r.spec_for("model.embed_tokens"), (QuantSpec{64, c.low, "affine"}));
  }
}

TEST(MixedRecipes, LayersThatGetMoreBits) {
  // 32 layers: n // 8 = 4, 7 * n // 8 = 28: layers 0-3, 28-31, and 4 + 3k + 2 = 6, 9, ..., 27.
  std::set<int> expected = {0, 1, 2, 3, 28, 29, 30, 31};
  for (int i = 6; i < 28; i += 3) expected.insert(i);
  MixedRecipe r = MixedRecipe::build("mixed_3_6", llama_modules(32, false), 32, 64);
  for (int i = 0; i < 32; ++i) {
    const bool more = expected.count(i) > 0;
    EXPECT_EQ(r.uses_more_bits(i), more) << i;
    const std::string l = "model.layers." + std::to_string(i) + ".";
    EXPECT_EQ(r.spec_for(l + "self_attn.v_proj").bits, more ? 6 : 3) << i;
    EXPECT_EQ(r.spec_for(l + "mlp.down_proj").bits, more ? 6 : 3) << i;
    for (const char* other : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.o_proj",
                              "mlp.gate_proj", "mlp.up_proj"})
      EXPECT_EQ(r.spec_for(l + other).bits, 3) << l << other;
  }
}

TEST(MixedRecipes, SmallModels) {
  // 2 layers (the test fixtures): n // 8 = 0, 7 * 2 // 8 = 1 -> only layer 1 gets more bits.
  MixedRecipe r = MixedRecipe::build("mixed_4_6", llama_modules(2, true), 2, 32);
  EXPECT_FALSE(r.uses_more_bits(0));
  EXPECT_TRUE(r.uses_more_bits(1));
  EXPECT_EQ(r.spec_for("model.layers.0.self_attn.v_proj"), (QuantSpec{32, 4, "affine"}));
  EXPECT_EQ(r.spec_for("model.layers.1.self_attn.v_proj"), (QuantSpec{32, 6, "affine"}));
  // 12 layers: n // 8 = 1, 7 * 12 // 8 = 10: 0, 10, 11 and 1 + 3k + 2 = 3, 6, 9.
  MixedRecipe r12 = MixedRecipe::build("mixed_2_6", llama_modules(12, false), 12, 64);
  std::set<int> more;
  for (int i = 0; i < 12; ++i)
    if (r12.uses_more_bits(i)) more.insert(i);
  EXPECT_EQ(more, (std::set<int>{0, 3, 6, 9, 10, 11}));
}

TEST(MixedRecipes, MlaAndMoePaths) {
  // v_a_proj / v_b_proj count as v_proj; the index sits wherever the first down_proj has it.
  std::vector<std::string> m = {"language_model.model.layers.0.mlp.switch_mlp.down_proj",
                                "language_model.model.layers.0.self_attn.v_b_proj"};
  MixedRecipe r = MixedRecipe::build("mixed_2_6", m, 16, 64);
  EXPECT_EQ(r.spec_for("language_model.model.layers.0.self_attn.v_b_proj").bits, 6);
  EXPECT_EQ(r.spec_for("language_model.model.layers.5.self_attn.v_a_proj").bits, 2);
  EXPECT_EQ(r.spec_for("language_model.model.layers.4.mlp.switch_mlp.down_proj").bits, 6);
  EXPECT_EQ(r.spec_for("language_model.model.layers.5.mlp.switch_mlp.down_proj").bits, 2);
  EXPECT_EQ(r.spec_for("language_model.lm_head").bits, 6);
}

TEST(MixedRecipes, Errors) {
  EXPECT_THROW(MixedRecipe::build("mixed_5_8", llama_modules(2, false), 2, 64), Error);
  try {
    MixedRecipe::build("mixed_3_6", {"model.embed_tokens", "model.layers.0.mlp.fc1"}, 1, 64);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("down_proj"), std::string::npos);
  }
}

}  // namespace
}  // namespace hearth::quant
