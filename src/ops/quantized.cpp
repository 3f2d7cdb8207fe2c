// MLX affine quantization front-ends: argument checks, output allocation, dispatch by device.
#include "ops/quantized.h"

#include <algorithm>

#include "ops/backend.h"
#include "ops/validate.h"

namespace hearth::ops {

using namespace detail;

namespace {

bool supported_bits(int bits) {
  return std::find(std::begin(kQuantBits), std::end(kQuantBits), bits) != std::end(kQuantBits);
}
bool supported_group_size(int gs) {
  return std::find(std::begin(kQuantGroupSizes), std::end(kQuantGroupSizes), gs) !=
         std::end(kQuantGroupSizes);
}

void check_bits_and_group(const char* op, int bits, int group_size) {
  if (!supported_bits(bits))
    fail(ErrorCode::invalid_argument, "{}: bits must be 2, 3, 4, 5, 6 or 8, got {}", op, bits);
  if (!supported_group_size(group_size))
    fail(ErrorCode::invalid_argument, "{}: group_size must be 32, 64 or 128, got {}", op,
         group_size);
}

}  // namespace

void QuantizedWeight::validate(const char* what) const {
  check_bits_and_group(what, bits, group_size);
  check_defined(what, "packed", packed);
  check_defined(what, "scales", scales);
  check_defined(what, "biases", biases);
  check_ndim(what, "packed", packed, 2);
  check_ndim(what, "scales", scales, 2);
  check_ndim(what, "biases", biases, 2);
  check_dtype(what, "packed", packed, DType::u32);
  check_dtype_in(what, "scales", scales, {DType::f32, DType::f16, DType::bf16});
  check_dtype(what, "biases", biases, scales.dtype());
  const int64_t n = packed.dim(0), words = packed.dim(1);
  if ((words * 32) % bits != 0)
    fail(ErrorCode::invalid_argument,
         "{}: packed {} has {} u32 words per row, not a whole number of {}-bit codes", what,
         packed.shape().str(), words, bits);
  const int64_t k = words * 32 / bits;
  if (k % group_size != 0)
    fail(ErrorCode::invalid_argument,
         "{}: packed {} holds {} codes per row, not a multiple of group_size {}", what,
         packed.shape().str(), k, group_size);
  check_shape(what, "scales", scales, {n, k / group_size});
  check_shape(what, "biases", biases, {n, k / group_size});
  check_contiguous(what, "packed", packed);
  check_contiguous(what, "scales", scales);
  check_contiguous(what, "biases", biases);
  check_device(what, "scales", scales, packed.device());
  check_device(what, "biases", biases, packed.device());
}

QuantizedWeight affine_quantize(const Tensor& w, int bits, int group_size, DType scale_dtype,
                                MlxQuantizer variant) {
  const char* op = "affine_quantize";
  check_bits_and_group(op, bits, group_size);
  check_defined(op, "w", w);
  check_ndim(op, "w", w, 2);
  check_dtype_in(op, "w", w, {DType::f32, DType::f16, DType::bf16});
  if (scale_dtype != DType::f32 && scale_dtype != DType::f16 && scale_dtype != DType::bf16)
    fail(ErrorCode::invalid_argument, "{}: scale_dtype must be f32/f16/bf16, got {}", op,
         dtype_name(scale_dtype));
  const int64_t n = w.dim(0), k = w.dim(1);
  if (k % group_size != 0)
    fail(ErrorCode::invalid_argument,
         "{}: w {} has {} columns, not a multiple of group_size {} (MLX leaves such layers "
         "unquantized)",
         op, w.shape().str(), k, group_size);
  check_rows_contiguous(op, "w", w);
  QuantizedWeight q;
  q.bits = bits;
  q.group_size = group_size;
  q.packed = Tensor::empty({n, k * bits / 32}, DType::u32, w.device());
  q.scales = Tensor::empty({n, k / group_size}, scale_dtype, w.device());
  q.biases = Tensor::empty({n, k / group_size}, scale_dtype, w.device());
  backend_for(w.device()).affine_quantize(w, variant, q);
  return q;
}

void affine_dequantize(const QuantizedWeight& w, Tensor& out) {
  const char* op = "affine_dequantize";
  w.validate(op);
  check_defined(op, "out", out);
  check_ndim(op, "out", out, 2);
  check_dtype_in(op, "out", out, {DType::f32, DType::f16, DType::bf16});
  check_shape(op, "out", out, {w.rows(), w.cols()});
  check_rows_contiguous(op, "out", out);
  check_device(op, "out", out, w.packed.device());
  check_no_overlap(op, "out", out, "packed", w.packed);
  check_no_overlap(op, "out", out, "scales", w.scales);
  check_no_overlap(op, "out", out, "biases", w.biases);
  backend_for(out.device()).affine_dequantize(w, out);
}

namespace {

// One quantized product's operands: x [M, K] f32, w [N, K] quantized, out [M, N] f32, bias [N].
void check_quantized_product(const char* op, const Tensor& x, const QuantizedWeight& w,
                             const Tensor& out, const Tensor* bias, const char* w_name = "w",
                             const char* out_name = "out", const char* bias_name = "bias") {
  w.validate(op);
  check_defined(op, "x", x);
  check_defined(op, out_name, out);
  check_ndim(op, "x", x, 2);
  check_ndim(op, out_name, out, 2);
  check_activation(op, "x", x);
  check_activation(op, out_name, out);
  const int64_t m = x.dim(0), k = x.dim(1), n = w.rows();
  if (w.cols() != k)
    fail(ErrorCode::invalid_argument,
         "{}: {} holds {} columns ({}-bit packed {}), x {} has {} (K must match)", op, w_name,
         w.cols(), w.bits, w.packed.shape().str(), x.shape().str(), k);
  if (out.dim(0) != m || out.dim(1) != n)
    fail(ErrorCode::invalid_argument,
         "{}: {} must have shape [{}, {}] (M from x, N from {}), got {}", op, out_name, m, n,
         w_name, out.shape().str());
  check_rows_contiguous(op, "x", x);
  check_rows_contiguous(op, out_name, out);
  const Device device = x.device();
  check_device(op, w_name, w.packed, device);
  check_device(op, out_name, out, device);
  check_no_overlap(op, out_name, out, "x", x);
  check_no_overlap(op, out_name, out, w_name, w.packed);
  if (bias) check_bias(op, bias_name, *bias, n, w_name, device, out_name, out);
}

}  // namespace

void quantized_matmul(const Tensor& x, const QuantizedWeight& w, Tensor& out, const Tensor* bias) {
  check_quantized_product("quantized_matmul", x, w, out, bias);
  backend_for(x.device()).quantized_matmul(x, w, bias, out);
}

void quantized_matmul_grouped(const Tensor& x, std::span<const QuantizedMatmulGroup> groups) {
  const char* op = "quantized_matmul_grouped";
  if (groups.empty() || groups.size() > size_t(kMaxQuantizedMatmulGroups))
    fail(ErrorCode::invalid_argument, "{}: takes 1 to {} products, got {}", op,
         kMaxQuantizedMatmulGroups, groups.size());
  // Names without formatting: this runs for every layer of every step.
  static constexpr const char* kW[] = {"w[0]", "w[1]", "w[2]", "w[3]"};
  static constexpr const char* kOut[] = {"out[0]", "out[1]", "out[2]", "out[3]"};
  static constexpr const char* kBias[] = {"bias[0]", "bias[1]", "bias[2]", "bias[3]"};
  static_assert(std::size(kW) == size_t(kMaxQuantizedMatmulGroups));
  for (size_t g = 0; g < groups.size(); ++g) {
    const QuantizedMatmulGroup& p = groups[g];
    if (!p.w || !p.out)
      fail(ErrorCode::invalid_argument, "{}: product {} has no weight or no output", op, g);
    check_quantized_product(op, x, *p.w, *p.out, p.bias, kW[g], kOut[g], kBias[g]);
    for (size_t h = 0; h < g; ++h)
      check_no_overlap(op, kOut[g], *p.out, "an earlier output", *groups[h].out);
  }
  backend_for(x.device()).quantized_matmul_grouped(x, groups);
}

void quantized_matmul_silu_mul(const Tensor& x, const QuantizedWeight& w_gate,
                               const QuantizedWeight& w_up, Tensor& out, const Tensor* gate_bias,
                               const Tensor* up_bias) {
  const char* op = "quantized_matmul_silu_mul";
  check_quantized_product(op, x, w_gate, out, gate_bias, "w_gate", "out", "gate_bias");
  check_quantized_product(op, x, w_up, out, up_bias, "w_up", "out", "up_bias");
  backend_for(x.device()).quantized_matmul_silu_mul(x, w_gate, w_up, gate_bias, up_bias, out);
}

void quantized_embedding(const QuantizedWeight& table, const Tensor& ids, Tensor& out) {
  const char* op = "quantized_embedding";
  table.validate(op);
  check_defined(op, "ids", ids);
  check_defined(op, "out", out);
  check_ndim(op, "ids", ids, 1);
  check_ndim(op, "out", out, 2);
  check_dtype(op, "ids", ids, DType::i32);
  check_dtype(op, "out", out, DType::f32);
  if (out.dim(0) != ids.dim(0) || out.dim(1) != table.cols())
    fail(ErrorCode::invalid_argument,
         "quantized_embedding: out must have shape [{}, {}] (ids x table columns), got {}",
         ids.dim(0), table.cols(), out.shape().str());
  check_rows_contiguous(op, "out", out);
  const Device device = table.packed.device();
  check_device(op, "ids", ids, device);
  check_device(op, "out", out, device);
  check_no_overlap(op, "out", out, "packed", table.packed);
  backend_for(device).quantized_embedding(table, ids, out);
}

// ---- Backend defaults: no quantized kernels on this backend yet -------------------------------

void Backend::affine_quantize(const Tensor&, MlxQuantizer, QuantizedWeight&) {
  fail(ErrorCode::unsupported, "affine_quantize: not implemented on the {} backend", name());
}
void Backend::affine_dequantize(const QuantizedWeight&, Tensor&) {
  fail(ErrorCode::unsupported, "affine_dequantize: not implemented on the {} backend", name());
}
void Backend::quantized_matmul(const Tensor&, const QuantizedWeight&, const Tensor*, Tensor&) {
  fail(ErrorCode::unsupported, "quantized_matmul: not implemented on the {} backend", name());
}
// The unfused sequences, which the fused kernels must equal bit for bit.
void Backend::quantized_matmul_grouped(const Tensor& x,
                                       std::span<const QuantizedMatmulGroup> groups) {
  for (const QuantizedMatmulGroup& g : groups) quantized_matmul(x, *g.w, g.bias, *g.out);
}
void Backend::quantized_matmul_silu_mul(const Tensor& x, const QuantizedWeight& w_gate,
                                        const QuantizedWeight& w_up, const Tensor* gate_bias,
                                        const Tensor* up_bias, Tensor& out) {
  // As Backend::matmul_silu_mul: both products in out's dtype, the gate product into out.
  Tensor up = Tensor::empty(out.shape(), out.dtype(), out.device());
  Tensor& gate = out;
  quantized_matmul(x, w_gate, gate_bias, gate);
  quantized_matmul(x, w_up, up_bias, up);
  silu_mul(gate, up, out);
}
void Backend::quantized_embedding(const QuantizedWeight&, const Tensor&, Tensor&) {
  fail(ErrorCode::unsupported, "quantized_embedding: not implemented on the {} backend", name());
}

}  // namespace hearth::ops
