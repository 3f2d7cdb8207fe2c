#include "kv/layer_cache.h"

#include <algorithm>

#include "ops/copy.h"

namespace hearth::kv {
namespace {

// mlx-lm grows a rotating buffer (and a standard one) by this many slots at a time.
constexpr int64_t kGrowStep = 256;

}  // namespace

LayerCache::LayerCache(std::shared_ptr<BlockPool> pool, CachePolicy policy)
    : pool_(std::move(pool)), policy_(policy) {
  if (policy_.max_size < 0 || policy_.keep < 0 ||
      (policy_.rotating() && policy_.keep >= policy_.max_size))
    fail(ErrorCode::invalid_argument,
         "rotating KV cache: keep ({}) must be >= 0 and below max_size ({})", policy_.keep,
         policy_.max_size);
}

LayerCache::~LayerCache() {
  release_all();
}

LayerCache::LayerCache(const LayerCache& other)
    : pool_(other.pool_),
      policy_(other.policy_),
      blocks_(other.blocks_),
      slot_pos_(other.slot_pos_),
      offset_(other.offset_),
      idx_(other.idx_),
      buffer_len_(other.buffer_len_) {
  for (int32_t b : blocks_) pool_->retain(b);
}

LayerCache& LayerCache::operator=(const LayerCache& other) {
  if (this == &other) return *this;
  // Retain first: `other` may share blocks with this cache.
  for (int32_t b : other.blocks_) other.pool_->retain(b);
  release_all();
  pool_ = other.pool_;
  policy_ = other.policy_;
  blocks_ = other.blocks_;
  slot_pos_ = other.slot_pos_;
  offset_ = other.offset_;
  idx_ = other.idx_;
  buffer_len_ = other.buffer_len_;
  pending_ = 0;
  return *this;
}

void LayerCache::release_all() {
  if (!pool_) return;
  for (int32_t b : blocks_) pool_->release(b);
  blocks_.clear();
  slot_pos_.clear();
}

int64_t LayerCache::size() const {
  return policy_.rotating() ? std::min(offset_, policy_.max_size) : offset_;
}

int64_t LayerCache::state_length() const {
  return std::min(offset_, buffer_len_);
}

int64_t LayerCache::pool_slot(int64_t logical) const {
  const int bs = pool_->layout().block_size;
  HEARTH_CHECK(logical >= 0 && logical / bs < int64_t(blocks_.size()), "slot {} of {} blocks",
               logical, blocks_.size());
  return int64_t(blocks_[size_t(logical / bs)]) * bs + logical % bs;
}

void LayerCache::make_writable(int64_t slot) {
  const int bs = pool_->layout().block_size;
  const size_t b = size_t(slot / bs);
  while (blocks_.size() <= b) {
    blocks_.push_back(pool_->allocate());
    slot_pos_.resize(blocks_.size() * size_t(bs), -1);
  }
  if (pool_->ref_count(blocks_[b]) > 1) {  // shared with a snapshot: copy on write
    int32_t fresh = pool_->allocate();
    pool_->copy_block(blocks_[b], fresh);
    pool_->release(blocks_[b]);
    blocks_[b] = fresh;
  }
}

void LayerCache::relayout(const std::vector<int64_t>& order) {
  const int bs = pool_->layout().block_size;
  const int64_t n = int64_t(order.size());
  const size_t needed = size_t((n + bs - 1) / bs);
  bool identity = true;
  for (int64_t i = 0; i < n && identity; ++i) identity = order[size_t(i)] == i;
  if (identity) {  // a prefix of the buffer: keep its blocks
    while (blocks_.size() > needed) {
      pool_->release(blocks_.back());
      blocks_.pop_back();
    }
    slot_pos_.resize(blocks_.size() * size_t(bs));
    return;
  }
  std::vector<int32_t> fresh;
  fresh.reserve(needed);
  for (size_t b = 0; b < needed; ++b) fresh.push_back(pool_->allocate());
  std::vector<int32_t> positions(needed * size_t(bs), -1);
  // Copy runs of rows that are consecutive in the old buffer and stay within one block of each.
  const KvLayout& layout = pool_->layout();
  for (int64_t i = 0; i < n;) {
    const int64_t src = order[size_t(i)];
    int64_t len = 1;
    while (i + len < n && order[size_t(i + len)] == src + len && (i + len) % bs != 0 &&
           (src + len) % bs != 0)
      ++len;
    const int64_t sb = blocks_[size_t(src / bs)], sr = src % bs;
    const int64_t db = fresh[size_t(i / bs)], dr = i % bs;
    for (int l = 0; l < layout.n_layers; ++l) {
      for (const Tensor* plane : {&pool_->keys(l), &pool_->values(l)}) {
        Tensor from = plane->select(0, sb).slice(1, sr, sr + len);
        Tensor to = plane->select(0, db).slice(1, dr, dr + len);
        ops::copy(from, to);
      }
    }
    for (int64_t k = 0; k < len; ++k) positions[size_t(i + k)] = slot_pos_[size_t(src + k)];
    i += len;
  }
  for (int32_t b : blocks_) pool_->release(b);
  blocks_ = std::move(fresh);
  slot_pos_ = std::move(positions);
}

std::vector<int32_t> LayerCache::prepare_append(int64_t n) {
  HEARTH_CHECK(n >= 0);
  std::vector<int32_t> slots;
  slots.reserve(size_t(n));
  auto write_at = [&](int64_t logical, int64_t position) {
    make_writable(logical);
    slot_pos_[size_t(logical)] = int32_t(position);
    slots.push_back(int32_t(pool_slot(logical)));
  };
  pending_ = n;
  if (!policy_.rotating()) {
    for (int64_t i = 0; i < n; ++i) write_at(offset_ + i, offset_ + i);
    next_idx_ = next_buffer_len_ = step_context_ = offset_ + n;
    step_in_place_ = false;
    return slots;
  }
  const int64_t keep = policy_.keep, max_size = policy_.max_size;
  if (n == 1) {
    // RotatingKVCache._update_in_place.
    const int64_t prev = offset_;
    if (buffer_len_ == 0 || (prev >= buffer_len_ && buffer_len_ < max_size)) {
      const int64_t grow = std::min(kGrowStep, max_size - prev);
      HEARTH_CHECK(grow > 0, "rotating cache: offset {} past max_size {} with a short buffer", prev,
                   max_size);
      buffer_len_ += grow;
      idx_ = prev;
    }
    const int64_t trim_size = buffer_len_ - max_size;
    if (trim_size > 0) {  // left long by a multi-token update: drop its oldest non-sink rows
      std::vector<int64_t> order;
      for (int64_t i = 0; i < keep; ++i) order.push_back(i);
      for (int64_t i = trim_size + keep; i < buffer_len_; ++i) order.push_back(i);
      relayout(order);
      buffer_len_ = max_size;
      idx_ = max_size;
    }
    if (idx_ == max_size) idx_ = keep;  // rotate
    write_at(idx_, offset_);
    next_idx_ = idx_ + 1;
    next_buffer_len_ = buffer_len_;
    step_context_ = offset_ + 1 < max_size ? offset_ + 1 : buffer_len_;
    step_in_place_ = true;
    return slots;
  }
  // RotatingKVCache._update_concat: temporal order, keep the last max_size - 1 (and the sinks),
  // append the new tokens.
  std::vector<int64_t> order;
  if (idx_ == buffer_len_) {
    for (int64_t i = 0; i < buffer_len_; ++i) order.push_back(i);
  } else if (idx_ < offset_) {
    for (int64_t i = 0; i < keep; ++i) order.push_back(i);
    for (int64_t i = idx_; i < buffer_len_; ++i) order.push_back(i);
    for (int64_t i = keep; i < idx_; ++i) order.push_back(i);
  } else {
    for (int64_t i = 0; i < idx_; ++i) order.push_back(i);
  }
  const int64_t trim_size = int64_t(order.size()) - max_size + 1;
  if (trim_size > 0) order.erase(order.begin() + keep, order.begin() + keep + trim_size);
  relayout(order);
  const int64_t base = int64_t(order.size());
  for (int64_t i = 0; i < n; ++i) write_at(base + i, offset_ + i);
  next_idx_ = next_buffer_len_ = step_context_ = base + n;
  step_in_place_ = false;
  return slots;
}

void LayerCache::commit(int64_t n) {
  HEARTH_CHECK(n == pending_, "commit of {} tokens, {} prepared", n, pending_);
  offset_ += n;
  idx_ = next_idx_;
  buffer_len_ = next_buffer_len_;
  pending_ = 0;
}

StepAttention LayerCache::step_attention(int model_window) const {
  StepAttention a;
  a.context = step_context_;
  if (!policy_.rotating()) {
    a.window = model_window;
    return a;
  }
  const int64_t max_size = policy_.max_size;
  if (!step_in_place_) {
    // mlx-lm's make_mask(N > 1): a causal mask with window (window_size or max_size) in buffer
    // order; the buffer is in temporal order here.
    a.window = model_window > 0 ? model_window : int(max_size);
    return a;
  }
  // One token: the whole buffer is visible, unless the model's window is smaller than the ring
  // and the ring holds more than a window (mlx-lm's rolled mask): then mask by position. The
  // window is the multi-token one either way (it hides nothing here: context <= the window), so
  // that sequences of one batch in either mode share it.
  a.window = model_window > 0 ? model_window : int(max_size);
  a.use_positions = model_window > 0 && model_window < max_size && offset_ >= model_window;
  return a;
}

bool LayerCache::is_trimmable() const {
  return !policy_.rotating() || offset_ < policy_.max_size;
}

int64_t LayerCache::trim(int64_t n) {
  n = std::clamp<int64_t>(n, 0, offset_);
  offset_ -= n;
  idx_ -= n;
  pending_ = 0;
  if (!policy_.rotating()) {
    buffer_len_ = offset_;
    const int bs = pool_->layout().block_size;
    const size_t keep_blocks = size_t((offset_ + bs - 1) / bs);
    while (blocks_.size() > keep_blocks) {
      pool_->release(blocks_.back());
      blocks_.pop_back();
    }
    slot_pos_.resize(blocks_.size() * size_t(bs));
  }
  return n;
}

size_t LayerCache::nbytes() const {
  return blocks_.size() * pool_->layout().block_bytes();
}

void LayerCache::reset_to_state(int64_t n, int64_t offset, int64_t idx) {
  const char* kind = policy_.rotating() ? "RotatingKVCache" : "KVCache";
  if (n < 0 || n > offset || idx < 0 || idx > n)
    fail(ErrorCode::format, "{} state: {} slots with offset {} and _idx {} are inconsistent", kind,
         n, offset, idx);
  if (!policy_.rotating() && (n != offset || idx != offset))
    fail(ErrorCode::format, "KVCache state: {} slots but offset {}", n, offset);
  if (policy_.rotating() && n < offset && n < policy_.max_size - 1)
    fail(ErrorCode::format, "RotatingKVCache state: {} slots cannot hold offset {} (max_size {})",
         n, offset, policy_.max_size);
  release_all();
  pending_ = 0;
  for (int64_t i = 0; i < n; ++i) make_writable(i);
  offset_ = offset;
  idx_ = idx;
  buffer_len_ = n;
  // Positions: the buffer's temporal order (as _temporal_order sees it) ends at offset - 1; the
  // sinks of a buffer that lost tokens are the first `keep`.
  std::vector<int64_t> order;
  if (idx == n) {
    for (int64_t i = 0; i < n; ++i) order.push_back(i);
  } else {  // a wrapped ring: sinks, then the oldest slot at idx
    for (int64_t i = 0; i < policy_.keep; ++i) order.push_back(i);
    for (int64_t i = idx; i < n; ++i) order.push_back(i);
    for (int64_t i = policy_.keep; i < idx; ++i) order.push_back(i);
  }
  const int64_t len = int64_t(order.size());
  for (int64_t k = 0; k < len; ++k) {
    int64_t position = (offset == len || k < policy_.keep) ? k : offset - len + k;
    slot_pos_[size_t(order[size_t(k)])] = int32_t(position);
  }
}

}  // namespace hearth::kv
