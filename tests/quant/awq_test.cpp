#include "quant/awq.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/safetensors.h"
#include "ops/copy.h"
#include "test_util.h"

namespace hearth::quant {
namespace {

using Json = nlohmann::ordered_json;

std::vector<uint8_t> bytes_of(const Tensor& t) {
  Tensor c = ops::contiguous(t);
  const auto* p = static_cast<const uint8_t*>(c.raw_data());
  return std::vector<uint8_t>(p, p + c.nbytes());
}

void expect_same(const Tensor& got, const Tensor& want, const std::string& what) {
  EXPECT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape())
      << what << " " << got.describe() << " vs " << want.describe();
  EXPECT_TRUE(bytes_of(got) == bytes_of(want)) << what << " differs from mlx-lm's transform";
}

struct Case {
  int in, out, group_size;
  const char* dtype;
  const char* kind;
};

class AwqAgainstNumpy : public ::testing::TestWithParam<Case> {};

TEST_P(AwqAgainstNumpy, SameTensorsAsMlxLmTransform) {
  if (!test::have_numpy()) GTEST_SKIP() << "needs /usr/bin/python3 with numpy";
  const Case c = GetParam();
  test::TempDir tmp;
  auto r = test::run_python(fmt::format(
      "{} {} {} {} {} {} {} {}", test::quote(test::test_script("awq_reference.py")),
      test::quote(tmp.path()), 1234 + c.in + c.out, c.in, c.out, c.group_size, c.dtype, c.kind));
  ASSERT_EQ(r.status, 0) << r.err;
  auto input = io::SafetensorsFile::open(tmp.path() / "input.safetensors");
  auto expected = io::SafetensorsFile::open(tmp.path() / "expected.safetensors");
  Tensor qzeros = input->contains("m.qzeros") ? input->tensor("m.qzeros") : Tensor();
  const std::string kind = c.kind;
  ops::QuantizedWeight w =
      kind.rfind("gptq", 0) == 0
          ? gptq_to_mlx(input->tensor("m.qweight"), qzeros, input->tensor("m.scales"), c.group_size,
                        kind == "gptq" ? 1 : 0, "m")
          : awq_to_mlx(input->tensor("m.qweight"), qzeros, input->tensor("m.scales"), c.group_size,
                       "m");
  EXPECT_EQ(w.bits, 4);
  EXPECT_EQ(w.group_size, c.group_size);
  expect_same(w.packed, expected->tensor("m.weight"), "weight");
  expect_same(w.scales, expected->tensor("m.scales"), "scales");
  expect_same(w.biases, expected->tensor("m.biases"), "biases");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AwqAgainstNumpy,
    ::testing::Values(Case{128, 64, 128, "F16", "asym"}, Case{256, 32, 64, "F16", "asym"},
                      Case{64, 16, 32, "BF16", "asym"}, Case{128, 24, 32, "F32", "asym"},
                      Case{256, 40, 128, "F16", "sym"}, Case{96, 8, 32, "BF16", "sym"},
                      Case{128, 64, 32, "F16", "gptq"}, Case{256, 24, 128, "BF16", "gptq"},
                      Case{64, 16, 64, "F16", "gptq_v2"}));

// A hand-checked word: code j of output column 8c+j sits at nibble kAwqOrder[j].
TEST(Awq, NibbleOrder) {
  // in = 8 rows, out = 8 columns: one word per input row. Row i holds code (i + j) % 16 for
  // output column j.
  std::vector<int32_t> q(8);
  for (int i = 0; i < 8; ++i) {
    uint32_t word = 0;
    for (int j = 0; j < 8; ++j) word |= uint32_t((i + j) % 16) << (4 * kAwqOrder[j]);
    q[i] = int32_t(word);
  }
  Tensor qweight = Tensor::from_vector(q, {8, 1});
  Tensor scales = Tensor::from_vector(std::vector<float>(8, 0.5f), {1, 8});
  Tensor zeros = Tensor::from_vector(std::vector<int32_t>{int32_t(0x76543210)}, {1, 1});
  ops::QuantizedWeight w = awq_to_mlx(qweight, zeros, scales, 8, "m");
  ASSERT_EQ(w.packed.shape(), (Dims{8, 1}));
  auto packed = w.packed.to_vector<uint32_t>();
  for (int o = 0; o < 8; ++o)
    for (int i = 0; i < 8; ++i) EXPECT_EQ((packed[o] >> (4 * i)) & 0xf, uint32_t((i + o) % 16));
  // zero of column o: nibble kAwqOrder[o] of 0x76543210 = kAwqOrder[o].
  auto biases = w.biases.to_vector<float>();
  for (int o = 0; o < 8; ++o) EXPECT_EQ(biases[o], -0.5f * float(kAwqOrder[o])) << o;
}

io::WeightSet awq_checkpoint(bool with_g_idx, bool act_order) {
  io::WeightSet ws;
  const int in = 64, out = 16, gs = 32;
  ws.insert("model.layers.0.mlp.down_proj.qweight",
            Tensor::from_vector(std::vector<int32_t>(in * out / 8, 0x12345678), {in, out / 8}));
  ws.insert(
      "model.layers.0.mlp.down_proj.qzeros",
      Tensor::from_vector(std::vector<int32_t>(in / gs * out / 8, 0x11111111), {in / gs, out / 8}));
  std::vector<F16> s(in / gs * out, f32_to_f16(0.25f));
  ws.insert("model.layers.0.mlp.down_proj.scales", Tensor::from_vector(s, {in / gs, out}));
  ws.insert("model.norm.weight", Tensor::from_vector(std::vector<float>(out, 1.0f), {out}));
  std::vector<BF16> emb(32 * out, f32_to_bf16(0.5f));
  ws.insert("model.embed_tokens.weight", Tensor::from_vector(emb, {32, out}));
  if (with_g_idx) {
    std::vector<int32_t> g(in);
    for (int i = 0; i < in; ++i) g[i] = act_order ? (in - 1 - i) / gs : i / gs;
    ws.insert("model.layers.0.mlp.down_proj.g_idx", Tensor::from_vector(g, {in}));
  }
  return ws;
}

TEST(Awq, WholeCheckpoint) {
  io::WeightSet ws = awq_checkpoint(true, false);
  Json qc =
      Json::parse(R"({"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": false})");
  QuantizationConfig c = convert_awq_gptq(ws, qc, "config.json: quantization_config");
  EXPECT_EQ(c.to_json().dump(), R"({"group_size":32,"bits":4})");
  EXPECT_EQ(ws.names(), (std::vector<std::string>{
                            "model.embed_tokens.weight", "model.layers.0.mlp.down_proj.biases",
                            "model.layers.0.mlp.down_proj.scales",
                            "model.layers.0.mlp.down_proj.weight", "model.norm.weight"}));
  EXPECT_EQ(ws.get("model.layers.0.mlp.down_proj.weight").shape(), (Dims{16, 8}));
  EXPECT_EQ(ws.get("model.layers.0.mlp.down_proj.scales").shape(), (Dims{16, 2}));
  // Every float tensor takes the scales' dtype, as mlx-lm casts them.
  EXPECT_EQ(ws.get("model.norm.weight").dtype(), DType::f16);
  EXPECT_EQ(ws.get("model.embed_tokens.weight").dtype(), DType::f16);
  EXPECT_EQ(ws.get("model.layers.0.mlp.down_proj.biases").dtype(), DType::f16);
  auto b = ops::cast(ws.get("model.layers.0.mlp.down_proj.biases"), DType::f32).to_vector<float>();
  for (float v : b) EXPECT_EQ(v, -0.25f);
}

TEST(Awq, GptqLayoutCheckpoint) {
  // quant_method gptq with GPTQ's [in/8, out] packing: every code 3, stored zeros 4 (zero 5 in
  // AutoGPTQ's format, 4 in gptq_v2), scale 0.5 -> MLX codes 3, biases -2.5 / -2.
  for (const char* format : {"gptq", "gptq_v2"}) {
    io::WeightSet ws;
    ws.insert("m.qweight", Tensor::from_vector(std::vector<int32_t>(8 * 16, 0x33333333), {8, 16}));
    ws.insert("m.qzeros", Tensor::from_vector(std::vector<int32_t>(2 * 2, 0x44444444), {2, 2}));
    ws.insert("m.scales", Tensor::from_vector(std::vector<F16>(2 * 16, f32_to_f16(0.5f)), {2, 16}));
    Json qc = Json::parse(R"({"quant_method": "gptq", "bits": 4, "group_size": 32})");
    qc["checkpoint_format"] = format;
    convert_awq_gptq(ws, qc, "c");
    EXPECT_EQ(ws.get("m.weight").shape(), (Dims{16, 8}));
    for (uint32_t word : ws.get("m.weight").to_vector<uint32_t>()) EXPECT_EQ(word, 0x33333333u);
    const float want = std::string(format) == "gptq" ? -2.5f : -2.0f;
    for (float b : ops::cast(ws.get("m.biases"), DType::f32).to_vector<float>())
      EXPECT_EQ(b, want) << format;
  }
}

void expect_error(io::WeightSet ws, const Json& qc, const std::string& fragment) {
  try {
    convert_awq_gptq(ws, qc, "m/config.json: quantization_config");
    ADD_FAILURE() << "no error, expected " << fragment;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Awq, Errors) {
  Json qc = Json::parse(R"({"quant_method": "awq", "bits": 4, "group_size": 32})");
  expect_error(awq_checkpoint(true, true), qc, "g_idx");
  expect_error(awq_checkpoint(false, false),
               Json::parse(R"({"quant_method": "awq", "bits": 8, "group_size": 32})"), "bits=4");
  // Group size that does not divide the input features.
  expect_error(awq_checkpoint(false, false),
               Json::parse(R"({"quant_method": "awq", "bits": 4, "group_size": 48})"),
               "not a multiple of the group size 48");
  // Default group size 128 does not match the [2, 16] scales.
  expect_error(awq_checkpoint(false, false), Json::parse(R"({"quant_method": "awq"})"),
               "group size 128");
  io::WeightSet none;
  none.insert("a.weight", Tensor::from_vector(std::vector<float>{1, 2}, {2}));
  expect_error(none, qc, "no '.qweight'");
  // GPTQ's own input-packed layout: qweight [in/8, out].
  io::WeightSet gptq;
  gptq.insert("m.qweight", Tensor::from_vector(std::vector<int32_t>(8 * 16, 0), {8, 16}));
  gptq.insert("m.scales", Tensor::from_vector(std::vector<F16>(2 * 16, f32_to_f16(1.f)), {2, 16}));
  expect_error(gptq, qc, "GPTQ layout");
}

}  // namespace
}  // namespace hearth::quant
