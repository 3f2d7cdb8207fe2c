#include "model/decode_graph.h"

#include <algorithm>

#include "core/log.h"
#include "ops/copy.h"
#include "ops/norm.h"

namespace hearth::model {

struct DecodeGraphs::Bucket {
  int rows = 0;
  // Fixed activations (allocated once per bucket).
  DecoderStep step;
  Tensor final_rows, logits;  // [rows, H], [rows, vocab]
  // The table layout, its device buffer and staging, for one pool.
  std::weak_ptr<kv::BlockPool> pool;
  std::vector<int> layer_groups;
  kv::DecodeTableLayout layout;
  Tensor tables;  // i32 [layout.total]
  std::unique_ptr<ops::StagingBuffer> staging;
  Tensor ids;
  std::vector<ops::AttentionMeta> metas;
  std::unique_ptr<ops::DeviceGraph> graph;
  bool warm = false;            // a step ran eagerly through this layout
  bool capture_failed = false;  // this bucket stays eager
};

DecodeGraphs::DecodeGraphs(DecoderModel& model) : model_(model) {}

DecodeGraphs::~DecodeGraphs() = default;

DecodeGraphs::Bucket& DecodeGraphs::bucket(int rows) {
  std::unique_ptr<Bucket>& b = buckets_[rows];
  if (!b) {
    b = std::make_unique<Bucket>();
    b->rows = rows;
    model_.allocate_activations(rows, b->step);
    const DecoderConfig& c = model_.config_;
    b->final_rows = Tensor::empty({rows, c.hidden_size}, DType::f32, model_.device_);
    b->logits = Tensor::empty({rows, c.vocab_size}, DType::f32, model_.device_);
    b->step.inv_freq = model_.inv_freq_;
    b->step.rope_scale = model_.attention_scaling_;
  }
  return *b;
}

void DecodeGraphs::drop(Bucket& b) {
  b.graph.reset();  // waits for its last replay
  b.warm = false;
  b.pool.reset();
  b.layer_groups.clear();
  b.layout = kv::DecodeTableLayout();
  b.tables = Tensor();
  b.metas.clear();
}

void DecodeGraphs::relayout(Bucket& b, const std::shared_ptr<kv::BlockPool>& pool,
                            std::vector<int> layer_groups, kv::DecodeTableLayout l) {
  drop(b);
  b.pool = pool;
  b.layer_groups = std::move(layer_groups);
  b.layout = std::move(l);
  const kv::DecodeTableLayout& L = b.layout;
  b.tables = Tensor::empty({L.total}, DType::i32, model_.device_);
  const size_t bytes = size_t(L.total) * sizeof(int32_t);
  if (!b.staging || b.staging->size() < bytes)
    b.staging = ops::make_staging_buffer(model_.device_, bytes);
  b.ids = kv::decode_table_view(b.tables, L.ids, L.rows);
  b.step.positions = kv::decode_table_view(b.tables, L.positions, L.rows);
  b.step.slots.clear();
  for (int64_t offset : L.slots)
    b.step.slots.push_back(kv::decode_table_view(b.tables, offset, L.rows));
  b.metas.clear();
  for (int m = 0; m < int(L.metas.size()); ++m)
    b.metas.push_back(kv::decode_meta_view(L, m, b.tables));
  Bucket* self = &b;
  b.step.meta = [self](int group, int model_window) -> const ops::AttentionMeta& {
    for (size_t m = 0; m < self->layout.metas.size(); ++m)
      if (self->layout.metas[m].group == group &&
          self->layout.metas[m].model_window == model_window)
        return self->metas[m];
    fail(ErrorCode::internal, "decode graph: no attention tables for group {} window {}", group,
         model_window);
  };
}

// The step as ops on the bucket's fixed tensors; the same calls run eagerly or under capture.
void DecodeGraphs::record(Bucket& b, const kv::KvCache& first_cache) {
  const DecoderModel& m = model_;
  m.embed_tokens.gather(b.ids, b.step.x);
  m.run_layers(b.step, first_cache);
  // As the eager forward: the rows are copied out, normalized in place, projected.
  ops::copy(b.step.x, b.final_rows);
  ops::rms_norm(b.final_rows, m.final_norm, float(m.config_.rms_norm_eps), b.final_rows);
  m.lm_head.apply(b.final_rows, b.logits);
}

Tensor DecodeGraphs::forward(std::span<const SequenceInput> batch) {
  const int64_t S = int64_t(batch.size());
  int rows = 1;
  while (rows < S) rows *= 2;
  const kv::KvCache& first_cache = *batch[0].cache;
  const int G = first_cache.num_groups();
  const std::shared_ptr<kv::BlockPool>& pool = first_cache.shared_pool();

  // Steps captured for a pool that is gone are released with it.
  for (auto& [n, other] : buckets_)
    if (other->pool.expired()) drop(*other);

  std::vector<kv::KvCache*> caches;
  std::vector<int32_t> ids;
  std::vector<std::vector<int32_t>> slots(static_cast<size_t>(G));
  for (const SequenceInput& in : batch) {
    caches.push_back(in.cache);
    ids.push_back(in.tokens[0]);
    std::vector<std::vector<int32_t>> s = in.cache->prepare_groups(1);
    for (int g = 0; g < G; ++g) slots[size_t(g)].push_back(s[size_t(g)][0]);
  }

  // The attention kinds this step needs, in layer order, and the block-table width.
  std::vector<kv::DecodeMetaKey> keys;
  std::vector<int> layer_groups;
  for (int l = 0; l < int(model_.layers_.size()); ++l) {
    const int g = first_cache.group_of(l), window = model_.layers_[size_t(l)].sliding_window;
    layer_groups.push_back(g);
    bool seen = false;
    for (const kv::DecodeMetaKey& k : keys) seen |= k.group == g && k.model_window == window;
    if (!seen) keys.push_back(kv::decode_meta_key(caches, g, window));
  }
  // Each meta's table width: the eager rule (kv::table_capacity), kept while the tables fit so
  // that a shrinking context (a restored snapshot) does not capture again.
  Bucket& b = bucket(rows);
  const bool same_pool = b.pool.lock() == pool;
  const bool same_kinds = same_pool && b.layer_groups == layer_groups && b.layout.metas == keys;
  std::vector<int64_t> capacities;
  bool fits = same_kinds;
  for (size_t m = 0; m < keys.size(); ++m) {
    const int64_t needed = kv::blocks_needed(caches, keys[m].group);
    const int64_t kept = same_kinds ? b.layout.meta_tables[m].capacity : 0;
    fits &= kept >= needed;
    capacities.push_back(
        kept >= needed ? kept
                       : kv::table_capacity(needed, pool->layout().block_size, pool->max_blocks()));
  }
  if (!fits)
    relayout(b, pool, std::move(layer_groups),
             kv::plan_decode_tables(rows, pool->layout().block_size, G, keys, capacities));

  // The one upload of the step's tables, queued before the step's kernels.
  auto* staged = static_cast<int32_t*>(b.staging->acquire());
  kv::pack_decode_tables(b.layout, caches, ids, slots, staged);
  b.staging->upload(size_t(b.layout.total) * sizeof(int32_t), b.tables);
  copy_device_tokens(batch, b.ids);

  if (b.graph) {
    b.graph->launch();
    ++replays_;
  } else if (b.warm && !b.capture_failed) {
    try {
      b.graph = ops::capture_graph(model_.device_, [&] { record(b, first_cache); });
      ++captures_;
    } catch (const Error& e) {
      b.capture_failed = true;
      log::warn("decode graph: capturing the step of batch bucket {} failed, it runs eagerly: {}",
                rows, e.what());
    }
    if (b.graph) {
      b.graph->launch();
      ++replays_;
    } else {
      record(b, first_cache);
    }
  } else {
    record(b, first_cache);
    b.warm = true;
  }

  for (const SequenceInput& in : batch) in.cache->commit(1);
  // A fresh tensor: the bucket's logits are overwritten by the next step.
  Tensor logits = Tensor::empty({S, model_.config_.vocab_size}, DType::f32, model_.device_);
  ops::copy(b.logits.slice(0, 0, S), logits);
  return logits;
}

}  // namespace hearth::model
