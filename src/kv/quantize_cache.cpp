// Conversion of a dense paged cache into a quantized one, and the temporal-order access to one
// layer's quantized planes. Everything runs on the pool's device: tokens are gathered block by
// block as strided views and go through the same write_kv_quantized op as generation, so a
// converted cache is bit-identical to one quantized on write.
#include "kv/quantize_cache.h"

#include "ops/copy.h"
#include "ops/quantized_attention.h"

namespace hearth::kv {
namespace {

Tensor slots_tensor(const std::vector<int32_t>& slots, Device device) {
  return ops::to_device(Tensor::from_vector(slots, {int64_t(slots.size())}), device);
}

// Calls fn(block, t0, m) for each block of `cache` holding tokens [t0, t0 + m) of [0, tokens).
template <typename Fn>
void for_each_block(const KvCache& cache, int64_t tokens, Fn&& fn) {
  const int64_t bs = cache.pool().layout().block_size;
  for (int64_t t0 = 0; t0 < tokens; t0 += bs)
    fn(cache.blocks()[size_t(t0 / bs)], t0, std::min(bs, tokens - t0));
}

// The six planes of a layer in the order of QuantizedLayerState.
std::array<Tensor, 6> planes_of(const ops::QuantizedKvPlanes& p) {
  return {p.k_packed, p.k_scales, p.k_biases, p.v_packed, p.v_scales, p.v_biases};
}
std::array<Tensor*, 6> planes_of(QuantizedLayerState& s) {
  return {&s.k_packed, &s.k_scales, &s.k_biases, &s.v_packed, &s.v_scales, &s.v_biases};
}
constexpr const char* kPlaneNames[6] = {"k_packed", "k_scales", "k_biases",
                                        "v_packed", "v_scales", "v_biases"};

void require_quantized(const KvCache& cache, const char* what) {
  if (!cache.pool().layout().quantized())
    fail(ErrorCode::invalid_argument, "{}: the KV cache is not quantized", what);
}

}  // namespace

std::shared_ptr<KvCache> quantize_cache(const KvCache& dense, int bits, int group_size) {
  const KvLayout& layout = dense.pool().layout();
  if (layout.quantized())
    fail(ErrorCode::invalid_argument,
         "quantize_cache: the KV cache is already quantized ({} bits, group size {})",
         layout.kv_bits, layout.kv_group_size);
  for (int l = 0; l < dense.n_layers(); ++l)
    if (dense.policy(l).rotating())
      fail(ErrorCode::unsupported,
           "quantize_cache: layer {} is a rotating cache, which cannot be quantized (mlx-lm has no "
           "rotating quantized cache)",
           l);
  KvLayout q_layout = layout;
  q_layout.kv_bits = bits;
  q_layout.kv_group_size = group_size;
  auto pool = std::make_shared<BlockPool>(q_layout, dense.pool().max_blocks());
  auto cache = std::make_shared<KvCache>(pool);
  const int64_t n = dense.size();
  if (n == 0) return cache;
  Tensor slots = slots_tensor(cache->prepare_append(n), layout.device);
  for (int l = 0; l < layout.n_layers; ++l) {
    ops::QuantizedKvPlanes planes = pool->quantized_planes(l);
    const Tensor& keys = dense.pool().keys(l);
    const Tensor& values = dense.pool().values(l);
    for_each_block(dense, n, [&](int32_t block, int64_t t0, int64_t m) {
      // [n_kv, m, d] rows of the block viewed as [m, n_kv, d] tokens.
      Tensor k = keys.select(0, block).slice(1, 0, m).transpose(0, 1);
      Tensor v = values.select(0, block).slice(1, 0, m).transpose(0, 1);
      ops::write_kv_quantized(k, v, slots.slice(0, t0, t0 + m), planes);
    });
  }
  cache->commit(n);
  return cache;
}

std::shared_ptr<KvCache> maybe_quantize_cache(std::shared_ptr<KvCache> cache,
                                              const KvQuantizationOptions& options) {
  if (options.bits <= 0 || !cache || cache->pool().layout().quantized()) return cache;
  if (cache->size() < options.start) return cache;
  return quantize_cache(*cache, options.bits, options.group_size);
}

QuantizedLayerState read_quantized_layer(const KvCache& cache, int layer) {
  require_quantized(cache, "read_quantized_layer");
  const KvLayout& layout = cache.pool().layout();
  if (layer < 0 || layer >= layout.n_layers)
    fail(ErrorCode::invalid_argument, "read_quantized_layer: layer {} of {}", layer,
         layout.n_layers);
  const int64_t tokens = cache.size();
  std::array<Tensor, 6> planes = planes_of(cache.pool().quantized_planes(layer));
  QuantizedLayerState state;
  std::array<Tensor*, 6> out = planes_of(state);
  for (int i = 0; i < 6; ++i) {
    const Tensor& plane = planes[size_t(i)];
    Tensor gathered =
        Tensor::empty({1, plane.dim(1), tokens, plane.dim(3)}, plane.dtype(), plane.device());
    for_each_block(cache, tokens, [&](int32_t block, int64_t t0, int64_t m) {
      Tensor dst = gathered.select(0, 0).slice(1, t0, t0 + m);
      ops::copy(plane.select(0, block).slice(1, 0, m), dst);
    });
    *out[size_t(i)] = ops::to_device(gathered, Device::cpu());
  }
  return state;
}

void write_quantized_layer(KvCache& cache, int layer, const QuantizedLayerState& state) {
  const char* what = "write_quantized_layer";
  require_quantized(cache, what);
  const KvLayout& layout = cache.pool().layout();
  if (layer < 0 || layer >= layout.n_layers)
    fail(ErrorCode::invalid_argument, "{}: layer {} of {}", what, layer, layout.n_layers);
  std::array<Tensor, 6> planes = planes_of(cache.pool().quantized_planes(layer));
  QuantizedLayerState copy = state;
  std::array<Tensor*, 6> in = planes_of(copy);
  if (!in[0]->defined() || in[0]->ndim() != 4)
    fail(ErrorCode::invalid_argument, "{}: layer {} k_packed must be a 4-d tensor", what, layer);
  const int64_t tokens = in[0]->dim(2);
  if (tokens > cache.size())
    fail(ErrorCode::invalid_argument, "{}: layer {} has {} tokens but the cache holds {}", what,
         layer, tokens, cache.size());
  for (int i = 0; i < 6; ++i) {
    const Tensor& plane = planes[size_t(i)];
    const Tensor& src = *in[size_t(i)];
    const Dims expected{1, plane.dim(1), tokens, plane.dim(3)};
    if (!src.defined() || !(src.shape() == expected) || src.dtype() != plane.dtype())
      fail(ErrorCode::invalid_argument,
           "{}: layer {} {} must be {} {} ({}-bit codes, group size {}), got {}", what, layer,
           kPlaneNames[i], dtype_name(plane.dtype()), expected.str(), layout.kv_bits,
           layout.kv_group_size, src.defined() ? src.describe() : std::string("nothing"));
    Tensor on_device = ops::to_device(src, plane.device());
    for_each_block(cache, tokens, [&](int32_t block, int64_t t0, int64_t m) {
      Tensor dst = plane.select(0, block).slice(1, 0, m);
      ops::copy(on_device.select(0, 0).slice(1, t0, t0 + m), dst);
    });
  }
}

std::shared_ptr<KvCache> make_quantized_cache(const KvLayout& layout,
                                              const std::vector<QuantizedLayerState>& layers,
                                              int64_t extra_tokens) {
  if (!layout.quantized())
    fail(ErrorCode::invalid_argument, "make_quantized_cache: the layout has no kv_bits");
  if (int64_t(layers.size()) != layout.n_layers)
    fail(ErrorCode::invalid_argument, "make_quantized_cache: {} layer states for {} layers",
         layers.size(), layout.n_layers);
  const int64_t tokens =
      layers.empty() || !layers[0].k_packed.defined() || layers[0].k_packed.ndim() != 4
          ? 0
          : layers[0].k_packed.dim(2);
  const int64_t bs = layout.block_size;
  auto pool = std::make_shared<BlockPool>(
      layout, (tokens + std::max<int64_t>(extra_tokens, 0) + bs - 1) / bs + 1);
  auto cache = std::make_shared<KvCache>(pool);
  cache->prepare_append(tokens);
  cache->commit(tokens);
  for (int l = 0; l < layout.n_layers; ++l) write_quantized_layer(*cache, l, layers[size_t(l)]);
  return cache;
}

}  // namespace hearth::kv
