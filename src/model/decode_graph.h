// CUDA-graph decode (ARCHITECTURE.md decision 2, issue 4): a forward pass where every sequence
// feeds one token is captured once per batch-size bucket and replayed. What a replay needs at
// fixed addresses lives here, per (model, bucket): the activations (x .. up, the final-norm rows,
// the logits) and one device buffer of the step's tables (kv/attention_plan.h DecodeTables),
// refreshed before each replay by one host -> device copy from a pinned staging buffer.
//
// Batches are padded to the next power of two (1, 2, 4, ... kMaxRows) with rows whose slot is -1
// and whose context is empty: a bucket serves every batch size up to it, so a batch that loses a
// finished sequence keeps its graph instead of capturing one per exact size.
//
// A captured step is valid for one KV pool (its per-layer planes are baked in), one set of
// attention kinds (DecodeMetaKey) and block tables up to a capacity of blocks per meta (the
// attention grid is planned for that width; splits past a sequence's length exit early). The
// capacity follows kv::table_capacity, as the eager step's table width does, so both plan the
// same key splits; when the context outgrows it, it doubles and the step is captured again. The
// first step of a new layout runs eagerly through the fixed buffers (it leaves the caching
// allocator with blocks of every size the step allocates, so capture needs no cudaMalloc); the next
// one captures and replays. Any failure to capture leaves that bucket eager (logged once).
#pragma once

#include <map>
#include <memory>
#include <span>

#include "kv/attention_plan.h"
#include "model/decoder.h"
#include "ops/graph.h"

namespace hearth::model {

class DecodeGraphs {
 public:
  // Largest bucket. Beyond 8 rows the projections run cuBLAS GEMMs (captured with a fixed
  // workspace); larger batches run eagerly, where launch overhead matters less per token.
  static constexpr int64_t kMaxRows = 64;

  explicit DecodeGraphs(DecoderModel& model);
  ~DecodeGraphs();
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;

  // The decode step of a checked batch (DecoderModel::graph_eligible): logits [S, vocab] in a
  // fresh tensor, caches advanced by one token.
  Tensor forward(std::span<const SequenceInput> batch);

  // Counters for tests: captures made, and replays launched.
  int64_t captures() const { return captures_; }
  int64_t replays() const { return replays_; }

 private:
  struct Bucket;
  Bucket& bucket(int rows);
  // Releases the bucket's captured step and tables (its activations stay).
  void drop(Bucket& b);
  // Points the bucket at a new table layout (and pool), dropping its captured step.
  void relayout(Bucket& b, const std::shared_ptr<kv::BlockPool>& pool,
                std::vector<int> layer_groups, kv::DecodeTableLayout l);
  void record(Bucket& b, const kv::KvCache& first_cache);

  DecoderModel& model_;
  std::map<int, std::unique_ptr<Bucket>> buckets_;
  int64_t captures_ = 0, replays_ = 0;
};

}  // namespace hearth::model
