#include "kv/cache_state.h"

#include <algorithm>

#include "ops/attention.h"
#include "ops/copy.h"

namespace hearth::kv {
namespace {

// One layer's first `tokens` keys (or values) out of the paged pool, gathered block by block on
// the pool's device and then moved to the host: [1, n_kv_heads, tokens, head_dim].
Tensor gather_layer(const Tensor& pool_plane, const std::vector<int32_t>& blocks, int64_t tokens,
                    int block_size) {
  const int64_t heads = pool_plane.dim(1), head_dim = pool_plane.dim(3);
  Tensor gathered =
      Tensor::empty({heads, tokens, head_dim}, pool_plane.dtype(), pool_plane.device());
  for (size_t i = 0; int64_t(i) * block_size < tokens; ++i) {
    const int64_t begin = int64_t(i) * block_size;
    const int64_t rows = std::min<int64_t>(block_size, tokens - begin);
    Tensor src = pool_plane.select(0, blocks[i]).slice(1, 0, rows);  // [H, rows, D]
    Tensor dst = gathered.slice(1, begin, begin + rows);
    ops::copy(src, dst);
  }
  return ops::to_device(gathered, Device::cpu()).unsqueeze(0);
}

// A state array [1, H, T, D] as write_kv wants it: [T, H, D] with contiguous rows on `device`.
// On the CPU the transposed view of the file mapping goes straight in (write_kv follows strides),
// which keeps loading a 4k-token cache a single pass over the file.
Tensor tokens_major(const Tensor& state, Device device) {
  Tensor view = state.select(0, 0).transpose(0, 1);
  if (device.is_cpu()) return view;
  return ops::to_device(ops::contiguous(view), device);
}

void check_standard_layer(const LayerCacheState& s, int layer, const KvLayout& layout,
                          int64_t tokens, std::string_view source) {
  if (s.class_name != kStandardCacheClass)
    fail(ErrorCode::unsupported,
         "{}: layer {} is a {} (key '2.{}'); loading it into a standard cache is not supported",
         source, layer, s.class_name, layer);
  for (const char* name : {"0", "1"}) {
    const Tensor* t = s.find(name);
    if (!t)
      fail(ErrorCode::format, "{}: layer {} ({}) has no array '{}.{}'", source, layer, s.class_name,
           layer, name);
    const Dims want{1, layout.n_kv_heads, tokens, layout.head_dim};
    if (!(t->shape() == want))
      fail(ErrorCode::format,
           "{}: array '{}.{}' has shape {}, the model needs {} ([1, n_kv_heads, tokens, "
           "head_dim], the same token count in every layer)",
           source, layer, name, t->shape().str(), want.str());
    if (!is_floating(t->dtype()))
      fail(ErrorCode::format, "{}: array '{}.{}' is {}, expected a float dtype", source, layer,
           name, dtype_name(t->dtype()));
  }
}

}  // namespace

const Tensor* LayerCacheState::find(std::string_view name) const {
  for (const auto& [n, t] : arrays)
    if (n == name) return &t;
  return nullptr;
}

std::vector<LayerCacheState> export_cache_state(const KvCache& cache) {
  const KvLayout& layout = cache.pool().layout();
  const int64_t tokens = cache.size();
  if (tokens == 0)
    fail(ErrorCode::invalid_argument, "cannot save an empty cache (it holds no tokens)");
  std::vector<LayerCacheState> layers(size_t(layout.n_layers));
  for (int l = 0; l < layout.n_layers; ++l) {
    LayerCacheState& s = layers[size_t(l)];
    s.class_name = std::string(kStandardCacheClass);
    s.meta_string = "";
    s.arrays.emplace_back(
        "0", gather_layer(cache.pool().keys(l), cache.blocks(), tokens, layout.block_size));
    s.arrays.emplace_back(
        "1", gather_layer(cache.pool().values(l), cache.blocks(), tokens, layout.block_size));
  }
  return layers;
}

std::shared_ptr<KvCache> cache_from_state(const KvLayout& layout,
                                          std::span<const LayerCacheState> layers,
                                          int64_t extra_tokens, std::string_view source) {
  if (int64_t(layers.size()) != layout.n_layers)
    fail(ErrorCode::format, "{}: the file has {} layers, the model has {}", source, layers.size(),
         layout.n_layers);
  const Tensor* first = layers.empty() ? nullptr : layers[0].find("0");
  const int64_t tokens = first && first->ndim() == 4 ? first->dim(2) : 0;
  for (size_t l = 0; l < layers.size(); ++l)
    check_standard_layer(layers[l], int(l), layout, tokens, source);
  if (tokens == 0) fail(ErrorCode::format, "{}: the cache holds no tokens", source);

  const int bs = layout.block_size;
  auto pool = std::make_shared<BlockPool>(
      layout, (tokens + std::max<int64_t>(extra_tokens, 0) + bs - 1) / bs + 1);
  auto cache = std::make_shared<KvCache>(pool);
  std::vector<int32_t> slots = cache->prepare_append(tokens);
  Tensor slot_tensor =
      ops::to_device(Tensor::from_vector(slots, {int64_t(slots.size())}), layout.device);
  for (int l = 0; l < layout.n_layers; ++l) {
    const LayerCacheState& s = layers[size_t(l)];
    Tensor k = tokens_major(*s.find("0"), layout.device);
    Tensor v = tokens_major(*s.find("1"), layout.device);
    Tensor k_cache = pool->keys(l), v_cache = pool->values(l);
    ops::write_kv(k, v, slot_tensor, k_cache, v_cache);
  }
  cache->commit(tokens);
  return cache;
}

}  // namespace hearth::kv
