#include "quant/quant_config.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "quant/python_json.h"

namespace hearth::quant {
namespace {

using Json = nlohmann::ordered_json;

Json parse(const char* text) {
  return Json::parse(text);
}

TEST(QuantizationConfig, DefaultsAndPerModuleEntries) {
  // An mlx-community style config: defaults, a dict override, a `false` entry.
  Json j = parse(R"({"group_size": 64, "bits": 4, "mode": "affine",
                    "model.layers.0.mlp.down_proj": {"group_size": 64, "bits": 6, "mode": "affine"},
                    "lm_head": false})");
  QuantizationConfig c = QuantizationConfig::parse(j, "config.json: quantization");
  EXPECT_EQ(c.defaults(), (QuantSpec{64, 4, "affine"}));
  EXPECT_EQ(c.spec_for("model.layers.0.mlp.down_proj", true), (QuantSpec{64, 6, "affine"}));
  // Listed entries win over the presence of scales, both ways.
  EXPECT_EQ(c.spec_for("model.layers.0.mlp.down_proj", false), (QuantSpec{64, 6, "affine"}));
  EXPECT_EQ(c.spec_for("lm_head", true), std::nullopt);
  // Unlisted: quantized with the defaults iff `<path>.scales` exists.
  EXPECT_EQ(c.spec_for("model.layers.3.mlp.up_proj", true), (QuantSpec{64, 4, "affine"}));
  EXPECT_EQ(c.spec_for("model.layers.3.mlp.up_proj", false), std::nullopt);
  EXPECT_TRUE(c.is_listed("lm_head"));
  EXPECT_EQ(c.listed_paths(),
            (std::vector<std::string>{"model.layers.0.mlp.down_proj", "lm_head"}));
  // Written back unchanged, key order included.
  EXPECT_EQ(c.to_json().dump(), j.dump());
}

TEST(QuantizationConfig, EntryDefaultsFollowToQuantized) {
  // to_quantized(**entry): what an entry leaves out (or sets to null, as mlx-lm's mixed recipes
  // write without --q-group-size) takes the defaults of the entry's mode, not the top level's.
  Json j = parse(R"({"group_size": 32, "bits": 8,
                    "a": {"bits": 6}, "b": {"group_size": null, "bits": 3, "mode": "affine"},
                    "c": true, "d": {"mode": "mxfp4"}})");
  QuantizationConfig c = QuantizationConfig::parse(j, "q");
  EXPECT_EQ(c.defaults(), (QuantSpec{32, 8, "affine"}));  // mode absent: affine
  EXPECT_EQ(c.spec_for("a", false), (QuantSpec{64, 6, "affine"}));
  EXPECT_EQ(c.spec_for("b", false), (QuantSpec{64, 3, "affine"}));
  EXPECT_EQ(c.spec_for("c", false), (QuantSpec{32, 8, "affine"}));
  EXPECT_EQ(c.spec_for("d", false), (QuantSpec{32, 4, "mxfp4"}));
}

TEST(QuantizationConfig, LegacyDictWithoutModeRoundTrips) {
  // What mlx-lm records for an AWQ/GPTQ model: no "mode" key; it must not gain one.
  Json j = parse(R"({"group_size": 128, "bits": 4})");
  QuantizationConfig c = QuantizationConfig::parse(j, "q");
  EXPECT_EQ(c.defaults(), (QuantSpec{128, 4, "affine"}));
  EXPECT_EQ(python_json_dumps(c.to_json()), "{\n    \"group_size\": 128,\n    \"bits\": 4\n}");
}

TEST(QuantizationConfig, OverridesAppendInCallOrder) {
  QuantizationConfig c(QuantSpec{64, 3, "affine"});
  c.set_override("model.embed_tokens", QuantSpec{64, 3, "affine"});
  c.set_override("model.layers.0.self_attn.v_proj", QuantSpec{64, 6, "affine"});
  c.set_override("lm_head", std::nullopt);
  EXPECT_EQ(python_json_dumps(c.to_json()),
            "{\n"
            "    \"group_size\": 64,\n"
            "    \"bits\": 3,\n"
            "    \"mode\": \"affine\",\n"
            "    \"model.embed_tokens\": {\n"
            "        \"group_size\": 64,\n"
            "        \"bits\": 3,\n"
            "        \"mode\": \"affine\"\n"
            "    },\n"
            "    \"model.layers.0.self_attn.v_proj\": {\n"
            "        \"group_size\": 64,\n"
            "        \"bits\": 6,\n"
            "        \"mode\": \"affine\"\n"
            "    },\n"
            "    \"lm_head\": false\n"
            "}");
  EXPECT_EQ(c.spec_for("lm_head", true), std::nullopt);
  EXPECT_EQ(c.spec_for("model.layers.0.self_attn.v_proj", false)->bits, 6);
  // Reparsing what was written gives the same answers.
  QuantizationConfig again = QuantizationConfig::parse(c.to_json(), "q");
  EXPECT_EQ(again.listed_paths(), c.listed_paths());
  EXPECT_EQ(again.to_json().dump(), c.to_json().dump());
}

TEST(QuantizationConfig, FromModelConfig) {
  Json config = parse(R"({"model_type": "llama",
                         "quantization": {"group_size": 64, "bits": 8},
                         "quantization_config": {"group_size": 64, "bits": 8}})");
  auto c = QuantizationConfig::from_model_config(config, "m/config.json");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->defaults().bits, 8);
  EXPECT_FALSE(QuantizationConfig::from_model_config(parse(R"({"a": 1})"), "x"));
  EXPECT_FALSE(QuantizationConfig::from_model_config(parse(R"({"quantization": null})"), "x"));
}

void expect_error(const Json& j, ErrorCode code, const std::string& fragment) {
  try {
    QuantizationConfig::parse(j, "m/config.json: quantization");
    ADD_FAILURE() << "no error for " << j.dump();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("m/config.json"), std::string::npos) << e.what();
  }
}

TEST(QuantizationConfig, BadDictsNameTheKey) {
  expect_error(parse(R"({"bits": 4})"), ErrorCode::config, "'group_size' is missing");
  expect_error(parse(R"({"group_size": 64})"), ErrorCode::config, "'bits' is missing");
  expect_error(parse(R"({"group_size": "64", "bits": 4})"), ErrorCode::config, "group_size");
  expect_error(parse(R"({"group_size": 64, "bits": -4})"), ErrorCode::config, "bits");
  expect_error(parse(R"({"group_size": 64, "bits": 4, "mode": "int4"})"), ErrorCode::config,
               "int4");
  expect_error(parse(R"({"group_size": 64, "bits": 4, "x.y": {"bits": 4, "scale": 2}})"),
               ErrorCode::unsupported, "x.y");
  expect_error(parse(R"([1, 2])"), ErrorCode::config, "object");
}

TEST(QuantizationConfig, SupportedSpecs) {
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (int gs : {32, 64, 128}) EXPECT_NO_THROW(check_supported({gs, bits, "affine"}, "x"));
  EXPECT_THROW(check_supported({64, 7, "affine"}, "x"), Error);
  EXPECT_THROW(check_supported({64, 1, "affine"}, "x"), Error);
  EXPECT_THROW(check_supported({16, 4, "affine"}, "x"), Error);
  EXPECT_THROW(check_supported({32, 4, "mxfp4"}, "x"), Error);
  try {
    check_supported({64, 7, "affine"}, "--q-bits 7");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::unsupported);
    EXPECT_NE(std::string(e.what()).find("--q-bits 7"), std::string::npos);
  }
}

TEST(QuantizationConfig, ForeignQuantMethod) {
  EXPECT_EQ(foreign_quant_method(parse(R"({"quantization_config": {"quant_method": "awq",
              "bits": 4, "group_size": 128}})"),
                                 "c"),
            "awq");
  EXPECT_EQ(foreign_quant_method(parse(R"({"text_config": {"quantization_config":
              {"quant_method": "gptq"}}})"),
                                 "c"),
            "gptq");
  EXPECT_EQ(foreign_quant_method(parse(R"({"model_type": "llama"})"), "c"), std::nullopt);
  EXPECT_THROW(foreign_quant_method(parse(R"({"quantization_config": {"bits": 4}})"), "c"), Error);
}

}  // namespace
}  // namespace hearth::quant
