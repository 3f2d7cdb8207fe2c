#!/usr/bin/env python3
"""An independent numpy implementation of MLX's affine quantize and dequantize, written from
MLX's sources (mlx/ops.cpp affine_quantize / affine_dequantize, mlx/backend/cpu/quantized.cpp,
and the Metal/CUDA affine_quantize kernels), whole arrays at a time and in float32 like MLX.
tests/ops/quantize_mlx_test.cpp runs it on inputs it writes and requires bit-identical output.

Usage: mlx_affine_quantize.py DIR
DIR/cases.txt has one case per line: NAME ROWS COLS W_DTYPE BITS GROUP_SIZE SCALE_DTYPE VARIANT
(dtypes f32/f16/bf16, VARIANT cpu or gpu). DIR/NAME.w holds the weights (little-endian, row
major). Written: NAME.packed (the u32 words as little-endian bytes), NAME.scales and NAME.biases
(SCALE_DTYPE), NAME.deq (mx.dequantize: output in SCALE_DTYPE) and NAME.deq32 (the same formula
with float32 output).
"""
import os
import sys

import numpy as np

F32 = np.float32


def bf16_bits(x):
    """float32 -> bfloat16 bit patterns, round to nearest even; NaN stays a quiet NaN."""
    u = np.ascontiguousarray(x, dtype=F32).view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    rounded = np.where(nan, (u >> 16) | 0x40, rounded)
    return rounded.astype(np.uint16)


def from_bf16_bits(bits):
    return (bits.astype(np.uint32) << 16).view(F32)


def round_to(x, dtype):
    """float32 values rounded to dtype (nearest even) and back to float32."""
    if dtype == "f32":
        return x.astype(F32)
    if dtype == "f16":
        return x.astype(np.float16).astype(F32)
    return from_bf16_bits(bf16_bits(x))


def to_bytes(x, dtype):
    if dtype == "f32":
        return x.astype("<f4").tobytes()
    if dtype == "f16":
        return x.astype("<f2").tobytes()
    return bf16_bits(x).astype("<u2").tobytes()


def read(path, dtype, shape):
    raw = open(path, "rb").read()
    if dtype == "f32":
        v = np.frombuffer(raw, "<f4").astype(F32)
    elif dtype == "f16":
        v = np.frombuffer(raw, "<f2").astype(F32)
    else:
        v = from_bf16_bits(np.frombuffer(raw, "<u2"))
    return v.reshape(shape)


def round_half_away(x):
    # Metal/CUDA round(): halfway cases away from zero. In float64, |x| + 0.5 is exact for every
    # float32 x below 2**52, and larger float32 values are already integers.
    a = np.floor(np.abs(x).astype(np.float64) + 0.5)
    return (np.sign(x) * a).astype(F32)


def quantize(w, bits, group_size, gpu):
    rows, cols = w.shape
    g = w.reshape(rows, cols // group_size, group_size)
    w_max = g.max(axis=-1)
    w_min = g.min(axis=-1)
    if gpu:
        w_max = np.maximum(w_max, F32(0))  # the kernels start their running max at 0
    n_bins = F32((1 << bits) - 1)
    eps = F32(1e-7)
    rnd = round_half_away if gpu else np.rint
    mask = np.abs(w_min) > np.abs(w_max)
    scales = np.maximum((w_max - w_min) / n_bins, eps)
    scales = np.where(mask, scales, -scales)
    edge = np.where(mask, w_min, w_max)
    q0 = rnd(edge / scales)
    nonzero = q0 != 0
    scales = np.where(nonzero, edge / np.where(nonzero, q0, F32(1)), scales).astype(F32)
    biases = np.where(nonzero, edge, F32(0)).astype(F32)
    codes = rnd((g - biases[..., None]) / scales[..., None])
    codes = np.clip(codes, F32(0), n_bins).astype(np.uint32).reshape(rows, cols)
    # Little-endian bit stream per row: bit b of code k is bit k * bits + b of the row.
    stream = ((codes[:, :, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    packed = np.packbits(stream.reshape(rows, cols * bits), axis=1, bitorder="little")
    return packed, scales, biases


def unpack(packed, bits, cols):
    stream = np.unpackbits(packed, axis=1, bitorder="little")[:, : cols * bits]
    stream = stream.reshape(packed.shape[0], cols, bits).astype(np.uint32)
    return (stream << np.arange(bits, dtype=np.uint32)).sum(axis=-1).astype(np.uint32)


def dequantize(packed, scales, biases, bits, group_size, cols, out_dtype):
    # mx.dequantize: multiply(codes, scales) then add(biases), each rounded to the output dtype.
    codes = unpack(packed, bits, cols).astype(F32)
    rows = codes.shape[0]
    codes = codes.reshape(rows, cols // group_size, group_size)
    product = round_to(codes * scales[..., None], out_dtype)
    return round_to(product + biases[..., None], out_dtype).reshape(rows, cols)


def main():
    folder = sys.argv[1]
    np.seterr(all="ignore")  # huge groups overflow to inf on purpose, as they do in MLX
    for line in open(os.path.join(folder, "cases.txt")):
        if not line.strip():
            continue
        name, rows, cols, w_dtype, bits, gs, s_dtype, variant = line.split()
        rows, cols, bits, gs = int(rows), int(cols), int(bits), int(gs)
        base = os.path.join(folder, name)
        w = read(base + ".w", w_dtype, (rows, cols))
        packed, scales, biases = quantize(w, bits, gs, variant == "gpu")
        with open(base + ".packed", "wb") as f:
            f.write(packed.tobytes())
        with open(base + ".scales", "wb") as f:
            f.write(to_bytes(scales, s_dtype))
        with open(base + ".biases", "wb") as f:
            f.write(to_bytes(biases, s_dtype))
        s = round_to(scales, s_dtype)
        b = round_to(biases, s_dtype)
        with open(base + ".deq", "wb") as f:
            f.write(to_bytes(dequantize(packed, s, b, bits, gs, cols, s_dtype), s_dtype))
        with open(base + ".deq32", "wb") as f:
            f.write(to_bytes(dequantize(packed, s, b, bits, gs, cols, "f32"), "f32"))


if __name__ == "__main__":
    main()
