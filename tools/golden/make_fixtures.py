#!/usr/bin/env python3
"""Writes hearth's golden model fixtures with HF transformers (run on the GPU machine, which has
torch, transformers 5.17 and tokenizers; everything runs on its CPU in float32).

For each tiny random model of a supported architecture it saves a Hugging Face folder (bf16
safetensors, config.json, generation_config.json, a small byte-level BPE tokenizer) and
golden.json + golden_logits.safetensors:
  * greedy continuation (no EOS stop) of a fixed prompt, by model.generate in float32, with the
    top-2 logit margin of every step so near-ties can be spotted,
  * per-position logits of one forward pass over prompt + continuation, in float32,
  * an end-to-end text case: the prompt as `hearth generate` builds it (chat template when the
    tokenizer has one), greedy generation with EOS stopping, and the decoded text.
The float32 reference is computed from the bf16 weights reloaded from disk, so it is exactly the
model hearth loads.

Usage: make_fixtures.py OUT_DIR
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (AutoModelForCausalLM, LlamaConfig, MistralConfig, PreTrainedTokenizerFast,
                          Qwen2Config, Qwen3Config)

VOCAB = 320
PROMPT_LEN = 20
NEW_TOKENS = 24

CORPUS = [
    "In the beginning was the hearth, and the hearth was warm.",
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "Hello, world! How are you today? I am fine, thank you.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "A journey of a thousand miles begins with a single step.",
    "{\"name\": \"hearth\", \"version\": 1, \"tags\": [\"llm\", \"cpu\", \"cuda\"]}",
] * 20

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def make_tokenizer(out_dir, with_chat_template):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|bos|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    bos = tok.token_to_id("<|bos|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A", pair="<|bos|> $A <|bos|> $B", special_tokens=[("<|bos|>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>",
                                   eos_token="<|endoftext|>")
    if with_chat_template:
        fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


def randomize(model, seed):
    # Default init (std 0.02) gives nearly uniform logits and near-ties; use larger weights and
    # non-trivial norms/biases so that every parameter matters.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / (p.shape[-1] ** 0.5))


def to_old_rope_encoding(config_path):
    # Rewrite transformers-5 `rope_parameters` as the older rope_theta + rope_scaling keys.
    with open(config_path) as f:
        cfg = json.load(f)
    params = cfg.pop("rope_parameters")
    cfg["rope_theta"] = params.pop("rope_theta")
    rope_type = params.pop("rope_type")
    if rope_type != "default":
        cfg["rope_scaling"] = dict(type=rope_type, **params)
    with open(config_path, "w") as f:
        json.dump(cfg, f, indent=2)


def greedy_with_margins(model, ids, new_tokens, eos=None):
    margins, out = [], list(ids)
    gen = model.generate(torch.tensor([ids]), max_new_tokens=new_tokens, do_sample=False,
                         eos_token_id=eos, pad_token_id=0, output_scores=True,
                         return_dict_in_generate=True)
    seq = gen.sequences[0].tolist()[len(ids):]
    for scores in gen.scores:
        top = torch.topk(scores[0].float(), 2).values
        margins.append(float(top[0] - top[1]))
    return seq, margins


def build(name, config, out_root, seed, old_rope=False, chat=False, shard=False):
    out_dir = os.path.join(out_root, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    tokenizer = make_tokenizer(out_dir, chat)
    config.vocab_size = VOCAB
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    randomize(model, seed)
    model.to(torch.bfloat16).save_pretrained(out_dir, max_shard_size="60KB" if shard else "5GB")
    if old_rope:
        to_old_rope_encoding(os.path.join(out_dir, "config.json"))

    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    g = torch.Generator().manual_seed(seed + 1)
    low = 4  # skip the special tokens
    prompt = torch.randint(low, tokenizer.vocab_size, (PROMPT_LEN,), generator=g).tolist()
    with torch.no_grad():
        greedy, margins = greedy_with_margins(model, prompt, NEW_TOKENS, eos=None)
        full = torch.tensor([prompt + greedy])
        logits = model(full).logits[0].float().contiguous()

        # End to end: what `hearth generate --prompt TEXT --max-tokens 12 --verbose False` prints.
        text = "hello world"
        if chat:
            rendered = tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                                     add_generation_prompt=True, tokenize=False)
            e2e_ids = tokenizer.encode(rendered, add_special_tokens=False)
        else:
            e2e_ids = tokenizer.encode(text, add_special_tokens=True)
        e2e_out, _ = greedy_with_margins(model, e2e_ids, 12, eos=tokenizer.eos_token_id)
        if e2e_out and e2e_out[-1] == tokenizer.eos_token_id:
            e2e_out = e2e_out[:-1]
        e2e_text = tokenizer.decode(e2e_out)

    save_file({"logits": logits, "input_ids": full[0].to(torch.int32)},
              os.path.join(out_dir, "golden_logits.safetensors"))
    golden = {
        "generator": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, float32 CPU, eager attention",
        "prompt_ids": prompt,
        "greedy_ids": greedy,
        "greedy_top2_margins": margins,
        "min_margin": min(margins),
        "e2e": {"prompt": text, "max_tokens": 12, "prompt_ids": e2e_ids, "output_ids": e2e_out,
                "output_text": e2e_text, "chat_template": chat},
    }
    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
    print(f"{name}: min top-2 margin {min(margins):.4f}, e2e text {e2e_text!r}")
    return min(margins)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(8)
    cases = [
        ("llama-gqa-llama3", lambda: LlamaConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False,
            rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                             "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 16}), dict(chat=True)),
        ("llama-tied-bias-linear-old-rope", lambda: LlamaConfig(
            hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, max_position_embeddings=128, tie_word_embeddings=True,
            attention_bias=True, mlp_bias=True,
            rope_parameters={"rope_type": "linear", "rope_theta": 500.0, "factor": 2.0}),
         dict(old_rope=True, shard=True)),
        ("mistral-sliding", lambda: MistralConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=1, head_dim=16, max_position_embeddings=256, sliding_window=7,
            tie_word_embeddings=False), dict()),
        ("qwen2-bias-yarn-sliding", lambda: Qwen2Config(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, use_sliding_window=True,
            sliding_window=9, max_window_layers=1, tie_word_embeddings=False,
            rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                             "original_max_position_embeddings": 64}), dict(chat=True)),
        ("qwen3-qknorm-dynamic", lambda: Qwen3Config(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=32, max_position_embeddings=32,
            tie_word_embeddings=True,
            rope_parameters={"rope_type": "dynamic", "rope_theta": 1000.0, "factor": 2.0}),
         dict(old_rope=True)),
        ("qwen3-plain", lambda: Qwen3Config(
            hidden_size=96, intermediate_size=160, num_hidden_layers=3, num_attention_heads=6,
            num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
            tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
         dict(chat=True)),
    ]
    for name, make_config, kw in cases:
        for seed in range(1, 30):
            if build(name, make_config(), out, seed, **kw) > 2e-3:
                break
            print(f"{name}: seed {seed} has a near-tie, trying another")


if __name__ == "__main__":
    main()
