#include "ops/precision.h"

#include <cstdlib>
#include <cstring>

namespace hearth::ops {
namespace {

// Per thread, so that two models with different settings can run on two threads.
thread_local MatmulPrecision current = MatmulPrecision::exact;

}  // namespace

const char* matmul_precision_name(MatmulPrecision p) {
  return p == MatmulPrecision::bf16 ? "bf16" : "exact";
}

bool cuda_bf16_kernels_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("HEARTH_CUDA_BF16_KERNELS");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

MatmulPrecision matmul_precision() {
  return current;
}

MatmulPrecisionScope::MatmulPrecisionScope(MatmulPrecision p) : previous_(current) {
  current = p;
}

MatmulPrecisionScope::~MatmulPrecisionScope() {
  current = previous_;
}

}  // namespace hearth::ops
