// embedding front-end: out[t] = table[ids[t]] as f32.
#include "ops/embedding.h"

#include "ops/backend.h"
#include "ops/validate.h"

namespace hearth::ops {

using namespace detail;

void embedding(const Tensor& table, const Tensor& ids, Tensor& out) {
  const char* op = "embedding";
  check_defined(op, "table", table);
  check_defined(op, "ids", ids);
  check_defined(op, "out", out);
  check_ndim(op, "table", table, 2);
  check_ndim(op, "ids", ids, 1);
  check_ndim(op, "out", out, 2);
  check_dtype_in(op, "table", table, {DType::f32, DType::f16, DType::bf16});
  check_dtype(op, "ids", ids, DType::i32);
  check_dtype(op, "out", out, DType::f32);
  if (out.dim(0) != ids.dim(0) || out.dim(1) != table.dim(1))
    fail(ErrorCode::invalid_argument,
         "embedding: out must have shape [{}, {}] (ids x table columns), got {}", ids.dim(0),
         table.dim(1), out.shape().str());
  check_rows_contiguous(op, "table", table);
  check_rows_contiguous(op, "out", out);
  Device device = table.device();
  check_device(op, "ids", ids, device);
  check_device(op, "out", out, device);
  check_no_overlap(op, "out", out, "table", table);
  backend_for(device).embedding(table, ids, out);
}

}  // namespace hearth::ops
