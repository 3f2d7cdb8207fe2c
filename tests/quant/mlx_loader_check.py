#!/usr/bin/env python3
"""Checks a folder written by `hearth convert` with the rules mlx-lm applies when it loads one,
independently of hearth's C++ (numpy only; no mlx, no safetensors package).

mlx-lm's load_model: config.json (+ generation_config eos), every model*.safetensors file, then
nn.quantize with class_predicate(p, m) = config["quantization"][p] if p is listed, else
f"{p}.scales" in weights; QuantizedLinear/QuantizedEmbedding(group_size, bits) must then find
weight u32 [out, in*bits/32], scales and biases [out, in/group_size]; load_weights(strict=True)
wants exactly the model's parameters. save_model/save_config fix the index and config layout.

With --source, every tensor is also recomputed from the source folder: quantized modules with
MLX's affine quantization (f32 steps, round half to even as MLX's CPU path), the others copied or
cast; with --dequantized-from, the weights must equal MLX's dequantize of that quantized folder.
Prints a JSON summary {module: bits or null} on stdout; exits 1 with a message on the first failure.
"""
import argparse
import glob
import json
import os
import struct
import sys

import numpy as np


def fail(msg):
    print("mlx_loader_check: " + msg, file=sys.stderr)
    sys.exit(1)


NBYTES = {}  # (file, tensor) -> stored bytes (bf16 tensors are widened to f32 when read)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        raw = data[base + b : base + end]
        dt = e["dtype"]
        shape = tuple(e["shape"])
        if dt == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32).reshape(shape)
        else:
            np_dt = {"F32": "<f4", "F16": "<f2", "U32": "<u4", "I32": "<i4", "I64": "<i8", "U8": "u1"}[dt]
            arr = np.frombuffer(raw, dtype=np_dt).reshape(shape)
        tensors[name] = (dt, arr)
        NBYTES[(path, name)] = end - b
    return tensors, meta


def round_to(x, dt):
    """f32 values rounded to a float dtype (kept as f32), nearest even."""
    x = np.asarray(x, dtype=np.float32)
    if dt == "F16":
        return x.astype(np.float16).astype(np.float32)
    if dt == "BF16":
        u = x.view(np.uint32).astype(np.uint64)
        r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
        return r.astype(np.uint32).view(np.float32)
    return x


def round_half_away(x):
    """Metal/CUDA round(): halfway cases away from zero (in float64, exact for f32 inputs)."""
    x = x.astype(np.float64)
    return np.where(x >= 0, np.floor(x + 0.5), np.ceil(x - 0.5)).astype(np.float32)


def mlx_quantize(w, bits, gs, variant):
    """MLX affine quantize of f32 rows: codes (uint32 [N, K]), scale and bias (f32 [N, K/gs]).
    variant "cpu": MLX's CPU backend (true group max, ties to even); "gpu": its Metal/CUDA
    kernels (the group max starts at 0, ties away from zero)."""
    n, k = w.shape
    g = w.reshape(n, k // gs, gs).astype(np.float32)
    n_bins = np.float32((1 << bits) - 1)
    rnd = np.rint if variant == "cpu" else round_half_away
    w_min = g.min(axis=-1)
    w_max = g.max(axis=-1)
    if variant == "gpu":
        w_max = np.maximum(w_max, np.float32(0))
    min_side = np.abs(w_min) > np.abs(w_max)
    scale = np.maximum((w_max - w_min) / n_bins, np.float32(1e-7)).astype(np.float32)
    scale = np.where(min_side, scale, -scale).astype(np.float32)
    edge = np.where(min_side, w_min, w_max).astype(np.float32)
    q0 = rnd(edge / scale).astype(np.float32)
    nz = q0 != 0
    safe_q0 = np.where(nz, q0, np.float32(1))
    scale = np.where(nz, edge / safe_q0, scale).astype(np.float32)
    bias = np.where(nz, edge, np.float32(0)).astype(np.float32)
    codes = rnd((g - bias[..., None]) / scale[..., None]).astype(np.float32)
    codes = np.clip(codes, 0, n_bins).astype(np.uint32)
    return codes.reshape(n, k), scale, bias


def pack(codes, bits):
    n, k = codes.shape
    bitplanes = ((codes[..., None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    packed = np.packbits(bitplanes.reshape(n, k * bits), axis=1, bitorder="little")
    return packed.view("<u4").reshape(n, k * bits // 32)


def unpack(packed, bits, k):
    n = packed.shape[0]
    b = np.unpackbits(packed.astype("<u4").view(np.uint8).reshape(n, -1), axis=1, bitorder="little")
    b = b[:, : k * bits].reshape(n, k, bits).astype(np.uint32)
    return (b << np.arange(bits, dtype=np.uint32)).sum(axis=-1).astype(np.uint32)


def mlx_dequantize(packed, scales, biases, bits, gs, dt):
    n = packed.shape[0]
    k = packed.shape[1] * 32 // bits
    codes = unpack(packed, bits, k).astype(np.float32)
    s = np.repeat(scales.astype(np.float32), gs, axis=1)
    b = np.repeat(biases.astype(np.float32), gs, axis=1)
    return round_to(round_to(codes * s, dt) + b, dt)


def spec_of(entry, default):
    """to_quantized(**entry): missing or null values take the mode's defaults."""
    if entry is True:
        return default
    mode = entry.get("mode", "affine")
    defaults = {"affine": (64, 4), "mxfp4": (32, 4), "nvfp4": (16, 4), "mxfp8": (32, 8)}[mode]
    return (entry.get("group_size") or defaults[0], entry.get("bits") or defaults[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--source", help="the folder that was converted")
    ap.add_argument("--dtype", choices=["F16", "BF16", "F32"], help="--dtype of the conversion")
    ap.add_argument("--variant", choices=["gpu", "cpu"], default="gpu",
                    help="which MLX quantize the conversion reproduced (hearth convert: gpu)")
    ap.add_argument("--dequantized-from", help="the quantized folder this one was made from with -d")
    args = ap.parse_args()
    out = args.folder

    # --- index and files (save_model) ---
    files = sorted(glob.glob(os.path.join(out, "model*.safetensors")))
    if not files:
        fail("no model*.safetensors")
    weights, file_of = {}, {}
    for path in files:
        t, meta = read_safetensors(path)
        if meta != {"format": "mlx"}:
            fail(f"{path}: metadata {meta}, expected {{'format': 'mlx'}}")
        for name, v in t.items():
            if name in weights:
                fail(f"{name} in two files")
            weights[name] = v
            file_of[name] = os.path.basename(path)
    names = [os.path.basename(f) for f in files]
    if len(files) == 1:
        if names != ["model.safetensors"]:
            fail(f"one shard must be model.safetensors, got {names}")
    else:
        want = [f"model-{i + 1:05d}-of-{len(files):05d}.safetensors" for i in range(len(files))]
        if names != want:
            fail(f"shard names {names}, expected {want}")
    with open(os.path.join(out, "model.safetensors.index.json")) as f:
        index_text = f.read()
    index = json.loads(index_text)
    if list(index) != ["metadata", "weight_map"]:
        fail(f"index keys {list(index)}")
    wm = index["weight_map"]
    if list(wm) != sorted(wm):
        fail("weight_map is not sorted")
    if wm != file_of:
        fail("weight_map does not match the files' tensors")
    total_size = sum(NBYTES[(os.path.join(out, f), n)] for n, f in file_of.items())
    if index["metadata"].get("total_size") != total_size:
        fail(f"total_size {index['metadata'].get('total_size')} != {total_size}")
    if index_text != json.dumps(index, indent=4):
        fail("index JSON is not json.dump(indent=4) text")

    # --- config (save_config) ---
    with open(os.path.join(out, "config.json")) as f:
        config_text = f.read()
    config = json.loads(config_text)
    if list(config) != sorted(config):
        fail("config.json top-level keys are not sorted")
    if config_text != json.dumps(config, indent=4):
        fail("config.json is not json.dump(indent=4) text")
    q = config.get("quantization")
    if q is not None and config.get("quantization_config") != q:
        fail("quantization_config differs from quantization")
    if q is None and "quantization_config" in config:
        fail("quantization_config without quantization")

    # --- load_model's quantization (class_predicate) ---
    modules = {}
    for name in weights:
        p, _, param = name.rpartition(".")
        modules.setdefault(p, set()).add(param)
    summary = {}
    quantized = {}
    for p, params in sorted(modules.items()):
        if "weight" not in params:
            continue
        spec = None
        if q is not None:
            default = (q["group_size"] or 64, q["bits"] or 4)
            if p in q:
                spec = spec_of(q[p], default) if q[p] else None
            elif f"{p}.scales" in weights:
                spec = default
        if spec is None:
            if "scales" in params or "biases" in params:
                fail(f"{p}: scales/biases but the config does not quantize it (strict load fails)")
            dt, w = weights[f"{p}.weight"]
            if dt not in ("F16", "BF16", "F32"):
                fail(f"{p}.weight is {dt} but the module is not quantized")
            summary[p] = None
            continue
        gs, bits = spec
        dt, w = weights[f"{p}.weight"]
        if dt != "U32" or w.ndim != 2:
            fail(f"{p}.weight is {dt}{list(w.shape)}, expected 2-D U32")
        k = w.shape[1] * 32 // bits
        for part in ("scales", "biases"):
            if f"{p}.{part}" not in weights:
                fail(f"{p}.{part} missing (strict load fails)")
            sdt, s = weights[f"{p}.{part}"]
            if s.shape != (w.shape[0], k // gs) or sdt not in ("F16", "BF16", "F32"):
                fail(f"{p}.{part} is {sdt}{list(s.shape)}, expected [{w.shape[0]}, {k // gs}]")
        if params - {"weight", "scales", "biases", "bias"}:
            fail(f"{p}: unexpected parameters {params}")
        summary[p] = bits
        quantized[p] = (gs, bits, k)

    # --- contents against the source ---
    if args.source:
        src = {}
        for path in sorted(glob.glob(os.path.join(args.source, "model*.safetensors"))):
            src.update(read_safetensors(path)[0])
        with open(os.path.join(args.source, "config.json")) as f:
            src_config = json.load(f)
        # The Llama family's sanitize.
        src = {k: v for k, v in src.items() if "rotary_emb.inv_freq" not in k}
        if src_config.get("tie_word_embeddings"):
            src.pop("lm_head.weight", None)
        expected_names = set()
        for name, (sdt, sv) in src.items():
            p, _, param = name.rpartition(".")
            odt = args.dtype or sdt
            if p in quantized and param == "weight":
                gs, bits, k = quantized[p]
                wv = round_to(sv.astype(np.float32), odt)
                codes, scale, bias = mlx_quantize(wv, bits, gs, args.variant)
                for part, want in (("weight", pack(codes, bits)), ("scales", round_to(scale, odt)),
                                   ("biases", round_to(bias, odt))):
                    got_dt, got = weights[f"{p}.{part}"]
                    expected_names.add(f"{p}.{part}")
                    if part != "weight" and got_dt != odt:
                        fail(f"{p}.{part} is {got_dt}, expected {odt}")
                    if not np.array_equal(got.astype(want.dtype), want):
                        bad = int(np.sum(got.astype(want.dtype) != want))
                        fail(f"{p}.{part}: {bad} of {want.size} values differ from MLX's quantize")
            else:
                expected_names.add(name)
                if name not in weights:
                    fail(f"{name} of the source is missing")
                got_dt, got = weights[name]
                want = round_to(sv.astype(np.float32), odt) if sdt in ("F16", "BF16", "F32") else sv
                if got_dt != odt or not np.array_equal(got.astype(np.float32), want.astype(np.float32)):
                    fail(f"{name}: differs from the source ({got_dt} vs {odt})")
        if expected_names != set(weights):
            fail(f"tensor names differ from the source: {sorted(set(weights) ^ expected_names)[:5]}")

    if args.dequantized_from:
        qw = {}
        for path in sorted(glob.glob(os.path.join(args.dequantized_from, "model*.safetensors"))):
            qw.update(read_safetensors(path)[0])
        with open(os.path.join(args.dequantized_from, "config.json")) as f:
            qq = json.load(f)["quantization"]
        for name, (dt, v) in weights.items():
            p, _, param = name.rpartition(".")
            if param == "weight" and f"{p}.scales" in qw:
                spec = spec_of(qq[p], (qq["group_size"], qq["bits"])) if p in qq else (qq["group_size"], qq["bits"])
                gs, bits = spec
                sdt, s = qw[f"{p}.scales"]
                want = mlx_dequantize(qw[f"{p}.weight"][1], s, qw[f"{p}.biases"][1], bits, gs, sdt)
                if dt != sdt or not np.array_equal(v.astype(np.float32), want):
                    fail(f"{name}: not MLX's dequantize of the quantized folder")
            elif name not in qw or not np.array_equal(v, qw[name][1]):
                fail(f"{name}: differs from the quantized folder")

    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
