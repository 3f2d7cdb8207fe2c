#include "kv/block_pool.h"

#include <sys/mman.h>

#include "core/memory_stats.h"
#include "ops/copy.h"

namespace hearth::kv {
namespace {

// Anonymous mapping reserved but not committed: Linux backs pages on first touch.
std::shared_ptr<Storage> reserve_host(size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    fail(ErrorCode::out_of_memory, "cannot reserve {} bytes of address space for the KV cache",
         bytes);
  std::shared_ptr<void> owner(p, [bytes](void* q) { ::munmap(q, bytes); });
  return Storage::borrow(p, bytes, Device::cpu(), owner, 0);
}

}  // namespace

size_t KvLayout::block_bytes_per_layer() const {
  return size_t(n_kv_heads) * block_size * head_dim * dtype_size(dtype);
}

size_t KvLayout::block_bytes() const {
  return 2 * size_t(n_layers) * block_bytes_per_layer();
}

BlockPool::BlockPool(const KvLayout& layout, int64_t max_blocks)
    : layout_(layout), max_blocks_(max_blocks) {
  HEARTH_CHECK(layout.n_layers > 0 && layout.n_kv_heads > 0 && layout.head_dim > 0 &&
               layout.block_size > 0 && max_blocks > 0);
  Dims shape{max_blocks, layout.n_kv_heads, layout.block_size, layout.head_dim};
  size_t bytes = size_t(max_blocks) * layout.block_bytes_per_layer();
  for (int l = 0; l < layout.n_layers; ++l) {
    if (layout.device.is_cpu()) {
      keys_.push_back(Tensor::view_of(reserve_host(bytes), 0, shape, layout.dtype));
      values_.push_back(Tensor::view_of(reserve_host(bytes), 0, shape, layout.dtype));
    } else {
      keys_.push_back(Tensor::empty(shape, layout.dtype, layout.device));
      values_.push_back(Tensor::empty(shape, layout.dtype, layout.device));
    }
  }
  refs_.assign(size_t(max_blocks), 0);
  free_.reserve(size_t(max_blocks));
  for (int64_t b = max_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

BlockPool::~BlockPool() {
  if (layout_.device.is_cpu() && in_use_ > 0)
    memory::note_freed(DeviceKind::cpu, size_t(in_use_) * layout_.block_bytes());
}

int32_t BlockPool::allocate() {
  if (free_.empty())
    fail(ErrorCode::out_of_memory, "KV cache is full: all {} blocks of {} tokens are in use",
         max_blocks_, layout_.block_size);
  int32_t block = free_.back();
  free_.pop_back();
  refs_[block] = 1;
  ++in_use_;
  // Device pools are allocated up front (and accounted by their allocator); host blocks count
  // when they come into use.
  if (layout_.device.is_cpu()) memory::note_allocated(DeviceKind::cpu, layout_.block_bytes());
  return block;
}

void BlockPool::retain(int32_t block) {
  HEARTH_CHECK(block >= 0 && block < max_blocks_ && refs_[block] > 0, "retain of block {}", block);
  ++refs_[block];
}

void BlockPool::release(int32_t block) {
  HEARTH_CHECK(block >= 0 && block < max_blocks_ && refs_[block] > 0, "release of block {}", block);
  if (--refs_[block] == 0) {
    free_.push_back(block);
    --in_use_;
    if (layout_.device.is_cpu()) memory::note_freed(DeviceKind::cpu, layout_.block_bytes());
  }
}

void BlockPool::copy_block(int32_t from, int32_t to) {
  HEARTH_CHECK(from >= 0 && from < max_blocks_ && refs_[from] > 0 && to >= 0 && to < max_blocks_ &&
                   refs_[to] > 0 && from != to,
               "copy_block {} -> {}", from, to);
  for (int l = 0; l < layout_.n_layers; ++l) {
    Tensor kd = keys_[size_t(l)].select(0, to);
    Tensor vd = values_[size_t(l)].select(0, to);
    ops::copy(keys_[size_t(l)].select(0, from), kd);
    ops::copy(values_[size_t(l)].select(0, from), vd);
  }
}

}  // namespace hearth::kv
