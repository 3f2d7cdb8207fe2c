// Reference fused decoder-layer ops: each is the sequence of reference ops it replaces (MLX's
// "fallback" idea), with f32 tensors between the steps as the unfused model has them.
#include "ops/reference/reference.h"

namespace hearth::ops::reference {

void add_rms_norm(Tensor& x, const Tensor& delta, const Tensor& weight, float eps, Tensor& normed) {
  // reference::add walks flat (contiguous) tensors; x and delta may have padded rows.
  Tensor a = Tensor::empty(x.shape(), DType::f32), b = Tensor::empty(x.shape(), DType::f32);
  copy(x, a);
  copy(delta, b);
  add(a, b, a);
  copy(a, x);
  rms_norm(x, weight, eps, normed);
}

void matmul_grouped(const Tensor& x, std::span<const MatmulGroup> groups) {
  for (const MatmulGroup& g : groups) matmul(x, *g.w, *g.out, g.bias);
}

void matmul_silu_mul(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, Tensor& out,
                     const Tensor* gate_bias, const Tensor* up_bias) {
  Tensor gate = Tensor::empty(out.shape(), DType::f32);
  Tensor up = Tensor::empty(out.shape(), DType::f32);
  matmul(x, w_gate, gate, gate_bias);
  matmul(x, w_up, up, up_bias);
  silu_mul(gate, up, out);
}

void rope_qk(Tensor& q, Tensor& k, const Tensor& positions, const Tensor& inv_freq,
             float attention_scaling) {
  rope(q, positions, inv_freq, attention_scaling, q);
  rope(k, positions, inv_freq, attention_scaling, k);
}

}  // namespace hearth::ops::reference
