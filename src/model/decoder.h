// The dense decoder shared by the Llama family (Llama, Mistral, Qwen2, Qwen3): pre-norm blocks of
// GQA attention over the paged KV cache and a SwiGLU MLP. Architectures differ only through
// DecoderConfig (biases, q/k norm, sliding windows, RoPE variant, tied embeddings).
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "io/weights.h"
#include "model/linear.h"
#include "model/model.h"
#include "ops/attention.h"

namespace hearth::model {

struct DecoderLayer {
  Tensor input_norm, post_attention_norm;
  Tensor q_norm, k_norm;  // [head_dim], Qwen3 only
  Linear q, k, v, o;
  Linear gate, up, down;
  int sliding_window = 0;
};

class DecodeGraphs;  // model/decode_graph.h

// The activations and per-step tables of one forward pass over T query rows: what the layer loop
// reads and writes. The eager forward allocates them per call; a captured decode step keeps them
// at fixed addresses (decode_graph.h).
struct DecoderStep {
  Tensor x, h, q, k, v, attn, gate, up;  // [T, ...]: x f32, the others activation_dtype()
  Tensor positions;                      // i32 [T]
  std::vector<Tensor> slots;             // per layer group, i32 [T]
  Tensor inv_freq;
  float rope_scale = 1.0f;
  // The attention metadata of a layer of (group, model window).
  std::function<const ops::AttentionMeta&(int group, int model_window)> meta;
};

// Writes each sequence's device_token (model.h) into its row of the step's i32 ids, queued
// behind the ids' upload.
void copy_device_tokens(std::span<const SequenceInput> batch, Tensor& ids);

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
  void set_cuda_graphs(bool enabled) override;
  void set_matmul_precision(ops::MatmulPrecision p) override { matmul_precision_ = p; }
  ops::MatmulPrecision matmul_precision() const override { return matmul_precision_; }
  ~DecoderModel() override;
  // Decode steps captured as CUDA graphs, and replays launched, since graphs were last enabled.
  int64_t cuda_graph_captures() const;
  int64_t cuda_graph_replays() const;

 private:
  friend class DecodeGraphs;
  // Host-side checks of a batch (caches that fit the model and each other, ids in the vocabulary).
  void check_batch(std::span<const SequenceInput> batch) const;
  bool graph_eligible(std::span<const SequenceInput> batch) const;
  Tensor forward_eager(std::span<const SequenceInput> batch);
  // The dtype of the activations between a layer's ops (all but the residual stream x, which
  // stays f32): bf16 on CUDA under MatmulPrecision::bf16 with bf16/f16/quantized weights, where
  // every product rounds its input to bf16 anyway, as PyTorch and MLX compute a bf16 model; f32
  // otherwise (the CPU kernels compute in f32; exact precision keeps the f32 golden tests exact).
  // HEARTH_ACTIVATIONS=f32 keeps f32 (to bisect, and for A/B figures).
  DType activation_dtype() const;
  // Activations x .. up of `rows` query rows on the model's device.
  void allocate_activations(int64_t rows, DecoderStep& step) const;
  // The decoder layers over step.x (embedded tokens in, final hidden states out).
  void run_layers(DecoderStep& step, const kv::KvCache& first_cache) const;

  DecoderConfig config_;
  Device device_;
  io::WeightSet weights_;        // keeps the mapped files alive
  Linear embed_tokens, lm_head;  // lm_head shares embed_tokens' weights when tied
  Tensor final_norm;
  std::vector<DecoderLayer> layers_;
  Tensor inv_freq_;  // fixed RoPE table (all rope types but dynamic)
  float attention_scaling_ = 1.0f;
  bool cuda_graphs_ = true;
  ops::MatmulPrecision matmul_precision_ = ops::MatmulPrecision::exact;
  // Last: destroyed first, since its captured steps read the weights above.
  std::unique_ptr<DecodeGraphs> graphs_;
};

}  // namespace hearth::model
