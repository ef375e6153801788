#!/usr/bin/env python3
"""gen_tokenizer_fixtures.py — reference ids from Hugging Face `tokenizers`
for tests/test_tokenizer.c.

Why: lq's tokenizer (libquant/tokenizer.c) must give exactly HF's ids, so the
tests compare against ids produced by the real HF implementation, stored as
small JSON fixtures under tests/data/tokenizer/:

  tiny_*.json          small tokenizer.json files (a ~300-entry byte-level BPE
                       trained here on a fixed paragraph, in several pipeline
                       variants; a SentencePiece-style Metaspace/byte-fallback
                       one), so CI tests byte-level BPE, added tokens, Split
                       behaviors, Metaspace, byte fallback without big data
  tiny_ids.json        {fixture: [{text, ids, ids_plain, decoded, decoded_skip}]}
  stories260K_ids.json edge cases for $LQ_SHARED/models/stories260K/tokenizer.json
  smollm2_ids.json     SmolLM2-135M-Instruct (from its GGUF): ~30 texts and the
                       id count + FNV-1a hash of all of WikiText-2 test

Usage (needs `pip install tokenizers gguf numpy`):
  python3 datasets/gen_tokenizer_fixtures.py [--shared ../shared]
         [--gguf datasets/cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf]
Deterministic: rerunning rewrites identical files (the BPE trainer is
deterministic for a fixed corpus). The SmolLM2 part is skipped with a message
when the GGUF is absent (datasets/fetch_smollm2.sh fetches it).

The SmolLM2 tokenizer is rebuilt here from the GGUF arrays with the structure
of HuggingFaceTB/SmolLM2-135M-Instruct's tokenizer.json (no normalizer;
pre-tokenizer [Digits(individual_digits), ByteLevel(add_prefix_space=false,
use_regex=true)]; BPE without unk; ByteLevel decoder and post-processor; the
17 control tokens as special added tokens), then HF `tokenizers` encodes.
"""
import argparse
import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(REPO, "tests", "data", "tokenizer")

CORPUS = """Once upon a time there was a little robot named Bolt. Bolt liked to count: one, two, three,
1 2 3 42 2024 and 3.14159! He didn't know why the sky was blue, but he'd ask anyone he met.
"What's that?" he said. They're here, we've seen it, I'm sure you'll like it.
The quick brown fox jumps over the lazy dog.    Tabs\tand\nnewlines\r\n matter too.
Café naïve résumé — “quotes” and ‘single’ ones… 東京 and 北京 are cities. Привет мир!
Code: def f(x): return x**2 + 10 # comment
"""

# texts every tiny fixture is checked on (edge cases of the HF pipeline)
TINY_TEXTS = [
    "",
    " ",
    "hello world",
    "Hello World!",
    "  leading and trailing spaces  ",
    "don't can't we'll they're I'm he'd you've",
    "DON'T SHOUT'S",
    "numbers 1 22 333 4444 55555 3.14159 2024-05-01",
    "tabs\tand\nnewlines\r\n\n\nend",
    "multiple     spaces    here",
    "Café naïve résumé",
    "東京 and 北京 日本語のテキスト",
    "Привет мир",
    "emoji 😀👍🏽 and 🇫🇷 flags",
    "<|bos|>hello<|eot|>",
    "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    "text with [TOOL]   call and [TOOL]",
    "a xyz b axyz xyzb xyz",
    "zero\u0000byte and \u00a0nbsp \u2003em space",
    "mixed😀text123with456digits",
    "x" * 100,
    "The quick brown fox jumps over the lazy dog.",
    "once upon a time there was a little robot",
    "def f(x): return x**2 + 10",
    "   \n   ",
    "!!!???...,,,",
]


def fnv1a64(ids):
    h = 1469598103934665603
    for i in ids:
        h ^= i
        h = (h * 1099511628211) & ((1 << 64) - 1)
    return "%016x" % h


def train_base():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|bos|>", "<|eot|>", "<|im_start|>", "<|im_end|>"],
        show_progress=False,
    )
    tok.train_from_iterator([CORPUS] * 3, trainer=trainer)
    return json.loads(tok.to_str())


def added(i, content, special, lstrip=False, rstrip=False, single_word=False, normalized=None):
    return {
        "id": i,
        "content": content,
        "single_word": single_word,
        "lstrip": lstrip,
        "rstrip": rstrip,
        "normalized": (not special) if normalized is None else normalized,
        "special": special,
    }


def byte_level_variants(base):
    vocab = base["model"]["vocab"]
    n = max(vocab.values()) + 1
    extra = [added(n, "[TOOL]", False, lstrip=True, rstrip=True, normalized=False),
             added(n + 1, "xyz", False, single_word=True, normalized=False)]
    for a in extra:
        vocab[a["content"]] = a["id"]
    base["added_tokens"] = base["added_tokens"] + extra
    bos = {"<|bos|>": {"id": "<|bos|>", "ids": [vocab["<|bos|>"]], "tokens": ["<|bos|>"]}}
    template = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|bos|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<|bos|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": bos,
    }
    out = {}
    # 1. GPT-2 style: ByteLevel(use_regex) + BOS template
    d = json.loads(json.dumps(base))
    d["post_processor"] = template
    out["tiny_bytelevel"] = d
    # 2. Llama-3 style: Split(regex) + ByteLevel(use_regex=false), ignore_merges,
    #    merges as "a b" strings (the older serialization)
    d = json.loads(json.dumps(base))
    d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_RE}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    d["model"]["ignore_merges"] = True
    d["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in d["model"]["merges"]]
    d["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}, template]}
    out["tiny_llama3"] = d
    # 3. Qwen2 style (minus its NFC normalizer, as lq_tokjson_build does):
    #    Split(Qwen2 regex) + ByteLevel(use_regex=false), no template
    d = json.loads(json.dumps(base))
    d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_RE}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    d["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    out["tiny_qwen2"] = d
    # 4. every Split behavior, invert, Digits, a String pattern, add_prefix_space
    d = json.loads(json.dumps(base))
    d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": "  "}, "behavior": "Removed", "invert": False},
        {"type": "Split", "pattern": {"Regex": "[,;!?]"}, "behavior": "MergedWithPrevious", "invert": False},
        {"type": "Split", "pattern": {"Regex": "[A-Z]"}, "behavior": "MergedWithNext", "invert": False},
        {"type": "Split", "pattern": {"Regex": "\\p{L}+"}, "behavior": "Isolated", "invert": True},
        {"type": "Split", "pattern": {"Regex": "\\s"}, "behavior": "Contiguous", "invert": False},
        {"type": "Digits", "individual_digits": False},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]}
    d["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Replace", "pattern": {"Regex": "\\t+"}, "content": " "},
        {"type": "Lowercase"}]}
    d["post_processor"] = None
    out["tiny_split"] = d
    return out


def metaspace_variant():
    # SentencePiece-like: Metaspace(prepend_scheme=first), byte fallback, NFC
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="\u2581", prepend_scheme="first"),
                                     decoders.ByteFallback(), decoders.Fuse()])
    bytes_ = ["<0x%02X>" % b for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"] + bytes_,
                                  show_progress=False)
    tok.train_from_iterator([CORPUS] * 3, trainer=trainer)
    d = json.loads(tok.to_str())
    # byte tokens are vocab entries, not added tokens (as in Llama's file)
    d["added_tokens"] = [a for a in d["added_tokens"] if a["content"] in ("<unk>", "<s>", "</s>")]
    d["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "NFC"}, {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]}
    d["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "</s>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                           "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}},
    }
    return d


LLAMA3_RE = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
             "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


QWEN2_RE = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
            "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def cases(tok, texts):
    res = []
    for t in texts:
        enc = tok.encode(t, add_special_tokens=True).ids
        plain = tok.encode(t, add_special_tokens=False).ids
        res.append({"text": t, "ids": enc, "ids_plain": plain,
                    "decoded": tok.decode(enc, skip_special_tokens=False),
                    "decoded_skip": tok.decode(enc, skip_special_tokens=True)})
    return res


def hand_made():
    """Tiny hand-written documents for model options the trained fixtures
    cannot show: ignore_merges, unk/fuse_unk/byte_fallback interplay,
    continuing_subword_prefix/end_of_word_suffix, Metaspace split=false,
    prepend_scheme=always, added tokens with normalized=true."""
    def bpe(vocab, merges, **kw):
        m = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
             "vocab": {t: i for i, t in enumerate(vocab)}, "merges": merges}
        m.update(kw)
        return m

    def doc(model, pre=None, norm=None, dec=None, added_tokens=()):
        return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": list(added_tokens),
                "normalizer": norm, "pre_tokenizer": pre, "post_processor": None, "decoder": dec, "model": model}

    ws = {"type": "WhitespaceSplit"}
    docs = {
        "ignore_merges_on": doc(bpe(["a", "b", "c", "ab", "bc", "abc"], [["b", "c"], ["a", "b"]],
                                    ignore_merges=True), pre=ws),
        "ignore_merges_off": doc(bpe(["a", "b", "c", "ab", "bc", "abc"], [["b", "c"], ["a", "b"]]), pre=ws),
        "unk_fuse": doc(bpe(["<unk>", "a", "b", "ab"], [["a", "b"]], unk_token="<unk>", fuse_unk=True), pre=ws),
        "unk_nofuse": doc(bpe(["<unk>", "a", "b", "ab"], [["a", "b"]], unk_token="<unk>"), pre=ws),
        "byte_fallback_partial": doc(bpe(["<unk>", "a", "<0xC3>", "<0xA9>", "<0xE2>"], [],
                                         unk_token="<unk>", byte_fallback=True, fuse_unk=True),
                                     dec={"type": "ByteFallback"}),
        "subword_affixes": doc(bpe(["a", "##b", "##c", "c</w>", "##c</w>", "a##b", "ab", "##b##c</w>", "##bc</w>",
                                    "b", "b</w>", "a</w>"],
                                   [["a", "##b"], ["##b", "##c</w>"]],
                                   continuing_subword_prefix="##", end_of_word_suffix="</w>"), pre=ws),
        "metaspace_nosplit_always": doc(
            bpe(["\u2581", "a", "b", "\u2581a", "\u2581b"], [["\u2581", "a"], ["\u2581", "b"]]),
            pre={"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": False},
            dec={"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": False},
            added_tokens=[added(5, "X", False, normalized=True)]),
        "nfkc_lowercase": doc(bpe(["a", "b", "c", "ab", "\u00e9", "i", "\u0307"], [["a", "b"]]), pre=ws,
                              norm={"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]}),
        "normalized_added": doc(
            bpe(["\u2581", "a", "b", "\u2581a", "\u2581b", "<sep>"], [["\u2581", "a"], ["\u2581", "b"]]),
            norm={"type": "Sequence", "normalizers": [
                {"type": "Prepend", "prepend": "\u2581"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
            added_tokens=[added(5, "<sep>", False, normalized=True)]),
    }
    texts = ["abc", "ABC AB\u0130", "abc abcd ab", "xxab", "aXXb c", "a\u00e9b\u2603", "ab abc c", "a b", "a X b", "a <sep> b<sep>",
             "ba", ""]
    res = {}
    for name, d in docs.items():
        tok = Tokenizer.from_str(json.dumps(d))
        res[name] = {"doc": d, "cases": cases(tok, texts)}
    write_json("hand_ids.json", res, depth=3)


def unicode_table(path):
    """Writes libquant/tokenizer_unicode.c: for each code point, whether NFC /
    NFKC / NFD / NFKD leave it unchanged *in any context*: the char is
    normalized on its own, is a starter (combining class 0), never composes
    with a preceding char (is not the second element of a primary composite,
    Hangul V/T jamo included), and its decomposition does not start with such
    a char. A string made only of such chars is its own normal form, so lq
    can accept these normalizers without implementing them (tokenizer.c
    refuses text with any other char). Data: Python's unicodedata."""
    import unicodedata as u

    second = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))  # Hangul V, T (algorithmic)
    for c in range(0x110000):
        d = u.decomposition(chr(c))
        if d and not d.startswith("<"):
            parts = [int(x, 16) for x in d.split()]
            if len(parts) == 2 and u.normalize("NFC", chr(parts[0]) + chr(parts[1])) == chr(c):
                second.add(parts[1])

    def safe(c, form):
        ch = chr(c)
        if 0xD800 <= c <= 0xDFFF or u.category(ch) == "Cn" or u.combining(ch) or c in second:
            return False
        if not u.is_normalized(form, ch):
            return False
        dec = u.normalize("NFKD" if "K" in form else "NFD", ch)
        return ord(dec[0]) not in second and not u.combining(dec[0])

    forms = ("NFC", "NFKC", "NFD", "NFKD")
    entries, prev = [], None
    for c in range(0x110000):
        m = 0
        if c < 0x80:
            m = 15
        elif not (0xD800 <= c <= 0xDFFF):
            for k, f in enumerate(forms):
                m |= safe(c, f) << k
        if m != prev:
            entries.append((c << 4) | m)
            prev = m
    body = ",\n".join("    " + ", ".join("0x%07x" % e for e in entries[i:i + 8]) for i in range(0, len(entries), 8))
    src = f"""/* tokenizer_unicode.c — GENERATED by datasets/gen_tokenizer_fixtures.py
 * (--unicode-table) from Python's unicodedata {u.unidata_version}; do not edit.
 *
 * Which code points the Unicode normalization forms leave unchanged in any
 * context (see unicode_table() in the generator for the exact rule). lq does
 * not implement NFC/NFKC/NFD/NFKD; tokenizer.c accepts those normalizers and
 * refuses (LQ_ERR_UNSUPPORTED) only text containing a char outside this set,
 * so every accepted text is encoded exactly as HF encodes it. */
#include <stddef.h>
#include <stdint.h>

/* (first code point << 4) | mask, sorted; a run lasts until the next entry.
 * mask bit 0 NFC, 1 NFKC, 2 NFD, 3 NFKD. */
static const uint32_t k_runs[{len(entries)}] = {{
{body}
}};

int lq_tok_unicode_stable(uint32_t cp, int form) {{
    size_t lo = 0, hi = sizeof k_runs / sizeof *k_runs;
    while (hi - lo > 1) {{
        size_t mid = (lo + hi) / 2;
        if ((k_runs[mid] >> 4) <= cp) lo = mid;
        else hi = mid;
    }}
    return (int)(k_runs[lo] >> form) & 1;
}}
"""
    with open(path, "w") as f:
        f.write(src)
    print("wrote", os.path.relpath(path, REPO), len(entries), "runs")


def write_json(name, obj, compact=False, depth=2):
    path = os.path.join(OUT, name)
    def dumps(o):
        return json.dumps(o, ensure_ascii=False, separators=(",", ":"))

    def lines(o, depth):
        # one test case (or other leaf object) per line: small and diffable
        if depth == 0 or not isinstance(o, (dict, list)):
            return dumps(o)
        if isinstance(o, dict):
            return "{\n" + ",\n".join(dumps(k) + ":" + lines(v, depth - 1) for k, v in o.items()) + "\n}"
        return "[\n" + ",\n".join(lines(v, depth - 1) for v in o) + "\n]"

    with open(path, "w", encoding="utf-8") as f:
        f.write(dumps(obj) if compact else lines(obj, depth))
        f.write("\n")
    print("wrote", os.path.relpath(path, REPO), os.path.getsize(path), "bytes")


def tiny():
    fixtures = byte_level_variants(train_base())
    fixtures["tiny_metaspace"] = metaspace_variant()
    ids = {}
    for name, d in fixtures.items():
        write_json(name + ".json", d, compact=True)
        tok = Tokenizer.from_str(json.dumps(d))
        texts = TINY_TEXTS
        if name == "tiny_metaspace":
            # NFC: lq refuses text NFC could change; keep to text where it is the identity
            texts = TINY_TEXTS + ["<s>inside</s> text", "a\u00e9b \u00e9",
                                 "\ufb01 ligature \u0663\u0664 \ufeffbom \u0395\u03bb\u03bb \ud55c\uad6d\uc5b4"]
        ids[name] = cases(tok, texts)
    write_json("tiny_ids.json", ids)


STORIES_TEXTS = [
    "Once upon a time",
    "",
    " ",
    "  two leading spaces",
    "trailing space ",
    "Lily and Ben went to the park.\n\nThe end.",
    "<s>hello</s> world <unk>",
    "a<s>b",
    "Héllo wörld — 東京 😀",
    "\t\ttabs and \r\n CRLF",
    "unknown chars: \u0001\u0002 and \U0001F680",
    "zero\u0000byte",
    "ALL CAPS SHOUTING!!!",
]


def stories(shared):
    path = os.path.join(shared, "models", "stories260K", "tokenizer.json")
    if not os.path.exists(path):
        print("skip stories260K_ids.json:", path, "not found")
        return
    tok = Tokenizer.from_file(path)
    write_json("stories260K_ids.json", cases(tok, STORIES_TEXTS))


SMOL_TEXTS = [
    "Hello world",
    "Hello, world! How are you today?",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM<|im_end|>\n<|im_start|>assistant\n",
    "I can't believe it's not butter. We'll see, they're fine, I'd go, you've been.",
    "DON'T YOU KNOW WHAT'S GOING ON?",
    "The year 2024 had 366 days; pi is 3.14159265358979.",
    "Phone: +1 (555) 123-4567, ID 0000123",
    "   leading spaces and trailing spaces   ",
    "multiple\n\nnewlines\n\n\nand\ttabs\t\there",
    "Café naïve résumé coöperate",
    "日本語のテキストと中文文本和한국어 텍스트",
    "Привет, как дела? Ελληνικά κείμενα.",
    "emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇯🇵",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n-1) + fibonacci(n-2)\n",
    "for (int i = 0; i < 10; i++) { printf(\"%d\\n\", i); }",
    "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct?x=1&y=2#frag",
    "<repo_name>lq<file_sep>tokenizer.c<filename>x.py",
    "text<|endoftext|>more text<|endoftext|>",
    "<|im_start|><|im_end|><|im_start|>",
    "a" * 200,
    " " * 17,
    "\u00a0nbsp\u2003emspace\u3000ideographic",
    "zero\u0000byte",
    "mathematical ∑ ∫ √ ∞ ≤ ≥ ≠ symbols",
    "1234567890 12 345 6789",
    "x²+y²=z² ½ ¼ ①②③",
    "Ümlaut ÄÖÜ ß and ﬁ ligature",
    "'s 't 're 've 'm 'll 'd 'S 'T",
    "\r\n\r\n windows lines\r\n",
]


def smollm2(gguf_path, shared):
    if not gguf_path or not os.path.exists(gguf_path):
        print("skip smollm2_ids.json: GGUF not found (%s); run datasets/fetch_smollm2.sh" % gguf_path)
        return
    from gguf import GGUFReader

    r = GGUFReader(gguf_path)

    def arr(key):
        f = r.fields[key]
        return [f.contents(i) for i in range(len(f.data))]

    tokens = arr("tokenizer.ggml.tokens")
    types = arr("tokenizer.ggml.token_type")
    merges = arr("tokenizer.ggml.merges")
    assert r.fields["tokenizer.ggml.pre"].contents() == "smollm"
    vocab = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)
    doc = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(i, t, True, normalized=False) for i, t in enumerate(tokens) if types[i] == 3],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab, "merges": [m.split(" ", 1) for m in merges]},
    }
    tok = Tokenizer.from_str(json.dumps(doc))
    res = {"gguf": os.path.basename(gguf_path), "n_vocab": len(tokens), "n_merges": len(merges),
           "cases": cases(tok, SMOL_TEXTS)}
    wiki = os.path.join(shared, "datasets", "wikitext2", "wiki.test.raw.txt")
    if os.path.exists(wiki):
        with open(wiki, encoding="utf-8") as f:
            text = f.read()
        ids = tok.encode(text, add_special_tokens=True).ids
        res["wikitext2_test"] = {"n_bytes": len(text.encode("utf-8")), "n_ids": len(ids), "fnv1a64": fnv1a64(ids),
                                 "first_ids": ids[:32]}
    write_json("smollm2_ids.json", res)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.environ.get("LQ_SHARED", os.path.join(REPO, "..", "shared")))
    ap.add_argument("--gguf", default=os.environ.get("LQ_SMOLLM2_GGUF", os.path.join(
        HERE, "cache", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")))
    ap.add_argument("--unicode-table", action="store_true",
                    help="(re)generate libquant/tokenizer_unicode.c instead of the fixtures")
    a = ap.parse_args()
    if a.unicode_table:
        unicode_table(os.path.join(REPO, "libquant", "tokenizer_unicode.c"))
        return 0
    os.makedirs(OUT, exist_ok=True)
    tiny()
    hand_made()
    stories(a.shared)
    smollm2(a.gguf, a.shared)
    return 0


if __name__ == "__main__":
    sys.exit(main())
