#!/usr/bin/env python3
"""Writes a random-weight Hugging Face model folder from any Llama-family config.json, for
benchmarks at real shapes (speed does not depend on the weight values).

Usage: make_random_model.py CONFIG.json OUT_DIR [--dtype bfloat16|float16|float32] [--seed N]

Needs only numpy (Debian python3-numpy). Weights ~ N(0, 1/in_features) so activations stay
finite; norms are 1. Output: config.json (copied), model-0000i-of-0000N.safetensors shards of
at most 2 GB plus model.safetensors.index.json when more than one shard.
"""
import argparse
import json
import os
import struct

import numpy as np

DTYPES = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}


def tensor_shapes(cfg):
    h, inter = cfg["hidden_size"], cfg["intermediate_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    hd = cfg.get("head_dim") or h // heads
    arch = cfg["architectures"][0]
    qkv_bias = arch == "Qwen2ForCausalLM" or cfg.get("attention_bias", False)
    o_bias = arch != "Qwen2ForCausalLM" and cfg.get("attention_bias", False)
    shapes = [("model.embed_tokens.weight", (cfg["vocab_size"], h))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes += [(p + "input_layernorm.weight", (h,)), (p + "post_attention_layernorm.weight", (h,)),
                   (p + "self_attn.q_proj.weight", (heads * hd, h)),
                   (p + "self_attn.k_proj.weight", (kv * hd, h)),
                   (p + "self_attn.v_proj.weight", (kv * hd, h)),
                   (p + "self_attn.o_proj.weight", (h, heads * hd)),
                   (p + "mlp.gate_proj.weight", (inter, h)), (p + "mlp.up_proj.weight", (inter, h)),
                   (p + "mlp.down_proj.weight", (h, inter))]
        if qkv_bias:
            shapes += [(p + "self_attn.q_proj.bias", (heads * hd,)),
                       (p + "self_attn.k_proj.bias", (kv * hd,)),
                       (p + "self_attn.v_proj.bias", (kv * hd,))]
        if o_bias:
            shapes += [(p + "self_attn.o_proj.bias", (h,))]
        if arch == "Qwen3ForCausalLM":
            shapes += [(p + "self_attn.q_norm.weight", (hd,)), (p + "self_attn.k_norm.weight", (hd,))]
    shapes.append(("model.norm.weight", (h,)))
    if not cfg.get("tie_word_embeddings", False):
        shapes.append(("lm_head.weight", (cfg["vocab_size"], h)))
    return shapes


def encode(values, dtype):
    if dtype == "F32":
        return values.astype("<f4").tobytes()
    if dtype == "F16":
        return values.astype("<f2").tobytes()
    bits = values.astype("<f4").view("<u4")
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round to nearest even
    return rounded.astype("<u2").tobytes()


def write_shard(path, names, shapes, dtype, rng):
    elem = 4 if dtype == "F32" else 2
    header, offset = {}, 0
    for name in names:
        n = int(np.prod(shapes[name]))
        header[name] = {"dtype": dtype, "shape": list(shapes[name]), "data_offsets": [offset, offset + n * elem]}
        offset += n * elem
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for name in names:
            shape = shapes[name]
            if name.endswith("norm.weight"):
                values = np.ones(shape, np.float32)
            else:
                values = rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[-1])
            f.write(encode(values, dtype))
    os.replace(tmp, path)
    return offset


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with open(args.config) as f:
        cfg = json.load(f)
    cfg["torch_dtype"] = args.dtype
    os.makedirs(args.out, exist_ok=True)
    dtype = DTYPES[args.dtype]
    elem = 4 if dtype == "F32" else 2
    shapes = dict(tensor_shapes(cfg))
    shards, current, size = [], [], 0
    for name, shape in tensor_shapes(cfg):
        nbytes = int(np.prod(shape)) * elem
        if current and size + nbytes > 2_000_000_000:
            shards.append(current)
            current, size = [], 0
        current.append(name)
        size += nbytes
    shards.append(current)
    rng = np.random.default_rng(args.seed)
    weight_map, total = {}, 0
    for i, names in enumerate(shards):
        fname = "model.safetensors" if len(shards) == 1 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        total += write_shard(os.path.join(args.out, fname), names, shapes, dtype, rng)
        weight_map.update({n: fname for n in names})
    if len(shards) > 1:
        with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    print(f"wrote {args.out}: {total / 1e9:.2f} GB in {len(shards)} file(s)")


if __name__ == "__main__":
    main()
