// Reference argmax and top_k: a full stable sort by value, descending; NaN counts as the largest
// value (as in torch.argmax / torch.topk); ties go to the lower index.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "ops/reference/reference.h"

namespace hearth::ops::reference {
namespace {

// a ranks before b.
bool ranks_before(double a, double b) {
  if (std::isnan(a)) return !std::isnan(b);
  if (std::isnan(b)) return false;
  return a > b;
}

std::vector<int64_t> ranking(const Tensor& x, int64_t row) {
  std::vector<int64_t> order(size_t(x.dim(1)));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return ranks_before(get(x, {row, a}), get(x, {row, b}));
  });
  return order;
}

}  // namespace

void argmax(const Tensor& x, Tensor& out) {
  for (int64_t r = 0; r < x.dim(0); ++r) set(out, {r}, double(ranking(x, r)[0]));
}

void top_k(const Tensor& x, int k, Tensor& values, Tensor& indices) {
  for (int64_t r = 0; r < x.dim(0); ++r) {
    std::vector<int64_t> order = ranking(x, r);
    for (int64_t i = 0; i < k; ++i) {
      set(values, {r, i}, get(x, {r, order[size_t(i)]}));
      set(indices, {r, i}, double(order[size_t(i)]));
    }
  }
}

}  // namespace hearth::ops::reference
