// The quantized KV cache on the GPU (ops/quantized_attention.h): quantize-on-write of new keys and
// values, and causal GQA paged attention (sliding window, per-slot positions) that decodes each key
// and value element from its code, scale and bias inside the kernel. The attention has the split-KV
// shape of attention.cu (key splits merged by the shared combine kernel, attention_split.cuh) with
// query tiles of heads x rows: each K/V row is read and decoded once per block for all of the
// tile's query vectors; scores are computed a lane per key, so the online softmax needs one warp
// reduction per 32 keys instead of one per key.
#include <cfloat>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include "ops/cuda/attention_split.cuh"
#include "ops/cuda/device_types.cuh"
#include "ops/cuda/quantized_kv_launch.h"

namespace hearth::ops::cuda {
namespace {

constexpr int kMaxHeadDim = kMaxAttentionHeadDim;
constexpr int kMaxGroupWords = 128 * 8 / 32;  // group_size 128 at 8 bits

// Code `i` of a row's little-endian bit stream of `bits`-bit codes.
__device__ __forceinline__ uint32_t code_at(const uint32_t* row, int64_t i, int bits) {
  const int64_t bit = i * bits;
  const int64_t word = bit >> 5;
  const int shift = int(bit & 31);
  uint32_t v = row[word] >> shift;
  if (shift + bits > 32) v |= row[word + 1] << (32 - shift);
  return v & ((1u << bits) - 1u);
}

// One thread per group of one (token, kv head) row. The arithmetic is MLX's Metal/CUDA quantizer
// step by step, each operation rounded on its own (no contraction into FMAs).
template <typename S, typename C>
__global__ void write_kv_quantized_kernel(const S* src, Rows sr, const int32_t* slots,
                                          int64_t tokens, uint32_t* packed, C* scales, C* biases,
                                          int bits, int group_size, int block_size,
                                          int64_t kv_heads, int64_t head_dim) {
  const int64_t row = blockIdx.x;  // (t, h)
  const int64_t t = row / kv_heads, h = row % kv_heads;
  const int32_t slot = slots[t];
  if (slot < 0) return;  // padding: skipped
  const int64_t block = slot / block_size, r = slot % block_size;
  const int64_t dst_row = (block * kv_heads + h) * block_size + r;
  const int64_t groups = head_dim / group_size;
  const int64_t words_per_group = int64_t(group_size) * bits / 32;
  const S* x = src + sr.offset(row);
  const float n_bins = float((1 << bits) - 1);
  const float eps = 1e-7f;
  for (int64_t g = threadIdx.x; g < groups; g += blockDim.x) {
    const S* xg = x + g * group_size;
    // The values as the cache dtype holds them.
    auto value = [&](int j) { return to_f32(from_f32<C>(to_f32(xg[j]))); };
    float w_min = __int_as_float(0x7f800000);  // +inf
    float w_max = 0.0f;                        // the GPU kernels start the maximum at 0
    for (int j = 0; j < group_size; ++j) {
      const float v = value(j);
      w_min = fminf(w_min, v);
      w_max = fmaxf(w_max, v);
    }
    const bool min_side = fabsf(w_min) > fabsf(w_max);
    float scale = fmaxf(__fdiv_rn(__fsub_rn(w_max, w_min), n_bins), eps);
    if (!min_side) scale = -scale;
    const float edge = min_side ? w_min : w_max;
    const float q0 = roundf(__fdiv_rn(edge, scale));
    float bias = 0.0f;
    if (q0 != 0.0f) {
      scale = __fdiv_rn(edge, q0);
      bias = edge;
    }
    uint32_t words[kMaxGroupWords];
    for (int64_t w = 0; w < words_per_group; ++w) words[w] = 0;
    for (int j = 0; j < group_size; ++j) {
      float c = roundf(__fdiv_rn(__fsub_rn(value(j), bias), scale));
      c = fminf(fmaxf(c, 0.0f), n_bins);
      const uint32_t code = uint32_t(c);
      const int bit = j * bits, word = bit >> 5, shift = bit & 31;
      words[word] |= code << shift;
      if (shift + bits > 32) words[word + 1] |= code >> (32 - shift);
    }
    uint32_t* out = packed + dst_row * (head_dim * bits / 32) + g * words_per_group;
    for (int64_t w = 0; w < words_per_group; ++w) out[w] = words[w];
    scales[dst_row * groups + g] = from_f32<C>(scale);
    biases[dst_row * groups + g] = from_f32<C>(bias);
  }
}

// ---- paged_attention_quantized ------------------------------------------------------------------

constexpr int kQWarps = 4;
constexpr int kKeyBatch = 32;  // keys a warp scores at once: one per lane
// Query vectors ((row, head) pairs of one kv head) a block carries: each decoded K/V element is
// used for all of them. 8 keeps the per-lane scores and accumulators (8 x head_dim / 32) in
// registers at head_dim 256, as the dense kernel's head tile of 8 does.
constexpr int kMaxQueryVectors = 8;
// Shortest key split: two 32-key batches per warp, so the fixed cost of a block (loading q,
// merging warps and splits) stays small next to its keys. Not tuned on hardware yet.
constexpr int64_t kMinSplitKeys = 256;

// 2^23 + c as a float has c in its low mantissa bits: OR-ing a code (< 2^23) into 0x4B000000 and
// subtracting 2^23 converts it exactly with two full-rate instructions (an I2F is quarter rate).
constexpr uint32_t kMagic = 0x4B000000u;
constexpr float kMagicF = 8388608.0f;

template <int kBits>
__device__ __forceinline__ float code_f32(uint32_t word, int k) {
  if constexpr (kBits == 8)
    return __uint_as_float(__byte_perm(word, kMagic, 0x7540u | unsigned(k))) - kMagicF;
  else
    return __uint_as_float(((word >> (k * kBits)) & ((1u << kBits) - 1u)) | kMagic) - kMagicF;
}

__device__ __forceinline__ float code_f32_at(const uint32_t* row, int i, int bits) {
  return __uint_as_float(code_at(row, i, bits) | kMagic) - kMagicF;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// s[q] += dot(q_s[q], 4 key values starting at dim c0) for every query vector.
template <int kQ, int kD>
__device__ __forceinline__ void dot4(const float* q_s, int c0, const float (&kv)[4],
                                     float (&s)[kQ]) {
#pragma unroll
  for (int q = 0; q < kQ; ++q) {
    const float4 qq = *reinterpret_cast<const float4*>(q_s + q * kD + c0);
    s[q] = fmaf(qq.x, kv[0], s[q]);
    s[q] = fmaf(qq.y, kv[1], s[q]);
    s[q] = fmaf(qq.z, kv[2], s[q]);
    s[q] = fmaf(qq.w, kv[3], s[q]);
  }
}

// Scores of this lane's key for every query vector: the lane walks its own key row (each K row is
// decoded once, by one lane, for all kQ query vectors; q comes from shared memory as broadcasts).
// kBits 4 or 8 (head_dim exactly 32 * kE): 16-byte loads of the packed row, four words of one
// group per load (a group of >= 32 codes spans a multiple of 4 words at these widths). kBits 0:
// any width and head_dim, code by code (3-, 5- and 6-bit codes straddle words).
template <typename C, int kBits, int kE, int kQ>
__device__ __forceinline__ void score_key(const uint32_t* row, const C* scales, const C* biases,
                                          const float* q_s, int head_dim, int bits, int gs_shift,
                                          float (&s)[kQ]) {
  constexpr int kD = 32 * kE;
#pragma unroll
  for (int q = 0; q < kQ; ++q) s[q] = 0.0f;
  if constexpr (kBits == 4 || kBits == 8) {
    constexpr int kCodesPerWord = 32 / kBits;
    constexpr int kLoads = kD * kBits / 128;
    const uint4* row4 = reinterpret_cast<const uint4*>(row);
#pragma unroll 4
    for (int w4 = 0; w4 < kLoads; ++w4) {
      const uint4 v = __ldg(row4 + w4);
      const int g = (w4 * 4 * kCodesPerWord) >> gs_shift;
      const float scale = to_f32(scales[g]), bias = to_f32(biases[g]);
      const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int u = 0; u < 4; ++u)
#pragma unroll
        for (int k4 = 0; k4 < kCodesPerWord; k4 += 4) {
          float kv[4];
#pragma unroll
          for (int k = 0; k < 4; ++k) kv[k] = fmaf(code_f32<kBits>(words[u], k4 + k), scale, bias);
          dot4<kQ, kD>(q_s, (w4 * 4 + u) * kCodesPerWord + k4, kv, s);
        }
    }
  } else {
    for (int c0 = 0; c0 < head_dim; c0 += 4) {
      const int g = c0 >> gs_shift;  // group sizes are multiples of 4
      const float scale = to_f32(scales[g]), bias = to_f32(biases[g]);
      float kv[4];
#pragma unroll
      for (int k = 0; k < 4; ++k) kv[k] = fmaf(code_f32_at(row, c0 + k, bits), scale, bias);
      dot4<kQ, kD>(q_s, c0, kv, s);
    }
  }
}

// One value row as a lane needs it: v[lane * E + i] for its E consecutive dims. kBits 4 or 8: the
// lane's E * kBits bits (one word, or an aligned pair at 8 bits and head_dim 256; one group, as E
// divides every group size), fetched by load() so that several rows' loads are in flight before
// any is used. kBits 0: any width, code by code in value().
template <typename C, int kBits, int kE>
struct ValueRow {
  uint32_t w[2] = {0, 0};
  float scale = 0.0f, bias = 0.0f;
  const uint32_t* row = nullptr;
  const C* scales = nullptr;
  const C* biases = nullptr;

  __device__ __forceinline__ void load(const uint32_t* r, const C* s, const C* b, int lane,
                                       int gs_shift) {
    if constexpr (kBits == 4 || kBits == 8) {
      constexpr int kLaneBits = kE * kBits;
      if constexpr (kLaneBits == 64) {
        const uint2 v = __ldg(reinterpret_cast<const uint2*>(r) + lane);
        w[0] = v.x;
        w[1] = v.y;
      } else {
        const int bit0 = lane * kLaneBits;
        w[0] = __ldg(r + (bit0 >> 5)) >> (bit0 & 31);
      }
      const int g = (lane * kE) >> gs_shift;
      scale = to_f32(s[g]);
      bias = to_f32(b[g]);
    } else {
      row = r;
      scales = s;
      biases = b;
    }
  }
  // Dim lane * dims + i of the row (i < dims).
  __device__ __forceinline__ float value(int i, int lane, int dims, int bits, int gs_shift) const {
    if constexpr (kBits == 4 || kBits == 8) {
      constexpr int kPerWord = 32 / kBits;
      return fmaf(code_f32<kBits>(w[i / kPerWord], i % kPerWord), scale, bias);
    } else {
      const int d = lane * dims + i, g = d >> gs_shift;
      return fmaf(code_f32_at(row, d, bits), to_f32(scales[g]), to_f32(biases[g]));
    }
  }
};

// Value rows per step of the accumulation loop: their loads are issued together.
constexpr int kValueUnroll = 8;

struct QuantizedLaunch {
  int rows, tile, tiles, splits, gs_shift;
  int64_t split_len;
  float* part_ml;
  float* part_acc;
};

// Split-KV attention over quantized keys and values. Block (row tile, kv head, head tile, split)
// carries kQ = rows * tile query vectors: `rows` consecutive query rows (a prefill chunk's rows
// share every decoded K/V row) times the tile's query heads of one kv head (GQA). Each warp takes
// batches of 32 keys of the split's slice: lane j decodes key j and scores it for all query
// vectors; the batch's softmax needs one warp reduction per query vector (not one per key); then
// the warp reads the batch's visible value rows one at a time, each lane decoding its dims. Warps
// merge in shared memory; with several splits the partials go to launch_split_combine, as in
// attention.cu. Rows of one tile may belong to different sequences (a ragged batch); the tile then
// walks each sequence's keys for its own rows in turn.
template <typename C, int kBits, int kE, int kQ>
__global__ void __launch_bounds__(kQWarps * 32)
    quantized_split_kernel(AttentionArgs a, QuantizedKvArgs c, QuantizedLaunch L) {
  constexpr int kD = 32 * kE;
  __shared__ __align__(16) float q_s[kQ * kD];
  __shared__ __align__(16) float p_s[kQWarps][kKeyBatch][kQ];
  __shared__ float sm_m[kQWarps][kQ], sm_l[kQWarps][kQ];
  __shared__ float sm_acc[kQWarps][kQ][kD];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t t0 = int64_t(blockIdx.x) * L.rows;
  const int nrows = int(min(int64_t(L.rows), a.tokens - t0));
  const int kvh = int(blockIdx.y) / L.tiles, tl = int(blockIdx.y) % L.tiles;
  const int split = int(blockIdx.z);
  const int group = int(a.heads / a.kv_heads);
  const int h0 = kvh * group + tl * L.tile;
  const int nh = min(L.tile, group - tl * L.tile);
  const int head_dim = int(a.head_dim), dims = head_dim / 32;
  const int64_t words_per_row = int64_t(head_dim) * c.bits / 32;
  const int64_t groups = head_dim >> L.gs_shift;
  // Query vector q is row q / tile, head q % tile of the tile; invalid ones hold zeros.
  auto valid = [&](int q) { return q / L.tile < nrows && q % L.tile < nh; };
  for (int i = threadIdx.x; i < kQ * kD; i += blockDim.x) {
    const int q = i / kD, d = i % kD;
    float x = 0.0f;
    if (valid(q) && d < head_dim) {
      const int64_t t = t0 + q / L.tile, h = h0 + q % L.tile;
      x = load_act(a.q, a.qr.elem, a.qr.offset(t * a.heads + h) + d) * a.scale;
    }
    q_s[i] = x;
  }
  __syncthreads();

  const C* k_scales = static_cast<const C*>(c.k_scales);
  const C* k_biases = static_cast<const C*>(c.k_biases);
  const C* v_scales = static_cast<const C*>(c.v_scales);
  const C* v_biases = static_cast<const C*>(c.v_biases);
  float m[kQ], l[kQ], acc[kQ][kE];
#pragma unroll
  for (int q = 0; q < kQ; ++q) {
    m[q] = -INFINITY;
    l[q] = 0.0f;  // this lane's share of the denominator
#pragma unroll
    for (int i = 0; i < kE; ++i) acc[q][i] = 0.0f;
  }
  for (int rb = 0; rb < nrows;) {
    // The sequence of row t0 + rb: the last s with query_start[s] <= t (as attention.cu's scan).
    const int64_t t = t0 + rb;
    int s = 0;
    for (int hi_s = a.num_seqs - 1; s < hi_s;) {
      const int mid = (s + hi_s + 1) / 2;
      if (a.query_start[mid] <= t)
        s = mid;
      else
        hi_s = mid - 1;
    }
    const int64_t q_begin = a.query_start[s], q_end = a.query_start[s + 1];
    const int re = int(min(int64_t(nrows), q_end - t0));
    if (re <= rb) break;  // inconsistent tables (checked on the host side on the CPU only)
    const int64_t ctx = a.context_lens[s];
    const int32_t* table = a.block_tables + s * a.table_stride;
    const int32_t* key_pos =
        a.key_positions ? a.key_positions + s * a.key_positions_stride : nullptr;
    // Each active query vector's position; the tile's slot range is the union of its rows'.
    int64_t qpos[kQ];
    bool active[kQ];
    int64_t first = INT64_MAX, last = -1;
#pragma unroll
    for (int q = 0; q < kQ; ++q) {
      const int r = q / L.tile;
      active[q] = valid(q) && r >= rb && r < re;
      qpos[q] = 0;
      if (!active[q]) continue;
      const int64_t pos = ctx - (q_end - q_begin) + (t0 + r - q_begin);
      qpos[q] = key_pos ? a.query_positions[t0 + r] : pos;
      first = min(first, key_pos ? 0 : a.window > 0 ? max(int64_t(0), pos - a.window + 1) : 0);
      last = max(last, key_pos ? ctx - 1 : pos);
    }
    const int64_t lo = max(first, int64_t(split) * L.split_len);
    const int64_t hi = min(last + 1, int64_t(split + 1) * L.split_len);
    for (int64_t j0 = lo + int64_t(warp) * kKeyBatch; j0 < hi; j0 += kQWarps * kKeyBatch) {
      const int64_t j = j0 + lane;
      int64_t kv_row = 0;
      unsigned visible = 0;  // bit q: query vector q sees key j
      float sc[kQ];
      if (j < hi) {
        const int64_t kpos = key_pos ? key_pos[j] : j;
#pragma unroll
        for (int q = 0; q < kQ; ++q)
          if (active[q] && kpos >= 0 && kpos <= qpos[q] &&
              (a.window <= 0 || qpos[q] - kpos < a.window))
            visible |= 1u << q;
        kv_row =
            (int64_t(table[j / a.block_size]) * a.kv_heads + kvh) * a.block_size + j % a.block_size;
      }
      if (visible)
        score_key<C, kBits, kE, kQ>(c.k_packed + kv_row * words_per_row, k_scales + kv_row * groups,
                                    k_biases + kv_row * groups, q_s, head_dim, c.bits, L.gs_shift,
                                    sc);
      // Online softmax over the batch: one max reduction per query vector.
      float p[kQ];
#pragma unroll
      for (int q = 0; q < kQ; ++q) {
        const float x = (visible >> q) & 1u ? sc[q] : -INFINITY;
        const float batch_max = warp_max(x);
        p[q] = 0.0f;
        if (batch_max == -INFINITY) continue;  // warp-uniform: nothing visible to q here
        const float m_new = fmaxf(m[q], batch_max);
        const float correction = expf(m[q] - m_new);  // 0 while m is -inf
        p[q] = expf(x - m_new);
        l[q] = l[q] * correction + p[q];
        m[q] = m_new;
#pragma unroll
        for (int i = 0; i < kE; ++i) acc[q][i] *= correction;
      }
#pragma unroll
      for (int q = 0; q < kQ; ++q) p_s[warp][lane][q] = p[q];
      // Value rows are read only for keys some query vector sees (past the slice, masked
      // and empty slots may belong to no sequence and hold anything).
      const unsigned keys = __ballot_sync(0xffffffffu, visible != 0);
      __syncwarp();
      for (int jb = 0; jb < kKeyBatch; jb += kValueUnroll) {
        if (((keys >> jb) & ((1u << kValueUnroll) - 1u)) == 0) continue;  // warp-uniform
        ValueRow<C, kBits, kE> rows[kValueUnroll];
#pragma unroll
        for (int u = 0; u < kValueUnroll; ++u) {
          const int64_t row = __shfl_sync(0xffffffffu, kv_row, jb + u);
          if ((keys >> (jb + u)) & 1u)
            rows[u].load(c.v_packed + row * words_per_row, v_scales + row * groups,
                         v_biases + row * groups, lane, L.gs_shift);
        }
#pragma unroll
        for (int u = 0; u < kValueUnroll; ++u) {
          if (!((keys >> (jb + u)) & 1u)) continue;  // warp-uniform
          float pj[kQ];
#pragma unroll
          for (int q = 0; q < kQ; ++q) pj[q] = p_s[warp][jb + u][q];
#pragma unroll
          for (int i = 0; i < kE; ++i) {
            if (i >= dims) break;
            const float v = rows[u].value(i, lane, dims, c.bits, L.gs_shift);
#pragma unroll
            for (int q = 0; q < kQ; ++q) acc[q][i] = fmaf(pj[q], v, acc[q][i]);
          }
        }
      }
      __syncwarp();  // p_s is rewritten by the next batch
    }
    rb = re;
  }
  // Merge the warps.
#pragma unroll
  for (int q = 0; q < kQ; ++q) {
    const float lq = warp_sum(l[q]);
    if (lane == 0) {
      sm_m[warp][q] = m[q];
      sm_l[warp][q] = lq;
    }
#pragma unroll
    for (int i = 0; i < kE; ++i)
      if (i < dims) sm_acc[warp][q][lane * dims + i] = acc[q][i];
  }
  __syncthreads();
  for (int q = 0; q < kQ; ++q) {
    if (!valid(q)) continue;
    float gm = -FLT_MAX, gl = 0.0f;
    for (int w = 0; w < kQWarps; ++w)
      if (sm_l[w][q] > 0.0f) gm = fmaxf(gm, sm_m[w][q]);
    for (int w = 0; w < kQWarps; ++w)
      if (sm_l[w][q] > 0.0f) gl += sm_l[w][q] * expf(sm_m[w][q] - gm);
    const int64_t t = t0 + q / L.tile, h = h0 + q % L.tile;
    const int64_t part = split_partial_row(t, h, a.heads, L.splits, split);
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
      float sum = 0.0f;
      for (int w = 0; w < kQWarps; ++w)
        if (sm_l[w][q] > 0.0f) sum += sm_acc[w][q][d] * expf(sm_m[w][q] - gm);
      if (L.splits == 1)
        store_act(a.out, a.outr.elem, a.outr.offset(t * a.heads + h) + d,
                  gl > 0.0f ? sum / gl : 0.0f);
      else
        L.part_acc[part * head_dim + d] = sum;
    }
    if (L.splits > 1 && threadIdx.x == 0) {
      L.part_ml[part * 2] = gm;
      L.part_ml[part * 2 + 1] = gl;
    }
  }
}

}  // namespace

cudaError_t launch_write_kv_quantized(const void* k, Rows kr, const void* v, Rows vr, Elem kv_elem,
                                      const int32_t* slots, int64_t tokens,
                                      const QuantizedKvArgs& c, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  if (int64_t(c.group_size) * c.bits / 32 > kMaxGroupWords) return cudaErrorInvalidValue;
  return dispatch_float(kv_elem, [&](auto src_tag) {
    using S = decltype(src_tag);
    return dispatch_float(c.scale_elem, [&](auto tag) {
      using C = decltype(tag);
      const unsigned grid = unsigned(tokens * c.kv_heads);
      write_kv_quantized_kernel<S, C><<<grid, 32, 0, stream>>>(
          static_cast<const S*>(k), kr, slots, tokens, c.k_packed, static_cast<C*>(c.k_scales),
          static_cast<C*>(c.k_biases), c.bits, c.group_size, c.block_size, c.kv_heads, c.head_dim);
      write_kv_quantized_kernel<S, C><<<grid, 32, 0, stream>>>(
          static_cast<const S*>(v), vr, slots, tokens, c.v_packed, static_cast<C*>(c.v_scales),
          static_cast<C*>(c.v_biases), c.bits, c.group_size, c.block_size, c.kv_heads, c.head_dim);
      return cudaGetLastError();
    });
  });
}

QuantizedAttentionPlan plan_paged_attention_quantized(const AttentionArgs& a,
                                                      const QuantizedKvArgs&, int sm_count) {
  QuantizedAttentionPlan p;
  const int64_t group = a.heads / a.kv_heads;
  p.tile = head_tile_for_group(group);
  p.tiles = int((group + p.tile - 1) / p.tile);
  // Row tiles only pay when some sequence has several query rows (prefill, chunked prefill,
  // speculative verification); a pure decode batch keeps one block per row for parallelism.
  p.rows = a.tokens > a.num_seqs ? kMaxQueryVectors / p.tile : 1;
  const int64_t row_blocks = (a.tokens + p.rows - 1) / p.rows;
  plan_key_splits(p, row_blocks * a.kv_heads * p.tiles, a.max_slots, kMinSplitKeys, sm_count,
                  a.tokens, a.heads, a.head_dim);
  return p;
}

cudaError_t launch_paged_attention_quantized(const AttentionArgs& a, const QuantizedKvArgs& c,
                                             const QuantizedAttentionPlan& p, float* scratch,
                                             cudaStream_t stream) {
  if (a.tokens == 0) return cudaSuccess;
  if (a.head_dim > kMaxHeadDim || a.head_dim % 32 != 0 || c.group_size < 32 ||
      (c.group_size & (c.group_size - 1)) != 0 || p.splits < 1 || (p.splits > 1 && !scratch))
    return cudaErrorInvalidValue;
  QuantizedLaunch L;
  L.rows = p.rows;
  L.tile = p.tile;
  L.tiles = p.tiles;
  L.splits = p.splits;
  L.split_len = p.split_len;
  L.gs_shift = __builtin_ctz(unsigned(c.group_size));
  L.part_ml = scratch;
  L.part_acc = split_partial_acc(scratch, a.tokens, a.heads, p.splits);
  const int dims = int(a.head_dim / 32);
  const int q_vectors = p.rows * p.tile;
  // 16-byte loads need 16-byte aligned planes (rows of 4- and 8-bit codes at head_dim 64, 128 or
  // 256 are whole multiples of 16 bytes). HEARTH_CUDA_QKV_GENERIC=1 forces the code-by-code path
  // (to bisect a suspected fast-path bug).
  static const bool force_generic = [] {
    const char* e = std::getenv("HEARTH_CUDA_QKV_GENERIC");
    return e && e[0] == '1';
  }();
  const bool aligned =
      (reinterpret_cast<uintptr_t>(c.k_packed) | reinterpret_cast<uintptr_t>(c.v_packed)) % 16 == 0;
  const bool fast = !force_generic && aligned && (c.bits == 4 || c.bits == 8) &&
                    (dims & (dims - 1)) == 0 && dims >= 2;
  const dim3 grid(unsigned((a.tokens + p.rows - 1) / p.rows), unsigned(a.kv_heads * p.tiles),
                  unsigned(p.splits));
  cudaError_t e = dispatch_float(c.scale_elem, [&](auto tag) {
    using C = decltype(tag);
    auto go = [&]<int kBits, int kE>() {
      auto launch = [&]<int kQ>() {
        quantized_split_kernel<C, kBits, kE, kQ><<<grid, 32 * kQWarps, 0, stream>>>(a, c, L);
      };
      switch (q_vectors) {
        case 1:
          launch.template operator()<1>();
          break;
        case 2:
          launch.template operator()<2>();
          break;
        case 4:
          launch.template operator()<4>();
          break;
        default:
          launch.template operator()<8>();
      }
    };
    // Per-lane dims: head_dim up to 64, 128 or 256.
    auto by_dim = [&]<int kBits>() {
      if (dims <= 2)
        go.template operator()<kBits, 2>();
      else if (dims <= 4)
        go.template operator()<kBits, 4>();
      else
        go.template operator()<kBits, 8>();
    };
    if (fast && c.bits == 8)
      by_dim.template operator()<8>();
    else if (fast)
      by_dim.template operator()<4>();
    else
      by_dim.template operator()<0>();
    return cudaGetLastError();
  });
  if (e != cudaSuccess || p.splits == 1) return e;
  return launch_split_combine(a, p.splits, scratch, stream);
}

}  // namespace hearth::ops::cuda
