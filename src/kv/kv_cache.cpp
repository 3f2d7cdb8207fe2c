#include "kv/kv_cache.h"

namespace hearth::kv {

KvCache::KvCache(std::shared_ptr<BlockPool> pool) : pool_(std::move(pool)) {}

KvCache::~KvCache() {
  for (int32_t b : blocks_) pool_->release(b);
}

std::vector<int32_t> KvCache::prepare_append(int64_t n) {
  HEARTH_CHECK(n >= 0);
  const int bs = pool_->layout().block_size;
  int64_t needed_blocks = (length_ + n + bs - 1) / bs;
  while (int64_t(blocks_.size()) < needed_blocks) blocks_.push_back(pool_->allocate());
  std::vector<int32_t> slots(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t t = length_ + i;
    slots[size_t(i)] = int32_t(int64_t(blocks_[size_t(t / bs)]) * bs + t % bs);
  }
  pending_ = n;
  return slots;
}

void KvCache::commit(int64_t n) {
  HEARTH_CHECK(n <= pending_, "commit of {} tokens, {} prepared", n, pending_);
  length_ += n;
  pending_ = 0;
}

int64_t KvCache::trim(int64_t n) {
  n = std::min(n, length_);
  length_ -= n;
  pending_ = 0;
  const int bs = pool_->layout().block_size;
  size_t keep_blocks = size_t((length_ + bs - 1) / bs);
  while (blocks_.size() > keep_blocks) {
    pool_->release(blocks_.back());
    blocks_.pop_back();
  }
  return n;
}

}  // namespace hearth::kv
