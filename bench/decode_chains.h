// cuda_bench's decode chains: the GEMVs of batch-1 decode as the GPU sees them in a step.
#pragma once

namespace hearth::bench {

// Prints, for bf16, 4-bit and 8-bit (group size 64, bf16 scales) Llama-3.1-8B layers under
// MatmulPrecision::bf16: time per layer of the whole chain and of each product alone (8 layers
// with their own weights, one CUDA graph, replayed), weight GB/s and the fraction of `bandwidth`
// (the device-to-device copy's bytes per second). bits: 0 (bf16), 4 or 8 for one kind only, -1
// for all three.
void run_decode_chains(int reps, double bandwidth, int bits = -1);

}  // namespace hearth::bench
