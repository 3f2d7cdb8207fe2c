#include "ops/precision.h"

namespace hearth::ops {
namespace {

// Per thread, so that two models with different settings can run on two threads.
thread_local MatmulPrecision current = MatmulPrecision::exact;

}  // namespace

const char* matmul_precision_name(MatmulPrecision p) {
  return p == MatmulPrecision::bf16 ? "bf16" : "exact";
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
