#include "kv/attention_plan.h"

#include <algorithm>

#include "ops/copy.h"

namespace hearth::kv {
namespace {

Tensor to_device(const std::vector<int32_t>& values, const Dims& shape, Device device) {
  return ops::to_device(Tensor::from_vector(values, shape), device);
}

}  // namespace

ops::AttentionMeta make_attention_meta(std::span<KvCache* const> caches, int group,
                                       int model_window, const std::vector<int32_t>& query_start,
                                       const std::vector<int32_t>& positions,
                                       const Tensor& query_start_on_device, Device device) {
  const int g = group;
  const int64_t S = int64_t(caches.size());
  HEARTH_CHECK(S > 0 && int64_t(query_start.size()) == S + 1);
  const int64_t T = query_start.back();
  HEARTH_CHECK(int64_t(positions.size()) == T);
  int max_q = 0;
  for (int64_t s = 0; s < S; ++s)
    max_q = std::max(max_q, query_start[size_t(s) + 1] - query_start[size_t(s)]);
  std::vector<StepAttention> steps;
  size_t max_blocks = 0;
  int max_ctx = 0;
  bool by_position = false;
  for (const KvCache* cache : caches) {
    const LayerCache& lc = cache->group(g);
    steps.push_back(lc.step_attention(model_window));
    HEARTH_CHECK(steps.back().window == steps[0].window, "batch windows differ");
    by_position |= steps.back().use_positions;
    max_blocks = std::max(max_blocks, lc.blocks().size());
    max_ctx = std::max(max_ctx, int(steps.back().context));
  }
  std::vector<int32_t> tables(size_t(S) * max_blocks, 0), context_lens;
  for (int64_t s = 0; s < S; ++s) {
    const auto& blocks = caches[size_t(s)]->group(g).blocks();
    std::copy(blocks.begin(), blocks.end(), tables.begin() + s * int64_t(max_blocks));
    context_lens.push_back(int32_t(steps[size_t(s)].context));
  }
  ops::AttentionMeta m;
  m.query_start = query_start_on_device;
  m.context_lens = to_device(context_lens, {S}, device);
  m.block_tables = to_device(tables, {S, int64_t(max_blocks)}, device);
  m.max_query_len = max_q;
  m.max_context_len = max_ctx;
  m.sliding_window = steps[0].window;
  if (by_position) {
    // Sequences masked in slot order get their slot indices as positions (the same mask).
    std::vector<int32_t> key_pos(size_t(S) * size_t(max_ctx), -1),
        query_pos(static_cast<size_t>(T));
    for (int64_t s = 0; s < S; ++s) {
      const StepAttention& a = steps[size_t(s)];
      const auto& slot_pos = caches[size_t(s)]->group(g).slot_positions();
      const int64_t q0 = query_start[size_t(s)], qn = query_start[size_t(s) + 1] - q0;
      for (int64_t j = 0; j < a.context; ++j)
        key_pos[size_t(s * max_ctx + j)] = a.use_positions ? slot_pos[size_t(j)] : int32_t(j);
      for (int64_t i = 0; i < qn; ++i)
        query_pos[size_t(q0 + i)] =
            a.use_positions ? positions[size_t(q0 + i)] : int32_t(a.context - qn + i);
    }
    m.key_positions = to_device(key_pos, {S, int64_t(max_ctx)}, device);
    m.query_positions = to_device(query_pos, {T}, device);
  }
  return m;
}

}  // namespace hearth::kv
