#include "kv/cache_state.h"

#include <algorithm>
#include <charconv>

#include "kv/quantize_cache.h"
#include "ops/copy.h"

namespace hearth::kv {
namespace {

// A state array [1, H, n, D] for the model: the KV heads and head dim of `layout`.
const Tensor& layer_array(const LayerCacheState& s, int layer, const char* name,
                          const KvLayout& layout, std::string_view source) {
  const Tensor* t = s.find(name);
  if (!t)
    fail(ErrorCode::format, "{}: layer {} ({}) has no array '{}.{}'", source, layer, s.class_name,
         layer, name);
  if (t->ndim() != 4 || t->dim(0) != 1 || t->dim(1) != layout.n_kv_heads ||
      t->dim(3) != layout.head_dim)
    fail(ErrorCode::format,
         "{}: array '{}.{}' has shape {}, the model needs [1, {}, tokens, {}] ([1, n_kv_heads, "
         "tokens, head_dim])",
         source, layer, name, t->shape().str(), layout.n_kv_heads, layout.head_dim);
  if (!is_floating(t->dtype()))
    fail(ErrorCode::format, "{}: array '{}.{}' is {}, expected a float dtype", source, layer, name,
         dtype_name(t->dtype()));
  return *t;
}

int64_t meta_int(const LayerCacheState& s, int layer, size_t k, std::string_view source) {
  const std::string& text = s.meta_tuple[k];
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 0)
    fail(ErrorCode::format, "{}: meta_state '0.{}.{}' of a {} is '{}', expected an integer >= 0",
         source, layer, k, s.class_name, text);
  return v;
}

// The six planes of a QuantizedKVCache layer, checked against the model and converted to what the
// pool holds (u32 codes; scales and biases in the pool's dtype).
QuantizedLayerState quantized_layer(const LayerCacheState& s, int layer, const KvLayout& layout,
                                    int64_t tokens, std::string_view source) {
  const char* names[6] = {"0.0", "0.1", "0.2", "1.0", "1.1", "1.2"};
  Tensor planes[6];
  for (int i = 0; i < 6; ++i) {
    const Tensor* t = s.find(names[i]);
    if (!t)
      fail(ErrorCode::format, "{}: layer {} (QuantizedKVCache) has no array '{}.{}'", source, layer,
           layer, names[i]);
    const bool packed = i % 3 == 0;
    const int64_t last = packed ? int64_t(layout.head_dim) * layout.kv_bits / 32
                                : layout.head_dim / layout.kv_group_size;
    const Dims want{1, layout.n_kv_heads, tokens, last};
    if (!(t->shape() == want))
      fail(ErrorCode::format,
           "{}: array '{}.{}' has shape {}, the model needs {} ({} of {} tokens at {} bits, "
           "group size {})",
           source, layer, names[i], t->shape().str(), want.str(), packed ? "codes" : "groups",
           tokens, layout.kv_bits, layout.kv_group_size);
    if (packed ? t->dtype() != DType::u32 : !is_floating(t->dtype()))
      fail(ErrorCode::format, "{}: array '{}.{}' is {}, expected {}", source, layer, names[i],
           dtype_name(t->dtype()), packed ? "uint32" : "a float dtype");
    planes[i] = packed ? *t : ops::cast(*t, layout.dtype);
  }
  return {planes[0], planes[1], planes[2], planes[3], planes[4], planes[5]};
}

// mlx-lm's QuantizedKVCache layers: every layer one, with the same (offset, group_size, bits).
std::shared_ptr<KvCache> quantized_cache_from_state(const KvLayout& layout,
                                                    std::span<const LayerCacheState> layers,
                                                    int64_t extra_tokens, std::string_view source) {
  KvLayout q = layout;
  int64_t tokens = 0;
  for (int l = 0; l < layout.n_layers; ++l) {
    const LayerCacheState& s = layers[size_t(l)];
    if (s.class_name != kQuantizedCacheClass)
      fail(ErrorCode::unsupported,
           "{}: layer {} is a {} (key '2.{}') beside QuantizedKVCache layers; hearth keeps one "
           "cache kind per file",
           source, l, s.class_name, l);
    if (s.meta_tuple.size() != 3)
      fail(ErrorCode::format,
           "{}: a QuantizedKVCache meta_state is (offset, group_size, bits); layer {} has {} "
           "entries ('0.{}.*')",
           source, l, s.meta_tuple.size(), l);
    const int64_t offset = meta_int(s, l, 0, source);
    const int64_t group = meta_int(s, l, 1, source), bits = meta_int(s, l, 2, source);
    if (l == 0) {
      tokens = offset;
      q.kv_group_size = int(group);
      q.kv_bits = int(bits);
    } else if (offset != tokens || group != q.kv_group_size || bits != q.kv_bits) {
      fail(ErrorCode::format,
           "{}: layer {} has (offset, group_size, bits) ({}, {}, {}), layer 0 ({}, {}, {}) "
           "(keys '0.{}.*')",
           source, l, offset, group, bits, tokens, q.kv_group_size, q.kv_bits, l);
    }
  }
  if (tokens == 0) fail(ErrorCode::format, "{}: the cache holds no tokens ('0.0.0')", source);
  if (q.kv_bits < 1 || q.kv_bits > 8 || q.kv_group_size < 1 || q.head_dim % q.kv_group_size != 0 ||
      (q.head_dim * q.kv_bits) % 32 != 0)
    fail(ErrorCode::format,
         "{}: {} bits in groups of {} ('0.0.2', '0.0.1') do not fit the model's head dim {}",
         source, q.kv_bits, q.kv_group_size, q.head_dim);
  std::vector<QuantizedLayerState> states;
  for (int l = 0; l < layout.n_layers; ++l)
    states.push_back(quantized_layer(layers[size_t(l)], l, q, tokens, source));
  try {
    return make_quantized_cache(q, states, std::max<int64_t>(extra_tokens, 0));
  } catch (const Error& e) {
    fail(e.code(), "{}: {}", source, e.what());
  }
}

}  // namespace

const Tensor* LayerCacheState::find(std::string_view name) const {
  for (const auto& [n, t] : arrays)
    if (n == name) return &t;
  return nullptr;
}

std::vector<LayerCacheState> export_cache_state(const KvCache& cache) {
  if (cache.size() == 0)
    fail(ErrorCode::invalid_argument, "cannot save an empty cache (it holds no tokens)");
  std::vector<LayerCacheState> layers(size_t(cache.n_layers()));
  const KvLayout& layout = cache.pool().layout();
  if (layout.quantized()) {
    for (int l = 0; l < cache.n_layers(); ++l) {
      LayerCacheState& s = layers[size_t(l)];
      QuantizedLayerState q = read_quantized_layer(cache, l);
      s.class_name = std::string(kQuantizedCacheClass);
      s.meta_tuple = {std::to_string(cache.size()), std::to_string(layout.kv_group_size),
                      std::to_string(layout.kv_bits)};
      s.arrays = {{"0.0", q.k_packed}, {"0.1", q.k_scales}, {"0.2", q.k_biases},
                  {"1.0", q.v_packed}, {"1.1", q.v_scales}, {"1.2", q.v_biases}};
    }
    return layers;
  }
  for (int l = 0; l < cache.n_layers(); ++l) {
    LayerCacheState& s = layers[size_t(l)];
    LayerState state = cache.read_state(l);
    const CachePolicy& policy = cache.policy(l);
    if (policy.rotating()) {
      s.class_name = std::string(kRotatingCacheClass);
      for (int64_t v : {policy.keep, policy.max_size, state.offset, state.idx})
        s.meta_tuple.push_back(std::to_string(v));
    } else {
      s.class_name = std::string(kStandardCacheClass);
      s.meta_string = "";
    }
    s.arrays.emplace_back("0", std::move(state.keys));
    s.arrays.emplace_back("1", std::move(state.values));
  }
  return layers;
}

std::shared_ptr<KvCache> cache_from_state(const KvLayout& layout,
                                          std::span<const LayerCacheState> layers,
                                          int64_t extra_tokens, std::string_view source) {
  if (int64_t(layers.size()) != layout.n_layers)
    fail(ErrorCode::format, "{}: the file has {} layers, the model has {}", source, layers.size(),
         layout.n_layers);
  if (!layers.empty() && layers[0].class_name == kQuantizedCacheClass)
    return quantized_cache_from_state(layout, layers, extra_tokens, source);
  std::vector<CachePolicy> policies;
  std::vector<LayerState> states;
  int64_t standard_tokens = -1;
  for (int l = 0; l < layout.n_layers; ++l) {
    const LayerCacheState& s = layers[size_t(l)];
    LayerState state;
    CachePolicy policy;
    if (s.class_name == kStandardCacheClass) {
      state.keys = layer_array(s, l, "0", layout, source);
      state.values = layer_array(s, l, "1", layout, source);
      state.offset = state.idx = state.keys.dim(2);
      if (standard_tokens < 0) standard_tokens = state.offset;
      if (state.offset != standard_tokens || state.values.dim(2) != standard_tokens)
        fail(ErrorCode::format,
             "{}: layer {} holds {} tokens ('{}.0' {}, '{}.1' {}), the earlier KVCache layers {}",
             source, l, state.offset, l, state.keys.shape().str(), l, state.values.shape().str(),
             standard_tokens);
    } else if (s.class_name == kRotatingCacheClass) {
      // meta_state (keep, max_size, offset, _idx)
      if (s.meta_tuple.size() != 4)
        fail(ErrorCode::format,
             "{}: a RotatingKVCache meta_state is (keep, max_size, offset, _idx); layer {} has {} "
             "entries ('0.{}.*')",
             source, l, s.meta_tuple.size(), l);
      policy.keep = meta_int(s, l, 0, source);
      policy.max_size = meta_int(s, l, 1, source);
      state.offset = meta_int(s, l, 2, source);
      state.idx = meta_int(s, l, 3, source);
      if (policy.max_size < 1 || policy.keep > policy.max_size)
        fail(ErrorCode::format, "{}: layer {} has keep {} and max_size {} ('0.{}.0', '0.{}.1')",
             source, l, policy.keep, policy.max_size, l, l);
      state.keys = layer_array(s, l, "0", layout, source);
      state.values = layer_array(s, l, "1", layout, source);
    } else {
      fail(ErrorCode::unsupported,
           "{}: layer {} is a {} (key '2.{}') beside dense layers; hearth keeps one cache kind "
           "per file",
           source, l, s.class_name, l);
    }
    policies.push_back(policy);
    states.push_back(std::move(state));
  }

  // Room like gen::cache_blocks_needed: per distinct policy, a standard cache the stored tokens
  // plus extra_tokens, a rotating one its buffer and what a prefill can add to it, twice (the
  // buffer being rebuilt, snapshots). The CPU pool reserves address space only.
  const int bs = layout.block_size;
  const int64_t extra = std::max<int64_t>(extra_tokens, 0);
  int64_t blocks = 0;
  std::vector<CachePolicy> seen;
  for (size_t l = 0; l < policies.size(); ++l) {
    const CachePolicy& p = policies[l];
    if (std::find(seen.begin(), seen.end(), p) != seen.end()) continue;
    seen.push_back(p);
    const int64_t stored = states[l].keys.dim(2);
    if (p.rotating())
      blocks += 2 * ((std::max(stored, p.max_size) + extra + bs - 1) / bs + 1);
    else
      blocks += (stored + extra + bs - 1) / bs + 2;
  }
  auto cache = std::make_shared<KvCache>(std::make_shared<BlockPool>(layout, blocks), policies);
  try {
    cache->write_state(states);
  } catch (const Error& e) {
    fail(e.code(), "{}: {}", source, e.what());
  }
  if (cache->size() == 0) fail(ErrorCode::format, "{}: the cache holds no tokens", source);
  return cache;
}

}  // namespace hearth::kv
