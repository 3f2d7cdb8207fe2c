#include "model/decoder.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <string_view>

#include "kv/attention_plan.h"
#include "model/decode_graph.h"
#include "ops/attention.h"
#include "ops/copy.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/graph.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/quantized_attention.h"
#include "ops/rope.h"

namespace hearth::model {
namespace {

class TensorTaker {
 public:
  TensorTaker(io::WeightSet& weights, const DecoderConfig& config)
      : weights_(weights), config_(config) {}

  Tensor take(const std::string& name, const Dims& expected) {
    if (!weights_.contains(name))
      fail(ErrorCode::format, "{}: weight '{}' is missing (architecture {})",
           weights_.dir().string(), name, config_.architecture);
    Tensor t = weights_.get(name);
    if (!(t.shape() == expected))
      fail(ErrorCode::format, "{}: weight '{}' has shape {} but config.json implies {}",
           weights_.dir().string(), name, t.shape().str(), expected.str());
    if (!is_floating(t.dtype()))
      fail(ErrorCode::unsupported, "{}: weight '{}' has dtype {}; expected a float type",
           weights_.dir().string(), name, dtype_name(t.dtype()));
    weights_.erase(name);
    return t;
  }
  Tensor take_optional(const std::string& name, const Dims& expected, bool wanted) {
    return wanted ? take(name, expected) : Tensor();
  }

 private:
  io::WeightSet& weights_;
  const DecoderConfig& config_;
};

// Small per-step tables (ids, positions, slots, attention metadata) built on the host and moved to
// the model's device.
template <typename T>
Tensor on_device(const std::vector<T>& values, const Dims& shape, Device device) {
  return ops::to_device(Tensor::from_vector(values, shape), device);
}

}  // namespace

void copy_device_tokens(std::span<const SequenceInput> batch, Tensor& ids) {
  int64_t row = 0;
  for (const SequenceInput& in : batch) {
    if (in.device_token.defined()) {
      Tensor dst = ids.slice(0, row, row + 1);
      ops::copy(in.device_token, dst);
    }
    row += int64_t(in.tokens.size());
  }
}

DecoderModel::DecoderModel(DecoderConfig config, io::WeightSet weights, Device device)
    : config_(std::move(config)), device_(device), weights_(std::move(weights)) {
  const DecoderConfig& c = config_;
  io::WeightSet remaining = weights_;
  TensorTaker w(remaining, c);
  const int64_t H = c.hidden_size, D = c.head_dim, I = c.intermediate_size;
  const int64_t q_out = c.num_heads * D, kv_out = c.num_kv_heads * D;
  embed_tokens = take_linear(remaining, "model.embed_tokens", c.vocab_size, H, false);
  final_norm = w.take("model.norm.weight", {H});
  lm_head = c.tie_word_embeddings ? embed_tokens
                                  : take_linear(remaining, "lm_head", c.vocab_size, H, false);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    DecoderLayer L;
    L.input_norm = w.take(p + "input_layernorm.weight", {H});
    L.post_attention_norm = w.take(p + "post_attention_layernorm.weight", {H});
    L.q = take_linear(remaining, p + "self_attn.q_proj", q_out, H, c.qkv_bias);
    L.k = take_linear(remaining, p + "self_attn.k_proj", kv_out, H, c.qkv_bias);
    L.v = take_linear(remaining, p + "self_attn.v_proj", kv_out, H, c.qkv_bias);
    L.o = take_linear(remaining, p + "self_attn.o_proj", H, q_out, c.o_bias);
    L.q_norm = w.take_optional(p + "self_attn.q_norm.weight", {D}, c.qk_norm);
    L.k_norm = w.take_optional(p + "self_attn.k_norm.weight", {D}, c.qk_norm);
    L.gate = take_linear(remaining, p + "mlp.gate_proj", I, H, c.mlp_bias);
    L.up = take_linear(remaining, p + "mlp.up_proj", I, H, c.mlp_bias);
    L.down = take_linear(remaining, p + "mlp.down_proj", H, I, c.mlp_bias);
    L.sliding_window = c.sliding_window[size_t(l)];
    layers_.push_back(std::move(L));
  }
  if (remaining.size() > 0) {
    std::vector<std::string> left = remaining.names();
    std::string list;
    for (size_t i = 0; i < left.size() && i < 5; ++i) list += (i ? ", " : "") + left[i];
    if (left.size() > 5) list += fmt::format(" and {} more", left.size() - 5);
    fail(ErrorCode::format, "{}: {} weights are not used by {}: {}", weights_.dir().string(),
         left.size(), c.architecture, list);
  }
  if (!device_.is_cpu()) {
    // Upload every weight once; the host mapping is released afterwards.
    auto upload = [&](Tensor& t) {
      if (t.defined()) t = ops::to_device(t, device_);
    };
    embed_tokens.move_to(device_);
    upload(final_norm);
    if (c.tie_word_embeddings) {
      lm_head = embed_tokens;
    } else {
      lm_head.move_to(device_);
    }
    for (DecoderLayer& L : layers_) {
      for (Tensor* t : {&L.input_norm, &L.post_attention_norm, &L.q_norm, &L.k_norm}) upload(*t);
      for (Linear* lin : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) lin->move_to(device_);
    }
    weights_ = io::WeightSet();
  }
  if (c.rope.type != ops::RopeType::dynamic) {
    ops::RopeFrequencies f = ops::rope_frequencies(c.rope, c.max_position_embeddings);
    inv_freq_ = on_device(f.inv_freq, {int64_t(f.inv_freq.size())}, device_);
    attention_scaling_ = f.attention_scaling;
  }
}

kv::KvLayout DecoderModel::kv_layout(int block_size) const {
  kv::KvLayout layout;
  layout.n_layers = int(config_.num_layers);
  layout.n_kv_heads = int(config_.num_kv_heads);
  layout.head_dim = int(config_.head_dim);
  layout.block_size = block_size;
  // The cache holds K and V as the layers produce them: bf16 when the activations are bf16 (a CUDA
  // model at bf16 matmul precision, as mlx-lm keeps a bf16 model's cache in bf16), halving the
  // bytes prefill attention and decode read; f32 otherwise, so f32 runs stay exact.
  layout.dtype = activation_dtype();
  layout.device = device_;
  return layout;
}

size_t DecoderModel::weight_bytes_per_token() const {
  size_t total = final_norm.nbytes() + lm_head.weight_bytes();
  for (const DecoderLayer& L : layers_) {
    for (const Tensor* t : {&L.input_norm, &L.post_attention_norm, &L.q_norm, &L.k_norm})
      total += t->defined() ? t->nbytes() : 0;
    for (const Linear* lin : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down})
      total += lin->weight_bytes();
  }
  return total;
}

DecoderModel::~DecoderModel() = default;

void DecoderModel::set_cuda_graphs(bool enabled) {
  cuda_graphs_ = enabled;
  if (!enabled) graphs_.reset();
}

int64_t DecoderModel::cuda_graph_captures() const {
  return graphs_ ? graphs_->captures() : 0;
}

int64_t DecoderModel::cuda_graph_replays() const {
  return graphs_ ? graphs_->replays() : 0;
}

void DecoderModel::check_batch(std::span<const SequenceInput> batch) const {
  const DecoderConfig& c = config_;
  HEARTH_CHECK(!batch.empty(), "forward of an empty batch");
  HEARTH_CHECK(batch[0].cache != nullptr, "forward needs tokens and a cache");
  const kv::KvCache& first_cache = *batch[0].cache;
  const int G = first_cache.num_groups();
  for (const SequenceInput& in : batch) {
    HEARTH_CHECK(in.cache != nullptr && !in.tokens.empty(), "forward needs tokens and a cache");
    if (in.cache->n_layers() != c.num_layers || in.cache->num_groups() != G)
      fail(ErrorCode::invalid_argument,
           "forward: a KV cache of {} layers in {} groups for a "
           "model of {} layers (batched caches must share their layer policies)",
           in.cache->n_layers(), in.cache->num_groups(), c.num_layers);
    if (in.cache->shared_pool() != first_cache.shared_pool())
      fail(ErrorCode::invalid_argument, "forward: the caches of one batch must share a pool");
    for (int l = 0; l < in.cache->n_layers(); ++l)
      if (in.cache->group_of(l) != first_cache.group_of(l) ||
          !(in.cache->policy(l) == first_cache.policy(l)))
        fail(ErrorCode::invalid_argument,
             "forward: the caches of one batch have different policies at layer {}", l);
    if (in.device_token.defined()) {
      if (in.tokens.size() != 1 || in.all_logits || in.device_token.dtype() != DType::i32 ||
          !(in.device_token.shape() == Dims{1}) || in.device_token.device() != device_)
        fail(ErrorCode::invalid_argument,
             "forward: a device token must be one i32 id on {} for a one-token step, got {}",
             device_.str(), in.device_token.describe());
      continue;  // the argmax of the previous step: inside the vocabulary
    }
    for (int32_t id : in.tokens)
      if (id < 0 || id >= c.vocab_size)
        fail(ErrorCode::invalid_argument, "token id {} is outside the vocabulary (size {})", id,
             c.vocab_size);
  }
}

Tensor DecoderModel::forward(std::span<const SequenceInput> batch) {
  check_batch(batch);
  // Also in force while a decode step is captured: a graph replays the GEMMs it recorded.
  ops::MatmulPrecisionScope precision(matmul_precision_);
  if (graph_eligible(batch)) {
    if (!graphs_) graphs_ = std::make_unique<DecodeGraphs>(*this);
    return graphs_->forward(batch);
  }
  return forward_eager(batch);
}

bool DecoderModel::graph_eligible(std::span<const SequenceInput> batch) const {
  // Decode only: one token per sequence and its last-token logits. Dynamic RoPE recomputes its
  // frequencies from the step's positions on the host, so it stays eager.
  if (!cuda_graphs_ || config_.rope.type == ops::RopeType::dynamic) return false;
  if (int64_t(batch.size()) > DecodeGraphs::kMaxRows) return false;
  for (const SequenceInput& in : batch)
    if (in.tokens.size() != 1 || in.all_logits) return false;
  return ops::graphs_supported(device_);
}

DType DecoderModel::activation_dtype() const {
  static const bool forced_f32 = [] {
    const char* env = std::getenv("HEARTH_ACTIVATIONS");
    return env && std::string_view(env) == "f32";
  }();
  if (forced_f32 || !device_.is_cuda() || matmul_precision_ != ops::MatmulPrecision::bf16 ||
      layers_.empty())
    return DType::f32;
  const Linear& q = layers_[0].q;
  return q.is_quantized() || q.weight.dtype() != DType::f32 ? DType::bf16 : DType::f32;
}

void DecoderModel::allocate_activations(int64_t T, DecoderStep& st) const {
  const DecoderConfig& c = config_;
  const int64_t H = c.hidden_size, D = c.head_dim, I = c.intermediate_size;
  const int64_t Hq = c.num_heads, Hkv = c.num_kv_heads;
  const Device dev = device_;
  const DType act = activation_dtype();
  st.x = Tensor::empty({T, H}, DType::f32, dev);
  st.h = Tensor::empty({T, H}, act, dev);
  st.q = Tensor::empty({T, Hq * D}, act, dev);
  st.k = Tensor::empty({T, Hkv * D}, act, dev);
  st.v = Tensor::empty({T, Hkv * D}, act, dev);
  st.attn = Tensor::empty({T, Hq * D}, act, dev);
  st.gate = Tensor::empty({T, I}, act, dev);
  st.up = Tensor::empty({T, I}, act, dev);
}

void DecoderModel::run_layers(DecoderStep& st, const kv::KvCache& first_cache) const {
  const DecoderConfig& c = config_;
  const int64_t T = st.x.dim(0), D = c.head_dim;
  const int64_t Hq = c.num_heads, Hkv = c.num_kv_heads;
  Tensor &x = st.x, &h = st.h, &q = st.q, &k = st.k, &v = st.v, &attn = st.attn;
  Tensor &gate = st.gate, &up = st.up;
  const Tensor& pos_t = st.positions;
  const Tensor& inv_freq = st.inv_freq;
  const float rope_scale = st.rope_scale;
  const std::vector<Tensor>& slots_t = st.slots;
  Tensor q3 = q.reshape({T, Hq, D}), k3 = k.reshape({T, Hkv, D}), v3 = v.reshape({T, Hkv, D});
  Tensor attn3 = attn.reshape({T, Hq, D});
  const float eps = float(c.rms_norm_eps);
  const float scale = float(1.0 / std::sqrt(double(D)));

  for (size_t l = 0; l < layers_.size(); ++l) {
    const DecoderLayer& L = layers_[l];
    // Fused: 9 launches per layer instead of 16 (8 where rope_qk_write_kv is one launch;
    // ops/norm.h, ops/matmul.h, ops/rope.h); each fused op equals the unfused sequence bit for bit.
    // Except in the first layer, h already holds rms_norm(x) from the add_rms_norm that closed the
    // previous layer.
    const bool fuse = fusion_enabled();
    if (l == 0 || !fuse) ops::rms_norm(x, L.input_norm, eps, h);
    const Linear* qkv[] = {&L.q, &L.k, &L.v};
    Tensor* qkv_out[] = {&q, &k, &v};
    apply_grouped(qkv, h, qkv_out);
    if (c.qk_norm) {
      ops::rms_norm(q3, L.q_norm, eps, q3);
      ops::rms_norm(k3, L.k_norm, eps, k3);
    }
    const int g = first_cache.group_of(int(l));
    const ops::AttentionMeta& meta = st.meta(g, L.sliding_window);
    const kv::BlockPool& pool = first_cache.pool();
    const Tensor& slots = slots_t[size_t(g)];
    // With a dense cache, the fused path rotates q and k and writes the KV cache in one op.
    const bool rope_with_write = fuse && !pool.layout().quantized();
    if (!rope_with_write) {
      if (fuse) {
        ops::rope_qk(q3, k3, pos_t, inv_freq, rope_scale);
      } else {
        ops::rope(q3, pos_t, inv_freq, rope_scale, q3);
        ops::rope(k3, pos_t, inv_freq, rope_scale, k3);
      }
    }
    if (pool.layout().quantized()) {
      // mlx-lm's QuantizedKVCache: new tokens are quantized on write and attention decodes the
      // codes inside the kernel.
      ops::QuantizedKvPlanes planes = pool.quantized_planes(int(l));
      ops::write_kv_quantized(k3, v3, slots, planes);
      ops::paged_attention_quantized(q3, planes, meta, scale, attn3);
    } else {
      Tensor keys = pool.keys(int(l));
      Tensor values = pool.values(int(l));
      if (rope_with_write)
        ops::rope_qk_write_kv(q3, k3, v3, pos_t, inv_freq, rope_scale, slots, keys, values);
      else
        ops::write_kv(k3, v3, slots, keys, values);
      ops::paged_attention(q3, keys, values, meta, scale, attn3);
    }
    L.o.apply(attn, h);
    if (fuse) {
      ops::add_rms_norm(x, h, L.post_attention_norm, eps, h);
    } else {
      ops::add(x, h, x);
      ops::rms_norm(x, L.post_attention_norm, eps, h);
    }
    apply_silu_mul(L.gate, L.up, h, gate, up);
    L.down.apply(gate, h);
    if (fuse && l + 1 < layers_.size())
      ops::add_rms_norm(x, h, layers_[l + 1].input_norm, eps, h);
    else
      ops::add(x, h, x);
  }
}

Tensor DecoderModel::forward_eager(std::span<const SequenceInput> batch) {
  const DecoderConfig& c = config_;
  const int64_t S = int64_t(batch.size());

  // Flatten the ragged batch; every cache prepares room for its new tokens in each layer group.
  const kv::KvCache& first_cache = *batch[0].cache;
  const int G = first_cache.num_groups();
  std::vector<int32_t> ids, positions, query_start{0};
  std::vector<std::vector<int32_t>> slots(static_cast<size_t>(G));
  std::vector<int64_t> logit_rows;
  for (const SequenceInput& in : batch) {
    const int64_t start = in.cache->size(), n = int64_t(in.tokens.size());
    std::vector<std::vector<int32_t>> s = in.cache->prepare_groups(n);
    for (int g = 0; g < G; ++g)
      slots[size_t(g)].insert(slots[size_t(g)].end(), s[size_t(g)].begin(), s[size_t(g)].end());
    const int64_t row0 = int64_t(ids.size());
    for (int64_t i = 0; i < n; ++i) {
      ids.push_back(in.tokens[size_t(i)]);
      positions.push_back(int32_t(start + i));
    }
    if (in.all_logits) {
      for (int64_t i = 0; i < n; ++i) logit_rows.push_back(row0 + i);
    } else {
      logit_rows.push_back(row0 + n - 1);
    }
    query_start.push_back(int32_t(ids.size()));
  }
  const int64_t T = int64_t(ids.size());
  const Device dev = device_;
  DecoderStep st;
  Tensor query_start_t = on_device(query_start, {S + 1}, dev);
  for (int g = 0; g < G; ++g) st.slots.push_back(on_device(slots[size_t(g)], {T}, dev));

  // Attention metadata per (layer group, model window), built when a layer first needs it.
  std::deque<std::pair<std::pair<int, int>, ops::AttentionMeta>> metas;  // stable references
  st.meta = [&](int g, int model_window) -> const ops::AttentionMeta& {
    for (const auto& [key, m] : metas)
      if (key == std::make_pair(g, model_window)) return m;
    std::vector<kv::KvCache*> caches;
    for (const SequenceInput& in : batch) caches.push_back(in.cache);
    ops::AttentionMeta m = kv::make_attention_meta(caches, g, model_window, query_start, positions,
                                                   query_start_t, dev);
    metas.emplace_back(std::make_pair(g, model_window), std::move(m));
    return metas.back().second;
  };
  Tensor ids_t = on_device(ids, {T}, dev);
  copy_device_tokens(batch, ids_t);
  st.positions = on_device(positions, {T}, dev);

  st.inv_freq = inv_freq_;
  st.rope_scale = attention_scaling_;
  if (c.rope.type == ops::RopeType::dynamic) {
    // HF recomputes dynamic NTK frequencies from the largest position of the forward pass.
    int64_t seq_len = *std::max_element(positions.begin(), positions.end()) + 1;
    ops::RopeFrequencies f = ops::rope_frequencies(c.rope, seq_len);
    st.inv_freq = on_device(f.inv_freq, {int64_t(f.inv_freq.size())}, dev);
    st.rope_scale = f.attention_scaling;
  }

  const int64_t H = c.hidden_size;
  const float eps = float(c.rms_norm_eps);
  allocate_activations(T, st);
  embed_tokens.gather(ids_t, st.x);
  run_layers(st, first_cache);

  const int64_t R = int64_t(logit_rows.size());
  Tensor rows = Tensor::empty({R, H}, DType::f32, dev);
  for (int64_t r = 0; r < R; ++r) {
    Tensor dst = rows.slice(0, r, r + 1);
    ops::copy(st.x.slice(0, logit_rows[size_t(r)], logit_rows[size_t(r)] + 1), dst);
  }
  ops::rms_norm(rows, final_norm, eps, rows);
  Tensor logits = Tensor::empty({R, c.vocab_size}, DType::f32, dev);
  lm_head.apply(rows, logits);
  for (const SequenceInput& in : batch) in.cache->commit(int64_t(in.tokens.size()));
  return logits;
}

}  // namespace hearth::model
