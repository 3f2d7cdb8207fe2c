#!/usr/bin/env python3
"""Build hearth's default-model corpus from Debian text packages.

Reads the installed packages (bible-kjv, jargon-text, fortunes, fortunes-min),
cleans them into documents and writes, into OUTDIR:

  train.jsonl   one JSON object per line: {"src", "key", "text"} for plain
                documents, {"src": "chat", "key", "messages": [...]} for the
                synthetic chat exchanges (built from training documents only;
                keys of continuation exchanges start with "continue.")
  val.jsonl     held-out plain documents (same fields, no chat)
  manifest.json counts, byte sizes, sha256 of both files, package versions

Documents, not lines, are split: a document goes to validation when
sha256("<src>:<key>") taken as a number is 0..4 mod 100 (about 5 %).
Everything is deterministic: sorted inputs, stable hashing, and the few random choices
(continuation exchanges) come from generators seeded with sha256 of the document key.
Only the Python standard library is used.
"""
import gzip
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import unicodedata

VAL_PERCENT = 5

BOOKS = [
    ("Ge", "Genesis"), ("Exo", "Exodus"), ("Lev", "Leviticus"), ("Num", "Numbers"),
    ("Deu", "Deuteronomy"), ("Josh", "Joshua"), ("Jdgs", "Judges"), ("Ruth", "Ruth"),
    ("1Sm", "1 Samuel"), ("2Sm", "2 Samuel"), ("1Ki", "1 Kings"), ("2Ki", "2 Kings"),
    ("1Chr", "1 Chronicles"), ("2Chr", "2 Chronicles"), ("Ezra", "Ezra"),
    ("Neh", "Nehemiah"), ("Est", "Esther"), ("Job", "Job"), ("Psa", "Psalms"),
    ("Prv", "Proverbs"), ("Eccl", "Ecclesiastes"), ("SSol", "Song of Solomon"),
    ("Isa", "Isaiah"), ("Jer", "Jeremiah"), ("Lam", "Lamentations"), ("Eze", "Ezekiel"),
    ("Dan", "Daniel"), ("Hos", "Hosea"), ("Joel", "Joel"), ("Amos", "Amos"),
    ("Obad", "Obadiah"), ("Jonah", "Jonah"), ("Mic", "Micah"), ("Nahum", "Nahum"),
    ("Hab", "Habakkuk"), ("Zep", "Zephaniah"), ("Hag", "Haggai"), ("Zec", "Zechariah"),
    ("Mal", "Malachi"), ("Mat", "Matthew"), ("Mark", "Mark"), ("Luke", "Luke"),
    ("John", "John"), ("Acts", "Acts"), ("Rom", "Romans"), ("1Cor", "1 Corinthians"),
    ("2Cor", "2 Corinthians"), ("Gal", "Galatians"), ("Eph", "Ephesians"),
    ("Phi", "Philippians"), ("Col", "Colossians"), ("1Th", "1 Thessalonians"),
    ("2Th", "2 Thessalonians"), ("1Tim", "1 Timothy"), ("2Tim", "2 Timothy"),
    ("Titus", "Titus"), ("Phmn", "Philemon"), ("Heb", "Hebrews"), ("Jas", "James"),
    ("1Pet", "1 Peter"), ("2Pet", "2 Peter"), ("1Jn", "1 John"), ("2Jn", "2 John"),
    ("3Jn", "3 John"), ("Jude", "Jude"), ("Rev", "Revelation"),
]
BOOK_NAME = dict(BOOKS)

FORTUNE_DIR = "/usr/share/games/fortunes"
FORTUNE_SKIP = {"ascii-art"}  # pictures, not text
JARGON = "/usr/share/doc/jargon-text/jargon.txt.gz"


def h100(s):
    return int(hashlib.sha256(s.encode("utf-8")).hexdigest()[:12], 16) % 100


def is_val(src, key):
    return h100(src + ":" + key) < VAL_PERCENT


def clean_text(t):
    t = unicodedata.normalize("NFC", t).replace("\u00a0", " ")
    lines = [ln.rstrip() for ln in t.replace("\r\n", "\n").split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    out = "\n".join(lines)
    out = re.sub(r"\n{3,}", "\n\n", out)
    return out


def bad_controls(t):
    return any((unicodedata.category(c) == "Cc" and c not in "\n\t") for c in t)


# ---------------------------------------------------------------- KJV
def kjv_docs():
    raw = subprocess.run(["bible", "-f", "-l", "0", "-m", "8192", "Gen1:1-Rev22:21"],
                         check=True, capture_output=True).stdout.decode("utf-8")
    rx = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")
    chapters = {}  # (book, chap) -> [verses]
    order = []
    for ln in raw.split("\n"):
        if not ln.strip():
            continue
        m = rx.match(ln)
        if not m:
            raise SystemExit("unexpected bible line: %r" % ln[:80])
        b, c, v, text = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4).strip()
        if b not in BOOK_NAME:
            raise SystemExit("unknown book %r" % b)
        k = (b, c)
        if k not in chapters:
            chapters[k] = []
            order.append(k)
        chapters[k].append((v, re.sub(r"\s+", " ", text)))
    nverses = sum(len(v) for v in chapters.values())
    if nverses != 31102 or len(order) != 1189:
        raise SystemExit("bible dump incomplete: %d verses, %d chapters" % (nverses, len(order)))
    for (b, c) in order:
        verses = chapters[(b, c)]
        yield {"src": "kjv", "key": "%s.%d" % (b, c), "book": BOOK_NAME[b], "chapter": c,
               "verses": verses, "text": "\n".join(t for _, t in verses)}


# ---------------------------------------------------------------- fortunes
def fortune_docs():
    seen = set()
    for name in sorted(os.listdir(FORTUNE_DIR)):
        p = os.path.join(FORTUNE_DIR, name)
        if name.endswith(".dat") or name.endswith(".u8") or os.path.islink(p) or name in FORTUNE_SKIP:
            continue
        raw = open(p, "rb").read().decode("utf-8")
        for i, chunk in enumerate(re.split(r"(?m)^%\n", raw)):
            t = clean_text(chunk)
            if len(t) < 8 or bad_controls(t):
                continue
            norm = " ".join(t.split()).lower()
            if norm in seen:
                continue
            seen.add(norm)
            yield {"src": "fortunes", "key": "%s.%d" % (name, i), "file": name, "text": t}


# ---------------------------------------------------------------- jargon
def unwrap_paragraphs(lines, indent=3):
    """Dedent by `indent`; join paragraphs whose lines all sit at that indent."""
    paras, cur = [], []
    for ln in lines + [""]:
        if ln.strip():
            cur.append(ln.rstrip())
        elif cur:
            paras.append(cur)
            cur = []
    out = []
    for p in paras:
        if all(len(l) - len(l.lstrip(" ")) == indent for l in p):
            out.append(" ".join(l.strip() for l in p))
        else:
            m = min(len(l) - len(l.lstrip(" ")) for l in p)
            out.append("\n".join(l[m:] for l in p))
    return out


def drop_headword_lists(paras):
    """The lexicon interleaves tables of contents (runs of short one-line
    paragraphs, one headword each). Remove every run of >= 6 of them."""
    short = [("\n" not in p and len(p) <= 40 and not p.startswith(":")) for p in paras]
    keep = [True] * len(paras)
    i = 0
    while i < len(paras):
        if short[i]:
            j = i
            while j < len(paras) and short[j]:
                j += 1
            if j - i >= 6:
                for k in range(i, j):
                    keep[k] = False
            i = j
        else:
            i += 1
    return [p for p, k in zip(paras, keep) if k]


def strip_xrefs(t):
    return re.sub(r"\{([^{}\n]+)\}", r"\1", t)


def jargon_docs():
    lines = gzip.open(JARGON, "rt", encoding="utf-8").read().replace("\u00a0", " ").split("\n")
    # Locate parts by their centred headings.
    def find(rx, start=0):
        for i in range(start, len(lines)):
            if re.match(rx, lines[i]):
                return i
        raise SystemExit("jargon: heading not found: " + rx)
    p1 = find(r"^\s+Part I\. Introduction\s*$")
    p2 = find(r"^\s+Part II\. The Jargon Lexicon\s*$", p1)
    p3 = find(r"^\s+Part III\. Appendices\s*$", p2)
    entry_rx = re.compile(r"^   :(.+?):(.*)$")
    first_entry = next(i for i in range(p2, p3) if entry_rx.match(lines[i]))

    # Prose parts (introduction, appendices): paragraphs grouped into chunks of ~3 kB.
    def prose(lo, hi, tag):
        paras = drop_headword_lists(unwrap_paragraphs(lines[lo + 1:hi]))
        paras = [strip_xrefs(p) for p in paras if not p.startswith(("Table of Contents",))]
        chunk, n, k = [], 0, 0
        for p in paras:
            if "│" in p or "─" in p or "═" in p:  # box-drawn tables
                continue
            chunk.append(p)
            n += len(p)
            if n >= 3000:
                yield {"src": "jargon", "key": "%s.%d" % (tag, k), "text": clean_text("\n\n".join(chunk))}
                chunk, n, k = [], 0, k + 1
        if chunk:
            yield {"src": "jargon", "key": "%s.%d" % (tag, k), "text": clean_text("\n\n".join(chunk))}

    yield from prose(p1, p2, "intro")
    # Lexicon entries.
    starts = [i for i in range(first_entry, p3) if entry_rx.match(lines[i])] + [p3]
    for a, b in zip(starts, starts[1:]):
        head = entry_rx.match(lines[a])
        word = head.group(1)
        paras = drop_headword_lists(unwrap_paragraphs(lines[a:b]))
        body = [strip_xrefs(p) for p in paras[1:]]
        if not body:
            continue
        headline = ":%s:%s" % (word, head.group(2).rstrip())
        yield {"src": "jargon", "key": "entry." + word, "word": word,
               "headline": headline, "body": clean_text("\n\n".join(body)),
               "text": clean_text(headline + "\n\n" + "\n\n".join(body))}
    yield from prose(p3, len(lines), "appendix")


# ---------------------------------------------------------------- chat
IDENTITY_Q = ["Who are you?", "What are you?", "Hello!", "Hi, who am I talking to?",
              "Introduce yourself.", "What can you do?", "What were you trained on?",
              "Tell me about yourself."]
IDENTITY_A = ("I am hearth's small default model, a tiny language model trained from "
              "scratch on the King James Bible, the Jargon File and a collection of "
              "fortune cookies. I can continue text in those styles, quote a verse, "
              "explain a bit of hacker slang or tell you a fortune.")
FORTUNE_Q = ["Tell me a fortune.", "Give me a fortune cookie.", "Say something wise.",
             "Tell me something funny.", "Give me a quote."]
JARGON_Q = ['What does "%s" mean?', "Define %s.", "What is %s?", 'Explain the jargon term "%s".']


def chat_docs(train):
    out = []
    for i, q in enumerate(IDENTITY_Q):
        for rep in range(4):  # a few copies so the answer is learnt
            out.append({"src": "chat", "key": "identity.%d.%d" % (i, rep),
                        "messages": [{"role": "user", "content": q},
                                     {"role": "assistant", "content": IDENTITY_A}]})
    for d in train:
        key = d["src"] + ":" + d["key"]
        r = h100("chat:" + key)
        if d["src"] == "kjv" and r < 50:
            v, t = d["verses"][r % len(d["verses"])]
            ref = "%s %d:%d" % (d["book"], d["chapter"], v)
            q = ["What does %s say?", "Quote %s.", "Recite %s for me."][r % 3] % ref
            out.append({"src": "chat", "key": "kjv." + d["key"] + ".%d" % v,
                        "messages": [{"role": "user", "content": q},
                                     {"role": "assistant", "content": t}]})
        elif d["src"] == "fortunes" and r < 15 and len(d["text"]) <= 600:
            q = FORTUNE_Q[r % len(FORTUNE_Q)]
            out.append({"src": "chat", "key": "fortune." + d["key"],
                        "messages": [{"role": "user", "content": q},
                                     {"role": "assistant", "content": d["text"]}]})
        elif d["src"] == "jargon" and "word" in d and r < 40:
            q = JARGON_Q[r % len(JARGON_Q)] % d["word"]
            out.append({"src": "chat", "key": "jargon." + d["key"],
                        "messages": [{"role": "user", "content": q},
                                     {"role": "assistant", "content": d["body"]}]})
    return out


# ---------------------------------------------------------------- continuations
# `hearth generate --prompt "In the beginning"` wraps the prompt as a user message (mlx-lm does the
# same), so the model must also learn, in chat form, to *continue* a text whose opening it is
# given. Each exchange: the user message is the opening words of a training document (a few words
# up to a sentence of a verse or chapter, a fortune, a jargon entry or "Jargon File" prose chunk;
# a bare lexicon headword like ":hack:"), the assistant message is the text that follows it in the
# document (a few verses, the rest of the fortune, the first paragraphs of the entry).
# Deterministic: every choice comes from a generator seeded with sha256 of the document key.
CONT_PREFIX = "continue."
FREQ_OPENINGS = 20      # most frequent 2-5-word openings per source (KJV verses, fortunes) ...
FREQ_PER_OPENING = 6    # ... each continued from up to this many documents of each source
# the prompts hearth's README, tests and model card use
NAMED_OPENINGS = ["In the beginning", "And it came to pass", "Blessed are", "You will"]


def rng_for(key):
    return random.Random(int(hashlib.sha256(("continue:" + key).encode("utf-8")).hexdigest()[:16], 16))


def words_with_ends(text):
    """(word, end offset) for each whitespace-separated word of text."""
    return [(m.group(0), m.end()) for m in re.finditer(r"\S+", text)]


def cut_length(rng, n, words, min_rest):
    """How many opening words the user gives: 45 % two to five words, 35 % six to twelve,
    20 % up to the end of the first clause or sentence. At least min_rest words stay."""
    r = rng.random()
    if r < 0.45:
        k = rng.randint(2, 5)
    elif r < 0.80:
        k = rng.randint(6, 12)
    else:
        k = next((i + 1 for i, (w, _) in enumerate(words) if i >= 2 and w[-1] in ".;:?!"), n)
    return max(1, min(k, n - min_rest))


def prompt_of(words, k):
    """The first k words, whitespace collapsed; a trailing , ; : is left out (users type
    "And it came to pass", not "And it came to pass,")."""
    p = " ".join(w for w, _ in words[:k])
    return p[:-1] if len(p) > 1 and p[-1] in ",;:" else p


def rest_after(text, end):
    return text[end:].lstrip(" \n")


def clip(text, target, hard):
    """A prefix of text that ends at a paragraph or line end once at least `target` characters
    are in (or the whole text); a line longer than `hard` is cut after its last sentence that
    fits."""
    out = ""
    for m in re.finditer(r"[^\n]*(\n+|$)", text):
        seg = m.group(0)
        if not seg:
            break
        if out and len(out) >= target:
            break
        out += seg
    out = out.rstrip()
    if len(out) > hard:
        cut = [m.end() for m in re.finditer(r"[.;?!][\"”’)]?(?=\s)", out[:hard])]
        out = out[:cut[-1]] if cut else out[:hard].rsplit(" ", 1)[0]
    return out.rstrip()


def exchange(key, prompt, answer):
    return {"src": "chat", "key": CONT_PREFIX + key,
            "messages": [{"role": "user", "content": prompt},
                         {"role": "assistant", "content": answer}]}


def kjv_continuation(d, vi, rng, k=None, tag=""):
    """User: the opening words of verse vi (index into d["verses"]); assistant: the rest of it
    and the following verses, about 150-450 characters, never past the chapter's end."""
    verses = d["verses"]
    words = words_with_ends(verses[vi][1])
    more = vi + 1 < len(verses)
    if k is None:
        k = cut_length(rng, len(words), words, 0 if more else 2)
    if k < 1 or k > len(words) or (k == len(words) and not more):
        return None
    rest = [rest_after(verses[vi][1], words[k - 1][1])] + [t for _, t in verses[vi + 1:]]
    answer = clip("\n".join(r for r in rest if r), rng.randint(150, 450), 700)
    if not answer:
        return None
    return exchange("kjv.%s.%d.%d%s" % (d["key"], verses[vi][0], k, tag), prompt_of(words, k), answer)


def text_continuation(d, text, rng, k=None, tag="", target=(150, 600), hard=900):
    """User: the opening words of text; assistant: what follows (clipped for long texts)."""
    words = words_with_ends(text)
    if len(words) < 3:
        return None
    if k is None:
        k = cut_length(rng, len(words), words, 2)
    if k < 1 or k > len(words) - 1:
        return None
    answer = clip(rest_after(text, words[k - 1][1]), rng.randint(*target), hard)
    if not answer:
        return None
    return exchange("%s.%s.%d%s" % (d["src"], d["key"], k, tag), prompt_of(words, k), answer)


def frequent_openings(segments, limit):
    """The `limit` most frequent openings of 2-5 words (trailing , ; : ignored) over segments,
    most frequent first; an opening is dropped if a longer one has the same count."""
    count = {}
    for s in segments:
        ws = s.split()
        for n in range(2, 6):
            if len(ws) > n:
                o = prompt_of([(w, 0) for w in ws], n)
                count[o] = count.get(o, 0) + 1
    items = sorted(((o, c) for o, c in count.items() if c >= 10), key=lambda kv: (-kv[1], kv[0]))
    keep = []
    for o, c in items:
        if any(c == c2 and o2.startswith(o + " ") for o2, c2 in items if c2 >= c):
            continue
        keep.append(o)
        if len(keep) == limit:
            break
    return keep


def continuation_docs(train):
    out = []
    kjv = [d for d in train if d["src"] == "kjv"]
    fortunes = [d for d in train if d["src"] == "fortunes" and len(d["text"]) <= 600]
    jargon = [d for d in train if d["src"] == "jargon"]
    for d in kjv:
        rng = rng_for("kjv:" + d["key"])
        # the chapter's first verse, and one other verse of the chapter
        out.append(kjv_continuation(d, 0, rng))
        if len(d["verses"]) > 1:
            out.append(kjv_continuation(d, rng.randrange(1, len(d["verses"])), rng))
    for d in fortunes:
        rng = rng_for("fortunes:" + d["key"])
        if rng.random() < 0.2:
            out.append(text_continuation(d, d["text"], rng))
    for d in jargon:
        rng = rng_for("jargon:" + d["key"])
        if "word" not in d:  # introduction / appendix prose chunk
            out.append(text_continuation(d, d["text"], rng, target=(300, 700)))
        elif rng.random() < 0.4:
            if rng.random() < 0.65:
                # the bare headword ":hack:"; the answer is the rest of the headline and the body
                head = ":%s:" % d["word"]
                answer = clip(d["text"][len(head):].lstrip(" \n"), rng.randint(250, 600), 900)
                if answer:
                    out.append(exchange("jargon.%s.head" % d["key"], head, answer))
            else:
                out.append(text_continuation(d, d["body"], rng, target=(200, 600)))
    # Bare openings: the most frequent verse / fortune openings, and the NAMED_OPENINGS (the
    # prompts hearth's README and tests use), each continued from a few documents that begin so.
    verse_refs = [(d, i) for d in kjv for i in range(len(d["verses"]))]
    kjv_open = frequent_openings([d["verses"][i][1] for d, i in verse_refs], FREQ_OPENINGS)
    fortune_open = frequent_openings([d["text"] for d in fortunes], FREQ_OPENINGS)
    for o in sorted(set(kjv_open + fortune_open + NAMED_OPENINGS)):
        k = len(o.split())
        hits = []
        for d, i in verse_refs:
            ws = words_with_ends(d["verses"][i][1])
            if len(ws) > k and prompt_of(ws, k) == o:
                hits.append(("kjv", d, i))
        for d in fortunes:
            ws = words_with_ends(d["text"])
            if len(ws) > k + 1 and prompt_of(ws, k) == o:
                hits.append(("fortunes", d, None))
        hits.sort(key=lambda h: hashlib.sha256(("opening:%s:%s:%s" % (o, h[1]["key"], h[2])).encode()).hexdigest())
        kjv_hits = [h for h in hits if h[0] == "kjv"][:FREQ_PER_OPENING]
        fortune_hits = [h for h in hits if h[0] == "fortunes"]
        # A named opening that the Bible has ("In the beginning") leans to the Bible: each verse
        # is used twice (a shorter and a longer answer) and at most 3 fortunes join them.
        named = o in NAMED_OPENINGS
        fortune_hits = fortune_hits[:3 if (named and kjv_hits) else FREQ_PER_OPENING]
        for src, d, i in kjv_hits + fortune_hits:
            rng = rng_for("opening:%s:%s:%s" % (o, d["key"], i))
            if src == "kjv":
                out.append(kjv_continuation(d, i, rng, k=k, tag=".open"))
                if named:
                    out.append(kjv_continuation(d, i, rng, k=k, tag=".open2"))
            else:
                out.append(text_continuation(d, d["text"], rng, k=k, tag=".open"))
    seen, uniq = set(), []
    for e in out:
        if e is None:
            continue
        sig = (e["messages"][0]["content"], e["messages"][1]["content"])
        if e["key"] in seen or sig in seen:
            continue
        seen.add(e["key"])
        seen.add(sig)
        uniq.append(e)
    return uniq, {"kjv_openings": kjv_open, "fortune_openings": fortune_open}


def pkg_version(p):
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], check=True,
                              capture_output=True, text=True).stdout
    except Exception:
        return None


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "build/default_model_corpus"
    os.makedirs(outdir, exist_ok=True)
    docs = list(kjv_docs()) + list(jargon_docs()) + list(fortune_docs())
    keys = set()
    for d in docs:
        k = d["src"] + ":" + d["key"]
        if k in keys:
            raise SystemExit("duplicate key " + k)
        keys.add(k)
        if not d["text"].strip():
            raise SystemExit("empty doc " + k)
    train = [d for d in docs if not is_val(d["src"], d["key"])]
    val = [d for d in docs if is_val(d["src"], d["key"])]
    chat = chat_docs(train)
    cont, openings = continuation_docs(train)
    chat += cont

    def dump(path, rows):
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for r in rows:
                o = {"src": r["src"], "key": r["key"]}
                if "messages" in r:
                    o["messages"] = r["messages"]
                else:
                    o["text"] = r["text"]
                f.write(json.dumps(o, ensure_ascii=False, sort_keys=True) + "\n")
        return hashlib.sha256(open(path, "rb").read()).hexdigest()

    sha_train = dump(os.path.join(outdir, "train.jsonl"), train + chat)
    sha_val = dump(os.path.join(outdir, "val.jsonl"), val)

    def stats(rows):
        s = {}
        for r in rows:
            n = len(r["text"].encode()) if "text" in r else sum(len(m["content"].encode()) for m in r["messages"])
            a = s.setdefault(r["src"], {"docs": 0, "bytes": 0})
            a["docs"] += 1
            a["bytes"] += n
        return s

    manifest = {
        "val_rule": "sha256('<src>:<key>') -> first 12 hex digits as integer, mod 100 < %d" % VAL_PERCENT,
        "packages": {p: pkg_version(p) for p in ["bible-kjv", "bible-kjv-text", "jargon-text", "fortunes", "fortunes-min"]},
        "train": {"sha256": sha_train, "by_source": stats(train + chat)},
        "val": {"sha256": sha_val, "by_source": stats(val)},
        "chat_exchanges": {"total": len(chat), "continuations": len(cont),
                           "continuations_by_source": {s: sum(1 for e in cont if e["key"].startswith(CONT_PREFIX + s + "."))
                                                       for s in ["kjv", "fortunes", "jargon"]},
                           "bare_openings": openings},
    }
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    print(json.dumps(manifest, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
