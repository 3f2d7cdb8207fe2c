// Decode chains (decode_chains.h). A step of an 8B model replays ~10 kernels per layer as one
// graph; timing a GEMV alone, back to back on the same weights, measures neither the gaps
// between dependent kernels nor cold weights (an 8B layer's 4-bit matrices fit in the H100's
// 50 MB L2). Here each product reads its own weights once per replay, in the step's order.
#include "decode_chains.h"

#include "bench_util.h"

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ops/copy.h"
#include "ops/cuda/cuda_backend.h"
#include "ops/graph.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/precision.h"
#include "ops/quantized.h"

namespace hearth::bench {
namespace {

constexpr int kLayers = 8;
constexpr int64_t kHidden = 4096, kKv = 1024, kFfn = 14336;
constexpr float kEps = 1e-5f;

// One bf16 matrix on the device; quantized to `bits` there when bits > 0.
struct Weight {
  Tensor dense;
  ops::QuantizedWeight q;
  double bytes = 0;
};

Weight make_weight(const Tensor& host_bf16, int bits) {
  Weight w;
  Tensor d = ops::to_device(host_bf16, Device::cuda(0));
  if (bits == 0) {
    w.dense = d;
    w.bytes = double(d.nbytes());
  } else {
    w.q = ops::affine_quantize(d, bits, 64, DType::bf16);
    w.bytes = double(w.q.packed.nbytes() + w.q.scales.nbytes() + w.q.biases.nbytes());
  }
  return w;
}

struct Layer {
  Weight q, k, v, o, gate, up, down;
  Tensor norm;
  double bytes() const {
    return q.bytes + k.bytes + v.bytes + o.bytes + gate.bytes + up.bytes + down.bytes;
  }
};

// The step's activations, allocated before capture.
struct Buffers {
  Device dev = Device::cuda(0);
  Tensor h = ops::to_device(Tensor::zeros({1, kHidden}, DType::f32), dev);
  Tensor normed = Tensor::empty({1, kHidden}, DType::f32, dev);
  Tensor q = Tensor::empty({1, kHidden}, DType::f32, dev);
  Tensor k = Tensor::empty({1, kKv}, DType::f32, dev);
  Tensor v = Tensor::empty({1, kKv}, DType::f32, dev);
  Tensor attn = Tensor::empty({1, kHidden}, DType::f32, dev);
  Tensor act = Tensor::empty({1, kFfn}, DType::f32, dev);
  Tensor delta = ops::to_device(Tensor::zeros({1, kHidden}, DType::f32), dev);
};

void qkv(const Layer& l, Buffers& b) {
  if (l.q.dense.defined()) {
    const ops::MatmulGroup g[3] = {
        {&l.q.dense, nullptr, &b.q}, {&l.k.dense, nullptr, &b.k}, {&l.v.dense, nullptr, &b.v}};
    ops::matmul_grouped(b.normed, g);
  } else {
    const ops::QuantizedMatmulGroup g[3] = {
        {&l.q.q, nullptr, &b.q}, {&l.k.q, nullptr, &b.k}, {&l.v.q, nullptr, &b.v}};
    ops::quantized_matmul_grouped(b.normed, g);
  }
}
void out_proj(const Layer& l, Buffers& b) {
  if (l.o.dense.defined())
    ops::matmul(b.q, l.o.dense, b.attn);
  else
    ops::quantized_matmul(b.q, l.o.q, b.attn);
}
void gate_up(const Layer& l, Buffers& b) {
  if (l.gate.dense.defined())
    ops::matmul_silu_mul(b.normed, l.gate.dense, l.up.dense, b.act);
  else
    ops::quantized_matmul_silu_mul(b.normed, l.gate.q, l.up.q, b.act);
}
void down(const Layer& l, Buffers& b) {
  if (l.down.dense.defined())
    ops::matmul(b.act, l.down.dense, b.delta);
  else
    ops::quantized_matmul(b.act, l.down.q, b.delta);
}
void layer_chain(const Layer& l, Buffers& b) {
  ops::add_rms_norm(b.h, b.delta, l.norm, kEps, b.normed);
  qkv(l, b);
  out_proj(l, b);
  ops::add_rms_norm(b.h, b.attn, l.norm, kEps, b.normed);
  gate_up(l, b);
  down(l, b);
}

// Seconds per replay of `record` captured as one graph (best of `reps` batches of 10 replays).
double replay_seconds(int reps, const std::function<void()>& record) {
  std::unique_ptr<ops::DeviceGraph> graph = ops::capture_graph(Device::cuda(0), record);
  graph->launch();
  ops::cuda::synchronize();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) graph->launch();
    ops::cuda::synchronize();
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 10);
  }
  return best;
}

}  // namespace

void run_decode_chains(int reps, double bandwidth, int only_bits) {
  ops::MatmulPrecisionScope precision(ops::MatmulPrecision::bf16);
  std::printf(
      "decode chains: Llama-3.1-8B layers, %d with their own weights, one graph, bf16 "
      "precision\n",
      kLayers);
  std::printf("%-8s %-14s %10s %10s %10s %8s\n", "weights", "chain", "MB/layer", "us/layer", "GB/s",
              "of copy");
  // Host values once per shape; every layer gets its own device copy.
  const Tensor hq = random_host({kHidden, kHidden}, 1), hkv = random_host({kKv, kHidden}, 2),
               hgate = random_host({kFfn, kHidden}, 3), hdown = random_host({kHidden, kFfn}, 4);
  auto bf16 = [](const Tensor& t) {
    Tensor out = Tensor::empty(t.shape(), DType::bf16);
    ops::copy(t, out);
    return out;
  };
  const Tensor bq = bf16(hq), bkv = bf16(hkv), bgate = bf16(hgate), bdown = bf16(hdown);
  const Tensor norm = ops::to_device(bf16(random_host({kHidden}, 5)), Device::cuda(0));
  for (int bits : {0, 4, 8}) {
    if (only_bits >= 0 && bits != only_bits) continue;
    std::vector<Layer> layers(kLayers);
    for (Layer& l : layers) {
      l.q = make_weight(bq, bits);
      l.k = make_weight(bkv, bits);
      l.v = make_weight(bkv, bits);
      l.o = make_weight(bq, bits);
      l.gate = make_weight(bgate, bits);
      l.up = make_weight(bgate, bits);
      l.down = make_weight(bdown, bits);
      l.norm = norm;
    }
    Buffers b;
    struct Part {
      const char* name;
      void (*run)(const Layer&, Buffers&);
      double (*bytes)(const Layer&);
    };
    const Part parts[] = {
        {"layer", layer_chain, [](const Layer& l) { return l.bytes(); }},
        {"q/k/v", qkv, [](const Layer& l) { return l.q.bytes + l.k.bytes + l.v.bytes; }},
        {"o", out_proj, [](const Layer& l) { return l.o.bytes; }},
        {"gate/up+silu", gate_up, [](const Layer& l) { return l.gate.bytes + l.up.bytes; }},
        {"down", down, [](const Layer& l) { return l.down.bytes; }},
    };
    const std::string label = bits == 0 ? "bf16" : std::to_string(bits) + "-bit";
    for (const Part& part : parts) {
      const double t = replay_seconds(reps, [&] {
        for (const Layer& l : layers) part.run(l, b);
      });
      const double per_layer = t / kLayers, bytes = part.bytes(layers[0]);
      std::printf("%-8s %-14s %10.1f %10.2f %10.0f %7.1f%%\n", label.c_str(), part.name,
                  bytes / 1e6, per_layer * 1e6, bytes / per_layer / 1e9,
                  100.0 * bytes / per_layer / bandwidth);
    }
  }
}

}  // namespace hearth::bench
