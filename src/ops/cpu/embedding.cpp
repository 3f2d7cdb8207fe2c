// CPU embedding gather: one row conversion per token.
#include "core/thread_pool.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/simd.h"

namespace hearth::ops::cpu {
namespace {

template <typename T>
void gather(const Tensor& table, const Tensor& ids, Tensor& out) {
  const int64_t vocab = table.dim(0), hidden = table.dim(1);
  const int64_t tokens = ids.dim(0), id_stride = ids.stride(0);
  const int32_t* idp = ids.data<int32_t>();
  for (int64_t t = 0; t < tokens; ++t) {
    int32_t id = idp[t * id_stride];
    if (id < 0 || id >= vocab)
      fail(ErrorCode::invalid_argument, "embedding: id {} at position {} is outside [0, {})", id, t,
           vocab);
  }
  const T* tb = table.data<T>();
  float* ob = out.data<float>();
  const int64_t ts = table.stride(0), os = out.stride(0);
  int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(hidden, 1));
  parallel_for(tokens, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const T* src = tb + int64_t(idp[t * id_stride]) * ts;
      float* dst = ob + t * os;
      int64_t i = 0;
      for (; i + kLanes <= hidden; i += kLanes) _mm256_storeu_ps(dst + i, load8(src + i));
      if (i < hidden)
        store_partial(dst + i, load_partial(src + i, int(hidden - i)), int(hidden - i));
    }
  });
}

}  // namespace

void embedding(const Tensor& table, const Tensor& ids, Tensor& out) {
  switch (table.dtype()) {
    case DType::f32:
      return gather<float>(table, ids, out);
    case DType::f16:
      return gather<F16>(table, ids, out);
    case DType::bf16:
      return gather<BF16>(table, ids, out);
    default:
      HEARTH_CHECK(false, "embedding table {}", table.describe());
  }
}

}  // namespace hearth::ops::cpu
