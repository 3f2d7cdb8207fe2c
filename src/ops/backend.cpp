// The backend registry: the one piece of mutable global state in the op layer. The CPU backend is
// created lazily on first lookup (no static-initialization order to depend on); the CUDA backend
// registers itself through register_backend when it initializes.
#include "ops/backend.h"

#include <array>
#include <atomic>

#include "ops/cpu/cpu_backend.h"
#if HEARTH_WITH_CUDA
#include "ops/cuda/cuda_backend.h"
#endif

namespace hearth::ops {
namespace {

constexpr int kNumDeviceKinds = 2;  // DeviceKind::cpu, DeviceKind::cuda

std::array<std::atomic<Backend*>, kNumDeviceKinds>& registry() {
  static std::array<std::atomic<Backend*>, kNumDeviceKinds> slots{};
  return slots;
}

int slot_index(DeviceKind kind) {
  int i = int(kind);
  HEARTH_CHECK(i >= 0 && i < kNumDeviceKinds, "unknown device kind {}", i);
  return i;
}

}  // namespace

Backend& backend_for(Device device) {
  std::atomic<Backend*>& slot = registry()[slot_index(device.kind)];
  if (Backend* b = slot.load(std::memory_order_acquire)) return *b;
  if (device.is_cpu()) {
    Backend* expected = nullptr;
    slot.compare_exchange_strong(expected, &cpu::cpu_backend(), std::memory_order_acq_rel);
    return *slot.load(std::memory_order_acquire);
  }
#if HEARTH_WITH_CUDA
  if (device.is_cuda()) {
    std::string why;
    if (Backend* cuda = cuda::cuda_backend_if_available(&why)) {
      if (device.index != 0)
        fail(ErrorCode::unsupported, "device {}: only cuda:0 is supported so far", device.str());
      Backend* expected = nullptr;
      slot.compare_exchange_strong(expected, cuda, std::memory_order_acq_rel);
      return *slot.load(std::memory_order_acquire);
    }
    fail(ErrorCode::unsupported, "no backend for device {}: {}", device.str(), why);
  }
#endif
  fail(ErrorCode::unsupported,
       "no backend for device {}: hearth was built without CUDA, or no GPU was found",
       device.str());
}

void Backend::add_rms_norm(Tensor& x, const Tensor& delta, const Tensor& weight, float eps,
                           Tensor& normed) {
  add(x, delta, x);
  rms_norm(x, weight, eps, normed);
}

void Backend::matmul_grouped(const Tensor& x, std::span<const MatmulGroup> groups) {
  for (const MatmulGroup& g : groups) matmul(x, *g.w, g.bias, *g.out);
}

void Backend::matmul_silu_mul(const Tensor& x, const Tensor& w_gate, const Tensor& w_up,
                              const Tensor* gate_bias, const Tensor* up_bias, Tensor& out) {
  // Both products in out's dtype (bf16 activations round them to bf16, as PyTorch computes a bf16
  // model's gate and up projections); the gate product goes straight into out.
  Tensor up = Tensor::empty(out.shape(), out.dtype(), out.device());
  Tensor& gate = out;
  matmul(x, w_gate, gate_bias, gate);
  matmul(x, w_up, up_bias, up);
  silu_mul(gate, up, out);
}

void Backend::rope_qk(Tensor& q, Tensor& k, const Tensor& positions, const Tensor& inv_freq,
                      float attention_scaling) {
  rope(q, positions, inv_freq, attention_scaling, q);
  rope(k, positions, inv_freq, attention_scaling, k);
}

void Backend::rope_qk_write_kv(Tensor& q, Tensor& k, const Tensor& v, const Tensor& positions,
                               const Tensor& inv_freq, float attention_scaling, const Tensor& slots,
                               Tensor& k_cache, Tensor& v_cache) {
  rope_qk(q, k, positions, inv_freq, attention_scaling);
  write_kv(k, v, slots, k_cache, v_cache);
}

void register_backend(DeviceKind kind, Backend* backend) {
  registry()[slot_index(kind)].store(backend, std::memory_order_release);
}

}  // namespace hearth::ops
