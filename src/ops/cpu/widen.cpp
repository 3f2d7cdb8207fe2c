#include "ops/cpu/widen.h"

#include "ops/cpu/cpu_backend.h"

namespace hearth::ops::cpu {

const Tensor& WidenBf16::in(const Tensor& t) {
  if (!t.defined() || t.dtype() != DType::bf16) return t;
  Tensor& wide = temps_.emplace_back(Tensor::empty(t.shape(), DType::f32));
  cpu::copy(t, wide);
  return wide;
}

Tensor& WidenBf16::out(Tensor& t, bool read) {
  if (!t.defined() || t.dtype() != DType::bf16) return t;
  Tensor& wide = temps_.emplace_back(Tensor::empty(t.shape(), DType::f32));
  if (read) cpu::copy(t, wide);
  outs_.emplace_back(&t, &wide);
  return wide;
}

void WidenBf16::finish() {
  for (auto& [narrow, wide] : outs_) cpu::copy(*wide, *narrow);
  outs_.clear();
}

}  // namespace hearth::ops::cpu
