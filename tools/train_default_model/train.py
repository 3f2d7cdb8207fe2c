#!/usr/bin/env python3
"""Train hearth's bundled default model (runs on the GPU machine).

Input:  a corpus folder written by prepare_corpus.py (train.jsonl, val.jsonl, manifest.json).
Output: OUT/model/          a Hugging Face folder (config.json, model.safetensors (bf16),
                            tokenizer.json, tokenizer_config.json, generation_config.json, README.md)
        OUT/default_model_golden.json   float32 reference outputs for hearth's tests
        OUT/train_log.txt   the full log (also printed)

Steps: byte-level BPE tokenizer (HF tokenizers) -> LlamaForCausalLM (transformers) trained
with PyTorch (bf16 autocast, AdamW, warm-up + cosine) -> validation loss vs a unigram
baseline -> save_pretrained -> reload from disk in float32 on the CPU -> golden fixture and
sample generations -> model card.

Everything is seeded; the data order is a pure function of the seed and epoch number.
"""
import argparse
import copy
import hashlib
import json
import math
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
EOT, IM_START, IM_END = 0, 1, 2
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CONTINUATION_PREFIX = "continue."  # keys of prepare_corpus.py's continuation exchanges

LOG_LINES = []


def log(*a):
    s = " ".join(str(x) for x in a)
    LOG_LINES.append(s)
    print(s, flush=True)


def sha256_file(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def read_jsonl(p):
    with open(p, encoding="utf-8") as f:
        return [json.loads(l) for l in f]


# ----------------------------------------------------------------------------- tokenizer
def train_tokenizer(train_rows, vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = []
    for r in train_rows:
        if r["key"].startswith(CONTINUATION_PREFIX):
            # continuation exchanges only repeat training text; leaving them out keeps the
            # tokenizer byte-identical to the one trained before they were added
            continue
        if "text" in r:
            texts.append(r["text"])
        else:
            for m in r["messages"]:
                texts.append(m["role"] + "\n" + m["content"])
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    # add_special_tokens=True (HF's default) puts <|endoftext|> in front: it is the BOS.
    tok.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A",
        pair="<|endoftext|> $A <|endoftext|> $B:1",
        special_tokens=[("<|endoftext|>", EOT)],
    )
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    return tok


def wrap_tokenizer(tok, ctx):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=ctx,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )


def encode_rows(rows, tok, hf_tok):
    """Each document becomes [<|endoftext|>] + tokens; chat documents are rendered with the
    chat template (which itself starts with <|endoftext|>)."""
    plain_idx = [i for i, r in enumerate(rows) if "text" in r]
    out = [None] * len(rows)
    encs = tok.encode_batch([rows[i]["text"] for i in plain_idx], add_special_tokens=False)
    for i, e in zip(plain_idx, encs):
        out[i] = [EOT] + e.ids
    chat_idx = [i for i, r in enumerate(rows) if "messages" in r]
    rendered = [hf_tok.apply_chat_template(rows[i]["messages"], tokenize=False) for i in chat_idx]
    encs = tok.encode_batch(rendered, add_special_tokens=False)
    for i, e in zip(chat_idx, encs):
        assert e.ids[0] == EOT and e.ids[1] == IM_START, e.ids[:4]
        out[i] = e.ids
    return out


# ----------------------------------------------------------------------------- model
def make_config(a, vocab):
    from transformers import LlamaConfig

    kw = dict(
        vocab_size=vocab,
        hidden_size=a.dim,
        intermediate_size=a.ffn,
        num_hidden_layers=a.layers,
        num_attention_heads=a.heads,
        num_key_value_heads=a.kv_heads,
        head_dim=a.dim // a.heads,
        hidden_act="silu",
        max_position_embeddings=a.ctx,
        rms_norm_eps=1e-5,
        initializer_range=0.02,
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=a.attn_dropout,
        bos_token_id=EOT,
        eos_token_id=EOT,
        pad_token_id=EOT,
        use_cache=True,
    )
    try:
        cfg = LlamaConfig(rope_parameters={"rope_type": "default", "rope_theta": a.rope_theta}, **kw)
    except TypeError:
        cfg = LlamaConfig(rope_theta=a.rope_theta, **kw)
    return cfg


def lr_at(step, total, a):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    p = (step - a.warmup) / max(1, total - a.warmup)
    return a.lr * (a.min_lr_frac + (1 - a.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def epoch_batches(doc_ids, epoch, a):
    """Deterministic: shuffle documents with seed+epoch, concatenate, cut into ctx+1 chunks
    (the chunk grid starts at an epoch-dependent offset), shuffle chunks, batch them."""
    g = torch.Generator().manual_seed(a.seed * 1000 + epoch)
    perm = torch.randperm(len(doc_ids), generator=g).tolist()
    stream = []
    for i in perm:
        stream.extend(doc_ids[i])
    L = a.ctx + 1
    off = int(torch.randint(0, a.ctx, (1,), generator=g))
    t = torch.tensor(stream[off:], dtype=torch.long)
    n = t.numel() // L
    chunks = t[: n * L].view(n, L)
    chunks = chunks[torch.randperm(n, generator=g)]
    nb = n // a.batch
    return [chunks[b * a.batch:(b + 1) * a.batch] for b in range(nb)]


@torch.no_grad()
def evaluate(model, stream, ctx, device, bs=32):
    """Mean NLL (nats/token) over every position of the stream: non-overlapping windows of
    ctx inputs, the last one partial. Returns (mean_nll, n_targets)."""
    model.eval()
    t = torch.tensor(stream, dtype=torch.long)
    total, count = 0.0, 0
    starts = list(range(0, t.numel() - 1, ctx))
    for b in range(0, len(starts), bs):
        group = starts[b:b + bs]
        full = [s for s in group if s + ctx + 1 <= t.numel()]
        part = [s for s in group if s + ctx + 1 > t.numel()]
        if full:
            x = torch.stack([t[s:s + ctx] for s in full]).to(device)
            y = torch.stack([t[s + 1:s + ctx + 1] for s in full]).to(device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(input_ids=x, use_cache=False).logits
            total += F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").item()
            count += y.numel()
        for s in part:
            x = t[s:-1].unsqueeze(0).to(device)
            y = t[s + 1:].unsqueeze(0).to(device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(input_ids=x, use_cache=False).logits
            total += F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").item()
            count += y.numel()
    model.train()
    return total / count, count


def unigram_nll(train_docs, stream, vocab):
    counts = torch.zeros(vocab, dtype=torch.float64)
    for d in train_docs:
        counts += torch.bincount(torch.tensor(d, dtype=torch.long), minlength=vocab).double()
    p = (counts + 1.0) / (counts.sum() + vocab)  # add-one smoothing
    y = torch.tensor(stream[1:], dtype=torch.long)  # the same targets the model is scored on
    return float(-torch.log(p[y]).mean()), int(counts.sum())


# ----------------------------------------------------------------------------- golden
@torch.no_grad()
def golden(folder, val_stream, args):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(min(16, os.cpu_count() or 1))
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    model = model.float().eval()
    assert next(model.parameters()).dtype == torch.float32

    def greedy(ids, n):
        ids = list(ids)
        steps = []
        for _ in range(n):
            logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].double()
            top = torch.topk(logits, 10)
            nxt = int(top.indices[0])
            steps.append({
                "id": nxt,
                "top2_margin": float(top.values[0] - top.values[1]),
                "top10_ids": [int(i) for i in top.indices],
                "top10_logits": [round(float(v), 5) for v in top.values],
            })
            ids.append(nxt)
        return steps

    prompts = [
        {"name": "genesis", "kind": "text", "prompt": "In the beginning"},
        {"name": "came_to_pass", "kind": "text", "prompt": "And it came to pass"},
        {"name": "fortune", "kind": "text", "prompt": "You will"},
        {"name": "jargon", "kind": "text", "prompt": ":kludge:"},
        {"name": "chat_fortune", "kind": "chat", "messages": [{"role": "user", "content": "Tell me a fortune."}]},
    ]
    cases = []
    for p in prompts:
        if p["kind"] == "text":
            enc = tok(p["prompt"])  # HF default: add_special_tokens=True
            ids = enc["input_ids"]
            how = "tokenizer(prompt) with add_special_tokens=True (the post-processor prepends <|endoftext|>)"
            rendered = p["prompt"]
        else:
            rendered = tok.apply_chat_template(p["messages"], tokenize=False, add_generation_prompt=True)
            ids = tok(rendered, add_special_tokens=False)["input_ids"]
            how = "apply_chat_template(add_generation_prompt=True, tokenize=False), then tokenizer(text, add_special_tokens=False)"
        steps = greedy(ids, args.golden_tokens)
        gen = [s["id"] for s in steps]
        # cross-check with generate() (greedy; it may stop at an EOS, so compare the prefix)
        ref = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=args.golden_tokens, pad_token_id=EOT)
        gen_ref = ref[0, len(ids):].tolist()
        gen_match = gen_ref == gen[:len(gen_ref)] and (len(gen_ref) == len(gen) or gen_ref[-1] in (EOT, IM_END))
        eos_pos = next((i for i, t in enumerate(gen) if t in (EOT, IM_END)), None)
        case = dict(p)
        case.update({
            "rendered_prompt": rendered,
            "encoding": how,
            "prompt_ids": ids,
            "greedy_ids": gen,
            "greedy_text": tok.decode(gen, skip_special_tokens=False),
            "first_eos_index": eos_pos,
            "min_top2_margin": min(s["top2_margin"] for s in steps),
            "steps": steps,
            "generate_matches_manual_loop": gen_match,
        })
        cases.append(case)
        log("golden %-13s ids=%s margin_min=%.4f generate_match=%s\n  -> %r" % (
            p["name"], ids, case["min_top2_margin"], gen_match, case["greedy_text"]))

    # Perplexity over a fixed held-out slice: the first W*S tokens of the validation stream
    # (val.jsonl documents in file order, each prefixed by <|endoftext|>), cut into W
    # independent windows of S tokens; each window predicts its tokens 1..S-1.
    S, W = args.golden_window, args.golden_windows
    windows, nll_sum, n = [], 0.0, 0
    for w in range(W):
        ids = val_stream[w * S:(w + 1) * S]
        logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].double()
        lp = torch.log_softmax(logits[:-1], dim=-1)
        nll = -lp.gather(1, torch.tensor(ids[1:]).unsqueeze(1)).squeeze(1)
        windows.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
                        "nll_sum": float(nll.sum()), "n_predicted": len(ids) - 1,
                        "mean_nll": float(nll.mean()), "ppl": float(torch.exp(nll.mean()))})
        nll_sum += float(nll.sum())
        n += len(ids) - 1
    ppl = {"window_tokens": S, "windows": W, "source": "val.jsonl documents in file order, each prefixed by <|endoftext|> (id 0), concatenated; first W*S tokens",
           "scoring": "each window is evaluated alone (positions 0..S-1, no context from earlier windows); loss on tokens 1..S-1 of each window; ppl = exp(sum nll / sum predicted)",
           "mean_nll": nll_sum / n, "ppl": math.exp(nll_sum / n), "items": windows}
    log("golden ppl over %d windows of %d: mean_nll=%.5f ppl=%.4f" % (W, S, nll_sum / n, math.exp(nll_sum / n)))
    return tok, model, cases, ppl


@torch.no_grad()
def samples(tok, model, seed):
    out = []
    for prompt in ["In the beginning", "And it came to pass", "The hacker", "You will", "Blessed are"]:
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        g = model.generate(ids, do_sample=False, max_new_tokens=60, eos_token_id=[EOT, IM_END], pad_token_id=EOT)
        greedy_text = tok.decode(g[0, ids.shape[1]:], skip_special_tokens=True)
        torch.manual_seed(seed)
        s = model.generate(ids, do_sample=True, temperature=0.8, top_p=0.95, top_k=0, max_new_tokens=60,
                           eos_token_id=[EOT, IM_END], pad_token_id=EOT)
        sampled_text = tok.decode(s[0, ids.shape[1]:], skip_special_tokens=True)
        out.append({"prompt": prompt, "greedy": greedy_text, "sampled": sampled_text})
    # Chat: what `hearth generate --prompt Q` prints (chat template on, greedy, 100 tokens at most).
    for q in ["In the beginning", "And it came to pass", "You will", ":hack:", "Who are you?",
              "Tell me a fortune.", "What is a hacker?", 'What does "kludge" mean?', "Quote John 3:16."]:
        text = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        g = model.generate(ids, do_sample=False, max_new_tokens=100, eos_token_id=[EOT, IM_END], pad_token_id=EOT)
        out.append({"chat": q, "greedy": tok.decode(g[0, ids.shape[1]:], skip_special_tokens=True)})
    return out


# ----------------------------------------------------------------------------- card
def write_card(folder, info):
    m = info
    samp = "\n\n".join(
        ("**Prompt** `%s`\n\n- greedy: %s\n- sampled (T=0.8, top-p 0.95, seed %d): %s" % (
            s["prompt"], json.dumps(s["greedy"], ensure_ascii=False), m["seed"], json.dumps(s["sampled"], ensure_ascii=False)))
        if "prompt" in s else
        ("**Chat** user: `%s`\n\n- greedy reply: %s" % (s["chat"], json.dumps(s["greedy"], ensure_ascii=False)))
        for s in m["samples"])
    src_rows = "\n".join("| %s | %d | %d | %d | %d |" % (k, v["docs"], v["bytes"], m["val_by_source"].get(k, {}).get("docs", 0),
                                                       m["val_by_source"].get(k, {}).get("bytes", 0))
                         for k, v in sorted(m["train_by_source"].items()))
    ce = m.get("chat", {})
    chat_line = ""
    if ce:
        cb = ce.get("continuations_by_source", {})
        chat_line = ("Chat exchanges: %d, of which %d continuations (%d from KJV verses, %d from fortunes, %d from the "
                     "Jargon File): the user message is the opening words of a training document (two words up to a "
                     "sentence; a bare headword such as `:hack:`; frequent openings such as \"And it came to pass\" or "
                     "\"You will\" from several documents each), the assistant message is the text that follows. The "
                     "self-description answers only its 8 questions (4 copies each); the tokenizer is trained without "
                     "the continuations (they repeat training text)." % (
                         ce["total"], ce["continuations"], cb.get("kjv", 0), cb.get("fortunes", 0), cb.get("jargon", 0)))
    text = f"""---
license: other
license_name: public-domain-and-bsd-mixed
language: en
library_name: transformers
pipeline_tag: text-generation
---

# hearth-default (Llama, {m['params'] / 1e6:.1f}M parameters)

The small default model that ships with **hearth**, so that `hearth generate` works on a machine
with no network. It was trained from scratch by the hearth project on public-domain / freely
redistributable English text from Debian packages. It is a toy: it writes text in the style of
the King James Bible, the Jargon File and Unix fortune cookies, and knows a few chat tricks
(continue a text whose opening you give it, quote a verse, define a jargon term, tell a fortune,
say what it is). It knows nothing else and makes things up.

## Architecture

`LlamaForCausalLM` (transformers {m['transformers']}): {m['layers']} layers, hidden {m['dim']},
{m['heads']} attention heads of dim {m['dim'] // m['heads']} with {m['kv_heads']} key/value heads
(grouped-query attention), SwiGLU MLP {m['ffn']}, RMSNorm (eps 1e-5), RoPE (theta {m['rope_theta']:g}),
context {m['ctx']} tokens, vocabulary {m['vocab']}, input and output embeddings tied.
{m['params']:,} parameters; weights stored in bfloat16 (`model.safetensors`, {m['safetensors_bytes']:,} bytes).

## Tokenizer

Byte-level BPE (GPT-2 style pre-tokenizer regex, no normalizer), {m['vocab']} tokens, trained with
HF `tokenizers` {m['tokenizers']} on the training split. Special tokens: `<|endoftext|>` (id 0) is
BOS, EOS and padding; `<|im_start|>` (1) and `<|im_end|>` (2) are ChatML markers.
Encoding with `add_special_tokens=True` (HF's default) prepends `<|endoftext|>` (the tokenizer's
post-processor does it; there is no `add_bos_token` flag). Every training document started with
`<|endoftext|>`, so a prompt encoded that way starts "a new document".
The chat template (ChatML, in `chat_template.jinja` and repeated in `tokenizer_config.json`) starts
with `{{{{ bos_token }}}}` and is meant to be tokenized with `add_special_tokens=False`. `generation_config.json` stops on `<|endoftext|>` or `<|im_end|>`.

## Data

Built by `tools/train_default_model/prepare_corpus.py` from these Debian 12 packages:

| source | Debian package | licence |
|---|---|---|
| King James Bible (1611; 66 books, 31,102 verses, one verse per line, no verse numbers; a document is a chapter) | `bible-kjv` {m['pkg'].get('bible-kjv')} / `bible-kjv-text` | public domain (in the UK the Crown's letters patent still apply); Debian packaging GPL-2+ |
| The Jargon File 4.4.7 (lexicon entries, introduction and appendices; `{{cross-references}}` braces removed, paragraphs unwrapped) | `jargon-text` {m['pkg'].get('jargon-text')} | public domain |
| Unix fortune cookies (all files of `fortunes` and `fortunes-min` except `ascii-art`, exact duplicates removed; a document is one fortune) | `fortunes`, `fortunes-min` {m['pkg'].get('fortunes')} | BSD licence of the fortune-mod collection as distributed in Debian main; individual quotations are short quotes of their authors |
| Synthetic chat exchanges built only from *training* documents: continuations (the user gives the opening words of a document, the assistant continues it), verse look-ups, jargon definitions, fortunes, and one fixed self-description | — | derived from the above |

Split: a document is held out when `sha256("<src>:<key>")` (first 12 hex digits) mod 100 < 5.

| source | train docs | train bytes | val docs | val bytes |
|---|---|---|---|---|
{src_rows}

{chat_line}

Training tokens per epoch: {m['train_tokens']:,}; validation tokens: {m['val_tokens']:,} ({m['val_bytes']:,} bytes of text).

## Training

PyTorch {m['torch']} on {m['device']}; bf16 autocast with float32 master weights; AdamW
(betas 0.9/0.95, weight decay {m['wd']} on matrices and embeddings, none on norms), peak LR
{m['lr']:g}, {m['warmup']} warm-up steps then cosine decay to {m['min_lr_frac']:g}x; gradient clipping 1.0;
attention dropout {m['attn_dropout']} during training (the saved config says 0.0: it plays no part in inference);
batch {m['batch']} x {m['ctx']} tokens; {m['epochs']} epochs = {m['steps']} steps = {m['tokens_seen']:,} tokens seen;
seed {m['seed']}. Each epoch shuffles documents with a seeded generator, concatenates them and
cuts {m['ctx'] + 1}-token chunks (documents are packed; attention is not masked between them).
Training took {m['train_seconds']:.0f} s at about {m['tok_per_s']:,.0f} tokens/s. The checkpoint kept is the one after epoch {m['kept_epoch']} ({m['select']}).

## Evaluation (validation split, every token, windows of {m['ctx']})

| model | loss (nats/token) | perplexity | bits/byte |
|---|---|---|---|
| this model (bf16 autocast) | {m['val_loss']:.4f} | {math.exp(m['val_loss']):.2f} | {m['val_bpb']:.3f} |
| unigram baseline (train-split token frequencies, add-one) | {m['unigram_loss']:.4f} | {math.exp(m['unigram_loss']):.1f} | {m['unigram_bpb']:.3f} |

Per epoch (validation loss): {', '.join('%d: %.4f' % (e, l) for e, l in m['val_curve'])}.

Float32 reference (reloaded from this folder, CPU, eager attention), first 4 windows of 256 validation
tokens: perplexity {m['golden_ppl']:.3f} (kept in `tests/data/default_model_golden.json` in the hearth repository).

## Samples (float32, this folder reloaded)

{samp}

## Reproduce

See `docs/default_model.md` in the hearth repository: `tools/train_default_model/prepare_corpus.sh`
on Debian, then on one GPU `{m['cmdline']}`. Seeded (weights initialisation, data order, dropout);
the tokenizer came out byte-identical on every run, while GPU reductions (cuDNN attention backward)
may still make weights differ in the last bits between runs.
"""
    with open(os.path.join(folder, "README.md"), "w") as f:
        f.write(text)


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--ffn", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--attn-dropout", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--max-steps", type=int, default=0, help="stop early (smoke tests)")
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--select", choices=["best", "last"], default="best",
                    help="keep the epoch with the lowest validation loss, or the last one")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--golden-tokens", type=int, default=32)
    ap.add_argument("--golden-window", type=int, default=256)
    ap.add_argument("--golden-windows", type=int, default=4)
    a = ap.parse_args()

    import tokenizers
    import transformers
    from transformers import GenerationConfig, LlamaForCausalLM

    t_start = time.time()
    os.makedirs(a.out, exist_ok=True)
    folder = os.path.join(a.out, "model")
    os.makedirs(folder, exist_ok=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cuda.matmul.allow_tf32 = True
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    devname = torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor()
    log("argv:", " ".join(sys.argv))
    log("torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__,
        "python", platform.python_version(), "device", devname)

    manifest = json.load(open(os.path.join(a.data, "manifest.json")))
    train_rows = read_jsonl(os.path.join(a.data, "train.jsonl"))
    val_rows = read_jsonl(os.path.join(a.data, "val.jsonl"))
    log("corpus train.jsonl sha256", sha256_file(os.path.join(a.data, "train.jsonl")),
        "val.jsonl sha256", sha256_file(os.path.join(a.data, "val.jsonl")))

    t0 = time.time()
    tok = train_tokenizer(train_rows, a.vocab)
    hf_tok = wrap_tokenizer(tok, a.ctx)
    train_docs = encode_rows(train_rows, tok, hf_tok)
    val_docs = encode_rows(val_rows, tok, hf_tok)
    val_stream = [t for d in val_docs for t in d]
    val_bytes = sum(len(r["text"].encode("utf-8")) for r in val_rows)
    n_train = sum(len(d) for d in train_docs)
    log("tokenizer: vocab %d, trained+encoded in %.1fs; train tokens/epoch %d (%.2f bytes/token), val tokens %d" % (
        tok.get_vocab_size(), time.time() - t0, n_train,
        sum(len((r.get("text") or "").encode()) for r in train_rows) / max(1, sum(len(d) for d, r in zip(train_docs, train_rows) if "text" in r)),
        len(val_stream)))
    uni, _ = unigram_nll(train_docs, val_stream, a.vocab)
    log("unigram baseline on val: %.4f nats/token, ppl %.1f" % (uni, math.exp(uni)))

    cfg = make_config(a, tok.get_vocab_size())
    torch.manual_seed(a.seed)
    model = LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa").to(device)
    log("attn implementation:", model.config._attn_implementation)
    n_params = sum(p.numel() for p in model.parameters())
    log("params: %d (%.2fM)" % (n_params, n_params / 1e6))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    nodecay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8, fused=device.type == "cuda")
    fwd = torch.compile(model) if a.compile else model

    plan = [epoch_batches(train_docs, e, a) for e in range(a.epochs)]
    steps_per_epoch = len(plan[0])
    total = sum(len(p) for p in plan)
    if a.max_steps:
        total = min(total, a.max_steps)
    log("steps/epoch %d, total steps %d, tokens/step %d" % (steps_per_epoch, total, a.batch * a.ctx))

    model.train()
    step, tokens_seen = 0, 0
    val_curve, best = [], (float("inf"), None, -1)
    t_train = time.time()
    t_last, tok_last = time.time(), 0
    done = False
    for epoch in range(a.epochs):
        for xb in plan[epoch]:
            lr = lr_at(step, total, a)
            for g in opt.param_groups:
                g["lr"] = lr
            xb = xb.to(device, non_blocking=True)
            x, y = xb[:, :-1], xb[:, 1:]
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = fwd(input_ids=x, use_cache=False).logits
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            tokens_seen += x.numel()
            if step % a.log_every == 0 or step == 1 or step == total:
                l = loss.item()
                now = time.time()
                tps = (tokens_seen - tok_last) / (now - t_last)
                t_last, tok_last = now, tokens_seen
                log("step %5d/%d ep %d loss %.4f gnorm %.3f lr %.2e tok/s %.0f elapsed %.1fs" % (
                    step, total, epoch, l, float(gn), lr, tps, now - t_train))
            if step >= total:
                done = True
                break
        vl, _ = evaluate(model, val_stream, a.ctx, device)
        val_curve.append((epoch + 1, vl))
        log("epoch %d done: step %d tokens %d val_loss %.4f ppl %.2f (%.1fs)" % (
            epoch + 1, step, tokens_seen, vl, math.exp(vl), time.time() - t_train))
        if vl < best[0]:
            best = (vl, copy.deepcopy({k: v.detach().clone() for k, v in model.state_dict().items()}), epoch + 1)
        if done:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_seconds = time.time() - t_train
    kept_epoch = val_curve[-1][0]
    if a.select == "best" and best[2] != val_curve[-1][0]:
        model.load_state_dict(best[1])
        kept_epoch = best[2]
    val_loss, n_val = evaluate(model, val_stream, a.ctx, device)
    bpb = val_loss * n_val / math.log(2) / val_bytes
    ubpb = uni * n_val / math.log(2) / val_bytes
    log("final: kept epoch %d, val_loss %.4f ppl %.3f bpb %.4f | unigram %.4f ppl %.1f bpb %.4f | train %.1fs, %.0f tok/s" % (
        kept_epoch, val_loss, math.exp(val_loss), bpb, uni, math.exp(uni), ubpb, train_seconds, tokens_seen / train_seconds))

    # ---- save
    model.config.attention_dropout = 0.0
    model.config.use_cache = True
    model.to(torch.bfloat16).cpu().save_pretrained(folder, safe_serialization=True)
    hf_tok.save_pretrained(folder)
    gen = GenerationConfig(bos_token_id=EOT, eos_token_id=[EOT, IM_END], pad_token_id=EOT)
    gen.save_pretrained(folder)
    # tokenizer_config.json carries the chat template too (older loaders read it from there).
    tc_path = os.path.join(folder, "tokenizer_config.json")
    tc = json.load(open(tc_path))
    if tc.get("chat_template") != CHAT_TEMPLATE:
        tc["chat_template"] = CHAT_TEMPLATE
        json.dump(tc, open(tc_path, "w"), indent=2, ensure_ascii=False)
    log("saved:", sorted(os.listdir(folder)))
    log("tokenizer_config.json:", json.dumps(tc, ensure_ascii=False)[:1500])
    del model, fwd, opt, best
    if device.type == "cuda":
        torch.cuda.empty_cache()

    # ---- golden fixture (float32, CPU, reloaded from disk)
    t0 = time.time()
    gtok, gmodel, cases, ppl = golden(folder, val_stream, a)
    smp = samples(gtok, gmodel, a.seed)
    for s in smp:
        log("sample", json.dumps(s, ensure_ascii=False))
    log("golden+samples took %.1fs" % (time.time() - t0))
    files = {f: {"bytes": os.path.getsize(os.path.join(folder, f)), "sha256": sha256_file(os.path.join(folder, f))}
             for f in sorted(os.listdir(folder)) if f != "README.md"}
    fixture = {
        "about": "Float32 reference outputs of hearth's default model (models/default), computed with HF transformers "
                 "on the saved folder reloaded from disk: AutoModelForCausalLM.from_pretrained(dtype=float32, "
                 "attn_implementation='eager'), on the CPU (no TF32). Greedy = argmax of the last position's logits, "
                 "full recomputation each step, exactly golden_tokens steps, not stopping at EOS.",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
        "model_files": files,
        "special_tokens": {"<|endoftext|>": EOT, "<|im_start|>": IM_START, "<|im_end|>": IM_END},
        "golden_tokens": a.golden_tokens,
        "cases": cases,
        "perplexity": ppl,
    }
    with open(os.path.join(a.out, "default_model_golden.json"), "w") as f:
        json.dump(fixture, f, indent=1, ensure_ascii=False)
        f.write("\n")

    info = dict(
        params=n_params, transformers=transformers.__version__, tokenizers=tokenizers.__version__, torch=torch.__version__,
        layers=a.layers, dim=a.dim, heads=a.heads, kv_heads=a.kv_heads, ffn=a.ffn, rope_theta=a.rope_theta, ctx=a.ctx,
        vocab=tok.get_vocab_size(), safetensors_bytes=os.path.getsize(os.path.join(folder, "model.safetensors")),
        pkg=manifest.get("packages", {}), train_by_source=manifest["train"]["by_source"],
        val_by_source=manifest["val"]["by_source"], chat=manifest.get("chat_exchanges", {}), train_tokens=n_train, val_tokens=len(val_stream), val_bytes=val_bytes,
        device=devname, wd=a.wd, lr=a.lr, warmup=a.warmup, min_lr_frac=a.min_lr_frac, attn_dropout=a.attn_dropout,
        batch=a.batch, epochs=a.epochs, steps=step, tokens_seen=tokens_seen, seed=a.seed, train_seconds=train_seconds,
        tok_per_s=tokens_seen / train_seconds, kept_epoch=kept_epoch,
        select="lowest validation loss" if a.select == "best" else "last epoch",
        val_loss=val_loss, val_bpb=bpb, unigram_loss=uni, unigram_bpb=ubpb, val_curve=val_curve,
        golden_ppl=ppl["ppl"], samples=smp,
        cmdline="python3 train.py " + " ".join(sys.argv[1:]),
    )
    write_card(folder, info)
    json.dump(info, open(os.path.join(a.out, "run_info.json"), "w"), indent=1, ensure_ascii=False)
    log("total wall %.1fs" % (time.time() - t_start))
    with open(os.path.join(a.out, "train_log.txt"), "w") as f:
        f.write("\n".join(LOG_LINES) + "\n")


if __name__ == "__main__":
    main()
