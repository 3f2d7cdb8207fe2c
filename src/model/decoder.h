// The dense decoder shared by the Llama family (Llama, Mistral, Qwen2, Qwen3): pre-norm blocks of
// GQA attention over the paged KV cache and a SwiGLU MLP. Architectures differ only through
// DecoderConfig (biases, q/k norm, sliding windows, RoPE variant, tied embeddings).
#pragma once

#include <memory>
#include <vector>

#include "io/weights.h"
#include "model/linear.h"
#include "model/model.h"

namespace hearth::model {

struct DecoderLayer {
  Tensor input_norm, post_attention_norm;
  Tensor q_norm, k_norm;  // [head_dim], Qwen3 only
  Linear q, k, v, o;
  Linear gate, up, down;
  int sliding_window = 0;
};

class DecoderModel : public Model {
 public:
  // Takes the canonical tensors out of `weights` (already sanitized), checking every shape
  // against the config; tensors left over afterwards are an error naming them.
  DecoderModel(DecoderConfig config, io::WeightSet weights, Device device);

  const DecoderConfig& config() const override { return config_; }
  Device device() const override { return device_; }
  kv::KvLayout kv_layout(int block_size) const override;
  size_t weight_bytes_per_token() const override;
  Tensor forward(std::span<const SequenceInput> batch) override;

 private:
  DecoderConfig config_;
  Device device_;
  io::WeightSet weights_;        // keeps the mapped files alive
  Linear embed_tokens, lm_head;  // lm_head shares embed_tokens' weights when tied
  Tensor final_norm;
  std::vector<DecoderLayer> layers_;
  Tensor inv_freq_;  // fixed RoPE table (all rope types but dynamic)
  float attention_scaling_ = 1.0f;
};

}  // namespace hearth::model
