// The CPU Backend object: forwards each op to its kernel file (bf16 activations through f32
// copies, ops/cpu/widen.h).
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/widen.h"

namespace hearth::ops::cpu {
namespace {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  void copy(const Tensor& src, Tensor& dst) override { cpu::copy(src, dst); }
  void matmul(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) override {
    WidenBf16 b;
    cpu::matmul(b.in(x), w, bias, b.out(out));
    b.finish();
  }
  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override {
    cpu::embedding(table, ids, out);
  }
  void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override {
    WidenBf16 b;
    cpu::rms_norm(b.in(x), weight, eps, b.out(out));
    b.finish();
  }
  void add_rms_norm(Tensor& x, const Tensor& delta, const Tensor& weight, float eps,
                    Tensor& normed) override {
    WidenBf16 b;
    cpu::add_rms_norm(b.out(x, true), b.in(delta), weight, eps, b.out(normed));
    b.finish();
  }
  void rope(const Tensor& x, const Tensor& positions, const Tensor& inv_freq,
            float attention_scaling, Tensor& out) override {
    WidenBf16 b;
    cpu::rope(b.in(x), positions, inv_freq, attention_scaling, b.out(out));
    b.finish();
  }
  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    WidenBf16 b;
    cpu::silu_mul(b.in(gate), b.in(up), b.out(out));
    b.finish();
  }
  void add(const Tensor& a, const Tensor& b, Tensor& out) override {
    WidenBf16 w;
    cpu::add(w.in(a), w.in(b), w.out(out));
    w.finish();
  }
  void softmax(const Tensor& x, Tensor& out) override { cpu::softmax(x, out); }
  void log_softmax(const Tensor& x, Tensor& out) override { cpu::log_softmax(x, out); }
  void write_kv(const Tensor& k, const Tensor& v, const Tensor& slots, Tensor& k_cache,
                Tensor& v_cache) override {
    cpu::write_kv(k, v, slots, k_cache, v_cache);
  }
  void paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                       const AttentionMeta& meta, float scale, Tensor& out) override {
    WidenBf16 b;
    cpu::paged_attention(b.in(q), k_cache, v_cache, meta, scale, b.out(out));
    b.finish();
  }
  void argmax(const Tensor& x, Tensor& out) override { cpu::argmax(x, out); }
  void top_k(const Tensor& x, int k, Tensor& values, Tensor& indices) override {
    cpu::top_k(x, k, values, indices);
  }
  void sample(const Tensor& logprobs, const SamplingParams& params,
              std::span<const double> uniforms, Tensor& out) override {
    cpu::sample(logprobs, params, uniforms, out);
  }
  void apply_logit_penalties(Tensor& logits, const Tensor& history, const Tensor& bias_ids,
                             const Tensor& bias_values, const LogitPenalties& penalties) override {
    cpu::apply_logit_penalties(logits, history, bias_ids, bias_values, penalties);
  }
  void affine_quantize(const Tensor& w, MlxQuantizer variant, QuantizedWeight& out) override {
    cpu::affine_quantize(w, variant, out);
  }
  void affine_dequantize(const QuantizedWeight& w, Tensor& out) override {
    cpu::affine_dequantize(w, out);
  }
  void quantized_matmul(const Tensor& x, const QuantizedWeight& w, const Tensor* bias,
                        Tensor& out) override {
    WidenBf16 b;
    cpu::quantized_matmul(b.in(x), w, bias, b.out(out));
    b.finish();
  }
  void quantized_embedding(const QuantizedWeight& table, const Tensor& ids, Tensor& out) override {
    cpu::quantized_embedding(table, ids, out);
  }
  void write_kv_quantized(const Tensor& k, const Tensor& v, const Tensor& slots,
                          QuantizedKvPlanes& cache) override {
    cpu::write_kv_quantized(k, v, slots, cache);
  }
  void paged_attention_quantized(const Tensor& q, const QuantizedKvPlanes& cache,
                                 const AttentionMeta& meta, float scale, Tensor& out) override {
    WidenBf16 b;
    cpu::paged_attention_quantized(b.in(q), cache, meta, scale, b.out(out));
    b.finish();
  }
};

}  // namespace

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace hearth::ops::cpu
