// Sampling on the GPU: top_p -> min_p -> top_k -> categorical over rows of log-probabilities, one
// 1024-thread block per row, and the logits penalties. The result must be the host's
// (ops/cpu/sampling.cpp, the definition) for the same uniform, so the filters are computed
// exactly rather than approximated:
//
//  - Every filter keeps the entries at or above a cut in a total order of (value, index): top_p
//    the ascending stable order (a stable sort keeps ties in index order), min_p's
//    min_tokens_to_keep and top_k the descending order with ties to the lower index. A rank is the
//    64-bit (order-preserving key of the float << 32 | index or ~index), so "kept" is one compare,
//    and the filtered row is never written: each pass re-derives an entry's filtered value from
//    the logprob and the cuts found so far (`filtered`).
//  - A cut is an order statistic found by radix select over the keys (digits of 11, 11 and 10
//    bits, a shared-memory histogram per digit); top_p's histogram sums probabilities instead of
//    counts. Probabilities are exp in double (as on the host) summed as 2^-56 fixed point: integer
//    sums do not depend on the order of the atomics, so a bin's mass equals the sum of its
//    sub-bins exactly and the descent always finds the crossing. Ties at the cut value are
//    resolved by counting, in index order, the tied entries (`find_nth`).
//  - categorical walks the weights exp(v / temp - max) (double) in index order: each warp sums a
//    contiguous segment, the segment holding u * total is walked by one warp with prefix sums.
//
// The results equal the host's except where double rounding decides (a cumulative sum within
// ~1e-16 of the threshold or of u * total), which random inputs essentially never hit.
//
// Cost at V = 128K, one row (estimate, not yet measured): each pass reads the row (512 KB, from
// L2 after the first) in ~4-8 us; top_p adds V double exps (~30 us of one SM's FP64) and
// contended shared atomics on the first digit. All filters on: ~15 passes, ~80-120 us;
// temperature only: ~2 passes + V double exps, ~40 us. Rows of a batch run on separate SMs.
#include <cmath>
#include <cstdint>

#include "ops/cuda/sampling_launch.h"

namespace hearth::ops::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = 2048;  // the widest digit (11 bits)
constexpr unsigned kFull = 0xffffffffu;
// Uniforms travel in the kernel arguments: no upload, no allocation (a larger batch launches
// once per 64 rows).
constexpr int kRowsPerLaunch = 64;
// Probabilities as integers of 2^-56: a log-softmax row sums to ~1, far from overflow; per-entry
// rounding 2^-57 ~ 7e-18, below the host's double rounding.
constexpr double kMassScale = 72057594037927936.0;  // 2^56

struct SampleKernelArgs {
  const float* logprobs;
  int64_t row_stride;
  uint32_t vocab;
  float temp;
  double inv_temp;
  bool top_p;
  unsigned long long top_p_threshold;  // (1 - top_p) in fixed point, floored
  bool min_p;
  float log_min_p;  // computed on the host, as the host filter does
  uint32_t min_keep;
  uint32_t top_k;
  int32_t* out;
  int64_t out_stride;
  int64_t row0;
  double uniforms[kRowsPerLaunch];
};

struct Shared {
  unsigned long long mass[kBins];
  unsigned int count[kBins];
  double dwarp[kWarps];
  float fwarp[kWarps];
  unsigned int uwarp[kWarps];
  int iwarp[kWarps];
  // Broadcasts from one thread to the block.
  unsigned int sel_bin, sel_count, result;
  unsigned long long sel_below;
  bool sel_found;
};

// Order-preserving key: a < b (as floats, -0 == +0) iff key(a) < key(b).
__device__ __forceinline__ uint32_t key_of(float v) {
  const uint32_t b = __float_as_uint(v == 0.0f ? 0.0f : v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float value_of(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? (key ^ 0x80000000u) : ~key);
}

__device__ __forceinline__ unsigned long long asc_rank(float v, uint32_t i) {
  return (static_cast<unsigned long long>(key_of(v)) << 32) | i;
}

__device__ __forceinline__ unsigned long long desc_rank(float v, uint32_t i) {
  return (static_cast<unsigned long long>(key_of(v)) << 32) | (~i);
}

// The cuts found so far; an entry is kept by a filter iff its rank is >= the cut.
struct Cuts {
  bool top_p = false;
  unsigned long long p_cut = 0;  // ascending rank
  bool min_p = false;
  float min_threshold = 0.0f;
  bool min_keep = false;
  unsigned long long m_cut = 0;  // descending rank
  bool top_k = false;
  unsigned long long k_cut = 0;  // descending rank
};

// The entry after the first `stage` filters (1: top_p, 2: min_p, 3: top_k), -inf when removed.
// A removed entry stays -inf, so each filter sees what the host's sees after the previous ones.
__device__ __forceinline__ float filtered(float v, uint32_t i, const Cuts& c, int stage) {
  if (stage >= 1 && c.top_p && asc_rank(v, i) < c.p_cut) return -INFINITY;
  if (stage >= 2 && c.min_p && v < c.min_threshold && !(c.min_keep && desc_rank(v, i) >= c.m_cut))
    return -INFINITY;
  if (stage >= 3 && c.top_k && desc_rank(v, i) < c.k_cut) return -INFINITY;
  return v;
}

__device__ __forceinline__ unsigned long long to_fixed(double p) {
  return __double2ull_rn(p * kMassScale);
}

// Digit `pass` of a key: bits [shift, shift + bits) under the `bits_above` bits already fixed.
struct Digit {
  int shift, bits;
  uint32_t above_mask;
};

__device__ __forceinline__ Digit digit(int pass) {
  if (pass == 0) return {21, 11, 0u};
  if (pass == 1) return {10, 11, 0xffe00000u};
  return {0, 10, 0xfffffc00u};
}

// Index of the nth (0-based, in index order) entry whose filtered value has key `key`: each warp
// counts the matches of a contiguous segment, then the warp holding the nth walks its segment.
__device__ uint32_t find_nth(const float* x, uint32_t n, const Cuts& c, int stage, uint32_t key,
                             uint32_t nth, Shared& s) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const uint32_t seg = (n + kWarps - 1) / kWarps;
  const uint32_t begin = min(n, warp * seg), end = min(n, begin + seg);
  unsigned int matches = 0;
  for (uint32_t i = begin + lane; i < end; i += 32)
    matches += key_of(filtered(x[i], i, c, stage)) == key;
  for (int o = 16; o > 0; o >>= 1) matches += __shfl_xor_sync(kFull, matches, o);
  if (lane == 0) s.uwarp[warp] = matches;
  if (threadIdx.x == 0) s.result = n - 1;  // not reached unless the counts were inconsistent
  __syncthreads();
  uint32_t before = 0;
  int owner = -1;
  for (int w = 0; w < kWarps; ++w) {
    if (nth < before + s.uwarp[w]) {
      owner = w;
      break;
    }
    before += s.uwarp[w];
  }
  if (warp == owner) {
    uint32_t local = nth - before;
    for (uint32_t base = begin; base < end; base += 32) {
      const uint32_t i = base + lane;
      const bool match = i < end && key_of(filtered(x[i], i, c, stage)) == key;
      unsigned int bits = __ballot_sync(kFull, match);
      const uint32_t found = __popc(bits);
      if (local < found) {
        for (uint32_t j = 0; j < local; ++j) bits &= bits - 1;
        if (lane == 0) s.result = base + __ffs(bits) - 1;
        break;
      }
      local -= found;
    }
  }
  __syncthreads();
  const uint32_t result = s.result;
  __syncthreads();
  return result;
}

// The descending-rank cut that keeps the k best filtered entries (ties to the lower index).
// Entries filtered to -inf are not counted: when k reaches past the others, every entry is kept
// (cut 0), which changes nothing since a kept -inf is still -inf.
__device__ unsigned long long select_desc(const float* x, uint32_t n, const Cuts& c, int stage,
                                          uint32_t k, Shared& s) {
  uint32_t prefix = 0, above = 0;  // above: entries whose key is above the current range
  for (int pass = 0; pass < 3; ++pass) {
    const Digit d = digit(pass);
    const uint32_t bins = 1u << d.bits;
    for (uint32_t b = threadIdx.x; b < bins; b += kThreads) s.count[b] = 0;
    __syncthreads();
    for (uint32_t i = threadIdx.x; i < n; i += kThreads) {
      const float v = filtered(x[i], i, c, stage);
      if (v == -INFINITY) continue;
      const uint32_t key = key_of(v);
      if ((key & d.above_mask) != prefix) continue;
      atomicAdd(&s.count[(key >> d.shift) & (bins - 1)], 1u);
    }
    __syncthreads();
    if (threadIdx.x < 32) {
      // Bins from the highest down: lane L holds bins [L * per, (L + 1) * per).
      const int lane = threadIdx.x;
      const uint32_t per = bins / 32;
      uint32_t mine = 0;
      for (uint32_t b = 0; b < per; ++b) mine += s.count[lane * per + b];
      uint32_t suffix = mine;  // lanes >= L
      for (int o = 1; o < 32; o <<= 1) {
        const uint32_t t = __shfl_down_sync(kFull, suffix, o);
        if (lane + o < 32) suffix += t;
      }
      const uint32_t total = __shfl_sync(kFull, suffix, 0);
      const uint32_t need = k - above;  // 1-based rank inside the range
      const uint32_t higher = suffix - mine;
      if (lane == 0) s.sel_found = need <= total;
      if (need <= total && higher < need && need <= suffix) {
        uint32_t acc = higher;
        for (int b = int(per) - 1; b >= 0; --b) {
          const uint32_t bin = lane * per + uint32_t(b), cnt = s.count[bin];
          if (acc + cnt >= need) {
            s.sel_bin = bin;
            s.sel_count = cnt;
            s.sel_below = acc;
            break;
          }
          acc += cnt;
        }
      }
    }
    __syncthreads();
    const bool found = s.sel_found;
    const uint32_t bin = s.sel_bin, count = s.sel_count, higher = uint32_t(s.sel_below);
    __syncthreads();
    if (!found) return 0;  // k >= the entries left: keep all
    prefix |= bin << d.shift;
    above += higher;
    // The kth is the last entry of its bin: everything from the bin's lowest key up is kept.
    if (above + count == k) return static_cast<unsigned long long>(prefix) << 32;
  }
  const uint32_t index = find_nth(x, n, c, stage, prefix, k - above - 1, s);
  return (static_cast<unsigned long long>(prefix) << 32) | (~index);
}

// The ascending-rank cut of top_p over the unfiltered row: the first entry, in ascending stable
// order, whose cumulative probability exceeds the threshold (fixed point); ~0 keeps nothing.
__device__ unsigned long long select_top_p(const float* x, uint32_t n, unsigned long long threshold,
                                           Shared& s) {
  uint32_t prefix = 0;
  unsigned long long below = 0;  // mass of the entries whose key is below the current range
  uint32_t count = 0;
  for (int pass = 0; pass < 3; ++pass) {
    const Digit d = digit(pass);
    const uint32_t bins = 1u << d.bits;
    for (uint32_t b = threadIdx.x; b < bins; b += kThreads) {
      s.count[b] = 0;
      s.mass[b] = 0;
    }
    __syncthreads();
    for (uint32_t i = threadIdx.x; i < n; i += kThreads) {
      const float v = x[i];
      if (v == -INFINITY) continue;  // no mass: never past the threshold
      const uint32_t key = key_of(v);
      if ((key & d.above_mask) != prefix) continue;
      const uint32_t bin = (key >> d.shift) & (bins - 1);
      atomicAdd(&s.mass[bin], to_fixed(exp(double(v))));
      atomicAdd(&s.count[bin], 1u);
    }
    __syncthreads();
    if (threadIdx.x < 32) {
      const int lane = threadIdx.x;
      const uint32_t per = bins / 32;
      unsigned long long mine = 0;
      for (uint32_t b = 0; b < per; ++b) mine += s.mass[lane * per + b];
      unsigned long long inclusive = mine;
      for (int o = 1; o < 32; o <<= 1) {
        const unsigned long long t = __shfl_up_sync(kFull, inclusive, o);
        if (lane >= o) inclusive += t;
      }
      const unsigned int crossing = __ballot_sync(kFull, below + inclusive > threshold);
      if (lane == 0) s.sel_found = crossing != 0;
      if (crossing != 0 && lane == __ffs(crossing) - 1) {
        unsigned long long acc = below + inclusive - mine;
        for (uint32_t b = 0; b < per; ++b) {
          const uint32_t bin = lane * per + b;
          if (acc + s.mass[bin] > threshold) {
            s.sel_bin = bin;
            s.sel_count = s.count[bin];
            s.sel_below = acc;
            break;
          }
          acc += s.mass[bin];
        }
      }
    }
    __syncthreads();
    const bool found = s.sel_found;
    const uint32_t bin = s.sel_bin;
    count = s.sel_count;
    below = s.sel_below;
    __syncthreads();
    if (!found) return ~0ull;  // the whole row sums to <= 1 - top_p
    prefix |= bin << d.shift;
  }
  // `count` entries tie at the cut value, in index order in the ascending order; the jth of them
  // brings the cumulative to below + (j + 1) * q. Those up to the threshold are dropped.
  const unsigned long long q = to_fixed(exp(double(value_of(prefix))));
  uint32_t dropped = 0;
  if (q > 0 && threshold >= below) {
    const unsigned long long whole = (threshold - below) / q;
    dropped = whole < count ? uint32_t(whole) : count - 1;  // the bin crossed: whole < count
  }
  if (dropped == 0) return static_cast<unsigned long long>(prefix) << 32;
  const Cuts none;
  const uint32_t index = find_nth(x, n, none, 0, prefix, dropped, s);
  return (static_cast<unsigned long long>(prefix) << 32) | index;
}

// Largest filtered value (NaN ignored, as std::max(top, v) ignores it).
__device__ float block_max(const float* x, uint32_t n, const Cuts& c, int stage, Shared& s) {
  float m = -INFINITY;
  for (uint32_t i = threadIdx.x; i < n; i += kThreads) m = fmaxf(m, filtered(x[i], i, c, stage));
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(kFull, m, o));
  if (threadIdx.x % 32 == 0) s.fwarp[threadIdx.x / 32] = m;
  __syncthreads();
  float r = -INFINITY;
  for (int w = 0; w < kWarps; ++w) r = fmaxf(r, s.fwarp[w]);
  __syncthreads();
  return r;
}

// The host's argmax: the first maximum; NaN never wins; 0 when every entry is NaN.
__device__ uint32_t block_argmax(const float* x, uint32_t n, const Cuts& c, int stage, Shared& s) {
  float best = 0.0f;
  int index = INT32_MAX;  // none yet
  for (uint32_t i = threadIdx.x; i < n; i += kThreads) {
    const float v = filtered(x[i], i, c, stage);
    if (isnan(v)) continue;
    if (index == INT32_MAX || v > best) {
      best = v;
      index = int(i);
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(kFull, best, o);
    const int oi = __shfl_xor_sync(kFull, index, o);
    if (oi != INT32_MAX && (index == INT32_MAX || ov > best || (ov == best && oi < index))) {
      best = ov;
      index = oi;
    }
  }
  if (threadIdx.x % 32 == 0) {
    s.fwarp[threadIdx.x / 32] = best;
    s.iwarp[threadIdx.x / 32] = index;
  }
  __syncthreads();
  float rb = 0.0f;
  int ri = INT32_MAX;
  for (int w = 0; w < kWarps; ++w) {
    const float ov = s.fwarp[w];
    const int oi = s.iwarp[w];
    if (oi != INT32_MAX && (ri == INT32_MAX || ov > rb || (ov == rb && oi < ri))) {
      rb = ov;
      ri = oi;
    }
  }
  __syncthreads();
  return ri == INT32_MAX ? 0u : uint32_t(ri);
}

__device__ __forceinline__ double weight(float v, double inv_temp, double max) {
  if (v == -INFINITY) return 0.0;
  return exp(__dsub_rn(__dmul_rn(double(v), inv_temp), max));
}

// The host's categorical: the first entry, in index order, whose weight exceeds what is left of
// u * total; the last positive weight when rounding leaves u past the total.
__device__ uint32_t categorical(const float* x, uint32_t n, const Cuts& c, double inv_temp,
                                double u, Shared& s) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  double m = -INFINITY;
  for (uint32_t i = threadIdx.x; i < n; i += kThreads) {
    const float v = filtered(x[i], i, c, 3);
    if (v != -INFINITY) m = fmax(m, __dmul_rn(double(v), inv_temp));
  }
  for (int o = 16; o > 0; o >>= 1) m = fmax(m, __shfl_xor_sync(kFull, m, o));
  if (lane == 0) s.dwarp[warp] = m;
  __syncthreads();
  double max = -INFINITY;
  for (int w = 0; w < kWarps; ++w) max = fmax(max, s.dwarp[w]);
  __syncthreads();
  if (!isfinite(max)) return block_argmax(x, n, c, 3, s);

  const uint32_t seg = (n + kWarps - 1) / kWarps;
  const uint32_t begin = min(n, warp * seg), end = min(n, begin + seg);
  double sum = 0.0;
  int last = -1;
  for (uint32_t i = begin + lane; i < end; i += 32) {
    const double w = weight(filtered(x[i], i, c, 3), inv_temp, max);
    sum += w;
    if (w > 0.0) last = int(i);
  }
  for (int o = 16; o > 0; o >>= 1) {
    sum += __shfl_xor_sync(kFull, sum, o);
    last = ::max(last, __shfl_xor_sync(kFull, last, o));
  }
  if (lane == 0) {
    s.dwarp[warp] = sum;
    s.iwarp[warp] = last;
  }
  if (threadIdx.x == 0) s.result = kFull;
  __syncthreads();
  double total = 0.0;
  int last_positive = 0;
  for (int w = 0; w < kWarps; ++w) {
    total += s.dwarp[w];
    last_positive = ::max(last_positive, s.iwarp[w]);
  }
  const double target = u * total;
  double before = 0.0;
  int owner = -1;
  for (int w = 0; w < kWarps; ++w) {
    if (before + s.dwarp[w] > target) {
      owner = w;
      break;
    }
    before += s.dwarp[w];
  }
  if (warp == owner) {
    // From the owner's segment on (past it only when rounding put the crossing a hair later).
    double left = target - before;
    for (uint32_t base = begin; base < n; base += 32) {
      const uint32_t i = base + lane;
      const double w = i < n ? weight(filtered(x[i], i, c, 3), inv_temp, max) : 0.0;
      double inclusive = w;
      for (int o = 1; o < 32; o <<= 1) {
        const double t = __shfl_up_sync(kFull, inclusive, o);
        if (lane >= o) inclusive += t;
      }
      double exclusive = __shfl_up_sync(kFull, inclusive, 1);
      if (lane == 0) exclusive = 0.0;
      const unsigned int hit = __ballot_sync(kFull, w > 0.0 && left - exclusive < w);
      if (hit != 0) {
        if (lane == 0) s.result = base + __ffs(hit) - 1;
        break;
      }
      left -= __shfl_sync(kFull, inclusive, 31);
    }
  }
  __syncthreads();
  const uint32_t result = s.result;
  __syncthreads();
  return result == kFull ? uint32_t(last_positive) : result;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(SampleKernelArgs a) {
  __shared__ Shared s;
  const int64_t row = a.row0 + blockIdx.x;
  const float* x = a.logprobs + row * a.row_stride;
  const uint32_t n = a.vocab;
  uint32_t token;
  Cuts c;
  if (a.temp == 0.0f) {
    token = block_argmax(x, n, c, 0, s);
  } else {
    if (a.top_p) {
      c.p_cut = select_top_p(x, n, a.top_p_threshold, s);
      c.top_p = true;
    }
    if (a.min_p) {
      const float top = block_max(x, n, c, 1, s);
      c.min_threshold = __fadd_rn(top, a.log_min_p);
      if (a.min_keep > 1) {
        c.m_cut = select_desc(x, n, c, 1, min(a.min_keep, n), s);
        c.min_keep = true;
      }
      c.min_p = true;
    }
    if (a.top_k > 0) {
      c.k_cut = select_desc(x, n, c, 2, a.top_k, s);
      c.top_k = true;
    }
    token = categorical(x, n, c, a.inv_temp, a.uniforms[blockIdx.x], s);
  }
  if (threadIdx.x == 0) a.out[row * a.out_stride] = int32_t(token);
}

// One block per row. Each distinct id of the union of the windows is handled once, by the thread
// of its first position there; the order of the updates is the host's (bias, repetition,
// presence, then one subtraction per occurrence for frequency).
__global__ void penalty_kernel(float* logits, int64_t row_stride, uint32_t vocab,
                               const int32_t* history, int64_t width, const int32_t* bias_ids,
                               const float* bias_values, int64_t n_bias, PenaltyConfig p) {
  float* l = logits + blockIdx.x * row_stride;
  const int32_t* h = history + blockIdx.x * width;
  for (int64_t b = threadIdx.x; b < n_bias; b += blockDim.x) {
    const int32_t id = bias_ids[b];
    if (id >= 0 && uint32_t(id) < vocab) l[id] += bias_values[b];
  }
  __syncthreads();
  const int64_t rep = p.repetition != 0.0f ? p.repetition_context : 0;
  const int64_t pres = p.presence != 0.0f ? p.presence_context : 0;
  const int64_t freq = p.frequency != 0.0f ? p.frequency_context : 0;
  int64_t widest = rep > pres ? rep : pres;
  widest = widest > freq ? widest : freq;
  const int64_t start = width - widest;
  for (int64_t j = start + threadIdx.x; j < width; j += blockDim.x) {
    const int32_t t = h[j];
    if (t < 0 || uint32_t(t) >= vocab) continue;
    bool first = true, in_rep = false, in_pres = false;
    int occurrences = 0;
    for (int64_t q = start; q < width; ++q) {
      if (h[q] != t) continue;
      if (q < j) first = false;
      in_rep |= q >= width - rep;
      in_pres |= q >= width - pres;
      occurrences += q >= width - freq;
    }
    if (!first) continue;
    float v = l[t];
    if (in_rep) v = v < 0.0f ? v * p.repetition : v / p.repetition;
    if (in_pres) v -= p.presence;
    for (int o = 0; o < occurrences; ++o) v -= p.frequency;
    l[t] = v;
  }
}

}  // namespace

cudaError_t launch_sample(const float* logprobs, int64_t row_stride, int64_t rows, int64_t vocab,
                          const SampleConfig& config, const double* uniforms, int32_t* out,
                          int64_t out_stride, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  SampleKernelArgs a{};
  a.logprobs = logprobs;
  a.row_stride = row_stride;
  a.vocab = uint32_t(vocab);
  a.temp = config.temp;
  a.inv_temp = 1.0 / double(config.temp);
  a.top_p = config.top_p > 0.0f && config.top_p < 1.0f;
  // Floored: an integer cumulative c exceeds (1 - top_p) * 2^56 iff it exceeds its floor.
  a.top_p_threshold =
      static_cast<unsigned long long>(std::floor((1.0 - double(config.top_p)) * kMassScale));
  a.min_p = config.min_p != 0.0f;
  a.log_min_p = a.min_p ? std::log(config.min_p) : 0.0f;
  a.min_keep = uint32_t(config.min_tokens_to_keep);
  a.top_k = uint32_t(config.top_k);
  a.out = out;
  a.out_stride = out_stride;
  for (int64_t row0 = 0; row0 < rows; row0 += kRowsPerLaunch) {
    const int64_t count = rows - row0 < kRowsPerLaunch ? rows - row0 : kRowsPerLaunch;
    a.row0 = row0;
    for (int64_t r = 0; r < count; ++r)
      a.uniforms[r] = config.temp == 0.0f ? 0.0 : uniforms[row0 + r];
    sample_kernel<<<unsigned(count), kThreads, 0, stream>>>(a);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t launch_logit_penalties(float* logits, int64_t row_stride, int64_t rows, int64_t vocab,
                                   const int32_t* history, int64_t width, const int32_t* bias_ids,
                                   const float* bias_values, int64_t n_bias,
                                   const PenaltyConfig& config, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  penalty_kernel<<<unsigned(rows), 256, 0, stream>>>(logits, row_stride, uint32_t(vocab), history,
                                                     width, bias_ids, bias_values, n_bias, config);
  return cudaGetLastError();
}

}  // namespace hearth::ops::cuda
