// The model interface the generation engine drives, and loading a model folder.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kv/kv_cache.h"
#include "model/config.h"
#include "ops/precision.h"

namespace hearth::model {

// One sequence's share of a forward pass: its new tokens, appended to its cache.
struct SequenceInput {
  std::span<const int32_t> tokens;
  kv::KvCache* cache = nullptr;
  bool all_logits = false;  // logits for every new token (perplexity, tests), else the last only
  // Pipelined decode (gen/generate.h): the step's one token as an i32 [1] tensor on the model's
  // device, the previous step's argmax that the host has not read yet. `tokens` then holds one
  // placeholder whose value is not read.
  Tensor device_token = Tensor();
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const DecoderConfig& config() const = 0;
  virtual Device device() const = 0;
  // Shape of the KV pool this model's caches need.
  virtual kv::KvLayout kv_layout(int block_size) const = 0;
  // Weight bytes one decode step reads (every matrix and norm; the embedding table only when
  // tied to the output head): the numerator of the decode roofline.
  virtual size_t weight_bytes_per_token() const = 0;
  // Runs a ragged batch: the tokens of each sequence follow what its cache already holds. Returns
  // f32 logits [rows, vocab_size], rows in batch order (all new tokens of a sequence with
  // all_logits, else its last one). Caches are advanced past the new tokens.
  virtual Tensor forward(std::span<const SequenceInput> batch) = 0;
  // CUDA-graph capture of decode steps (on by default where the device supports it; the
  // environment switch HEARTH_CUDA_GRAPHS=0 turns it off for the whole process). Off: every
  // forward runs eagerly and captured steps are released.
  virtual void set_cuda_graphs(bool enabled) { (void)enabled; }
  // Precision of the products with bf16 weights in this model's forward passes (ops/precision.h).
  virtual void set_matmul_precision(ops::MatmulPrecision p) = 0;
  virtual ops::MatmulPrecision matmul_precision() const = 0;
};

struct LoadOptions {
  Device device = Device::cpu();
  // CPU only: copy the weights into huge-page memory (faster decode) instead of reading them from
  // the file mapping. Unset: copy when they take under half of the available memory.
  // HEARTH_WEIGHTS=mapped|copied overrides both.
  std::optional<bool> copy_weights;
  // exact (the default: as exact as f32, what HF-f32 golden tests compare against) or bf16 (one
  // bf16 rounding of the input of CUDA prefill GEMMs, as PyTorch and MLX run a bf16 model; the
  // CLI's default, --matmul-precision).
  ops::MatmulPrecision matmul_precision = ops::MatmulPrecision::exact;
};

// Reads config.json (the registry picks the architecture from `architectures`), the weights and
// generation_config.json (its eos_token_id entries are added to the config's).
std::unique_ptr<Model> load_model(const std::filesystem::path& dir,
                                  const LoadOptions& options = {});

}  // namespace hearth::model
