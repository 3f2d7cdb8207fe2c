// The device backends behind the op interface. Each op front-end (ops/<op>.cpp) checks shapes,
// dtypes and devices, then calls backend_for(device).<op>(...): that call is the single point where
// ops dispatch by device. Dispatch by dtype happens inside each backend's kernel file.
#pragma once

#include <span>

#include "core/tensor.h"
#include "ops/attention.h"
#include "ops/matmul.h"
#include "ops/quantized.h"
#include "ops/quantized_attention.h"
#include "ops/sampling.h"

namespace hearth::ops {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  virtual void copy(const Tensor& src, Tensor& dst) = 0;
  virtual void matmul(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) = 0;
  virtual void embedding(const Tensor& table, const Tensor& ids, Tensor& out) = 0;
  virtual void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) = 0;
  virtual void rope(const Tensor& x, const Tensor& positions, const Tensor& inv_freq,
                    float attention_scaling, Tensor& out) = 0;
  virtual void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  virtual void softmax(const Tensor& x, Tensor& out) = 0;
  virtual void log_softmax(const Tensor& x, Tensor& out) = 0;
  virtual void write_kv(const Tensor& k, const Tensor& v, const Tensor& slots, Tensor& k_cache,
                        Tensor& v_cache) = 0;
  virtual void paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                               const AttentionMeta& meta, float scale, Tensor& out) = 0;
  virtual void argmax(const Tensor& x, Tensor& out) = 0;

  // Fused ops of the decoder layer (ops/norm.h, ops/matmul.h, ops/rope.h). The defaults are the
  // unfused sequences of the ops above (the definition each fused kernel must equal bit for bit);
  // a backend overrides one where it has a kernel that saves launches or memory traffic.
  virtual void add_rms_norm(Tensor& x, const Tensor& delta, const Tensor& weight, float eps,
                            Tensor& normed);
  virtual void matmul_grouped(const Tensor& x, std::span<const MatmulGroup> groups);
  virtual void matmul_silu_mul(const Tensor& x, const Tensor& w_gate, const Tensor& w_up,
                               const Tensor* gate_bias, const Tensor* up_bias, Tensor& out);
  virtual void rope_qk(Tensor& q, Tensor& k, const Tensor& positions, const Tensor& inv_freq,
                       float attention_scaling);
  virtual void rope_qk_write_kv(Tensor& q, Tensor& k, const Tensor& v, const Tensor& positions,
                                const Tensor& inv_freq, float attention_scaling,
                                const Tensor& slots, Tensor& k_cache, Tensor& v_cache);
  virtual void top_k(const Tensor& x, int k, Tensor& values, Tensor& indices) = 0;

  // Sampling on the logits' device (ops/sampling.h).
  virtual void sample(const Tensor& logprobs, const SamplingParams& params,
                      std::span<const double> uniforms, Tensor& out) = 0;
  virtual void apply_logit_penalties(Tensor& logits, const Tensor& history, const Tensor& bias_ids,
                                     const Tensor& bias_values,
                                     const LogitPenalties& penalties) = 0;

  // MLX affine quantization (ops/quantized.h). `out`'s packed/scales/biases are allocated by the
  // front-end on w's device. Unlike the ops above these are not pure: a backend that has no
  // quantized kernels yet (CUDA is written in parallel) still builds, and its calls fail with
  // `unsupported` naming the backend.
  virtual void affine_quantize(const Tensor& w, MlxQuantizer variant, QuantizedWeight& out);
  virtual void affine_dequantize(const QuantizedWeight& w, Tensor& out);
  virtual void quantized_matmul(const Tensor& x, const QuantizedWeight& w, const Tensor* bias,
                                Tensor& out);
  virtual void quantized_embedding(const QuantizedWeight& table, const Tensor& ids, Tensor& out);
  // Fused forms; the defaults are the unfused sequences (quantized.cpp).
  virtual void quantized_matmul_grouped(const Tensor& x,
                                        std::span<const QuantizedMatmulGroup> groups);
  virtual void quantized_matmul_silu_mul(const Tensor& x, const QuantizedWeight& w_gate,
                                         const QuantizedWeight& w_up, const Tensor* gate_bias,
                                         const Tensor* up_bias, Tensor& out);

  // Quantized paged KV cache (ops/quantized_attention.h); same default as above.
  virtual void write_kv_quantized(const Tensor& k, const Tensor& v, const Tensor& slots,
                                  QuantizedKvPlanes& cache);
  virtual void paged_attention_quantized(const Tensor& q, const QuantizedKvPlanes& cache,
                                         const AttentionMeta& meta, float scale, Tensor& out);
};

// The backend for a device. Throws `unsupported` when hearth was built without it or no device
// of that kind is present.
Backend& backend_for(Device device);
// Called once by a backend that is built in (the CPU backend is always there).
void register_backend(DeviceKind kind, Backend* backend);

}  // namespace hearth::ops
