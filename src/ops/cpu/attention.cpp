// CPU write_kv and paged_attention.
//
// Attention is flash-style: each work item streams the keys and values of its visible range tile
// by tile (up to 16 keys, never crossing a cache block) through the block table, keeping a running
// max, sum and weighted value accumulator per query row (online softmax); no score matrix is
// materialized. Work items:
//   - decode (one query row per sequence): one item per sequence covering all its kv heads, so a
//     tile reads one contiguous [n_kv, rows, head_dim] run of each block (long runs let the
//     hardware prefetchers help; per-head items read 2 KiB pieces 16 KiB apart and stall on
//     DRAM latency). With few sequences, the kv heads are cut into one range per thread and long
//     contexts also split their keys; split results are merged.
//   - prefill: one item per (sequence, kv head, tile of query rows); all query heads of a GQA
//     group share the item so every K/V row is widened once per group.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "core/thread_pool.h"
#include "ops/cpu/attention_kernels.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/simd.h"

namespace hearth::ops::cpu {
namespace {

using attention::kKeyTile;

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

// ---- paged_attention: scheduling constants ------------------------------------------------------

// Query rows per prefill work item (times the GQA group size). Small enough that long prompts
// give many items for the threads, large enough that each K/V tile serves many rows.
constexpr int64_t kQueryTile = 16;
// Rows per kv head up to which the decode-shaped ("direct") kernels are used.
constexpr int64_t kDirectMaxRows = 8;
// Decode splits the keys of a sequence across threads when there are fewer than
// kMinItemsPerThread decode items per thread, in chunks of at least kMinKeysPerSplit keys (tuned
// on the 2-core Zen 4 dev VM: below ~256 keys the merge costs more than the parallelism gains).
// HEARTH_CPU_ATTENTION_NO_SPLIT=1 turns splitting off.
constexpr int64_t kMinItemsPerThread = 4;
constexpr int64_t kMinKeysPerSplit = 256;
// Software prefetch distance in key tiles, and to L2 rather than L1 (more misses in flight). One
// tile ahead leaves a decode head only ~200 ns, about DRAM latency; two measured best on the Zen 4
// dev VM (single thread, 16 layers of 4K-token bf16 caches, GQA group 4: 47 -> 38 ns per key
// and kv head; without prefetching 57).
constexpr int kPrefetchTiles = 2;
// Bytes between software prefetches: every line. Every other line (leaving the pair's other half
// to the L2's adjacent-line prefetcher) is cheaper while the cache sits in L3 (22.6 -> 19.8 ns per
// key and kv head) but slower from DRAM, the case that matters (34.9 -> 39.2 ns, GQA 4).
constexpr int64_t kPrefetchStride = 64;

struct Seq {
  int64_t q_begin = 0;  // first row in q/out
  int64_t q_len = 0;
  int64_t context = 0;
  const int32_t* blocks = nullptr;
  const int32_t* key_pos = nullptr;  // position of each slot (AttentionMeta::key_positions) or null
};

struct Item {
  int32_t seq;
  int32_t kv_begin, kv_end;              // kv heads covered
  int32_t row_begin, row_end;            // query rows within the sequence
  int64_t key_begin = -1, key_end = -1;  // this split's keys; -1: every visible key
  int64_t partial = -1;                  // where a split leaves its partial result; -1: none
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
  const int32_t* query_pos = nullptr;  // AttentionMeta::query_positions, or null: slot order
};

// Online-softmax state of one split: max, sum and unnormalized output of each row of its item.
struct Partial {
  std::vector<float> m, l, acc;
};

// ---- paged_attention: one work item -------------------------------------------------------------

// Rows of an item are ordered (kv head, query row, head within the group), so each kv head's rows
// are contiguous: row r <-> kv head kv_begin + r / rows_per_head, query row row_begin +
// (r % rows_per_head) / group, query head (kv head) * group + r % group.
template <typename T>
void attend(const Problem& p, const Seq& seq, const Item& item, Partial* partial) {
  const int64_t d = p.head_dim, bs = p.block_size;
  const int64_t heads = item.kv_end - item.kv_begin;
  const int64_t per_head = (item.row_end - item.row_begin) * p.group;
  const int64_t rows = heads * per_head;
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
  auto query_row = [&](int64_t r) { return item.row_begin + (r % per_head) / p.group; };
  auto query_head = [&](int64_t r) {
    return (item.kv_begin + r / per_head) * p.group + r % p.group;
  };
  for (int64_t r = 0; r < rows; ++r) {
    const float* qp = p.q + (seq.q_begin + query_row(r)) * p.q_s0 + query_head(r) * p.q_s1;
    for (int64_t c = 0; c < d; ++c) qs[r * d + c] = qp[c] * p.scale;
    if (seq.key_pos) {  // masked key by key below; pos holds the query's absolute position
      pos[size_t(r)] = p.query_pos[seq.q_begin + query_row(r)];
      first[size_t(r)] = 0;
    } else {
      pos[size_t(r)] = seq.context - seq.q_len + query_row(r);
      first[size_t(r)] = p.window > 0 ? std::max<int64_t>(0, pos[size_t(r)] - p.window + 1) : 0;
    }
    m[r] = -std::numeric_limits<float>::infinity();
    l[r] = 0.0f;
  }
  std::fill(acc, acc + rows * d, 0.0f);
  // Rows are in query order within a head, so the first and last rows bound the visible keys.
  int64_t key_begin = first[0], key_end = pos[size_t(per_head - 1)] + 1;
  if (seq.key_pos) key_begin = 0, key_end = seq.context;  // slots in any order
  if (item.key_begin >= 0) {
    key_begin = std::max(key_begin, item.key_begin);
    key_end = std::min(key_end, item.key_end);
  }
  const T* kc = static_cast<const T*>(p.k_cache);
  const T* vc = static_cast<const T*>(p.v_cache);
  const bool direct = per_head <= kDirectMaxRows;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i lane8 = _mm256_add_epi32(lane, _mm256_set1_epi32(8));
  const __m256 neg_inf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  // Start of a tile's key rows for kv head h.
  auto tile_base = [&](const T* cache, int64_t key, int64_t h) {
    return cache + ((int64_t(seq.blocks[key / bs]) * p.n_kv + h) * bs + key % bs) * d;
  };
  auto tile_size = [&](int64_t key) {
    return std::min({kKeyTile, key_end - key, (key / bs + 1) * bs - key});
  };

  for (int64_t j0 = key_begin; j0 < key_end;) {
    const int64_t n = tile_size(j0);
    // The tile kPrefetchTiles ahead (tiles never cross blocks, so this walks block by block).
    int64_t next = j0 + n;
    for (int t = 1; t < kPrefetchTiles && next < key_end; ++t) next += tile_size(next);
    const int64_t next_bytes = next < key_end ? tile_size(next) * d * int64_t(sizeof(T)) : 0;
    for (int64_t h = item.kv_begin; h < item.kv_end; ++h) {
      const int64_t r0 = (h - item.kv_begin) * per_head;
      const T* kbase = tile_base(kc, j0, h);
      const T* vbase = tile_base(vc, j0, h);
      // Blocks are scattered over the pool, so the hardware prefetchers cannot run ahead: fetch
      // this head's rows of a later tile into L2 while this one is computed.
      if (next_bytes > 0) {
        const char* kn = reinterpret_cast<const char*>(tile_base(kc, next, h));
        const char* vn = reinterpret_cast<const char*>(tile_base(vc, next, h));
        for (int64_t off = 0; off < next_bytes; off += kPrefetchStride) {
          _mm_prefetch(kn + off, _MM_HINT_T1);
          _mm_prefetch(vn + off, _MM_HINT_T1);
        }
      }
      const T* krows[kKeyTile];
      const T* vrows[kKeyTile];
      for (int64_t j = 0; j < kKeyTile; ++j) {
        krows[j] = kbase + std::min(j, n - 1) * d;
        vrows[j] = vbase + std::min(j, n - 1) * d;
      }
      float* hq = qs + r0 * d;
      float* hs = scores + r0 * kKeyTile;
      if (direct) {
        int64_t r = 0;
        for (; r + 4 <= per_head; r += 4)
          attention::score_rows_direct<4>(hq + r * d, d, krows, n, hs + r * kKeyTile);
        for (; r + 2 <= per_head; r += 2)
          attention::score_rows_direct<2>(hq + r * d, d, krows, n, hs + r * kKeyTile);
        if (r < per_head)
          attention::score_rows_direct<1>(hq + r * d, d, krows, n, hs + r * kKeyTile);
      } else {
        attention::load_keys_transposed(krows, n, d, kt);
        int64_t r = 0;
        for (; r + 4 <= per_head; r += 4)
          attention::score_rows_transposed<4>(hq + r * d, d, kt, hs + r * kKeyTile);
        for (; r < per_head; ++r)
          attention::score_rows_transposed<1>(hq + r * d, d, kt, hs + r * kKeyTile);
      }

      // Online softmax per row; the probabilities replace the scores.
      for (int64_t r = r0; r < r0 + per_head; ++r) {
        float* s = scores + r * kKeyTile;
        // Visible keys of this row within the tile: [lo, hi) relative to j0.
        int64_t lo = std::max<int64_t>(0, first[size_t(r)] - j0);
        int64_t hi = std::min<int64_t>(n, pos[size_t(r)] + 1 - j0);
        if (seq.key_pos) {  // by position: mask each key, then treat the tile as fully visible
          const int64_t qpos = pos[size_t(r)];
          int64_t seen = 0;
          for (int64_t j = 0; j < kKeyTile; ++j) {
            const int64_t kpos = j < n ? seq.key_pos[j0 + j] : -1;
            const bool vis = kpos >= 0 && kpos <= qpos && (p.window == 0 || qpos - kpos < p.window);
            if (!vis) s[j] = -std::numeric_limits<float>::infinity();
            seen += vis;
          }
          lo = 0;
          hi = seen > 0 ? kKeyTile : 0;
        }
        if (lo >= hi) {  // nothing visible: the row is left as it is
          _mm256_storeu_ps(s, _mm256_setzero_ps());
          _mm256_storeu_ps(s + 8, _mm256_setzero_ps());
          corr[r] = 1.0f;
          continue;
        }
        __m256 s0 = _mm256_loadu_ps(s), s1 = _mm256_loadu_ps(s + 8);
        if (lo != 0 || hi != kKeyTile) {  // mask keys outside [lo, hi) (decode rows rarely need it)
          const __m256i vlo = _mm256_set1_epi32(int(lo)), vhi = _mm256_set1_epi32(int(hi));
          __m256 in0 = _mm256_castsi256_ps(
              _mm256_andnot_si256(_mm256_cmpgt_epi32(vlo, lane), _mm256_cmpgt_epi32(vhi, lane)));
          __m256 in1 = _mm256_castsi256_ps(
              _mm256_andnot_si256(_mm256_cmpgt_epi32(vlo, lane8), _mm256_cmpgt_epi32(vhi, lane8)));
          s0 = _mm256_blendv_ps(neg_inf, s0, in0);
          s1 = _mm256_blendv_ps(neg_inf, s1, in1);
        }
        const float m_new = std::max(m[r], hmax(_mm256_max_ps(s0, s1)));
        corr[r] = exp1(m[r] - m_new);
        const __m256 vm = _mm256_set1_ps(m_new);
        __m256 p0 = exp8(_mm256_sub_ps(s0, vm)), p1 = exp8(_mm256_sub_ps(s1, vm));
        _mm256_storeu_ps(s, p0);
        _mm256_storeu_ps(s + 8, p1);
        l[r] = l[r] * corr[r] + hsum(_mm256_add_ps(p0, p1));
        m[r] = m_new;
      }

      float* ha = acc + r0 * d;
      if (direct) {
        attention::accumulate_all_rows(ha, per_head, d, corr + r0, hs, vrows, n);
      } else {
        for (int64_t j = 0; j < n; ++j) convert_row(vbase + j * d, vt + j * d, d);
        const float* vbuf[kKeyTile];
        for (int64_t j = 0; j < kKeyTile; ++j) vbuf[j] = vt + std::min(j, n - 1) * d;
        attention::accumulate_all_rows(ha, per_head, d, corr + r0, hs, vbuf, n);
      }
    }
    j0 += n;
  }

  if (partial) {
    partial->m.assign(m, m + rows);
    partial->l.assign(l, l + rows);
    partial->acc.assign(acc, acc + rows * d);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* op = p.out + (seq.q_begin + query_row(r)) * p.o_s0 + query_head(r) * p.o_s1;
    const __m256 inv = _mm256_set1_ps(1.0f / l[r]);
    int64_t c = 0;
    for (; c + 8 <= d; c += 8)
      _mm256_storeu_ps(op + c, _mm256_mul_ps(_mm256_loadu_ps(acc + r * d + c), inv));
    for (; c < d; ++c) op[c] = acc[r * d + c] / l[r];
  }
}

// ---- paged_attention: metadata and scheduling ---------------------------------------------------

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
    if (meta.key_positions.defined()) {
      if (seq.context > meta.key_positions.dim(1))
        fail(ErrorCode::invalid_argument,
             "paged_attention: sequence {} has {} slots but meta.key_positions only {}", s,
             seq.context, meta.key_positions.dim(1));
      seq.key_pos = meta.key_positions.data<int32_t>() + s * meta.key_positions.stride(0);
    }
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

bool splitting_enabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("HEARTH_CPU_ATTENTION_NO_SPLIT");
    return !(env && env[0] == '1');
  }();
  return enabled;
}

// A decode (sequence, kv head range) whose keys were split: where its partial results are.
struct Merge {
  int32_t seq, kv_begin, kv_end;
  int64_t first_partial, count;
};

template <typename T>
void paged_attention_typed(const Problem& p, const std::vector<Seq>& seqs) {
  const int64_t threads = ThreadPool::global().num_threads();
  int64_t decode_seqs = 0;
  for (const Seq& s : seqs) decode_seqs += s.q_len == 1;
  // Few decode sequences: split each one's kv heads into ranges (still contiguous runs of each
  // block), then its keys, until every thread has several items.
  const bool split =
      splitting_enabled() && decode_seqs > 0 && decode_seqs < kMinItemsPerThread * threads;
  const int64_t head_parts = split ? std::min<int64_t>(p.n_kv, threads) : 1;
  std::vector<Item> items;
  std::vector<Merge> merges;
  int64_t num_partials = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const Seq& seq = seqs[s];
    if (seq.q_len == 1) {
      const int64_t visible =
          p.window > 0 && !seq.key_pos ? std::min<int64_t>(p.window, seq.context) : seq.context;
      int64_t splits = 1;
      if (split) {
        const int64_t wanted = kMinItemsPerThread * threads;
        const int64_t per_part =
            (wanted + decode_seqs * head_parts - 1) / (decode_seqs * head_parts);
        splits = std::max<int64_t>(1, std::min<int64_t>(per_part, visible / kMinKeysPerSplit));
      }
      for (int64_t part = 0; part < head_parts; ++part) {
        const int32_t kv0 = int32_t(p.n_kv * part / head_parts);
        const int32_t kv1 = int32_t(p.n_kv * (part + 1) / head_parts);
        if (splits == 1) {
          items.push_back({int32_t(s), kv0, kv1, 0, 1});
          continue;
        }
        merges.push_back({int32_t(s), kv0, kv1, num_partials, splits});
        const int64_t key_begin = seq.context - visible;
        for (int64_t c = 0; c < splits; ++c)
          items.push_back({int32_t(s), kv0, kv1, 0, 1, key_begin + visible * c / splits,
                           key_begin + visible * (c + 1) / splits, num_partials++});
      }
      continue;
    }
    for (int64_t r0 = 0; r0 < seq.q_len; r0 += kQueryTile)
      for (int64_t h = 0; h < p.n_kv; ++h)
        items.push_back({int32_t(s), int32_t(h), int32_t(h + 1), int32_t(r0),
                         int32_t(std::min(seq.q_len, r0 + kQueryTile))});
  }
  // Longest items first (later query tiles see more keys) so the schedule ends evenly.
  auto work = [&](const Item& it) {
    int64_t keys = it.key_begin >= 0
                       ? it.key_end - it.key_begin
                       : seqs[size_t(it.seq)].context - seqs[size_t(it.seq)].q_len + it.row_end;
    return keys * (it.row_end - it.row_begin) * (it.kv_end - it.kv_begin);
  };
  std::stable_sort(items.begin(), items.end(),
                   [&](const Item& a, const Item& b) { return work(a) > work(b); });
  std::vector<Partial> partials(static_cast<size_t>(num_partials));
  ThreadPool::global().run(int64_t(items.size()), [&](int64_t i) {
    const Item& item = items[size_t(i)];
    attend<T>(p, seqs[size_t(item.seq)], item,
              item.partial >= 0 ? &partials[size_t(item.partial)] : nullptr);
  });
  // out = sum_c exp(m_c - M) acc_c / sum_c exp(m_c - M) l_c over the splits c of a sequence.
  for (const Merge& mg : merges) {
    const Seq& seq = seqs[size_t(mg.seq)];
    const int64_t rows = (mg.kv_end - mg.kv_begin) * p.group;  // decode rows: the query heads
    for (int64_t r = 0; r < rows; ++r) {
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t c = 0; c < mg.count; ++c)
        mx = std::max(mx, partials[size_t(mg.first_partial + c)].m[size_t(r)]);
      float* op = p.out + seq.q_begin * p.o_s0 + (mg.kv_begin * p.group + r) * p.o_s1;
      std::fill(op, op + p.head_dim, 0.0f);
      float total = 0.0f;
      for (int64_t c = 0; c < mg.count; ++c) {
        const Partial& part = partials[size_t(mg.first_partial + c)];
        if (part.l[size_t(r)] == 0.0f) continue;  // no visible key in this split
        const float w = exp1(part.m[size_t(r)] - mx);
        total += w * part.l[size_t(r)];
        const float* a = part.acc.data() + r * p.head_dim;
        for (int64_t x = 0; x < p.head_dim; ++x) op[x] += w * a[x];
      }
      for (int64_t x = 0; x < p.head_dim; ++x) op[x] /= total;
    }
  }
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
  if (meta.query_positions.defined()) {
    HEARTH_CHECK(meta.query_positions.stride(0) == 1, "query_positions must be contiguous");
    p.query_pos = meta.query_positions.data<int32_t>();
  }
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
