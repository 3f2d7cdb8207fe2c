// Reference write_kv and paged_attention: for every query row and head, the full list of visible
// keys read through the block table, softmax(scale * q.k) in double, the weighted sum of values.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/reference/reference.h"

namespace hearth::ops::reference {

void write_kv(const Tensor& k, const Tensor& v, const Tensor& slots, Tensor& k_cache,
              Tensor& v_cache) {
  int64_t num_blocks = k_cache.dim(0), block_size = k_cache.dim(2);
  for (int64_t t = 0; t < k.dim(0); ++t) {
    int64_t slot = get_int(slots, {t});
    if (slot < 0) continue;  // padding token
    if (slot >= num_blocks * block_size)
      fail(ErrorCode::invalid_argument,
           "write_kv: slot {} of token {} is past the cache ({} slots)", slot, t,
           num_blocks * block_size);
    int64_t block = slot / block_size, row = slot % block_size;
    for (int64_t h = 0; h < k.dim(1); ++h) {
      for (int64_t d = 0; d < k.dim(2); ++d) {
        set(k_cache, {block, h, row, d}, get(k, {t, h, d}));
        set(v_cache, {block, h, row, d}, get(v, {t, h, d}));
      }
    }
  }
}

void paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                     const AttentionMeta& meta, float scale, Tensor& out) {
  int64_t tokens = q.dim(0), n_heads = q.dim(1), head_dim = q.dim(2);
  int64_t n_kv = k_cache.dim(1), block_size = k_cache.dim(2);
  int64_t group = n_heads / n_kv;
  int64_t num_seqs = meta.context_lens.dim(0);
  int64_t window = meta.sliding_window;
  if (get_int(meta.query_start, {0}) != 0 || get_int(meta.query_start, {num_seqs}) != tokens)
    fail(ErrorCode::invalid_argument, "paged_attention: query_start must run from 0 to {}", tokens);
  for (int64_t s = 0; s < num_seqs; ++s) {
    int64_t q_begin = get_int(meta.query_start, {s});
    int64_t q_end = get_int(meta.query_start, {s + 1});
    int64_t context = get_int(meta.context_lens, {s});
    int64_t q_len = q_end - q_begin;
    if (q_len < 0 || q_len > context)
      fail(ErrorCode::invalid_argument,
           "paged_attention: sequence {} has {} queries and {} context tokens", s, q_len, context);
    const bool by_position = meta.key_positions.defined();
    if (by_position && context > meta.key_positions.dim(1))
      fail(ErrorCode::invalid_argument,
           "paged_attention: sequence {} has {} slots but meta.key_positions only {}", s, context,
           meta.key_positions.dim(1));
    for (int64_t i = 0; i < q_len; ++i) {
      int64_t t = q_begin + i;
      int64_t pos = context - q_len + i;
      // Slot order: slots [first, pos]. By position: every slot whose token the query may see.
      auto visible = [&](int64_t j) {
        if (!by_position) {
          int64_t first = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
          return j >= first && j <= pos;
        }
        int64_t kpos = get_int(meta.key_positions, {s, j});
        int64_t qpos = get_int(meta.query_positions, {t});
        return kpos >= 0 && kpos <= qpos && (window == 0 || qpos - kpos < window);
      };
      for (int64_t h = 0; h < n_heads; ++h) {
        int64_t kvh = h / group;
        std::vector<double> scores;
        std::vector<std::pair<int64_t, int64_t>> where;  // (block, row) of each visible key
        for (int64_t j = 0; j < context; ++j) {
          if (!visible(j)) continue;
          int64_t block = get_int(meta.block_tables, {s, j / block_size});
          int64_t row = j % block_size;
          double dot = 0.0;
          for (int64_t d = 0; d < head_dim; ++d)
            dot += get(q, {t, h, d}) * get(k_cache, {block, kvh, row, d});
          scores.push_back(double(scale) * dot);
          where.emplace_back(block, row);
        }
        if (scores.empty())
          fail(ErrorCode::invalid_argument, "paged_attention: query {} of sequence {} sees no key",
               i, s);
        double mx = *std::max_element(scores.begin(), scores.end());
        double z = 0.0;
        for (double& sc : scores) z += (sc = std::exp(sc - mx));
        for (int64_t d = 0; d < head_dim; ++d) {
          double acc = 0.0;
          for (size_t j = 0; j < scores.size(); ++j)
            acc += scores[j] * get(v_cache, {where[j].first, kvh, where[j].second, d});
          set(out, {t, h, d}, acc / z);
        }
      }
    }
  }
}

}  // namespace hearth::ops::reference
