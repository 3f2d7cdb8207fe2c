// Device-side helpers shared by the .cu files: f32 conversions of the storage types and dispatch
// from Elem to them.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "ops/cuda/launch.h"

namespace hearth::ops::cuda {

// Conversions bit-identical to hearth's host ones (core/dtype.h): round to nearest even, and NaNs
// keep their sign and payload as quiet NaNs (the CUDA intrinsics return one canonical NaN).
__device__ __forceinline__ float to_f32(float x) {
  return x;
}
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) {
  return __uint_as_float(uint32_t(__bfloat16_as_ushort(x)) << 16);
}
__device__ __forceinline__ float to_f32(__half x) {
  const uint32_t h = __half_as_ushort(x);
  if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu))  // NaN: keep the payload
    return __uint_as_float(((h & 0x8000u) << 16) | 0x7f800000u | ((h & 0x3ffu) << 13));
  return __half2float(x);
}
template <typename T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __half from_f32<__half>(float x) {
  const uint32_t u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return __ushort_as_half(uint16_t(((u >> 16) & 0x8000u) | 0x7e00u));
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
  const uint32_t u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return __ushort_as_bfloat16(uint16_t((u >> 16) | 0x40u));
  return __ushort_as_bfloat16(uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16));
}

// silu(g) * u = g / (1 + exp(-g)) * u, as torch computes silu. Shared by silu_mul and the fused
// gate/up GEMV so that both round identically.
__device__ __forceinline__ float silu_times(float g, float u) {
  return g / (1.0f + expf(-g)) * u;
}

// Calls fn(T{}) with T the storage type of a float Elem; returns cudaErrorInvalidValue otherwise.
template <typename Fn>
cudaError_t dispatch_float(Elem e, Fn&& fn) {
  switch (e) {
    case Elem::f32:
      return fn(float{});
    case Elem::f16:
      return fn(__half{});
    case Elem::bf16:
      return fn(__nv_bfloat16{});
    default:
      return cudaErrorInvalidValue;
  }
}

// One warp-wide mma.sync m16n8k16 with bf16 inputs and f32 accumulation, d += a * b, in the PTX
// fragment layouts (lane = 4 g + t): a[0] = A rows g, k 2t..2t+1; a[1] = rows g + 8; a[2], a[3]
// the same rows at k + 8; b0 = B k 2t..2t+1, column g; b1 at k + 8; d = C rows g (d[0], d[1]) and
// g + 8 (d[2], d[3]), columns 2t, 2t + 1. Each 32-bit register holds two bf16, the lower k first.
__device__ __forceinline__ void mma_bf16_m16n8k16(float (&d)[4], const uint32_t (&a)[4],
                                                  uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Activations (f32 or bf16 tensors, ops/validate.h) are read and written through these with the
// tensor's Elem: a warp-uniform branch, so kernels need no instantiation per activation type.
__device__ __forceinline__ float load_act(const void* p, Elem e, int64_t i) {
  return e == Elem::bf16 ? to_f32(static_cast<const __nv_bfloat16*>(p)[i])
                         : static_cast<const float*>(p)[i];
}
__device__ __forceinline__ void store_act(void* p, Elem e, int64_t i, float v) {
  if (e == Elem::bf16)
    static_cast<__nv_bfloat16*>(p)[i] = from_f32<__nv_bfloat16>(v);
  else
    static_cast<float*>(p)[i] = v;
}
// v as an activation of type e holds it.
__device__ __forceinline__ float round_act(Elem e, float v) {
  return e == Elem::bf16 ? to_f32(from_f32<__nv_bfloat16>(v)) : v;
}
// Elements 4i .. 4i + 3: one 16-byte (f32) or 8-byte (bf16) access; callers check alignment
// (act_vec4 on the host).
__device__ __forceinline__ float4 load_act4(const void* p, Elem e, int64_t i) {
  if (e == Elem::bf16) {
    const uint2 u = static_cast<const uint2*>(p)[i];
    return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u),
                       __uint_as_float(u.y << 16), __uint_as_float(u.y & 0xffff0000u));
  }
  return static_cast<const float4*>(p)[i];
}
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  return uint32_t(__bfloat16_as_ushort(from_f32<__nv_bfloat16>(lo))) |
         uint32_t(__bfloat16_as_ushort(from_f32<__nv_bfloat16>(hi))) << 16;
}
__device__ __forceinline__ void store_act4(void* p, Elem e, int64_t i, float4 v) {
  if (e == Elem::bf16)
    static_cast<uint2*>(p)[i] = make_uint2(pack_bf16x2(v.x, v.y), pack_bf16x2(v.z, v.w));
  else
    static_cast<float4*>(p)[i] = v;
}

inline unsigned blocks_for(int64_t n, int per_block) {
  return unsigned((n + per_block - 1) / per_block);
}

}  // namespace hearth::ops::cuda
