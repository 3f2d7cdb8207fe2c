// op_bench: speed of the CPU backend's hot ops against the machine's own limits, measured in the
// same run: a STREAM-style read-bandwidth probe (sum over a 1 GiB buffer on the thread pool) for
// the bandwidth-bound GEMV of decode and attention, and an FMA-throughput probe for the
// compute-bound GEMM of prefill. Each row re-measures its probe right before its kernel and every
// figure is the best of several repetitions: the dev VMs are shared, and their memory bandwidth
// drifts with the neighbours' load.
//
//   build/bin/op_bench [--quick] [--only gemv|gemm|attention] [--reps N] [--cpu-time]
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
    } else {
      std::fprintf(stderr,
                   "usage: op_bench [--quick] [--only gemv|gemm|attention] [--reps N] "
                   "[--cpu-time]\n");
      return 2;
    }
  }
  std::printf("cpu: %s\nthreads: %d\n", cpu_model().c_str(), ThreadPool::global().num_threads());
  std::printf(
      "(read bandwidth: sum over 1 GiB, best of 3; FMA peak: 12 FMA chains per thread, best of "
      "2; both measured again right before each row)\n");
  if (only.empty() || only == "gemv") bench_gemv(reps, quick);
  if (only.empty() || only == "gemm") bench_gemm(reps, quick);
  if (only.empty() || only == "attention") bench_attention(reps);
  return 0;
}
