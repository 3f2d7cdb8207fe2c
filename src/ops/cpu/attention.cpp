// CPU write_kv and paged_attention.
//
// Attention is flash-style: each work item owns one (sequence, kv head, tile of query rows) and
// streams the keys/values of its visible range block by block through the block table, keeping a
// running max, sum and weighted value accumulator per query row (online softmax), so no score
// matrix is ever materialized. All query heads of a GQA group are processed together so every K/V
// row is read (and widened from f16/bf16) once per group. Decode (one query row) items are
// (sequence, kv head); for long contexts with few such items the keys are also split across
// threads and the partial results merged.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/thread_pool.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/simd.h"

namespace hearth::ops::cpu {
namespace {

// ---- write_kv -----------------------------------------------------------------------------------

template <typename S, typename D>
void convert_row(const S* s, D* d, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store8(d + i, load8(s + i));
  if (i < n) store_partial(d + i, load_partial(s + i, int(n - i)), int(n - i));
}

template <typename S, typename D>
void write_kv_typed(const Tensor& k, const Tensor& v, const int32_t* slots, int64_t slot_stride,
                    Tensor& k_cache, Tensor& v_cache) {
  const int64_t tokens = k.dim(0), heads = k.dim(1), dim = k.dim(2);
  const int64_t block_size = k_cache.dim(2);
  const S* kb = k.data<S>();
  const S* vb = v.data<S>();
  D* kc = k_cache.data<D>();
  D* vc = v_cache.data<D>();
  for (int64_t t = 0; t < tokens; ++t) {
    int64_t slot = slots[t * slot_stride];
    if (slot < 0) continue;
    int64_t block = slot / block_size, row = slot % block_size;
    for (int64_t h = 0; h < heads; ++h) {
      int64_t dst = ((block * heads + h) * block_size + row) * dim;
      convert_row(kb + t * k.stride(0) + h * k.stride(1), kc + dst, dim);
      convert_row(vb + t * v.stride(0) + h * v.stride(1), vc + dst, dim);
    }
  }
}

template <typename S>
void write_kv_src(const Tensor& k, const Tensor& v, const int32_t* slots, int64_t ss, Tensor& kc,
                  Tensor& vc) {
  switch (kc.dtype()) {
    case DType::f32:
      return write_kv_typed<S, float>(k, v, slots, ss, kc, vc);
    case DType::f16:
      return write_kv_typed<S, F16>(k, v, slots, ss, kc, vc);
    case DType::bf16:
      return write_kv_typed<S, BF16>(k, v, slots, ss, kc, vc);
    default:
      HEARTH_CHECK(false, "write_kv cache {}", kc.describe());
  }
}

// ---- paged_attention ----------------------------------------------------------------------------

// Query rows per prefill work item (times the GQA group size). Small enough that long prompts
// give many items for the threads, large enough that each K/V block read serves many rows.
constexpr int64_t kQueryTile = 16;

struct Seq {
  int64_t q_begin = 0;  // first row in q/out
  int64_t q_len = 0;
  int64_t context = 0;
  const int32_t* blocks = nullptr;
};

struct Item {
  int32_t seq, kv_head;
  int32_t row_begin, row_end;  // query rows within the sequence
};

struct Problem {
  const float* q;
  int64_t q_s0, q_s1;
  float* out;
  int64_t o_s0, o_s1;
  const void* k_cache;
  const void* v_cache;
  int64_t n_heads, n_kv, group, head_dim, block_size;
  int64_t window;
  float scale;
};

template <typename T>
void attend(const Problem& p, const Seq& seq, const Item& item) {
  const int64_t d = p.head_dim, bs = p.block_size;
  const int64_t rows = (item.row_end - item.row_begin) * p.group;
  // Row r of the item: query row item.row_begin + r / group, head kv_head * group + r % group.
  std::vector<float> qs(static_cast<size_t>(rows * d)), acc(static_cast<size_t>(rows * d), 0.0f);
  std::vector<float> m(static_cast<size_t>(rows), -std::numeric_limits<float>::infinity());
  std::vector<float> l(static_cast<size_t>(rows), 0.0f);
  std::vector<int64_t> pos(static_cast<size_t>(rows)), first(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    int64_t i = item.row_begin + r / p.group;
    int64_t h = item.kv_head * p.group + r % p.group;
    const float* qp = p.q + (seq.q_begin + i) * p.q_s0 + h * p.q_s1;
    for (int64_t c = 0; c < d; ++c) qs[size_t(r * d + c)] = qp[c] * p.scale;
    pos[size_t(r)] = seq.context - seq.q_len + i;
    first[size_t(r)] = p.window > 0 ? std::max<int64_t>(0, pos[size_t(r)] - p.window + 1) : 0;
  }
  const int64_t key_begin = first[0];
  const int64_t key_end = pos[size_t(rows - 1)] + 1;
  std::vector<float> kbuf(static_cast<size_t>(bs * d)), vbuf(static_cast<size_t>(bs * d));
  std::vector<float> scores(static_cast<size_t>(bs));
  const T* kc = static_cast<const T*>(p.k_cache);
  const T* vc = static_cast<const T*>(p.v_cache);
  for (int64_t j0 = key_begin - key_begin % bs; j0 < key_end; j0 += bs) {
    int64_t block = seq.blocks[j0 / bs];
    int64_t lo = std::max(j0, key_begin), hi = std::min(j0 + bs, key_end);
    const T* kblock = kc + (block * p.n_kv + item.kv_head) * bs * d;
    const T* vblock = vc + (block * p.n_kv + item.kv_head) * bs * d;
    for (int64_t j = lo; j < hi; ++j) {
      convert_row(kblock + (j - j0) * d, kbuf.data() + (j - j0) * d, d);
      convert_row(vblock + (j - j0) * d, vbuf.data() + (j - j0) * d, d);
    }
    for (int64_t r = 0; r < rows; ++r) {
      int64_t a = std::max(lo, first[size_t(r)]), b = std::min(hi, pos[size_t(r)] + 1);
      if (a >= b) continue;
      const float* qr = qs.data() + r * d;
      float block_max = -std::numeric_limits<float>::infinity();
      for (int64_t j = a; j < b; ++j) {
        const float* kr = kbuf.data() + (j - j0) * d;
        __m256 s = _mm256_setzero_ps();
        int64_t c = 0;
        for (; c + kLanes <= d; c += kLanes)
          s = _mm256_fmadd_ps(_mm256_loadu_ps(qr + c), _mm256_loadu_ps(kr + c), s);
        if (c < d)
          s = _mm256_fmadd_ps(load_partial(qr + c, int(d - c)), load_partial(kr + c, int(d - c)),
                              s);
        float sc = hsum(s);
        scores[size_t(j - a)] = sc;
        block_max = std::max(block_max, sc);
      }
      float m_new = std::max(m[size_t(r)], block_max);
      float correction = exp1(m[size_t(r)] - m_new);
      float* ar = acc.data() + r * d;
      float sum = 0.0f;
      for (int64_t j = a; j < b; ++j)
        sum += (scores[size_t(j - a)] = exp1(scores[size_t(j - a)] - m_new));
      l[size_t(r)] = l[size_t(r)] * correction + sum;
      m[size_t(r)] = m_new;
      __m256 vcorr = _mm256_set1_ps(correction);
      int64_t c = 0;
      for (; c + kLanes <= d; c += kLanes) {
        __m256 av = _mm256_mul_ps(_mm256_loadu_ps(ar + c), vcorr);
        for (int64_t j = a; j < b; ++j)
          av = _mm256_fmadd_ps(_mm256_set1_ps(scores[size_t(j - a)]),
                               _mm256_loadu_ps(vbuf.data() + (j - j0) * d + c), av);
        _mm256_storeu_ps(ar + c, av);
      }
      for (; c < d; ++c) {
        float av = ar[c] * correction;
        for (int64_t j = a; j < b; ++j)
          av += scores[size_t(j - a)] * vbuf[size_t((j - j0) * d + c)];
        ar[c] = av;
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    int64_t i = item.row_begin + r / p.group;
    int64_t h = item.kv_head * p.group + r % p.group;
    float* op = p.out + (seq.q_begin + i) * p.o_s0 + h * p.o_s1;
    float inv = 1.0f / l[size_t(r)];
    for (int64_t c = 0; c < d; ++c) op[c] = acc[size_t(r * d + c)] * inv;
  }
}

std::vector<Seq> read_sequences(const Tensor& q, const Tensor& k_cache, const AttentionMeta& meta) {
  const int64_t num_seqs = meta.context_lens.dim(0);
  const int64_t num_blocks = k_cache.dim(0), bs = k_cache.dim(2);
  const int64_t max_blocks = meta.block_tables.dim(1);
  const int32_t* qs = meta.query_start.data<int32_t>();
  const int32_t* cl = meta.context_lens.data<int32_t>();
  const int32_t* bt = meta.block_tables.data<int32_t>();
  const int64_t qss = meta.query_start.stride(0), cls = meta.context_lens.stride(0);
  const int64_t bts = meta.block_tables.stride(0);
  if (qs[0] != 0 || qs[num_seqs * qss] != q.dim(0))
    fail(ErrorCode::invalid_argument,
         "paged_attention: query_start must run from 0 to the {} query rows, got {} to {}",
         q.dim(0), qs[0], qs[num_seqs * qss]);
  std::vector<Seq> seqs(static_cast<size_t>(num_seqs));
  for (int64_t s = 0; s < num_seqs; ++s) {
    Seq& seq = seqs[size_t(s)];
    seq.q_begin = qs[s * qss];
    seq.q_len = qs[(s + 1) * qss] - seq.q_begin;
    seq.context = cl[s * cls];
    seq.blocks = bt + s * bts;
    if (seq.q_len < 0 || seq.q_len > seq.context)
      fail(ErrorCode::invalid_argument,
           "paged_attention: sequence {} has {} query rows but a context of {} tokens", s,
           seq.q_len, seq.context);
    int64_t needed = (seq.context + bs - 1) / bs;
    if (needed > max_blocks)
      fail(ErrorCode::invalid_argument,
           "paged_attention: sequence {} has {} tokens, more than its {} blocks of {} hold", s,
           seq.context, max_blocks, bs);
    for (int64_t b = 0; b < needed; ++b)
      if (seq.blocks[b] < 0 || seq.blocks[b] >= num_blocks)
        fail(ErrorCode::invalid_argument,
             "paged_attention: block table of sequence {} names block {} (the cache has {})", s,
             seq.blocks[b], num_blocks);
  }
  return seqs;
}

template <typename T>
void paged_attention_typed(const Problem& p, const std::vector<Seq>& seqs) {
  std::vector<Item> items;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const int64_t tile = seqs[s].q_len == 1 ? 1 : kQueryTile;
    for (int64_t r0 = 0; r0 < seqs[s].q_len; r0 += tile)
      for (int64_t h = 0; h < p.n_kv; ++h)
        items.push_back(
            {int32_t(s), int32_t(h), int32_t(r0), int32_t(std::min(seqs[s].q_len, r0 + tile))});
  }
  ThreadPool::global().run(int64_t(items.size()), [&](int64_t i) {
    const Item& item = items[size_t(i)];
    attend<T>(p, seqs[size_t(item.seq)], item);
  });
}

}  // namespace

void write_kv(const Tensor& k, const Tensor& v, const Tensor& slots, Tensor& k_cache,
              Tensor& v_cache) {
  const int64_t capacity = k_cache.dim(0) * k_cache.dim(2);
  const int32_t* sp = slots.data<int32_t>();
  const int64_t ss = slots.stride(0);
  for (int64_t t = 0; t < slots.dim(0); ++t)
    if (sp[t * ss] >= capacity)
      fail(ErrorCode::invalid_argument,
           "write_kv: slot {} of token {} is past the cache ({} slots)", sp[t * ss], t, capacity);
  switch (k.dtype()) {
    case DType::f32:
      return write_kv_src<float>(k, v, sp, ss, k_cache, v_cache);
    case DType::f16:
      return write_kv_src<F16>(k, v, sp, ss, k_cache, v_cache);
    case DType::bf16:
      return write_kv_src<BF16>(k, v, sp, ss, k_cache, v_cache);
    default:
      HEARTH_CHECK(false, "write_kv k {}", k.describe());
  }
}

void paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                     const AttentionMeta& meta, float scale, Tensor& out) {
  std::vector<Seq> seqs = read_sequences(q, k_cache, meta);
  Problem p;
  p.q = q.data<float>();
  p.q_s0 = q.stride(0);
  p.q_s1 = q.stride(1);
  p.out = out.data<float>();
  p.o_s0 = out.stride(0);
  p.o_s1 = out.stride(1);
  p.k_cache = k_cache.raw_data();
  p.v_cache = v_cache.raw_data();
  p.n_heads = q.dim(1);
  p.n_kv = k_cache.dim(1);
  p.group = p.n_heads / p.n_kv;
  p.head_dim = q.dim(2);
  p.block_size = k_cache.dim(2);
  p.window = meta.sliding_window;
  p.scale = scale;
  switch (k_cache.dtype()) {
    case DType::f32:
      return paged_attention_typed<float>(p, seqs);
    case DType::f16:
      return paged_attention_typed<F16>(p, seqs);
    case DType::bf16:
      return paged_attention_typed<BF16>(p, seqs);
    default:
      HEARTH_CHECK(false, "paged_attention cache {}", k_cache.describe());
  }
}

}  // namespace hearth::ops::cpu
