// Row-wise and elementwise kernels: add, silu_mul, rms_norm, rope, embedding gather.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "ops/cuda/device_types.cuh"
#include "ops/cuda/pdl.cuh"

namespace hearth::ops::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float block_sum(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < (blockDim.x + 31) / 32; ++w) total += scratch[w];
  __syncthreads();
  return total;
}

int elem_bytes(Elem e) {
  return e == Elem::bf16 || e == Elem::f16 ? 2 : 4;
}

__global__ void add_kernel(const void* a, Elem ae, const void* b, Elem be, void* out, Elem oe,
                           int64_t n) {
  pdl_wait();
  pdl_trigger();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    store_act(out, oe, i, load_act(a, ae, i) + load_act(b, be, i));
}

// Four elements a thread per access (n4 = n / 4 groups; the launcher checks alignment).
__global__ void add4_kernel(const void* a, Elem ae, const void* b, Elem be, void* out, Elem oe,
                            int64_t n4) {
  pdl_wait();
  pdl_trigger();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n4;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float4 x = load_act4(a, ae, i), y = load_act4(b, be, i);
    store_act4(out, oe, i, make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w));
  }
}

// Whether p is aligned for load_act4 / store_act4 of elements of type e.
bool vec4_aligned(const void* p, Elem e) {
  return reinterpret_cast<uintptr_t>(p) % (4 * elem_bytes(e)) == 0;
}

// Whether every row of a Rows view over p can be read in groups of four (load_act4).
bool rows_vec4(const void* p, const Rows& r) {
  if (!vec4_aligned(p, r.elem) || r.cols % 4 != 0) return false;
  for (int d = 0; d < r.lead; ++d)
    if (r.shape[d] > 1 && r.stride[d] % 4 != 0) return false;
  return true;
}

__global__ void silu_mul4_kernel(const void* gate, Rows gr, const void* up, Rows ur, void* out,
                                 Rows outr) {
  pdl_wait();
  pdl_trigger();
  const int64_t row = blockIdx.x;
  // Groups of four from each row's start (the offsets are multiples of 4: rows_vec4).
  const int64_t g0 = gr.offset(row) / 4, u0 = ur.offset(row) / 4, o0 = outr.offset(row) / 4;
  // kBatch quads a thread, all loaded before any is stored: a store may alias the next loads (out
  // is gate in place), so an unrolled load-compute-store loop kept one load in flight at a time
  // (the 2047 x 14336 bf16 prefill ran at ~1.5 TB/s).
  constexpr int kBatch = 4;
  const int64_t n4 = gr.cols / 4;
  for (int64_t c0 = threadIdx.x; c0 < n4; c0 += kBatch * int64_t(blockDim.x)) {
    float4 x[kBatch], y[kBatch];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int64_t c = c0 + b * int64_t(blockDim.x);
      if (c < n4) {
        x[b] = load_act4(gate, gr.elem, g0 + c);
        y[b] = load_act4(up, ur.elem, u0 + c);
      }
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int64_t c = c0 + b * int64_t(blockDim.x);
      if (c < n4)
        store_act4(out, outr.elem, o0 + c,
                   make_float4(silu_times(x[b].x, y[b].x), silu_times(x[b].y, y[b].y),
                               silu_times(x[b].z, y[b].z), silu_times(x[b].w, y[b].w)));
    }
  }
}

__global__ void silu_mul_kernel(const void* gate, Rows gr, const void* up, Rows ur, void* out,
                                Rows outr) {
  pdl_wait();
  pdl_trigger();
  const int64_t row = blockIdx.x;
  const int64_t g0 = gr.offset(row), u0 = ur.offset(row), o0 = outr.offset(row);
  for (int64_t c = threadIdx.x; c < gr.cols; c += blockDim.x)
    store_act(out, outr.elem, o0 + c,
              silu_times(load_act(gate, gr.elem, g0 + c), load_act(up, ur.elem, u0 + c)));
}

// rms_norm of row blockIdx.x of x into out; with kAdd, first x += delta (add_rms_norm, x in
// place). The f32 operations are spelled out (fmaf, __fmul_rn: no contraction left to the
// compiler) and shared by both instantiations, and each thread touches the same elements in the
// add, the sum of squares and the scaling, so add_rms_norm equals add (one rounding per element)
// followed by rms_norm bit for bit (the sum rounded to x's type, as add stores it, before its
// square is taken).
template <typename W, bool kAdd>
__global__ void rms_norm_kernel(void* x, Rows xr, const void* delta, Rows dr, const W* weight,
                                float eps, void* out, Rows outr) {
  pdl_wait();
  pdl_trigger();
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const int64_t x0 = xr.offset(row), d0 = kAdd ? dr.offset(row) : 0, o0 = outr.offset(row);
  float ss = 0.0f;
  for (int64_t c = threadIdx.x; c < xr.cols; c += blockDim.x) {
    float v = load_act(x, xr.elem, x0 + c);
    if constexpr (kAdd) {
      v = round_act(xr.elem, __fadd_rn(v, load_act(delta, dr.elem, d0 + c)));
      store_act(x, xr.elem, x0 + c, v);
    }
    ss = fmaf(v, v, ss);
  }
  ss = block_sum(ss, scratch);
  const float inv = rsqrtf(__fadd_rn(__fdiv_rn(ss, float(xr.cols)), eps));
  for (int64_t c = threadIdx.x; c < xr.cols; c += blockDim.x)
    store_act(out, outr.elem, o0 + c,
              __fmul_rn(to_f32(weight[c]), __fmul_rn(load_act(x, xr.elem, x0 + c), inv)));
}

__device__ __forceinline__ float sum_squares(float4 v) {
  return fmaf(v.w, v.w, fmaf(v.z, v.z, fmaf(v.y, v.y, __fmul_rn(v.x, v.x))));
}

__device__ __forceinline__ float4 round_act4(Elem e, float4 v) {
  return make_float4(round_act(e, v.x), round_act(e, v.y), round_act(e, v.z), round_act(e, v.w));
}

// Same with four elements per access of x and out (the launcher checks alignment); delta is read
// four at a time when its rows allow (kDeltaVec), else element by element. With kQuads > 0 (rows
// of at most kQuads * 4 * kThreads elements, every model's hidden size up to 8192 with kQuads 8)
// each thread keeps its quads of x in registers between the sum and the scaling instead of reading
// x again, and loads its quads of the weight before waiting for the kernel that writes x (weights
// are never written by kernels, pdl.cuh); kQuads 0 streams rows of any width. The sum runs over
// the same elements in the same order in both, so they give the same bits.
template <typename W, bool kAdd, bool kDeltaVec, int kQuads>
__global__ void rms_norm4_kernel(void* x, Rows xr, const void* delta, Rows dr, const W* weight,
                                 float eps, void* out, Rows outr) {
  const int64_t n4 = xr.cols / 4;
  constexpr int kHeld = kQuads > 0 ? kQuads : 1;
  float4 w[kHeld];
  if constexpr (kQuads > 0) {
#pragma unroll
    for (int i = 0; i < kQuads; ++i) {
      const int64_t c = threadIdx.x + int64_t(i) * blockDim.x;
      if (c < n4) {
        const W* wp = weight + 4 * c;
        w[i] = make_float4(to_f32(wp[0]), to_f32(wp[1]), to_f32(wp[2]), to_f32(wp[3]));
      }
    }
  }
  pdl_wait();
  pdl_trigger();
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  // In groups of four from each row's start (rows_vec4: offsets are multiples of 4).
  const int64_t x0 = xr.offset(row) / 4, o0 = outr.offset(row) / 4;
  const int64_t d0 = kAdd ? dr.offset(row) : 0;
  float4 held[kHeld];
  float ss = 0.0f;
  auto load_delta = [&](int64_t c) {
    return kDeltaVec ? load_act4(delta, dr.elem, d0 / 4 + c)
                     : make_float4(load_act(delta, dr.elem, d0 + 4 * c),
                                   load_act(delta, dr.elem, d0 + 4 * c + 1),
                                   load_act(delta, dr.elem, d0 + 4 * c + 2),
                                   load_act(delta, dr.elem, d0 + 4 * c + 3));
  };
  // x (+ delta) of quad c: the sum stored back into x with kAdd, its squares summed.
  auto sum_quad = [&](int64_t c, float4 v, float4 d) {
    if constexpr (kAdd) {
      v = round_act4(xr.elem, make_float4(__fadd_rn(v.x, d.x), __fadd_rn(v.y, d.y),
                                          __fadd_rn(v.z, d.z), __fadd_rn(v.w, d.w)));
      store_act4(x, xr.elem, x0 + c, v);
    }
    ss = __fadd_rn(ss, sum_squares(v));
    return v;
  };
  auto scale_quad = [&](int64_t c, float4 v, float4 wq, float inv) {
    store_act4(
        out, outr.elem, o0 + c,
        make_float4(__fmul_rn(wq.x, __fmul_rn(v.x, inv)), __fmul_rn(wq.y, __fmul_rn(v.y, inv)),
                    __fmul_rn(wq.z, __fmul_rn(v.z, inv)), __fmul_rn(wq.w, __fmul_rn(v.w, inv))));
  };
  if constexpr (kQuads > 0) {
    // Every load first: x's stores (kAdd) may alias later loads, which would otherwise wait.
    float4 dq[kHeld];
#pragma unroll
    for (int i = 0; i < kQuads; ++i) {
      const int64_t c = threadIdx.x + int64_t(i) * blockDim.x;
      if (c < n4) {
        held[i] = load_act4(x, xr.elem, x0 + c);
        if constexpr (kAdd) dq[i] = load_delta(c);
      }
    }
#pragma unroll
    for (int i = 0; i < kQuads; ++i) {
      const int64_t c = threadIdx.x + int64_t(i) * blockDim.x;
      if (c < n4) held[i] = sum_quad(c, held[i], kAdd ? dq[i] : held[i]);
    }
  } else {
    for (int64_t c = threadIdx.x; c < n4; c += blockDim.x)
      sum_quad(c, load_act4(x, xr.elem, x0 + c),
               kAdd ? load_delta(c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f));
  }
  ss = block_sum(ss, scratch);
  const float inv = rsqrtf(__fadd_rn(__fdiv_rn(ss, float(xr.cols)), eps));
  if constexpr (kQuads > 0) {
#pragma unroll
    for (int i = 0; i < kQuads; ++i) {
      const int64_t c = threadIdx.x + int64_t(i) * blockDim.x;
      if (c < n4) scale_quad(c, held[i], w[i], inv);
    }
  } else {
    for (int64_t c = threadIdx.x; c < n4; c += blockDim.x) {
      const W* wp = weight + 4 * c;
      scale_quad(c, load_act4(x, xr.elem, x0 + c),
                 make_float4(to_f32(wp[0]), to_f32(wp[1]), to_f32(wp[2]), to_f32(wp[3])), inv);
    }
  }
}

// The rotation of one pair (x1, x2) = (x[i], x[i + R/2]) with the CPU kernel's roundings: its
// AVX2 loop computes fmsub(x1, c, x2 * s) and fmadd(x2, c, x1 * s).
__device__ __forceinline__ void rotate_pair(float x1, float x2, float c, float s, float& lo,
                                            float& hi) {
  lo = fmaf(x1, c, -__fmul_rn(x2, s));
  hi = fmaf(x2, c, __fmul_rn(x1, s));
}

// One block row per token: the block first tabulates cos and sin of the token's half angles in
// shared memory (each computed once per block, not per head), then every thread rotates kV pairs
// of one head of q or k. Angles as the CPU and HF form them (f32 position * f32 inv_freq); cos and
// sin in double, rounded to f32 and scaled in f32, as the CPU kernel does, so that both backends
// give the same bits. Dims R..D of each head are copied when out is not x.
constexpr int kRopeThreads = 256;

// The cache element of the rotated key or value d of token t, head h (rope_qk_write_kv).
template <typename C>
__device__ __forceinline__ void cache_store(const RopeArgs& a, bool values, int64_t t, int64_t h,
                                            int64_t d, float x) {
  if constexpr (!std::is_void_v<C>) {
    const int32_t slot = a.cache.slots[t * a.cache.slot_stride];
    if (slot < 0) return;  // padding: skipped
    const int64_t block = slot / a.cache.block_size, r = slot % a.cache.block_size;
    const int64_t at = ((block * a.cache.kv_heads + h) * a.cache.block_size + r) * a.head_dim + d;
    C* cache = static_cast<C*>(values ? a.cache.v_cache : a.cache.k_cache);
    cache[at] = from_f32<C>(x);
  }
}

// C void: rope / rope_qk. Otherwise rope_qk_write_kv: t[1] (keys) are rotated in place and also
// written to the cache as C, t[2] (values) only written to the cache; the conversions are
// write_kv's, so the cache holds the bits write_kv would write.
template <int kV, typename C>
__global__ void __launch_bounds__(kRopeThreads) rope_kernel(RopeArgs a) {
  pdl_wait();
  pdl_trigger();
  extern __shared__ float table[];  // cos [half], then sin [half]
  const int64_t t = blockIdx.x;
  const int half = a.half;
  const float pos = float(a.positions[t * a.pos_stride]);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    const float angle = __fmul_rn(pos, a.inv_freq[i]);
    table[i] = __fmul_rn(float(cos(double(angle))), a.scaling);
    table[half + i] = __fmul_rn(float(sin(double(angle))), a.scaling);
  }
  __syncthreads();
  const int64_t u = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  // The tensor of unit u, with static indices into a.t: indexing the kernel parameter by a
  // runtime value made every thread copy it to local memory.
  int which = 3;
  int64_t hu = u;
#pragma unroll
  for (int i = 0; i < 3; ++i) {
    if (which == 3 && i < a.count) {
      const int64_t units = a.t[i].heads * a.units_per_head;
      if (hu < units)
        which = i;
      else
        hu -= units;
    }
  }
  if (which == 3) return;
  const RopeTensor r = which == 0 ? a.t[0] : which == 1 ? a.t[1] : a.t[2];
  const bool rotate = which < 2, to_cache = !std::is_void_v<C> && which >= 1;
  const int64_t h = hu / a.units_per_head;
  const int i0 = int(hu % a.units_per_head) * kV;
  // Element offsets of the head's row (multiples of 4 for kV == 4: the launcher checks).
  const int64_t x0 = t * r.x_token_stride + h * r.x_head_stride;
  const int64_t o0 = t * r.out_token_stride + h * r.out_head_stride;
  if (i0 < half) {
    float x1[kV], x2[kV], lo[kV], hi[kV];
    if constexpr (kV == 4) {
      const float4 a1 = load_act4(r.x, r.elem, (x0 + i0) / 4);
      const float4 a2 = load_act4(r.x, r.elem, (x0 + half + i0) / 4);
      x1[0] = a1.x, x1[1] = a1.y, x1[2] = a1.z, x1[3] = a1.w;
      x2[0] = a2.x, x2[1] = a2.y, x2[2] = a2.z, x2[3] = a2.w;
    } else {
      x1[0] = load_act(r.x, r.elem, x0 + i0);
      x2[0] = load_act(r.x, r.elem, x0 + half + i0);
    }
#pragma unroll
    for (int e = 0; e < kV; ++e) {
      if (rotate) {
        // Rounded as the rotated tensor stores them: the cache gets what write_kv would read.
        rotate_pair(x1[e], x2[e], table[i0 + e], table[half + i0 + e], lo[e], hi[e]);
        lo[e] = round_act(r.elem, lo[e]);
        hi[e] = round_act(r.elem, hi[e]);
      } else {
        lo[e] = x1[e];
        hi[e] = x2[e];
      }
    }
    if (rotate) {
      if constexpr (kV == 4) {
        store_act4(r.out, r.elem, (o0 + i0) / 4, make_float4(lo[0], lo[1], lo[2], lo[3]));
        store_act4(r.out, r.elem, (o0 + half + i0) / 4, make_float4(hi[0], hi[1], hi[2], hi[3]));
      } else {
        store_act(r.out, r.elem, o0 + i0, lo[0]);
        store_act(r.out, r.elem, o0 + half + i0, hi[0]);
      }
    }
    if (to_cache)
#pragma unroll
      for (int e = 0; e < kV; ++e) {
        cache_store<C>(a, which == 2, t, h, i0 + e, lo[e]);
        cache_store<C>(a, which == 2, t, h, half + i0 + e, hi[e]);
      }
  }
  if (i0 == 0)
    for (int64_t d = 2 * int64_t(half); d < a.head_dim; ++d) {
      const float x = load_act(r.x, r.elem, x0 + d);
      if (rotate && (r.out != r.x || o0 != x0)) store_act(r.out, r.elem, o0 + d, x);
      if (to_cache) cache_store<C>(a, which == 2, t, h, d, x);
    }
}

template <typename T>
__global__ void embedding_kernel(const T* table, int64_t vocab, int64_t hidden, const int32_t* ids,
                                 int64_t id_stride, float* out, Rows outr,
                                 unsigned long long* bad) {
  pdl_wait();
  pdl_trigger();
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t * id_stride];
  if (id < 0 || id >= vocab) {
    if (threadIdx.x == 0) atomicMin(bad, (static_cast<unsigned long long>(t) << 32) | uint32_t(id));
    return;
  }
  float* o = out + outr.offset(t);
  const T* row = table + int64_t(id) * hidden;
  for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) o[c] = to_f32(row[c]);
}

}  // namespace

cudaError_t launch_add(const void* a, Elem ae, const void* b, Elem be, void* out, Elem oe,
                       int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const bool vec4 =
      n % 4 == 0 && vec4_aligned(a, ae) && vec4_aligned(b, be) && vec4_aligned(out, oe);
  if (vec4) {
    launch_kernel(add4_kernel, dim3(std::min<unsigned>(blocks_for(n / 4, kThreads), 65535u)),
                  dim3(kThreads), 0, stream, a, ae, b, be, out, oe, n / 4);
  } else {
    launch_kernel(add_kernel, dim3(std::min<unsigned>(blocks_for(n, kThreads), 65535u)),
                  dim3(kThreads), 0, stream, a, ae, b, be, out, oe, n);
  }
  return cudaGetLastError();
}

cudaError_t launch_silu_mul(const void* gate, Rows gr, const void* up, Rows ur, void* out,
                            Rows outr, cudaStream_t stream) {
  if (gr.count == 0 || gr.cols == 0) return cudaSuccess;
  if (rows_vec4(gate, gr) && rows_vec4(up, ur) && rows_vec4(out, outr))
    launch_kernel(silu_mul4_kernel, dim3(unsigned(gr.count)), dim3(kThreads), 0, stream, gate, gr,
                  up, ur, out, outr);
  else
    launch_kernel(silu_mul_kernel, dim3(unsigned(gr.count)), dim3(kThreads), 0, stream, gate, gr,
                  up, ur, out, outr);
  return cudaGetLastError();
}

cudaError_t launch_rms_norm(const void* x, Rows xr, const void* weight, Elem weight_elem, float eps,
                            void* out, Rows outr, cudaStream_t stream) {
  return launch_add_rms_norm(const_cast<void*>(x), xr, nullptr, Rows{}, weight, weight_elem, eps,
                             out, outr, stream);
}

cudaError_t launch_add_rms_norm(void* x, Rows xr, const void* delta, Rows dr, const void* weight,
                                Elem weight_elem, float eps, void* out, Rows outr,
                                cudaStream_t stream) {
  if (xr.count == 0) return cudaSuccess;
  // The vector kernel's choice depends on x and out only, as for rms_norm alone: the sum of
  // squares (and so the result) must not depend on delta's layout.
  const bool vec = rows_vec4(x, xr) && rows_vec4(out, outr);
  const bool delta_vec = delta && rows_vec4(delta, dr);
  return dispatch_float(weight_elem, [&](auto w) {
    using W = decltype(w);
    const W* wp = static_cast<const W*>(weight);
    const unsigned blocks = unsigned(xr.count);
    const int64_t quads_per_thread = (xr.cols / 4 + kThreads - 1) / kThreads;
    auto launch = [&](auto add, auto delta_vec) {
      constexpr bool kAdd = decltype(add)::value, kDeltaVec = decltype(delta_vec)::value;
      if (quads_per_thread <= 4)
        launch_kernel(rms_norm4_kernel<W, kAdd, kDeltaVec, 4>, dim3(blocks), dim3(kThreads), 0,
                      stream, x, xr, delta, dr, wp, eps, out, outr);
      else if (quads_per_thread <= 8)
        launch_kernel(rms_norm4_kernel<W, kAdd, kDeltaVec, 8>, dim3(blocks), dim3(kThreads), 0,
                      stream, x, xr, delta, dr, wp, eps, out, outr);
      else
        launch_kernel(rms_norm4_kernel<W, kAdd, kDeltaVec, 0>, dim3(blocks), dim3(kThreads), 0,
                      stream, x, xr, delta, dr, wp, eps, out, outr);
    };
    using no = std::false_type;
    using yes = std::true_type;
    if (!delta) {
      if (vec)
        launch(no{}, no{});
      else
        launch_kernel(rms_norm_kernel<W, false>, dim3(blocks), dim3(kThreads), 0, stream, x, xr,
                      delta, dr, wp, eps, out, outr);
    } else if (vec && delta_vec) {
      launch(yes{}, yes{});
    } else if (vec) {
      launch(yes{}, no{});
    } else {
      launch_kernel(rms_norm_kernel<W, true>, dim3(blocks), dim3(kThreads), 0, stream, x, xr, delta,
                    dr, wp, eps, out, outr);
    }
    return cudaGetLastError();
  });
}

cudaError_t launch_rope(const RopeArgs& args, int64_t tokens, cudaStream_t stream) {
  if (tokens == 0 || args.count == 0) return cudaSuccess;
  RopeArgs a = args;
  // Four pairs per thread (16-byte loads of x1 and x2) when every row start allows it.
  bool vec = a.half > 0 && a.half % 4 == 0;
  for (int i = 0; vec && i < a.count; ++i) {
    const RopeTensor& r = a.t[i];
    const bool out = i < 2;  // t[2] (values for the cache) has no output
    vec = vec4_aligned(r.x, r.elem) && (!out || vec4_aligned(r.out, r.elem)) &&
          (tokens == 1 || (r.x_token_stride % 4 == 0 && (!out || r.out_token_stride % 4 == 0))) &&
          (r.heads == 1 || (r.x_head_stride % 4 == 0 && (!out || r.out_head_stride % 4 == 0)));
  }
  const int v = vec ? 4 : 1;
  a.units_per_head = std::max(1, a.half / v);
  int64_t total = 0;
  for (int i = 0; i < a.count; ++i) total += a.t[i].heads * a.units_per_head;
  if (total == 0) return cudaSuccess;
  // One row of blocks per token, each building the token's cos/sin table (double-precision
  // cos/sin are register-hungry: 256 threads per block keeps them within the launch bounds); an
  // 8B-shaped layer's 40 heads x 16 units take 3 blocks per token.
  const int threads = int(std::min<int64_t>(kRopeThreads, (total + 31) / 32 * 32));
  const dim3 grid(unsigned(tokens), unsigned((total + threads - 1) / threads));
  const size_t smem = 2 * size_t(a.half) * sizeof(float);
  auto go = [&](auto cache_tag) {
    using C = decltype(cache_tag);
    using Cache = std::conditional_t<std::is_same_v<C, std::nullptr_t>, void, C>;
    if (vec)
      launch_kernel(rope_kernel<4, Cache>, dim3(grid), dim3(threads), smem, stream, a);
    else
      launch_kernel(rope_kernel<1, Cache>, dim3(grid), dim3(threads), smem, stream, a);
    return cudaGetLastError();
  };
  if (!a.cache.slots) return go(nullptr);
  if (a.count != 3) return cudaErrorInvalidValue;
  return dispatch_float(a.cache.cache_elem, go);
}

cudaError_t launch_embedding(const void* table, Elem elem, int64_t vocab, int64_t hidden,
                             const int32_t* ids, int64_t id_stride, int64_t tokens, float* out,
                             Rows outr, unsigned long long* bad, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  return dispatch_float(elem, [&](auto e) {
    using T = decltype(e);
    launch_kernel(embedding_kernel<T>, dim3(unsigned(tokens)), dim3(kThreads), 0, stream,
                  static_cast<const T*>(table), vocab, hidden, ids, id_stride, out, outr, bad);
    return cudaGetLastError();
  });
}

}  // namespace hearth::ops::cuda
