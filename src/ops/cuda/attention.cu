// Paged attention on the GPU: writing new K/V rows into the block pool, and causal GQA attention
// (sliding window, per-slot positions) over block tables with an online softmax, split over the
// keys (flash decoding) so that a decode step fills the GPU. Prefill goes to the tiled kernel of
// flash_prefill.cu.
#include <algorithm>
#include <cfloat>
#include <climits>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "ops/cuda/attention_split.cuh"
#include "ops/cuda/device_types.cuh"
#include "ops/cuda/flash_prefill.h"
#include "ops/cuda/pdl.cuh"

namespace hearth::ops::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxHeadDim = kMaxAttentionHeadDim;
// Shortest key split of the dense kernel (one key per warp step: 16 steps of its 4 warps), and of
// the vector kernel: one step of its 4 warps at head dim 128 (8 keys a warp); on the H100 32 gave
// 248.0 tok/s on the 8B 4-bit decode against 241.4 with 64 and 246.3 with 16.
constexpr int64_t kMinSplitSlots = 64;
constexpr int64_t kMinSplitSlotsVec = 32;

template <typename S, typename C>
__global__ void write_kv_kernel(const S* k, const S* v, Rows kr, Rows vr, const int32_t* slots,
                                C* k_cache, C* v_cache, int block_size, int64_t kv_heads,
                                int64_t head_dim, int64_t tokens) {
  pdl_wait();
  pdl_trigger();
  const int64_t row = blockIdx.x;  // (t, h)
  const int64_t t = row / kv_heads, h = row % kv_heads;
  const int32_t slot = slots[t];
  if (slot < 0) return;  // padding: skipped
  const int64_t block = slot / block_size, r = slot % block_size;
  const int64_t base = ((block * kv_heads + h) * block_size + r) * head_dim;
  const S* kp = k + kr.offset(row);
  const S* vp = v + vr.offset(row);
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    if constexpr (std::is_same_v<S, C>) {
      k_cache[base + d] = kp[d];
      v_cache[base + d] = vp[d];
    } else {
      k_cache[base + d] = from_f32<C>(to_f32(kp[d]));
      v_cache[base + d] = from_f32<C>(to_f32(vp[d]));
    }
  }
}

// Four values at a time (rows and the cache aligned to 4 elements), many (t, h) rows a block: the
// one-row-per-block kernel above spent a 2048-token prefill's KV writes (24 MB per 8B layer) in
// block scheduling, ~60 us where the bytes take ~8.
template <typename T>
struct alignas(4 * sizeof(T)) Quad {
  T v[4];
};

template <typename S, typename C>
__global__ void write_kv4_kernel(const S* k, const S* v, Rows kr, Rows vr, const int32_t* slots,
                                 C* k_cache, C* v_cache, int block_size, int64_t kv_heads,
                                 int64_t head_dim, int64_t quads) {
  pdl_wait();
  pdl_trigger();
  const int64_t per_row = head_dim / 4;
  for (int64_t q = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; q < quads;
       q += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = q / per_row, d = (q % per_row) * 4;
    const int64_t t = row / kv_heads, h = row % kv_heads;
    const int32_t slot = slots[t];
    if (slot < 0) continue;  // padding: skipped
    const int64_t block = slot / block_size, r = slot % block_size;
    const int64_t at = ((block * kv_heads + h) * block_size + r) * head_dim + d;
    const Quad<S> kq = *reinterpret_cast<const Quad<S>*>(k + kr.offset(row) + d);
    const Quad<S> vq = *reinterpret_cast<const Quad<S>*>(v + vr.offset(row) + d);
    Quad<C> ko, vo;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      ko.v[e] = from_f32<C>(to_f32(kq.v[e]));
      vo.v[e] = from_f32<C>(to_f32(vq.v[e]));
    }
    *reinterpret_cast<Quad<C>*>(k_cache + at) = ko;
    *reinterpret_cast<Quad<C>*>(v_cache + at) = vo;
  }
}

// Which slots query row t may see, and where its sequence's tables start.
struct RowView {
  int s;                 // sequence
  int64_t first, last;   // slot range (inclusive); per-slot positions refine it when set
  int64_t qpos;          // the query's position
  const int32_t* table;  // block table of s
  const int32_t* key_pos;
};

__device__ __forceinline__ RowView row_view(const AttentionArgs& a, int64_t t) {
  RowView v;
  int s = 0;
  while (s + 1 < a.num_seqs && a.query_start[s + 1] <= t) ++s;
  const int64_t q_len = a.query_start[s + 1] - a.query_start[s];
  const int64_t ctx = a.context_lens[s];
  const int64_t pos = ctx - q_len + (t - a.query_start[s]);
  v.s = s;
  v.key_pos = a.key_positions ? a.key_positions + s * a.key_positions_stride : nullptr;
  v.qpos = v.key_pos ? a.query_positions[t] : pos;
  v.first = v.key_pos ? 0 : a.window > 0 ? max(int64_t(0), pos - a.window + 1) : 0;
  v.last = v.key_pos ? ctx - 1 : pos;
  v.table = a.block_tables + s * a.table_stride;
  return v;
}

// What a split-KV block (grid: query rows x (kv heads x head tiles) x splits) attends: query row
// t, the kv head, the tile's first query head h0 and its nh heads, and slots [lo, hi) of its split.
struct SplitBlock {
  int64_t t, lo, hi;
  int kvh, split, h0, nh;
  RowView v;
};

template <int kTile>
__device__ __forceinline__ SplitBlock split_block(const AttentionArgs& a, int tiles,
                                                  int64_t split_len) {
  SplitBlock b;
  b.t = blockIdx.x;
  b.kvh = int(blockIdx.y) / tiles;
  const int tile = int(blockIdx.y) % tiles;
  b.split = int(blockIdx.z);
  const int group = int(a.heads / a.kv_heads);
  b.h0 = b.kvh * group + tile * kTile;
  b.nh = min(kTile, group - tile * kTile);
  b.v = row_view(a, b.t);
  b.lo = max(b.v.first, int64_t(b.split) * split_len);
  b.hi = min(b.v.last + 1, int64_t(b.split + 1) * split_len);
  return b;
}

// The block's result from its warps' online-softmax states in shared memory (each warp's max, sum
// and unnormalized output per head of the tile): merged in warp order, then written as the output
// (one split) or as the split's partial for combine_kernel.
template <int kTile>
__device__ __forceinline__ void store_block_result(
    const AttentionArgs& a, int64_t t, int h0, int nh, int split, int splits,
    const float (&sm_m)[kWarps][kTile], const float (&sm_l)[kWarps][kTile],
    const float (&sm_acc)[kWarps][kTile][kMaxHeadDim], float* part_ml, float* part_acc) {
  for (int g = 0; g < nh; ++g) {
    float gm = -FLT_MAX, gl = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (sm_l[w][g] > 0.0f) gm = fmaxf(gm, sm_m[w][g]);
    for (int w = 0; w < kWarps; ++w)
      if (sm_l[w][g] > 0.0f) gl += sm_l[w][g] * expf(sm_m[w][g] - gm);
    const int64_t h = h0 + g;
    for (int64_t d = threadIdx.x; d < a.head_dim; d += blockDim.x) {
      float sum = 0.0f;
      for (int w = 0; w < kWarps; ++w)
        if (sm_l[w][g] > 0.0f) sum += sm_acc[w][g][d] * expf(sm_m[w][g] - gm);
      if (splits == 1) {
        store_act(a.out, a.outr.elem, a.outr.offset(t * a.heads + h) + d,
                  gl > 0.0f ? sum / gl : 0.0f);
      } else {
        part_acc[split_partial_row(t, h, a.heads, splits, split) * a.head_dim + d] = sum;
      }
    }
    if (splits > 1 && threadIdx.x == 0) {
      float* ml = part_ml + split_partial_row(t, h, a.heads, splits, split) * 2;
      ml[0] = gm;
      ml[1] = gl;
    }
  }
}

// Split-KV attention (flash decoding): block (t, kv head, head tile, split) attends the query
// heads of one kv head that share its keys (GQA: each K/V row is read once for all of them) over
// one slice of the slots. Each warp walks a strided share of the slice with its own online
// softmax; the warps merge in shared memory; with several splits the block writes its partial
// (max, sum, unnormalized output) and combine_kernel merges the splits. Splits give a decode step
// enough blocks to cover the SMs (one query row, a few kv heads), where one block per row and head
// left most of the GPU idle and walked the whole context serially.
template <typename C, int kTile, int kPerLane>
__global__ void __launch_bounds__(kWarps * 32)
    split_attention_kernel(AttentionArgs a, int tiles, int64_t split_len, int splits,
                           float* part_ml, float* part_acc) {
  pdl_wait();
  pdl_trigger();
  __shared__ float sm_m[kWarps][kTile], sm_l[kWarps][kTile];
  __shared__ float sm_acc[kWarps][kTile][kMaxHeadDim];
  const SplitBlock b = split_block<kTile>(a, tiles, split_len);
  const int64_t t = b.t, lo = b.lo, hi = b.hi;
  const int kvh = b.kvh, split = b.split, h0 = b.h0, nh = b.nh;
  const RowView& v = b.v;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const C* k_cache = static_cast<const C*>(a.k_cache);
  const C* v_cache = static_cast<const C*>(a.v_cache);

  float q[kTile][kPerLane];
#pragma unroll
  for (int g = 0; g < kTile; ++g) {
    const int64_t q0 = a.qr.offset(t * a.heads + h0 + min(g, nh - 1));
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      q[g][i] = d < a.head_dim ? load_act(a.q, a.qr.elem, q0 + d) * a.scale : 0.0f;
    }
  }
  float m[kTile], l[kTile], acc[kTile][kPerLane];
#pragma unroll
  for (int g = 0; g < kTile; ++g) {
    m[g] = -FLT_MAX;
    l[g] = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) acc[g][i] = 0.0f;
  }
  for (int64_t j = lo + warp; j < hi; j += kWarps) {
    if (v.key_pos) {
      const int64_t kpos = v.key_pos[j];
      if (kpos < 0 || kpos > v.qpos || (a.window > 0 && v.qpos - kpos >= a.window)) continue;
    }
    const int64_t block = v.table[j / a.block_size], r = j % a.block_size;
    const int64_t base = ((block * a.kv_heads + kvh) * a.block_size + r) * a.head_dim;
    float kv[kPerLane];
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      kv[i] = d < a.head_dim ? to_f32(k_cache[base + d]) : 0.0f;
    }
    float dot[kTile];
#pragma unroll
    for (int g = 0; g < kTile; ++g) {
      dot[g] = 0.0f;
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) dot[g] += q[g][i] * kv[i];
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
#pragma unroll
      for (int g = 0; g < kTile; ++g) dot[g] += __shfl_xor_sync(0xffffffffu, dot[g], o);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      kv[i] = d < a.head_dim ? to_f32(v_cache[base + d]) : 0.0f;
    }
#pragma unroll
    for (int g = 0; g < kTile; ++g) {
      const float m_new = fmaxf(m[g], dot[g]);
      const float correction = expf(m[g] - m_new), p = expf(dot[g] - m_new);
      l[g] = l[g] * correction + p;
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) acc[g][i] = acc[g][i] * correction + p * kv[i];
      m[g] = m_new;
    }
  }
  // Merge the warps.
#pragma unroll
  for (int g = 0; g < kTile; ++g) {
    if (lane == 0) {
      sm_m[warp][g] = m[g];
      sm_l[warp][g] = l[g];
    }
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      if (d < a.head_dim) sm_acc[warp][g][d] = acc[g][i];
    }
  }
  __syncthreads();
  store_block_result<kTile>(a, t, h0, nh, split, splits, sm_m, sm_l, sm_acc, part_ml, part_acc);
}

// How the vector kernel below reads a K or V row of kDim values of C: 16-byte loads, kLanes lanes
// a row (kLoads loads each), so a warp reads kKeys rows at once.
template <typename C, int kDim>
struct RowLoads {
  static constexpr int kElems = 16 / int(sizeof(C));
  static constexpr int kLanes = kDim / kElems < 32 ? kDim / kElems : 32;
  static constexpr int kLoads = kDim / (kElems * kLanes);
  static constexpr int kKeys = 32 / kLanes;
  // Keys a lane group loads before it computes: with kLoads = 1, 4 K and 4 V loads in flight.
  static constexpr int kUnroll = 4 / kLoads;
};

template <typename C, int kElems>
__device__ __forceinline__ void unpack_row_part(const uint4& raw, float (&out)[kElems]) {
  const C* c = reinterpret_cast<const C*>(&raw);
#pragma unroll
  for (int e = 0; e < kElems; ++e) out[e] = to_f32(c[e]);
}

// The split-KV kernel for head dims of 64, 128 or 256 with 16-byte aligned rows: the same
// blocks, splits and partials as split_attention_kernel (the same math in another summation
// order), but each warp has several keys in flight. That kernel walks its keys one at a time per
// warp (a block-table read, then K and V loads of one value a lane), so a decode step's attention
// costs one memory latency per key and warp: ~16 in a row per block at a few hundred keys, and
// more as the context grows. Here a group of kLanes lanes reads a key's row with 16-byte loads, a
// warp covers kKeys keys at once, and kUnroll such steps are loaded before any is used. Each lane
// group keeps its own online softmax (one max per group of keys, then one rescale), and the groups
// of a warp merge by shuffles before the warps merge in shared memory.
template <typename C, int kTile, int kDim>
__global__ void __launch_bounds__(kWarps * 32)
    split_attention_vec_kernel(AttentionArgs a, int tiles, int64_t split_len, int splits,
                               float* part_ml, float* part_acc) {
  using L = RowLoads<C, kDim>;
  constexpr int E = L::kElems, kLoads = L::kLoads, kUnroll = L::kUnroll;
  pdl_wait();
  pdl_trigger();
  __shared__ float sm_m[kWarps][kTile], sm_l[kWarps][kTile];
  __shared__ float sm_acc[kWarps][kTile][kMaxHeadDim];
  const SplitBlock b = split_block<kTile>(a, tiles, split_len);
  const int64_t t = b.t, lo = b.lo, hi = b.hi;
  const int kvh = b.kvh, split = b.split, h0 = b.h0, nh = b.nh;
  const RowView& v = b.v;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int sub = lane / L::kLanes, pl = lane % L::kLanes;  // key of the warp's step, lane in row
  const C* k_cache = static_cast<const C*>(a.k_cache);
  const C* v_cache = static_cast<const C*>(a.v_cache);

  // The lane's values of a row: load i covers values (i * kLanes + pl) * E .. + E - 1.
  float q[kTile][kLoads][E];
#pragma unroll
  for (int g = 0; g < kTile; ++g) {
    const int64_t q0 = a.qr.offset(t * a.heads + h0 + min(g, nh - 1));
#pragma unroll
    for (int i = 0; i < kLoads; ++i)
#pragma unroll
      for (int e = 0; e < E; ++e)
        q[g][i][e] = load_act(a.q, a.qr.elem, q0 + (i * L::kLanes + pl) * E + e) * a.scale;
  }
  float m[kTile], l[kTile], acc[kTile][kLoads][E];
#pragma unroll
  for (int g = 0; g < kTile; ++g) {
    m[g] = -FLT_MAX;
    l[g] = 0.0f;
#pragma unroll
    for (int i = 0; i < kLoads; ++i)
#pragma unroll
      for (int e = 0; e < E; ++e) acc[g][i][e] = 0.0f;
  }
  constexpr int kWarpKeys = L::kKeys * kUnroll;
  for (int64_t j0 = lo + warp * kWarpKeys; j0 < hi; j0 += kWarps * kWarpKeys) {
    uint4 kraw[kUnroll][kLoads], vraw[kUnroll][kLoads];
    bool seen[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t j = j0 + u * L::kKeys + sub;
      seen[u] = j < hi;
      if (seen[u] && v.key_pos) {
        const int64_t kpos = v.key_pos[j];
        seen[u] = kpos >= 0 && kpos <= v.qpos && !(a.window > 0 && v.qpos - kpos >= a.window);
      }
#pragma unroll
      for (int i = 0; i < kLoads; ++i) kraw[u][i] = vraw[u][i] = make_uint4(0, 0, 0, 0);
      if (seen[u]) {
        const int64_t block = v.table[j / a.block_size], r = j % a.block_size;
        const int64_t base = ((block * a.kv_heads + kvh) * a.block_size + r) * kDim;
#pragma unroll
        for (int i = 0; i < kLoads; ++i) {
          const int64_t at = base + (i * L::kLanes + pl) * E;
          kraw[u][i] = *reinterpret_cast<const uint4*>(k_cache + at);
          vraw[u][i] = *reinterpret_cast<const uint4*>(v_cache + at);
        }
      }
    }
    // Dot products of the group's keys with every head, summed over the group's lanes.
    float dot[kUnroll][kTile];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
      for (int g = 0; g < kTile; ++g) dot[u][g] = 0.0f;
#pragma unroll
      for (int i = 0; i < kLoads; ++i) {
        float kv[E];
        unpack_row_part<C, E>(kraw[u][i], kv);
#pragma unroll
        for (int g = 0; g < kTile; ++g)
#pragma unroll
          for (int e = 0; e < E; ++e) dot[u][g] += q[g][i][e] * kv[e];
      }
#pragma unroll
      for (int o = L::kLanes / 2; o > 0; o >>= 1)
#pragma unroll
        for (int g = 0; g < kTile; ++g) dot[u][g] += __shfl_xor_sync(0xffffffffu, dot[u][g], o);
    }
    // One rescale per head for the step's keys, then their weighted values.
#pragma unroll
    for (int g = 0; g < kTile; ++g) {
      float m_new = m[g];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
        if (seen[u]) m_new = fmaxf(m_new, dot[u][g]);
      const float correction = expf(m[g] - m_new);
      l[g] *= correction;
#pragma unroll
      for (int i = 0; i < kLoads; ++i)
#pragma unroll
        for (int e = 0; e < E; ++e) acc[g][i][e] *= correction;
      m[g] = m_new;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (!seen[u]) continue;
      float p[kTile];
#pragma unroll
      for (int g = 0; g < kTile; ++g) {
        p[g] = expf(dot[u][g] - m[g]);
        l[g] += p[g];
      }
#pragma unroll
      for (int i = 0; i < kLoads; ++i) {
        float vv[E];
        unpack_row_part<C, E>(vraw[u][i], vv);
#pragma unroll
        for (int g = 0; g < kTile; ++g)
#pragma unroll
          for (int e = 0; e < E; ++e) acc[g][i][e] = fmaf(p[g], vv[e], acc[g][i][e]);
      }
    }
  }
  // Merge the warp's lane groups (same values of the row, different keys).
#pragma unroll
  for (int o = L::kLanes; o < 32; o <<= 1)
#pragma unroll
    for (int g = 0; g < kTile; ++g) {
      const float mo = __shfl_xor_sync(0xffffffffu, m[g], o);
      const float lo_ = __shfl_xor_sync(0xffffffffu, l[g], o);
      const float mn = fmaxf(m[g], mo);
      const float ca = expf(m[g] - mn), cb = expf(mo - mn);
      l[g] = l[g] * ca + lo_ * cb;
#pragma unroll
      for (int i = 0; i < kLoads; ++i)
#pragma unroll
        for (int e = 0; e < E; ++e) {
          const float ao = __shfl_xor_sync(0xffffffffu, acc[g][i][e], o);
          acc[g][i][e] = acc[g][i][e] * ca + ao * cb;
        }
      m[g] = mn;
    }
  if (sub == 0) {
#pragma unroll
    for (int g = 0; g < kTile; ++g) {
      if (pl == 0) {
        sm_m[warp][g] = m[g];
        sm_l[warp][g] = l[g];
      }
#pragma unroll
      for (int i = 0; i < kLoads; ++i)
#pragma unroll
        for (int e = 0; e < E; ++e) sm_acc[warp][g][(i * L::kLanes + pl) * E + e] = acc[g][i][e];
    }
  }
  __syncthreads();
  store_block_result<kTile>(a, t, h0, nh, split, splits, sm_m, sm_l, sm_acc, part_ml, part_acc);
}

// Whether split_attention_vec_kernel can read the caches: head dims of 64, 128 or 256 (rows of
// whole 16-byte loads in power-of-two lane groups) and 16-byte aligned planes, so that every row
// is; HEARTH_CUDA_ATTENTION_VEC=0 keeps the one-key-per-warp kernel (for comparisons).
bool vector_rows(const AttentionArgs& a) {
  static const bool enabled = [] {
    const char* env = std::getenv("HEARTH_CUDA_ATTENTION_VEC");
    return !(env && std::string(env) == "0");
  }();
  const bool dim = a.head_dim == 64 || a.head_dim == 128 || a.head_dim == 256;
  return enabled && dim && reinterpret_cast<uintptr_t>(a.k_cache) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(a.v_cache) % 16 == 0;
}

// launch_split_combine's kernel: one block per (query row, head).
__global__ void combine_kernel(AttentionArgs a, int splits, const float* part_ml,
                               const float* part_acc) {
  pdl_wait();
  pdl_trigger();
  const int64_t row = blockIdx.x;  // t * heads + h
  const float* ml = part_ml + row * splits * 2;
  float gm = -FLT_MAX, gl = 0.0f;
  for (int s = 0; s < splits; ++s)
    if (ml[2 * s + 1] > 0.0f) gm = fmaxf(gm, ml[2 * s]);
  for (int s = 0; s < splits; ++s)
    if (ml[2 * s + 1] > 0.0f) gl += ml[2 * s + 1] * expf(ml[2 * s] - gm);
  const int64_t o0 = a.outr.offset(row);
  for (int64_t d = threadIdx.x; d < a.head_dim; d += blockDim.x) {
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s)
      if (ml[2 * s + 1] > 0.0f)
        sum += part_acc[(row * splits + s) * a.head_dim + d] * expf(ml[2 * s] - gm);
    store_act(a.out, a.outr.elem, o0 + d, gl > 0.0f ? sum / gl : 0.0f);
  }
}

}  // namespace

cudaError_t launch_write_kv(const void* k, Rows kr, const void* v, Rows vr, Elem kv_elem,
                            const int32_t* slots, void* k_cache, void* v_cache, Elem cache_elem,
                            int block_size, int64_t kv_heads, int64_t head_dim, int64_t tokens,
                            cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  return dispatch_float(kv_elem, [&](auto src_tag) {
    using S = decltype(src_tag);
    return dispatch_float(cache_elem, [&](auto tag) {
      using C = decltype(tag);
      const auto aligned4 = [](const void* p, size_t elem) {
        return reinterpret_cast<uintptr_t>(p) % (4 * elem) == 0;
      };
      // Row starts stay 4-element aligned when every stride of kr/vr is a multiple of 4.
      bool strides4 = kr.cols % 4 == 0 && vr.cols % 4 == 0;
      for (int d = 0; d < kr.lead; ++d) strides4 = strides4 && kr.stride[d] % 4 == 0;
      for (int d = 0; d < vr.lead; ++d) strides4 = strides4 && vr.stride[d] % 4 == 0;
      if (head_dim % 4 == 0 && strides4 && aligned4(k, sizeof(S)) && aligned4(v, sizeof(S)) &&
          aligned4(k_cache, sizeof(C)) && aligned4(v_cache, sizeof(C))) {
        const int64_t quads = tokens * kv_heads * (head_dim / 4);
        launch_kernel(write_kv4_kernel<S, C>,
                      dim3(std::min<unsigned>(blocks_for(quads, 256), 65535u)), dim3(256), 0,
                      stream, static_cast<const S*>(k), static_cast<const S*>(v), kr, vr, slots,
                      static_cast<C*>(k_cache), static_cast<C*>(v_cache), block_size, kv_heads,
                      head_dim, quads);
        return cudaGetLastError();
      }
      launch_kernel(write_kv_kernel<S, C>, dim3(unsigned(tokens * kv_heads)), dim3(128), 0, stream,
                    static_cast<const S*>(k), static_cast<const S*>(v), kr, vr, slots,
                    static_cast<C*>(k_cache), static_cast<C*>(v_cache), block_size, kv_heads,
                    head_dim, tokens);
      return cudaGetLastError();
    });
  });
}

void plan_key_splits(AttentionPlan& p, int64_t blocks, int64_t max_slots, int64_t min_split_len,
                     int sm_count, int64_t tokens, int64_t heads, int64_t head_dim) {
  blocks = std::max<int64_t>(1, blocks);
  const int64_t want = std::max<int64_t>(1, (2 * int64_t(sm_count) + blocks - 1) / blocks);
  const int64_t max_split = std::max<int64_t>(1, (max_slots + min_split_len - 1) / min_split_len);
  p.splits = int(std::min(want, max_split));
  p.split_len = (max_slots + p.splits - 1) / p.splits;
  p.scratch_floats = p.splits > 1 ? tokens * heads * p.splits * (2 + head_dim) : 0;
}

cudaError_t launch_split_combine(const AttentionArgs& a, int splits, const float* scratch,
                                 cudaStream_t stream) {
  const float* part_acc = scratch + a.tokens * a.heads * splits * 2;
  launch_kernel(combine_kernel, dim3(unsigned(a.tokens * a.heads)), dim3(128), 0, stream, a, splits,
                scratch, part_acc);
  return cudaGetLastError();
}

AttentionPlan plan_paged_attention(const AttentionArgs& a, int sm_count) {
  AttentionPlan p;
  if (use_flash_prefill(a, sm_count)) {
    p.flash = true;
    p.flash_rows = flash_prefill_rows(a, sm_count);
    return p;
  }
  const int64_t group = a.heads / a.kv_heads;
  p.tile = head_tile_for_group(group);
  p.tiles = int((group + p.tile - 1) / p.tile);
  p.vector_rows = vector_rows(a);
  plan_key_splits(p, a.tokens * a.kv_heads * p.tiles, a.max_slots,
                  p.vector_rows ? kMinSplitSlotsVec : kMinSplitSlots, sm_count, a.tokens, a.heads,
                  a.head_dim);
  return p;
}

cudaError_t launch_paged_attention(const AttentionArgs& a, const AttentionPlan& p, float* scratch,
                                   cudaStream_t stream) {
  if (a.tokens == 0) return cudaSuccess;
  if (a.head_dim > kMaxHeadDim || a.tokens > INT32_MAX) return cudaErrorInvalidValue;
  if (p.flash) return launch_flash_prefill(a, p.flash_rows, stream);
  float* part_ml = scratch;
  float* part_acc = split_partial_acc(scratch, a.tokens, a.heads, p.splits);
  const dim3 grid(unsigned(a.tokens), unsigned(a.kv_heads * p.tiles), unsigned(p.splits));
  cudaError_t e = dispatch_float(a.cache_elem, [&](auto tag) {
    using C = decltype(tag);
    auto go = [&]<int kTile, int kPerLane>() {
      launch_kernel(split_attention_kernel<C, kTile, kPerLane>, grid, dim3(32 * kWarps), 0, stream,
                    a, p.tiles, p.split_len, p.splits, part_ml, part_acc);
    };
    auto go_vec = [&]<int kTile, int kDim>() {
      launch_kernel(split_attention_vec_kernel<C, kTile, kDim>, grid, dim3(32 * kWarps), 0, stream,
                    a, p.tiles, p.split_len, p.splits, part_ml, part_acc);
    };
    const bool vec = p.vector_rows;
    // Head dims up to 64, 128 or 256: 2, 4 or 8 values per lane.
    auto by_dim = [&]<int kTile>() {
      if (vec && a.head_dim == 64)
        go_vec.template operator()<kTile, 64>();
      else if (vec && a.head_dim == 128)
        go_vec.template operator()<kTile, 128>();
      else if (vec && a.head_dim == 256)
        go_vec.template operator()<kTile, 256>();
      else if (a.head_dim <= 64)
        go.template operator()<kTile, 2>();
      else if (a.head_dim <= 128)
        go.template operator()<kTile, 4>();
      else
        go.template operator()<kTile, 8>();
    };
    switch (p.tile) {
      case 8:
        by_dim.template operator()<8>();
        break;
      case 4:
        by_dim.template operator()<4>();
        break;
      case 2:
        by_dim.template operator()<2>();
        break;
      default:
        by_dim.template operator()<1>();
    }
    return cudaGetLastError();
  });
  if (e != cudaSuccess || p.splits == 1) return e;
  return launch_split_combine(a, p.splits, scratch, stream);
}

}  // namespace hearth::ops::cuda
