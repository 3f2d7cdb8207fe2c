// bf16 activations on the CPU backend. The CPU kernels are written for f32 activations (the CPU
// decoder keeps its activations in f32: its products widen bf16 to f32 in any case), so an op
// called with bf16 activations runs on f32 copies: bf16 inputs widen exactly, outputs are computed
// in f32 and rounded to bf16 once — the arithmetic the CUDA kernels do with bf16 activations.
#pragma once

#include <list>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace hearth::ops::cpu {

class WidenBf16 {
 public:
  WidenBf16() = default;
  WidenBf16(const WidenBf16&) = delete;
  WidenBf16& operator=(const WidenBf16&) = delete;

  // t itself unless it is bf16; then an f32 copy of it.
  const Tensor& in(const Tensor& t);
  // t itself unless it is bf16; then an f32 buffer (holding t's values when `read`: outputs that
  // are updated in place) that finish() rounds back into t.
  Tensor& out(Tensor& t, bool read = false);
  // Writes the f32 results back into the bf16 outputs.
  void finish();

 private:
  std::list<Tensor> temps_;                        // stable references; no allocation while empty
  std::vector<std::pair<Tensor*, Tensor*>> outs_;  // (bf16 output, its f32 buffer)
};

}  // namespace hearth::ops::cpu
