#!/usr/bin/env python3
"""The PyTorch peer for docs/perf/cuda.md: HF transformers LlamaForCausalLM in bf16 on the same
random-weight folder hearth benchmarks, on the same GPU in the same run.

  prefill: one forward of a 2048-token random prompt (eager, SDPA), tokens/s, best of 3;
  decode: batch 1, static KV cache, forward compiled with torch.compile(mode="reduce-overhead")
          (CUDA graphs) when --compile, else eager; greedy tokens/s over --gen tokens after a
          warm-up generate; plus a device-to-device copy probe (bytes read + written).

Usage: hf_peer.py MODEL_DIR [--prompt 2048] [--gen 128] [--compile]
"""
import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM


def copy_bandwidth():
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    best = 1e9
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(10):
            b.copy_(a)
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / 10)
    return 2 * n / best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--prompt", type=int, default=2048)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    result = {"model": args.model, "torch": torch.__version__, "gpu": torch.cuda.get_device_name()}
    result["copy_GBps"] = copy_bandwidth() / 1e9
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16).cuda().eval()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, vocab, (1, args.prompt), generator=g).cuda()
    with torch.inference_mode():
        best = 1e9
        for _ in range(3):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(prompt, use_cache=False, logits_to_keep=1)
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        result["prefill_tps"] = args.prompt / best

        short = prompt[:, :16]
        model.generation_config.cache_implementation = "static"
        if args.compile:
            model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
        kw = dict(do_sample=False, max_new_tokens=args.gen, min_new_tokens=args.gen,
                  pad_token_id=0)
        model.generate(short, **kw)  # warm-up (compiles, captures graphs)
        model.generate(short, **kw)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model.generate(short, **kw)
        torch.cuda.synchronize()
        total = time.perf_counter() - t0
        # One prefill of 16 tokens is inside `total`; negligible next to --gen decode steps.
        result["decode_tps"] = (out.shape[1] - short.shape[1]) / total
        result["compiled"] = args.compile
    print("HF_PEER " + json.dumps(result))


if __name__ == "__main__":
    main()
