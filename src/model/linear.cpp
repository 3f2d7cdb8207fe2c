#include "model/linear.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "ops/copy.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/matmul.h"

namespace hearth::model {
namespace {

Tensor take_tensor(io::WeightSet& weights, const std::string& name) {
  if (!weights.contains(name))
    fail(ErrorCode::format, "{}: weight '{}' is missing", weights.dir().string(), name);
  Tensor t = weights.get(name);
  weights.erase(name);
  return t;
}

void expect_shape(const io::WeightSet& weights, const std::string& name, const Tensor& t,
                  const Dims& expected) {
  if (!(t.shape() == expected))
    fail(ErrorCode::format, "{}: weight '{}' has shape {} but config.json implies {}",
         weights.dir().string(), name, t.shape().str(), expected.str());
}

void expect_float(const io::WeightSet& weights, const std::string& name, const Tensor& t) {
  if (!is_floating(t.dtype()))
    fail(ErrorCode::unsupported, "{}: weight '{}' has dtype {}; expected a float type",
         weights.dir().string(), name, dtype_name(t.dtype()));
}

}  // namespace

size_t Linear::weight_bytes() const {
  size_t total = bias.defined() ? bias.nbytes() : 0;
  if (is_quantized())
    return total + quantized.packed.nbytes() + quantized.scales.nbytes() +
           quantized.biases.nbytes();
  return total + weight.nbytes();
}

void Linear::apply(const Tensor& x, Tensor& out) const {
  const Tensor* b = bias.defined() ? &bias : nullptr;
  if (is_quantized()) {
    ops::quantized_matmul(x, quantized, out, b);
  } else {
    ops::matmul(x, weight, out, b);
  }
}

bool fusion_enabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("HEARTH_DISABLE_FUSION");
    return !(env && *env && std::strcmp(env, "0") != 0);
  }();
  return enabled;
}

bool fusable(std::span<const Linear* const> layers) {
  if (!fusion_enabled() || layers.empty()) return false;
  for (const Linear* l : layers)
    if (l->is_quantized() || l->weight.dtype() != layers[0]->weight.dtype()) return false;
  return true;
}

// Whether the layers take the quantized fused ops (ops/quantized.h): all quantized.
bool quantized_fusable(std::span<const Linear* const> layers) {
  if (!fusion_enabled() || layers.empty()) return false;
  for (const Linear* l : layers)
    if (!l->is_quantized()) return false;
  return true;
}

void apply_grouped(std::span<const Linear* const> layers, const Tensor& x,
                   std::span<Tensor* const> outs) {
  HEARTH_CHECK(layers.size() == outs.size() && layers.size() <= size_t(ops::kMaxMatmulGroups),
               "apply_grouped: {} layers, {} outputs", layers.size(), outs.size());
  if (quantized_fusable(layers)) {
    ops::QuantizedMatmulGroup groups[ops::kMaxQuantizedMatmulGroups];
    for (size_t i = 0; i < layers.size(); ++i) {
      const Linear& l = *layers[i];
      groups[i] = {&l.quantized, l.bias.defined() ? &l.bias : nullptr, outs[i]};
    }
    ops::quantized_matmul_grouped(
        x, std::span<const ops::QuantizedMatmulGroup>(groups, layers.size()));
    return;
  }
  if (!fusable(layers)) {
    for (size_t i = 0; i < layers.size(); ++i) layers[i]->apply(x, *outs[i]);
    return;
  }
  ops::MatmulGroup groups[ops::kMaxMatmulGroups];
  for (size_t i = 0; i < layers.size(); ++i) {
    const Linear& l = *layers[i];
    groups[i] = {&l.weight, l.bias.defined() ? &l.bias : nullptr, outs[i]};
  }
  ops::matmul_grouped(x, std::span<const ops::MatmulGroup>(groups, layers.size()));
}

void apply_silu_mul(const Linear& gate, const Linear& up, const Tensor& x, Tensor& out,
                    Tensor& up_buffer) {
  const Linear* pair[] = {&gate, &up};
  if (quantized_fusable(pair)) {
    ops::quantized_matmul_silu_mul(x, gate.quantized, up.quantized, out,
                                   gate.bias.defined() ? &gate.bias : nullptr,
                                   up.bias.defined() ? &up.bias : nullptr);
    return;
  }
  if (fusable(pair)) {
    ops::matmul_silu_mul(x, gate.weight, up.weight, out, gate.bias.defined() ? &gate.bias : nullptr,
                         up.bias.defined() ? &up.bias : nullptr);
    return;
  }
  gate.apply(x, out);
  up.apply(x, up_buffer);
  ops::silu_mul(out, up_buffer, out);
}

void Linear::gather(const Tensor& ids, Tensor& out) const {
  if (is_quantized()) {
    ops::quantized_embedding(quantized, ids, out);
  } else {
    ops::embedding(weight, ids, out);
  }
}

void Linear::move_to(Device device) {
  auto move = [&](Tensor& t) {
    if (t.defined()) t = ops::to_device(t, device);
  };
  move(weight);
  move(bias);
  move(quantized.packed);
  move(quantized.scales);
  move(quantized.biases);
}

Linear take_linear(io::WeightSet& weights, const std::string& prefix, int64_t out_features,
                   int64_t in_features, bool bias) {
  Linear lin;
  const std::string wname = prefix + ".weight";
  if (weights.contains(prefix + ".scales")) {
    ops::QuantizedWeight& q = lin.quantized;
    q.packed = take_tensor(weights, wname);
    q.scales = take_tensor(weights, prefix + ".scales");
    q.biases = take_tensor(weights, prefix + ".biases");
    if (q.packed.dtype() != DType::u32 || q.packed.ndim() != 2 || q.scales.ndim() != 2 ||
        q.packed.dim(0) != out_features || q.scales.dim(0) != out_features ||
        q.scales.dim(1) <= 0 || in_features % q.scales.dim(1) != 0 ||
        (q.packed.dim(1) * 32) % in_features != 0)
      fail(ErrorCode::format,
           "{}: quantized weight '{}' ({} {}, scales {}) does not fit a [{}, {}] layer",
           weights.dir().string(), wname, dtype_name(q.packed.dtype()), q.packed.shape().str(),
           q.scales.shape().str(), out_features, in_features);
    q.bits = int(q.packed.dim(1) * 32 / in_features);
    q.group_size = int(in_features / q.scales.dim(1));
    const bool bits_ok = std::find(std::begin(ops::kQuantBits), std::end(ops::kQuantBits),
                                   q.bits) != std::end(ops::kQuantBits);
    const bool group_ok =
        std::find(std::begin(ops::kQuantGroupSizes), std::end(ops::kQuantGroupSizes),
                  q.group_size) != std::end(ops::kQuantGroupSizes);
    if (!bits_ok || !group_ok)
      fail(ErrorCode::unsupported,
           "{}: quantized weight '{}' has {} bits and group size {} (supported: bits 2, 3, 4, "
           "5, 6, 8; group sizes 32, 64, 128)",
           weights.dir().string(), wname, q.bits, q.group_size);
    q.validate(wname.c_str());
  } else {
    lin.weight = take_tensor(weights, wname);
    expect_shape(weights, wname, lin.weight, {out_features, in_features});
    expect_float(weights, wname, lin.weight);
  }
  if (bias) {
    const std::string bname = prefix + ".bias";
    lin.bias = take_tensor(weights, bname);
    expect_shape(weights, bname, lin.bias, {out_features});
    expect_float(weights, bname, lin.bias);
  }
  return lin;
}

}  // namespace hearth::model
