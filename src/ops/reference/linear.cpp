// Reference matmul and embedding.
#include "ops/reference/reference.h"

namespace hearth::ops::reference {

void matmul(const Tensor& x, const Tensor& w, Tensor& out, const Tensor* bias) {
  int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = bias ? get(*bias, {j}) : 0.0;
      for (int64_t l = 0; l < k; ++l) sum += get(x, {i, l}) * get(w, {j, l});
      set(out, {i, j}, sum);
    }
  }
}

void embedding(const Tensor& table, const Tensor& ids, Tensor& out) {
  int64_t vocab = table.dim(0), hidden = table.dim(1);
  for (int64_t t = 0; t < ids.dim(0); ++t) {
    int64_t id = get_int(ids, {t});
    if (id < 0 || id >= vocab)
      fail(ErrorCode::invalid_argument, "embedding: id {} at position {} is outside [0, {})", id, t,
           vocab);
    for (int64_t h = 0; h < hidden; ++h) set(out, {t, h}, get(table, {id, h}));
  }
}

}  // namespace hearth::ops::reference
