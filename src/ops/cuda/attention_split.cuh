// Split-KV (flash decoding) pieces shared by the dense (attention.cu) and quantized
// (quantized_attention.cu) paged attention kernels: how many key splits a launch gets, where a
// split's partial (max, sum, unnormalized output) lives in the scratch, and the kernel that merges
// the splits. Both kernels write partials in this one layout so the merge is the same code.
#pragma once

#include "ops/cuda/launch.h"

namespace hearth::ops::cuda {

// Query heads per block for a GQA group of `group` heads: the largest of 8, 4, 2, 1 that fits.
inline int head_tile_for_group(int64_t group) {
  return group >= 8 ? 8 : group >= 4 ? 4 : group >= 2 ? 2 : 1;
}

// Fills p.splits, p.split_len and p.scratch_floats for a launch of `blocks` blocks per split:
// enough splits for two waves over the SMs, each slice at least `min_split_len` slots (shorter
// ones cost more in merging than they save).
void plan_key_splits(AttentionPlan& p, int64_t blocks, int64_t max_slots, int64_t min_split_len,
                     int sm_count, int64_t tokens, int64_t heads, int64_t head_dim);

// out[t, h] from the splits' partials (p.splits > 1): each split's output rescaled to the common
// maximum, over the summed softmax denominators; splits that saw no visible key drop out.
cudaError_t launch_split_combine(const AttentionArgs& a, int splits, const float* scratch,
                                 cudaStream_t stream);

// Partial of (query row t, head h, split) in the scratch: (max, sum) pairs first, then the
// head_dim-wide unnormalized outputs.
__host__ __device__ inline int64_t split_partial_row(int64_t t, int64_t h, int64_t heads,
                                                     int splits, int split) {
  return (t * heads + h) * splits + split;
}
inline float* split_partial_acc(float* scratch, int64_t tokens, int64_t heads, int splits) {
  return scratch ? scratch + tokens * heads * splits * 2 : nullptr;
}

}  // namespace hearth::ops::cuda
