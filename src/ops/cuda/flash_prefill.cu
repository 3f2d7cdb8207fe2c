// Tiled prefill attention over the paged cache, after FlashAttention-2 (Dao 2023,
// arXiv:2307.08691): a block takes kBr query vectors (the query tokens of one sequence times the
// query heads of one kv head's GQA group), walks that sequence's keys in tiles of kBc staged in
// shared memory, and keeps an online softmax per query vector. Each K/V tile is read from memory
// once per block and used by all kBr query vectors, where the split-KV kernel (attention.cu)
// re-reads every key for every query row. Everything is f32 (SIMT FMA, f32 products and sums), so
// results match the scalar reference at f32 tolerances.
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "ops/cuda/device_types.cuh"
#include "ops/cuda/flash_prefill.h"

namespace hearth::ops::cuda {
namespace {

// One block: 128 threads as 16 row groups x 8 column groups. Thread (rg, cg) owns query vectors
// rg*4 .. rg*4+3; of the score tile it computes keys cg + 8j (j < 4), of the output the head
// dims i*32 + cg*4 .. +3. With rows padded by 4 floats, the 8 lanes of a quarter warp read 8
// different shared-memory rows at bank offsets 4*cg: conflict-free 16-byte loads.
constexpr int kBr = 64;  // query vectors per block
constexpr int kBc = 32;  // keys per tile
constexpr int kThreads = 128;
constexpr int kColGroups = 8;
constexpr int kRowsPer = kBr / (kThreads / kColGroups);  // 4
constexpr int kKeysPer = kBc / kColGroups;               // 4
static_assert(kRowsPer == 4, "P tiles are written as float4 over a thread's rows");

// Calls with fewer query rows per sequence on average stay on the split-KV kernel (decode,
// speculative verify: a tile would be mostly idle rows).
constexpr int64_t kMinRowsPerSeq = 16;
// No key splits here: one block walks its sequence's keys serially. With fewer blocks than half
// the SMs, long contexts (more slots than this) go to the split-KV kernel, which spreads the keys
// over the GPU. Estimated from the H100 profile of issue 4, not tuned.
constexpr int64_t kShortContextSlots = 2048;

// Shared memory, in floats: Q [kBr][kD+4], K [kBc][kD+4], V [kBc][kD], P transposed [kBc][kBr+4].
// kD 128: 75,776 bytes (two or three blocks per H100 SM); kD 64: 43,008.
template <int kD>
struct Layout {
  static constexpr int q_stride = kD + 4, k_stride = kD + 4, v_stride = kD, p_stride = kBr + 4;
  static constexpr int k_off = kBr * q_stride;
  static constexpr int v_off = k_off + kBc * k_stride;
  static constexpr int p_off = v_off + kBc * v_stride;
  static constexpr int floats = p_off + kBc * p_stride;
  static constexpr size_t bytes = size_t(floats) * sizeof(float);
};

template <typename C>
__device__ __forceinline__ float half_bits_to_f32(uint32_t bits) {
  if constexpr (std::is_same_v<C, __half>)
    return to_f32(__ushort_as_half(uint16_t(bits)));
  else
    return to_f32(__ushort_as_bfloat16(uint16_t(bits)));
}

// 16 bytes of cache (4 f32 or 8 f16/bf16 values) as f32 into shared memory.
template <typename C>
__device__ __forceinline__ void store_chunk(const uint4& raw, float* dst) {
  float4* d4 = reinterpret_cast<float4*>(dst);
  if constexpr (std::is_same_v<C, float>) {
    d4[0] = make_float4(__uint_as_float(raw.x), __uint_as_float(raw.y), __uint_as_float(raw.z),
                        __uint_as_float(raw.w));
  } else {
    d4[0] = make_float4(half_bits_to_f32<C>(raw.x & 0xffffu), half_bits_to_f32<C>(raw.x >> 16),
                        half_bits_to_f32<C>(raw.y & 0xffffu), half_bits_to_f32<C>(raw.y >> 16));
    d4[1] = make_float4(half_bits_to_f32<C>(raw.z & 0xffffu), half_bits_to_f32<C>(raw.z >> 16),
                        half_bits_to_f32<C>(raw.w & 0xffffu), half_bits_to_f32<C>(raw.w >> 16));
  }
}

// Block b: kv head b % kv_heads, query tile b / kv_heads counted over the sequences in order
// (sequence s has ceil(q_len / tile_tokens) tiles; the grid's bound on the total leaves a few
// blocks with nothing to do). Within a sequence the last tiles (the most keys) come first.
template <typename C, int kD>
__global__ void __launch_bounds__(kThreads, 2)
    flash_prefill_kernel(AttentionArgs a, int group, int tile_tokens) {
  using L = Layout<kD>;
  extern __shared__ float4 smem4[];
  float* smem = reinterpret_cast<float*>(smem4);
  float* qs = smem;
  float* ks = smem + L::k_off;
  float* vs = smem + L::v_off;
  float* ps = smem + L::p_off;
  __shared__ int key_pos_s[kBc];      // the key's position, -1: masked for every row
  __shared__ int64_t key_off_s[kBc];  // its row in the cache, -1: not loaded (zeros)

  const int tid = threadIdx.x, lane = tid % 32;
  const int kvh = int(blockIdx.x % unsigned(a.kv_heads));
  int remaining = int(blockIdx.x / unsigned(a.kv_heads));

  // Find this block's (sequence, tile): every warp scans the sequences 32 at a time.
  int seq = -1, local = 0, n_tiles = 0;
  for (int base = 0; base < a.num_seqs; base += 32) {
    const int s = base + lane;
    const int n = s < a.num_seqs
                      ? (a.query_start[s + 1] - a.query_start[s] + tile_tokens - 1) / tile_tokens
                      : 0;
    int incl = n;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int y = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += y;
    }
    const int total = __shfl_sync(0xffffffffu, incl, 31);
    if (remaining < total) {
      const int first = __ffs(__ballot_sync(0xffffffffu, incl > remaining)) - 1;
      seq = base + first;
      local = remaining - __shfl_sync(0xffffffffu, incl - n, first);
      n_tiles = __shfl_sync(0xffffffffu, n, first);
      break;
    }
    remaining -= total;
  }
  if (seq < 0) return;  // the same answer in every warp: the whole block leaves

  const int q_start = a.query_start[seq];
  const int q_len = a.query_start[seq + 1] - q_start;
  const int ctx = a.context_lens[seq];
  const int tile = n_tiles - 1 - local;
  const int tok0 = q_start + tile * tile_tokens;
  const int tok_end = min(q_start + q_len, tok0 + tile_tokens);
  const int pos0 = ctx - q_len + (tok0 - q_start);  // slot-order position of token tok0
  const int32_t* key_pos =
      a.key_positions ? a.key_positions + int64_t(seq) * a.key_positions_stride : nullptr;
  const int32_t* table = a.block_tables + int64_t(seq) * a.table_stride;
  // Slots to visit: by slot order, up to the last query and from the first query's window; with
  // positions (a rotating cache, slots in any order), all of the context, masked per key.
  int kv_lo = 0, kv_hi = ctx;
  if (!key_pos) {
    kv_hi = pos0 + (tok_end - tok0);
    if (a.window > 0) kv_lo = max(0, pos0 - a.window + 1);
  }
  const int rows = tile_tokens * group;  // valid query vectors of a full tile (<= kBr)
  const int h0 = kvh * group;
  const int hd = int(a.head_dim);

  // Head dims past head_dim stay zero in K and V (Q is zero there too, written below).
  if (hd < kD)
    for (int i = tid; i < L::p_off - L::k_off; i += kThreads) ks[i] = 0.0f;

  // Q, scaled, two threads per query vector; rows past the tile are zero.
  {
    const int row = tid / 2;
    const int tok = tok0 + row / group;
    const bool valid = row < rows && tok < tok_end;
    const float* qp = valid ? a.q + a.qr.offset(int64_t(tok) * a.heads + h0 + row % group) : a.q;
    float* dst = qs + row * L::q_stride;
    for (int d = (tid % 2) * 4; d < kD; d += 8) {
      float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (valid && d < hd)  // head_dim % 8 == 0: all four are in range
        v = make_float4(qp[d] * a.scale, qp[d + 1] * a.scale, qp[d + 2] * a.scale,
                        qp[d + 3] * a.scale);
      *reinterpret_cast<float4*>(dst + d) = v;
    }
  }

  const int rg = tid / kColGroups, cg = tid % kColGroups;
  int qpos[kRowsPer];  // -1: a padding row (sees nothing)
#pragma unroll
  for (int r = 0; r < kRowsPer; ++r) {
    const int row = rg * kRowsPer + r;
    const int tok = tok0 + row / group;
    const bool valid = row < rows && tok < tok_end;
    qpos[r] = !valid ? -1 : key_pos ? a.query_positions[tok] : pos0 + (tok - tok0);
  }

  constexpr int kDimChunks = kD / 32;  // float4 chunks of output per thread
  float o[kRowsPer][kDimChunks * 4];
  float m[kRowsPer], l[kRowsPer];
#pragma unroll
  for (int r = 0; r < kRowsPer; ++r) {
    m[r] = -FLT_MAX;
    l[r] = 0.0f;
#pragma unroll
    for (int i = 0; i < kDimChunks * 4; ++i) o[r][i] = 0.0f;
  }

  const C* k_cache = static_cast<const C*>(a.k_cache);
  const C* v_cache = static_cast<const C*>(a.v_cache);
  constexpr int kElems = 16 / int(sizeof(C));  // cache values per 16-byte load
  constexpr int kKeyChunks = kD / kElems;
  constexpr int kLoads = kBc * kKeyChunks / kThreads;
  static_assert(kBc * kKeyChunks % kThreads == 0, "whole loads per thread");

  for (int start = kv_lo; start < kv_hi; start += kBc) {
    if (tid < kBc) {
      const int j = start + tid;
      int pos = -1;
      int64_t off = -1;
      if (j < kv_hi) {
        pos = key_pos ? key_pos[j] : j;
        if (pos >= 0)  // empty ring slots are never read
          off = ((int64_t(table[j / a.block_size]) * a.kv_heads + kvh) * a.block_size +
                 j % a.block_size) *
                a.head_dim;
      }
      key_pos_s[tid] = pos;
      key_off_s[tid] = off;
    }
    __syncthreads();  // the tile's keys are known; the last tile's P.V is done

    // K and V tile: all loads first (16 in flight per thread for f32 at kD 128), then the stores.
    uint4 kraw[kLoads], vraw[kLoads];
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int c = i * kThreads + tid;
      const int key = c / kKeyChunks, d = (c % kKeyChunks) * kElems;
      const int64_t off = key_off_s[key];
      kraw[i] = vraw[i] = make_uint4(0u, 0u, 0u, 0u);
      if (off >= 0 && d < hd) {
        kraw[i] = *reinterpret_cast<const uint4*>(k_cache + off + d);
        vraw[i] = *reinterpret_cast<const uint4*>(v_cache + off + d);
      }
    }
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int c = i * kThreads + tid;
      const int key = c / kKeyChunks, d = (c % kKeyChunks) * kElems;
      if (d < hd) {
        store_chunk<C>(kraw[i], ks + key * L::k_stride + d);
        store_chunk<C>(vraw[i], vs + key * L::v_stride + d);
      }
    }
    __syncthreads();

    // S = Q K^T for the thread's 4 x 4 (query, key) pairs.
    float s[kRowsPer][kKeysPer];
#pragma unroll
    for (int r = 0; r < kRowsPer; ++r)
#pragma unroll
      for (int j = 0; j < kKeysPer; ++j) s[r][j] = 0.0f;
#pragma unroll 8
    for (int d = 0; d < kD; d += 4) {
      float4 qv[kRowsPer], kv[kKeysPer];
#pragma unroll
      for (int r = 0; r < kRowsPer; ++r)
        qv[r] = *reinterpret_cast<const float4*>(qs + (rg * kRowsPer + r) * L::q_stride + d);
#pragma unroll
      for (int j = 0; j < kKeysPer; ++j)
        kv[j] = *reinterpret_cast<const float4*>(ks + (cg + kColGroups * j) * L::k_stride + d);
#pragma unroll
      for (int r = 0; r < kRowsPer; ++r)
#pragma unroll
        for (int j = 0; j < kKeysPer; ++j) {
          s[r][j] = fmaf(qv[r].x, kv[j].x, s[r][j]);
          s[r][j] = fmaf(qv[r].y, kv[j].y, s[r][j]);
          s[r][j] = fmaf(qv[r].z, kv[j].z, s[r][j]);
          s[r][j] = fmaf(qv[r].w, kv[j].w, s[r][j]);
        }
    }

    // Mask, then the online softmax: a row's 32 keys sit in the 8 lanes of its column groups.
    int kp[kKeysPer];
#pragma unroll
    for (int j = 0; j < kKeysPer; ++j) kp[j] = key_pos_s[cg + kColGroups * j];
#pragma unroll
    for (int r = 0; r < kRowsPer; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < kKeysPer; ++j) {
        const bool visible =
            kp[j] >= 0 && kp[j] <= qpos[r] && (a.window <= 0 || qpos[r] - kp[j] < a.window);
        s[r][j] = visible ? s[r][j] : -INFINITY;
        mx = fmaxf(mx, s[r][j]);
      }
#pragma unroll
      for (int o2 = 1; o2 < kColGroups; o2 <<= 1)
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o2));
      // m starts at -FLT_MAX, so a row with nothing visible yet keeps p = 0 and no NaN.
      const float m_new = fmaxf(m[r], mx);
      const float correction = expf(m[r] - m_new);
      m[r] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < kKeysPer; ++j) {
        s[r][j] = expf(s[r][j] - m_new);
        sum += s[r][j];
      }
      l[r] = l[r] * correction + sum;  // this thread's keys only; summed over the lanes at the end
#pragma unroll
      for (int i = 0; i < kDimChunks * 4; ++i) o[r][i] *= correction;
    }
#pragma unroll
    for (int j = 0; j < kKeysPer; ++j)
      *reinterpret_cast<float4*>(ps + (cg + kColGroups * j) * L::p_stride + rg * kRowsPer) =
          make_float4(s[0][j], s[1][j], s[2][j], s[3][j]);
    __syncthreads();

    // O += P V.
#pragma unroll 4
    for (int k = 0; k < kBc; ++k) {
      const float4 p = *reinterpret_cast<const float4*>(ps + k * L::p_stride + rg * kRowsPer);
#pragma unroll
      for (int i = 0; i < kDimChunks; ++i) {
        const float4 v = *reinterpret_cast<const float4*>(vs + k * L::v_stride + i * 32 + cg * 4);
        const float pr[kRowsPer] = {p.x, p.y, p.z, p.w};
#pragma unroll
        for (int r = 0; r < kRowsPer; ++r) {
          o[r][i * 4 + 0] = fmaf(pr[r], v.x, o[r][i * 4 + 0]);
          o[r][i * 4 + 1] = fmaf(pr[r], v.y, o[r][i * 4 + 1]);
          o[r][i * 4 + 2] = fmaf(pr[r], v.z, o[r][i * 4 + 2]);
          o[r][i * 4 + 3] = fmaf(pr[r], v.w, o[r][i * 4 + 3]);
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPer; ++r)
#pragma unroll
    for (int o2 = 1; o2 < kColGroups; o2 <<= 1) l[r] += __shfl_xor_sync(0xffffffffu, l[r], o2);
#pragma unroll
  for (int r = 0; r < kRowsPer; ++r) {
    const int row = rg * kRowsPer + r;
    const int tok = tok0 + row / group;
    if (row >= rows || tok >= tok_end) continue;
    float* op = a.out + a.outr.offset(int64_t(tok) * a.heads + h0 + row % group);
#pragma unroll
    for (int i = 0; i < kDimChunks; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int d = i * 32 + cg * 4 + e;
        if (d < hd) op[d] = l[r] > 0.0f ? o[r][i * 4 + e] / l[r] : 0.0f;
      }
  }
}

bool flash_prefill_disabled() {
  static const bool off = [] {
    const char* v = std::getenv("HEARTH_CUDA_NO_FLASH_PREFILL");
    return v && *v && std::string(v) != "0";
  }();
  return off;
}

}  // namespace

bool use_flash_prefill(const AttentionArgs& a, int sm_count) {
  if (flash_prefill_disabled() || a.tokens <= 0 || a.kv_heads <= 0 || a.num_seqs <= 0) return false;
  if (a.tokens > INT32_MAX / 2 || a.max_slots > INT32_MAX / 2) return false;
  if (a.head_dim > 128 || a.head_dim % 8 != 0) return false;  // whole 16-byte chunks of any dtype
  const int64_t group = a.heads / a.kv_heads;
  if (group < 1 || group > kBr || a.heads % a.kv_heads != 0) return false;
  if (!a.k_cache || !a.v_cache || reinterpret_cast<uintptr_t>(a.k_cache) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(a.v_cache) % 16 != 0)
    return false;
  if (a.cache_elem != Elem::f32 && a.cache_elem != Elem::f16 && a.cache_elem != Elem::bf16)
    return false;
  if (a.tokens < kMinRowsPerSeq * a.num_seqs) return false;
  const int64_t blocks = a.tokens / (kBr / group) * a.kv_heads;
  return 2 * blocks >= sm_count || a.max_slots <= kShortContextSlots;
}

cudaError_t launch_flash_prefill(const AttentionArgs& a, cudaStream_t stream) {
  if (a.tokens == 0) return cudaSuccess;
  const int group = int(a.heads / a.kv_heads);
  const int tile_tokens = kBr / group;
  // sum over sequences of ceil(q_len / tile_tokens) <= floor(tokens / tile_tokens) + num_seqs.
  const int64_t blocks = (a.tokens / tile_tokens + a.num_seqs) * a.kv_heads;
  if (blocks > INT32_MAX) return cudaErrorInvalidValue;
  return dispatch_float(a.cache_elem, [&](auto tag) {
    using C = decltype(tag);
    auto go = [&]<int kD>() {
      auto kernel = flash_prefill_kernel<C, kD>;
      // Above 48 KB of dynamic shared memory must be asked for, once per kernel and device.
      static std::atomic<uint64_t> asked{0};
      int device = 0;
      if (cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
      const uint64_t bit = device < 64 ? uint64_t(1) << device : 0;
      if (!(asked.load(std::memory_order_relaxed) & bit)) {
        if (cudaError_t e = cudaFuncSetAttribute(
                kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Layout<kD>::bytes));
            e != cudaSuccess)
          return e;
        asked.fetch_or(bit, std::memory_order_relaxed);
      }
      kernel<<<unsigned(blocks), kThreads, Layout<kD>::bytes, stream>>>(a, group, tile_tokens);
      return cudaGetLastError();
    };
    return a.head_dim <= 64 ? go.template operator()<64>() : go.template operator()<128>();
  });
}

}  // namespace hearth::ops::cuda
