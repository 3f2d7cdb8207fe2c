#!/usr/bin/env python3
"""Synthetic AutoAWQ/GPTQ tensors and their MLX form computed the way mlx-lm's
_transform_awq_weights does (numpy transcription of its unpack -> transpose -> repack and
biases = -zeros * scales), independent of hearth's C++.

usage: awq_reference.py OUT_DIR SEED IN OUT GROUP_SIZE {F16,BF16,F32} {asym,sym,gptq,gptq_v2}
writes OUT_DIR/input.safetensors (m.qweight, m.qzeros, m.scales) and
OUT_DIR/expected.safetensors (m.weight, m.scales, m.biases).

asym/sym: AutoAWQ tensors through mlx-lm's transform. gptq/gptq_v2: GPTQ's own layout (which
mlx-lm does not handle), built from random codes q, zeros z and scales s by GPTQ's packing
(qweight [in/8, out], 8 input rows per word, low bits first; qzeros [in/gs, out/8] holding z - 1
for "gptq", z for "gptq_v2"); the expected MLX tensors are then q transposed and packed, s
transposed, and -z * s, so that MLX's q * scale + bias is GPTQ's (q - z) * s.
"""
import json
import struct
import sys

import numpy as np


def to_bits(x, dt):
    """f32 array -> (safetensors dtype name, raw bytes) rounded to dt, nearest even."""
    x = np.asarray(x, dtype=np.float32)
    if dt == "F16":
        return x.astype("<f2").tobytes()
    if dt == "BF16":
        u = x.view(np.uint32).astype(np.uint64)
        return (((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")).tobytes()
    return x.astype("<f4").tobytes()


def from_stored(x, dt):
    """f32 values as they are after storing in dt."""
    if dt == "F16":
        return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)
    if dt == "BF16":
        u = np.frombuffer(to_bits(x, "BF16"), dtype="<u2").astype(np.uint32) << 16
        return u.view(np.float32).reshape(np.shape(x))
    return np.asarray(x, np.float32)


def write(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dt, shape, raw) in tensors.items():
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def unpack_awq(q):
    # mlx-lm _unpack_awq_weights: (q[..., None] >> [0,4,1,5,2,6,3,7]*4) & 0xF, flattened.
    shifts = np.array([0, 4, 1, 5, 2, 6, 3, 7], dtype=np.int32) * 4
    u = (q[..., None] >> shifts) & 0xF
    return u.reshape(q.shape[0], q.shape[1] * 8)


def pack_rows(codes):
    """[8k, n] codes 0..15 -> [k, n] words, row 8r+j at bits 4j."""
    k8, n = codes.shape
    c = codes.reshape(k8 // 8, 8, n).astype(np.uint64)
    return (c << (np.arange(8, dtype=np.uint64) * 4)[None, :, None]).sum(axis=1).astype(np.uint32)


def gptq(out_dir, rng, n_in, n_out, gs, dt, kind, scales):
    q = rng.integers(0, 16, size=(n_in, n_out))
    # AutoGPTQ's format cannot store a zero of 0 (it keeps zero - 1 in 4 bits).
    z = rng.integers(1 if kind == "gptq" else 0, 16, size=(n_in // gs, n_out))
    stored = z - 1 if kind == "gptq" else z
    qweight = pack_rows(q).view(np.int32)
    qzeros = pack_rows(stored.T).T.copy().view(np.int32)
    write(f"{out_dir}/input.safetensors",
          {"m.qweight": ("I32", qweight.shape, qweight.astype("<i4").tobytes()),
           "m.qzeros": ("I32", qzeros.shape, qzeros.astype("<i4").tobytes()),
           "m.scales": (dt, scales.shape, to_bits(scales, dt))})
    # MLX: row o holds input column i at bits 4 * (i % 8) of word i // 8.
    qt = q.T.reshape(n_out, n_in // 8, 8).astype(np.uint64)
    weight = (qt << (np.arange(8, dtype=np.uint64) * 4)).sum(axis=-1).astype(np.uint32)
    s = np.ascontiguousarray(scales.T)
    biases = -z.T.astype(np.float32) * s
    write(f"{out_dir}/expected.safetensors",
          {"m.weight": ("U32", weight.shape, weight.astype("<u4").tobytes()),
           "m.scales": (dt, s.shape, to_bits(s, dt)),
           "m.biases": (dt, biases.shape, to_bits(biases, dt))})


def main():
    out_dir, seed, n_in, n_out, gs, dt, kind = sys.argv[1:8]
    seed, n_in, n_out, gs = int(seed), int(n_in), int(n_out), int(gs)
    rng = np.random.default_rng(seed)
    qweight = rng.integers(-(2**31), 2**31, size=(n_in, n_out // 8), dtype=np.int64).astype(np.int32)
    qzeros = rng.integers(-(2**31), 2**31, size=(n_in // gs, n_out // 8), dtype=np.int64).astype(np.int32)
    # Scales of mixed magnitude, some negative, rounded to the stored dtype.
    scales = from_stored(rng.standard_normal((n_in // gs, n_out)) * 10.0 ** rng.integers(-4, 1, (n_in // gs, n_out)), dt)

    if kind.startswith("gptq"):
        return gptq(out_dir, rng, n_in, n_out, gs, dt, kind, scales)

    inputs = {"m.qweight": ("I32", qweight.shape, qweight.astype("<i4").tobytes()),
              "m.scales": (dt, scales.shape, to_bits(scales, dt))}
    if kind == "asym":
        inputs["m.qzeros"] = ("I32", qzeros.shape, qzeros.astype("<i4").tobytes())
    write(f"{out_dir}/input.safetensors", inputs)

    # mlx-lm's transform.
    w = unpack_awq(qweight).T  # [out, in]
    repacked = w.reshape(n_out, n_in // 8, 8).astype(np.uint32)
    weight = (repacked << (np.arange(8, dtype=np.uint32) * 4)).sum(axis=-1).astype(np.uint32)
    s = np.ascontiguousarray(scales.T)
    if kind == "asym":
        z = unpack_awq(qzeros).T
        biases = -z.astype(np.float32) * s
    else:
        biases = np.full(s.shape, -8, dtype=np.float32) * s
    write(f"{out_dir}/expected.safetensors",
          {"m.weight": ("U32", weight.shape, weight.astype("<u4").tobytes()),
           "m.scales": (dt, s.shape, to_bits(s, dt)),
           "m.biases": (dt, biases.shape, to_bits(biases, dt))})


if __name__ == "__main__":
    main()
