// How products with bf16 weights treat their f32 input on backends with bf16 tensor cores (CUDA),
// the analogue of torch.set_float32_matmul_precision. A model sets it for its forward passes
// (model::LoadOptions::matmul_precision); kernels read it where they choose a GEMM.
#pragma once

namespace hearth::ops {

enum class MatmulPrecision {
  // Products as exact as the f32 reference: CUDA prefill GEMMs run three bf16 tensor-core GEMMs
  // over an exact three-way split of x (3x the tensor-core work). HF-f32 golden tests need this.
  exact,
  // x rounded to bf16 once and one bf16 GEMM with f32 accumulation, as PyTorch and MLX compute a
  // bf16 model: logits within bf16 tolerance, prefill GEMMs 3x cheaper. The CPU's quantized
  // products round x to int16 per quantization group (finer than bf16) and dot it with the codes
  // in integer arithmetic: the 4/8-bit GEMV (cpu/qgemv.cpp, half the instructions per code) and,
  // on CPUs with AVX-VNNI, the GEMM of every width (cpu/qgemm_int16.cpp). Other products stay
  // exact (bandwidth-bound, or no cheaper path).
  bf16,
};

const char* matmul_precision_name(MatmulPrecision p);

// Whether the CUDA backend's bf16 tensor-core kernels serve MatmulPrecision::bf16: the 4-bit GEMV
// (cuda/quantized_mma.cu) and the prefill attention (cuda/flash_prefill.cu). On unless
// HEARTH_CUDA_BF16_KERNELS=0, which keeps the f32-exact kernels (to bisect, and for A/B figures).
bool cuda_bf16_kernels_enabled();

// The precision of this thread's matmuls: exact unless a MatmulPrecisionScope says otherwise.
MatmulPrecision matmul_precision();

// Sets this thread's matmul precision until the scope ends (scopes nest).
class MatmulPrecisionScope {
 public:
  explicit MatmulPrecisionScope(MatmulPrecision p);
  ~MatmulPrecisionScope();
  MatmulPrecisionScope(const MatmulPrecisionScope&) = delete;
  MatmulPrecisionScope& operator=(const MatmulPrecisionScope&) = delete;

 private:
  MatmulPrecision previous_;
};

}  // namespace hearth::ops
