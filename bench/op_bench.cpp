// op_bench: speed of the CPU backend's hot ops against the machine's own limits, measured in the
// same run: a STREAM-style read-bandwidth probe (sum over a 1 GiB buffer on the thread pool) for
// the bandwidth-bound GEMV of decode and attention, and an FMA-throughput probe for the
// compute-bound GEMM of prefill. Each row re-measures its probe right before its kernel and every
// figure is the best of several repetitions: the dev VMs are shared, and their memory bandwidth
// drifts with the neighbours' load.
//
//   build/bin/op_bench [--quick] [--only gemv|gemm|attention|kvattention|qgemv|qgemm|qmodel]
//   [--reps N] [--cpu-time] [--matmul-precision exact|bf16]
//
// HEARTH_NUM_THREADS sets the thread count (default: all hardware threads).
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "ops/attention.h"
#include "ops/matmul.h"
#include "ops/precision.h"
#include "ops/quantized.h"
#include "ops/quantized_attention.h"

using namespace hearth;

namespace {

using Clock = std::chrono::steady_clock;

// --cpu-time: time with the calling thread's CPU clock instead of the wall clock. Only meaningful
// with HEARTH_NUM_THREADS=1; it keeps single-thread tuning measurements steady while other jobs
// share the machine.
bool g_cpu_time = false;

double thread_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Best time of `reps` runs of fn (after one warm-up run).
double best_time(int reps, const std::function<void()>& fn) {
  fn();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    if (g_cpu_time) {
      double t0 = thread_seconds();
      fn();
      best = std::min(best, thread_seconds() - t0);
    } else {
      auto t0 = Clock::now();
      fn();
      best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  return best;
}

// Fills a tensor with a cheap deterministic pattern of small values (content does not matter for
// speed, but denormals and NaNs would).
void fill(Tensor& t) {
  size_t n = t.nbytes() / 2;
  uint16_t* p = static_cast<uint16_t*>(t.raw_data());
  ThreadPool::global().run(64, [&](int64_t c) {
    size_t b = n * size_t(c) / 64, e = n * size_t(c + 1) / 64;
    for (size_t i = b; i < e; ++i) p[i] = uint16_t(0x3c00 + (i * 2654435761u >> 22) % 512);
  });
}

// STREAM-style read bandwidth: every thread sums its share of a 1 GiB buffer with AVX2 loads, in
// contiguous chunks claimed dynamically like the GEMV's.
double read_bandwidth_gbs(int reps) {
  const size_t bytes = size_t(1) << 30;
  static Tensor buf = [&] {
    Tensor t = Tensor::empty({int64_t(bytes / 4)}, DType::f32);
    fill(t);
    return t;
  }();
  const float* p = buf.data<float>();
  const int64_t lines = int64_t(bytes / 256);  // 64-float units
  std::vector<float> sink(64);
  double t = best_time(reps, [&] {
    const int64_t chunks = 8 * ThreadPool::global().num_threads();
    ThreadPool::global().run(chunks, [&](int64_t c) {
      const int64_t b = lines * c / chunks, e = lines * (c + 1) / chunks;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t i = b * 64; i < e * 64; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
      }
      float out[8];
      _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
      sink[size_t(c % 64)] += out[0];
    });
  });
  return double(bytes) / t / 1e9;
}

// Peak FMA throughput: 12 independent chains of vfmadd per thread.
double fma_peak_gflops(int reps) {
  const int threads = ThreadPool::global().num_threads();
  const int64_t iters = 5'000'000;
  std::vector<float> sink(size_t(threads) * 8);
  double t = best_time(reps, [&] {
    ThreadPool::global().run(threads, [&](int64_t tid) {
      __m256 a[12];
      for (int j = 0; j < 12; ++j) a[j] = _mm256_set1_ps(float(j) * 1e-3f);
      const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
      for (int64_t i = 0; i < iters; ++i)
        for (int j = 0; j < 12; ++j) a[j] = _mm256_fmadd_ps(a[j], m, c);
      __m256 s = a[0];
      for (int j = 1; j < 12; ++j) s = _mm256_add_ps(s, a[j]);
      _mm256_storeu_ps(&sink[size_t(tid) * 8], s);
    });
  });
  return double(threads) * double(iters) * 12 * 8 * 2 / t / 1e9;
}

struct Shape {
  int64_t n, k;
};

// Decode GEMV: enough copies of the weight matrix to fill >= 512 MiB are used in turn, so every
// product streams its weights from DRAM as in a real decode step.
void bench_gemv(int reps, bool quick) {
  std::printf("\n## GEMV (decode, M = 1)\n\n");
  std::printf("| weights N x K | dtype | us / product | GB/s | read bandwidth GB/s | fraction |\n");
  std::printf("|---|---|---:|---:|---:|---:|\n");
  std::vector<Shape> shapes = {{2048, 2048}, {8192, 2048}, {2048, 8192}, {128256, 2048}};
  if (quick) shapes = {{2048, 2048}, {8192, 2048}};
  for (DType dtype : {DType::bf16, DType::f32, DType::f16}) {
    for (Shape s : shapes) {
      const size_t bytes = size_t(s.n * s.k) * dtype_size(dtype);
      const int copies = int(std::max<size_t>(1, (size_t(512) << 20) / bytes));
      std::vector<Tensor> ws;
      for (int c = 0; c < copies; ++c) {
        ws.push_back(Tensor::empty({s.n, s.k}, dtype));
        fill(ws.back());
      }
      Tensor x = Tensor::empty({1, s.k}, DType::f32);
      fill(x);
      Tensor out = Tensor::empty({1, s.n}, DType::f32);
      const double bandwidth = read_bandwidth_gbs(3);
      const double t = best_time(reps, [&] {
        for (int c = 0; c < copies; ++c) ops::matmul(x, ws[size_t(c)], out);
      });
      const double per = t / copies;
      const double gbs = double(bytes) / per / 1e9;
      std::printf("| %lld x %lld | %s | %.1f | %.1f | %.1f | %.0f%% |\n", (long long)s.n,
                  (long long)s.k, std::string(dtype_name(dtype)).c_str(), per * 1e6, gbs, bandwidth,
                  100.0 * gbs / bandwidth);
      std::fflush(stdout);
    }
  }
}

void bench_gemm(int reps, bool quick) {
  std::printf("\n## GEMM (prefill)\n\n");
  std::printf("| M | weights N x K | dtype | ms | GFLOP/s | FMA peak GFLOP/s | fraction |\n");
  std::printf("|---:|---|---|---:|---:|---:|---:|\n");
  std::vector<int64_t> ms = {128, 256, 512};
  std::vector<Shape> shapes = {{2048, 2048}, {8192, 2048}, {2048, 8192}};
  if (quick) {
    ms = {128};
    shapes = {{2048, 2048}};
  }
  for (DType dtype : {DType::bf16, DType::f32}) {
    for (Shape s : shapes) {
      Tensor w = Tensor::empty({s.n, s.k}, dtype);
      fill(w);
      for (int64_t m : ms) {
        Tensor x = Tensor::empty({m, s.k}, DType::f32);
        fill(x);
        Tensor out = Tensor::empty({m, s.n}, DType::f32);
        const double peak = fma_peak_gflops(2);
        const double t = best_time(std::max(1, reps / 2), [&] { ops::matmul(x, w, out); });
        const double gflops = 2.0 * double(m) * double(s.n) * double(s.k) / t / 1e9;
        std::printf("| %lld | %lld x %lld | %s | %.2f | %.1f | %.1f | %.0f%% |\n", (long long)m,
                    (long long)s.n, (long long)s.k, std::string(dtype_name(dtype)).c_str(), t * 1e3,
                    gflops, peak, 100.0 * gflops / peak);
        std::fflush(stdout);
      }
    }
  }
}

// Paged attention over bf16 caches. Like GEMV, several layers' caches (>= 512 MiB in all, each
// with its own shuffled block order, as a pool hands blocks out) are used in turn, so K/V stream
// from DRAM as in a real step.
void bench_attention(int reps) {
  std::printf("\n## Paged attention (bf16 KV cache, block size 16)\n\n");
  std::printf(
      "| case | heads q/kv x dim | context | us / layer | KV GB/s | read bandwidth GB/s | "
      "fraction |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|\n");
  struct Case {
    const char* name;
    int64_t batch, q_len, context, heads, kv, dim;
  };
  const Case cases[] = {{"decode", 1, 1, 4096, 32, 8, 64},
                        {"decode", 1, 1, 32768, 32, 8, 128},
                        {"decode, MQA", 1, 1, 16384, 16, 1, 128},
                        {"decode x8", 8, 1, 4096, 32, 8, 64},
                        {"prefill", 1, 512, 512, 32, 8, 64}};
  for (const Case& c : cases) {
    const int64_t bs = 16;
    const int64_t blocks_per_seq = (c.context + bs - 1) / bs;
    const int64_t num_blocks = blocks_per_seq * c.batch;
    const size_t layer_bytes = size_t(num_blocks * c.kv * bs * c.dim) * 2 * 2;
    const int layers = int(std::max<size_t>(1, (size_t(512) << 20) / layer_bytes));
    std::vector<Tensor> kcs, vcs, tables;
    std::mt19937 rng(7);
    for (int l = 0; l < layers; ++l) {
      kcs.push_back(Tensor::empty({num_blocks, c.kv, bs, c.dim}, DType::bf16));
      vcs.push_back(Tensor::empty({num_blocks, c.kv, bs, c.dim}, DType::bf16));
      fill(kcs.back());
      fill(vcs.back());
      std::vector<int32_t> table(static_cast<size_t>(num_blocks));
      std::iota(table.begin(), table.end(), 0);
      std::shuffle(table.begin(), table.end(), rng);
      tables.push_back(Tensor::from_vector(table, {c.batch, blocks_per_seq}));
    }
    std::vector<int32_t> qs{0}, lens;
    for (int64_t s = 0; s < c.batch; ++s) {
      qs.push_back(int32_t((s + 1) * c.q_len));
      lens.push_back(int32_t(c.context));
    }
    ops::AttentionMeta meta;
    meta.query_start = Tensor::from_vector(qs, {c.batch + 1});
    meta.context_lens = Tensor::from_vector(lens, {c.batch});
    meta.max_query_len = int(c.q_len);
    meta.max_context_len = int(c.context);
    Tensor q = Tensor::empty({c.batch * c.q_len, c.heads, c.dim}, DType::f32);
    fill(q);
    Tensor out = Tensor::empty(q.shape(), DType::f32);
    const double bandwidth = read_bandwidth_gbs(3);
    const double t =
        best_time(reps,
                  [&] {
                    for (int l = 0; l < layers; ++l) {
                      meta.block_tables = tables[size_t(l)];
                      ops::paged_attention(q, kcs[size_t(l)], vcs[size_t(l)], meta, 0.125f, out);
                    }
                  }) /
        layers;
    const double gbs = double(layer_bytes) / t / 1e9;
    std::printf("| %s | %lld/%lld x %lld | %lld | %.1f | %.1f | %.1f | %.0f%% |\n", c.name,
                (long long)c.heads, (long long)c.kv, (long long)c.dim, (long long)c.context,
                t * 1e6, gbs, bandwidth, 100.0 * gbs / bandwidth);
    std::fflush(stdout);
  }
}

// Decode attention over the quantized KV cache (mlx-lm's QuantizedKVCache, fused dequantization)
// against the dense caches: f32 (hearth's CPU cache dtype) and bf16. Quantized planes use f32
// scales and biases like a CPU pool; group size 64 (mlx-lm's default). Layers rotate through
// >= 512 MiB of caches as in bench_attention so K/V come from DRAM.
void bench_kv_attention(int reps) {
  std::printf("\n## Decode attention: dense vs quantized KV cache (block size 16, gs 64)\n\n");
  std::printf("| heads q/kv x dim | context | cache | KV bytes / layer | us / layer | vs f32 |\n");
  std::printf("|---|---:|---|---:|---:|---:|\n");
  struct Case {
    int64_t context, heads, kv, dim;
  };
  const Case cases[] = {{4096, 32, 8, 128}, {16384, 32, 8, 128}, {32768, 16, 2, 64}};
  for (const Case& c : cases) {
    const int64_t bs = 16, gs = 64;
    const int64_t num_blocks = (c.context + bs - 1) / bs;
    std::vector<int32_t> table(static_cast<size_t>(num_blocks));
    std::iota(table.begin(), table.end(), 0);
    std::mt19937 rng(7);
    std::shuffle(table.begin(), table.end(), rng);
    ops::AttentionMeta meta;
    meta.query_start = Tensor::from_vector(std::vector<int32_t>{0, 1}, {2});
    meta.context_lens = Tensor::from_vector(std::vector<int32_t>{int32_t(c.context)}, {1});
    meta.block_tables = Tensor::from_vector(table, {1, num_blocks});
    meta.max_query_len = 1;
    meta.max_context_len = int(c.context);
    Tensor q = Tensor::empty({1, c.heads, c.dim}, DType::f32);
    fill(q);
    Tensor out = Tensor::empty(q.shape(), DType::f32);
    double f32_time = 0;
    for (int bits : {0, 16, 8, 4}) {  // 0: f32 dense, 16: bf16 dense
      const Dims rows{num_blocks, c.kv, bs};
      auto plane = [&](int64_t last, DType dtype) {
        Tensor t = Tensor::empty({rows[0], rows[1], rows[2], last}, dtype);
        fill(t);
        return t;
      };
      size_t layer_bytes = 0;
      std::vector<std::function<void()>> layers;
      std::vector<std::vector<Tensor>> keep;
      const size_t row_count = size_t(num_blocks * c.kv * bs);
      if (bits == 0 || bits == 16)
        layer_bytes = 2 * row_count * size_t(c.dim) * (bits == 0 ? 4 : 2);
      else
        layer_bytes = 2 * row_count * (size_t(c.dim) * bits / 8 + 2 * size_t(c.dim / gs) * 4);
      const int count = int(std::max<size_t>(1, (size_t(512) << 20) / layer_bytes));
      for (int l = 0; l < count; ++l) {
        if (bits == 0 || bits == 16) {
          const DType dt = bits == 0 ? DType::f32 : DType::bf16;
          keep.push_back({plane(c.dim, dt), plane(c.dim, dt)});
          const std::vector<Tensor>& kv = keep.back();
          layers.push_back([&, kv] { ops::paged_attention(q, kv[0], kv[1], meta, 0.088f, out); });
        } else {
          ops::QuantizedKvPlanes p;
          p.bits = bits;
          p.group_size = int(gs);
          p.k_packed = plane(c.dim * bits / 32, DType::u32);
          p.k_scales = plane(c.dim / gs, DType::f32);
          p.k_biases = plane(c.dim / gs, DType::f32);
          p.v_packed = plane(c.dim * bits / 32, DType::u32);
          p.v_scales = plane(c.dim / gs, DType::f32);
          p.v_biases = plane(c.dim / gs, DType::f32);
          layers.push_back([&, p] { ops::paged_attention_quantized(q, p, meta, 0.088f, out); });
        }
      }
      const double t = best_time(reps,
                                 [&] {
                                   for (auto& fn : layers) fn();
                                 }) /
                       count;
      if (bits == 0) f32_time = t;
      const char* name = bits == 0 ? "f32" : bits == 16 ? "bf16" : bits == 8 ? "8-bit" : "4-bit";
      std::printf("| %lld/%lld x %lld | %lld | %s | %.1f MiB | %.1f | %.2fx |\n",
                  (long long)c.heads, (long long)c.kv, (long long)c.dim, (long long)c.context, name,
                  double(layer_bytes) / (1 << 20), t * 1e6, f32_time / t);
      std::fflush(stdout);
    }
  }
}

// ---- MLX affine-quantized weights -----------------------------------------------------------

// A quantized [n, k] weight with patterned codes and bf16 scales/biases (speed does not depend on
// the values; they only need to stay finite).
ops::QuantizedWeight quantized_weight(int64_t n, int64_t k, int bits, int gs) {
  ops::QuantizedWeight q;
  q.bits = bits;
  q.group_size = gs;
  q.packed = Tensor::empty({n, k * bits / 32}, DType::u32);
  q.scales = Tensor::empty({n, k / gs}, DType::bf16);
  q.biases = Tensor::empty({n, k / gs}, DType::bf16);
  fill(q.packed);
  fill(q.scales);
  fill(q.biases);
  return q;
}

size_t quantized_bytes(const ops::QuantizedWeight& q) {
  return q.packed.nbytes() + q.scales.nbytes() + q.biases.nbytes();
}

// Decode GEMV with quantized weights (bf16 scales, group size 64): like bench_gemv, enough copies
// for >= 512 MiB are used in turn. Bytes counted: codes + scales + biases. Shapes: Llama-3.2-1B
// (2048 / 8192) and Qwen2.5-1.5B (1536 / 8960, vocabulary 151936).
void bench_qgemv(int reps, bool quick) {
  std::printf("\n## Quantized GEMV (decode; bf16 scales, group size 64)\n\n");
  std::printf(
      "| weights N x K | bits | x rows | us / product | GB/s | read bandwidth GB/s | fraction |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
  std::vector<Shape> shapes = {{2048, 2048}, {8192, 2048}, {2048, 8192},
                               {8960, 1536}, {1536, 8960}, {151936, 1536}};
  std::vector<int64_t> ms = {1, 4, 16};
  if (quick) {
    shapes = {{8960, 1536}, {1536, 8960}};
    ms = {1};
  }
  for (int bits : {4, 8}) {
    for (Shape s : shapes) {
      for (int64_t m : ms) {
        if (m > 1 && s.n > 10000) continue;
        std::vector<ops::QuantizedWeight> ws;
        ws.push_back(quantized_weight(s.n, s.k, bits, 64));
        const size_t bytes = quantized_bytes(ws[0]);
        const int copies = int(std::max<size_t>(1, (size_t(512) << 20) / bytes));
        while (int(ws.size()) < copies) ws.push_back(quantized_weight(s.n, s.k, bits, 64));
        Tensor x = Tensor::empty({m, s.k}, DType::f32);
        fill(x);
        Tensor out = Tensor::empty({m, s.n}, DType::f32);
        const double bandwidth = read_bandwidth_gbs(3);
        const double t = best_time(reps, [&] {
          for (int c = 0; c < copies; ++c) ops::quantized_matmul(x, ws[size_t(c)], out);
        });
        const double per = t / copies;
        const double gbs = double(bytes) / per / 1e9;
        std::printf("| %lld x %lld | %d | %lld | %.1f | %.1f | %.1f | %.0f%% |\n", (long long)s.n,
                    (long long)s.k, bits, (long long)m, per * 1e6, gbs, bandwidth,
                    100.0 * gbs / bandwidth);
        std::fflush(stdout);
      }
    }
  }
}

void bench_qgemm(int reps, bool quick) {
  std::printf("\n## Quantized GEMM (prefill; bf16 scales, group size 64)\n\n");
  std::printf("| M | weights N x K | bits | ms | GFLOP/s | FMA peak GFLOP/s | fraction |\n");
  std::printf("|---:|---|---:|---:|---:|---:|---:|\n");
  std::vector<int64_t> ms = {128, 512};
  std::vector<Shape> shapes = {{2048, 2048}, {8192, 2048}, {1536, 8960}};
  if (quick) {
    ms = {128};
    shapes = {{2048, 2048}};
  }
  for (int bits : {4, 8}) {
    for (Shape s : shapes) {
      ops::QuantizedWeight w = quantized_weight(s.n, s.k, bits, 64);
      for (int64_t m : ms) {
        Tensor x = Tensor::empty({m, s.k}, DType::f32);
        fill(x);
        Tensor out = Tensor::empty({m, s.n}, DType::f32);
        const double peak = fma_peak_gflops(2);
        const double t =
            best_time(std::max(1, reps / 2), [&] { ops::quantized_matmul(x, w, out); });
        const double gflops = 2.0 * double(m) * double(s.n) * double(s.k) / t / 1e9;
        std::printf("| %lld | %lld x %lld | %d | %.2f | %.1f | %.1f | %.0f%% |\n", (long long)m,
                    (long long)s.n, (long long)s.k, bits, t * 1e3, gflops, peak,
                    100.0 * gflops / peak);
        std::fflush(stdout);
      }
    }
  }
}

// Every linear layer of a decode step of a Qwen2.5-1.5B-shaped model (28 layers of q/k/v/o and
// gate/up/down, then the tied 151936 x 1536 lm_head), 4-bit or 8-bit, group size 64, bf16 scales,
// one x row: the weight-streaming part of a decode token, without attention and the small ops.
// The loader for quantized folders is not in yet; this is the op-level stand-in for it.
void bench_qmodel(int reps, bool quick) {
  std::printf("\n## Qwen2.5-1.5B-shaped decode step, linear layers only (group size 64)\n\n");
  std::printf(
      "| bits | matmul precision | MB read / token | ms / token | tokens/s (linears only) | GB/s | "
      "read bandwidth GB/s | fraction |\n");
  std::printf("|---:|---|---:|---:|---:|---:|---:|---:|\n");
  const int64_t h = 1536, inter = 8960, kv = 256, vocab = 151936;
  const int layers = quick ? 4 : 28;
  for (int bits : {4, 8}) {
    std::vector<ops::QuantizedWeight> ws;
    for (int l = 0; l < layers; ++l) {
      ws.push_back(quantized_weight(h, h, bits, 64));      // q
      ws.push_back(quantized_weight(kv, h, bits, 64));     // k
      ws.push_back(quantized_weight(kv, h, bits, 64));     // v
      ws.push_back(quantized_weight(h, h, bits, 64));      // o
      ws.push_back(quantized_weight(inter, h, bits, 64));  // gate
      ws.push_back(quantized_weight(inter, h, bits, 64));  // up
      ws.push_back(quantized_weight(h, inter, bits, 64));  // down
    }
    ws.push_back(quantized_weight(vocab, h, bits, 64));  // lm_head
    size_t bytes = 0;
    for (const auto& w : ws) bytes += quantized_bytes(w);
    Tensor x = Tensor::empty({1, inter}, DType::f32);
    fill(x);
    Tensor out = Tensor::empty({1, vocab}, DType::f32);
    // exact: f32 x (the library default); bf16: x rounded to int16 per group and integer dots
    // (the CLI default, ops/precision.h).
    for (ops::MatmulPrecision precision :
         {ops::MatmulPrecision::exact, ops::MatmulPrecision::bf16}) {
      ops::MatmulPrecisionScope scope(precision);
      const double bandwidth = read_bandwidth_gbs(3);
      const double t = best_time(reps, [&] {
        for (const auto& w : ws) {
          Tensor xi = x.slice(1, 0, w.cols());
          Tensor oi = out.slice(1, 0, w.rows());
          ops::quantized_matmul(xi, w, oi);
        }
      });
      const double gbs = double(bytes) / t / 1e9;
      std::printf("| %d | %s | %.0f | %.2f | %.1f | %.1f | %.1f | %.0f%% |\n", bits,
                  ops::matmul_precision_name(precision), double(bytes) / 1e6, t * 1e3, 1.0 / t, gbs,
                  bandwidth, 100.0 * gbs / bandwidth);
      std::fflush(stdout);
    }
  }
}

std::string cpu_model() {
  std::string cpu = "unknown";
  if (FILE* f = std::fopen("/proc/cpuinfo", "r")) {
    char line[512];
    while (std::fgets(line, sizeof line, f)) {
      if (std::strncmp(line, "model name", 10) != 0) continue;
      if (const char* colon = std::strchr(line, ':')) cpu = colon + 2;
      if (!cpu.empty() && cpu.back() == '\n') cpu.pop_back();
      break;
    }
    std::fclose(f);
  }
  return cpu;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string only;
  int reps = 5;
  ops::MatmulPrecision precision = ops::MatmulPrecision::exact;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (a == "--cpu-time") {
      g_cpu_time = true;
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--matmul-precision" && i + 1 < argc &&
               (std::string(argv[i + 1]) == "exact" || std::string(argv[i + 1]) == "bf16")) {
      precision = std::string(argv[++i]) == "bf16" ? ops::MatmulPrecision::bf16
                                                   : ops::MatmulPrecision::exact;
    } else {
      std::fprintf(
          stderr,
          "usage: op_bench [--quick] [--only gemv|gemm|attention|kvattention|qgemv|qgemm|qmodel] "
          "[--reps N] "
          "[--cpu-time] [--matmul-precision exact|bf16]\n");
      return 2;
    }
  }
  ops::MatmulPrecisionScope scope(precision);
  std::printf("cpu: %s\nthreads: %d\nmatmul precision: %s (qmodel runs both)\n",
              cpu_model().c_str(), ThreadPool::global().num_threads(),
              ops::matmul_precision_name(precision));
  std::printf(
      "(read bandwidth: sum over 1 GiB, best of 3; FMA peak: 12 FMA chains per thread, best of "
      "2; both measured again right before each row)\n");
  if (only.empty() || only == "gemv") bench_gemv(reps, quick);
  if (only.empty() || only == "gemm") bench_gemm(reps, quick);
  if (only.empty() || only == "attention") bench_attention(reps);
  if (only.empty() || only == "kvattention") bench_kv_attention(reps);
  if (only.empty() || only == "qgemv") bench_qgemv(reps, quick);
  if (only.empty() || only == "qgemm") bench_qgemm(reps, quick);
  if (only.empty() || only == "qmodel") bench_qmodel(reps, quick);
  return 0;
}
