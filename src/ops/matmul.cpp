// matmul front-ends: out[M, N] = x[M, K] . w[N, K]^T (+ bias), plain, grouped and with SiLU·mul.
#include "ops/matmul.h"

#include <iterator>

#include "ops/backend.h"
#include "ops/validate.h"

namespace hearth::ops {

using namespace detail;

namespace {

void check_x(const char* op, const Tensor& x) {
  check_defined(op, "x", x);
  check_ndim(op, "x", x, 2);
  check_activation(op, "x", x);
  check_rows_contiguous(op, "x", x);
}

// One product's operands against x (already checked): w [N, K], out [M, N], bias [N].
void check_product(const char* op, const Tensor& x, const Tensor& w, const Tensor& out,
                   const Tensor* bias, const char* w_name = "w", const char* out_name = "out",
                   const char* bias_name = "bias") {
  check_defined(op, w_name, w);
  check_defined(op, out_name, out);
  check_ndim(op, w_name, w, 2);
  check_ndim(op, out_name, out, 2);
  check_dtype_in(op, w_name, w, {DType::f32, DType::f16, DType::bf16});
  check_activation(op, out_name, out);
  int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  if (w.dim(1) != k)
    fail(ErrorCode::invalid_argument, "{}: {} {} has {} columns, x {} has {} (K must match)", op,
         w_name, w.shape().str(), w.dim(1), x.shape().str(), k);
  if (out.dim(0) != m || out.dim(1) != n)
    fail(ErrorCode::invalid_argument,
         "{}: {} must have shape [{}, {}] (M from x, N from {}), got {}", op, out_name, m, n,
         w_name, out.shape().str());
  check_contiguous(op, w_name, w);
  check_rows_contiguous(op, out_name, out);
  Device device = x.device();
  check_device(op, w_name, w, device);
  check_device(op, out_name, out, device);
  check_no_overlap(op, out_name, out, "x", x);
  check_no_overlap(op, out_name, out, w_name, w);
  if (bias) check_bias(op, bias_name, *bias, n, w_name, device, out_name, out);
}

}  // namespace

void matmul(const Tensor& x, const Tensor& w, Tensor& out, const Tensor* bias) {
  check_x("matmul", x);
  check_product("matmul", x, w, out, bias);
  backend_for(x.device()).matmul(x, w, bias, out);
}

void matmul_grouped(const Tensor& x, std::span<const MatmulGroup> groups) {
  const char* op = "matmul_grouped";
  check_x(op, x);
  if (groups.empty() || groups.size() > size_t(kMaxMatmulGroups))
    fail(ErrorCode::invalid_argument, "{}: takes 1 to {} products, got {}", op, kMaxMatmulGroups,
         groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    const MatmulGroup& p = groups[g];
    if (!p.w || !p.out)
      fail(ErrorCode::invalid_argument, "{}: product {} has no weight or no output", op, g);
    // Names without formatting: this runs for every layer of every step.
    static constexpr const char* kW[] = {"w[0]", "w[1]", "w[2]", "w[3]"};
    static constexpr const char* kOut[] = {"out[0]", "out[1]", "out[2]", "out[3]"};
    static constexpr const char* kBias[] = {"bias[0]", "bias[1]", "bias[2]", "bias[3]"};
    static_assert(std::size(kW) == size_t(kMaxMatmulGroups));
    const char* w_name = kW[g];
    const char* out_name = kOut[g];
    check_product(op, x, *p.w, *p.out, p.bias, w_name, out_name, kBias[g]);
    if (p.w->dtype() != groups[0].w->dtype())
      fail(ErrorCode::invalid_argument, "{}: {} is {} but w[0] is {} (one weight dtype)", op,
           w_name, dtype_name(p.w->dtype()), dtype_name(groups[0].w->dtype()));
    for (size_t h = 0; h < g; ++h)
      check_no_overlap(op, out_name, *p.out, "an earlier output", *groups[h].out);
  }
  backend_for(x.device()).matmul_grouped(x, groups);
}

void matmul_silu_mul(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, Tensor& out,
                     const Tensor* gate_bias, const Tensor* up_bias) {
  const char* op = "matmul_silu_mul";
  check_x(op, x);
  check_product(op, x, w_gate, out, gate_bias, "w_gate", "out", "gate_bias");
  check_product(op, x, w_up, out, up_bias, "w_up", "out", "up_bias");
  if (w_up.dtype() != w_gate.dtype())
    fail(ErrorCode::invalid_argument, "{}: w_up is {} but w_gate is {} (one weight dtype)", op,
         dtype_name(w_up.dtype()), dtype_name(w_gate.dtype()));
  backend_for(x.device()).matmul_silu_mul(x, w_gate, w_up, gate_bias, up_bias, out);
}

}  // namespace hearth::ops
