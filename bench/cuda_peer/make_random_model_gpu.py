#!/usr/bin/env python3
"""Same random-weight model folder as tools/random_model/make_random_model.py (same tensor names,
shapes, N(0, 1/in_features) weights, unit norms, 2 GB shards), drawn with PyTorch on the GPU: an
8B bf16 model in seconds instead of minutes of numpy on the GPU machine. Speed does not depend on
the values, so the two generators are interchangeable for benchmarks.

Usage: make_random_model_gpu.py CONFIG.json OUT_DIR [--dtype bfloat16|float16|float32]
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file

# tools/random_model from the repo root (the current folder) or beside this script's bench/.
sys.path[:0] = [os.path.join("tools", "random_model"),
                os.path.join(os.path.dirname(__file__), "..", "..", "tools", "random_model")]
from make_random_model import tensor_shapes  # noqa: E402

TORCH_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--dtype", default="bfloat16", choices=sorted(TORCH_DTYPES))
    args = ap.parse_args()
    with open(args.config) as f:
        cfg = json.load(f)
    cfg["torch_dtype"] = args.dtype
    os.makedirs(args.out, exist_ok=True)
    dtype = TORCH_DTYPES[args.dtype]
    elem = torch.tensor([], dtype=dtype).element_size()
    gen = torch.Generator(device="cuda").manual_seed(0)
    shards, current, size = [], [], 0
    for name, shape in tensor_shapes(cfg):
        nbytes = int(torch.tensor(shape).prod()) * elem
        if current and size + nbytes > 2_000_000_000:
            shards.append(current)
            current, size = [], 0
        current.append((name, shape))
        size += nbytes
    shards.append(current)
    weight_map, total = {}, 0
    for i, items in enumerate(shards):
        fname = "model.safetensors" if len(shards) == 1 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        tensors = {}
        for name, shape in items:
            if name.endswith("norm.weight"):
                t = torch.ones(shape, dtype=dtype)
            else:
                t = (torch.randn(shape, generator=gen, device="cuda") / shape[-1] ** 0.5).to(dtype).cpu()
            tensors[name] = t
            total += t.numel() * elem
            weight_map[name] = fname
        tmp = os.path.join(args.out, fname + ".tmp")
        save_file(tensors, tmp, metadata={"format": "pt"})
        os.replace(tmp, os.path.join(args.out, fname))
    if len(shards) > 1:
        with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    print(f"wrote {args.out}: {total / 1e9:.2f} GB in {len(shards)} file(s)")


if __name__ == "__main__":
    main()
