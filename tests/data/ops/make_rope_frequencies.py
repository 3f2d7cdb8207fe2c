#!/usr/bin/env python3
"""Writes rope_frequencies.txt: the inverse frequencies and attention scaling that HF transformers
computes for each RoPE type, used by tests/ops/rope_frequencies_test.cpp as ground truth.

Run where torch and transformers (>= 5) are installed (the GPU machine has them):
    python3 tests/data/ops/make_rope_frequencies.py > tests/data/ops/rope_frequencies.txt

Each case builds a LlamaConfig with `rope_parameters`, instantiates LlamaRotaryEmbedding and runs
its forward once with a largest position of seq_len - 1, on the CPU, so the values are exactly
what a forward pass uses (including dynamic NTK's recomputation from a tensor seq_len). Floats are
written as exact hex literals.
"""
import sys

import torch
import transformers
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

# name, head_dim, max_position_embeddings, rope_parameters, seq_len
CASES = [
    ("default_d64", 64, 2048, {"rope_type": "default", "rope_theta": 10000.0}, 16),
    ("default_d128_theta5e5", 128, 8192, {"rope_type": "default", "rope_theta": 500000.0}, 16),
    ("default_d80_theta1e6", 80, 32768, {"rope_type": "default", "rope_theta": 1000000.0}, 16),
    ("default_d256", 256, 8192, {"rope_type": "default", "rope_theta": 10000.0}, 16),
    ("linear_f2", 128, 4096, {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}, 16),
    ("linear_f4_partial", 128, 4096,
     {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0, "partial_rotary_factor": 0.5}, 16),
    ("dynamic_below", 64, 2048, {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}, 1000),
    ("dynamic_at", 64, 2048, {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}, 2048),
    ("dynamic_just_beyond", 64, 2048, {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}, 2049),
    ("dynamic_beyond", 64, 2048, {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}, 5000),
    ("dynamic_far", 128, 4096, {"rope_type": "dynamic", "rope_theta": 500000.0, "factor": 3.0}, 100003),
    ("llama3_1", 128, 131072,
     {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}, 16),
    ("llama3_2", 64, 131072,
     {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}, 16),
    ("yarn_qwen", 128, 131072,
     {"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0,
      "original_max_position_embeddings": 32768}, 16),
    ("yarn_mscale", 64, 163840,
     {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0, "beta_fast": 32.0, "beta_slow": 1.0,
      "mscale": 0.707, "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096}, 16),
    ("yarn_mscale_equal", 64, 163840,
     {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0, "mscale": 1.0, "mscale_all_dim": 1.0,
      "original_max_position_embeddings": 4096}, 16),
    ("yarn_attention_factor", 96, 65536,
     {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 8.0, "attention_factor": 1.5,
      "beta_fast": 16.0, "beta_slow": 2.0, "original_max_position_embeddings": 8192}, 16),
    ("yarn_no_truncate", 64, 131072,
     {"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
      "truncate": False, "original_max_position_embeddings": 4096}, 16),
    ("yarn_partial", 128, 32768,
     {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 2.0, "partial_rotary_factor": 0.5,
      "original_max_position_embeddings": 16384}, 16),
]


def hexf(v):
    return float(v).hex()


def main():
    out = sys.stdout
    out.write(f"# HF transformers {transformers.__version__}, torch {torch.__version__}; "
              "written by make_rope_frequencies.py\n")
    for name, head_dim, max_pos, params, seq_len in CASES:
        heads = 4
        config = LlamaConfig(hidden_size=heads * head_dim, num_attention_heads=heads,
                             num_key_value_heads=heads, head_dim=head_dim,
                             max_position_embeddings=max_pos, rope_parameters=dict(params))
        rotary = LlamaRotaryEmbedding(config)
        x = torch.zeros(1, 1, head_dim, dtype=torch.float32)
        positions = torch.tensor([[seq_len - 1]], dtype=torch.int64)
        rotary(x, positions)
        inv_freq = rotary.inv_freq.detach().to(torch.float32).tolist()
        rotary_dim = int(head_dim * params.get("partial_rotary_factor", 1.0))
        fields = [f"name={name}", f"head_dim={head_dim}", f"rotary_dim={rotary_dim}",
                  f"max_position_embeddings={max_pos}", f"seq_len={seq_len}"]
        for k, v in params.items():
            if k == "partial_rotary_factor":
                continue
            fields.append(f"{k}={v}")
        out.write("case " + " ".join(fields) + "\n")
        out.write(f"attention_scaling {hexf(rotary.attention_scaling)}\n")
        out.write(f"inv_freq {len(inv_freq)} " + " ".join(hexf(v) for v in inv_freq) + "\n")


if __name__ == "__main__":
    main()
