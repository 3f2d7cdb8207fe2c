// The CUDA backend (host side): device selection, the one stream, the caching allocator's instance
// (caching_allocator.h), and the Backend whose methods unpack tensors into the kernel launchers of
// launch.h. Host <-> device copies are cudaMemcpy of contiguous bytes; layout and dtype changes
// run on the device.
#include "ops/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

#include "core/storage.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cuda/backend_internal.h"
#include "ops/cuda/caching_allocator.h"
#include "ops/cuda/launch.h"
#include "ops/cuda/op_profile.h"
#include "ops/cuda/quantized_kv_launch.h"
#include "ops/cuda/quantized_launch.h"
#include "ops/cuda/sampling_backend.h"
#include "ops/precision.h"

namespace hearth::ops::cuda {

namespace {

[[noreturn]] void fail_cuda(cudaError_t error, const char* what) {
  ErrorCode code =
      error == cudaErrorMemoryAllocation ? ErrorCode::out_of_memory : ErrorCode::internal;
  fail(code, "CUDA error {} ({}) in {}", cudaGetErrorName(error), cudaGetErrorString(error), what);
}

void check(cudaError_t error, const char* what) {
  if (error != cudaSuccess) fail_cuda(error, what);
}

}  // namespace

Elem elem_of(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return Elem::f32;
    case DType::f16:
      return Elem::f16;
    case DType::bf16:
      return Elem::bf16;
    case DType::u8:
      return Elem::u8;
    case DType::i32:
    case DType::u32:
      return Elem::u32;
    case DType::i64:
      return Elem::u64;
  }
  return Elem::f32;
}

namespace {

Rows rows_of(const Tensor& t) {
  Rows r;
  HEARTH_CHECK(t.ndim() >= 1 && t.ndim() <= 5, "CUDA kernels take 1 to 5 dimensions, got {}",
               t.describe());
  HEARTH_CHECK(t.stride(-1) == 1 || t.dim(-1) <= 1, "CUDA: last dimension not contiguous in {}",
               t.describe());
  r.elem = elem_of(t.dtype());
  r.cols = t.dim(-1);
  r.lead = t.ndim() - 1;
  for (int d = 0; d < r.lead; ++d) {
    r.shape[d] = t.dim(d);
    r.stride[d] = t.stride(d);
    r.count *= t.dim(d);
  }
  return r;
}

class CudaBackend;

struct State {
  bool ok = false;
  std::string why;
  cudaStream_t stream = nullptr;
  CachingAllocator allocator;
  CudaBackend* backend = nullptr;
  cublasHandle_t blas = nullptr;  // created on the first GEMM (it costs ~100 ms and memory)
  // Set before the first graph capture (prepare_blas_for_capture); never freed.
  static constexpr size_t kBlasWorkspaceBytes = size_t(32) << 20;  // cuBLAS's Hopper default
  void* blas_workspace = nullptr;

  // Small host -> device uploads (per-step ids, positions, slots, block tables) go through
  // pinned slots without a stream sync; a slot is reused once the event of its last copy passed.
  static constexpr size_t kStageSlots = 64, kStageSlotBytes = 64 << 10;
  char* stage = nullptr;
  cudaEvent_t stage_done[kStageSlots] = {};
  bool stage_used[kStageSlots] = {};
  size_t next_slot = 0;

  // Embedding ids are checked on the device without a sync: the first bad (position, id) is
  // kept on the device and read with the next device -> host transfer, which then fails.
  unsigned long long* bad_id = nullptr;       // device; all ones when no bad id was seen
  unsigned long long* bad_id_host = nullptr;  // pinned
  bool embedding_unchecked = false;
  int64_t embedding_vocab = 0;
  const char* embedding_op = "embedding";  // the op named by the error

  // Device -> host reads up to kDownloadMaxBytes (the logits of a step) land in a pinned buffer
  // first: a copy into pageable memory was the largest per-step cost of a 1B decode on the H200
  // (HEARTH_CUDA_PROFILE: ~400 us per read).
  static constexpr size_t kDownloadMaxBytes = size_t(32) << 20;
  char* download = nullptr;
  size_t download_bytes = 0;
};

State& state();
cudaStream_t stream() {
  return state().stream;
}

void check_blas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail(status == CUBLAS_STATUS_ALLOC_FAILED ? ErrorCode::out_of_memory : ErrorCode::internal,
         "cuBLAS error {} ({}) in {}", cublasGetStatusName(status), cublasGetStatusString(status),
         what);
}

cublasHandle_t blas_handle() {
  State& s = state();
  if (!s.blas) {
    check_blas(cublasCreate(&s.blas), "cublasCreate");
    check_blas(cublasSetStream(s.blas, s.stream), "cublasSetStream");
    // Full f32 products for f32 weights (no TF32): the golden tests compare f32 models to HF.
    check_blas(cublasSetMathMode(s.blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  }
  return s.blas;
}

// Rows of x up to which matmul runs the bandwidth GEMV kernels (matmul.cu's kGemvMaxRows).
constexpr int64_t kGemvMaxRows = 8;

// Prefill GEMM on cuBLAS, as exact as the f32 reference: bf16 weights run three bf16
// tensor-core GEMMs over an exact three-way bf16 split of x (products are exact, accumulation is
// f32, so the golden f32 tests keep passing; about 3x the FLOPs of a single bf16 GEMM that rounds
// x, which HF-f32 logit tolerances of 1e-4 do not allow). f32 weights use f32 cuBLAS (no TF32).
// out is column-major out^T [n, m]: out^T = w (k x n column-major, transposed) * x^T (k x m).
bool blas_handles(const Tensor& w) {
  return w.dtype() == DType::bf16 || w.dtype() == DType::f32;
}

// x as blas_gemm reads it, made once and shared by every product of the same x (q/k/v, gate/up):
// for bf16 weights, x itself when it is bf16, else its bf16 planes (three exact ones, or x
// rounded once under MatmulPrecision::bf16, ops/precision.h); for f32 weights, x in f32.
struct BlasX {
  Tensor planes;  // [planes, m, k] bf16, or [1, m, k] f32 (a widened bf16 x), or undefined: x
  const Tensor* x = nullptr;
  const void* plane(int64_t p) const {
    if (!planes.defined()) return x->raw_data();
    return static_cast<const char*>(planes.raw_data()) +
           p * planes.stride(0) * int64_t(dtype_size(planes.dtype()));
  }
  int64_t count() const { return planes.defined() ? planes.dim(0) : 1; }
  int64_t ld() const { return planes.defined() ? planes.dim(2) : x->stride(0); }
  DType dtype() const { return planes.defined() ? planes.dtype() : x->dtype(); }
};

void device_copy(const Tensor& src, Tensor& dst);

BlasX blas_prepare(const Tensor& x, DType w_dtype) {
  BlasX bx;
  bx.x = &x;
  const int64_t m = x.dim(0), k = x.dim(1);
  const DType want = w_dtype == DType::bf16 ? DType::bf16 : DType::f32;
  if (x.dtype() == want) return bx;  // cuBLAS reads x in place
  if (want == DType::f32 || matmul_precision() == MatmulPrecision::bf16) {
    // bf16 x for f32 weights widens exactly; f32 x rounds to nearest even (the split's hi plane).
    bx.planes = Tensor::empty({1, m, k}, want, x.device());
    Tensor converted = bx.planes.reshape({m, k});
    device_copy(x, converted);
    return bx;
  }
  bx.planes = Tensor::empty({3, m, k}, DType::bf16, x.device());
  check(launch_split_rows_bf16(x.data<float>(), x.stride(0), bx.planes.raw_data(), m, k, stream()),
        "matmul: split x");
  return bx;
}

void blas_gemm(const Tensor& x, const BlasX& bx, const Tensor& w, const Tensor* bias, Tensor& out) {
  const int64_t m = x.dim(0), n = w.dim(0), k = x.dim(1);
  HEARTH_CHECK(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && bx.ld() <= INT_MAX &&
                   out.stride(0) <= INT_MAX,
               "matmul on CUDA: {} x {} x {} is too large for cuBLAS", m, n, k);
  // A bf16 out is rounded once: straight from cuBLAS's f32 sums when one bf16 GEMM without a
  // bias makes it (as PyTorch's bf16 linear), else from an f32 buffer that the bias and the
  // planes' GEMMs accumulate in (cuBLAS has no f32 x f32 -> bf16 GEMM).
  const bool direct =
      out.dtype() == DType::f32 || (w.dtype() == DType::bf16 && !bias && bx.count() == 1);
  Tensor acc = direct ? out : Tensor::empty(out.shape(), DType::f32, out.device());
  cublasHandle_t handle = blas_handle();
  float beta = 0.0f;
  if (bias) {
    check(launch_fill_bias_rows(bias->raw_data(), elem_of(bias->dtype()), acc.data<float>(),
                                acc.stride(0), m, n, stream()),
          "matmul: bias");
    beta = 1.0f;
  }
  const float alpha = 1.0f;
  const cudaDataType type = w.dtype() == DType::f32 ? CUDA_R_32F : CUDA_R_16BF;
  const cudaDataType out_type = acc.dtype() == DType::f32 ? CUDA_R_32F : CUDA_R_16BF;
  HEARTH_CHECK(bx.dtype() == w.dtype(), "matmul on CUDA: x prepared as {} for {} weights",
               dtype_name(bx.dtype()), dtype_name(w.dtype()));
  // Smallest parts first, so the large hi products are added last.
  for (int64_t p = bx.count() - 1; p >= 0; --p) {
    const float b = p == bx.count() - 1 ? beta : 1.0f;
    check_blas(
        cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, int(n), int(m), int(k), &alpha, w.raw_data(),
                     type, int(k), bx.plane(p), type, int(bx.ld()), &b, acc.raw_data(), out_type,
                     int(acc.stride(0)), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx (matmul)");
  }
  if (!direct) device_copy(acc, out);
}

void blas_matmul(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  blas_gemm(x, blas_prepare(x, w.dtype()), w, bias, out);
}

// Whether matmul sends this product to cuBLAS (else to launch_matmul's kernels).
bool uses_blas(const Tensor& x, const Tensor& w) {
  return x.dim(0) > kGemvMaxRows && x.dim(1) > 0 && w.dim(0) > 0 && blas_handles(w);
}

void device_copy(const Tensor& src, Tensor& dst) {
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    if (src.nbytes())
      check(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), src.nbytes(), cudaMemcpyDeviceToDevice,
                            stream()),
            "cudaMemcpyAsync (device to device)");
    return;
  }
  CopyLayout l;
  l.ndim = src.ndim();
  for (int k = 0; k < l.ndim; ++k) {
    l.shape[k] = src.dim(k);
    l.src_stride[k] = src.stride(k);
    l.dst_stride[k] = dst.stride(k);
  }
  check(launch_strided_copy(src.raw_data(), elem_of(src.dtype()), dst.raw_data(),
                            elem_of(dst.dtype()), l, src.numel(), stream()),
        "strided copy");
}

// Synchronizes the stream and reports an embedding id that failed the device-side check since
// the last sync.
void sync_and_check_ids() {
  State& s = state();
  const bool check_ids = s.embedding_unchecked;
  if (check_ids)
    check(cudaMemcpyAsync(s.bad_id_host, s.bad_id, sizeof(*s.bad_id), cudaMemcpyDeviceToHost,
                          s.stream),
          "cudaMemcpyAsync (embedding id check)");
  check(cudaStreamSynchronize(s.stream), "cudaStreamSynchronize");
  op_profile_collect();
  if (!check_ids) return;
  s.embedding_unchecked = false;
  const unsigned long long bad = *s.bad_id_host;
  if (bad == ~0ull) return;
  check(cudaMemsetAsync(s.bad_id, 0xff, sizeof(*s.bad_id), s.stream), "cudaMemsetAsync");
  check(cudaStreamSynchronize(s.stream), "cudaStreamSynchronize");
  fail(ErrorCode::invalid_argument, "{}: id {} at position {} is outside [0, {})", s.embedding_op,
       int32_t(uint32_t(bad & 0xffffffffu)), int64_t(bad >> 32), s.embedding_vocab);
}

void transfer(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  State& s = state();
  if (kind == cudaMemcpyHostToDevice && bytes <= State::kStageSlotBytes && s.stage) {
    const size_t slot = s.next_slot;
    s.next_slot = (slot + 1) % State::kStageSlots;
    if (s.stage_used[slot])
      check(cudaEventSynchronize(s.stage_done[slot]), "cudaEventSynchronize (upload slot)");
    char* staged = s.stage + slot * State::kStageSlotBytes;
    std::memcpy(staged, src, bytes);
    if (bytes) check(cudaMemcpyAsync(dst, staged, bytes, kind, s.stream), "cudaMemcpyAsync");
    check(cudaEventRecord(s.stage_done[slot], s.stream), "cudaEventRecord");
    s.stage_used[slot] = true;
    return;
  }
  if (kind == cudaMemcpyDeviceToHost && bytes > 0 && bytes <= State::kDownloadMaxBytes) {
    if (s.download_bytes < bytes) {
      if (s.download) check(cudaFreeHost(s.download), "cudaFreeHost");
      s.download = nullptr;
      s.download_bytes = 0;
      const size_t size = std::max(bytes, size_t(1) << 20);
      check(cudaHostAlloc(reinterpret_cast<void**>(&s.download), size, cudaHostAllocDefault),
            "cudaHostAlloc (download buffer)");
      s.download_bytes = size;
    }
    check(cudaMemcpyAsync(s.download, src, bytes, kind, s.stream), "cudaMemcpyAsync");
    sync_and_check_ids();
    std::memcpy(dst, s.download, bytes);
    return;
  }
  if (bytes) check(cudaMemcpyAsync(dst, src, bytes, kind, s.stream), "cudaMemcpyAsync");
  // Host buffers may be freed (or read) as soon as we return.
  sync_and_check_ids();
}

void copy(const Tensor& src, Tensor& dst) {
  const bool src_dev = src.device().is_cuda(), dst_dev = dst.device().is_cuda();
  if (src_dev && dst_dev) return device_copy(src, dst);
  if (!src_dev) {  // host -> device
    Tensor host = src;
    if (!host.is_contiguous()) {
      host = Tensor::empty(src.shape(), src.dtype());
      cpu::copy(src, host);
    }
    if (dst.dtype() == src.dtype() && dst.is_contiguous())
      return transfer(dst.raw_data(), host.raw_data(), host.nbytes(), cudaMemcpyHostToDevice);
    Tensor staged = Tensor::empty(src.shape(), src.dtype(), dst.device());
    transfer(staged.raw_data(), host.raw_data(), host.nbytes(), cudaMemcpyHostToDevice);
    return device_copy(staged, dst);
  }
  // device -> host: convert/compact on the device into dst's dtype, move, lay out on the host.
  Tensor dev = src;
  if (!(src.dtype() == dst.dtype() && src.is_contiguous())) {
    dev = Tensor::empty(src.shape(), dst.dtype(), src.device());
    device_copy(src, dev);
  }
  if (dst.is_contiguous())
    return transfer(dst.raw_data(), dev.raw_data(), dev.nbytes(), cudaMemcpyDeviceToHost);
  Tensor host = Tensor::empty(src.shape(), dst.dtype());
  transfer(host.raw_data(), dev.raw_data(), dev.nbytes(), cudaMemcpyDeviceToHost);
  cpu::copy(host, dst);
}

QuantizedKvArgs quantized_kv_args(const QuantizedKvPlanes& c) {
  QuantizedKvArgs a;
  a.k_packed = static_cast<uint32_t*>(c.k_packed.raw_data());
  a.k_scales = c.k_scales.raw_data();
  a.k_biases = c.k_biases.raw_data();
  a.v_packed = static_cast<uint32_t*>(c.v_packed.raw_data());
  a.v_scales = c.v_scales.raw_data();
  a.v_biases = c.v_biases.raw_data();
  a.scale_elem = elem_of(c.k_scales.dtype());
  a.bits = c.bits;
  a.group_size = c.group_size;
  a.block_size = int(c.block_size());
  a.kv_heads = c.kv_heads();
  a.head_dim = c.head_dim();
  return a;
}

GemvOut gemv_out(const Tensor& w, const Tensor* bias, Tensor* out) {
  GemvOut g;
  g.w = w.raw_data();
  g.bias = bias ? bias->raw_data() : nullptr;
  g.bias_elem = bias ? elem_of(bias->dtype()) : Elem::f32;
  g.out = out ? out->raw_data() : nullptr;
  g.out_elem = out ? elem_of(out->dtype()) : Elem::f32;
  g.out_stride = out ? out->stride(0) : 0;
  g.n = w.dim(0);
  return g;
}

RopeArgs rope_args(const Tensor& positions, const Tensor& inv_freq, float scaling,
                   int64_t head_dim) {
  RopeArgs a;
  a.positions = positions.data<int32_t>();
  a.pos_stride = positions.stride(0);
  a.inv_freq = inv_freq.data<float>();
  a.half = int(inv_freq.numel());
  a.head_dim = head_dim;
  a.scaling = scaling;
  return a;
}

RopeTensor rope_tensor(const Tensor& x, Tensor& out) {
  RopeTensor r;
  r.x = x.raw_data();
  r.out = out.raw_data();
  r.elem = elem_of(x.dtype());
  r.x_token_stride = x.stride(0);
  r.x_head_stride = x.stride(1);
  r.out_token_stride = out.stride(0);
  r.out_head_stride = out.stride(1);
  r.heads = x.dim(1);
  return r;
}

class CudaBackend final : public Backend {
 public:
  const char* name() const override { return "cuda"; }
  void copy(const Tensor& src, Tensor& dst) override {
    OpProfileScope scope(
        src.device().is_cuda() && dst.device().is_cuda() ? "copy (device)" : "copy (host)",
        stream());
    cuda::copy(src, dst);
  }

  void matmul(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) override {
    OpProfileScope scope(x.dim(0) > kGemvMaxRows ? "matmul (gemm)" : "matmul (gemv)", stream());
    matmul_unprofiled(x, w, bias, out);
  }

  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override {
    OpProfileScope scope("embedding", stream());
    const int64_t tokens = ids.dim(0);
    if (tokens == 0) return;
    // Ids come from users: an out-of-range one is an error, not a wild read. It is reported at
    // the next device -> host transfer (sync_and_check_ids) so that a step needs no extra sync.
    State& s = state();
    check(launch_embedding(table.raw_data(), elem_of(table.dtype()), table.dim(0), table.dim(1),
                           ids.data<int32_t>(), ids.stride(0), tokens, out.data<float>(),
                           rows_of(out), s.bad_id, stream()),
          "embedding");
    s.embedding_unchecked = true;
    s.embedding_vocab = table.dim(0);
    s.embedding_op = "embedding";
  }

  void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override {
    OpProfileScope scope("rms_norm", stream());
    check(launch_rms_norm(x.raw_data(), rows_of(x), weight.raw_data(), elem_of(weight.dtype()), eps,
                          out.raw_data(), rows_of(out), stream()),
          "rms_norm");
  }

  void add_rms_norm(Tensor& x, const Tensor& delta, const Tensor& weight, float eps,
                    Tensor& normed) override {
    OpProfileScope scope("add_rms_norm", stream());
    check(launch_add_rms_norm(x.raw_data(), rows_of(x), delta.raw_data(), rows_of(delta),
                              weight.raw_data(), elem_of(weight.dtype()), eps, normed.raw_data(),
                              rows_of(normed), stream()),
          "add_rms_norm");
  }

  void rope(const Tensor& x, const Tensor& positions, const Tensor& inv_freq,
            float attention_scaling, Tensor& out) override {
    OpProfileScope scope("rope", stream());
    RopeArgs a = rope_args(positions, inv_freq, attention_scaling, x.dim(2));
    a.t[a.count++] = rope_tensor(x, out);
    check(launch_rope(a, x.dim(0), stream()), "rope");
  }

  void rope_qk(Tensor& q, Tensor& k, const Tensor& positions, const Tensor& inv_freq,
               float attention_scaling) override {
    OpProfileScope scope("rope_qk", stream());
    RopeArgs a = rope_args(positions, inv_freq, attention_scaling, q.dim(2));
    a.t[a.count++] = rope_tensor(q, q);
    a.t[a.count++] = rope_tensor(k, k);
    check(launch_rope(a, q.dim(0), stream()), "rope_qk");
  }

  void rope_qk_write_kv(Tensor& q, Tensor& k, const Tensor& v, const Tensor& positions,
                        const Tensor& inv_freq, float attention_scaling, const Tensor& slots,
                        Tensor& k_cache, Tensor& v_cache) override {
    OpProfileScope scope("rope_qk_write_kv", stream());
    RopeArgs a = rope_args(positions, inv_freq, attention_scaling, q.dim(2));
    a.t[a.count++] = rope_tensor(q, q);
    a.t[a.count++] = rope_tensor(k, k);
    a.t[a.count++] = rope_tensor(v, const_cast<Tensor&>(v));  // read only: t[2] has no output
    a.cache = {slots.data<int32_t>(), slots.stride(0),          k_cache.raw_data(),
               v_cache.raw_data(),    elem_of(k_cache.dtype()), int(k_cache.dim(2)),
               k_cache.dim(1)};
    check(launch_rope(a, q.dim(0), stream()), "rope_qk_write_kv");
  }

  void matmul_grouped(const Tensor& x, std::span<const MatmulGroup> groups) override {
    const int64_t m = x.dim(0);
    OpProfileScope scope(m > kGemvMaxRows ? "matmul_grouped (gemm)" : "matmul_grouped (gemv)",
                         stream());
    if (m > kGemvMaxRows) {
      // Prefill: one GEMM per product, sharing the split of x between the cuBLAS ones.
      BlasX bx;
      bool prepared = false;
      for (const MatmulGroup& g : groups) {
        if (!uses_blas(x, *g.w)) {
          matmul_unprofiled(x, *g.w, g.bias, *g.out);
          continue;
        }
        if (!prepared) bx = blas_prepare(x, g.w->dtype());
        prepared = true;
        blas_gemm(x, bx, *g.w, g.bias, *g.out);
      }
      return;
    }
    GemvGroups gg;
    for (const MatmulGroup& g : groups) gg.g[gg.count++] = gemv_out(*g.w, g.bias, g.out);
    check(launch_matmul_grouped(x.raw_data(), elem_of(x.dtype()), x.stride(0),
                                elem_of(groups[0].w->dtype()), gg, m, x.dim(1), stream()),
          "matmul_grouped");
  }

  void matmul_silu_mul(const Tensor& x, const Tensor& w_gate, const Tensor& w_up,
                       const Tensor* gate_bias, const Tensor* up_bias, Tensor& out) override {
    const int64_t m = x.dim(0);
    const Elem w_elem = elem_of(w_gate.dtype());
    const Elem x_elem = elem_of(x.dtype());
    if (gemv_silu_mul_fits(x.raw_data(), x_elem, x.stride(0), m, x.dim(1), w_gate.raw_data(),
                           w_up.raw_data(), w_elem)) {
      OpProfileScope scope("matmul_silu_mul (gemv)", stream());
      check(launch_gemv_silu_mul(x.raw_data(), x_elem, x.stride(0),
                                 gemv_out(w_gate, gate_bias, nullptr),
                                 gemv_out(w_up, up_bias, nullptr), w_elem, out.raw_data(),
                                 elem_of(out.dtype()), out.stride(0), m, x.dim(1), stream()),
            "matmul_silu_mul");
      return;
    }
    // Prefill (or a layout the GEMV cannot read): the unfused sequence (Backend's default), both
    // products in out's dtype (bf16 halves the bytes the GEMMs write and silu_mul reads), the gate
    // product straight into out and the split of x shared by the two cuBLAS GEMMs.
    OpProfileScope scope("matmul_silu_mul (gemm)", stream());
    Tensor up = Tensor::empty(out.shape(), out.dtype(), out.device());
    Tensor& gate = out;
    if (uses_blas(x, w_gate)) {
      const BlasX bx = blas_prepare(x, w_gate.dtype());
      blas_gemm(x, bx, w_gate, gate_bias, gate);
      blas_gemm(x, bx, w_up, up_bias, up);
    } else {
      matmul_unprofiled(x, w_gate, gate_bias, gate);
      matmul_unprofiled(x, w_up, up_bias, up);
    }
    silu_mul_unprofiled(gate, up, out);
  }

  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    OpProfileScope scope("silu_mul", stream());
    silu_mul_unprofiled(gate, up, out);
  }

  void add(const Tensor& a, const Tensor& b, Tensor& out) override {
    OpProfileScope scope("add", stream());
    check(launch_add(a.raw_data(), elem_of(a.dtype()), b.raw_data(), elem_of(b.dtype()),
                     out.raw_data(), elem_of(out.dtype()), a.numel(), stream()),
          "add");
  }

  void softmax(const Tensor& x, Tensor& out) override {
    OpProfileScope scope("softmax", stream());
    check(launch_softmax(x.data<float>(), rows_of(x), out.data<float>(), rows_of(out), false,
                         stream()),
          "softmax");
  }

  void log_softmax(const Tensor& x, Tensor& out) override {
    OpProfileScope scope("log_softmax", stream());
    check(launch_softmax(x.data<float>(), rows_of(x), out.data<float>(), rows_of(out), true,
                         stream()),
          "log_softmax");
  }

  void write_kv(const Tensor& k, const Tensor& v, const Tensor& slots, Tensor& k_cache,
                Tensor& v_cache) override {
    OpProfileScope scope("write_kv", stream());
    check(launch_write_kv(k.raw_data(), rows_of(k), v.raw_data(), rows_of(v), elem_of(k.dtype()),
                          slots.data<int32_t>(), k_cache.raw_data(), v_cache.raw_data(),
                          elem_of(k_cache.dtype()), int(k_cache.dim(2)), k.dim(1), k.dim(2),
                          k.dim(0), stream()),
          "write_kv");
  }

  void paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                       const AttentionMeta& meta, float scale, Tensor& out) override {
    OpProfileScope scope("paged_attention", stream());
    if (q.dim(2) > kMaxAttentionHeadDim)
      fail(ErrorCode::unsupported, "paged_attention on CUDA: head_dim {} > {}", q.dim(2),
           kMaxAttentionHeadDim);
    AttentionArgs a;
    a.q = q.raw_data();
    a.qr = rows_of(q);
    a.k_cache = k_cache.raw_data();
    a.v_cache = v_cache.raw_data();
    a.cache_elem = elem_of(k_cache.dtype());
    a.query_start = meta.query_start.data<int32_t>();
    a.context_lens = meta.context_lens.data<int32_t>();
    a.block_tables = meta.block_tables.data<int32_t>();
    a.table_stride = meta.block_tables.stride(0);
    a.num_seqs = int(meta.context_lens.dim(0));
    a.block_size = int(k_cache.dim(2));
    a.tokens = q.dim(0);
    a.heads = q.dim(1);
    a.kv_heads = k_cache.dim(1);
    a.head_dim = q.dim(2);
    a.scale = scale;
    a.window = meta.sliding_window;
    if (meta.key_positions.defined()) {
      a.key_positions = meta.key_positions.data<int32_t>();
      a.key_positions_stride = meta.key_positions.stride(0);
      a.query_positions = meta.query_positions.data<int32_t>();
    }
    a.out = out.raw_data();
    a.outr = rows_of(out);
    a.max_slots = meta.block_tables.dim(1) * int64_t(k_cache.dim(2));
    if (meta.key_positions.defined())
      a.max_slots = std::min(a.max_slots, meta.key_positions.dim(1));
    a.bf16_products = matmul_precision() == MatmulPrecision::bf16 && cuda_bf16_kernels_enabled();
    const AttentionPlan plan = plan_paged_attention(a, sm_count());
    Tensor scratch;
    if (plan.scratch_floats > 0)
      scratch = Tensor::empty({plan.scratch_floats}, DType::f32, q.device());
    check(launch_paged_attention(a, plan, plan.scratch_floats > 0 ? scratch.data<float>() : nullptr,
                                 stream()),
          "paged_attention");
  }

  void write_kv_quantized(const Tensor& k, const Tensor& v, const Tensor& slots,
                          QuantizedKvPlanes& cache) override {
    check(launch_write_kv_quantized(k.raw_data(), rows_of(k), v.raw_data(), rows_of(v),
                                    elem_of(k.dtype()), slots.data<int32_t>(), k.dim(0),
                                    quantized_kv_args(cache), stream()),
          "write_kv_quantized");
  }

  void paged_attention_quantized(const Tensor& q, const QuantizedKvPlanes& cache,
                                 const AttentionMeta& meta, float scale, Tensor& out) override {
    OpProfileScope scope("paged_attention_quantized", stream());
    if (q.dim(2) > kMaxAttentionHeadDim)
      fail(ErrorCode::unsupported, "paged_attention_quantized on CUDA: head_dim {} > {}", q.dim(2),
           kMaxAttentionHeadDim);
    AttentionArgs a{};
    a.q = q.raw_data();
    a.qr = rows_of(q);
    a.query_start = meta.query_start.data<int32_t>();
    a.context_lens = meta.context_lens.data<int32_t>();
    a.block_tables = meta.block_tables.data<int32_t>();
    a.table_stride = meta.block_tables.stride(0);
    a.num_seqs = int(meta.context_lens.dim(0));
    a.block_size = int(cache.block_size());
    a.tokens = q.dim(0);
    a.heads = q.dim(1);
    a.kv_heads = cache.kv_heads();
    a.head_dim = q.dim(2);
    a.scale = scale;
    a.window = meta.sliding_window;
    if (meta.key_positions.defined()) {
      a.key_positions = meta.key_positions.data<int32_t>();
      a.key_positions_stride = meta.key_positions.stride(0);
      a.query_positions = meta.query_positions.data<int32_t>();
    }
    a.out = out.raw_data();
    a.outr = rows_of(out);
    a.max_slots = meta.block_tables.dim(1) * int64_t(cache.block_size());
    if (meta.key_positions.defined())
      a.max_slots = std::min(a.max_slots, meta.key_positions.dim(1));
    const QuantizedKvArgs c = quantized_kv_args(cache);
    const QuantizedAttentionPlan plan = plan_paged_attention_quantized(a, c, sm_count());
    Tensor scratch;
    if (plan.scratch_floats > 0)
      scratch = Tensor::empty({plan.scratch_floats}, DType::f32, q.device());
    check(launch_paged_attention_quantized(
              a, c, plan, plan.scratch_floats > 0 ? scratch.data<float>() : nullptr, stream()),
          "paged_attention_quantized");
  }

  // ---- MLX affine quantization (quantized.cu) ----

  void affine_quantize(const Tensor& w, MlxQuantizer variant, QuantizedWeight& out) override {
    check(launch_affine_quantize(w.raw_data(), elem_of(w.dtype()), w.stride(0),
                                 variant == MlxQuantizer::gpu, out.packed.data<uint32_t>(),
                                 out.scales.raw_data(), out.biases.raw_data(),
                                 elem_of(out.scales.dtype()), out.bits, out.group_size, out.rows(),
                                 out.cols(), stream()),
          "affine_quantize");
  }

  void affine_dequantize(const QuantizedWeight& w, Tensor& out) override {
    check(launch_affine_dequantize(quant_matrix(w), nullptr, 0, w.rows(), out.raw_data(),
                                   elem_of(out.dtype()), out.stride(0), nullptr, stream()),
          "affine_dequantize");
  }

  void quantized_matmul(const Tensor& x, const QuantizedWeight& w, const Tensor* bias,
                        Tensor& out) override {
    OpProfileScope scope(
        x.dim(0) > kQuantGemvMaxRows ? "quantized_matmul (gemm)" : "quantized_matmul (gemv)",
        stream());
    quantized_matmul_unprofiled(x, w, bias, out);
  }

  void quantized_matmul_grouped(const Tensor& x,
                                std::span<const QuantizedMatmulGroup> groups) override {
    OpProfileScope scope(x.dim(0) > kQuantGemvMaxRows ? "quantized_matmul_grouped (gemm)"
                                                      : "quantized_matmul_grouped (gemv)",
                         stream());
    QuantGemvGroups gg;
    for (const QuantizedMatmulGroup& g : groups)
      gg.g[gg.count++] = quant_gemv_out(*g.w, g.bias, g.out);
    if (try_quantized_gemv_bf16(x, gg, false)) return;
    for (const QuantizedMatmulGroup& g : groups)
      quantized_matmul_unprofiled(x, *g.w, g.bias, *g.out);
  }

  void quantized_matmul_silu_mul(const Tensor& x, const QuantizedWeight& w_gate,
                                 const QuantizedWeight& w_up, const Tensor* gate_bias,
                                 const Tensor* up_bias, Tensor& out) override {
    OpProfileScope scope(x.dim(0) > kQuantGemvMaxRows ? "quantized_matmul_silu_mul (gemm)"
                                                      : "quantized_matmul_silu_mul (gemv)",
                         stream());
    QuantGemvGroups gg;
    gg.g[gg.count++] = quant_gemv_out(w_gate, gate_bias, &out);
    gg.g[gg.count++] = quant_gemv_out(w_up, up_bias, nullptr);
    if (try_quantized_gemv_bf16(x, gg, true)) return;
    // Backend's default: both products in out's dtype, the gate product into out.
    Tensor up = Tensor::empty(out.shape(), out.dtype(), out.device());
    Tensor& gate = out;
    quantized_matmul_unprofiled(x, w_gate, gate_bias, gate);
    quantized_matmul_unprofiled(x, w_up, up_bias, up);
    silu_mul_unprofiled(gate, up, out);
  }

  void quantized_matmul_unprofiled(const Tensor& x, const QuantizedWeight& w, const Tensor* bias,
                                   Tensor& out) {
    const int64_t m = x.dim(0), n = w.rows(), k = w.cols();
    if (m == 0 || n == 0) return;
    const QuantMatrix qm = quant_matrix(w);
    QuantGemvGroups one;
    one.g[one.count++] = quant_gemv_out(w, bias, &out);
    if (try_quantized_gemv_bf16(x, one, false)) return;
    if (m <= kQuantGemvMaxRows) {
      Tensor scratch = Tensor::empty({quantized_gemv_scratch_floats(m, k)}, DType::f32, x.device());
      check(launch_quantized_gemv(x.raw_data(), elem_of(x.dtype()), x.stride(0), int(m), qm,
                                  bias ? bias->raw_data() : nullptr,
                                  bias ? elem_of(bias->dtype()) : Elem::f32, scratch.data<float>(),
                                  out.raw_data(), elem_of(out.dtype()), out.stride(0), stream()),
            "quantized_matmul (GEMV)");
      return;
    }
    // More rows: dequantize row panels of w and run cuBLAS on each (a baseline; the tensor-core
    // quantized GEMM of issue 5 replaces it). Under MatmulPrecision::bf16 the panels are bf16
    // (MLX's dequantize into bf16: product, then sum, each rounded) and x is rounded once for a
    // single bf16 GEMM per panel; exact: f32 panels and f32 cuBLAS. Panels of at most 64 MiB.
    const bool bf16 = matmul_precision() == MatmulPrecision::bf16;
    const DType panel_dtype = bf16 ? DType::bf16 : DType::f32;
    // Panels of a multiple of 128 rows: each panel's slice of out then starts 256-byte aligned,
    // which cuBLAS's vectorized kernels need (a 2,340-row panel of the 8B down projection left
    // the second panel's output 8-byte aligned and ran that GEMM at ~230 TFLOP/s, not ~800).
    const int64_t budget_rows = (int64_t(64) << 20) / (int64_t(dtype_size(panel_dtype)) * k);
    const int64_t panel_rows =
        std::min<int64_t>(n, std::max<int64_t>(128, budget_rows / 128 * 128));
    Tensor panel = Tensor::empty({panel_rows, k}, panel_dtype, x.device());
    const BlasX bx = blas_prepare(x, panel_dtype);
    for (int64_t n0 = 0; n0 < n; n0 += panel_rows) {
      const int64_t rows = std::min(panel_rows, n - n0);
      QuantMatrix part = qm;
      part.n = rows;
      part.packed = qm.packed + n0 * (k * w.bits / 32);
      part.scales = static_cast<const char*>(qm.scales) +
                    n0 * (k / w.group_size) * dtype_size(w.scales.dtype());
      part.biases = static_cast<const char*>(qm.biases) +
                    n0 * (k / w.group_size) * dtype_size(w.biases.dtype());
      check(launch_affine_dequantize(part, nullptr, 0, rows, panel.raw_data(), elem_of(panel_dtype),
                                     k, nullptr, stream()),
            "quantized_matmul (dequantize panel)");
      Tensor part_out = out.slice(1, n0, n0 + rows);
      Tensor part_bias = bias ? bias->slice(0, n0, n0 + rows) : Tensor();
      blas_gemm(x, bx, panel.slice(0, 0, rows), bias ? &part_bias : nullptr, part_out);
    }
  }

  void quantized_embedding(const QuantizedWeight& table, const Tensor& ids, Tensor& out) override {
    OpProfileScope scope("quantized_embedding", stream());
    const int64_t tokens = ids.dim(0);
    if (tokens == 0) return;
    // As in embedding: a bad id is recorded on the device and reported by the next device -> host
    // transfer, so a decode step needs no sync here.
    State& s = state();
    check(launch_affine_dequantize(quant_matrix(table), ids.data<int32_t>(), ids.stride(0), tokens,
                                   out.raw_data(), Elem::f32, out.stride(0), s.bad_id, stream()),
          "quantized_embedding");
    s.embedding_unchecked = true;
    s.embedding_vocab = table.rows();
    s.embedding_op = "quantized_embedding";
  }

  void argmax(const Tensor& x, Tensor& out) override {
    OpProfileScope scope("argmax", stream());
    check(launch_argmax(x.data<float>(), rows_of(x), out.data<int32_t>(), out.stride(0), stream()),
          "argmax");
  }

  void top_k(const Tensor& x, int k, Tensor& values, Tensor& indices) override {
    OpProfileScope scope("top_k", stream());
    check(launch_top_k(x.data<float>(), rows_of(x), k, values.data<float>(), rows_of(values),
                       indices.data<int32_t>(), rows_of(indices), stream()),
          "top_k");
  }

  void sample(const Tensor& logprobs, const SamplingParams& params,
              std::span<const double> uniforms, Tensor& out) override {
    cuda::sample(logprobs, params, uniforms, out);
  }
  void apply_logit_penalties(Tensor& logits, const Tensor& history, const Tensor& bias_ids,
                             const Tensor& bias_values, const LogitPenalties& penalties) override {
    cuda::apply_logit_penalties(logits, history, bias_ids, bias_values, penalties);
  }

 private:
  // The kernels of matmul and silu_mul without a profile scope, for the fused ops that fall back
  // to them (one scope per backend op, so the table's totals add up).
  void matmul_unprofiled(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
    if (uses_blas(x, w)) return blas_matmul(x, w, bias, out);
    check(
        launch_matmul(x.raw_data(), elem_of(x.dtype()), x.stride(0), w.raw_data(),
                      elem_of(w.dtype()), bias ? bias->raw_data() : nullptr,
                      bias ? elem_of(bias->dtype()) : Elem::f32, out.raw_data(),
                      elem_of(out.dtype()), out.stride(0), x.dim(0), w.dim(0), x.dim(1), stream()),
        "matmul");
  }
  void silu_mul_unprofiled(const Tensor& gate, const Tensor& up, Tensor& out) {
    check(launch_silu_mul(gate.raw_data(), rows_of(gate), up.raw_data(), rows_of(up),
                          out.raw_data(), rows_of(out), stream()),
          "silu_mul");
  }
};

State& state() {
  // Leaked on purpose: tensors freed by static destructors must still find their allocator.
  static State* s = [] {
    auto* st = new State();
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
      st->why = e != cudaSuccess
                    ? std::string("no usable CUDA driver or GPU (") + cudaGetErrorString(e) + ")"
                    : std::string("no CUDA GPU found");
      cudaGetLastError();
      return st;
    }
    check(cudaSetDevice(0), "cudaSetDevice");
    check(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    register_device_allocator(
        DeviceKind::cuda,
        {[](size_t bytes, int) { return state().allocator.allocate(bytes); },
         [](void* p, size_t bytes, int) { state().allocator.deallocate(p, bytes); }});
    check(cudaHostAlloc(reinterpret_cast<void**>(&st->stage),
                        State::kStageSlots * State::kStageSlotBytes, cudaHostAllocDefault),
          "cudaHostAlloc (upload slots)");
    for (cudaEvent_t& e : st->stage_done)
      check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaMalloc(reinterpret_cast<void**>(&st->bad_id), sizeof(*st->bad_id)),
          "cudaMalloc (embedding id check)");
    check(cudaMemset(st->bad_id, 0xff, sizeof(*st->bad_id)), "cudaMemset");
    check(cudaHostAlloc(reinterpret_cast<void**>(&st->bad_id_host), sizeof(*st->bad_id_host),
                        cudaHostAllocDefault),
          "cudaHostAlloc (embedding id check)");
    st->backend = new CudaBackend();
    st->ok = true;
    return st;
  }();
  return *s;
}

}  // namespace

Backend* cuda_backend_if_available(std::string* why) {
  State& s = state();
  if (!s.ok) {
    if (why) *why = s.why;
    return nullptr;
  }
  return s.backend;
}

void synchronize() {
  if (state().ok) sync_and_check_ids();
}

cudaStream_t backend_stream() {
  return state().stream;
}

void check_cuda(cudaError_t error, const char* what) {
  check(error, what);
}

CaptureArena* arena_begin() {
  return state().allocator.begin_arena();
}

void arena_end() {
  state().allocator.end_arena();
}

void arena_release(CaptureArena* arena) {
  state().allocator.release_arena(arena);
}

bool capturing() {
  return state().allocator.capturing();
}

EmbeddingCheck embedding_check() {
  const State& s = state();
  return {s.embedding_unchecked, s.embedding_vocab, s.embedding_op};
}

void set_embedding_check(const EmbeddingCheck& c) {
  State& s = state();
  s.embedding_unchecked = c.pending;
  s.embedding_vocab = c.vocab;
  s.embedding_op = c.op;
}

void prepare_blas_for_capture() {
  State& s = state();
  // No handle yet: the eager step that precedes every capture ran no GEMM, so neither will the
  // capture (and small-batch decode never pays for cuBLAS).
  if (s.blas_workspace || !s.blas) return;
  cublasHandle_t handle = blas_handle();
  check(cudaMalloc(&s.blas_workspace, State::kBlasWorkspaceBytes), "cudaMalloc (cuBLAS workspace)");
  check_blas(cublasSetWorkspace(handle, s.blas_workspace, State::kBlasWorkspaceBytes),
             "cublasSetWorkspace");
}

}  // namespace hearth::ops::cuda
