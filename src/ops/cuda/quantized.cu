// CUDA kernels for MLX affine-quantized weights: quantize, dequantize (and the quantized embedding
// gather, which is a dequantize of selected rows), and the fused-dequant GEMV of decode (4 and 8
// bits: 16-byte units, see "GEMV, 4 and 8 bits"; other widths: 32-code chunks).
//
// Unit of work of quantize, dequantize and the chunk GEMV: a chunk of 32 consecutive codes of a
// row. At any width it is exactly `bits` u32
// words, word-aligned, inside one group (group sizes are 32, 64 or 128), so the kernels are
// templated on the width only and the bit offsets of the 32 codes are compile-time constants.
//
// Quantize and dequantize repeat MLX's f32 operations one by one (__fmul_rn etc. keep nvcc from
// contracting a multiply and an add into one rounding), so they give the bits of the CPU backend.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "ops/cuda/device_types.cuh"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/quantized_launch.h"

namespace hearth::ops::cuda {
namespace {

constexpr int kChunk = 32;  // codes per chunk

// The bits words of one chunk, with 16- or 8-byte loads where the width allows.
template <int kBits>
__device__ __forceinline__ void load_chunk(const uint32_t* p, uint32_t (&w)[kBits]) {
  if constexpr (kBits % 4 == 0) {
#pragma unroll
    for (int i = 0; i < kBits; i += 4) {
      const uint4 v = __ldg(reinterpret_cast<const uint4*>(p + i));
      w[i] = v.x, w[i + 1] = v.y, w[i + 2] = v.z, w[i + 3] = v.w;
    }
  } else if constexpr (kBits % 2 == 0) {
#pragma unroll
    for (int i = 0; i < kBits; i += 2) {
      const uint2 v = __ldg(reinterpret_cast<const uint2*>(p + i));
      w[i] = v.x, w[i + 1] = v.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < kBits; ++i) w[i] = __ldg(p + i);
  }
}

// Code j of a chunk (j a compile-time constant once unrolled).
template <int kBits>
__device__ __forceinline__ uint32_t code_at(const uint32_t (&w)[kBits], int j) {
  const int bit = j * kBits, word = bit / 32, shift = bit % 32;
  uint32_t v = w[word] >> shift;
  if (shift + kBits > 32) v |= w[word + 1] << (32 - shift);
  return v & ((1u << kBits) - 1u);
}

// The code as a float without an int-to-float conversion (a slow instruction): 2^23 + code has
// the code in its mantissa.
__device__ __forceinline__ float code_to_f32(uint32_t code) {
  return __uint_as_float(0x4b000000u | code) - 8388608.0f;
}

// ---- quantize -----------------------------------------------------------------------------------

template <typename T, typename S, int kBits, bool kGpu>
__global__ void quantize_kernel(const T* w, int64_t w_stride, uint32_t* packed, S* scales,
                                S* biases, int group_size, int64_t n, int64_t k) {
  const int64_t groups = k / group_size;
  const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= n * groups) return;
  const int64_t r = id / groups, g = id % groups;
  const T* wg = w + r * w_stride + g * group_size;
  float w_min = INFINITY, w_max = kGpu ? 0.0f : -INFINITY;
  for (int j = 0; j < group_size; ++j) {
    const float v = to_f32(wg[j]);
    w_min = fminf(w_min, v);
    w_max = fmaxf(w_max, v);
  }
  const float n_bins = float((1 << kBits) - 1);
  const bool min_side = fabsf(w_min) > fabsf(w_max);
  float scale = fmaxf(__fdiv_rn(__fsub_rn(w_max, w_min), n_bins), 1e-7f);
  if (!min_side) scale = -scale;
  const float edge = min_side ? w_min : w_max;
  const float q0 = kGpu ? roundf(__fdiv_rn(edge, scale)) : rintf(__fdiv_rn(edge, scale));
  float bias = 0.0f;
  if (q0 != 0.0f) {
    scale = __fdiv_rn(edge, q0);
    bias = edge;
  }
  // The group's codes are group_size * bits bits: whole words, appended low bits first.
  uint32_t* out = packed + r * (k * kBits / 32) + g * (group_size * kBits / 32);
  uint64_t acc = 0;
  int filled = 0;
  for (int j = 0; j < group_size; ++j) {
    float c = __fdiv_rn(__fsub_rn(to_f32(wg[j]), bias), scale);
    c = kGpu ? roundf(c) : rintf(c);
    c = fminf(fmaxf(c, 0.0f), n_bins);
    acc |= uint64_t(uint32_t(c)) << filled;
    filled += kBits;
    if (filled >= 32) {
      *out++ = uint32_t(acc);
      acc >>= 32;
      filled -= 32;
    }
  }
  scales[id] = from_f32<S>(scale);
  biases[id] = from_f32<S>(bias);
}

// ---- dequantize ---------------------------------------------------------------------------------

__device__ __forceinline__ uint16_t raw_bits(__nv_bfloat16 v) {
  return __bfloat16_as_ushort(v);
}
__device__ __forceinline__ uint16_t raw_bits(__half v) {
  return __half_as_ushort(v);
}

// One thread per (output row, chunk): out = T(T(s * q) + b), MLX's multiply then add.
template <typename T, typename S, int kBits>
__global__ void dequantize_kernel(QuantMatrix w, const int32_t* ids, int64_t id_stride,
                                  int64_t rows, T* out, int64_t out_stride, unsigned long long* bad,
                                  bool vector_stores) {
  pdl_wait();
  pdl_trigger();
  const int64_t chunks = w.k / kChunk;
  const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= rows * chunks) return;
  const int64_t t = id / chunks, c = id % chunks;
  int64_t r = t;
  if (ids) {
    const int32_t id = ids[t * id_stride];
    if (id < 0 || id >= w.n) {
      // The first bad position and its id, as launch_embedding records them.
      if (c == 0) atomicMin(bad, (static_cast<unsigned long long>(t) << 32) | uint32_t(id));
      return;
    }
    r = id;
  }
  uint32_t words[kBits];
  load_chunk<kBits>(w.packed + r * (w.k * kBits / 32) + c * kBits, words);
  const int64_t g = r * (w.k / w.group_size) + c * kChunk / w.group_size;
  const float s = to_f32(static_cast<const S*>(w.scales)[g]);
  const float b = to_f32(static_cast<const S*>(w.biases)[g]);
  T* o = out + t * out_stride + c * kChunk;
  auto value = [&](int j) {
    const float product = to_f32(from_f32<T>(__fmul_rn(code_to_f32(code_at<kBits>(words, j)), s)));
    return from_f32<T>(__fadd_rn(product, b));
  };
  if (!vector_stores) {
#pragma unroll
    for (int j = 0; j < kChunk; ++j) o[j] = value(j);
    return;
  }
  // 16-byte stores: a thread's chunk is 64 or 128 contiguous bytes, and one store per element
  // left most of each 32-byte sector of a warp's store unwritten (the bf16 panels of the
  // quantized GEMM were written at ~1/10 of the bandwidth).
  constexpr int kPerStore = 16 / int(sizeof(T));
#pragma unroll
  for (int v = 0; v < kChunk / kPerStore; ++v) {
    uint32_t bits[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      if constexpr (sizeof(T) == 4) {
        bits[q] = __float_as_uint(to_f32(value(v * 4 + q)));
      } else {
        bits[q] = uint32_t(raw_bits(value(v * 8 + 2 * q))) |
                  uint32_t(raw_bits(value(v * 8 + 2 * q + 1))) << 16;
      }
    }
    reinterpret_cast<uint4*>(o)[v] = make_uint4(bits[0], bits[1], bits[2], bits[3]);
  }
}

// ---- GEMV: shared pieces
// -------------------------------------------------------------------------

constexpr int kGemvWarps = 8;  // warps per block
constexpr int kGemvThreads = kGemvWarps * 32;

__device__ __forceinline__ float bias_at(const void* bias, Elem elem, int64_t n) {
  if (elem == Elem::f32) return static_cast<const float*>(bias)[n];
  if (elem == Elem::bf16) return to_f32(static_cast<const __nv_bfloat16*>(bias)[n]);
  return to_f32(static_cast<const __half*>(bias)[n]);
}

// The warp's partial sums of kR output columns n0.. (weight rows) for kM x rows: summed over the
// warp, plus the bias, written for rows < n_rows and x rows < m. Output (i, n0 + r) is written by
// lane (r * kM + i) % 32, so the stores spread over the lanes.
template <int kR, int kM>
__device__ __forceinline__ void reduce_and_store(float (&acc)[kR][kM], int lane, int64_t n0,
                                                 int64_t n_rows, int m, const void* bias,
                                                 Elem bias_elem, void* out, Elem out_elem,
                                                 int64_t out_stride) {
#pragma unroll
  for (int r = 0; r < kR; ++r)
#pragma unroll
    for (int i = 0; i < kM; ++i)
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) acc[r][i] += __shfl_xor_sync(0xffffffffu, acc[r][i], o);
#pragma unroll
  for (int r = 0; r < kR; ++r) {
    const int64_t n = n0 + r;
    if (n >= n_rows) break;
#pragma unroll
    for (int i = 0; i < kM; ++i) {
      if (i >= m) break;
      if (lane == (r * kM + i) % 32)
        store_act(out, out_elem, i * out_stride + n,
                  acc[r][i] + (bias ? bias_at(bias, bias_elem, n) : 0.0f));
    }
  }
}

// Shared memory a GEMV block may use for its copy of x (two blocks fit an SM of 228 KB).
constexpr size_t kQgemvSmemLimit = 96 << 10;

// ---- GEMV, 4 and 8 bits: 16-byte units ----------------------------------------------------------
//
// Decode is bound by the weight bytes in flight and, once those are enough, by the instructions
// per code: the chunk kernel below spends ~6 per code (shift, mask, magic-number convert, FMA,
// shared loads), about 10 % of an H200's bandwidth on the 8B shape. Here:
//  - A unit is 16 bytes of one weight row (4 words: 32 codes at 4 bits, 16 at 8 bits), loaded with
//    one 16-byte load; lane l of a warp takes units l, l + 32, ... of kR rows at a time, with 8
//    such loads per lane issued before any math (4 KB per warp in flight).
//  - Codes become exact floats with one LOP3 and one FADD: a code at bit `pos` (< 16) of a 16-bit
//    half-word, ORed into the bits of the float 2^(23 - pos), lands in that float's mantissa with
//    weight 1, so the float is 2^(23 - pos) + code, and subtracting 2^(23 - pos) leaves the code
//    exactly. The high half-word needs one shift per word. Then one f32 FMA with x per code per x
//    row, i.e. ~3 instructions per code, all in f32 (products exact as in the f32 reference).
//  - sum_j (s q_j + b) x_j = s * sum_j q_j x_j + b * sum_j x_j per unit: the sums of x per unit
//    are computed once per x row, so the inner loop is the code dot product alone.
//  - x is laid out as [row][quad p][unit u] float4s (quad p = codes 4p .. 4p + 3 of unit u), so
//    the 32 lanes' reads of one quad are 512 contiguous bytes (no bank conflicts in shared memory,
//    4 wavefronts through L1). With m * k * 4 bytes <= kQgemvSmemLimit every block copies x into
//    shared memory in that layout (no extra kernel: a decode GEMV is a few microseconds, a second
//    launch would cost about as much); otherwise a prepare kernel writes it to global scratch.
//  - Blocks are persistent (grid = resident capacity) and loop over tiles of 8 kR rows, so x is
//    copied once per block rather than once per tile.

template <int kBits>
struct Unit {
  static constexpr int kCodes = 128 / kBits;  // codes per 16-byte unit: 32 or 16
  static constexpr int kQuads = kCodes / 4;
  static constexpr int kPerWord = 32 / kBits;
  static constexpr int kPerHalf = 16 / kBits;
};

// Weight loads in flight per lane (units x rows).
constexpr int kLoadsInFlight = 8;

// Codes 4p .. 4p + 3 of a unit as exact floats (p a compile-time constant once unrolled).
template <int kBits>
__device__ __forceinline__ void decode_quad(const uint4& v, int p, float (&q)[4]) {
  using U = Unit<kBits>;
  const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int c = 0; c < 4; ++c) {
    const int j = 4 * p + c, n = j % U::kPerWord;
    const uint32_t word = words[j / U::kPerWord];
    const uint32_t half = n < U::kPerHalf ? word : word >> 16;
    const int pos = kBits * (n % U::kPerHalf);
    const uint32_t magic = uint32_t(127 + 23 - pos) << 23;  // the float 2^(23 - pos)
    const uint32_t mask = ((1u << kBits) - 1u) << pos;
    q[c] = __uint_as_float((half & mask) | magic) - __uint_as_float(magic);
  }
}

__device__ __forceinline__ float component(const float4& v, int c) {
  return c == 0 ? v.x : c == 1 ? v.y : c == 2 ? v.z : v.w;
}

// x in the [row][quad][unit] layout with per-unit sums, in shared or global memory.
struct UnitXShared {
  const float4* quads;
  const float* sums;
  int64_t units;
  __device__ float4 quad(int i, int p, int64_t u, int quads_per_unit) const {
    return quads[(int64_t(i) * quads_per_unit + p) * units + u];
  }
  __device__ float sum(int i, int64_t u) const { return sums[i * units + u]; }
};
struct UnitXGlobal {
  const float4* __restrict__ quads;
  const float* __restrict__ sums;
  int64_t units;
  __device__ float4 quad(int i, int p, int64_t u, int quads_per_unit) const {
    return __ldg(quads + (int64_t(i) * quads_per_unit + p) * units + u);
  }
  __device__ float sum(int i, int64_t u) const { return __ldg(sums + i * units + u); }
};

// Copies unit `id` (= i * units + u) of x into the [row][quad][unit] layout and sums it.
template <int kBits>
__device__ __forceinline__ void stage_unit(const void* __restrict__ x, Elem x_elem,
                                           int64_t x_stride, int64_t units, int64_t id,
                                           float4* quads, float* sums) {
  using U = Unit<kBits>;
  const int64_t i = id / units, u = id % units;
  const int64_t src = i * x_stride + u * U::kCodes;  // x rows need not be 16-byte aligned
  float sum = 0.0f;
#pragma unroll
  for (int p = 0; p < U::kQuads; ++p) {
    const float4 v =
        make_float4(load_act(x, x_elem, src + 4 * p), load_act(x, x_elem, src + 4 * p + 1),
                    load_act(x, x_elem, src + 4 * p + 2), load_act(x, x_elem, src + 4 * p + 3));
    sum += v.x;
    sum += v.y;
    sum += v.z;
    sum += v.w;
    quads[(i * U::kQuads + p) * units + u] = v;
  }
  sums[id] = sum;
}

template <int kBits>
__global__ void stage_units_kernel(const void* x, Elem x_elem, int64_t x_stride, int m,
                                   int64_t units, float4* quads, float* sums) {
  pdl_wait();
  pdl_trigger();
  const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id < m * units) stage_unit<kBits>(x, x_elem, x_stride, units, id, quads, sums);
}

// One step of a lane: units u0, u0 + 32, ... (kLoadsInFlight / kR of them) of kR rows. kGuard:
// the last step of a row, where units past the end are skipped.
template <typename S, int kBits, int kM, int kR, bool kGuard, typename X>
__device__ __forceinline__ void unit_step(const X& x, int m, int64_t units, int upg_log2,
                                          const uint4* const (&rows)[kR],
                                          const S* const (&scales)[kR],
                                          const S* const (&biases)[kR], int64_t u0,
                                          float (&acc)[kR][kM]) {
  using U = Unit<kBits>;
  constexpr int kU = kLoadsInFlight / kR;
  // Independent partial sums per unit when there are few (row, x row) pairs, to hide the FMA
  // latency of a single chain.
  constexpr int kChains = kR * kM >= 4 ? 1 : 4 / (kR * kM);
  uint4 wv[kU][kR];
  float s[kU][kR], b[kU][kR];
#pragma unroll
  for (int j = 0; j < kU; ++j) {
    const int64_t u = u0 + 32 * j;
    if (kGuard && u >= units) break;
    const int64_t g = u >> upg_log2;
#pragma unroll
    for (int r = 0; r < kR; ++r) {
      wv[j][r] = __ldg(rows[r] + u);
      s[j][r] = to_f32(scales[r][g]);
      b[j][r] = to_f32(biases[r][g]);
    }
  }
#pragma unroll
  for (int j = 0; j < kU; ++j) {
    const int64_t u = u0 + 32 * j;
    if (kGuard && u >= units) break;
    float dot[kR][kM][kChains];
#pragma unroll
    for (int r = 0; r < kR; ++r)
#pragma unroll
      for (int i = 0; i < kM; ++i)
#pragma unroll
        for (int h = 0; h < kChains; ++h) dot[r][i][h] = 0.0f;
#pragma unroll
    for (int p = 0; p < U::kQuads; ++p) {
      float4 xv[kM];
#pragma unroll
      for (int i = 0; i < kM; ++i)
        xv[i] = i < m ? x.quad(i, p, u, U::kQuads) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
      for (int r = 0; r < kR; ++r) {
        float q[4];
        decode_quad<kBits>(wv[j][r], p, q);
#pragma unroll
        for (int i = 0; i < kM; ++i) {
          if (i >= m) break;
#pragma unroll
          for (int c = 0; c < 4; ++c)
            dot[r][i][c % kChains] = fmaf(q[c], component(xv[i], c), dot[r][i][c % kChains]);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kM; ++i) {
      if (i >= m) break;
      const float xs = x.sum(i, u);
#pragma unroll
      for (int r = 0; r < kR; ++r) {
        float d = dot[r][i][0];
#pragma unroll
        for (int h = 1; h < kChains; ++h) d += dot[r][i][h];
        acc[r][i] = fmaf(s[j][r], d, fmaf(b[j][r], xs, acc[r][i]));
      }
    }
  }
}

// Weight rows n0 .. n0 + kR - 1 (rows past the end re-read the last row and are not written).
template <typename S, int kBits, int kM, int kR, typename X>
__device__ __forceinline__ void unit_rows(const X& x, int m, const QuantMatrix& w, int64_t n0,
                                          int lane, const void* bias, Elem bias_elem, void* out,
                                          Elem out_elem, int64_t out_stride) {
  using U = Unit<kBits>;
  constexpr int kU = kLoadsInFlight / kR;
  const int64_t units = w.k / U::kCodes, groups = w.k / w.group_size;
  const int upg_log2 = __ffs(w.group_size / U::kCodes) - 1;  // units per group: 1 .. 8
  const uint4* rows[kR];
  const S* scales[kR];
  const S* biases[kR];
#pragma unroll
  for (int r = 0; r < kR; ++r) {
    const int64_t n = n0 + r < w.n ? n0 + r : w.n - 1;
    rows[r] = reinterpret_cast<const uint4*>(w.packed) + n * units;
    scales[r] = static_cast<const S*>(w.scales) + n * groups;
    biases[r] = static_cast<const S*>(w.biases) + n * groups;
  }
  float acc[kR][kM];
#pragma unroll
  for (int r = 0; r < kR; ++r)
#pragma unroll
    for (int i = 0; i < kM; ++i) acc[r][i] = 0.0f;
  int64_t base = 0;  // first unit of the warp's step
  for (; base + 32 * kU <= units; base += 32 * kU)
    unit_step<S, kBits, kM, kR, false>(x, m, units, upg_log2, rows, scales, biases, base + lane,
                                       acc);
  if (base < units)
    unit_step<S, kBits, kM, kR, true>(x, m, units, upg_log2, rows, scales, biases, base + lane,
                                      acc);
  reduce_and_store<kR, kM>(acc, lane, n0, w.n, m, bias, bias_elem, out, out_elem, out_stride);
}

// kStaged: x is copied into shared memory by the block; otherwise it was staged in global memory.
template <typename S, int kBits, int kM, int kR, bool kStaged>
__global__ void __launch_bounds__(kGemvThreads)
    qgemv_unit_kernel(const void* __restrict__ x, Elem x_elem, int64_t x_stride, const float4* xq,
                      const float* xsum, int m, QuantMatrix w, const void* bias, Elem bias_elem,
                      void* out, Elem out_elem, int64_t out_stride) {
  pdl_wait();
  pdl_trigger();
  using U = Unit<kBits>;
  const int64_t units = w.k / U::kCodes;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t tiles = (w.n + kGemvWarps * kR - 1) / (kGemvWarps * kR);
  auto run = [&](const auto& xa) {
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      const int64_t n0 = (tile * kGemvWarps + warp) * kR;
      if (n0 < w.n)
        unit_rows<S, kBits, kM, kR>(xa, m, w, n0, lane, bias, bias_elem, out, out_elem, out_stride);
    }
  };
  if constexpr (kStaged) {
    extern __shared__ float4 smem_quads[];
    float* smem_sums = reinterpret_cast<float*>(smem_quads + int64_t(m) * U::kQuads * units);
    for (int64_t id = threadIdx.x; id < m * units; id += blockDim.x)
      stage_unit<kBits>(x, x_elem, x_stride, units, id, smem_quads, smem_sums);
    __syncthreads();
    run(UnitXShared{smem_quads, smem_sums, units});
  } else {
    run(UnitXGlobal{xq, xsum, units});
  }
}

// Weight rows per warp: more rows share each x read (x traffic through L1/shared memory is 8x the
// 4-bit weight bytes per x row otherwise); fewer keep enough warps busy on small N. Not yet tuned
// on the GPU (first guess, as matmul.cu's dense GEMV); at 8 x rows at most 2, for registers.
int unit_rows_per_warp(int64_t n, int m) {
  if (n >= 8192 && m <= 2) return 4;
  return n >= 2048 ? 2 : 1;
}

template <typename S, int kBits>
cudaError_t launch_qgemv_units(const void* x, Elem x_elem, int64_t x_stride, int m,
                               const QuantMatrix& w, const void* bias, Elem bias_elem,
                               float* scratch, void* out, Elem out_elem, int64_t out_stride,
                               cudaStream_t stream) {
  using U = Unit<kBits>;
  const int64_t units = w.k / U::kCodes;
  const size_t smem = size_t(m) * size_t(units) * (U::kQuads * sizeof(float4) + sizeof(float));
  const bool staged = smem <= kQgemvSmemLimit;
  float4* xq = reinterpret_cast<float4*>(scratch);
  float* xsum = scratch + int64_t(m) * w.k;
  if (!staged) {
    launch_kernel(stage_units_kernel<kBits>, dim3(blocks_for(m * units, 128)), dim3(128), 0, stream,
                  x, x_elem, x_stride, m, units, xq, xsum);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  auto go = [&]<int kM, int kR>() {
    auto launch = [&]<bool kStaged>() {
      auto kernel = qgemv_unit_kernel<S, kBits, kM, kR, kStaged>;
      const size_t bytes = kStaged ? smem : 0;
      if constexpr (kStaged) {
        static std::atomic<uint64_t> asked{0};
        if (cudaError_t e =
                allow_shared_memory(reinterpret_cast<const void*>(kernel), kQgemvSmemLimit, asked);
            e != cudaSuccess)
          return e;
      }
      int per_sm = 0;
      if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kGemvThreads, bytes) !=
              cudaSuccess ||
          per_sm < 1) {
        cudaGetLastError();
        per_sm = 1;
      }
      const int64_t tiles = (w.n + kGemvWarps * kR - 1) / (kGemvWarps * kR);
      const unsigned grid = unsigned(std::min<int64_t>(tiles, int64_t(per_sm) * sm_count()));
      launch_kernel(kernel, dim3(grid), dim3(kGemvThreads), bytes, stream, x, x_elem, x_stride, xq,
                    xsum, m, w, bias, bias_elem, out, out_elem, out_stride);
      return cudaGetLastError();
    };
    return staged ? launch.template operator()<true>() : launch.template operator()<false>();
  };
  auto by_rows = [&]<int kM>() {
    switch (unit_rows_per_warp(w.n, m)) {
      case 4:
        if constexpr (kM <= 2) return go.template operator()<kM, 4>();
        [[fallthrough]];
      case 2:
        return go.template operator()<kM, 2>();
      default:
        return go.template operator()<kM, 1>();
    }
  };
  if (m == 1) return by_rows.template operator()<1>();
  if (m == 2) return by_rows.template operator()<2>();
  if (m <= 4) return by_rows.template operator()<4>();
  return by_rows.template operator()<8>();
}

// ---- GEMV, any width: 32-code chunks ------------------------------------------------------------

// x copied into contiguous rows (so the GEMV can read it with 16-byte loads) and the sum of x over
// every chunk: sum_j x_j (s q_j + b) = s * dot(x, q) + b * sum(x) per chunk.
__global__ void prepare_x_kernel(const void* x, Elem x_elem, int64_t x_stride, int m, int64_t k,
                                 float* xc, float* xsum) {
  pdl_wait();
  pdl_trigger();
  const int64_t chunks = k / kChunk;
  const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= m * chunks) return;
  const int64_t i = id / chunks, c = id % chunks;
  const int64_t src = i * x_stride + c * kChunk;
  float* dst = xc + i * k + c * kChunk;
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < kChunk; ++j) {
    const float v = load_act(x, x_elem, src + j);
    dst[j] = v;
    sum += v;
  }
  xsum[id] = sum;
}

// x of the chunk kernels: contiguous rows read through L1, or a shared-memory copy with each
// 32-float chunk padded to 36 floats. A lane reads the x of its own chunk, so through L1 a warp's
// float4 load touches 32 cache lines (one wavefront each; ~0.4 TB/s on the 8B 4-bit shape on an
// H200); with the padding the 8 lanes of each shared-memory phase hit distinct banks.
constexpr int kPaddedChunk = 36;

struct ChunkXGlobal {
  const float* __restrict__ xc;
  const float* __restrict__ xsum;
  int64_t k, chunks;
  __device__ float4 quad(int i, int64_t c, int j) const {
    return __ldg(reinterpret_cast<const float4*>(xc + i * k + c * kChunk + j));
  }
  __device__ float sum(int i, int64_t c) const { return __ldg(xsum + i * chunks + c); }
};
struct ChunkXShared {
  const float* xs;
  const float* __restrict__ xsum;
  int64_t chunks;
  __device__ float4 quad(int i, int64_t c, int j) const {
    return *reinterpret_cast<const float4*>(xs + (i * chunks + c) * kPaddedChunk + j);
  }
  __device__ float sum(int i, int64_t c) const { return __ldg(xsum + i * chunks + c); }
};

// One warp, one weight row n; lane l takes chunks l, l + 32, ...: a warp's loads of one step are
// 32 consecutive chunks, fully coalesced.
template <typename S, int kBits, int kM, typename X>
__device__ __forceinline__ void chunk_row(const X& x, int m, const QuantMatrix& w, int64_t n,
                                          int lane, const void* bias, Elem bias_elem, void* out,
                                          Elem out_elem, int64_t out_stride) {
  const int64_t chunks = w.k / kChunk, groups = w.k / w.group_size;
  const int chunks_per_group_log2 = __ffs(w.group_size / kChunk) - 1;
  const uint32_t* row = w.packed + n * (w.k * kBits / 32);
  const S* scales = static_cast<const S*>(w.scales) + n * groups;
  const S* biases = static_cast<const S*>(w.biases) + n * groups;
  float acc[1][kM];
#pragma unroll
  for (int i = 0; i < kM; ++i) acc[0][i] = 0.0f;
#pragma unroll 2
  for (int64_t c = lane; c < chunks; c += 32) {
    uint32_t words[kBits];
    load_chunk<kBits>(row + c * kBits, words);
    const int64_t g = c >> chunks_per_group_log2;
    const float s = to_f32(scales[g]), b = to_f32(biases[g]);
    float dot[kM];
#pragma unroll
    for (int i = 0; i < kM; ++i) dot[i] = 0.0f;
#pragma unroll
    for (int j = 0; j < kChunk; j += 4) {
      const float q0 = code_to_f32(code_at<kBits>(words, j));
      const float q1 = code_to_f32(code_at<kBits>(words, j + 1));
      const float q2 = code_to_f32(code_at<kBits>(words, j + 2));
      const float q3 = code_to_f32(code_at<kBits>(words, j + 3));
#pragma unroll
      for (int i = 0; i < kM; ++i) {
        if (i < m) {
          const float4 xv = x.quad(i, c, j);
          dot[i] += xv.x * q0 + xv.y * q1 + xv.z * q2 + xv.w * q3;
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kM; ++i)
      if (i < m) acc[0][i] += s * dot[i] + b * x.sum(i, c);
  }
  reduce_and_store<1, kM>(acc, lane, n, w.n, m, bias, bias_elem, out, out_elem, out_stride);
}

// One warp per weight row, x through L1.
template <typename S, int kBits, int kM>
__global__ void __launch_bounds__(kGemvThreads)
    qgemv_chunk_kernel(const float* __restrict__ xc, const float* __restrict__ xsum, int m,
                       QuantMatrix w, const void* bias, Elem bias_elem, void* out, Elem out_elem,
                       int64_t out_stride) {
  pdl_wait();
  pdl_trigger();
  const int64_t n = int64_t(blockIdx.x) * kGemvWarps + threadIdx.x / 32;
  if (n >= w.n) return;
  const ChunkXGlobal x{xc, xsum, w.k, w.k / kChunk};
  chunk_row<S, kBits, kM>(x, m, w, n, threadIdx.x % 32, bias, bias_elem, out, out_elem, out_stride);
}

// x staged in padded shared memory; each warp takes `rows_per_warp` rows so the copy is amortized
// over more weights.
template <typename S, int kBits, int kM>
__global__ void __launch_bounds__(kGemvThreads)
    qgemv_chunk_smem_kernel(const float* __restrict__ xc, const float* __restrict__ xsum, int m,
                            QuantMatrix w, int rows_per_warp, const void* bias, Elem bias_elem,
                            void* out, Elem out_elem, int64_t out_stride) {
  pdl_wait();
  pdl_trigger();
  extern __shared__ float4 xs4[];
  float* xs = reinterpret_cast<float*>(xs4);
  const int64_t chunks = w.k / kChunk;
  for (int64_t e = threadIdx.x; e < int64_t(m) * w.k / 4; e += blockDim.x) {
    const int64_t flat = e * 4, i = flat / w.k, col = flat % w.k;
    const float4 v = __ldg(reinterpret_cast<const float4*>(xc + flat));
    *reinterpret_cast<float4*>(xs + (i * chunks + col / kChunk) * kPaddedChunk + col % kChunk) = v;
  }
  __syncthreads();
  const ChunkXShared x{xs, xsum, chunks};
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t first = (int64_t(blockIdx.x) * kGemvWarps + warp) * rows_per_warp;
  for (int64_t n = first; n < min(first + rows_per_warp, w.n); ++n)
    chunk_row<S, kBits, kM>(x, m, w, n, lane, bias, bias_elem, out, out_elem, out_stride);
}

template <typename S, int kBits>
cudaError_t launch_qgemv_chunks(const void* x, Elem x_elem, int64_t x_stride, int m,
                                const QuantMatrix& w, const void* bias, Elem bias_elem,
                                float* scratch, void* out, Elem out_elem, int64_t out_stride,
                                cudaStream_t stream) {
  // scratch: xc [m, k] then xsum [m, k / 32].
  float* xc = scratch;
  float* xsum = scratch + m * w.k;
  const int64_t chunks = w.k / kChunk;
  if (chunks > 0) {
    launch_kernel(prepare_x_kernel, dim3(blocks_for(m * chunks, 128)), dim3(128), 0, stream, x,
                  x_elem, x_stride, m, w.k, xc, xsum);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  const size_t smem = size_t(m) * size_t(chunks) * kPaddedChunk * sizeof(float);
  if (smem <= kQgemvSmemLimit && m <= 2) {
    // Up to 4 rows per warp on large matrices; one on small ones, to keep the SMs busy.
    const int rows_per_warp = w.n >= 8192 ? 4 : w.n >= 2048 ? 2 : 1;
    const unsigned blocks = blocks_for(w.n, kGemvWarps * rows_per_warp);
    auto go = [&]<int kM>() {
      auto kernel = qgemv_chunk_smem_kernel<S, kBits, kM>;
      static std::atomic<uint64_t> asked{0};
      if (cudaError_t e =
              allow_shared_memory(reinterpret_cast<const void*>(kernel), kQgemvSmemLimit, asked);
          e != cudaSuccess)
        return e;
      launch_kernel(kernel, dim3(blocks), dim3(kGemvThreads), smem, stream, xc, xsum, m, w,
                    rows_per_warp, bias, bias_elem, out, out_elem, out_stride);
      return cudaGetLastError();
    };
    return m == 1 ? go.template operator()<1>() : go.template operator()<2>();
  }
  const unsigned blocks = blocks_for(w.n, kGemvWarps);
  auto go = [&]<int kM>() {
    launch_kernel(qgemv_chunk_kernel<S, kBits, kM>, dim3(blocks), dim3(kGemvThreads), 0, stream, xc,
                  xsum, m, w, bias, bias_elem, out, out_elem, out_stride);
    return cudaGetLastError();
  };
  if (m == 1) return go.template operator()<1>();
  if (m == 2) return go.template operator()<2>();
  if (m <= 4) return go.template operator()<4>();
  return go.template operator()<8>();
}

// HEARTH_CUDA_QGEMV_CHUNKS=1 sends 4- and 8-bit GEMVs to the chunk kernels (to bisect).
const bool kForceChunks = [] {
  const char* env = std::getenv("HEARTH_CUDA_QGEMV_CHUNKS");
  return env && env[0] == '1';
}();

// Calls fn.template operator()<kBits>() for a supported width.
template <typename Fn>
cudaError_t dispatch_bits(int bits, Fn&& fn) {
  switch (bits) {
    case 2:
      return fn.template operator()<2>();
    case 3:
      return fn.template operator()<3>();
    case 4:
      return fn.template operator()<4>();
    case 5:
      return fn.template operator()<5>();
    case 6:
      return fn.template operator()<6>();
    case 8:
      return fn.template operator()<8>();
    default:
      return cudaErrorInvalidValue;
  }
}

bool aligned(const void* p, int bytes) {
  return reinterpret_cast<uintptr_t>(p) % uintptr_t(bytes) == 0;
}

}  // namespace

cudaError_t launch_affine_quantize(const void* w, Elem w_elem, int64_t w_stride, bool gpu_variant,
                                   uint32_t* packed, void* scales, void* biases, Elem scale_elem,
                                   int bits, int group_size, int64_t n, int64_t k,
                                   cudaStream_t stream) {
  const int64_t total = n * (k / group_size);
  if (total == 0) return cudaSuccess;
  return dispatch_float(w_elem, [&](auto wt) {
    using T = decltype(wt);
    return dispatch_float(scale_elem, [&](auto st) {
      using S = decltype(st);
      return dispatch_bits(bits, [&]<int kBits>() {
        const unsigned blocks = blocks_for(total, 128);
        if (gpu_variant)
          quantize_kernel<T, S, kBits, true><<<blocks, 128, 0, stream>>>(
              static_cast<const T*>(w), w_stride, packed, static_cast<S*>(scales),
              static_cast<S*>(biases), group_size, n, k);
        else
          quantize_kernel<T, S, kBits, false><<<blocks, 128, 0, stream>>>(
              static_cast<const T*>(w), w_stride, packed, static_cast<S*>(scales),
              static_cast<S*>(biases), group_size, n, k);
        return cudaGetLastError();
      });
    });
  });
}

cudaError_t launch_affine_dequantize(const QuantMatrix& w, const int32_t* ids, int64_t id_stride,
                                     int64_t rows, void* out, Elem out_elem, int64_t out_stride,
                                     unsigned long long* bad, cudaStream_t stream) {
  const int64_t total = rows * (w.k / kChunk);
  if (total == 0) return cudaSuccess;
  if (!aligned(w.packed, 16)) return cudaErrorMisalignedAddress;
  return dispatch_float(out_elem, [&](auto ot) {
    using T = decltype(ot);
    return dispatch_float(w.scale_elem, [&](auto st) {
      using S = decltype(st);
      return dispatch_bits(w.bits, [&]<int kBits>() {
        const bool vector_stores = aligned(out, 16) && (out_stride * int64_t(sizeof(T))) % 16 == 0;
        launch_kernel(dequantize_kernel<T, S, kBits>, dim3(blocks_for(total, 128)), dim3(128), 0,
                      stream, w, ids, id_stride, rows, static_cast<T*>(out), out_stride, bad,
                      vector_stores);
        return cudaGetLastError();
      });
    });
  });
}

cudaError_t launch_quantized_gemv(const void* x, Elem x_elem, int64_t x_stride, int m,
                                  const QuantMatrix& w, const void* bias, Elem bias_elem,
                                  float* scratch, void* out, Elem out_elem, int64_t out_stride,
                                  cudaStream_t stream) {
  if (m == 0 || w.n == 0) return cudaSuccess;
  if (m > kQuantGemvMaxRows || !aligned(w.packed, 16) || !aligned(scratch, 16))
    return cudaErrorInvalidValue;
  return dispatch_float(w.scale_elem, [&](auto st) {
    using S = decltype(st);
    return dispatch_bits(w.bits, [&]<int kBits>() {
      if constexpr (kBits == 4 || kBits == 8) {
        if (!kForceChunks)
          return launch_qgemv_units<S, kBits>(x, x_elem, x_stride, m, w, bias, bias_elem, scratch,
                                              out, out_elem, out_stride, stream);
      }
      return launch_qgemv_chunks<S, kBits>(x, x_elem, x_stride, m, w, bias, bias_elem, scratch, out,
                                           out_elem, out_stride, stream);
    });
  });
}

}  // namespace hearth::ops::cuda
