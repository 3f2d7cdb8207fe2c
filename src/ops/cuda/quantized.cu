// CUDA kernels for MLX affine-quantized weights: quantize, dequantize (and the quantized embedding
// gather, which is a dequantize of selected rows), and the fused-dequant GEMV of decode.
//
// Unit of work: a chunk of 32 consecutive codes of a row. At any width it is exactly `bits` u32
// words, word-aligned, inside one group (group sizes are 32, 64 or 128), so the kernels are
// templated on the width only and the bit offsets of the 32 codes are compile-time constants.
//
// Quantize and dequantize repeat MLX's f32 operations one by one (__fmul_rn etc. keep nvcc from
// contracting a multiply and an add into one rounding), so they give the bits of the CPU backend.
#include <cuda_runtime.h>

#include "ops/cuda/device_types.cuh"
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

// One thread per (output row, chunk): out = T(T(s * q) + b), MLX's multiply then add.
template <typename T, typename S, int kBits>
__global__ void dequantize_kernel(QuantMatrix w, const int32_t* ids, int64_t id_stride,
                                  int64_t rows, T* out, int64_t out_stride, int* bad) {
  const int64_t chunks = w.k / kChunk;
  const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= rows * chunks) return;
  const int64_t t = id / chunks, c = id % chunks;
  int64_t r = t;
  if (ids) {
    r = ids[t * id_stride];
    if (r < 0 || r >= w.n) {
      if (c == 0) atomicMin(bad, int(t));
      return;
    }
  }
  uint32_t words[kBits];
  load_chunk<kBits>(w.packed + r * (w.k * kBits / 32) + c * kBits, words);
  const int64_t g = r * (w.k / w.group_size) + c * kChunk / w.group_size;
  const float s = to_f32(static_cast<const S*>(w.scales)[g]);
  const float b = to_f32(static_cast<const S*>(w.biases)[g]);
  T* o = out + t * out_stride + c * kChunk;
#pragma unroll
  for (int j = 0; j < kChunk; ++j) {
    const float product = to_f32(from_f32<T>(__fmul_rn(code_to_f32(code_at<kBits>(words, j)), s)));
    o[j] = from_f32<T>(__fadd_rn(product, b));
  }
}

// ---- GEMV ---------------------------------------------------------------------------------------

// x copied into contiguous aligned rows (so the GEMV can read it with 16-byte loads) and the sum
// of x over every chunk: sum_j x_j (s q_j + b) = s * dot(x, q) + b * sum(x) per chunk.
__global__ void prepare_x_kernel(const float* x, int64_t x_stride, int m, int64_t k, float* xc,
                                 float* xsum) {
  const int64_t chunks = k / kChunk;
  const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= m * chunks) return;
  const int64_t i = id / chunks, c = id % chunks;
  const float* src = x + i * x_stride + c * kChunk;
  float* dst = xc + i * k + c * kChunk;
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < kChunk; ++j) {
    dst[j] = src[j];
    sum += src[j];
  }
  xsum[id] = sum;
}

constexpr int kGemvWarps = 8;  // output rows per block, one warp each

// One warp per output row; lane l takes chunks l, l + 32, ...: a warp's loads of one step are
// 32 consecutive chunks, fully coalesced. x rows (xc, contiguous) come through L1.
template <typename S, int kBits, int kM>
__global__ void __launch_bounds__(kGemvWarps * 32)
    qgemv_kernel(const float* __restrict__ xc, const float* __restrict__ xsum, int m, QuantMatrix w,
                 const void* bias, Elem bias_elem, float* out, int64_t out_stride) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t n = int64_t(blockIdx.x) * kGemvWarps + warp;
  if (n >= w.n) return;
  const int64_t chunks = w.k / kChunk, groups = w.k / w.group_size;
  const int chunks_per_group_log2 = __ffs(w.group_size / kChunk) - 1;
  const uint32_t* row = w.packed + n * (w.k * kBits / 32);
  const S* scales = static_cast<const S*>(w.scales) + n * groups;
  const S* biases = static_cast<const S*>(w.biases) + n * groups;
  float acc[kM];
#pragma unroll
  for (int i = 0; i < kM; ++i) acc[i] = 0.0f;
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
          const float4 xv = __ldg(reinterpret_cast<const float4*>(xc + i * w.k + c * kChunk + j));
          dot[i] += xv.x * q0 + xv.y * q1 + xv.z * q2 + xv.w * q3;
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kM; ++i)
      if (i < m) acc[i] += s * dot[i] + b * xsum[i * chunks + c];
  }
#pragma unroll
  for (int i = 0; i < kM; ++i)
    for (int o = 16; o > 0; o >>= 1) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], o);
  if (lane == 0) {
    float bv = 0.0f;
    if (bias) {
      if (bias_elem == Elem::f32)
        bv = static_cast<const float*>(bias)[n];
      else if (bias_elem == Elem::bf16)
        bv = to_f32(static_cast<const __nv_bfloat16*>(bias)[n]);
      else
        bv = to_f32(static_cast<const __half*>(bias)[n]);
    }
#pragma unroll
    for (int i = 0; i < kM; ++i)
      if (i < m) out[i * out_stride + n] = acc[i] + bv;
  }
}

// The same product with x staged in shared memory, each 32-float chunk padded to 36 floats: a
// lane reads the x of its own chunk, so through L1 a warp's float4 load touched 32 cache lines
// (one wavefront each) and bounded the kernel at ~0.4 TB/s (8B 4-bit on an H200); with the
// padding the 8 lanes of each shared-memory phase hit distinct banks. Each warp takes
// `rows_per_warp` rows so the x copy is amortized over more weights.
constexpr int kPaddedChunk = 36;

template <typename S, int kBits, int kM>
__global__ void __launch_bounds__(kGemvWarps * 32)
    qgemv_smem_kernel(const float* __restrict__ xc, const float* __restrict__ xsum, int m,
                      QuantMatrix w, int rows_per_warp, const void* bias, Elem bias_elem,
                      float* out, int64_t out_stride) {
  extern __shared__ float4 xs4[];
  float* xs = reinterpret_cast<float*>(xs4);
  const int64_t chunks = w.k / kChunk, groups = w.k / w.group_size;
  for (int64_t e = threadIdx.x; e < int64_t(m) * w.k / 4; e += blockDim.x) {
    const int64_t flat = e * 4, i = flat / w.k, col = flat % w.k;
    const float4 v = __ldg(reinterpret_cast<const float4*>(xc + flat));
    *reinterpret_cast<float4*>(xs + (i * chunks + col / kChunk) * kPaddedChunk + col % kChunk) = v;
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int chunks_per_group_log2 = __ffs(w.group_size / kChunk) - 1;
  const int64_t first = (int64_t(blockIdx.x) * kGemvWarps + warp) * rows_per_warp;
  for (int64_t n = first; n < min(first + rows_per_warp, w.n); ++n) {
    const uint32_t* row = w.packed + n * (w.k * kBits / 32);
    const S* scales = static_cast<const S*>(w.scales) + n * groups;
    const S* biases = static_cast<const S*>(w.biases) + n * groups;
    float acc[kM];
#pragma unroll
    for (int i = 0; i < kM; ++i) acc[i] = 0.0f;
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
            const float4 xv =
                *reinterpret_cast<const float4*>(xs + (i * chunks + c) * kPaddedChunk + j);
            dot[i] += xv.x * q0 + xv.y * q1 + xv.z * q2 + xv.w * q3;
          }
        }
      }
#pragma unroll
      for (int i = 0; i < kM; ++i)
        if (i < m) acc[i] += s * dot[i] + b * xsum[i * chunks + c];
    }
#pragma unroll
    for (int i = 0; i < kM; ++i)
      for (int o = 16; o > 0; o >>= 1) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], o);
    if (lane == 0) {
      float bv = 0.0f;
      if (bias) {
        if (bias_elem == Elem::f32)
          bv = static_cast<const float*>(bias)[n];
        else if (bias_elem == Elem::bf16)
          bv = to_f32(static_cast<const __nv_bfloat16*>(bias)[n]);
        else
          bv = to_f32(static_cast<const __half*>(bias)[n]);
      }
#pragma unroll
      for (int i = 0; i < kM; ++i)
        if (i < m) out[i * out_stride + n] = acc[i] + bv;
    }
  }
}

// Shared memory the staged-x kernel may use per block (two blocks fit an SM of 228 KB).
constexpr size_t kQgemvSmemLimit = 96 << 10;

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
                                     int* bad, cudaStream_t stream) {
  const int64_t total = rows * (w.k / kChunk);
  if (total == 0) return cudaSuccess;
  if (!aligned(w.packed, 16)) return cudaErrorMisalignedAddress;
  return dispatch_float(out_elem, [&](auto ot) {
    using T = decltype(ot);
    return dispatch_float(w.scale_elem, [&](auto st) {
      using S = decltype(st);
      return dispatch_bits(w.bits, [&]<int kBits>() {
        dequantize_kernel<T, S, kBits><<<blocks_for(total, 128), 128, 0, stream>>>(
            w, ids, id_stride, rows, static_cast<T*>(out), out_stride, bad);
        return cudaGetLastError();
      });
    });
  });
}

cudaError_t launch_quantized_gemv(const float* x, int64_t x_stride, int m, const QuantMatrix& w,
                                  const void* bias, Elem bias_elem, float* scratch, float* out,
                                  int64_t out_stride, cudaStream_t stream) {
  if (m == 0 || w.n == 0) return cudaSuccess;
  if (m > kQuantGemvMaxRows || !aligned(w.packed, 16) || !aligned(scratch, 16))
    return cudaErrorInvalidValue;
  // scratch: xc [m, k] then xsum [m, k / 32].
  float* xc = scratch;
  float* xsum = scratch + m * w.k;
  const int64_t chunks = w.k / kChunk;
  if (w.k > 0) {
    prepare_x_kernel<<<blocks_for(m * chunks, 128), 128, 0, stream>>>(x, x_stride, m, w.k, xc,
                                                                      xsum);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  const size_t smem = size_t(m) * size_t(chunks) * kPaddedChunk * sizeof(float);
  return dispatch_float(w.scale_elem, [&](auto st) {
    using S = decltype(st);
    return dispatch_bits(w.bits, [&]<int kBits>() {
      const unsigned threads = kGemvWarps * 32;
      if (smem <= kQgemvSmemLimit && m <= 2) {
        // Up to 4 rows per warp on large matrices; one on small ones, to keep the SMs busy.
        const int rows_per_warp = w.n >= 8192 ? 4 : w.n >= 2048 ? 2 : 1;
        const unsigned blocks = blocks_for(w.n, kGemvWarps * rows_per_warp);
        auto go = [&]<int kM>() {
          auto kernel = qgemv_smem_kernel<S, kBits, kM>;
          // Once per kernel: above 48 KB of dynamic shared memory must be asked for.
          static const cudaError_t attr = cudaFuncSetAttribute(
              kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kQgemvSmemLimit));
          if (attr != cudaSuccess) return attr;
          kernel<<<blocks, threads, smem, stream>>>(xc, xsum, m, w, rows_per_warp, bias, bias_elem,
                                                    out, out_stride);
          return cudaGetLastError();
        };
        return m == 1 ? go.template operator()<1>() : go.template operator()<2>();
      }
      const unsigned blocks = blocks_for(w.n, kGemvWarps);
      if (m == 1)
        qgemv_kernel<S, kBits, 1>
            <<<blocks, threads, 0, stream>>>(xc, xsum, m, w, bias, bias_elem, out, out_stride);
      else if (m == 2)
        qgemv_kernel<S, kBits, 2>
            <<<blocks, threads, 0, stream>>>(xc, xsum, m, w, bias, bias_elem, out, out_stride);
      else if (m <= 4)
        qgemv_kernel<S, kBits, 4>
            <<<blocks, threads, 0, stream>>>(xc, xsum, m, w, bias, bias_elem, out, out_stride);
      else
        qgemv_kernel<S, kBits, 8>
            <<<blocks, threads, 0, stream>>>(xc, xsum, m, w, bias, bias_elem, out, out_stride);
      return cudaGetLastError();
    });
  });
}

}  // namespace hearth::ops::cuda
