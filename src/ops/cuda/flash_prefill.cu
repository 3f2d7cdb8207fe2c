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

// The (sequence, query tile) of block blockIdx.x / kv_heads, counted over the sequences in order
// (sequence s has ceil(q_len / tile_tokens) tiles; the grid's bound on the total leaves a few
// blocks with nothing to do: false). Within a sequence the last tiles (the most keys) come first.
struct PrefillTile {
  int seq;
  int tok0, tok_end;       // the tile's query tokens
  int pos0;                // slot-order position of token tok0
  int kv_lo, kv_hi;        // the slots to visit
  const int32_t* key_pos;  // the sequence's key positions (null: slot order)
};

__device__ __forceinline__ bool find_prefill_tile(const AttentionArgs& a, int tile_tokens,
                                                  PrefillTile& pt) {
  const int lane = threadIdx.x % 32;
  int remaining = int(blockIdx.x / unsigned(a.kv_heads));
  // Every warp scans the sequences 32 at a time.
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
  if (seq < 0) return false;
  const int q_start = a.query_start[seq];
  const int q_len = a.query_start[seq + 1] - q_start;
  const int ctx = a.context_lens[seq];
  const int tile = n_tiles - 1 - local;
  pt.seq = seq;
  pt.tok0 = q_start + tile * tile_tokens;
  pt.tok_end = min(q_start + q_len, pt.tok0 + tile_tokens);
  pt.pos0 = ctx - q_len + (pt.tok0 - q_start);
  pt.key_pos = a.key_positions ? a.key_positions + int64_t(seq) * a.key_positions_stride : nullptr;
  // Slots to visit: by slot order, up to the last query and from the first query's window; with
  // positions (a rotating cache, slots in any order), all of the context, masked per key.
  pt.kv_lo = 0;
  pt.kv_hi = ctx;
  if (!pt.key_pos) {
    pt.kv_hi = pt.pos0 + (pt.tok_end - pt.tok0);
    if (a.window > 0) pt.kv_lo = max(0, pt.pos0 - a.window + 1);
  }
  return true;
}

// Key slot j of a tile: its position (-1: masked for every row, also past kv_hi and for empty
// ring slots, which are never read) and its row offset in the cache (-1: not loaded, zeros).
__device__ __forceinline__ void tile_key(const AttentionArgs& a, const int32_t* key_pos,
                                         const int32_t* table, int kvh, int j, int kv_hi, int& pos,
                                         int64_t& off) {
  pos = -1;
  off = -1;
  if (j >= kv_hi) return;
  pos = key_pos ? key_pos[j] : j;
  if (pos >= 0)
    off =
        ((int64_t(table[j / a.block_size]) * a.kv_heads + kvh) * a.block_size + j % a.block_size) *
        a.head_dim;
}

// Block b: kv head b % kv_heads, query tile find_prefill_tile.
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

  const int tid = threadIdx.x;
  const int kvh = int(blockIdx.x % unsigned(a.kv_heads));
  PrefillTile pt;
  if (!find_prefill_tile(a, tile_tokens, pt)) return;  // the same answer in every warp
  const int seq = pt.seq, tok0 = pt.tok0, tok_end = pt.tok_end, pos0 = pt.pos0;
  const int kv_lo = pt.kv_lo, kv_hi = pt.kv_hi;
  const int32_t* key_pos = pt.key_pos;
  const int32_t* table = a.block_tables + int64_t(seq) * a.table_stride;
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
    const int64_t q0 = valid ? a.qr.offset(int64_t(tok) * a.heads + h0 + row % group) : 0;
    const Elem qe = a.qr.elem;
    float* dst = qs + row * L::q_stride;
    for (int d = (tid % 2) * 4; d < kD; d += 8) {
      float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (valid && d < hd)  // head_dim % 8 == 0: all four are in range
        v = make_float4(
            load_act(a.q, qe, q0 + d) * a.scale, load_act(a.q, qe, q0 + d + 1) * a.scale,
            load_act(a.q, qe, q0 + d + 2) * a.scale, load_act(a.q, qe, q0 + d + 3) * a.scale);
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
    if (tid < kBc)
      tile_key(a, key_pos, table, kvh, start + tid, kv_hi, key_pos_s[tid], key_off_s[tid]);
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
    const int64_t o0 = a.outr.offset(int64_t(tok) * a.heads + h0 + row % group);
#pragma unroll
    for (int i = 0; i < kDimChunks; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int d = i * 32 + cg * 4 + e;
        if (d < hd)
          store_act(a.out, a.outr.elem, o0 + d, l[r] > 0.0f ? o[r][i * 4 + e] / l[r] : 0.0f);
      }
  }
}

// ---- bf16 tensor cores (MatmulPrecision::bf16) --------------------------------------------------
//
// The same tiles on mma.sync m16n8k16 (bf16 in, f32 accumulation), as FlashAttention-2 runs on
// Ampere and Hopper: Q, K and V rounded to bf16, S = Q K^T and the running O in f32, P rounded to
// bf16 for P V, softmax statistics in f32. 4 warps own 16 query vectors each (64 a block, the
// f32 kernel's tile), keys in tiles of 64. Per lane (lane = 4 g + t), with the PTX fragment
// layouts: Q stays in registers as A fragments (rows g, g + 8 of the warp's 16); S and O are C
// fragments (rows g, g + 8; columns 2t, 2t + 1 of each 8-wide tile); the S fragment of 16 keys is
// exactly the A fragment of P for P V, so P never leaves registers. K is staged [key][d] (B of
// Q K^T reads a key's d pairs), V transposed [d][key] (B of P V reads a d's key pairs); rows
// padded by 8 bf16, so the 8 rows a fragment load touches start 4 banks apart.
constexpr int kMmaWarps = 4;
constexpr int kMmaThreads = kMmaWarps * 32;
constexpr int kMmaRows = 16 * kMmaWarps;  // query vectors per block (== kBr)
constexpr int kMmaKeys = 64;              // keys per tile
static_assert(kMmaRows == kBr, "the tiles of both kernels are planned alike");

template <int kD>
struct MmaLayout {
  static constexpr int k_stride = kD + 8;            // K (and Q, before the loop) [64][kD + 8]
  static constexpr int v_stride = kMmaKeys + 8;      // V^T [kD][64 + 8]
  static constexpr int v_off = kMmaKeys * k_stride;  // in bf16 elements
  static constexpr size_t bytes = size_t(v_off + kD * v_stride) * sizeof(uint16_t);
};

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  return uint32_t(__bfloat16_as_ushort(from_f32<__nv_bfloat16>(lo))) |
         uint32_t(__bfloat16_as_ushort(from_f32<__nv_bfloat16>(hi))) << 16;
}

__device__ __forceinline__ uint4 pack8(const uint16_t (&v)[8]) {
  return make_uint4(uint32_t(v[0]) | uint32_t(v[1]) << 16, uint32_t(v[2]) | uint32_t(v[3]) << 16,
                    uint32_t(v[4]) | uint32_t(v[5]) << 16, uint32_t(v[6]) | uint32_t(v[7]) << 16);
}

__device__ __forceinline__ uint32_t lds32(const uint16_t* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

// 8 consecutive cache values (16 or 32 bytes) rounded to bf16.
template <typename C>
__device__ __forceinline__ void load8_bf16(const C* p, uint16_t (&out)[8]) {
  if constexpr (std::is_same_v<C, float>) {
    const float4 lo = *reinterpret_cast<const float4*>(p);
    const float4 hi = *reinterpret_cast<const float4*>(p + 4);
    const float v[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
#pragma unroll
    for (int e = 0; e < 8; ++e) out[e] = __bfloat16_as_ushort(from_f32<__nv_bfloat16>(v[e]));
  } else {
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const uint32_t bits = (w[e / 2] >> (16 * (e % 2))) & 0xffffu;
      out[e] = std::is_same_v<C, __nv_bfloat16>
                   ? uint16_t(bits)
                   : __bfloat16_as_ushort(from_f32<__nv_bfloat16>(half_bits_to_f32<C>(bits)));
    }
  }
}

// The block's query rows: row r < rows is query head h0 + r % group of token pt.tok0 + r / group.
// Q (unscaled) is written to qs as bf16 (rows `stride` apart; zeros past head_dim and past the
// tile), then read into the lane's A fragments of rows r0 and r0 + 8 (r0 = 16 warp + g); qpos
// gets those rows' positions (-1 past the tile). Ends past a barrier.
template <int kD, int kWarps = kMmaWarps>
__device__ __forceinline__ void load_q_fragments(const AttentionArgs& a, const PrefillTile& pt,
                                                 int group, int rows, int h0, uint16_t* qs,
                                                 int stride, uint32_t (&qf)[kD / 16][4],
                                                 int (&qpos)[2]) {
  constexpr int kChunks = kD / 8;
  const int tid = threadIdx.x, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int hd = int(a.head_dim);
  for (int c = tid; c < 16 * kWarps * kChunks; c += 32 * kWarps) {
    const int row = c / kChunks, d = (c % kChunks) * 8;
    const int tok = pt.tok0 + row / group;
    uint16_t v[8] = {};
    if (row < rows && tok < pt.tok_end && d < hd) {
      const int64_t q0 = a.qr.offset(int64_t(tok) * a.heads + h0 + row % group) + d;
      const __nv_bfloat16* q16 = static_cast<const __nv_bfloat16*>(a.q) + q0;
      if (a.qr.elem == Elem::bf16 && reinterpret_cast<uintptr_t>(q16) % 16 == 0) {
        // bf16 activations: 8 values in one 16-byte load, already rounded.
        *reinterpret_cast<uint4*>(qs + row * stride + d) = *reinterpret_cast<const uint4*>(q16);
        continue;
      }
#pragma unroll
      for (int e = 0; e < 8; ++e)
        v[e] = __bfloat16_as_ushort(from_f32<__nv_bfloat16>(load_act(a.q, a.qr.elem, q0 + e)));
    }
    *reinterpret_cast<uint4*>(qs + row * stride + d) = pack8(v);
  }
  __syncthreads();
  const int r0 = (tid / 32) * 16 + g;
#pragma unroll
  for (int kc = 0; kc < kD / 16; ++kc) {
    const uint16_t* q0 = qs + r0 * stride + kc * 16 + 2 * t;
    const uint16_t* q1 = q0 + 8 * stride;
    qf[kc][0] = lds32(q0);
    qf[kc][1] = lds32(q1);
    qf[kc][2] = lds32(q0 + 8);
    qf[kc][3] = lds32(q1 + 8);
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = r0 + 8 * h;
    const int tok = pt.tok0 + row / group;
    const bool valid = row < rows && tok < pt.tok_end;
    qpos[h] = !valid ? -1 : pt.key_pos ? a.query_positions[tok] : pt.pos0 + (tok - pt.tok0);
  }
}

// 2^x by the SFU's approximation (one MUFU.EX2; relative error ~2^-22, below the bf16 rounding
// of P that follows). exp2f without fast-math adds range scaling around it.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Whether every key of the tile at slot `start` is visible to every query row of the block, so
// the tile needs no mask (all tiles of a causal prefill but the last one or two): slot order,
// the tile's last key at or before the first query's position and, with a window, its first key
// inside the last query's window.
__device__ __forceinline__ bool tile_fully_visible(const AttentionArgs& a, const PrefillTile& pt,
                                                   int start) {
  if (pt.key_pos) return false;
  const int last_q = pt.pos0 + (pt.tok_end - pt.tok0) - 1;
  return start + kMmaKeys - 1 <= pt.pos0 && (a.window <= 0 || last_q - start < a.window);
}

// One tile of scores S (the lane's: rows r0, r0 + 8 x keys 8 nt + 2t, + 1): mask (kMasked), then
// the online softmax (a row's keys are spread over the quad's 4 lanes) in base 2 with the scale
// folded in, as FlashAttention-2 does: m is the running maximum of S * scale * log2(e), P =
// 2^(S * scale * log2(e) - m) = exp(scale * S - max), one FFMA and one EX2 per score; o is
// rescaled and S becomes P. l holds the lane's keys only until the end.
template <int kD, bool kMasked>
__device__ __forceinline__ void softmax_tile_step(const AttentionArgs& a, const int* tile_pos,
                                                  const int (&qpos)[2], float (&s)[kMmaKeys / 8][4],
                                                  float (&m)[2], float (&l)[2],
                                                  float (&o)[kD / 8][4]) {
  const int t = threadIdx.x % 4;
  const float scale_log2 = a.scale * 1.4426950408889634f;
  float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int nt = 0; nt < kMmaKeys / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int h = e / 2;
      if constexpr (kMasked) {
        const int kpos = tile_pos[nt * 8 + 2 * t + e % 2];
        const bool visible =
            kpos >= 0 && kpos <= qpos[h] && (a.window <= 0 || qpos[h] - kpos < a.window);
        s[nt][e] = visible ? s[nt][e] : -INFINITY;
      }
      mx[h] = fmaxf(mx[h], s[nt][e]);
    }
  float correction[2], neg_m[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
    // m starts at -FLT_MAX, so a row with nothing visible yet keeps p = 0 and no NaN (the scale
    // is positive: the maximum of the scaled scores is the scaled maximum).
    const float m_new = fmaxf(m[h], mx[h] * scale_log2);
    correction[h] = fast_exp2(m[h] - m_new);
    m[h] = m_new;
    neg_m[h] = -m_new;
  }
  float sum[2] = {0.0f, 0.0f};
#pragma unroll
  for (int nt = 0; nt < kMmaKeys / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      s[nt][e] = fast_exp2(fmaf(s[nt][e], scale_log2, neg_m[e / 2]));
      sum[e / 2] += s[nt][e];
    }
#pragma unroll
  for (int h = 0; h < 2; ++h) l[h] = l[h] * correction[h] + sum[h];
#pragma unroll
  for (int dt = 0; dt < kD / 8; ++dt) {
    o[dt][0] *= correction[0];
    o[dt][1] *= correction[0];
    o[dt][2] *= correction[1];
    o[dt][3] *= correction[1];
  }
}

// The online softmax step of the tile at slot `start`, unmasked when the whole tile is visible.
template <int kD>
__device__ __forceinline__ void online_softmax_tile(const AttentionArgs& a, const PrefillTile& pt,
                                                    int start, const int* tile_pos,
                                                    const int (&qpos)[2],
                                                    float (&s)[kMmaKeys / 8][4], float (&m)[2],
                                                    float (&l)[2], float (&o)[kD / 8][4]) {
  if (tile_fully_visible(a, pt, start))
    softmax_tile_step<kD, false>(a, tile_pos, qpos, s, m, l, o);
  else
    softmax_tile_step<kD, true>(a, tile_pos, qpos, s, m, l, o);
}

// The A fragment of P for keys 16 kc .. 16 kc + 15 (O += P V).
__device__ __forceinline__ void p_fragment(const float (&s)[kMmaKeys / 8][4], int kc,
                                           uint32_t (&p)[4]) {
  p[0] = pack_bf16x2(s[2 * kc][0], s[2 * kc][1]);
  p[1] = pack_bf16x2(s[2 * kc][2], s[2 * kc][3]);
  p[2] = pack_bf16x2(s[2 * kc + 1][0], s[2 * kc + 1][1]);
  p[3] = pack_bf16x2(s[2 * kc + 1][2], s[2 * kc + 1][3]);
}

// O / l of the lane's rows into the output (l summed over the quad first).
template <int kD>
__device__ __forceinline__ void store_output_rows(const AttentionArgs& a, const PrefillTile& pt,
                                                  int group, int rows, int h0,
                                                  const float (&o)[kD / 8][4], float (&l)[2]) {
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int r0 = (threadIdx.x / 32) * 16 + g, hd = int(a.head_dim);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = r0 + 8 * h;
    const int tok = pt.tok0 + row / group;
    if (row >= rows || tok >= pt.tok_end) continue;
    const int64_t o0 = a.outr.offset(int64_t(tok) * a.heads + h0 + row % group);
#pragma unroll
    for (int dt = 0; dt < kD / 8; ++dt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int d = dt * 8 + 2 * t + e;
        if (d < hd)
          store_act(a.out, a.outr.elem, o0 + d, l[h] > 0.0f ? o[dt][2 * h + e] / l[h] : 0.0f);
      }
  }
}

template <typename C, int kD>
__global__ void __launch_bounds__(kMmaThreads)
    flash_prefill_mma_kernel(AttentionArgs a, int group, int tile_tokens) {
  using L = MmaLayout<kD>;
  constexpr int kChunks = kD / 8;  // 8-value chunks of a key row
  extern __shared__ uint4 smem_mma[];
  uint16_t* ks = reinterpret_cast<uint16_t*>(smem_mma);
  uint16_t* vt = ks + L::v_off;
  // Key positions are read after the tile's last barrier, so they alternate between two buffers:
  // the next tile's are written while a slower warp may still mask with these.
  __shared__ int key_pos_s[2][kMmaKeys];
  __shared__ int64_t key_off_s[kMmaKeys];

  const int tid = threadIdx.x, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int kvh = int(blockIdx.x % unsigned(a.kv_heads));
  PrefillTile pt;
  if (!find_prefill_tile(a, tile_tokens, pt)) return;
  const int32_t* table = a.block_tables + int64_t(pt.seq) * a.table_stride;
  const int rows = tile_tokens * group;
  const int h0 = kvh * group;
  const int hd = int(a.head_dim);

  uint32_t qf[kD / 16][4];
  int qpos[2];
  load_q_fragments<kD>(a, pt, group, rows, h0, ks, L::k_stride, qf, qpos);

  float o[kD / 8][4] = {};
  float m[2] = {-FLT_MAX, -FLT_MAX}, l[2] = {0.0f, 0.0f};
  const C* k_cache = static_cast<const C*>(a.k_cache);
  const C* v_cache = static_cast<const C*>(a.v_cache);

  for (int start = pt.kv_lo, parity = 0; start < pt.kv_hi; start += kMmaKeys, parity ^= 1) {
    int* tile_pos = key_pos_s[parity];
    if (tid < kMmaKeys)
      tile_key(a, pt.key_pos, table, kvh, start + tid, pt.kv_hi, tile_pos[tid], key_off_s[tid]);
    __syncthreads();  // keys known; every warp is past its reads of the last tile (and of Q)
    // Consecutive lanes take consecutive keys: the transposed V stores of a warp are then 32
    // consecutive bf16 of one row of V^T (no bank conflicts).
    for (int c = tid; c < kMmaKeys * kChunks; c += kMmaThreads) {
      const int key = c % kMmaKeys, d = (c / kMmaKeys) * 8;
      const int64_t off = key_off_s[key];
      uint16_t kv[8] = {}, vv[8] = {};
      if (off >= 0 && d < hd) {
        load8_bf16<C>(k_cache + off + d, kv);
        load8_bf16<C>(v_cache + off + d, vv);
      }
      *reinterpret_cast<uint4*>(ks + key * L::k_stride + d) = pack8(kv);
#pragma unroll
      for (int e = 0; e < 8; ++e) vt[(d + e) * L::v_stride + key] = vv[e];
    }
    __syncthreads();

    // S = Q K^T over the tile's 8 key groups of 8.
    float s[kMmaKeys / 8][4] = {};
#pragma unroll
    for (int nt = 0; nt < kMmaKeys / 8; ++nt)
#pragma unroll
      for (int kc = 0; kc < kD / 16; ++kc) {
        const uint16_t* kp = ks + (nt * 8 + g) * L::k_stride + kc * 16 + 2 * t;
        mma_bf16_m16n8k16(s[nt], qf[kc], lds32(kp), lds32(kp + 8));
      }
    online_softmax_tile<kD>(a, pt, start, tile_pos, qpos, s, m, l, o);
    // O += P V, 16 keys at a time.
#pragma unroll
    for (int kc = 0; kc < kMmaKeys / 16; ++kc) {
      uint32_t p[4];
      p_fragment(s, kc, p);
#pragma unroll
      for (int dt = 0; dt < kD / 8; ++dt) {
        const uint16_t* vp = vt + (dt * 8 + g) * L::v_stride + kc * 16 + 2 * t;
        mma_bf16_m16n8k16(o[dt], p, lds32(vp), lds32(vp + 8));
      }
    }
  }

  store_output_rows<kD>(a, pt, group, rows, h0, o, l);
}

// ---- bf16 cache, head_dim 64 or 128: asynchronous copies
// -----------------------------------------
//
// The kernel above stages each K/V tile through registers (loads, then conversion, then shared
// stores, V transposed element by element) and only then computes, so every tile waits for its
// loads. With a bf16 cache nothing needs converting: the tiles are copied global -> shared with
// cp.async into two buffers, the next tile in flight while this one is computed, and fragments
// are read with ldmatrix (V with .trans, so V stays [key][d] as in the cache). The mma sequence
// (per S tile: kc ascending; per O tile: key chunks ascending) is the kernel above's, so both
// kernels give the same bits.
template <int kD>
struct AsyncLayout {
  // A key row of kD bf16 padded by 16 bytes: the 8 rows one ldmatrix matrix reads start 4 banks
  // apart (conflict-free).
  static constexpr int stride = kD + 8;
  static constexpr int tile = kMmaKeys * stride;  // one K or V tile, in bf16 elements
  // K0, V0, K1, V1 (Q is staged in K1 before the loop).
  static constexpr size_t bytes = size_t(4) * tile * sizeof(uint16_t);
};

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return uint32_t(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared; src_bytes 0 writes zeros (keys that are masked or past the end).
__device__ __forceinline__ void copy16_async(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(dst)),
               "l"(src), "r"(src_bytes)
               : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row)));
}

// kWarps 4: 64 query rows a block, three blocks an SM (168 registers). kWarps 8: 128 rows, one
// block an SM; each K/V tile then serves twice the rows (the kernel is bound by L2 reads of K/V
// at 64 rows: ~74 % of L2 throughput on the 8B shape, H100, ncu).
template <int kD, int kWarps>
__global__ void __launch_bounds__(32 * kWarps, kWarps == 4 ? 3 : 1)
    flash_prefill_async_kernel(AttentionArgs a, int group, int tile_tokens) {
  constexpr int kThreadsA = 32 * kWarps;
  using L = AsyncLayout<kD>;
  constexpr int kChunks = kD / 8;  // 16-byte chunks of a key row
  extern __shared__ uint4 smem_async[];
  uint16_t* const base = reinterpret_cast<uint16_t*>(smem_async);
  auto k_buf = [&](int b) { return base + (2 * b) * L::tile; };
  auto v_buf = [&](int b) { return base + (2 * b + 1) * L::tile; };
  __shared__ int key_pos_s[2][kMmaKeys];

  const int tid = threadIdx.x, lane = tid % 32;
  const int kvh = int(blockIdx.x % unsigned(a.kv_heads));
  PrefillTile pt;
  if (!find_prefill_tile(a, tile_tokens, pt)) return;
  const int32_t* table = a.block_tables + int64_t(pt.seq) * a.table_stride;
  const int rows = tile_tokens * group;
  const int h0 = kvh * group;
  const __nv_bfloat16* k_cache = static_cast<const __nv_bfloat16*>(a.k_cache);
  const __nv_bfloat16* v_cache = static_cast<const __nv_bfloat16*>(a.v_cache);

  // Thread tid copies key tid % 64 of every tile (chunks tid / 64, + 2, ...), so it finds that
  // key's row itself; threads < 64 also publish its position for the masks.
  auto issue = [&](int start, int b) {
    const int key = tid % kMmaKeys;
    int pos;
    int64_t off;
    tile_key(a, pt.key_pos, table, kvh, start + key, pt.kv_hi, pos, off);
    if (tid < kMmaKeys) key_pos_s[b][key] = pos;
    const int bytes = off >= 0 ? 16 : 0;
    const int64_t src = off >= 0 ? off : 0;
    for (int c = tid / kMmaKeys; c < kChunks; c += kThreadsA / kMmaKeys) {
      copy16_async(k_buf(b) + key * L::stride + c * 8, k_cache + src + c * 8, bytes);
      copy16_async(v_buf(b) + key * L::stride + c * 8, v_cache + src + c * 8, bytes);
    }
    asm volatile("cp.async.commit_group;\n" ::: "memory");
  };
  const int n_tiles = (pt.kv_hi - pt.kv_lo + kMmaKeys - 1) / kMmaKeys;
  if (n_tiles > 0) issue(pt.kv_lo, 0);

  // Q through K1 and V1 (free until tile 1; 128 rows take both), A fragments into registers.
  uint32_t qf[kD / 16][4];
  int qpos[2];
  load_q_fragments<kD, kWarps>(a, pt, group, rows, h0, k_buf(1), L::stride, qf, qpos);
  __syncthreads();  // every warp has its Q fragments: K1 can take tile 1

  float o[kD / 8][4] = {};
  float m[2] = {-FLT_MAX, -FLT_MAX}, l[2] = {0.0f, 0.0f};
  // ldmatrix row addresses of this lane: matrix lane / 8, row lane % 8 of it.
  const int mat = lane / 8, mrow = lane % 8;
  for (int it = 0; it < n_tiles; ++it) {
    const int b = it & 1;
    if (it + 1 < n_tiles) {
      issue(pt.kv_lo + (it + 1) * kMmaKeys, b ^ 1);
      asm volatile("cp.async.wait_group 1;\n" ::: "memory");
    } else {
      asm volatile("cp.async.wait_group 0;\n" ::: "memory");
    }
    __syncthreads();  // tile it and its key positions are visible to every warp
    const uint16_t* ks = k_buf(b);
    const uint16_t* vs = v_buf(b);
    const int* tile_pos = key_pos_s[b];

    // S = Q K^T: per 8 keys, two kc steps per ldmatrix (matrices: kc lo/hi, kc + 1 lo/hi).
    float s[kMmaKeys / 8][4] = {};
#pragma unroll
    for (int nt = 0; nt < kMmaKeys / 8; ++nt)
#pragma unroll
      for (int kc = 0; kc < kD / 16; kc += 2) {
        uint32_t kb[4];
        ldmatrix_x4(kb, ks + (nt * 8 + mrow) * L::stride + kc * 16 + mat * 8);
        mma_bf16_m16n8k16(s[nt], qf[kc], kb[0], kb[1]);
        mma_bf16_m16n8k16(s[nt], qf[kc + 1], kb[2], kb[3]);
      }
    online_softmax_tile<kD>(a, pt, pt.kv_lo + it * kMmaKeys, tile_pos, qpos, s, m, l, o);
    // O += P V, 16 keys at a time; V^T fragments by ldmatrix.trans (matrices: keys lo/hi of d
    // tile dt, keys lo/hi of dt + 1).
#pragma unroll
    for (int kc = 0; kc < kMmaKeys / 16; ++kc) {
      uint32_t p[4];
      p_fragment(s, kc, p);
#pragma unroll
      for (int dt = 0; dt < kD / 8; dt += 2) {
        uint32_t vb[4];
        ldmatrix_x4_trans(vb,
                          vs + (kc * 16 + (mat % 2) * 8 + mrow) * L::stride + (dt + mat / 2) * 8);
        mma_bf16_m16n8k16(o[dt], p, vb[0], vb[1]);
        mma_bf16_m16n8k16(o[dt + 1], p, vb[2], vb[3]);
      }
    }
    __syncthreads();  // every warp is done with buffer b before iteration it + 1 refills it
  }

  store_output_rows<kD>(a, pt, group, rows, h0, o, l);
}

bool flash_prefill_disabled() {
  static const bool off = [] {
    const char* v = std::getenv("HEARTH_CUDA_NO_FLASH_PREFILL");
    return v && *v && std::string(v) != "0";
  }();
  return off;
}

// HEARTH_CUDA_FLASH_ASYNC=0 keeps bf16 caches on flash_prefill_mma_kernel (A/B, and the test
// that both kernels give the same bits); read at every launch, so a test can switch it.
bool flash_prefill_async_disabled() {
  const char* v = std::getenv("HEARTH_CUDA_FLASH_ASYNC");
  return v && std::string(v) == "0";
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

int flash_prefill_rows(const AttentionArgs& a, int sm_count) {
  if (const char* v = std::getenv("HEARTH_CUDA_FLASH_ROWS"); v && *v)
    return std::string(v) == "128" ? 128 : 64;
  const int64_t group = a.heads / a.kv_heads;
  if (group < 1 || group > 128) return 64;
  const int64_t blocks_128 = (a.tokens / (128 / group) + a.num_seqs) * a.kv_heads;
  return blocks_128 >= 2 * int64_t(sm_count) ? 128 : 64;
}

// Launches kKernel(a, group, tile_tokens) on `blocks` blocks of `threads` threads with `bytes` of
// dynamic shared memory, asked for once per device and kernel.
template <auto kKernel>
cudaError_t launch_prefill_kernel(int64_t blocks, int threads, size_t bytes, const AttentionArgs& a,
                                  int group, int tile_tokens, cudaStream_t stream) {
  static std::atomic<uint64_t> asked{0};
  if (cudaError_t e = allow_shared_memory(reinterpret_cast<const void*>(kKernel), bytes, asked);
      e != cudaSuccess)
    return e;
  kKernel<<<unsigned(blocks), threads, bytes, stream>>>(a, group, tile_tokens);
  return cudaGetLastError();
}

cudaError_t launch_flash_prefill(const AttentionArgs& a, int rows, cudaStream_t stream) {
  if (a.tokens == 0) return cudaSuccess;
  const int group = int(a.heads / a.kv_heads);
  const int tile_tokens = kBr / group;
  // sum over sequences of ceil(q_len / tile_tokens) <= floor(tokens / tile_tokens) + num_seqs.
  const int64_t blocks = (a.tokens / tile_tokens + a.num_seqs) * a.kv_heads;
  if (blocks > INT32_MAX) return cudaErrorInvalidValue;
  const bool tensor_cores = a.bf16_products && a.head_dim % 16 == 0;
  return dispatch_float(a.cache_elem, [&](auto tag) {
    using C = decltype(tag);
    auto go = [&]<int kD>() {
      if constexpr (std::is_same_v<C, __nv_bfloat16>) {
        if (tensor_cores && a.head_dim == kD && !flash_prefill_async_disabled()) {
          auto go_async = [&]<int kWarps>() {
            const int tokens = 16 * kWarps / group;
            const int64_t async_blocks = (a.tokens / tokens + a.num_seqs) * a.kv_heads;
            return launch_prefill_kernel<flash_prefill_async_kernel<kD, kWarps>>(
                async_blocks, 32 * kWarps, AsyncLayout<kD>::bytes, a, group, tokens, stream);
          };
          return rows == 128 ? go_async.template operator()<8>()
                             : go_async.template operator()<4>();
        }
      }
      if (tensor_cores)
        return launch_prefill_kernel<flash_prefill_mma_kernel<C, kD>>(
            blocks, kMmaThreads, MmaLayout<kD>::bytes, a, group, tile_tokens, stream);
      return launch_prefill_kernel<flash_prefill_kernel<C, kD>>(blocks, kThreads, Layout<kD>::bytes,
                                                                a, group, tile_tokens, stream);
    };
    return a.head_dim <= 64 ? go.template operator()<64>() : go.template operator()<128>();
  });
}

}  // namespace hearth::ops::cuda
