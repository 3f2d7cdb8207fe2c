// Prefill parts (prefill_parts.h). An 8B prefill of 2048 tokens spends most of its time in the
// projections (compute-bound GEMMs) and in causal attention; these time each alone, at the
// model's shapes, with the dtypes the decoder uses on CUDA (bf16 activations and cache).
#include "prefill_parts.h"

#include "bench_util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "ops/attention.h"
#include "ops/copy.h"
#include "ops/cuda/cuda_backend.h"
#include "ops/matmul.h"
#include "ops/precision.h"
#include "ops/quantized.h"

namespace hearth::bench {
namespace {

constexpr int64_t kTokens = 2048, kHeads = 32, kKvHeads = 8, kHeadDim = 128, kBlock = 32;

Tensor i32_on_device(const std::vector<int32_t>& values, const Dims& shape) {
  Tensor host = Tensor::empty(shape, DType::i32);
  std::copy(values.begin(), values.end(), host.data<int32_t>());
  return ops::to_device(host, Device::cuda(0));
}

void attention(int reps) {
  const int64_t blocks = kTokens / kBlock;
  Tensor q = random_device({kTokens, kHeads, kHeadDim}, DType::bf16, 1);
  Tensor k = random_device({blocks, kKvHeads, kBlock, kHeadDim}, DType::bf16, 2);
  Tensor v = random_device({blocks, kKvHeads, kBlock, kHeadDim}, DType::bf16, 3);
  Tensor out = Tensor::empty({kTokens, kHeads, kHeadDim}, DType::bf16, Device::cuda(0));
  // Blocks in a scrambled order, as a pool hands them out after some use.
  std::vector<int32_t> table(static_cast<size_t>(blocks));
  for (int64_t b = 0; b < blocks; ++b) table[size_t(b)] = int32_t((b * 37) % blocks);
  ops::AttentionMeta meta;
  meta.query_start = i32_on_device({0, int32_t(kTokens)}, {2});
  meta.context_lens = i32_on_device({int32_t(kTokens)}, {1});
  meta.block_tables = i32_on_device(table, {1, blocks});
  meta.max_query_len = int(kTokens);
  meta.max_context_len = int(kTokens);
  const float scale = 1.0f / std::sqrt(float(kHeadDim));
  // Visible (query, key) pairs: query i sees keys 0..i.
  const double flops = 4.0 * kHeadDim * kHeads * (double(kTokens) * double(kTokens + 1) / 2.0);
  std::printf("prefill attention, 8B shape (%lld tokens, %lld/%lld heads, d %lld, bf16 cache)\n",
              static_cast<long long>(kTokens), static_cast<long long>(kHeads),
              static_cast<long long>(kKvHeads), static_cast<long long>(kHeadDim));
  struct Variant {
    const char* name;
    const char* env;
    const char* value;
  };
  for (const Variant& variant : {Variant{"async, 64 rows", "HEARTH_CUDA_FLASH_ROWS", "64"},
                                 Variant{"async, 128 rows", "HEARTH_CUDA_FLASH_ROWS", "128"},
                                 Variant{"staged tiles", "HEARTH_CUDA_FLASH_ASYNC", "0"}}) {
    setenv(variant.env, variant.value, 1);
    const double t =
        best_seconds(reps, 10, [&] { ops::paged_attention(q, k, v, meta, scale, out); });
    std::printf("  %-20s %9.1f us per layer %8.1f TFLOP/s\n", variant.name, t * 1e6,
                flops / t / 1e12);
    unsetenv(variant.env);
  }
}

void projections(int reps) {
  struct Shape {
    const char* name;
    int64_t n, k;
  };
  const Shape shapes[] = {{"8B q/o 4096x4096", 4096, 4096},
                          {"8B gate/up 14336x4096", 14336, 4096},
                          {"8B down 4096x14336", 4096, 14336}};
  std::printf("\n%-26s %12s %12s %12s\n", "GEMM (m=2048, bf16 x)", "bf16 TF/s", "4-bit TF/s",
              "8-bit TF/s");
  for (const Shape& s : shapes) {
    Tensor x = random_device({kTokens, s.k}, DType::bf16, 4);
    Tensor w = random_device({s.n, s.k}, DType::bf16, 5);
    Tensor out = Tensor::empty({kTokens, s.n}, DType::bf16, Device::cuda(0));
    const double flops = 2.0 * double(kTokens) * double(s.n) * double(s.k);
    double tf[3];
    tf[0] = flops / best_seconds(reps, 5, [&] { ops::matmul(x, w, out); }) / 1e12;
    for (int i = 1; i < 3; ++i) {
      const ops::QuantizedWeight qw = ops::affine_quantize(w, i == 1 ? 4 : 8, 64, DType::bf16);
      tf[i] = flops / best_seconds(reps, 5, [&] { ops::quantized_matmul(x, qw, out); }) / 1e12;
    }
    std::printf("%-26s %12.1f %12.1f %12.1f\n", s.name, tf[0], tf[1], tf[2]);
  }
}

}  // namespace

void run_prefill_parts(int reps) {
  ops::MatmulPrecisionScope precision(ops::MatmulPrecision::bf16);
  attention(reps);
  projections(reps);
}

}  // namespace hearth::bench
