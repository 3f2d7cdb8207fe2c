// Rotary position embeddings: the frequency tables of every HF rope_type, and the rotation.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/tensor.h"

namespace hearth::ops {

enum class RopeType { standard, linear, dynamic, llama3, yarn };

// Everything HF's rope initialisation functions read, already resolved from config.json (both the
// older rope_theta + rope_scaling keys and the newer rope_parameters dict map onto this).
struct RopeParams {
  RopeType type = RopeType::standard;
  double theta = 10000.0;
  int64_t rotary_dim = 0;  // head_dim * partial_rotary_factor; must be even
  double factor = 1.0;
  int64_t max_position_embeddings = 0;
  int64_t original_max_position_embeddings = 0;  // llama3, yarn (0: max_position_embeddings)
  double low_freq_factor = 1.0;                  // llama3
  double high_freq_factor = 4.0;                 // llama3
  double beta_fast = 32.0;                       // yarn
  double beta_slow = 1.0;                        // yarn
  std::optional<double> mscale;                  // yarn
  std::optional<double> mscale_all_dim;          // yarn
  std::optional<double> attention_factor;        // yarn (overrides the mscale formula)
  bool truncate = true;                          // yarn
};

struct RopeFrequencies {
  std::vector<float> inv_freq;  // [rotary_dim / 2]
  float attention_scaling = 1.0f;
};

// The inverse frequencies HF computes (in float32, in HF's order of operations) for a forward pass
// whose largest position is seq_len - 1. Only `dynamic` depends on seq_len; like HF it scales
// against max_position_embeddings. HF keeps a dynamic table for the longest sequence seen until a
// sequence fits max_position_embeddings again: callers mirror that by passing that length.
RopeFrequencies rope_frequencies(const RopeParams& params, int64_t seq_len);

// x: f32 [T, H, D]; positions: i32 [T]; inv_freq: f32 [R/2] with R <= D. Rotates the first R
// dims of every head in HF's "rotate_half" layout (pairs (i, i + R/2)), scales cos/sin by
// attention_scaling, copies dims R..D unchanged. out may alias x.
void rope(const Tensor& x, const Tensor& positions, const Tensor& inv_freq, float attention_scaling,
          Tensor& out);

// rope of the queries and the keys of one attention layer in place, in one launch on CUDA:
// q: f32 [T, Hq, D], k: f32 [T, Hk, D] (same T and D, rows contiguous). Bit-identical to
// rope(q, ..., q) and rope(k, ..., k) on the same backend.
void rope_qk(Tensor& q, Tensor& k, const Tensor& positions, const Tensor& inv_freq,
             float attention_scaling);

// rope_qk, then write_kv(k, v, slots, k_cache, v_cache) of the rotated keys (ops/attention.h):
// the decoder's RoPE and KV-cache write as one op, which a backend may run as one launch.
// Bit-identical to the two ops on the same backend; k is rotated in place as rope_qk does.
void rope_qk_write_kv(Tensor& q, Tensor& k, const Tensor& v, const Tensor& positions,
                      const Tensor& inv_freq, float attention_scaling, const Tensor& slots,
                      Tensor& k_cache, Tensor& v_cache);

}  // namespace hearth::ops
