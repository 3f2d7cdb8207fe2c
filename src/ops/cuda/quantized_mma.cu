// The 4-bit GEMV of decode under MatmulPrecision::bf16, on bf16 tensor cores (mma.sync
// m16n8k16, f32 accumulation): x rounded to bf16 once, codes as exact bf16 integers, so every
// product code * x is exact and only the f32 sums round, as in a bf16 GEMM of PyTorch or MLX.
//
// Why tensor cores for a bandwidth-bound product: the f32 GEMV (quantized.cu) spends ~3
// instructions per code (convert, FMA, a share of the x loads) and tops out at ~50 % of the H100's
// bandwidth on the 8B shapes. Here one mma multiplies 16 weight rows by 16 codes, so a lane's work
// per code is the conversion alone: per 32-bit word (8 codes) 3 shifts, 4 LOP3 and 4 bf16x2
// subtractions (a code at bits 0-3 of a half-word ORed into the bf16 128.0 gives 128 + code).
//
// The layout of one mma (lane = 4 g + t; A rows are weight rows, B columns x rows):
//  - A, per lane: rows g and g + 8 of the warp's 16-row tile, k-slots 2t, 2t + 1, 2t + 8, 2t + 9.
//    Lane t of each row quad loads 16 bytes (one 32-code "unit") of its two rows per step, so the
//    4 lanes of a quad read units 4c + t of step c: 64 contiguous bytes per row. The 8 mmas of a
//    step take the unit's words w = 0..3 twice (h = 0, 1): slots 2t, 2t + 1 hold codes 8w + 2h
//    and 8w + 2h + 4, slots 2t + 8, 2t + 9 codes 8w + 2h + 1 and 8w + 2h + 5 (any order of k works
//    as long as B uses the same one).
//  - The k-slots of one mma come from four units (four lanes t), which may lie in different
//    quantization groups, so their dot products must stay apart until each is scaled. B column
//    2u + i holds x row i restricted to the k-slots of lane t = u (zero elsewhere), so C[row][2t +
//    i] is the dot product of the row's unit 4c + t with x row i, and the lane that loaded that
//    unit holds it in its accumulators: it adds s * dot + b * sum(x unit) in f32 and clears them.
//    Each mma thus serves two x rows; more rows (up to 8) take more mmas on the same A registers.
//  - x is prepared once per launch (prepare_kernel): rounded to bf16 and stored per (row, unit,
//    mma) as the 4 values of the B fragment, with the f32 sum of the rounded values per unit.
//
// Blocks of 4 or 8 warps own one tile (16 rows, or 8 gate + 8 up rows for the fused SwiGLU); the
// warps split K by steps, keep the sums of each class of steps modulo 8 apart and add the classes
// in shared memory in a fixed order, so a row's sum depends only on K, not on the block's warps:
// grouped and fused launches give each output the bits of a single product.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "ops/cuda/device_types.cuh"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/quantized_launch.h"

namespace hearth::ops::cuda {
namespace {

// Warps per block: 4, or 8 for launches of too few tiles to fill the SMs with 4-warp blocks
// (quantized_gemv_warps). The sums stay apart per class of steps modulo kSumWarps whatever the
// block's warps (a 4-warp block keeps two classes per warp), so both give the same bits.
constexpr int kSumWarps = 8;
constexpr int kUnitCodes = 32;   // codes per 16-byte unit
constexpr int kStepCodes = 128;  // codes per row per warp step (4 lanes x one unit)

// The codes at bits 0-3 and 16-19 of v as a bf16x2 of exact integers: each half ORed into the
// bf16 128.0 (exponent 7, so the low 7 mantissa bits count units) is 128 + code; minus 128.
__device__ __forceinline__ uint32_t codes_to_bf16x2(uint32_t v) {
  uint32_t h;
  asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(h) : "r"(v), "n"(0x000f000f), "n"(0x43004300));
  const __nv_bfloat162 r =
      __hsub2(*reinterpret_cast<const __nv_bfloat162*>(&h), __floats2bfloat162_rn(128.0f, 128.0f));
  return *reinterpret_cast<const uint32_t*>(&r);
}

// ---- x in the B-fragment layout -----------------------------------------------------------------

// One thread per (x row i < m_pad, unit u): rows at and past m are zeros. xb[(i * units + u) * 8 +
// j] holds the B fragment of mma j: x codes 8w + 2h, 8w + 2h + 4, 8w + 2h + 1, 8w + 2h + 5
// (w = j / 2, h = j % 2) rounded to bf16; xsum[u * m_pad + i] the f32 sum of the 32 rounded
// values in order.
__global__ void prepare_kernel(const void* __restrict__ x, Elem x_elem, int64_t x_stride, int m,
                               int m_pad, int64_t units, uint2* __restrict__ xb,
                               float* __restrict__ xsum) {
  pdl_wait();
  pdl_trigger();
  const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= m_pad * units) return;
  const int64_t i = id / units, u = id % units;
  uint16_t v[kUnitCodes];
  float sum = 0.0f;
#pragma unroll
  for (int c = 0; c < kUnitCodes; ++c) {
    const float f = i < m ? load_act(x, x_elem, i * x_stride + u * kUnitCodes + c) : 0.0f;
    const __nv_bfloat16 r = from_f32<__nv_bfloat16>(f);
    v[c] = __bfloat16_as_ushort(r);
    sum += to_f32(r);
  }
  xsum[u * m_pad + i] = sum;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int base = 8 * (j / 2) + 2 * (j % 2);
    xb[id * 8 + j] = make_uint2(uint32_t(v[base]) | uint32_t(v[base + 4]) << 16,
                                uint32_t(v[base + 1]) | uint32_t(v[base + 5]) << 16);
  }
}

// ---- the GEMV -----------------------------------------------------------------------------------

template <typename S>
struct Rows2 {
  const uint4* w[2];  // the lane's two weight rows, as 16-byte units
  const S* s[2];
  const S* b[2];
};

// One warp step's worth of a lane's weights: units u of rows g and g + 8.
template <typename S>
struct StepLoad {
  uint4 w[2];
  float s[2], b[2];
};

// 16 bytes of weights that L1 need not keep: the weights stream through once, while the x
// fragments every warp of the SM reads again should stay in L1.
__device__ __forceinline__ uint4 load_streaming(const uint4* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

template <typename S>
__device__ __forceinline__ void load_step(const Rows2<S>& rows, int64_t u, int upg_log2,
                                          StepLoad<S>& l) {
  const int64_t grp = u >> upg_log2;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l.w[r] = load_streaming(rows.w[r] + u);
    l.s[r] = to_f32(rows.s[r][grp]);
    l.b[r] = to_f32(rows.b[r][grp]);
  }
}

// The 8 mmas of one step for kPairs pairs of x rows, then the scale and bias per unit into acc
// (acc[p] = {row g x row 2p, row g x row 2p + 1, row g + 8 x row 2p, row g + 8 x row 2p + 1}).
template <typename S, int kPairs>
__device__ __forceinline__ void compute_step(const StepLoad<S>& l, const uint4* __restrict__ xb,
                                             const float2* __restrict__ xsum, int m, int64_t units,
                                             int64_t u, int lane, float (&acc)[kPairs][4]) {
  const int g = lane >> 2, t = lane & 3;
  // The lane's B fragments are non-zero only for its own unit's column (t == g / 2).
  const bool holder = (g >> 1) == t;
  const int64_t u_b = u - t + (g >> 1);  // == u for holders
  float d[kPairs][4];
#pragma unroll
  for (int p = 0; p < kPairs; ++p) d[p][0] = d[p][1] = d[p][2] = d[p][3] = 0.0f;
  const uint32_t words[2][4] = {{l.w[0].x, l.w[0].y, l.w[0].z, l.w[0].w},
                                {l.w[1].x, l.w[1].y, l.w[1].z, l.w[1].w}};
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    uint4 b[kPairs];
#pragma unroll
    for (int p = 0; p < kPairs; ++p) {
      const int64_t i = 2 * p + (g & 1);
      b[p] = holder && i < m ? __ldg(xb + (i * units + u_b) * 4 + w) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      uint32_t a[4];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const uint32_t v = words[r][w] >> (8 * h);
        a[r] = codes_to_bf16x2(v);           // k-slots 2t, 2t + 1
        a[2 + r] = codes_to_bf16x2(v >> 4);  // k-slots 2t + 8, 2t + 9
      }
#pragma unroll
      for (int p = 0; p < kPairs; ++p)
        mma_bf16_m16n8k16(d[p], a, h == 0 ? b[p].x : b[p].z, h == 0 ? b[p].y : b[p].w);
    }
  }
#pragma unroll
  for (int p = 0; p < kPairs; ++p) {
    const float2 xs = __ldg(xsum + u * kPairs + p);
    acc[p][0] += l.s[0] * d[p][0] + l.b[0] * xs.x;
    acc[p][1] += l.s[0] * d[p][1] + l.b[0] * xs.y;
    acc[p][2] += l.s[1] * d[p][2] + l.b[1] * xs.x;
    acc[p][3] += l.s[1] * d[p][3] + l.b[1] * xs.y;
  }
}

__device__ __forceinline__ float bias_value(const void* bias, Elem elem, int64_t n) {
  if (!bias) return 0.0f;
  if (elem == Elem::f32) return static_cast<const float*>(bias)[n];
  if (elem == Elem::bf16) return to_f32(static_cast<const __nv_bfloat16*>(bias)[n]);
  return to_f32(static_cast<const __half*>(bias)[n]);
}

// A round: the kAhead steps c0, c0 + kW, ... of one warp (the kW warps interleave their steps).
template <typename S, int kAhead, int kW>
__device__ __forceinline__ void load_round(const Rows2<S>& rows, int64_t c0, int64_t steps, int t,
                                           int upg_log2, StepLoad<S> (&l)[kAhead]) {
#pragma unroll
  for (int a = 0; a < kAhead; ++a) {
    const int64_t c = c0 + a * kW;
    if (c < steps) load_step(rows, c * 4 + t, upg_log2, l[a]);
  }
}

// Step c goes to the sums of class c % kSumWarps: with kSets = kSumWarps / kW classes a warp
// and rounds starting at multiples of kW * kAhead steps from the warp's first, that is set a %
// kSets of step a of the round.
template <typename S, int kPairs, int kAhead, int kW>
__device__ __forceinline__ void compute_round(const StepLoad<S> (&l)[kAhead],
                                              const uint4* __restrict__ xb,
                                              const float2* __restrict__ xsum, int m, int64_t units,
                                              int64_t c0, int64_t steps, int lane,
                                              float (&acc)[kSumWarps / kW][kPairs][4]) {
  constexpr int kSets = kSumWarps / kW;
  static_assert(kAhead % kSets == 0, "a round's steps must cycle through the warp's classes");
#pragma unroll
  for (int a = 0; a < kAhead; ++a) {
    const int64_t c = c0 + a * kW;
    if (c < steps)
      compute_step<S, kPairs>(l[a], xb, xsum, m, units, c * 4 + (lane & 3), lane, acc[a % kSets]);
  }
}

template <typename S, int kPairs, bool kSilu, int kAhead, int kW>
__global__ void __launch_bounds__(kW * 32)
    qgemv4_mma_kernel(const uint4* __restrict__ xb, const float2* __restrict__ xsum, int m,
                      int64_t k, QuantGemvGroups groups) {
  constexpr int kSets = kSumWarps / kW;
  __shared__ float partial[kSumWarps][16][2 * kPairs];
  // The block's product and tile (fused SwiGLU: product 0 is gate, 1 is up, tiles of 8 rows).
  int gi = 0;
  while (gi + 1 < groups.count && int64_t(blockIdx.x) >= groups.tiles_end[gi]) ++gi;
  const int64_t tile = int64_t(blockIdx.x) - (gi ? groups.tiles_end[gi - 1] : 0);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t units = k / kUnitCodes, steps = k / kStepCodes;
  Rows2<S> rows;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const QuantGemvOut& o = groups.g[kSilu ? r : gi];
    const int64_t n = kSilu ? tile * 8 + g : tile * 16 + g + 8 * r;
    const int64_t row = n < o.w.n ? n : o.w.n - 1;  // rows past the end load a real row, unused
    const int64_t groups_per_row = k / o.w.group_size;
    rows.w[r] = reinterpret_cast<const uint4*>(o.w.packed + row * (k / 8));
    rows.s[r] = static_cast<const S*>(o.w.scales) + row * groups_per_row;
    rows.b[r] = static_cast<const S*>(o.w.biases) + row * groups_per_row;
  }
  const int upg_log2 = __ffs(groups.g[gi].w.group_size / kUnitCodes) - 1;
  // Weights are never written by kernels: the first round is loaded before waiting for the
  // kernels that write x (pdl.cuh).
  StepLoad<S> la[kAhead], lb[kAhead];
  constexpr int kRound = kW * kAhead;
  load_round<S, kAhead, kW>(rows, warp, steps, t, upg_log2, la);
  pdl_wait();
  pdl_trigger();
  float acc[kSets][kPairs][4];
#pragma unroll
  for (int s = 0; s < kSets; ++s)
#pragma unroll
    for (int p = 0; p < kPairs; ++p)
      acc[s][p][0] = acc[s][p][1] = acc[s][p][2] = acc[s][p][3] = 0.0f;
  // Two rounds of loads alternate so that one is in flight while the other is converted.
  for (int64_t c0 = warp; c0 < steps; c0 += 2 * kRound) {
    if (c0 + kRound < steps) load_round<S, kAhead, kW>(rows, c0 + kRound, steps, t, upg_log2, lb);
    compute_round<S, kPairs, kAhead, kW>(la, xb, xsum, m, units, c0, steps, lane, acc);
    if (c0 + kRound >= steps) break;
    if (c0 + 2 * kRound < steps)
      load_round<S, kAhead, kW>(rows, c0 + 2 * kRound, steps, t, upg_log2, la);
    compute_round<S, kPairs, kAhead, kW>(lb, xb, xsum, m, units, c0 + kRound, steps, lane, acc);
  }
  // Sum over the quad's four units, then over the step classes in order.
#pragma unroll
  for (int s = 0; s < kSets; ++s)
#pragma unroll
    for (int p = 0; p < kPairs; ++p)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        acc[s][p][e] += __shfl_xor_sync(0xffffffffu, acc[s][p][e], 1);
        acc[s][p][e] += __shfl_xor_sync(0xffffffffu, acc[s][p][e], 2);
      }
  if (t == 0) {
#pragma unroll
    for (int s = 0; s < kSets; ++s) {
      const int cls = warp + kW * s;
#pragma unroll
      for (int p = 0; p < kPairs; ++p) {
        partial[cls][g][2 * p] = acc[s][p][0];
        partial[cls][g][2 * p + 1] = acc[s][p][1];
        partial[cls][g + 8][2 * p] = acc[s][p][2];
        partial[cls][g + 8][2 * p + 1] = acc[s][p][3];
      }
    }
  }
  __syncthreads();
  const int row = threadIdx.x / (2 * kPairs), i = threadIdx.x % (2 * kPairs);
  if (row >= 16 || i >= m) return;
  float sum = 0.0f;
#pragma unroll
  for (int w = 0; w < kSumWarps; ++w) sum += partial[w][row][i];
  if constexpr (kSilu) {
    if (row >= 8) return;
    const int64_t n = tile * 8 + row;
    const QuantGemvOut &gate = groups.g[0], &up = groups.g[1];
    if (n >= gate.w.n) return;
    float u = 0.0f;
#pragma unroll
    for (int w = 0; w < kSumWarps; ++w) u += partial[w][row + 8][i];
    const float gv = sum + bias_value(gate.bias, gate.bias_elem, n);
    const float uv = u + bias_value(up.bias, up.bias_elem, n);
    // The products rounded to out's type, as quantized_matmul stores them (ops/quantized.h).
    const Elem e = gate.out_elem;
    store_act(gate.out, e, i * gate.out_stride + n, silu_times(round_act(e, gv), round_act(e, uv)));
  } else {
    const QuantGemvOut& o = groups.g[gi];
    const int64_t n = tile * 16 + row;
    if (n >= o.w.n) return;
    store_act(o.out, o.out_elem, i * o.out_stride + n, sum + bias_value(o.bias, o.bias_elem, n));
  }
}

// 8 warps a block for launches of fewer tiles than two an SM, where 4-warp blocks leave the SMs
// 4-8 warps each: the 8B's o and down projections (256 tiles on 132 SMs). H100 decode chains, us
// a layer with 4 -> 8 warps: o 10.8 -> 8.8, down 26.9 -> 19.7; q/k/v (384 tiles) 12.0 -> 13.5,
// so it keeps 4 (docs/perf/cuda.md).
bool wide_blocks(int64_t tiles) {
  return tiles < 2 * int64_t(sm_count());
}

}  // namespace

bool quantized_gemv_bf16_fits(const QuantMatrix& w, int m) {
  return w.bits == 4 && m >= 1 && m <= kQuantGemvMaxRows && w.k > 0 && w.k % kStepCodes == 0 &&
         reinterpret_cast<uintptr_t>(w.packed) % 16 == 0;
}

int64_t quantized_gemv_bf16_scratch_bytes(int m, int64_t k) {
  const int64_t m_pad = (m + 1) / 2 * 2, units = k / kUnitCodes;
  return m_pad * units * (8 * int64_t(sizeof(uint2)) + int64_t(sizeof(float)));
}

cudaError_t launch_quantized_gemv_bf16(const void* x, Elem x_elem, int64_t x_stride, int m,
                                       int64_t k, QuantGemvGroups groups, bool silu_mul,
                                       void* scratch, cudaStream_t stream) {
  if (groups.count < 1 || groups.count > kMaxQuantGemvGroups || (silu_mul && groups.count != 2))
    return cudaErrorInvalidValue;
  for (int i = 0; i < groups.count; ++i) {
    const QuantGemvOut& o = groups.g[i];
    if (!quantized_gemv_bf16_fits(o.w, m) || o.w.k != k ||
        o.w.scale_elem != groups.g[0].w.scale_elem ||
        (silu_mul && (o.w.n != groups.g[0].w.n || o.w.group_size != groups.g[0].w.group_size)))
      return cudaErrorInvalidValue;
  }
  const int pairs = (m + 1) / 2, m_pad = 2 * pairs;
  const int64_t units = k / kUnitCodes;
  uint2* xb = static_cast<uint2*>(scratch);
  float* xsum = reinterpret_cast<float*>(xb + m_pad * units * 8);
  if (cudaError_t e = launch_kernel(prepare_kernel, dim3(blocks_for(m_pad * units, 128)), dim3(128),
                                    0, stream, x, x_elem, x_stride, m, m_pad, units, xb, xsum);
      e != cudaSuccess)
    return e;
  int64_t tiles = 0;
  for (int i = 0; i < groups.count; ++i) {
    if (!silu_mul || i == 0) tiles += (groups.g[i].w.n + (silu_mul ? 7 : 15)) / (silu_mul ? 8 : 16);
    groups.tiles_end[i] = tiles;
  }
  if (tiles == 0) return cudaSuccess;
  if (tiles > int64_t(INT32_MAX)) return cudaErrorInvalidValue;
  return dispatch_float(groups.g[0].w.scale_elem, [&](auto st) {
    using S = decltype(st);
    auto go = [&]<int kPairs>() {
      const uint4* xb4 = reinterpret_cast<const uint4*>(xb);
      const float2* xs2 = reinterpret_cast<const float2*>(xsum);
      // Steps per round of a warp's loads (two rounds in flight): 2 keeps a thread at 128
      // registers, 4 blocks an SM. 4 steps for one pair of x rows had more bytes in flight per
      // warp but 168-177 registers (2-3 blocks an SM): on the H100 the 8B 4-bit decode chains
      // ran at 96.0 us a layer with 2 against 102-116 with 4, batch-1 decode at 280 against
      // 253 tok/s (docs/perf/cuda.md).
      constexpr int kAhead = 2;
      auto launch = [&]<int kW>() {
        return launch_kernel(silu_mul ? qgemv4_mma_kernel<S, kPairs, true, kAhead, kW>
                                      : qgemv4_mma_kernel<S, kPairs, false, kAhead, kW>,
                             dim3(unsigned(tiles)), dim3(kW * 32), 0, stream, xb4, xs2, m, k,
                             groups);
      };
      return wide_blocks(tiles) ? launch.template operator()<8>() : launch.template operator()<4>();
    };
    switch (pairs) {
      case 1:
        return go.template operator()<1>();
      case 2:
        return go.template operator()<2>();
      case 3:
        return go.template operator()<3>();
      default:
        return go.template operator()<4>();
    }
  });
}

}  // namespace hearth::ops::cuda
