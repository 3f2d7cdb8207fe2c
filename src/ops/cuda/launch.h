// The CUDA kernels' launchers: plain C++ declarations (pointers, sizes, element types) so that the
// .cu files include no hearth headers (nvcc cannot compile fmt's compile-time format checks) and
// host code includes no CUDA device code. The backend (cuda_backend.cpp) unpacks tensors into
// these arguments. Every launcher queues work on `stream` and returns cudaGetLastError().
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#ifdef __CUDACC__
#define HEARTH_HOST_DEVICE __host__ __device__
#else
#define HEARTH_HOST_DEVICE
#endif
// The device pass only: nvcc hands host code, pragmas included, to g++, which warns on unroll.
#ifdef __CUDA_ARCH__
#define HEARTH_UNROLL _Pragma("unroll")
#else
#define HEARTH_UNROLL
#endif

namespace hearth::ops::cuda {

enum class Elem : int { f32, f16, bf16, u8, u32, u64 };

// Whether kernels that follow pdl.cuh's rules are launched as programmatic dependents (compute
// capability 9.0 and later, unless HEARTH_CUDA_PDL=0; read once per process).
bool pdl_launches();

// Lets `kernel` use `bytes` of dynamic shared memory on the current device: the attribute is
// asked for once per device (a bit of `asked`, one static per kernel) where bytes exceed the
// 48 KB a launch gets without it. The attribute is per device, so once per process is not enough
// on a second GPU.
cudaError_t allow_shared_memory(const void* kernel, size_t bytes, std::atomic<uint64_t>& asked);

// Multiprocessors of the current device, read once per process (launch shapes aim at waves of
// blocks over them: attention splits, persistent and 8-warp quantized GEMVs).
int sm_count();

// A tensor as rows of its contiguous last dimension: row r's offset (in elements) for up to 4
// leading dimensions of any strides, and its element type (activations: f32 or bf16).
struct Rows {
  Elem elem = Elem::f32;
  int lead = 0;
  int64_t shape[4] = {1, 1, 1, 1};
  int64_t stride[4] = {0, 0, 0, 0};
  int64_t count = 1;
  int64_t cols = 0;

  // Element offset of row `row` (< count). A fixed trip count with static indices: a loop bounded
  // by `lead` indexed the kernel-parameter arrays dynamically, which made every thread of a row
  // kernel copy its Rows to local memory (88 bytes of stack each, 264 in add_rms_norm). The
  // outermost index needs no division (row < count).
  HEARTH_HOST_DEVICE int64_t offset(int64_t row) const {
    int64_t off = 0;
    HEARTH_UNROLL
    for (int d = 3; d >= 1; --d) {
      if (d < lead) {
        off += (row % shape[d]) * stride[d];
        row /= shape[d];
      }
    }
    return lead > 0 ? off + row * stride[0] : off;
  }
};

// Element-wise copy between two layouts of the same shape (up to 8 dimensions), converting floats.
struct CopyLayout {
  int ndim = 0;
  int64_t shape[8];
  int64_t src_stride[8];
  int64_t dst_stride[8];
};

cudaError_t launch_strided_copy(const void* src, Elem src_elem, void* dst, Elem dst_elem,
                                const CopyLayout& layout, int64_t n, cudaStream_t stream);
// The activation launchers below read and write f32 or bf16 (each tensor's Rows::elem or Elem).
cudaError_t launch_add(const void* a, Elem ae, const void* b, Elem be, void* out, Elem oe,
                       int64_t n, cudaStream_t stream);
cudaError_t launch_silu_mul(const void* gate, Rows gr, const void* up, Rows ur, void* out,
                            Rows outr, cudaStream_t stream);
cudaError_t launch_rms_norm(const void* x, Rows xr, const void* weight, Elem weight_elem, float eps,
                            void* out, Rows outr, cudaStream_t stream);
// x += delta in place, then out = rms_norm(x) (delta null: rms_norm alone, x not written).
cudaError_t launch_add_rms_norm(void* x, Rows xr, const void* delta, Rows dr, const void* weight,
                                Elem weight_elem, float eps, void* out, Rows outr,
                                cudaStream_t stream);
// One [T, heads, D] tensor of a rope launch (strides in elements; out may be x; both of `elem`).
struct RopeTensor {
  const void* x = nullptr;
  void* out = nullptr;
  Elem elem = Elem::f32;
  int64_t x_token_stride = 0, x_head_stride = 0;
  int64_t out_token_stride = 0, out_head_stride = 0;
  int64_t heads = 0;
};
// rope of one or two tensors (q and k) with the same positions [T] and inv_freq [half].
// Where rope_qk_write_kv's launch also writes the rotated keys (t[1]) and the values (t[2], not
// rotated, out unused) into the paged cache [blocks, kv_heads, block_size, head_dim]; slots < 0
// are skipped, as in launch_write_kv.
struct RopeCacheWrite {
  const int32_t* slots = nullptr;  // null: no cache write
  int64_t slot_stride = 1;
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  Elem cache_elem = Elem::f32;
  int block_size = 0;
  int64_t kv_heads = 0;
};
struct RopeArgs {
  RopeTensor t[3];
  int count = 0;
  RopeCacheWrite cache;
  const int32_t* positions = nullptr;
  int64_t pos_stride = 1;
  const float* inv_freq = nullptr;
  int half = 0;
  int64_t head_dim = 0;
  float scaling = 1.0f;
  int units_per_head = 0;  // set by the launcher
};
cudaError_t launch_rope(const RopeArgs& args, int64_t tokens, cudaStream_t stream);
// Out-of-range ids leave their row unwritten and lower *bad to (position << 32 | uint32 id) when
// that is smaller (so *bad, initially all ones, ends as the first bad position and its id).
cudaError_t launch_embedding(const void* table, Elem elem, int64_t vocab, int64_t hidden,
                             const int32_t* ids, int64_t id_stride, int64_t tokens, float* out,
                             Rows outr, unsigned long long* bad, cudaStream_t stream);
cudaError_t launch_softmax(const float* x, Rows xr, float* out, Rows outr, bool log,
                           cudaStream_t stream);
cudaError_t launch_argmax(const float* x, Rows xr, int32_t* out, int64_t out_stride,
                          cudaStream_t stream);
cudaError_t launch_top_k(const float* x, Rows xr, int k, float* values, Rows vr, int32_t* indices,
                         Rows ir, cudaStream_t stream);
// Products read x (f32 or bf16 rows, x_elem) and write out (f32 or bf16, out_elem), f32
// accumulation and one rounding of each output.
cudaError_t launch_matmul(const void* x, Elem x_elem, int64_t x_stride, const void* w, Elem w_elem,
                          const void* bias, Elem bias_elem, void* out, Elem out_elem,
                          int64_t out_stride, int64_t m, int64_t n, int64_t k, cudaStream_t stream);

// One product of a grouped GEMV: out[i, n] = x[i, :] . w[n, :] (+ bias[n]) for n < this n.
struct GemvOut {
  const void* w = nullptr;
  const void* bias = nullptr;
  Elem bias_elem = Elem::f32;
  void* out = nullptr;
  Elem out_elem = Elem::f32;
  int64_t out_stride = 0;
  int64_t n = 0;
};
inline constexpr int kMaxGemvGroups = 4;
struct GemvGroups {
  GemvOut g[kMaxGemvGroups];
  int count = 0;
  // Filled by the launcher: the first warp of each group and the warps of all groups.
  int64_t first_warp[kMaxGemvGroups] = {};
  int64_t total_warps = 0;
};
// Products of one x (m rows, any m) with weights of one element type in one GEMV launch when
// m <= 8 and every weight can be read with 16-byte loads; otherwise one launch_matmul each. Each
// output equals what launch_matmul writes for it, bit for bit.
cudaError_t launch_matmul_grouped(const void* x, Elem x_elem, int64_t x_stride, Elem w_elem,
                                  const GemvGroups& groups, int64_t m, int64_t k,
                                  cudaStream_t stream);
// out = silu(x . gate.w^T + gate.bias) * (x . up.w^T + up.bias) in one GEMV launch, for the
// layouts gemv_silu_mul_fits accepts (m <= 8, 16-byte loads); gate.out / up.out are not used.
bool gemv_silu_mul_fits(const void* x, Elem x_elem, int64_t x_stride, int64_t m, int64_t k,
                        const void* w_gate, const void* w_up, Elem w_elem);
cudaError_t launch_gemv_silu_mul(const void* x, Elem x_elem, int64_t x_stride, const GemvOut& gate,
                                 const GemvOut& up, Elem w_elem, void* out, Elem out_elem,
                                 int64_t out_stride, int64_t m, int64_t k, cudaStream_t stream);
// Helpers of the cuBLAS prefill GEMM: x [m, k] f32 rows (stride x_stride) -> three contiguous
// bf16 planes [3, m, k] whose sum is x exactly (finite x); out[i, :] = bias (zeros without one).
cudaError_t launch_split_rows_bf16(const float* x, int64_t x_stride, void* dst, int64_t m,
                                   int64_t k, cudaStream_t stream);
cudaError_t launch_fill_bias_rows(const void* bias, Elem bias_elem, float* out, int64_t out_stride,
                                  int64_t m, int64_t n, cudaStream_t stream);
cudaError_t launch_write_kv(const void* k, Rows kr, const void* v, Rows vr, Elem kv_elem,
                            const int32_t* slots, void* k_cache, void* v_cache, Elem cache_elem,
                            int block_size, int64_t kv_heads, int64_t head_dim, int64_t tokens,
                            cudaStream_t stream);

// q and out are activations (f32 or bf16: qr.elem, outr.elem).
struct AttentionArgs {
  const void* q;
  Rows qr;
  const void* k_cache;
  const void* v_cache;
  Elem cache_elem;
  const int32_t* query_start;
  const int32_t* context_lens;
  const int32_t* block_tables;
  int64_t table_stride;
  int num_seqs;
  int block_size;
  int64_t tokens, heads, kv_heads, head_dim;
  float scale;
  int window;
  // AttentionMeta's positions (null: mask in slot order).
  const int32_t* key_positions = nullptr;
  int64_t key_positions_stride = 0;
  const int32_t* query_positions = nullptr;
  void* out;
  Rows outr;
  // Slots a block table (or key_positions row) can address: the bound the key splits divide.
  int64_t max_slots = 0;
  // MatmulPrecision::bf16: the tiled prefill kernel runs on bf16 tensor cores (q, k, v and the
  // softmax weights rounded to bf16, f32 accumulation) where head_dim is a multiple of 16.
  bool bf16_products = false;
};
inline constexpr int kMaxAttentionHeadDim = 256;
// How launch_paged_attention divides the work: query heads per block (a tile of one kv head's
// group), key splits and their length, and the f32 scratch the splits' partials need.
struct AttentionPlan {
  int tile = 1, tiles = 1, splits = 1;
  int64_t split_len = 0;
  int64_t scratch_floats = 0;
  // The split-KV kernel that reads several keys at once per warp (head dims 64/128/256, aligned
  // caches): decided here, since it also sets the splits' shortest length.
  bool vector_rows = false;
  // Prefill with many query rows per sequence: the tiled kernel of flash_prefill.cu instead (no
  // splits, no scratch).
  bool flash = false;
  int flash_rows = 64;  // query rows per block (flash_prefill_rows)
};
AttentionPlan plan_paged_attention(const AttentionArgs& args, int sm_count);
cudaError_t launch_paged_attention(const AttentionArgs& args, const AttentionPlan& plan,
                                   float* scratch, cudaStream_t stream);

}  // namespace hearth::ops::cuda
