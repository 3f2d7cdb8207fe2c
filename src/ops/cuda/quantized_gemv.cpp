// The CUDA backend's choice of kernel for quantized GEMVs (cuda_backend.cpp calls these): the
// tensor-core 4-bit GEMV of MatmulPrecision::bf16 where it applies, chunked over rows of x.
#include <algorithm>

#include "ops/cuda/backend_internal.h"
#include "ops/precision.h"

namespace hearth::ops::cuda {
namespace {

// Rows of x up to which the tensor-core 4-bit GEMV is used, kQuantGemvMaxRows at a time: each
// chunk reads the weights once more, which up to 4 chunks still beats dequantizing them into
// bf16 panels for a GEMM (a write and a read of 4x the 4-bit bytes).
constexpr int64_t kQuantGemvBf16MaxRows = 4 * kQuantGemvMaxRows;

}  // namespace

QuantMatrix quant_matrix(const QuantizedWeight& w) {
  QuantMatrix q;
  q.packed = w.packed.data<uint32_t>();
  q.scales = w.scales.raw_data();
  q.biases = w.biases.raw_data();
  q.scale_elem = elem_of(w.scales.dtype());
  q.bits = w.bits;
  q.group_size = w.group_size;
  q.n = w.rows();
  q.k = w.cols();
  return q;
}

QuantGemvOut quant_gemv_out(const QuantizedWeight& w, const Tensor* bias, Tensor* out) {
  QuantGemvOut o;
  o.w = quant_matrix(w);
  o.bias = bias ? bias->raw_data() : nullptr;
  o.bias_elem = bias ? elem_of(bias->dtype()) : Elem::f32;
  o.out = out ? out->raw_data() : nullptr;
  o.out_elem = out ? elem_of(out->dtype()) : Elem::f32;
  o.out_stride = out ? out->stride(0) : 0;
  return o;
}

bool try_quantized_gemv_bf16(const Tensor& x, QuantGemvGroups groups, bool silu_mul) {
  const int64_t m = x.dim(0), k = x.dim(1);
  if (matmul_precision() != MatmulPrecision::bf16 || !cuda_bf16_kernels_enabled() ||
      m > kQuantGemvBf16MaxRows)
    return false;
  for (int i = 0; i < groups.count; ++i) {
    const QuantMatrix& w = groups.g[i].w;
    if (!quantized_gemv_bf16_fits(w, 1) || w.scale_elem != groups.g[0].w.scale_elem) return false;
    if (silu_mul && (w.n != groups.g[0].w.n || w.group_size != groups.g[0].w.group_size))
      return false;
  }
  const int64_t rows = std::min<int64_t>(m, kQuantGemvMaxRows);
  Tensor scratch =
      Tensor::empty({quantized_gemv_bf16_scratch_bytes(int(rows), k)}, DType::u8, x.device());
  for (int64_t i0 = 0; i0 < m; i0 += kQuantGemvMaxRows) {
    const int chunk = int(std::min<int64_t>(kQuantGemvMaxRows, m - i0));
    QuantGemvGroups part = groups;
    for (int i = 0; i < part.count; ++i)
      if (part.g[i].out)
        part.g[i].out = static_cast<char*>(part.g[i].out) +
                        i0 * part.g[i].out_stride * (part.g[i].out_elem == Elem::bf16 ? 2 : 4);
    const Tensor rows = x.slice(0, i0, i0 + chunk);
    check_cuda(launch_quantized_gemv_bf16(rows.raw_data(), elem_of(x.dtype()), x.stride(0), chunk,
                                          k, part, silu_mul, scratch.raw_data(), backend_stream()),
               "quantized_matmul (bf16 GEMV)");
  }
  return true;
}

}  // namespace hearth::ops::cuda
