// CPU write_kv_quantized and paged_attention_quantized.
//
// Quantize-on-write runs the MLX quantizer of quantize.cpp (GPU variant) over the new tokens' head
// vectors and scatters the rows into their slots.
//
// Attention is flash-style like attention.cpp: each work item (sequence, kv head, tile of up to
// kQueryTile query rows, all query heads of the GQA group) streams the visible keys tile by tile
// (up to 16 keys, never crossing a cache block) with an online softmax. The dequantization is
// fused: a tile's key and value rows are decoded from their codes, scales and biases into an L1
// scratch of 16 rows right before they are used, then scored and accumulated with the dense
// kernels of attention_kernels.h; nothing dequantized ever reaches memory beyond that tile. Each
// packed row is read once per item (once per GQA group). Decoded values are scale * code + bias
// with two f32 roundings, exactly what affine_dequantize into f32 gives, so the result differs
// from dequantize-then-attend only by the order of the f32 sums (this file is built with
// -ffp-contract=off).
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

// Decodes cache row `row` (block * n_kv + head) * block_size + r of a plane into d floats.
template <typename S, int kBits>
inline void decode_row(const Problem& p, const PlaneView& plane, int64_t row, float* dst) {
  const uint8_t* codes = plane.packed + row * p.row_bytes;
  const S* scales = static_cast<const S*>(plane.scales) + row * p.groups;
  const S* biases = static_cast<const S*>(plane.biases) + row * p.groups;
  const int64_t chunks_per_group = p.group_size / kLanes;
  for (int64_t g = 0; g < p.groups; ++g) {
    const __m256 s = _mm256_set1_ps(scalar_f32(scales, g));
    const __m256 b = _mm256_set1_ps(scalar_f32(biases, g));
    for (int64_t c = g * chunks_per_group; c < (g + 1) * chunks_per_group; ++c)
      _mm256_storeu_ps(dst + c * kLanes,
                       _mm256_add_ps(_mm256_mul_ps(unpack8_f32<kBits>(codes, c), s), b));
  }
}

// Rows of an item are ordered (query row, head within the group).
template <typename S, int kBits>
void attend(const Problem& p, const Seq& seq, const Item& item) {
  const int64_t d = p.head_dim, bs = p.block_size;
  const int64_t rows = (item.row_end - item.row_begin) * p.group;
  std::vector<float> buf(
      static_cast<size_t>(2 * rows * d + 2 * d * kKeyTile + rows * kKeyTile + 3 * rows));
  float* qs = buf.data();
  float* acc = qs + rows * d;
  float* kt = acc + rows * d;
  float* vt = kt + d * kKeyTile;
  float* scores = vt + d * kKeyTile;
  float* m = scores + rows * kKeyTile;
  float* l = m + rows;
  float* corr = l + rows;
  std::vector<int64_t> pos(static_cast<size_t>(rows)), first(static_cast<size_t>(rows));
  auto query_row = [&](int64_t r) { return item.row_begin + r / p.group; };
  auto query_head = [&](int64_t r) { return item.kv_head * p.group + r % p.group; };
  for (int64_t r = 0; r < rows; ++r) {
    const float* qp = p.q + (seq.q_begin + query_row(r)) * p.q_s0 + query_head(r) * p.q_s1;
    for (int64_t c = 0; c < d; ++c) qs[r * d + c] = qp[c] * p.scale;
    pos[size_t(r)] = seq.context - seq.q_len + query_row(r);
    first[size_t(r)] = p.window > 0 ? std::max<int64_t>(0, pos[size_t(r)] - p.window + 1) : 0;
    m[r] = -std::numeric_limits<float>::infinity();
    l[r] = 0.0f;
  }
  std::fill(acc, acc + rows * d, 0.0f);
  const int64_t key_begin = first[0], key_end = pos[size_t(rows - 1)] + 1;
  const float* krows[kKeyTile];
  const float* vrows[kKeyTile];
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i lane8 = _mm256_add_epi32(lane, _mm256_set1_epi32(8));
  const __m256 neg_inf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());

  for (int64_t j0 = key_begin; j0 < key_end;) {
    const int64_t n = std::min({kKeyTile, key_end - j0, (j0 / bs + 1) * bs - j0});
    const int64_t row0 = (int64_t(seq.blocks[j0 / bs]) * p.n_kv + item.kv_head) * bs + j0 % bs;
    for (int64_t j = 0; j < n; ++j) {
      decode_row<S, kBits>(p, p.k, row0 + j, kt + j * d);
      decode_row<S, kBits>(p, p.v, row0 + j, vt + j * d);
    }
    for (int64_t j = 0; j < kKeyTile; ++j) {
      krows[j] = kt + std::min(j, n - 1) * d;
      vrows[j] = vt + std::min(j, n - 1) * d;
    }
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4)
      attention::score_rows_direct<4>(qs + r * d, d, krows, n, scores + r * kKeyTile);
    for (; r + 2 <= rows; r += 2)
      attention::score_rows_direct<2>(qs + r * d, d, krows, n, scores + r * kKeyTile);
    if (r < rows) attention::score_rows_direct<1>(qs + r * d, d, krows, n, scores + r * kKeyTile);

    // Online softmax per row; the probabilities replace the scores.
    for (r = 0; r < rows; ++r) {
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
    attention::accumulate_all_rows(acc, rows, d, corr, scores, vrows, n);
    j0 += n;
  }

  for (int64_t r = 0; r < rows; ++r) {
    float* op = p.out + (seq.q_begin + query_row(r)) * p.o_s0 + query_head(r) * p.o_s1;
    const float inv = 1.0f / l[r];
    for (int64_t c = 0; c < d; ++c) op[c] = acc[r * d + c] * inv;
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
