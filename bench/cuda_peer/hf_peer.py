#!/usr/bin/env python3
"""The PyTorch peer for docs/perf/cuda.md: an HF transformers causal LM (Llama, Qwen3) in bf16 on
the same random-weight folder hearth benchmarks, on the same GPU in the same run.

  prefill: one forward of a 2048-token random prompt (eager, SDPA), tokens/s, best of 3;
  decode: batch 1, StaticCache, one forward per token compiled with
          torch.compile(mode="reduce-overhead") (CUDA graphs) when --compile, else eager; greedy
          tokens/s over --gen tokens after warm-ups; plus a device-to-device copy probe (bytes
          read + written). model.generate with a compiled forward failed on torch 2.11 +
          transformers 5.17 ("accessing tensor output of CUDAGraphs that has been overwritten"),
          hence the explicit loop.

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

        print("HF_PEER_PREFILL " + json.dumps(result), flush=True)

        # Decode: gpt-fast style loop over a StaticCache that the eager prefill initializes
        # (so its tensors are not CUDA-graph outputs), one compiled forward per token with
        # cudagraph_mark_step_begin() before each replay.
        from transformers import StaticCache

        short = prompt[:, :16]
        max_len = short.shape[1] + args.gen + 8
        step = model.forward
        if args.compile:
            step = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)

        def decode():
            cache = StaticCache(config=model.config, max_cache_len=max_len)
            pos = torch.arange(short.shape[1], device="cuda")
            out = model(short, past_key_values=cache, cache_position=pos, use_cache=True)
            tok = out.logits[:, -1:].argmax(-1)
            n = short.shape[1]
            for _ in range(args.gen - 1):
                if args.compile:
                    torch.compiler.cudagraph_mark_step_begin()
                cp = torch.tensor([n], device="cuda")
                out = step(tok, past_key_values=cache, cache_position=cp,
                           position_ids=cp.unsqueeze(0), use_cache=True)
                tok = out.logits[:, -1:].argmax(-1).clone()
                n += 1
            torch.cuda.synchronize()

        decode()  # warm-up: compiles and captures the graphs
        decode()
        t0 = time.perf_counter()
        decode()
        total = time.perf_counter() - t0
        # The 16-token eager prefill is inside `total`: a lower bound on decode speed.
        result["decode_tps"] = args.gen / total
        result["compiled"] = args.compile
    print("HF_PEER " + json.dumps(result))


if __name__ == "__main__":
    main()
