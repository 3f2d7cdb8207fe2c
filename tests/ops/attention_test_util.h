// Shared pieces of the paged-attention op tests (attention_test.cpp, quantized_attention_test.cpp):
// the case description (ragged batch of (context, query rows) sequences, heads, block size,
// window) and the block tables and metadata built from it. Block ids are shuffled, every table
// has one spare column that is never valid (-7), and a few blocks are left unowned so that
// reading them (their rows hold NaN) would poison the output.
#pragma once

#include <string>
#include <vector>

#include "op_test_util.h"
#include "ops/attention.h"

namespace hearth::ops::testing {

struct SeqSpec {
  int64_t context;
  int64_t q_len;
};

struct AttentionCase {
  std::vector<SeqSpec> seqs;
  int64_t n_heads, n_kv, head_dim, block_size;
  int window;
  DType dtype;  // the dense cache's dtype; for a quantized cache, its scales' and biases'
  int bits = 0, group_size = 0;  // quantized cache only
};

std::string describe(const AttentionCase& c);

// Block tables and host metadata of a case.
struct PagedTables {
  int64_t num_blocks = 0;  // blocks the cache needs (owned ones plus 3 never owned)
  int64_t max_blocks = 0;  // columns of the block table
  int64_t tokens = 0;      // query rows
  int64_t block_size = 0;
  std::vector<int32_t> table;
  AttentionMeta meta;  // host tensors; sliding_window and the max lengths set

  // The cache block and slot of token `token` of sequence `seq`.
  int32_t block_of(int64_t seq, int64_t token) const {
    return table[size_t(seq * max_blocks + token / block_size)];
  }
  int32_t slot_of(int64_t seq, int64_t token) const {
    return block_of(seq, token) * int32_t(block_size) + int32_t(token % block_size);
  }
};
PagedTables build_tables(const AttentionCase& c, Rng& rng);

// AttentionMeta positions of a wrapped rotating cache: each sequence's slots hold a shuffled run
// of positions from a random base, the queries are the newest q_len, and one older slot is empty
// (-1). The mask then follows the positions rather than the slot order.
void set_shuffled_positions(const AttentionCase& c, AttentionMeta& meta, Rng& rng);

// meta with every tensor moved to the device under test.
AttentionMeta meta_to_dev(const OpTest& t, const AttentionMeta& meta);

}  // namespace hearth::ops::testing
