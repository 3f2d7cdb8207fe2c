// Plain scalar references for every op: straight from the math / the HF definitions, double
// accumulation, host tensors only. Same signatures as the ops; tests compare backends to these.
// No SIMD, no threads, no cleverness: they must be obviously correct.
#pragma once

#include <span>

#include "core/tensor.h"
#include "ops/attention.h"
#include "ops/matmul.h"
#include "ops/quantized.h"
#include "ops/quantized_attention.h"

namespace hearth::ops::reference {

void copy(const Tensor& src, Tensor& dst);
void matmul(const Tensor& x, const Tensor& w, Tensor& out, const Tensor* bias = nullptr);
void embedding(const Tensor& table, const Tensor& ids, Tensor& out);
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out);
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

// Fused decoder-layer ops (reference/fused.cpp): the unfused sequences of the references above.
void add_rms_norm(Tensor& x, const Tensor& delta, const Tensor& weight, float eps, Tensor& normed);
void matmul_grouped(const Tensor& x, std::span<const MatmulGroup> groups);
void matmul_silu_mul(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, Tensor& out,
                     const Tensor* gate_bias = nullptr, const Tensor* up_bias = nullptr);
void rope_qk(Tensor& q, Tensor& k, const Tensor& positions, const Tensor& inv_freq,
             float attention_scaling);
void top_k(const Tensor& x, int k, Tensor& values, Tensor& indices);

// MLX affine quantization (reference/quantized.cpp): one group, one code at a time.
QuantizedWeight affine_quantize(const Tensor& w, int bits, int group_size, DType scale_dtype,
                                MlxQuantizer variant = MlxQuantizer::cpu);
void affine_dequantize(const QuantizedWeight& w, Tensor& out);
// Dequantizes to f32 and multiplies in double.
void quantized_matmul(const Tensor& x, const QuantizedWeight& w, Tensor& out,
                      const Tensor* bias = nullptr);
void quantized_embedding(const QuantizedWeight& table, const Tensor& ids, Tensor& out);
// Code `col` of row `row`: bits [col * bits, (col + 1) * bits) of the row's little-endian bit
// stream.
uint32_t quantized_code(const QuantizedWeight& w, int64_t row, int64_t col);

// Quantized paged KV cache (reference/quantized_attention.cpp): each token's head vectors quantized
// with affine_quantize (MLX's GPU variant) after rounding to the scale dtype; attention by
// dequantizing every plane (affine_dequantize into f32) and running paged_attention.
void write_kv_quantized(const Tensor& k, const Tensor& v, const Tensor& slots,
                        QuantizedKvPlanes& cache);
void paged_attention_quantized(const Tensor& q, const QuantizedKvPlanes& cache,
                               const AttentionMeta& meta, float scale, Tensor& out);
// The f32 [num_blocks, n_kv, block_size, head_dim] keys (values: false) a quantized cache holds.
Tensor dequantize_kv_plane(const QuantizedKvPlanes& cache, bool keys);

// Element access by multi-index for any strides (shared by the reference files).
double get(const Tensor& t, std::initializer_list<int64_t> index);
void set(const Tensor& t, std::initializer_list<int64_t> index, double value);
int64_t get_int(const Tensor& t, std::initializer_list<int64_t> index);

}  // namespace hearth::ops::reference
