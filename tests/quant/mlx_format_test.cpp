#include "quant/mlx_format.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"

namespace hearth::quant {
namespace {

using Json = nlohmann::ordered_json;

TEST(MlxFormat, ModuleAndParam) {
  EXPECT_EQ(module_of("model.layers.0.mlp.down_proj.weight"), "model.layers.0.mlp.down_proj");
  EXPECT_EQ(param_of("model.layers.0.mlp.down_proj.weight"), "weight");
  EXPECT_EQ(module_of("bias"), "");
  EXPECT_EQ(param_of("bias"), "bias");
}

TEST(MlxFormat, MlxLmModuleOrder) {
  std::vector<std::string> names = {
      "lm_head.weight",
      "model.norm.weight",
      "model.layers.10.self_attn.q_proj.weight",
      "model.layers.2.post_attention_layernorm.weight",
      "model.layers.2.input_layernorm.weight",
      "model.layers.2.mlp.up_proj.weight",
      "model.layers.2.mlp.down_proj.weight",
      "model.layers.2.mlp.gate_proj.weight",
      "model.layers.2.self_attn.k_norm.weight",
      "model.layers.2.self_attn.q_norm.weight",
      "model.layers.2.self_attn.o_proj.bias",
      "model.layers.2.self_attn.o_proj.biases",
      "model.layers.2.self_attn.o_proj.scales",
      "model.layers.2.self_attn.o_proj.weight",
      "model.layers.2.self_attn.v_proj.weight",
      "model.layers.2.self_attn.k_proj.weight",
      "model.layers.2.self_attn.q_proj.weight",
      "model.embed_tokens.weight",
      "model.layers.2.zzz_unknown.weight",
      "model.layers.2.aaa_unknown.weight",
  };
  std::sort(names.begin(), names.end(), mlx_order_less);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "model.embed_tokens.weight",
                       "model.layers.2.self_attn.q_proj.weight",
                       "model.layers.2.self_attn.k_proj.weight",
                       "model.layers.2.self_attn.v_proj.weight",
                       "model.layers.2.self_attn.o_proj.weight",
                       "model.layers.2.self_attn.o_proj.scales",
                       "model.layers.2.self_attn.o_proj.biases",
                       "model.layers.2.self_attn.o_proj.bias",
                       "model.layers.2.self_attn.q_norm.weight",
                       "model.layers.2.self_attn.k_norm.weight",
                       "model.layers.2.mlp.gate_proj.weight",
                       "model.layers.2.mlp.down_proj.weight",
                       "model.layers.2.mlp.up_proj.weight",
                       "model.layers.2.input_layernorm.weight",
                       "model.layers.2.post_attention_layernorm.weight",
                       "model.layers.2.aaa_unknown.weight",
                       "model.layers.2.zzz_unknown.weight",
                       "model.layers.10.self_attn.q_proj.weight",
                       "model.norm.weight",
                       "lm_head.weight",
                   }));
}

// One 4-bit / group 32 module of 4 x 64 and a float norm.
io::WeightSet quantized_weights(Dims scales_shape = {4, 2}, bool biases = true) {
  io::WeightSet w;
  w.insert("a.weight", Tensor::zeros({4, 64 * 4 / 32}, DType::u32));
  w.insert("a.scales", Tensor::zeros(scales_shape, DType::bf16));
  if (biases) w.insert("a.biases", Tensor::zeros(scales_shape, DType::bf16));
  w.insert("n.weight", Tensor::zeros({64}, DType::bf16));
  return w;
}

std::string error_of(io::WeightSet w, const char* config) {
  try {
    load_quantization(Json::parse(config), w, "m/config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(MlxFormat, LoadQuantization) {
  io::WeightSet w = quantized_weights();
  auto q = load_quantization(Json::parse(R"({"quantization": {"group_size": 32, "bits": 4}})"), w,
                             "m/config.json");
  ASSERT_TRUE(q);
  ASSERT_EQ(q->modules.size(), 1u);
  EXPECT_EQ(q->modules[0].path, "a");
  EXPECT_EQ(q->modules[0].out_features, 4);
  EXPECT_EQ(q->modules[0].in_features, 64);
  EXPECT_FALSE(q->from_awq);
  ops::QuantizedWeight qw = quantized_weight(w, q->modules[0]);
  EXPECT_EQ(qw.bits, 4);
  EXPECT_EQ(qw.cols(), 64);

  io::WeightSet dense;
  dense.insert("n.weight", Tensor::zeros({64}, DType::bf16));
  EXPECT_FALSE(load_quantization(Json::parse(R"({"model_type": "llama"})"), dense, "c"));
}

TEST(MlxFormat, BadQuantizedTensorsNameTheTensor) {
  const char* q4 = R"({"quantization": {"group_size": 32, "bits": 4}})";
  EXPECT_NE(error_of(quantized_weights({4, 3}), q4).find("'a.scales'"), std::string::npos);
  EXPECT_NE(error_of(quantized_weights({4, 2}, false), q4).find("'a.biases' is missing"),
            std::string::npos);
  // 3 bits over 8 words a row: 85.3 codes.
  EXPECT_NE(error_of(quantized_weights(), R"({"quantization": {"group_size": 32, "bits": 3}})")
                .find("whole 3-bit codes"),
            std::string::npos);
  EXPECT_NE(error_of(quantized_weights(), R"({"quantization": {"group_size": 32, "bits": 7}})")
                .find("7 bits"),
            std::string::npos);
  EXPECT_NE(error_of(quantized_weights(), R"({"quantization": {"group_size": 32, "bits": 4,
                                                               "a": false}})")
                .find("as not quantized (false)"),
            std::string::npos);
  EXPECT_NE(error_of(quantized_weights(), R"({"quantization": {"group_size": 32, "bits": 4,
                                                               "n": {"bits": 4}}})")
                .find("no 'n.scales'"),
            std::string::npos);
  EXPECT_NE(error_of(quantized_weights(), R"({"model_type": "llama"})").find("'a.scales'"),
            std::string::npos);
  EXPECT_NE(error_of(quantized_weights(), R"({"quantization_config": {"quant_method": "bitnet"}})")
                .find("'bitnet' is not supported"),
            std::string::npos);
  EXPECT_NE(error_of(quantized_weights(), R"({"quantization": {"group_size": 32, "bits": 4,
                                                               "mode": "mxfp4"}})")
                .find("mxfp4"),
            std::string::npos);
}

}  // namespace
}  // namespace hearth::quant
