#!/usr/bin/env python3
"""Writes a random-weight MLX affine-quantized model folder (the layout mlx_lm.convert -q writes)
from any Llama-family config.json, for benchmarks at real shapes: speed does not depend on the
values, so the codes are drawn at random instead of quantizing a random dense model.

Usage: make_quantized_model.py CONFIG.json OUT_DIR [--q-bits 4] [--q-group-size 64]
                               [--dtype bfloat16|float16|float32] [--seed N]

Needs only numpy (Debian python3-numpy). Every 2-D `.weight` whose input size is a multiple of
the group size (the projections, embed_tokens, lm_head) becomes `<name>.weight` (uint32, each row
a little-endian bit stream of codes), `<name>.scales` and `<name>.biases` (--dtype), with codes
uniform in [0, 2^bits) and per-group scale/bias mapping them onto [-a, a], a = sqrt(3 / in), so
the weights have variance 1 / in; norms stay dense. config.json gets "quantization" and
"quantization_config" ({"group_size", "bits"}), shards carry {"format": "mlx"} metadata, and
more than one shard gets model.safetensors.index.json, like mlx-lm.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_random_model import DTYPES, encode, tensor_shapes  # noqa: E402

SHARD_BYTES = 2_000_000_000


def entries(cfg, bits, gs, elem):
    """(name, safetensors dtype, shape, how) for every tensor of the quantized folder."""
    out = []
    for name, shape in tensor_shapes(cfg):
        if name.endswith(".weight") and len(shape) == 2 and shape[1] % gs == 0:
            base = name[: -len(".weight")]
            groups = (shape[0], shape[1] // gs)
            out.append((name, "U32", (shape[0], shape[1] * bits // 32), ("codes", shape)))
            out.append((base + ".scales", None, groups, ("scales", shape)))
            out.append((base + ".biases", None, groups, ("biases", shape)))
        else:
            out.append((name, None, shape, ("dense", shape)))
    return out


def nbytes(dtype, shape, elem):
    return int(np.prod(shape)) * (4 if dtype == "U32" else elem)


def values(how, bits, gs, rng):
    kind, shape = how
    if kind == "dense":
        if len(shape) == 1:
            return np.ones(shape, np.float32)  # norms
        return rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[-1])
    a = np.float32(np.sqrt(3.0 / shape[1]))
    if kind == "codes":
        return None
    groups = (shape[0], shape[1] // gs)
    jitter = rng.uniform(0.8, 1.2, size=groups).astype(np.float32)
    if kind == "scales":
        return 2 * a / np.float32((1 << bits) - 1) * jitter
    return -a * jitter


def write_shard(path, items, dtype, elem, bits, gs, rng):
    header, offset = {}, 0
    for name, st_dtype, shape, _ in items:
        st = st_dtype or dtype
        n = nbytes(st_dtype, shape, elem)
        header[name] = {"dtype": st, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "mlx"}
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for name, st_dtype, shape, how in items:
            if st_dtype == "U32":
                # Random codes, a row block at a time (a 150k-row lm_head would not fit at once).
                for r0 in range(0, shape[0], 4096):
                    rows = min(4096, shape[0] - r0)
                    f.write(rng.integers(0, 1 << 32, size=(rows, shape[1]), dtype=np.uint32)
                            .astype("<u4").tobytes())
            else:
                f.write(encode(values(how, bits, gs, rng), dtype))
    os.replace(tmp, path)
    return offset


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--q-bits", type=int, default=4, choices=[2, 3, 4, 5, 6, 8])
    ap.add_argument("--q-group-size", type=int, default=64, choices=[32, 64, 128])
    ap.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with open(args.config) as f:
        cfg = json.load(f)
    cfg["torch_dtype"] = args.dtype
    quant = {"group_size": args.q_group_size, "bits": args.q_bits}
    cfg["quantization"] = quant
    cfg["quantization_config"] = dict(quant)
    os.makedirs(args.out, exist_ok=True)
    dtype = DTYPES[args.dtype]
    elem = 4 if dtype == "F32" else 2
    shards, current, size = [], [], 0
    for item in entries(cfg, args.q_bits, args.q_group_size, elem):
        n = nbytes(item[1], item[2], elem)
        if current and size + n > SHARD_BYTES:
            shards.append(current)
            current, size = [], 0
        current.append(item)
        size += n
    shards.append(current)
    rng = np.random.default_rng(args.seed)
    weight_map, total = {}, 0
    for i, items in enumerate(shards):
        fname = ("model.safetensors" if len(shards) == 1
                 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors")
        total += write_shard(os.path.join(args.out, fname), items, dtype, elem, args.q_bits,
                             args.q_group_size, rng)
        weight_map.update({item[0]: fname for item in items})
    if len(shards) > 1:
        with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total},
                       "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    print(f"wrote {args.out}: {total / 1e9:.2f} GB in {len(shards)} file(s), "
          f"{args.q_bits}-bit, group size {args.q_group_size}")


if __name__ == "__main__":
    main()
