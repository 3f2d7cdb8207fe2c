// The CPU backend: AVX2+FMA+F16C kernels on the global thread pool. backend_for(Device::cpu())
// creates it on first use; the kernels of each op family live in their own file in this folder.
#pragma once

#include "ops/backend.h"

namespace hearth::ops::cpu {

// The process-wide CPU backend, created on first call.
Backend& cpu_backend();

// Kernels, one per Backend method (matmul_grouped, matmul_silu_mul and rope_qk use the Backend
// defaults: the plain sequences, which on the CPU cost no extra traffic worth fusing away).
// Arguments were validated by the op front-ends (host tensors, matching shapes and dtypes); these
// only check what the front-ends cannot (e.g. data values).
void copy(const Tensor& src, Tensor& dst);
void matmul(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out);
void embedding(const Tensor& table, const Tensor& ids, Tensor& out);
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out);
void add_rms_norm(Tensor& x, const Tensor& delta, const Tensor& weight, float eps, Tensor& normed);
void rope(const Tensor& x, const Tensor& positions, const Tensor& inv_freq, float attention_scaling,
          Tensor& out);
void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out);
void add(const Tensor& a, const Tensor& b, Tensor& out);
void softmax(const Tensor& x, Tensor& out);
void log_softmax(const Tensor& x, Tensor& out);
void write_kv(const Tensor& k, const Tensor& v, const Tensor& slots, Tensor& k_cache,
              Tensor& v_cache);
void paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                     const AttentionMeta& meta, float scale, Tensor& out);
void argmax(const Tensor& x, Tensor& out);
void top_k(const Tensor& x, int k, Tensor& values, Tensor& indices);
void sample(const Tensor& logprobs, const SamplingParams& params, std::span<const double> uniforms,
            Tensor& out);
void apply_logit_penalties(Tensor& logits, const Tensor& history, const Tensor& bias_ids,
                           const Tensor& bias_values, const LogitPenalties& penalties);
void affine_quantize(const Tensor& w, MlxQuantizer variant, QuantizedWeight& out);
void affine_dequantize(const QuantizedWeight& w, Tensor& out);
void quantized_matmul(const Tensor& x, const QuantizedWeight& w, const Tensor* bias, Tensor& out);
void quantized_embedding(const QuantizedWeight& table, const Tensor& ids, Tensor& out);
void write_kv_quantized(const Tensor& k, const Tensor& v, const Tensor& slots,
                        QuantizedKvPlanes& cache);
void paged_attention_quantized(const Tensor& q, const QuantizedKvPlanes& cache,
                               const AttentionMeta& meta, float scale, Tensor& out);

}  // namespace hearth::ops::cpu
