// cuda_bench: the CUDA matmul paths against the GPU's own limits, measured in the same run.
//  - a device-to-device copy (bytes read + written per second) as the bandwidth roofline;
//  - the cost of one small decode-sized op launched back to back;
//  - decode GEMV (1 row of x) at Llama-3.1-8B / 3.2-1B shapes: weight bytes read per second and
//    the fraction of the copy bandwidth;
//  - quantized GEMV (MLX affine, group size 64, bf16 scales) at the 8B shapes, 4 and 8 bits, 1 and
//    4 rows of x: bytes of packed codes + scales + biases read per second and the fraction of the
//    copy bandwidth (issue 5's gate: >= 65 % at 4 bits);
//  - prefill GEMM (2048 rows) at the same shapes: TFLOP/s of the cuBLAS path (ops::matmul) and of
//    the tiled correct-first kernel it replaced (launch_matmul above the GEMV limit);
//  - decode chains (--chains runs only these): the products of Llama-3.1-8B decoder layers as a
//    decode step issues them, over 8 layers with their own weights (L2 cold), captured as one
//    CUDA graph and replayed (decode_chains.h);
//  - prefill parts (--prefill runs only these): causal attention and the projections of an 8B
//    prefill of 2048 tokens, bf16 and quantized (prefill_parts.h).
//
//   build/bin/cuda_bench [--reps N] [--chains] [--chain-bits 0|4|8] [--prefill]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "bench_util.h"
#include "decode_chains.h"
#include "ops/copy.h"
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/launch.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/quantized.h"
#include "prefill_parts.h"

using namespace hearth;
using bench::best_seconds;
using bench::random_device;

int main(int argc, char** argv) {
  int reps = 5;
  bool chains_only = false, prefill_only = false;
  int chain_bits = -1;  // -1: bf16, 4-bit and 8-bit
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = std::atoi(argv[++i]);
    if (std::strcmp(argv[i], "--chains") == 0) chains_only = true;
    if (std::strcmp(argv[i], "--prefill") == 0) prefill_only = true;
    if (std::strcmp(argv[i], "--chain-bits") == 0 && i + 1 < argc)
      chain_bits = std::atoi(argv[++i]);
  }
  std::string why;
  if (!ops::cuda::cuda_backend_if_available(&why)) {
    std::printf("cuda_bench: no CUDA backend (%s)\n", why.c_str());
    return 1;
  }
  const Device dev = Device::cuda(0);
  if (prefill_only) {
    bench::run_prefill_parts(reps);
    return 0;
  }

  const int64_t copy_bytes = int64_t(1) << 30;
  Tensor a = Tensor::empty({copy_bytes}, DType::u8, dev),
         b = Tensor::empty({copy_bytes}, DType::u8, dev);
  const double copy_s = best_seconds(reps, 10, [&] { ops::copy(a, b); });
  const double bandwidth = 2.0 * double(copy_bytes) / copy_s;
  std::printf("device-to-device copy: %.0f GB/s (read + written)\n\n", bandwidth / 1e9);
  if (chains_only) {
    bench::run_decode_chains(reps, bandwidth, chain_bits);
    return 0;
  }

  // Cost of one small decode-sized op, launched back to back (host work + launch + kernel): a
  // decode step of an L-layer model issues ~17 L of these besides its GEMVs.
  {
    Tensor h = random_device({1, 4096}, DType::f32), g = random_device({1, 4096}, DType::f32);
    Tensor nw = random_device({4096}, DType::bf16), o = Tensor::empty({1, 4096}, DType::f32, dev);
    const double t_add = best_seconds(reps, 1000, [&] { ops::add(h, g, o); });
    const double t_norm = best_seconds(reps, 1000, [&] { ops::rms_norm(h, nw, 1e-5f, o); });
    const double t_alloc = best_seconds(reps, 1000, [&] {
      Tensor t = Tensor::empty({1, 4096}, DType::f32, dev);
      ops::add(h, g, t);
    });
    std::printf(
        "small ops (1 x 4096, back to back): add %.2f us, rms_norm %.2f us, "
        "add into a fresh tensor %.2f us\n\n",
        t_add * 1e6, t_norm * 1e6, t_alloc * 1e6);
  }

  struct Shape {
    const char* name;
    int64_t n, k;
  };
  const Shape shapes[] = {
      {"8B q/o 4096x4096", 4096, 4096},    {"8B gate/up 14336x4096", 14336, 4096},
      {"8B down 4096x14336", 4096, 14336}, {"8B lm_head 128256x4096", 128256, 4096},
      {"8B k/v 1024x4096", 1024, 4096},    {"1B gate/up 8192x2048", 8192, 2048},
      {"1B down 2048x8192", 2048, 8192},   {"1B k/v 512x2048", 512, 2048}};
  std::printf("%-26s %6s %10s %10s %8s\n", "GEMV (m=1)", "dtype", "us", "GB/s", "of copy");
  for (DType dt : {DType::bf16, DType::f16, DType::f32}) {
    for (const Shape& s : shapes) {
      if (dt != DType::bf16 && s.n > 20000) continue;
      Tensor w = random_device({s.n, s.k}, dt), x = random_device({1, s.k}, DType::f32);
      Tensor out = Tensor::empty({1, s.n}, DType::f32, dev);
      const double t = best_seconds(reps, 20, [&] { ops::matmul(x, w, out, nullptr); });
      const double gbs = double(w.nbytes()) / t;
      std::printf("%-26s %6s %10.1f %10.0f %7.1f%%\n", s.name, std::string(dtype_name(dt)).c_str(),
                  t * 1e6, gbs / 1e9, 100.0 * gbs / bandwidth);
    }
  }
  {
    const Shape qshapes[] = {
        {"8B q/o 4096x4096", 4096, 4096},       {"8B qkv 6144x4096", 6144, 4096},
        {"8B gate/up 14336x4096", 14336, 4096}, {"8B down 4096x14336", 4096, 14336},
        {"8B k/v 1024x4096", 1024, 4096},       {"8B lm_head 128256x4096", 128256, 4096}};
    std::printf("\n%-26s %5s %3s %10s %10s %8s\n", "quantized GEMV (gs 64)", "bits", "m", "us",
                "GB/s", "of copy");
    for (int bits : {4, 8}) {
      for (const Shape& s : qshapes) {
        Tensor w = random_device({s.n, s.k}, DType::bf16);
        const ops::QuantizedWeight q = ops::affine_quantize(w, bits, 64, DType::bf16);
        w = Tensor();
        const double bytes = double(q.packed.nbytes() + q.scales.nbytes() + q.biases.nbytes());
        for (int64_t m : {1, 4}) {
          Tensor x = random_device({m, s.k}, DType::f32);
          Tensor out = Tensor::empty({m, s.n}, DType::f32, dev);
          const double t = best_seconds(reps, 20, [&] { ops::quantized_matmul(x, q, out); });
          const double gbs = bytes / t;
          std::printf("%-26s %5d %3lld %10.1f %10.0f %7.1f%%\n", s.name, bits,
                      static_cast<long long>(m), t * 1e6, gbs / 1e9, 100.0 * gbs / bandwidth);
        }
      }
    }
  }
  std::printf("\n%-26s %6s %12s %12s %8s\n", "GEMM (m=2048)", "dtype", "cuBLAS TF/s", "tiled TF/s",
              "speedup");
  for (const Shape& s : shapes) {
    if (s.n > 20000) continue;
    const int64_t m = 2048;
    Tensor w = random_device({s.n, s.k}, DType::bf16), x = random_device({m, s.k}, DType::f32);
    Tensor out = Tensor::empty({m, s.n}, DType::f32, dev);
    const double flops = 2.0 * double(m) * double(s.n) * double(s.k);
    const double t_blas = best_seconds(reps, 5, [&] { ops::matmul(x, w, out, nullptr); });
    const double t_tiled = best_seconds(2, 1, [&] {
      ops::cuda::launch_matmul(x.data<float>(), ops::cuda::Elem::f32, s.k, w.raw_data(),
                               ops::cuda::Elem::bf16, nullptr, ops::cuda::Elem::f32,
                               out.data<float>(), ops::cuda::Elem::f32, s.n, m, s.n, s.k, nullptr);
    });
    std::printf("%-26s %6s %12.1f %12.1f %7.1fx\n", s.name, "bf16", flops / t_blas / 1e12,
                flops / t_tiled / 1e12, t_tiled / t_blas);
  }
  std::printf("\n");
  bench::run_decode_chains(reps, bandwidth, chain_bits);
  return 0;
}
