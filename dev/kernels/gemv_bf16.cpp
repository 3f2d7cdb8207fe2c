// Experiment: bf16 GEMV widening on AVX2. v1 = vpmovzxwd + shift per 8 weights (src/ops/cpu
// today); v2 = load 16 weights, even lanes by shift, odd lanes by mask, against x pre-split into
// even/odd halves per 16-element chunk (no shuffles in the inner loop).
// Build: g++ -O3 -mavx2 -mfma -mf16c -fopenmp dev/kernels/gemv_bf16.cpp -o /tmp/gemv_bf16
#include <immintrin.h>
#include <omp.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

static float bf(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

constexpr int kN = 12;

void v1(const uint16_t* w, const float* x, float* out, int64_t n, int64_t k) {
#pragma omp parallel for schedule(dynamic, 8)
  for (int64_t n0 = 0; n0 < n; n0 += kN) {
    __m256 acc[kN];
    for (auto& a : acc) a = _mm256_setzero_ps();
    for (int64_t p = 0; p < k; p += 8) {
      __m256 xv = _mm256_loadu_ps(x + p);
      for (int j = 0; j < kN; ++j) {
        __m128i h = _mm_loadu_si128((const __m128i*)(w + (n0 + j) * k + p));
        __m256 wv = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
        acc[j] = _mm256_fmadd_ps(wv, xv, acc[j]);
      }
    }
    for (int j = 0; j < kN; ++j) out[n0 + j] = hsum(acc[j]);
  }
}

// v3 = v1 with software prefetch of each weight row kDist bytes ahead, unrolled by 32 elements
// (one 64-byte line per row per step).
template <int kDist>
void v3(const uint16_t* w, const float* x, float* out, int64_t n, int64_t k) {
#pragma omp parallel for schedule(dynamic, 8)
  for (int64_t n0 = 0; n0 < n; n0 += kN) {
    __m256 acc[kN];
    for (auto& a : acc) a = _mm256_setzero_ps();
    for (int64_t p = 0; p < k; p += 32) {
      for (int j = 0; j < kN; ++j)
        _mm_prefetch((const char*)(w + (n0 + j) * k + p) + kDist, _MM_HINT_T0);
      for (int q = 0; q < 32; q += 8) {
        __m256 xv = _mm256_loadu_ps(x + p + q);
        for (int j = 0; j < kN; ++j) {
          __m128i h = _mm_loadu_si128((const __m128i*)(w + (n0 + j) * k + p + q));
          __m256 wv = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
          acc[j] = _mm256_fmadd_ps(wv, xv, acc[j]);
        }
      }
    }
    for (int j = 0; j < kN; ++j) out[n0 + j] = hsum(acc[j]);
  }
}

// v4: one row at a time (consecutive rows form one sequential stream per thread), 4 accumulators
// over 32 elements, rows split in contiguous chunks: llama.cpp's vec_dot layout.
void v4(const uint16_t* w, const float* x, float* out, int64_t n, int64_t k) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    const uint16_t* wr = w + r * k;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    for (int64_t p = 0; p < k; p += 32) {
      for (int q = 0; q < 4; ++q) {
        __m128i h = _mm_loadu_si128((const __m128i*)(wr + p + 8 * q));
        __m256 wv = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
        acc[q] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + p + 8 * q), acc[q]);
      }
    }
    out[r] = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  }
}

// xs: per 16-chunk, 8 even-index x then 8 odd-index x.
void v2(const uint16_t* w, const float* xs, float* out, int64_t n, int64_t k) {
  const __m256i hi = _mm256_set1_epi32(int(0xffff0000u));
#pragma omp parallel for schedule(dynamic, 8)
  for (int64_t n0 = 0; n0 < n; n0 += kN) {
    __m256 acc[kN];
    for (auto& a : acc) a = _mm256_setzero_ps();
    for (int64_t p = 0; p < k; p += 16) {
      __m256 xe = _mm256_loadu_ps(xs + p), xo = _mm256_loadu_ps(xs + p + 8);
      for (int j = 0; j < kN; ++j) {
        __m256i v = _mm256_loadu_si256((const __m256i*)(w + (n0 + j) * k + p));
        __m256 we = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
        __m256 wo = _mm256_castsi256_ps(_mm256_and_si256(v, hi));
        acc[j] = _mm256_fmadd_ps(we, xe, acc[j]);
        acc[j] = _mm256_fmadd_ps(wo, xo, acc[j]);
      }
    }
    for (int j = 0; j < kN; ++j) out[n0 + j] = hsum(acc[j]);
  }
}

int main() {
  const int64_t n = 28680, k = 2048;  // ~117 MB of bf16: far beyond the caches
  std::vector<uint16_t> w(n * k);
  std::vector<float> x(k), xs(k), o1(n), o2(n);
  std::mt19937 rng(1);
  std::normal_distribution<float> d;
  for (auto& v : w) {
    float f = d(rng);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    v = uint16_t(u >> 16);
  }
  for (auto& v : x) v = d(rng);
  for (int64_t c = 0; c < k; c += 16)
    for (int i = 0; i < 8; ++i) {
      xs[c + i] = x[c + 2 * i];
      xs[c + 8 + i] = x[c + 2 * i + 1];
    }
  // check
  v1(w.data(), x.data(), o1.data(), n, k);
  v2(w.data(), xs.data(), o2.data(), n, k);
  double err = 0, ref = 0;
  for (int64_t r = 0; r < 64; ++r) {
    double s = 0;
    for (int64_t p = 0; p < k; ++p) s += double(bf(w[r * k + p])) * x[p];
    err = std::max(err, std::fabs(o1[r] - s) + std::fabs(o2[r] - s));
    ref = std::max(ref, std::fabs(s));
  }
  std::printf("max err %.3g (ref %.3g)\n", err, ref);
  // Same weights read through a file mapping (page cache, 4 KiB pages), as hearth loads them.
  {
    FILE* f = std::fopen("/tmp/gemv_w.bin", "wb");
    std::fwrite(w.data(), 2, w.size(), f);
    std::fclose(f);
  }
  int fd = open("/tmp/gemv_w.bin", O_RDONLY);
  const uint16_t* wm = (const uint16_t*)mmap(nullptr, w.size() * 2, PROT_READ, MAP_PRIVATE, fd, 0);
  const uint16_t* wh = nullptr;
  {
    void* p = nullptr;
    posix_memalign(&p, 2 << 20, w.size() * 2);
    madvise(p, w.size() * 2, MADV_HUGEPAGE);
    std::memcpy(p, w.data(), w.size() * 2);
    wh = (const uint16_t*)p;
  }
  omp_set_num_threads(2);
  for (int rep = 0; rep < 6; ++rep) {
    for (int dist : {0, 1}) {
      auto t0 = std::chrono::steady_clock::now();
      for (int it = 0; it < 10; ++it) {
        if (dist == 0) v1(wm, x.data(), o1.data(), n, k);
        if (dist == 1) v4(wm, x.data(), o2.data(), n, k);
        if (dist == 512) v3<512>(wm, x.data(), o1.data(), n, k);
        if (dist == 1024) v3<1024>(wm, x.data(), o1.data(), n, k);
        if (dist == 2048) v3<2048>(wm, x.data(), o1.data(), n, k);
      }
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("%s: %.1f GB/s\n", dist ? "v4 row-sequential" : "v1 12-row tile  ",
                  10.0 * n * k * 2 / s / 1e9);
    }
  }
  for (int rep = 0; rep < 0; ++rep) {
    for (int v = 0; v < 3; ++v) {
      const uint16_t* src = v == 0 ? w.data() : v == 1 ? wm : wh;
      auto t0 = std::chrono::steady_clock::now();
      for (int it = 0; it < 10; ++it) v1(src, x.data(), o1.data(), n, k);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("2 threads v1 %s: %.1f GB/s\n",
                  v == 0   ? "vector"
                  : v == 1 ? "mmap  "
                           : "huge  ",
                  10.0 * n * k * 2 / s / 1e9);
    }
  }
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (int rep = 0; rep < 3; ++rep) {
      for (int v = 1; v <= 2; ++v) {
        auto t0 = std::chrono::steady_clock::now();
        for (int it = 0; it < 10; ++it)
          v == 1 ? v1(w.data(), x.data(), o1.data(), n, k)
                 : v2(w.data(), xs.data(), o2.data(), n, k);
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("threads %d v%d: %.1f GB/s\n", threads, v, 10.0 * n * k * 2 / s / 1e9);
      }
    }
  }
}
