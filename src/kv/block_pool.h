// The paged KV pool (ARCHITECTURE.md decision 5): fixed-size token blocks, shared by all layers
// of a model, drawn from one pool. A sequence owns a block table; blocks are reference counted so
// that snapshots and prefix sharing never copy KV that did not change.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "ops/quantized_attention.h"

namespace hearth::kv {

struct KvLayout {
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int block_size = 32;       // tokens per block
  DType dtype = DType::f32;  // dense K/V; for a quantized pool, the scales' and biases' dtype
  Device device = Device::cpu();
  // 0: dense K/V. Otherwise K/V are stored as MLX affine codes of kv_bits bits, with a scale and a
  // bias per kv_group_size values of each token's head vector (ops/quantized_attention.h).
  int kv_bits = 0;
  int kv_group_size = 64;

  bool quantized() const { return kv_bits > 0; }
  size_t block_bytes_per_layer() const;  // one of K or V, one layer, every plane
  size_t block_bytes() const;            // K and V, all layers
};

class BlockPool {
 public:
  // Reserves room for max_blocks blocks. On the CPU the reservation is virtual (pages are touched
  // only when a block is first written), so a generous max_blocks costs nothing up front.
  BlockPool(const KvLayout& layout, int64_t max_blocks);
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  const KvLayout& layout() const { return layout_; }
  int64_t max_blocks() const { return max_blocks_; }
  int64_t blocks_in_use() const { return in_use_; }
  size_t bytes_in_use() const { return size_t(in_use_) * layout_.block_bytes(); }

  // A fresh block with reference count 1; out_of_memory error when the pool is exhausted.
  int32_t allocate();
  void retain(int32_t block);
  void release(int32_t block);
  int32_t ref_count(int32_t block) const { return refs_[block]; }
  // Copies every plane of every layer of block `from` into block `to` (copy-on-write of a shared
  // block). Both must be allocated.
  void copy_block(int32_t from, int32_t to);

  // [max_blocks, n_kv_heads, block_size, head_dim] views of one layer's keys and values (dense
  // pools only).
  const Tensor& keys(int layer) const;
  const Tensor& values(int layer) const;
  // One layer's quantized planes (quantized pools only).
  ops::QuantizedKvPlanes quantized_planes(int layer) const;

 private:
  // Per layer, in this order: keys, values (dense); or k_packed, k_scales, k_biases, v_packed,
  // v_scales, v_biases (quantized).
  std::vector<Tensor>& layer_planes(int layer) { return planes_[size_t(layer)]; }

  KvLayout layout_;
  int64_t max_blocks_;
  std::vector<std::vector<Tensor>> planes_;
  std::vector<int32_t> refs_;
  std::vector<int32_t> free_;  // LIFO: recently freed (warm) blocks are reused first
  int64_t in_use_ = 0;
};

}  // namespace hearth::kv
