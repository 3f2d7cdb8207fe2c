// The attention metadata of one forward step over a batch of caches: for one layer group and one
// model window, each sequence's block table, context and mask (ops::AttentionMeta). The decoder
// builds one per (group, window) its layers use; tests use it to drive caches directly.
#pragma once

#include <span>
#include <vector>

#include "kv/kv_cache.h"
#include "ops/attention.h"

namespace hearth::kv {

// `caches` were prepared for this step (prepare_groups); sequence s owns query rows
// [query_start[s], query_start[s + 1]) whose absolute positions are `positions` (all rows).
// Tensors are made on `device`; `query_start_on_device` is reused as meta.query_start.
ops::AttentionMeta make_attention_meta(std::span<KvCache* const> caches, int group,
                                       int model_window, const std::vector<int32_t>& query_start,
                                       const std::vector<int32_t>& positions,
                                       const Tensor& query_start_on_device, Device device);

}  // namespace hearth::kv
