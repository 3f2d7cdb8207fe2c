// CPU write_kv_quantized and paged_attention_quantized.
//
// Quantize-on-write runs the MLX quantizer of quantize.cpp (GPU variant) over the new tokens' head
// vectors and scatters the rows into their slots.
//
// Attention is flash-style like attention.cpp: each work item (sequence, kv head, tile of up to
// kQueryTile query rows, all query heads of the GQA group) streams the visible keys tile by tile
// (up to 16 keys, never crossing a cache block) with an online softmax. The dequantization is
// fused into the products and never materialized: with k = scale * code + bias per group,
//   q . k = sum_g scale_g * (q_g . codes_g) + bias_g * sum(q_g)
// and the value accumulation keeps sum_j p_j * scale_jg * codes_j per element plus
// sum_j p_j * bias_jg per group, added once at the end. Codes are widened from the packed bytes in
// registers once per key, chunk and pass of up to 4 rows (decode: all query heads of a GQA group
// in one pass). The result matches dequantize-then-attend to f32 rounding (only the order and
// grouping of the f32 sums differ).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/thread_pool.h"
#include "ops/cpu/attention_kernels.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/quantized_internal.h"
#include "ops/cpu/simd.h"

namespace hearth::ops::cpu {
namespace {

using attention::kKeyTile;

// Query rows per prefill work item (times the GQA group size).
constexpr int64_t kQueryTile = 16;
// Groups per head vector the kernel supports (head_dim 256 at group size 32; the CPU and CUDA
// kernels both stop at head_dim 256).
constexpr int64_t kMaxGroups = 8;

// ---- write_kv_quantized -------------------------------------------------------------------------

// Quantizes the [T * n_kv, head_dim] rows of `src` (already in the scale dtype) and copies row
// (t, h) of each plane to (block, h, row) of the cache.
void quantize_and_scatter(const Tensor& src, const int32_t* slots, int64_t slot_stride,
                          const Tensor& packed, const Tensor& scales, const Tensor& biases,
                          int bits, int group_size) {
  const int64_t tokens = src.dim(0), heads = src.dim(1), d = src.dim(2);
  QuantizedWeight q;
  q.bits = bits;
  q.group_size = group_size;
  q.packed = Tensor::empty({tokens * heads, d * bits / 32}, DType::u32);
  q.scales = Tensor::empty({tokens * heads, d / group_size}, scales.dtype());
  q.biases = Tensor::empty({tokens * heads, d / group_size}, scales.dtype());
  affine_quantize(src.reshape({tokens * heads, d}), MlxQuantizer::gpu, q);
  const int64_t bs = packed.dim(2);
  const size_t packed_row = size_t(packed.dim(3)) * 4;
  const size_t group_row = size_t(scales.dim(3)) * dtype_size(scales.dtype());
  auto* pk = static_cast<uint8_t*>(packed.raw_data());
  auto* sc = static_cast<uint8_t*>(scales.raw_data());
  auto* bi = static_cast<uint8_t*>(biases.raw_data());
  const auto* qp = static_cast<const uint8_t*>(q.packed.raw_data());
  const auto* qs = static_cast<const uint8_t*>(q.scales.raw_data());
  const auto* qb = static_cast<const uint8_t*>(q.biases.raw_data());
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t slot = slots[t * slot_stride];
    if (slot < 0) continue;
    const int64_t block = slot / bs, row = slot % bs;
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t dst = (block * heads + h) * bs + row, from = t * heads + h;
      std::memcpy(pk + dst * packed_row, qp + from * packed_row, packed_row);
      std::memcpy(sc + dst * group_row, qs + from * group_row, group_row);
      std::memcpy(bi + dst * group_row, qb + from * group_row, group_row);
    }
  }
}

// ---- paged_attention_quantized ------------------------------------------------------------------

struct Seq {
  int64_t q_begin = 0, q_len = 0, context = 0;
  const int32_t* blocks = nullptr;
};

struct Item {
  int32_t seq, kv_head, row_begin, row_end;
};

// One of the key or value planes as raw pointers.
struct PlaneView {
  const uint8_t* packed;
  const void* scales;
  const void* biases;
};

struct Problem {
  const float* q;
  int64_t q_s0, q_s1;
  float* out;
  int64_t o_s0, o_s1;
  PlaneView k, v;
  int64_t row_bytes, groups;  // per cache row: packed bytes, groups
  int group_size;
  int64_t n_heads, n_kv, group, head_dim, block_size;
  int64_t window;
  float scale;
};

// Software prefetch distance in key tiles (as attention.cpp).
constexpr int kPrefetchTiles = 2;

inline void prefetch(const uint8_t* p, int64_t bytes) {
  for (int64_t off = 0; off < bytes; off += 64)
    _mm_prefetch(reinterpret_cast<const char*>(p + off), _MM_HINT_T1);
}

// One tile of up to kKeyTile keys (consecutive rows of one block and kv head): where each key's
// and value's codes start, and their scales and biases widened to f32.
struct Tile {
  const uint8_t* k_codes[kKeyTile];
  const uint8_t* v_codes[kKeyTile];
  float k_scale[kKeyTile][kMaxGroups], k_bias[kKeyTile][kMaxGroups];
  float v_scale[kKeyTile][kMaxGroups], v_bias[kKeyTile][kMaxGroups];
};

template <typename S>
void load_tile(const Problem& p, int64_t row0, int64_t n, Tile& tile) {
  const S* ks = static_cast<const S*>(p.k.scales);
  const S* kb = static_cast<const S*>(p.k.biases);
  const S* vs = static_cast<const S*>(p.v.scales);
  const S* vb = static_cast<const S*>(p.v.biases);
  for (int64_t j = 0; j < n; ++j) {
    const int64_t row = row0 + j;
    tile.k_codes[j] = p.k.packed + row * p.row_bytes;
    tile.v_codes[j] = p.v.packed + row * p.row_bytes;
    for (int64_t g = 0; g < p.groups; ++g) {
      tile.k_scale[j][g] = scalar_f32(ks, row * p.groups + g);
      tile.k_bias[j][g] = scalar_f32(kb, row * p.groups + g);
      tile.v_scale[j][g] = scalar_f32(vs, row * p.groups + g);
      tile.v_bias[j][g] = scalar_f32(vb, row * p.groups + g);
    }
  }
}

// scores[r][j] = q_r . k_j for kRows rows, with k_j = scale * code + bias per group:
//   q_r . k_j = sum_g scale_jg * (q_rg . codes_jg) + bias_jg * sum(q_rg).
// Two keys at a time: each q chunk is loaded once for both, and the 2 * kRows independent FMA
// chains keep both FMA ports busy. Codes are widened once per key and chunk for all the rows.
template <int kRows, int kBits>
void score_rows(const Problem& p, const float* q, const float* q_group_sums, const Tile& tile,
                int64_t n, float* scores) {
  const int64_t d = p.head_dim, chunks_per_group = p.group_size / kLanes;
  for (int64_t j = 0; j < n; j += 2) {
    const int64_t j1 = std::min(j + 1, n - 1);  // an odd tail scores its last key twice
    __m256 total[kRows][2];
    float bias_term[kRows][2];
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      total[r][0] = total[r][1] = _mm256_setzero_ps();
      bias_term[r][0] = bias_term[r][1] = 0.0f;
    }
    for (int64_t g = 0; g < p.groups; ++g) {
      __m256 dot[kRows][2];
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) dot[r][0] = dot[r][1] = _mm256_setzero_ps();
      for (int64_t c = g * chunks_per_group; c < (g + 1) * chunks_per_group; ++c) {
        const __m256 codes0 = unpack8_f32<kBits>(tile.k_codes[j], c);
        const __m256 codes1 = unpack8_f32<kBits>(tile.k_codes[j1], c);
#pragma GCC unroll 4
        for (int r = 0; r < kRows; ++r) {
          const __m256 qv = _mm256_loadu_ps(q + r * d + c * kLanes);
          dot[r][0] = _mm256_fmadd_ps(qv, codes0, dot[r][0]);
          dot[r][1] = _mm256_fmadd_ps(qv, codes1, dot[r][1]);
        }
      }
      const __m256 scale0 = _mm256_set1_ps(tile.k_scale[j][g]);
      const __m256 scale1 = _mm256_set1_ps(tile.k_scale[j1][g]);
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) {
        total[r][0] = _mm256_fmadd_ps(dot[r][0], scale0, total[r][0]);
        total[r][1] = _mm256_fmadd_ps(dot[r][1], scale1, total[r][1]);
        const float qsum = q_group_sums[r * p.groups + g];
        bias_term[r][0] += tile.k_bias[j][g] * qsum;
        bias_term[r][1] += tile.k_bias[j1][g] * qsum;
      }
    }
    int r = 0;
    for (; r + 2 <= kRows; r += 2) {
      alignas(16) float s4[4];
      _mm_store_ps(s4, hsum4(total[r][0], total[r][1], total[r + 1][0], total[r + 1][1]));
      scores[r * kKeyTile + j] = s4[0] + bias_term[r][0];
      scores[r * kKeyTile + j + 1] = s4[1] + bias_term[r][1];
      scores[(r + 1) * kKeyTile + j] = s4[2] + bias_term[r + 1][0];
      scores[(r + 1) * kKeyTile + j + 1] = s4[3] + bias_term[r + 1][1];
    }
    if (r < kRows) {
      scores[r * kKeyTile + j] = hsum(total[r][0]) + bias_term[r][0];
      scores[r * kKeyTile + j + 1] = hsum(total[r][1]) + bias_term[r][1];
    }
  }
}

// For kRows rows: acc[r] = acc[r] * correction[r] + sum_j probs[r][j] * scale_jg * codes_j (the
// scaled codes) and bias_acc[r][g] = bias_acc[r][g] * correction[r] + sum_j probs[r][j] * bias_jg
// (the biases, the same for every element of a group: added once at the end). Two chunks (16
// elements) at a time for 2 * kRows independent FMA chains.
template <int kRows, int kBits>
void accumulate_rows(const Problem& p, float* acc, float* bias_acc, const float* correction,
                     const float* probs, const Tile& tile, int64_t n) {
  const int64_t d = p.head_dim, chunks_per_group = p.group_size / kLanes;
  for (int64_t g = 0; g < p.groups; ++g) {
    // Per-row weight of each key's scaled codes in this group.
    float w[kRows][kKeyTile];
    for (int r = 0; r < kRows; ++r) {
      float b = bias_acc[r * p.groups + g] * correction[r];
      for (int64_t j = 0; j < n; ++j) {
        w[r][j] = probs[r * kKeyTile + j] * tile.v_scale[j][g];
        b += probs[r * kKeyTile + j] * tile.v_bias[j][g];
      }
      bias_acc[r * p.groups + g] = b;
    }
    for (int64_t c = g * chunks_per_group; c < (g + 1) * chunks_per_group; c += 2) {
      __m256 a[kRows][2];
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) {
        const __m256 corr = _mm256_set1_ps(correction[r]);
        a[r][0] = _mm256_mul_ps(_mm256_loadu_ps(acc + r * d + c * kLanes), corr);
        a[r][1] = _mm256_mul_ps(_mm256_loadu_ps(acc + r * d + (c + 1) * kLanes), corr);
      }
      for (int64_t j = 0; j < n; ++j) {
        const __m256 codes0 = unpack8_f32<kBits>(tile.v_codes[j], c);
        const __m256 codes1 = unpack8_f32<kBits>(tile.v_codes[j], c + 1);
#pragma GCC unroll 4
        for (int r = 0; r < kRows; ++r) {
          const __m256 wj = _mm256_broadcast_ss(&w[r][j]);
          a[r][0] = _mm256_fmadd_ps(wj, codes0, a[r][0]);
          a[r][1] = _mm256_fmadd_ps(wj, codes1, a[r][1]);
        }
      }
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) {
        _mm256_storeu_ps(acc + r * d + c * kLanes, a[r][0]);
        _mm256_storeu_ps(acc + r * d + (c + 1) * kLanes, a[r][1]);
      }
    }
  }
}

// Runs fn.template operator()<kRows>(first_row) over rows in passes of 4, 2 and 1.
template <typename Fn>
inline void for_row_groups(int64_t rows, Fn&& fn) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) fn.template operator()<4>(r);
  for (; r + 2 <= rows; r += 2) fn.template operator()<2>(r);
  if (r < rows) fn.template operator()<1>(r);
}

// Rows of an item are ordered (query row, head within the group).
template <typename S, int kBits>
void attend(const Problem& p, const Seq& seq, const Item& item) {
  const int64_t d = p.head_dim, bs = p.block_size, groups = p.groups;
  const int64_t rows = (item.row_end - item.row_begin) * p.group;
  std::vector<float> buf(
      static_cast<size_t>(2 * rows * d + rows * kKeyTile + 3 * rows + 2 * rows * groups));
  float* qs = buf.data();
  float* acc = qs + rows * d;
  float* scores = acc + rows * d;
  float* m = scores + rows * kKeyTile;
  float* l = m + rows;
  float* corr = l + rows;
  float* q_group_sums = corr + rows;
  float* bias_acc = q_group_sums + rows * groups;
  std::vector<int64_t> pos(static_cast<size_t>(rows)), first(static_cast<size_t>(rows));
  auto query_row = [&](int64_t r) { return item.row_begin + r / p.group; };
  auto query_head = [&](int64_t r) { return item.kv_head * p.group + r % p.group; };
  for (int64_t r = 0; r < rows; ++r) {
    const float* qp = p.q + (seq.q_begin + query_row(r)) * p.q_s0 + query_head(r) * p.q_s1;
    for (int64_t c = 0; c < d; ++c) qs[r * d + c] = qp[c] * p.scale;
    for (int64_t g = 0; g < groups; ++g) {
      float sum = 0.0f;
      for (int64_t c = g * p.group_size; c < (g + 1) * p.group_size; ++c) sum += qs[r * d + c];
      q_group_sums[r * groups + g] = sum;
      bias_acc[r * groups + g] = 0.0f;
    }
    pos[size_t(r)] = seq.context - seq.q_len + query_row(r);
    first[size_t(r)] = p.window > 0 ? std::max<int64_t>(0, pos[size_t(r)] - p.window + 1) : 0;
    m[r] = -std::numeric_limits<float>::infinity();
    l[r] = 0.0f;
  }
  std::fill(acc, acc + rows * d, 0.0f);
  const int64_t key_begin = first[0], key_end = pos[size_t(rows - 1)] + 1;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i lane8 = _mm256_add_epi32(lane, _mm256_set1_epi32(8));
  const __m256 neg_inf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  Tile tile;
  auto tile_size = [&](int64_t key) {
    return std::min({kKeyTile, key_end - key, (key / bs + 1) * bs - key});
  };
  // Row of `key` in the planes: (block, kv head, row within the block).
  auto cache_row = [&](int64_t key) {
    return (int64_t(seq.blocks[key / bs]) * p.n_kv + item.kv_head) * bs + key % bs;
  };

  for (int64_t j0 = key_begin; j0 < key_end;) {
    const int64_t n = tile_size(j0);
    // Blocks are scattered over the pool, so the hardware prefetchers cannot run ahead: fetch the
    // codes, scales and biases of the tile kPrefetchTiles ahead into L2 while this one is used.
    int64_t ahead = j0 + n;
    for (int t = 1; t < kPrefetchTiles && ahead < key_end; ++t) ahead += tile_size(ahead);
    if (ahead < key_end) {
      const int64_t row = cache_row(ahead), rows_ahead = tile_size(ahead);
      prefetch(p.k.packed + row * p.row_bytes, rows_ahead * p.row_bytes);
      prefetch(p.v.packed + row * p.row_bytes, rows_ahead * p.row_bytes);
      const int64_t group_bytes = p.groups * int64_t(sizeof(S));
      for (const void* plane : {p.k.scales, p.k.biases, p.v.scales, p.v.biases})
        prefetch(static_cast<const uint8_t*>(plane) + row * group_bytes, rows_ahead * group_bytes);
    }
    load_tile<S>(p, cache_row(j0), n, tile);
    for_row_groups(rows, [&]<int kRows>(int64_t r) {
      score_rows<kRows, kBits>(p, qs + r * d, q_group_sums + r * groups, tile, n,
                               scores + r * kKeyTile);
    });

    // Online softmax per row; the probabilities replace the scores.
    for (int64_t r = 0; r < rows; ++r) {
      float* s = scores + r * kKeyTile;
      const int64_t lo = std::max<int64_t>(0, first[size_t(r)] - j0);
      const int64_t hi = std::min<int64_t>(n, pos[size_t(r)] + 1 - j0);
      if (lo >= hi) {  // nothing visible in this tile: the row is left as it is
        _mm256_storeu_ps(s, _mm256_setzero_ps());
        _mm256_storeu_ps(s + 8, _mm256_setzero_ps());
        corr[r] = 1.0f;
        continue;
      }
      const __m256i vlo = _mm256_set1_epi32(int(lo)), vhi = _mm256_set1_epi32(int(hi));
      const __m256 in0 = _mm256_castsi256_ps(
          _mm256_andnot_si256(_mm256_cmpgt_epi32(vlo, lane), _mm256_cmpgt_epi32(vhi, lane)));
      const __m256 in1 = _mm256_castsi256_ps(
          _mm256_andnot_si256(_mm256_cmpgt_epi32(vlo, lane8), _mm256_cmpgt_epi32(vhi, lane8)));
      const __m256 s0 = _mm256_blendv_ps(neg_inf, _mm256_loadu_ps(s), in0);
      const __m256 s1 = _mm256_blendv_ps(neg_inf, _mm256_loadu_ps(s + 8), in1);
      const float m_new = std::max(m[r], hmax(_mm256_max_ps(s0, s1)));
      corr[r] = exp1(m[r] - m_new);
      const __m256 vm = _mm256_set1_ps(m_new);
      const __m256 p0 = exp8(_mm256_sub_ps(s0, vm)), p1 = exp8(_mm256_sub_ps(s1, vm));
      _mm256_storeu_ps(s, p0);
      _mm256_storeu_ps(s + 8, p1);
      l[r] = l[r] * corr[r] + hsum(_mm256_add_ps(p0, p1));
      m[r] = m_new;
    }
    for_row_groups(rows, [&]<int kRows>(int64_t r) {
      accumulate_rows<kRows, kBits>(p, acc + r * d, bias_acc + r * groups, corr + r,
                                    scores + r * kKeyTile, tile, n);
    });
    j0 += n;
  }

  for (int64_t r = 0; r < rows; ++r) {
    float* op = p.out + (seq.q_begin + query_row(r)) * p.o_s0 + query_head(r) * p.o_s1;
    const float inv = 1.0f / l[r];
    for (int64_t c = 0; c < d; ++c)
      op[c] = (acc[r * d + c] + bias_acc[r * groups + c / p.group_size]) * inv;
  }
}

std::vector<Seq> read_sequences(const Tensor& q, const QuantizedKvPlanes& cache,
                                const AttentionMeta& meta) {
  const char* op = "paged_attention_quantized";
  const int64_t num_seqs = meta.context_lens.dim(0);
  const int64_t num_blocks = cache.num_blocks(), bs = cache.block_size();
  const int64_t max_blocks = meta.block_tables.dim(1);
  const int32_t* qs = meta.query_start.data<int32_t>();
  const int32_t* cl = meta.context_lens.data<int32_t>();
  const int32_t* bt = meta.block_tables.data<int32_t>();
  const int64_t qss = meta.query_start.stride(0), cls = meta.context_lens.stride(0);
  const int64_t bts = meta.block_tables.stride(0);
  if (qs[0] != 0 || qs[num_seqs * qss] != q.dim(0))
    fail(ErrorCode::invalid_argument,
         "{}: query_start must run from 0 to the {} query rows, got {} to {}", op, q.dim(0), qs[0],
         qs[num_seqs * qss]);
  std::vector<Seq> seqs(static_cast<size_t>(num_seqs));
  for (int64_t s = 0; s < num_seqs; ++s) {
    Seq& seq = seqs[size_t(s)];
    seq.q_begin = qs[s * qss];
    seq.q_len = qs[(s + 1) * qss] - seq.q_begin;
    seq.context = cl[s * cls];
    seq.blocks = bt + s * bts;
    if (seq.q_len < 0 || seq.q_len > seq.context)
      fail(ErrorCode::invalid_argument,
           "{}: sequence {} has {} query rows but a context of {} tokens", op, s, seq.q_len,
           seq.context);
    const int64_t needed = (seq.context + bs - 1) / bs;
    if (needed > max_blocks)
      fail(ErrorCode::invalid_argument,
           "{}: sequence {} has {} tokens, more than its {} blocks of {} hold", op, s, seq.context,
           max_blocks, bs);
    for (int64_t b = 0; b < needed; ++b)
      if (seq.blocks[b] < 0 || seq.blocks[b] >= num_blocks)
        fail(ErrorCode::invalid_argument,
             "{}: block table of sequence {} names block {} (the cache has {})", op, s,
             seq.blocks[b], num_blocks);
  }
  return seqs;
}

}  // namespace

void write_kv_quantized(const Tensor& k, const Tensor& v, const Tensor& slots,
                        QuantizedKvPlanes& cache) {
  const int64_t capacity = cache.num_blocks() * cache.block_size();
  const int32_t* sp = slots.data<int32_t>();
  const int64_t ss = slots.stride(0);
  for (int64_t t = 0; t < slots.dim(0); ++t)
    if (sp[t * ss] >= capacity)
      fail(ErrorCode::invalid_argument,
           "write_kv_quantized: slot {} of token {} is past the cache ({} slots)", sp[t * ss], t,
           capacity);
  if (k.dim(0) == 0) return;
  const DType dtype = cache.k_scales.dtype();
  for (int kv = 0; kv < 2; ++kv) {
    const Tensor& src = kv == 0 ? k : v;
    // MLX quantizes the keys in the dtype the cache holds them in.
    Tensor rounded = src;
    if (src.dtype() != dtype || !src.is_contiguous()) {
      rounded = Tensor::empty(src.shape(), dtype);
      copy(src, rounded);
    }
    if (kv == 0)
      quantize_and_scatter(rounded, sp, ss, cache.k_packed, cache.k_scales, cache.k_biases,
                           cache.bits, cache.group_size);
    else
      quantize_and_scatter(rounded, sp, ss, cache.v_packed, cache.v_scales, cache.v_biases,
                           cache.bits, cache.group_size);
  }
}

void paged_attention_quantized(const Tensor& q, const QuantizedKvPlanes& cache,
                               const AttentionMeta& meta, float scale, Tensor& out) {
  if (cache.head_dim() / cache.group_size > kMaxGroups)
    fail(ErrorCode::unsupported,
         "paged_attention_quantized on the CPU: {} groups of {} per head vector, at most {}",
         cache.head_dim() / cache.group_size, cache.group_size, kMaxGroups);
  std::vector<Seq> seqs = read_sequences(q, cache, meta);
  Problem p;
  p.q = q.data<float>();
  p.q_s0 = q.stride(0);
  p.q_s1 = q.stride(1);
  p.out = out.data<float>();
  p.o_s0 = out.stride(0);
  p.o_s1 = out.stride(1);
  p.k = {static_cast<const uint8_t*>(cache.k_packed.raw_data()), cache.k_scales.raw_data(),
         cache.k_biases.raw_data()};
  p.v = {static_cast<const uint8_t*>(cache.v_packed.raw_data()), cache.v_scales.raw_data(),
         cache.v_biases.raw_data()};
  p.row_bytes = cache.k_packed.dim(3) * 4;
  p.groups = cache.k_scales.dim(3);
  p.group_size = cache.group_size;
  p.n_heads = q.dim(1);
  p.n_kv = cache.kv_heads();
  p.group = p.n_heads / p.n_kv;
  p.head_dim = q.dim(2);
  p.block_size = cache.block_size();
  p.window = meta.sliding_window;
  p.scale = scale;

  std::vector<Item> items;
  for (size_t s = 0; s < seqs.size(); ++s)
    for (int64_t r0 = 0; r0 < seqs[s].q_len; r0 += kQueryTile)
      for (int64_t h = 0; h < p.n_kv; ++h)
        items.push_back({int32_t(s), int32_t(h), int32_t(r0),
                         int32_t(std::min(seqs[s].q_len, r0 + kQueryTile))});
  // Longest items first (later query tiles see more keys) so the schedule ends evenly.
  auto work = [&](const Item& it) {
    const Seq& seq = seqs[size_t(it.seq)];
    return (seq.context - seq.q_len + it.row_end) * (it.row_end - it.row_begin);
  };
  std::stable_sort(items.begin(), items.end(),
                   [&](const Item& a, const Item& b) { return work(a) > work(b); });
  dispatch_scale(cache.k_scales.dtype(), [&]<typename S>() {
    dispatch_bits(cache.bits, [&]<int kBits>() {
      ThreadPool::global().run(int64_t(items.size()), [&](int64_t i) {
        const Item& item = items[size_t(i)];
        attend<S, kBits>(p, seqs[size_t(item.seq)], item);
      });
    });
  });
}

}  // namespace hearth::ops::cpu
