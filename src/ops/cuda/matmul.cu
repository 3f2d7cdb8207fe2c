// out[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]) with f32 or bf16 activations (x and out) and
// f32/f16/bf16 weights, f32 accumulation. Few rows (decode): bandwidth GEMV kernels. More rows
// (prefill): the backend calls cuBLAS for bf16 and f32 weights (cuda_backend.cpp's blas_matmul)
// with the helpers below; the tiled GEMM here serves f16 weights and K = 0.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "ops/cuda/device_types.cuh"
#include "ops/cuda/pdl.cuh"

namespace hearth::ops::cuda {
namespace {

// Rows of x up to which the GEMV kernels read each weight row once for all rows of x.
constexpr int kGemvMaxRows = 8;
constexpr int kGemvWarps = 8;

__device__ __forceinline__ float load_bias(const void* bias, Elem bias_elem, int64_t n) {
  if (bias_elem == Elem::f32) return static_cast<const float*>(bias)[n];
  if (bias_elem == Elem::bf16) return to_f32(static_cast<const __nv_bfloat16*>(bias)[n]);
  return to_f32(static_cast<const __half*>(bias)[n]);
}

// Fallback GEMV for layouts the vectorized kernel cannot read with 16-byte loads (K not a
// multiple of the vector width, unaligned pointers or strides): one warp per output column.
template <typename W, int kM>
__global__ void gemv_kernel(const void* x, Elem xe, int64_t x_stride, const W* w, const void* bias,
                            Elem bias_elem, void* out, Elem oe, int64_t out_stride, int64_t n_cols,
                            int64_t k, int m) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t n = int64_t(blockIdx.x) * kGemvWarps + warp;
  if (n >= n_cols) return;
  const W* wr = w + n * k;
  float acc[kM];
#pragma unroll
  for (int i = 0; i < kM; ++i) acc[i] = 0.0f;
  for (int64_t p = lane; p < k; p += 32) {
    const float wv = to_f32(wr[p]);
#pragma unroll
    for (int i = 0; i < kM; ++i)
      if (i < m) acc[i] += wv * load_act(x, xe, i * x_stride + p);
  }
#pragma unroll
  for (int i = 0; i < kM; ++i)
    for (int o = 16; o > 0; o >>= 1) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], o);
  if (lane == 0) {
    const float b = bias ? load_bias(bias, bias_elem, n) : 0.0f;
    for (int i = 0; i < m; ++i) store_act(out, oe, i * out_stride + n, acc[i] + b);
  }
}

// Eight (or four, for f32) weights of one 16-byte load as floats.
template <typename W>
struct Vec16 {
  static constexpr int kElems = 16 / int(sizeof(W));
};

__device__ __forceinline__ void unpack16(const uint4& v, float (&f)[8], __nv_bfloat16) {
  const uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(u[i] << 16);
    f[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
  }
}
__device__ __forceinline__ void unpack16(const uint4& v, float (&f)[8], __half) {
  const uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = to_f32(__ushort_as_half(uint16_t(u[i] & 0xffffu)));
    f[2 * i + 1] = to_f32(__ushort_as_half(uint16_t(u[i] >> 16)));
  }
}
__device__ __forceinline__ void unpack16(const uint4& v, float (&f)[4], float) {
  f[0] = __uint_as_float(v.x);
  f[1] = __uint_as_float(v.y);
  f[2] = __uint_as_float(v.z);
  f[3] = __uint_as_float(v.w);
}

// Dot products of kR weight rows (16-byte chunks `rows`) with up to kM rows of x, reduced over
// the warp so that every lane ends with the full sums in acc. The bandwidth GEMV for decode:
// kU chunks per row per lane are loaded (16-byte read-only loads) before any math, since batch-1
// decode is bound by how many weight bytes are in flight; x (f32 or bf16, small, in L1/L2 for all
// warps of an SM) is read with vector loads too (16 bytes of f32, 8 or 16 of bf16). Lane l visits
// chunks l, l + 32, l + 64, ... in ascending order whatever kR and kU are, so a dot product's f32
// FMA sequence, and with the fixed butterfly its sum, depends only on (w row, x row, K): every
// kernel below gives identical sums. Requires K % (16 / sizeof(W)) == 0, 16-byte aligned w rows and
// x rows (gemv_vec_layout). Elements [off, off + kE) of x (4 or 8; aligned: vec_layout) as floats.
// The x type is a template argument (kBf16X), so each kernel has one straight load path: a
// run-time branch here is the suspected cause of 8B bf16 decode running 3.4 % slower once its
// activations became bf16 (docs/perf/cuda.md; the template version is not yet measured).
template <int kE, bool kBf16X>
__device__ __forceinline__ void load_x_chunk(const void* __restrict__ x, int64_t off,
                                             float (&xv)[kE]) {
  if constexpr (kBf16X) {
    const __nv_bfloat16* xb = static_cast<const __nv_bfloat16*>(x) + off;
    if constexpr (kE == 8) {
      unpack16(__ldg(reinterpret_cast<const uint4*>(xb)), xv, __nv_bfloat16{});
    } else {
      const uint2 u = __ldg(reinterpret_cast<const uint2*>(xb));
      xv[0] = __uint_as_float(u.x << 16);
      xv[1] = __uint_as_float(u.x & 0xffff0000u);
      xv[2] = __uint_as_float(u.y << 16);
      xv[3] = __uint_as_float(u.y & 0xffff0000u);
    }
  } else {
    const float4* xp = reinterpret_cast<const float4*>(static_cast<const float*>(x) + off);
#pragma unroll
    for (int q = 0; q < kE / 4; ++q) {
      const float4 f = __ldg(xp + q);
      xv[4 * q] = f.x;
      xv[4 * q + 1] = f.y;
      xv[4 * q + 2] = f.z;
      xv[4 * q + 3] = f.w;
    }
  }
}

template <typename W, int kM, int kR, bool kBf16X>
__device__ __forceinline__ void gemv_fma_chunk(const uint4 (&wv)[kR], const void* __restrict__ x,
                                               int64_t x_stride, int64_t p, int m,
                                               float (&acc)[kR][kM]) {
  constexpr int kE = Vec16<W>::kElems;
#pragma unroll
  for (int i = 0; i < kM; ++i) {
    if (i >= m) break;
    float xv[kE];
    load_x_chunk<kE, kBf16X>(x, i * x_stride + p, xv);
#pragma unroll
    for (int r = 0; r < kR; ++r) {
      float wf[kE];
      unpack16(wv[r], wf, W{});
#pragma unroll
      for (int e = 0; e < kE; ++e) acc[r][i] = fmaf(wf[e], xv[e], acc[r][i]);
    }
  }
}

template <typename W, int kM, int kR, int kU, bool kBf16X>
__device__ __forceinline__ void gemv_dot(const uint4* const (&rows)[kR], const void* __restrict__ x,
                                         int64_t x_stride, int64_t chunks, int m,
                                         float (&acc)[kR][kM]) {
  constexpr int kE = Vec16<W>::kElems;
#pragma unroll
  for (int r = 0; r < kR; ++r)
#pragma unroll
    for (int i = 0; i < kM; ++i) acc[r][i] = 0.0f;
  int64_t c = threadIdx.x % 32;
  // Main loop: kU chunks per row per lane, all loads issued before the math.
  for (; c + 32 * (kU - 1) < chunks; c += 32 * kU) {
    uint4 wv[kU][kR];
#pragma unroll
    for (int u = 0; u < kU; ++u)
#pragma unroll
      for (int r = 0; r < kR; ++r) wv[u][r] = __ldg(rows[r] + c + 32 * u);
#pragma unroll
    for (int u = 0; u < kU; ++u)
      gemv_fma_chunk<W, kM, kR, kBf16X>(wv[u], x, x_stride, (c + 32 * u) * kE, m, acc);
  }
  // Remainder: one chunk at a time.
  for (; c < chunks; c += 32) {
    uint4 wv[kR];
#pragma unroll
    for (int r = 0; r < kR; ++r) wv[r] = __ldg(rows[r] + c);
    gemv_fma_chunk<W, kM, kR, kBf16X>(wv, x, x_stride, c * kE, m, acc);
  }
#pragma unroll
  for (int r = 0; r < kR; ++r)
#pragma unroll
    for (int i = 0; i < kM; ++i)
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) acc[r][i] += __shfl_xor_sync(0xffffffffu, acc[r][i], o);
}

// The 16-byte chunks of weight row n of a [n_cols, k] matrix; rows past the end re-read the last
// valid row (no branch in the loop) and are never written out.
template <typename W>
__device__ __forceinline__ const uint4* chunk_row(const void* w, int64_t n, int64_t n_cols,
                                                  int64_t k) {
  const int64_t row = n < n_cols ? n : n_cols - 1;
  return reinterpret_cast<const uint4*>(static_cast<const W*>(w) + row * k);
}

// Grouped GEMV: products of one x with up to kMaxGemvGroups weight matrices (q, k, v) in one
// launch. Warps are numbered through the groups in order, each owning kR consecutive output
// columns of one group (groups.first_warp); a plain matmul is the one-group case. Lane
// (r * kM + i) % 32 writes output (i, n0 + r), so the stores spread over lanes.
template <typename W, int kM, int kR, int kU, bool kBf16X>
__global__ void __launch_bounds__(32 * kGemvWarps)
    gemv_vec_kernel(const void* __restrict__ x, int64_t x_stride, GemvGroups groups, int64_t k,
                    int m) {
  const int64_t warp = int64_t(blockIdx.x) * kGemvWarps + threadIdx.x / 32;
  if (warp >= groups.total_warps) {
    pdl_wait();
    return;
  }
  // Constant indices only: the group's fields stay in the parameter space (no local copy).
  GemvOut t = groups.g[0];
  int64_t first = 0;
#pragma unroll
  for (int g = 1; g < kMaxGemvGroups; ++g)
    if (g < groups.count && warp >= groups.first_warp[g]) {
      t = groups.g[g];
      first = groups.first_warp[g];
    }
  const int64_t n0 = (warp - first) * kR;
  const uint4* rows[kR];
#pragma unroll
  for (int r = 0; r < kR; ++r) rows[r] = chunk_row<W>(t.w, n0 + r, t.n, k);
  pdl_wait();
  pdl_trigger();
  float acc[kR][kM];
  gemv_dot<W, kM, kR, kU, kBf16X>(rows, x, x_stride, k / Vec16<W>::kElems, m, acc);
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int r = 0; r < kR; ++r) {
    const int64_t n = n0 + r;
    if (n >= t.n) break;
#pragma unroll
    for (int i = 0; i < kM; ++i) {
      if (i >= m) break;
      if (lane == (r * kM + i) % 32) {
        const float b = t.bias ? load_bias(t.bias, t.bias_elem, n) : 0.0f;
        store_act(t.out, t.out_elem, i * t.out_stride + n, acc[r][i] + b);
      }
    }
  }
}

// Gate and up projections with SiLU·mul: each warp computes the gate and the up dot products of
// kC output columns (2 * kC weight rows in flight, as the two-rows-per-warp matmul) and writes
// silu(g) * u. g and u are the sums gemv_vec_kernel would write (gemv_dot's order, the same bias
// add, rounded to out's type as it stores them) and silu_times is the silu_mul kernel's
// expression, so the result equals the unfused sequence bit for bit.
template <typename W, int kM, int kC, int kU, bool kBf16X>
__global__ void __launch_bounds__(32 * kGemvWarps)
    gemv_silu_mul_kernel(const void* __restrict__ x, int64_t x_stride, GemvOut gate, GemvOut up,
                         void* out, Elem oe, int64_t out_stride, int64_t k, int m) {
  const int64_t n0 = (int64_t(blockIdx.x) * kGemvWarps + threadIdx.x / 32) * kC;
  if (n0 >= gate.n) {
    pdl_wait();
    return;
  }
  const uint4* rows[2 * kC];
#pragma unroll
  for (int c = 0; c < kC; ++c) {
    rows[c] = chunk_row<W>(gate.w, n0 + c, gate.n, k);
    rows[kC + c] = chunk_row<W>(up.w, n0 + c, up.n, k);
  }
  pdl_wait();
  pdl_trigger();
  float acc[2 * kC][kM];
  gemv_dot<W, kM, 2 * kC, kU, kBf16X>(rows, x, x_stride, k / Vec16<W>::kElems, m, acc);
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int c = 0; c < kC; ++c) {
    const int64_t n = n0 + c;
    if (n >= gate.n) break;
#pragma unroll
    for (int i = 0; i < kM; ++i) {
      if (i >= m) break;
      if (lane == (c * kM + i) % 32) {
        const float g = acc[c][i] + (gate.bias ? load_bias(gate.bias, gate.bias_elem, n) : 0.0f);
        const float u = acc[kC + c][i] + (up.bias ? load_bias(up.bias, up.bias_elem, n) : 0.0f);
        store_act(out, oe, i * out_stride + n, silu_times(round_act(oe, g), round_act(oe, u)));
      }
    }
  }
}

// Weight loads per row per lane in flight: two 16-byte loads for 2-byte weights, four for f32
// (the same bytes per load, twice the loads for the same elements).
template <typename W>
constexpr int kGemvUnroll = sizeof(W) == 4 ? 4 : 2;

// Output columns from which a warp takes two weight rows: two rows per warp halve the x reads per
// weight byte, but a launch of few warps then leaves SMs short of weight bytes in flight. 6144:
// the 8B's grouped q/k/v (384 blocks of 8 warps on the H100's 132 SMs) keeps two rows; its o and
// down projections (4096 rows: 256 blocks, 1.9 an SM, with two rows) take one, 512 blocks. H100,
// 8B bf16 decode 164.6 -> 170.0 tok/s against 4096 (169.7 with 8192, which also moved q/k/v to
// one row: 19.2 -> 22.6 us in the decode chains); docs/perf/cuda.md.
constexpr int64_t kGemvTwoRowsMinCols = 6144;

template <typename W, int kM, int kR>
void launch_gemv_groups(const void* x, Elem xe, int64_t x_stride, GemvGroups groups, int64_t k,
                        int m, cudaStream_t stream) {
  int64_t warps = 0;
  for (int g = 0; g < groups.count; ++g) {
    groups.first_warp[g] = warps;
    warps += (groups.g[g].n + kR - 1) / kR;
  }
  groups.total_warps = warps;
  if (warps == 0) return;
  launch_kernel(xe == Elem::bf16 ? gemv_vec_kernel<W, kM, kR, kGemvUnroll<W>, true>
                                 : gemv_vec_kernel<W, kM, kR, kGemvUnroll<W>, false>,
                dim3(blocks_for(warps, kGemvWarps)), dim3(32 * kGemvWarps), 0, stream, x, x_stride,
                groups, k, m);
}

template <typename W, int kM>
void launch_gemv_vec(const void* x, Elem xe, int64_t x_stride, const GemvGroups& groups, int64_t k,
                     int m, cudaStream_t stream) {
  int64_t cols = 0;
  for (int g = 0; g < groups.count; ++g) cols += groups.g[g].n;
  if (cols >= kGemvTwoRowsMinCols)
    launch_gemv_groups<W, kM, 2>(x, xe, x_stride, groups, k, m, stream);
  else
    launch_gemv_groups<W, kM, 1>(x, xe, x_stride, groups, k, m, stream);
}

// Calls fn(std::integral_constant<int, kM>) with the smallest supported row count >= m
// (1, 2, 4, 8): batch-1 decode keeps one accumulator per weight row.
template <typename Fn>
void dispatch_rows(int m, Fn&& fn) {
  if (m == 1)
    fn(std::integral_constant<int, 1>{});
  else if (m == 2)
    fn(std::integral_constant<int, 2>{});
  else if (m <= 4)
    fn(std::integral_constant<int, 4>{});
  else
    fn(std::integral_constant<int, 8>{});
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// Whether x rows and a w of w_bytes-sized elements can be read with the vector loads of gemv_dot
// (16 bytes of w; the same elements of x: 16 bytes of f32, 8 or 16 of bf16).
bool vec_layout(const void* x, Elem xe, int64_t x_stride, int m, int64_t k, const void* w,
                size_t w_bytes) {
  const int64_t elems = int64_t(16 / w_bytes), xb = xe == Elem::bf16 ? 2 : 4;
  const int64_t align = std::min<int64_t>(16, elems * xb);  // of load_x_chunk's widest load
  return k > 0 && k % elems == 0 && aligned16(w) && reinterpret_cast<uintptr_t>(x) % align == 0 &&
         (m == 1 || (x_stride * xb) % align == 0);
}

template <typename W>
void launch_gemv(const void* x, Elem xe, int64_t x_stride, const W* w, const void* bias,
                 Elem bias_elem, void* out, Elem oe, int64_t out_stride, int64_t n, int64_t k,
                 int m, cudaStream_t stream) {
  if (!vec_layout(x, xe, x_stride, m, k, w, sizeof(W))) {
    gemv_kernel<W, kGemvMaxRows><<<blocks_for(n, kGemvWarps), 32 * kGemvWarps, 0, stream>>>(
        x, xe, x_stride, w, bias, bias_elem, out, oe, out_stride, n, k, m);
    return;
  }
  GemvGroups groups;
  groups.count = 1;
  groups.g[0] = GemvOut{w, bias, bias_elem, out, oe, out_stride, n};
  dispatch_rows(m, [&](auto rows) {
    launch_gemv_vec<W, decltype(rows)::value>(x, xe, x_stride, groups, k, m, stream);
  });
}

// 64 x 64 output tile per block, 16-deep slices of K through shared memory, 4 x 4 outputs per
// thread.
constexpr int kTile = 64, kDepth = 16;

template <typename W>
__global__ void gemm_kernel(const void* x, Elem xe, int64_t x_stride, const W* w, const void* bias,
                            Elem bias_elem, void* out, Elem oe, int64_t out_stride, int64_t m,
                            int64_t n, int64_t k) {
  __shared__ float xs[kDepth][kTile + 1];
  __shared__ float ws[kDepth][kTile + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m0 = int64_t(blockIdx.y) * kTile, n0 = int64_t(blockIdx.x) * kTile;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < k; k0 += kDepth) {
    for (int i = threadIdx.x; i < kDepth * kTile; i += blockDim.x) {
      const int kk = i % kDepth, r = i / kDepth;
      const int64_t gm = m0 + r, gn = n0 + r, gk = k0 + kk;
      xs[kk][r] = (gm < m && gk < k) ? load_act(x, xe, gm * x_stride + gk) : 0.0f;
      ws[kk][r] = (gn < n && gk < k) ? to_f32(w[gn * k + gk]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kDepth; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = xs[kk][ty * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = ws[kk][tx * 4 + j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t gm = m0 + ty * 4 + i;
    if (gm >= m) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t gn = n0 + tx * 4 + j;
      if (gn >= n) continue;
      const float b = bias ? load_bias(bias, bias_elem, gn) : 0.0f;
      store_act(out, oe, gm * out_stride + gn, acc[i][j] + b);
    }
  }
}

// x [m, k] f32 rows -> three contiguous bf16 planes [3, m, k] with hi + mid + lo == x exactly
// for finite |x| >= 1e-30 (checked over 2e7 random bit patterns; smaller x lose bits of lo to
// subnormals, an absolute error below 1e-38): hi and mid truncate (so nothing rounds up to inf),
// each residual is exact in f32, and what is left after mid has at most 8 significant bits. Three
// bf16 tensor-core GEMMs over the planes then give f32-exact products with f32 accumulation.
__device__ __forceinline__ float truncate_to_bf16(float v) {
  return __uint_as_float(__float_as_uint(v) & 0xffff0000u);
}

__global__ void split_rows_bf16_kernel(const float* x, int64_t x_stride, __nv_bfloat16* dst,
                                       int64_t m, int64_t k) {
  const int64_t plane = m * k;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < plane;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / k, col = i % k;
    const float v = x[row * x_stride + col];
    float hi = v, mid = 0.0f, lo = 0.0f;
    if (isfinite(v)) {
      hi = truncate_to_bf16(v);
      const float r1 = v - hi;
      mid = truncate_to_bf16(r1);
      lo = r1 - mid;
    }
    dst[i] = from_f32<__nv_bfloat16>(hi);
    dst[plane + i] = from_f32<__nv_bfloat16>(mid);
    dst[2 * plane + i] = from_f32<__nv_bfloat16>(lo);
  }
}

__global__ void fill_bias_rows_kernel(const void* bias, Elem bias_elem, float* out,
                                      int64_t out_stride, int64_t m, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < m * n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / n, col = i % n;
    out[row * out_stride + col] = bias ? load_bias(bias, bias_elem, col) : 0.0f;
  }
}

unsigned grid_for(int64_t work, int threads) {
  return unsigned(std::min<int64_t>((work + threads - 1) / threads, 4096));
}

}  // namespace

cudaError_t launch_split_rows_bf16(const float* x, int64_t x_stride, void* dst, int64_t m,
                                   int64_t k, cudaStream_t stream) {
  if (m == 0 || k == 0) return cudaSuccess;
  split_rows_bf16_kernel<<<grid_for(m * k, 256), 256, 0, stream>>>(
      x, x_stride, static_cast<__nv_bfloat16*>(dst), m, k);
  return cudaGetLastError();
}

cudaError_t launch_fill_bias_rows(const void* bias, Elem bias_elem, float* out, int64_t out_stride,
                                  int64_t m, int64_t n, cudaStream_t stream) {
  if (m == 0 || n == 0) return cudaSuccess;
  fill_bias_rows_kernel<<<grid_for(m * n, 256), 256, 0, stream>>>(bias, bias_elem, out, out_stride,
                                                                  m, n);
  return cudaGetLastError();
}

cudaError_t launch_matmul(const void* x, Elem x_elem, int64_t x_stride, const void* w, Elem w_elem,
                          const void* bias, Elem bias_elem, void* out, Elem out_elem,
                          int64_t out_stride, int64_t m, int64_t n, int64_t k,
                          cudaStream_t stream) {
  if (m == 0 || n == 0) return cudaSuccess;
  return dispatch_float(w_elem, [&](auto tag) {
    using W = decltype(tag);
    const W* wp = static_cast<const W*>(w);
    if (m <= kGemvMaxRows) {
      launch_gemv<W>(x, x_elem, x_stride, wp, bias, bias_elem, out, out_elem, out_stride, n, k,
                     int(m), stream);
    } else {
      dim3 grid(blocks_for(n, kTile), blocks_for(m, kTile));
      gemm_kernel<W><<<grid, 256, 0, stream>>>(x, x_elem, x_stride, wp, bias, bias_elem, out,
                                               out_elem, out_stride, m, n, k);
    }
    return cudaGetLastError();
  });
}

cudaError_t launch_matmul_grouped(const void* x, Elem x_elem, int64_t x_stride, Elem w_elem,
                                  const GemvGroups& groups, int64_t m, int64_t k,
                                  cudaStream_t stream) {
  if (m == 0) return cudaSuccess;
  bool vec = m <= kGemvMaxRows && groups.count >= 1 && groups.count <= kMaxGemvGroups;
  for (int g = 0; vec && g < groups.count; ++g)
    vec = vec_layout(x, x_elem, x_stride, int(m), k, groups.g[g].w, w_elem == Elem::f32 ? 4 : 2);
  if (!vec) {
    // Layouts the 16-byte loads cannot read (or many rows): the products one by one, as matmul.
    for (int g = 0; g < groups.count; ++g) {
      const GemvOut& t = groups.g[g];
      const cudaError_t e = launch_matmul(x, x_elem, x_stride, t.w, w_elem, t.bias, t.bias_elem,
                                          t.out, t.out_elem, t.out_stride, m, t.n, k, stream);
      if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
  }
  return dispatch_float(w_elem, [&](auto tag) {
    using W = decltype(tag);
    dispatch_rows(int(m), [&](auto rows) {
      launch_gemv_vec<W, decltype(rows)::value>(x, x_elem, x_stride, groups, k, int(m), stream);
    });
    return cudaGetLastError();
  });
}

bool gemv_silu_mul_fits(const void* x, Elem x_elem, int64_t x_stride, int64_t m, int64_t k,
                        const void* w_gate, const void* w_up, Elem w_elem) {
  const size_t bytes = w_elem == Elem::f32 ? 4 : 2;
  return m >= 1 && m <= kGemvMaxRows && vec_layout(x, x_elem, x_stride, int(m), k, w_gate, bytes) &&
         vec_layout(x, x_elem, x_stride, int(m), k, w_up, bytes);
}

cudaError_t launch_gemv_silu_mul(const void* x, Elem x_elem, int64_t x_stride, const GemvOut& gate,
                                 const GemvOut& up, Elem w_elem, void* out, Elem out_elem,
                                 int64_t out_stride, int64_t m, int64_t k, cudaStream_t stream) {
  if (m == 0 || gate.n == 0) return cudaSuccess;
  // One output column per warp: its gate and up rows are the two rows in flight.
  constexpr int kC = 1;
  return dispatch_float(w_elem, [&](auto tag) {
    using W = decltype(tag);
    dispatch_rows(int(m), [&](auto rows) {
      constexpr int kM = decltype(rows)::value;
      launch_kernel(x_elem == Elem::bf16 ? gemv_silu_mul_kernel<W, kM, kC, kGemvUnroll<W>, true>
                                         : gemv_silu_mul_kernel<W, kM, kC, kGemvUnroll<W>, false>,
                    dim3(blocks_for(gate.n, kC * kGemvWarps)), dim3(32 * kGemvWarps), 0, stream, x,
                    x_stride, gate, up, out, out_elem, out_stride, k, int(m));
    });
    return cudaGetLastError();
  });
}

}  // namespace hearth::ops::cuda
