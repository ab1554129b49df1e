#!/usr/bin/env python3
"""Writes the inputs of the tokenizer goldens under tests/fixtures/tokenizer/ (no third-party
packages needed; run here, not on the GPU machine):

  texts.json      the text set: hand-written cases (English, code, numbers of many lengths,
                  whitespace runs, CJK, kana, Hangul, Cyrillic, Arabic, Devanagari, Thai, emoji
                  with ZWJ, URLs, <think> tags, special tokens inside text, combining marks) and
                  200 seeded random strings drawn from the same scripts
  corpus.txt      a small training corpus (the hand-written cases and a slice of the DeepSeek spec)
  variant_*.json  made from trained.json (which `seek bpe-train` writes from corpus.txt): the same
                  vocabulary with other normalizers, pre-tokenizers, split behaviours, merge
                  spellings, duplicate merges and added-token flags, so every supported component
                  is compared with Hugging Face `tokenizers`

Usage:
    python3 scripts/tokenizer_fixtures.py texts SPEC.md      # texts.json, corpus.txt
    ./seek bpe-train --corpus tests/fixtures/tokenizer/corpus.txt --vocab 600 \
        -o tests/fixtures/tokenizer/trained/tokenizer.json
    python3 scripts/tokenizer_fixtures.py variants           # variant_*.json
Then scripts/tokenizer_goldens.py (on a machine with `tokenizers`) writes goldens.json.
"""
import copy
import json
import os
import random
import sys

DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "tokenizer")

HAND = [
    "",
    " ",
    "Hello world",
    "Hello, world! How are you doing today?",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure they're right, but we'll see what you've done; don't worry, it'd be OK.",
    "HELLO World hElLo",
    "e.g. i.e. etc. Mr. Smith's dog",
    "int main(void) {\n    printf(\"hello %d\\n\", 42);\n    return 0;\n}\n",
    "def f(x):\n\tif x > 0:\n\t\treturn x ** 2\n\treturn -x  # negative\n",
    "for (size_t i = 0; i < n; i++) a[i] += b[i] * c;",
    "x=1;y=2;z=x+y",
    "    four spaces",
    "trailing spaces    ",
    "a  b   c    d     e",
    "\n\n\n",
    "line1\nline2\r\nline3\rline4",
    " \n \n  \n",
    "\t\ttabs\t\there",
    "word\u3000ideographic space",
    "non\u00a0breaking\u00a0space",
    "mongolian\u180evowel separator",
    "line\u2028separator\u2029para",
    "0", "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678901234567890",
    "3.14159265358979", "1,000,000", "-42", "+7e-10", "0x7fffffff", "2024-01-15T10:30:00Z",
    "v1.2.3", "$19.99", "100%", "½ ¾ ⅓", "①②③", "Ⅻ Ⅳ", "٣٤٥ ١٢", "१२३४", "１２３４５",
    "你好，世界！这是一个测试。",
    "中文和English混合text123中文",
    "日本語のテキスト、カタカナとひらがな。",
    "トークナイザーのテストです",
    "한국어 텍스트 처리 테스트",
    "Привет, мир! Как дела?",
    "مرحبا بالعالم، كيف حالك؟",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "สวัสดีชาวโลก",
    "Γειά σου Κόσμε",
    "שלום עולם",
    "Ünïcödé àccénts: café, naïve, Zürich, São Paulo, Ångström",
    "e\u0301 o\u0308 a\u030a (combining marks, decomposed)",
    "\u00e9 \u00f6 \u00e5 (precomposed)",
    "👨‍👩‍👧‍👦 family 🏳️‍🌈 flag 👍🏽 thumbs",
    "emoji🙂in🚀text✨",
    "🤖🤖🤖",
    "∑∫√∞ ≤ ≥ ≠ ± × ÷ → ⇒ ∀∃",
    "https://github.com/deepseek-ai/DeepSeek-V3?tab=readme-ov-file#L12",
    "mailto:someone@example.com and @user #hashtag",
    "$HOME/.bashrc --option=value -v ./run.sh",
    "!!!???...---***",
    "(a) [b] {c} <d> \"e\" 'f' `g`",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "hahahahahahahahahahaha",
    "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}",
    "| col1 | col2 |\n|------|------|\n| 1    | 2    |",
    "<think>\nLet me think step by step.\n</think>\n\nThe answer is 42.",
    "<｜begin▁of▁sentence｜>Hello<｜end▁of▁sentence｜>",
    "<｜User｜>What is 2+2?<｜Assistant｜><think>easy</think>4<｜end▁of▁sentence｜>",
    "text<｜begin▁of▁sentence｜><｜begin▁of▁sentence｜>text",
    "<｜begin▁of",
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather",
    "<｜fim▁begin｜>def f():<｜fim▁hole｜>\n<｜fim▁end｜>",
    "<｜place▁holder▁no▁7｜> and <｜▁pad▁｜>",
    "  <think>  spaced  </think>  ",
    "<think></think>",
    "</think>",
    "A<think>B",
    "Ġ ĉ Ċ",
    "\u0000nul and \u0007bell \u001bescape",
    "\ufeffBOM at start",
    "zero\u200bwidth\u200cnon\u200djoiner",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕋𝕖𝕩𝕥",
    "ﬁ ligature ﬀ",
]

# Code point pools for the random strings (Python str, so always valid UTF-8).
POOLS = [
    (0x20, 0x7e), (0x20, 0x7e), (0x20, 0x7e), (0x30, 0x39),
    (0x09, 0x0d), (0x20, 0x20), (0xa0, 0xff), (0x100, 0x17f), (0x300, 0x36f),
    (0x391, 0x3c9), (0x410, 0x44f), (0x5d0, 0x5ea), (0x620, 0x64a), (0x660, 0x669),
    (0x900, 0x97f), (0xe01, 0xe5b), (0x1100, 0x11ff), (0x2000, 0x206f), (0x2100, 0x22ff),
    (0x3000, 0x303f), (0x3040, 0x30ff), (0x4e00, 0x9fa5), (0x9fa6, 0x9fff), (0xac00, 0xd7a3),
    (0xff01, 0xff5e), (0x1f300, 0x1f64f), (0x1f900, 0x1f9ff), (0x200d, 0x200d), (0xfe0f, 0xfe0f),
    (0x10000, 0x1007f), (0x1d400, 0x1d7ff),
]


def random_texts(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(1, 40)
        pools = rng.sample(POOLS, rng.randint(1, 4))
        s = []
        for _ in range(k):
            lo, hi = rng.choice(pools)
            run = rng.randint(1, 6)
            s.append("".join(chr(rng.randint(lo, hi)) for _ in range(run)))
        out.append("".join(s))
    return out


def write_texts(spec_path):
    os.makedirs(DIR, exist_ok=True)
    texts = HAND + random_texts(200, 1234)
    with open(os.path.join(DIR, "texts.json"), "w", encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False, indent=0)
        f.write("\n")
    spec = open(spec_path, encoding="utf-8").read()[:24000]
    with open(os.path.join(DIR, "corpus.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(HAND) + "\n" + spec)
    print("wrote texts.json (%d texts) and corpus.txt" % len(texts))


def write_variants():
    base = json.load(open(os.path.join(DIR, "trained", "tokenizer.json"), encoding="utf-8"))
    vocab = base["model"]["vocab"]
    n = len(vocab)

    def added(content, id_, **kw):
        d = {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
        d.update(kw)
        return d

    def bl(prefix, regex):
        return {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True, "use_regex": regex}

    def split(pattern, behavior, invert=False, literal=False):
        return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern},
                "behavior": behavior, "invert": invert}

    variants = {}
    # GPT-2 style: NFC, ByteLevel with the GPT-2 regex and a prefix space, merges as "a b" strings,
    # added tokens with lstrip/rstrip/single_word and a normalized one.
    v = copy.deepcopy(base)
    v["normalizer"] = {"type": "NFC"}
    v["pre_tokenizer"] = bl(True, True)
    v["model"]["merges"] = [a + " " + b for a, b in base["model"]["merges"]]
    v["added_tokens"] = base["added_tokens"] + [
        added("<mask>", n, lstrip=True),
        added("[SEP]", n + 1, rstrip=True),
        added("cat", n + 2, single_word=True, special=False),
        added("naïve", n + 3, normalized=True, special=False),
    ]
    variants["gpt2"] = v
    # Split behaviours, part 1: Removed, MergedWithPrevious, Contiguous; ByteLevel without regex.
    v = copy.deepcopy(base)
    v["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}]}
    v["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        split("\\s+", "Removed"), split("[,.!?]", "MergedWithPrevious"), split("\\p{N}", "Contiguous"),
        bl(False, False)]}
    variants["removed"] = v
    # Split behaviours, part 2: MergedWithNext, a literal String pattern, invert, Digits.
    v = copy.deepcopy(base)
    v["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        split("\\p{P}", "MergedWithNext"), split("ab", "Isolated", literal=True),
        split("\\p{L}+", "MergedWithPrevious", invert=True),
        {"type": "Digits", "individual_digits": True}, bl(False, True)]}
    variants["merged_next"] = v
    # Inverted Removed (keeps only the matches) and Contiguous on words.
    v = copy.deepcopy(base)
    v["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        split("\\S+", "Removed", invert=True), split("[aeiou]", "Contiguous"),
        {"type": "Digits", "individual_digits": False}, bl(True, False)]}
    variants["inverted"] = v
    # Llama 3's pattern (case-insensitive group, \s inside a negated class) and ignore_merges.
    v = copy.deepcopy(base)
    v["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [split(
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        "Isolated"), bl(False, False)]}
    v["model"]["ignore_merges"] = True
    variants["llama3"] = v
    # Duplicate merges: the first 60 repeated at the end of the list. Hugging Face builds its merge
    # map from the list in order, so a later duplicate's rank replaces the earlier one's; those
    # merges then come last, which changes many encodings.
    v = copy.deepcopy(base)
    v["model"]["merges"] = base["model"]["merges"] + base["model"]["merges"][:60]
    variants["dup_merges"] = v
    for name, v in variants.items():
        with open(os.path.join(DIR, "variant_%s.json" % name), "w", encoding="utf-8") as f:
            json.dump(v, f, ensure_ascii=False, indent=1)
            f.write("\n")
    print("wrote", ", ".join("variant_%s.json" % k for k in variants))


def write_bench(out, mb=4):
    """A few MB of text for `make bench`: half this repository's own sources and docs (English,
    C, shell, Python), half seeded random strings from the multi-script pools above."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    natural = []
    for sub in ("ref", "viz", "scripts", "tests", "docs", "lessons"):
        for dp, _, fs in sorted(os.walk(os.path.join(root, sub))):
            for f in sorted(fs):
                if f.endswith((".c", ".h", ".md", ".sh", ".py")):
                    natural.append(open(os.path.join(dp, f), encoding="utf-8", errors="replace").read())
    natural = "\n".join(natural + HAND)
    half = mb * 1000000 // 2
    parts, n = [], 0
    while n < half:
        parts.append(natural)
        n += len(natural.encode())
    rnd, seed = [], 0
    while n < 2 * half:
        chunk = " ".join(random_texts(500, 99 + seed))
        seed += 1
        rnd.append(chunk)
        n += len(chunk.encode())
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write("".join(parts) + "\n" + "\n".join(rnd))
    print("wrote %s (%d bytes)" % (out, os.path.getsize(out)))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "bench":
        write_bench(sys.argv[2])
    elif sys.argv[1] == "texts":
        write_texts(sys.argv[2])
    elif sys.argv[1] == "variants":
        write_variants()
    else:
        sys.exit(__doc__)
