#!/usr/bin/python3
"""Independent reference for rotating KV caches on a whole model (rotating_reference_test.cpp).

A float64 numpy forward of a Qwen3 checkpoint (the tiny fixture) whose per-layer caches follow
mlx-lm's RotatingKVCache(max_size, keep) (models/cache.py: update_and_fetch, make_mask) and whose
attention uses mlx-lm's masks (create_causal_mask with window max_size for several tokens, no mask
for one). Written from mlx-lm's documented semantics, sharing no code with hearth.

usage: rotating_reference.py MODEL_DIR MAX_SIZE KEEP OUT_FILE CHUNK...
  each CHUNK is comma-separated token ids; writes float32 logits of every row of every chunk.
"""
import json
import struct
import sys

import numpy as np


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[base + a : base + b]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif info["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype=np.float32)
        elif info["dtype"] == "I32":
            out[name] = np.frombuffer(raw, dtype=np.int32).reshape(info["shape"])
            continue
        elif info["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype=np.float16)
        else:
            raise SystemExit(f"unsupported dtype {info['dtype']} for {name}")
        out[name] = arr.astype(np.float64).reshape(info["shape"])
    return out


class RotatingKVCache:
    """mlx-lm's RotatingKVCache over numpy arrays [n_kv_heads, T, head_dim] (batch of one)."""

    step = 256

    def __init__(self, max_size, keep):
        self.keep, self.max_size = keep, max_size
        self.keys = self.values = None
        self.offset = 0
        self._idx = 0

    def _trim(self, trim_size, v, append=None):
        if trim_size > 0:
            parts = [v[:, : self.keep], v[:, trim_size + self.keep :]]
        else:
            parts = [v]
        if append is not None:
            parts.append(append)
        return np.concatenate(parts, axis=1)

    def _temporal_order(self, v):
        if self._idx == v.shape[1]:
            return v
        if self._idx < self.offset:
            return np.concatenate(
                [v[:, : self.keep], v[:, self._idx :], v[:, self.keep : self._idx]], axis=1
            )
        return v[:, : self._idx]

    def _update_concat(self, k, v):
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            self.keys = self._temporal_order(self.keys)
            self.values = self._temporal_order(self.values)
            self._idx = self.keys.shape[1]
            trim_size = self._idx - self.max_size + 1
            self.keys = self._trim(trim_size, self.keys, k)
            self.values = self._trim(trim_size, self.values, v)
        self.offset += k.shape[1]
        self._idx = self.keys.shape[1]
        return self.keys, self.values

    def _update_in_place(self, k, v):
        prev = self.offset
        if self.keys is None or (prev >= self.keys.shape[1] and self.keys.shape[1] < self.max_size):
            new_size = min(self.step, self.max_size - prev)
            zeros = np.zeros((k.shape[0], new_size, k.shape[2]))
            if self.keys is None:
                self.keys, self.values = zeros.copy(), zeros.copy()
            else:
                self.keys = np.concatenate([self.keys, zeros], axis=1)
                self.values = np.concatenate([self.values, zeros], axis=1)
            self._idx = prev
        trim_size = self.keys.shape[1] - self.max_size
        if trim_size > 0:
            self.keys = self._trim(trim_size, self.keys)
            self.values = self._trim(trim_size, self.values)
            self._idx = self.max_size
        if self._idx == self.max_size:
            self._idx = self.keep
        self.keys[:, self._idx] = k[:, 0]
        self.values[:, self._idx] = v[:, 0]
        self.offset += 1
        self._idx += 1
        if self.offset < self.max_size:
            return self.keys[:, : self.offset], self.values[:, : self.offset]
        return self.keys, self.values

    def update_and_fetch(self, k, v):
        if k.shape[1] == 1:
            return self._update_in_place(k, v)
        return self._update_concat(k, v)

    def make_mask(self, n):
        """Boolean [n, keys] or None (everything visible)."""
        if n == 1:
            return None
        offset = min(self.max_size - 1, self.offset)
        rinds = np.arange(offset + n)[None, :]
        linds = np.arange(offset, offset + n)[:, None]
        return (linds >= rinds) & (linds < rinds + self.max_size)


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, positions, theta):
    # x: [heads, T, D]; HF/mlx non-traditional rotation (halves).
    d = x.shape[-1]
    inv_freq = 1.0 / (theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    angles = positions[:, None] * inv_freq[None, :]
    cos = np.concatenate([np.cos(angles)] * 2, axis=-1)
    sin = np.concatenate([np.sin(angles)] * 2, axis=-1)
    rotated = np.concatenate([-x[..., d // 2 :], x[..., : d // 2]], axis=-1)
    return x * cos + rotated * sin


def main():
    model_dir, max_size, keep, out_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    chunks = [[int(t) for t in c.split(",")] for c in sys.argv[5:]]
    cfg = json.load(open(f"{model_dir}/config.json"))
    if cfg["architectures"][0] != "Qwen3ForCausalLM" or cfg["rope_parameters"]["rope_type"] != "default":
        raise SystemExit("this reference implements Qwen3 with default RoPE only")
    w = load_safetensors(f"{model_dir}/model.safetensors")
    H, D = cfg["num_attention_heads"], cfg["head_dim"]
    KV, eps = cfg["num_key_value_heads"], cfg["rms_norm_eps"]
    theta = cfg["rope_parameters"]["rope_theta"]
    L = cfg["num_hidden_layers"]
    caches = [RotatingKVCache(max_size, keep) for _ in range(L)]
    outputs = []
    for tokens in chunks:
        n = len(tokens)
        positions = np.arange(caches[0].offset, caches[0].offset + n, dtype=np.float64)
        mask = caches[0].make_mask(n)
        x = w["model.embed_tokens.weight"][tokens]
        for l in range(L):
            p = f"model.layers.{l}."
            h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
            q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(n, H, D).transpose(1, 0, 2)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(n, KV, D).transpose(1, 0, 2)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(n, KV, D).transpose(1, 0, 2)
            q = rope(rms_norm(q, w[p + "self_attn.q_norm.weight"], eps), positions, theta)
            k = rope(rms_norm(k, w[p + "self_attn.k_norm.weight"], eps), positions, theta)
            keys, values = caches[l].update_and_fetch(k, v)
            keys = np.repeat(keys, H // KV, axis=0)
            values = np.repeat(values, H // KV, axis=0)
            scores = q @ keys.transpose(0, 2, 1) / np.sqrt(D)
            if mask is not None:
                scores = np.where(mask[None], scores, -np.inf)
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            probs = scores / scores.sum(axis=-1, keepdims=True)
            attn = (probs @ values).transpose(1, 0, 2).reshape(n, H * D)
            x = x + attn @ w[p + "self_attn.o_proj.weight"].T
            h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
            gate = h @ w[p + "mlp.gate_proj.weight"].T
            up = h @ w[p + "mlp.up_proj.weight"].T
            x = x + ((gate / (1.0 + np.exp(-gate))) * up) @ w[p + "mlp.down_proj.weight"].T
        x = rms_norm(x, w["model.norm.weight"], eps)
        outputs.append(x @ w["lm_head.weight"].T)
    np.concatenate(outputs, axis=0).astype(np.float32).tofile(out_file)


if __name__ == "__main__":
    main()
