#include "kv/kv_cache.h"

#include "ops/copy.h"

namespace hearth::kv {

KvCache::KvCache(std::shared_ptr<BlockPool> pool)
    : KvCache(pool, std::vector<CachePolicy>(size_t(pool->layout().n_layers))) {}

KvCache::KvCache(std::shared_ptr<BlockPool> pool, const std::vector<CachePolicy>& layer_policies)
    : pool_(std::move(pool)) {
  if (int64_t(layer_policies.size()) != pool_->layout().n_layers)
    fail(ErrorCode::invalid_argument, "KV cache: {} layer policies for a model of {} layers",
         layer_policies.size(), pool_->layout().n_layers);
  std::vector<CachePolicy> distinct;
  for (const CachePolicy& p : layer_policies) {
    size_t g = 0;
    while (g < distinct.size() && !(distinct[g] == p)) ++g;
    if (g == distinct.size()) {
      distinct.push_back(p);
      groups_.emplace_back(pool_, p);
    }
    group_of_layer_.push_back(int(g));
  }
}

KvCache::~KvCache() = default;

int64_t KvCache::size() const {
  return groups_[0].offset();
}

std::vector<std::vector<int32_t>> KvCache::prepare_groups(int64_t n) {
  std::vector<std::vector<int32_t>> slots;
  for (LayerCache& g : groups_) slots.push_back(g.prepare_append(n));
  return slots;
}

void KvCache::commit(int64_t n) {
  for (LayerCache& g : groups_) g.commit(n);
}

std::vector<int32_t> KvCache::prepare_append(int64_t n) {
  HEARTH_CHECK(groups_.size() == 1, "prepare_append on a cache of {} layer groups", groups_.size());
  return groups_[0].prepare_append(n);
}

const std::vector<int32_t>& KvCache::blocks() const {
  HEARTH_CHECK(groups_.size() == 1, "blocks() of a cache of {} layer groups", groups_.size());
  return groups_[0].blocks();
}

bool KvCache::is_trimmable() const {
  for (const LayerCache& g : groups_)
    if (!g.is_trimmable()) return false;
  return true;
}

int64_t KvCache::trim(int64_t n) {
  int64_t trimmed = 0;
  for (LayerCache& g : groups_) trimmed = g.trim(n);
  return trimmed;
}

void KvCache::clear() {
  for (LayerCache& g : groups_) g = LayerCache(pool_, g.policy());
}

size_t KvCache::nbytes() const {
  size_t total = 0;
  for (const LayerCache& g : groups_) total += g.nbytes();
  return total;
}

KvSnapshot KvCache::snapshot() const {
  KvSnapshot snap;
  snap.pool_ = pool_;
  snap.groups_ = groups_;  // copies retain the blocks
  return snap;
}

void KvCache::restore(const KvSnapshot& snap) {
  if (snap.pool_ != pool_ || snap.groups_.size() != groups_.size())
    fail(ErrorCode::invalid_argument,
         "KV cache restore: the snapshot was taken from a cache of another pool or layout");
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (!(snap.groups_[g].policy() == groups_[g].policy()))
      fail(ErrorCode::invalid_argument, "KV cache restore: layer group {} has another policy", g);
    groups_[g] = snap.groups_[g];
  }
}

LayerState KvCache::read_state(int l) const {
  HEARTH_CHECK(l >= 0 && l < n_layers(), "layer {}", l);
  const LayerCache& c = layer(l);
  const KvLayout& layout = pool_->layout();
  const int64_t n = c.state_length();
  LayerState s;
  s.offset = c.offset();
  s.idx = c.idx();
  s.keys = Tensor::empty({1, layout.n_kv_heads, n, layout.head_dim}, layout.dtype, Device::cpu());
  s.values = Tensor::empty({1, layout.n_kv_heads, n, layout.head_dim}, layout.dtype, Device::cpu());
  const int bs = layout.block_size;
  for (int64_t i = 0; i < n;) {
    const int64_t len = std::min<int64_t>(bs - i % bs, n - i);
    const int64_t block = c.blocks()[size_t(i / bs)], row = i % bs;
    for (int kv = 0; kv < 2; ++kv) {
      const Tensor& plane = kv == 0 ? pool_->keys(l) : pool_->values(l);
      Tensor& out = kv == 0 ? s.keys : s.values;
      Tensor dst = out.select(0, 0).slice(1, i, i + len);
      // Strided runs are gathered on the pool's device first: transfers copy contiguous tensors.
      ops::copy(ops::to_device(ops::contiguous(plane.select(0, block).slice(1, row, row + len)),
                               Device::cpu()),
                dst);
    }
    i += len;
  }
  return s;
}

void KvCache::write_state(const std::vector<LayerState>& states) {
  const KvLayout& layout = pool_->layout();
  if (int64_t(states.size()) != layout.n_layers)
    fail(ErrorCode::format, "KV cache state: {} layers for a model of {} layers", states.size(),
         layout.n_layers);
  std::vector<bool> loaded(groups_.size(), false);
  for (int l = 0; l < layout.n_layers; ++l) {
    const LayerState& s = states[size_t(l)];
    for (const Tensor* t : {&s.keys, &s.values})
      if (!t->defined() || t->ndim() != 4 || t->dim(0) != 1 || t->dim(1) != layout.n_kv_heads ||
          t->dim(3) != layout.head_dim || t->dim(2) != s.keys.dim(2))
        fail(ErrorCode::format,
             "KV cache state of layer {}: keys/values must be [1, {}, n, {}], got {} and {}", l,
             layout.n_kv_heads, layout.head_dim, s.keys.defined() ? s.keys.shape().str() : "none",
             s.values.defined() ? s.values.shape().str() : "none");
    const int64_t n = s.keys.dim(2);
    LayerCache& c = groups_[size_t(group_of(l))];
    if (!loaded[size_t(group_of(l))]) {
      c.reset_to_state(n, s.offset, s.idx);
      loaded[size_t(group_of(l))] = true;
    } else if (c.offset() != s.offset || c.idx() != s.idx || c.buffer_length() != n) {
      fail(ErrorCode::format,
           "KV cache state of layer {}: offset {} / _idx {} / {} slots differ from the other "
           "layers with the same cache policy ({} / {} / {})",
           l, s.offset, s.idx, n, c.offset(), c.idx(), c.buffer_length());
    }
    const int bs = layout.block_size;
    for (int64_t i = 0; i < n;) {
      const int64_t len = std::min<int64_t>(bs - i % bs, n - i);
      const int64_t block = c.blocks()[size_t(i / bs)], row = i % bs;
      for (int kv = 0; kv < 2; ++kv) {
        const Tensor& plane = kv == 0 ? pool_->keys(l) : pool_->values(l);
        const Tensor& in = kv == 0 ? s.keys : s.values;
        Tensor dst = plane.select(0, block).slice(1, row, row + len);
        Tensor run =
            ops::contiguous(ops::cast(in.select(0, 0).slice(1, i, i + len), plane.dtype()));
        ops::copy(ops::to_device(run, plane.device()), dst);
      }
      i += len;
    }
  }
}

}  // namespace hearth::kv
