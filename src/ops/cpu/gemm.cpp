// CPU GEMM for prefill (placeholder: GEMV over blocks of rows; the packed kernel replaces it).
#include "ops/cpu/matmul_internal.h"

namespace hearth::ops::cpu {

void gemm(const MatmulArgs& a) {
  gemv(a);
}

}  // namespace hearth::ops::cpu
