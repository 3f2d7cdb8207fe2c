#include "quant/awq.h"

#include <cstring>
#include <set>

#include "ops/copy.h"

namespace hearth::quant {

namespace {

constexpr int kAwqBits = 4;
constexpr int kPack = 32 / kAwqBits;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The 32-bit words of a packed i32/u32 tensor, contiguous.
std::vector<uint32_t> packed_words(const Tensor& t, const std::string& what) {
  if (t.ndim() != 2 || (t.dtype() != DType::i32 && t.dtype() != DType::u32))
    fail(ErrorCode::format, "{}: expected a 2-D int32 tensor, got {}", what, t.describe());
  Tensor c = ops::contiguous(t);
  std::vector<uint32_t> words(size_t(c.numel()));
  if (!words.empty()) std::memcpy(words.data(), c.raw_data(), words.size() * 4);
  return words;
}

uint32_t awq_code(uint32_t word, int j) {
  return (word >> (kAwqBits * kAwqOrder[j])) & 0xfu;
}

uint32_t sequential_code(uint32_t word, int j) {
  return (word >> (kAwqBits * j)) & 0xfu;
}

void check_scales(const Tensor& scales, int64_t in, int64_t out, int group_size,
                  const Tensor& qweight, const std::string& name) {
  if (scales.ndim() != 2 || !is_floating(scales.dtype()))
    fail(ErrorCode::format, "{}.scales: expected a 2-D float tensor, got {}", name,
         scales.describe());
  if (group_size <= 0 || in % group_size != 0)
    fail(ErrorCode::format, "{}.qweight: {} input features are not a multiple of the group size {}",
         name, in, group_size);
  if (scales.dim(0) != in / group_size || scales.dim(1) != out)
    fail(ErrorCode::format,
         "{}.scales has shape {}, expected [{}, {}] for qweight {} with group size {}", name,
         scales.shape().str(), in / group_size, out, qweight.shape().str(), group_size);
}

std::vector<uint32_t> zero_words(const Tensor& qzeros, int64_t groups, int64_t out,
                                 const std::string& name) {
  if (!qzeros.defined()) return {};
  std::vector<uint32_t> z = packed_words(qzeros, name + ".qzeros");
  if (qzeros.dim(0) != groups || qzeros.dim(1) * kPack != out)
    fail(ErrorCode::format, "{}.qzeros has shape {}, expected [{}, {}]", name, qzeros.shape().str(),
         groups, out / kPack);
  return z;
}

// The MLX tensors from code(i, o) (input i, output o) and zero(g, o) (group g): codes repacked
// with input column i at bits 4 * (i % 8) of word i / 8, scales transposed, biases = -zero * scale
// in f32 rounded to the scales' dtype.
template <typename CodeFn, typename ZeroFn>
ops::QuantizedWeight to_mlx(int64_t in, int64_t out, int group_size, const Tensor& scales,
                            CodeFn code, ZeroFn zero) {
  const int64_t groups = in / group_size;
  Tensor packed = Tensor::zeros({out, in / kPack}, DType::u32);
  uint32_t* dst = packed.data<uint32_t>();
  for (int64_t o = 0; o < out; ++o) {
    uint32_t* row = dst + o * (in / kPack);
    for (int64_t i = 0; i < in; ++i) row[i / kPack] |= code(i, o) << (kAwqBits * (i % kPack));
  }
  Tensor scales_t = ops::contiguous(scales.transpose(0, 1));  // [out, groups]
  Tensor biases_f32 = Tensor::empty({out, groups}, DType::f32);
  float* b = biases_f32.data<float>();
  const char* s = static_cast<const char*>(scales_t.raw_data());
  const size_t es = scales_t.element_size();
  for (int64_t o = 0; o < out; ++o)
    for (int64_t g = 0; g < groups; ++g) {
      const float scale = load_as_f32(s + size_t(o * groups + g) * es, scales_t.dtype());
      b[o * groups + g] = -zero(g, o) * scale;
    }
  ops::QuantizedWeight w;
  w.packed = packed;
  w.scales = scales_t;
  w.biases = ops::cast(biases_f32, scales.dtype());
  w.bits = kAwqBits;
  w.group_size = group_size;
  return w;
}

}  // namespace

ops::QuantizedWeight awq_to_mlx(const Tensor& qweight, const Tensor& qzeros, const Tensor& scales,
                                int group_size, const std::string& name) {
  const std::vector<uint32_t> q = packed_words(qweight, name + ".qweight");
  const int64_t in = qweight.dim(0), words = qweight.dim(1), out = words * kPack;
  if (scales.ndim() == 2 && scales.dim(1) == words && words != out)
    fail(ErrorCode::format,
         "{}.qweight {} is packed along the input dimension (GPTQ layout), not AutoAWQ's [in, "
         "out/8]",
         name, qweight.shape().str());
  check_scales(scales, in, out, group_size, qweight, name);
  if (in % kPack != 0)
    fail(ErrorCode::format, "{}.qweight: {} input features are not a multiple of 8", name, in);
  const std::vector<uint32_t> z = zero_words(qzeros, in / group_size, out, name);
  return to_mlx(
      in, out, group_size, scales,
      [&](int64_t i, int64_t o) {
        return awq_code(q[size_t(i * words + o / kPack)], int(o % kPack));
      },
      [&](int64_t g, int64_t o) {
        // Symmetric checkpoints: the zero point is 2^(bits-1).
        if (z.empty()) return float(1 << (kAwqBits - 1));
        return float(awq_code(z[size_t(g * (out / kPack) + o / kPack)], int(o % kPack)));
      });
}

ops::QuantizedWeight gptq_to_mlx(const Tensor& qweight, const Tensor& qzeros, const Tensor& scales,
                                 int group_size, int zero_offset, const std::string& name) {
  const std::vector<uint32_t> q = packed_words(qweight, name + ".qweight");
  const int64_t in = qweight.dim(0) * kPack, out = qweight.dim(1);
  check_scales(scales, in, out, group_size, qweight, name);
  const std::vector<uint32_t> z = zero_words(qzeros, in / group_size, out, name);
  return to_mlx(
      in, out, group_size, scales,
      [&](int64_t i, int64_t o) {
        return sequential_code(q[size_t((i / kPack) * out + o)], int(i % kPack));
      },
      [&](int64_t g, int64_t o) {
        if (z.empty()) return float(1 << (kAwqBits - 1));
        return float(
            int(sequential_code(z[size_t(g * (out / kPack) + o / kPack)], int(o % kPack))) +
            zero_offset);
      });
}

QuantizationConfig convert_awq_gptq(io::WeightSet& weights, const nlohmann::ordered_json& qc,
                                    const std::string& origin) {
  int bits = kAwqBits, group_size = 128;
  if (auto it = qc.find("bits"); it != qc.end() && !it->is_null()) {
    if (!it->is_number_integer())
      fail(ErrorCode::config, "{}: 'bits' should be an integer", origin);
    bits = it->get<int>();
  }
  if (bits != kAwqBits)
    fail(ErrorCode::unsupported, "{}: only bits=4 is supported for AutoAWQ/GPTQ models, got {}",
         origin, bits);
  if (auto it = qc.find("group_size"); it != qc.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() <= 0)
      fail(ErrorCode::config, "{}: 'group_size' should be a positive integer", origin);
    group_size = it->get<int>();
  }

  const std::string method = qc.value("quant_method", std::string("awq"));
  // AutoGPTQ's format ("gptq", the default) stores zero - 1; GPTQModel's "gptq_v2" the zero.
  const int zero_offset = qc.value("checkpoint_format", std::string("gptq")) == "gptq_v2" ? 0 : 1;
  const std::vector<std::string> names = weights.names();
  for (const auto& name : names) {
    if (!ends_with(name, ".g_idx")) continue;
    // A g_idx of i / group_size is the contiguous grouping the transform assumes; anything else
    // is GPTQ's act-order (desc_act) permutation, which the affine layout cannot express.
    Tensor g = ops::contiguous(weights.get(name));
    bool trivial = g.ndim() == 1 && g.dtype() == DType::i32;
    if (trivial) {
      const int32_t* v = g.data<int32_t>();
      for (int64_t i = 0; i < g.numel() && trivial; ++i) trivial = v[i] == i / group_size;
    }
    if (!trivial)
      fail(ErrorCode::unsupported,
           "found {} in the weights: models with non-contiguous group indices (g_idx, GPTQ "
           "act-order / desc_act) are not supported; use a model without act-order or quantize "
           "the original with `hearth convert -q`",
           name);
    weights.erase(name);
  }

  std::optional<DType> model_dtype;
  std::set<std::string> converted;
  for (const auto& name : names) {
    if (!ends_with(name, ".qweight")) continue;
    const std::string prefix = name.substr(0, name.size() - 8);
    Tensor scales = weights.find(prefix + ".scales").value_or(Tensor());
    if (!scales.defined())
      fail(ErrorCode::format, "{}: '{}.qweight' has no '{}.scales'", weights.dir().string(), prefix,
           prefix);
    Tensor qzeros = weights.find(prefix + ".qzeros").value_or(Tensor());
    const Tensor qweight = weights.get(name);
    // mlx-lm transforms every checkpoint as AutoAWQ packs it ([in, out/8]); a GPTQ checkpoint in
    // GPTQ's own layout ([in/8, out], which mlx-lm cannot load) is unpacked as GPTQ packs it.
    const bool gptq_layout = method == "gptq" && qweight.ndim() == 2 && scales.ndim() == 2 &&
                             qweight.dim(1) == scales.dim(1) &&
                             qweight.dim(1) * kPack != scales.dim(1);
    ops::QuantizedWeight w =
        gptq_layout ? gptq_to_mlx(qweight, qzeros, scales, group_size, zero_offset, prefix)
                    : awq_to_mlx(qweight, qzeros, scales, group_size, prefix);
    weights.erase(name);
    weights.erase(prefix + ".qzeros");
    weights.insert(prefix + ".weight", w.packed);
    weights.insert(prefix + ".scales", w.scales);
    weights.insert(prefix + ".biases", w.biases);
    model_dtype = scales.dtype();
    converted.insert(prefix + ".scales");
  }
  if (converted.empty())
    fail(ErrorCode::format,
         "{}: the config says AWQ/GPTQ but the weights hold no '.qweight' "
         "tensors",
         origin);
  // Stray .qzeros / .scales tensors of modules without a qweight are dropped, as mlx-lm does.
  for (const auto& name : weights.names())
    if (ends_with(name, ".qzeros") || (ends_with(name, ".scales") && !converted.count(name)))
      weights.erase(name);
  for (const auto& name : weights.names()) {
    Tensor t = weights.get(name);
    if (is_floating(t.dtype()) && t.dtype() != *model_dtype)
      weights.insert(name, ops::cast(t, *model_dtype));
  }
  nlohmann::ordered_json dict = nlohmann::ordered_json::object();
  dict["group_size"] = group_size;
  dict["bits"] = bits;
  return QuantizationConfig::parse(dict, origin);
}

}  // namespace hearth::quant
