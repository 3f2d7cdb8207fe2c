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
  const size_t rows = size_t(n_kv_heads) * block_size;
  if (!quantized()) return rows * head_dim * dtype_size(dtype);
  // Packed codes plus a scale and a bias per group.
  return rows * (size_t(head_dim) * kv_bits / 8 +
                 2 * size_t(head_dim / kv_group_size) * dtype_size(dtype));
}

size_t KvLayout::block_bytes() const {
  return 2 * size_t(n_layers) * block_bytes_per_layer();
}

BlockPool::BlockPool(const KvLayout& layout, int64_t max_blocks)
    : layout_(layout), max_blocks_(max_blocks) {
  if (!(layout.n_layers > 0 && layout.n_kv_heads > 0 && layout.head_dim > 0 &&
        layout.block_size > 0 && max_blocks > 0))
    fail(ErrorCode::invalid_argument,
         "KV pool: layers {}, kv heads {}, head_dim {}, block size {} and blocks {} must all be "
         "positive",
         layout.n_layers, layout.n_kv_heads, layout.head_dim, layout.block_size, max_blocks);
  if (layout.quantized())
    ops::check_kv_quantization("quantized KV cache", layout.kv_bits, layout.kv_group_size,
                               layout.head_dim);
  const int64_t rows_shape[3] = {max_blocks, layout.n_kv_heads, layout.block_size};
  auto plane = [&](int64_t last, DType dtype) {
    Dims shape{rows_shape[0], rows_shape[1], rows_shape[2], last};
    if (!layout.device.is_cpu()) return Tensor::empty(shape, dtype, layout.device);
    size_t bytes =
        size_t(max_blocks) * layout.n_kv_heads * layout.block_size * last * dtype_size(dtype);
    return Tensor::view_of(reserve_host(bytes), 0, shape, dtype);
  };
  planes_.resize(size_t(layout.n_layers));
  for (auto& planes : planes_) {
    for (int kv = 0; kv < 2; ++kv) {
      if (!layout.quantized()) {
        planes.push_back(plane(layout.head_dim, layout.dtype));
        continue;
      }
      planes.push_back(plane(int64_t(layout.head_dim) * layout.kv_bits / 32, DType::u32));
      planes.push_back(plane(layout.head_dim / layout.kv_group_size, layout.dtype));
      planes.push_back(plane(layout.head_dim / layout.kv_group_size, layout.dtype));
    }
  }
  refs_.assign(size_t(max_blocks), 0);
  free_.reserve(size_t(max_blocks));
  for (int64_t b = max_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

const Tensor& BlockPool::keys(int layer) const {
  HEARTH_CHECK(!layout_.quantized(), "dense keys of a {}-bit quantized KV pool", layout_.kv_bits);
  return planes_[size_t(layer)][0];
}

const Tensor& BlockPool::values(int layer) const {
  HEARTH_CHECK(!layout_.quantized(), "dense values of a {}-bit quantized KV pool", layout_.kv_bits);
  return planes_[size_t(layer)][1];
}

ops::QuantizedKvPlanes BlockPool::quantized_planes(int layer) const {
  HEARTH_CHECK(layout_.quantized(), "quantized planes of a dense KV pool");
  const std::vector<Tensor>& p = planes_[size_t(layer)];
  ops::QuantizedKvPlanes q;
  q.k_packed = p[0];
  q.k_scales = p[1];
  q.k_biases = p[2];
  q.v_packed = p[3];
  q.v_scales = p[4];
  q.v_biases = p[5];
  q.bits = layout_.kv_bits;
  q.group_size = layout_.kv_group_size;
  return q;
}

void BlockPool::copy_block(int32_t from, int32_t to) {
  HEARTH_CHECK(from >= 0 && from < max_blocks_ && refs_[from] > 0, "copy_block from {}", from);
  HEARTH_CHECK(to >= 0 && to < max_blocks_ && refs_[to] > 0, "copy_block to {}", to);
  if (from == to) return;
  for (int l = 0; l < layout_.n_layers; ++l) {
    for (Tensor& plane : layer_planes(l)) {
      Tensor dst = plane.select(0, to);
      ops::copy(plane.select(0, from), dst);
    }
  }
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

}  // namespace hearth::kv
