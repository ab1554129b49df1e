#!/usr/bin/env python3
"""Hugging Face goldens for seek.c's tokenizer (run where `tokenizers` is installed, e.g. the GPU
machine; it needs no network).

    python3 scripts/tokenizer_goldens.py --texts tests/fixtures/tokenizer/texts.json \
        --tok deepseek-v3=build-data/deepseek-v3/tokenizer.json \
        --tok trained=tests/fixtures/tokenizer/trained/tokenizer.json \
        --tok variant_gpt2=tests/fixtures/tokenizer/variant_gpt2.json ... \
        --limit trained=192 --limit variant_gpt2=122 ... \
        --out goldens.json [--bench build-data/bench.txt --bench-ids bench_ids.bin]

    # one tokenizer added to an existing goldens.json (the others kept as they were):
    python3 scripts/tokenizer_goldens.py --texts tests/fixtures/tokenizer/texts.json \
        --tok variant_dup_merges=tests/fixtures/tokenizer/variant_dup_merges.json --limit variant_dup_merges=122 \
        --merge-into tests/fixtures/tokenizer/goldens.json --out goldens.json

goldens.json = {"tokenizers_version", "transformers_version", "texts": [...],
                "ids": {name: [[id, ...] for the first K texts (--limit NAME=K; default all)]},
                "decode_ok": {name: texts (of all) with decode(encode(t)) == t},
                "transformers": {name: what AutoTokenizer(dir)(text)["input_ids"] gives for the first
                                 40 texts, compared with [BOS] + ids},
                "bench": {...}}
Every encode is `Tokenizer.from_file(path).encode(text, add_special_tokens=False).ids`.
With --bench, the DeepSeek-V3 tokenizer encodes the bench file on one thread (best of 3), once
as one string and once line by line through encode_batch; the ids of the one-string encode are
written as little-endian int32 to --bench-ids. The file is read as bytes decoded from UTF-8, with
no newline translation, so both sides see the same text.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import tokenizers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", required=True)
    ap.add_argument("--tok", action="append", default=[], help="NAME=PATH")
    ap.add_argument("--out", required=True)
    ap.add_argument("--bench")
    ap.add_argument("--bench-ids")
    ap.add_argument("--limit", action="append", default=[], help="NAME=K")
    ap.add_argument("--merge-into", help="an existing goldens.json of the same texts: its entries are kept and "
                                         "the --tok ones added or replaced; the result goes to --out")
    a = ap.parse_args()
    texts = json.load(open(a.texts, encoding="utf-8"))
    limit = {k: int(v) for k, v in (x.split("=", 1) for x in a.limit)}
    res = {"tokenizers_version": tokenizers.__version__, "texts": texts, "ids": {}, "decode_ok": {},
           "transformers": {}, "errors": {}}
    try:
        import transformers
        res["transformers_version"] = transformers.__version__
    except Exception as e:  # transformers is optional
        transformers = None
        res["errors"]["transformers"] = repr(e)
    for spec in a.tok:
        name, path = spec.split("=", 1)
        try:
            tok = Tokenizer.from_file(path)
            ids = [tok.encode(t, add_special_tokens=False).ids for t in texts]
            res["ids"][name] = ids[:limit.get(name, len(ids))]
            res["decode_ok"][name] = sum(tok.decode(i, skip_special_tokens=False) == t for i, t in zip(ids, texts))
            print("%-20s %d texts, %d ids, decode ok %d" % (name, len(texts), sum(map(len, ids)), res["decode_ok"][name]), flush=True)
        except Exception as e:
            res["errors"][name] = repr(e)
            print("%-20s ERROR %r" % (name, e), flush=True)
            continue
        cfg = os.path.join(os.path.dirname(path), "tokenizer_config.json")
        if transformers is not None and os.path.basename(path) == "tokenizer.json" and os.path.exists(cfg):
            try:
                at = transformers.AutoTokenizer.from_pretrained(os.path.dirname(path))
                bos = json.load(open(cfg)).get("add_bos_token")
                got = [at(t)["input_ids"] for t in texts[:40]]
                same = sum(x == ([0] + y if bos else y) for x, y in zip(got, ids[:40]))
                res["transformers"][name] = {"class": type(at).__name__, "add_bos_token": bos,
                                             "equal_to_bos_plus_ids": same, "of": 40,
                                             "example": {"text": texts[2], "ids": got[2]}}
                print("%-20s transformers %s: %d/40 equal BOS + ids" % (name, type(at).__name__, same), flush=True)
            except Exception as e:
                res["errors"]["transformers:" + name] = repr(e)
                print("%-20s transformers ERROR %r" % (name, e), flush=True)
    if a.bench:
        tok = Tokenizer.from_file(dict(s.split("=", 1) for s in a.tok)["deepseek-v3"])
        raw = open(a.bench, "rb").read()
        text = raw.decode("utf-8")
        nbytes = len(raw)
        best = 1e9
        for _ in range(3):
            t0 = time.perf_counter()
            enc = tok.encode(text, add_special_tokens=False)
            best = min(best, time.perf_counter() - t0)
        lines = text.split("\n")
        best_lines = 1e9
        for _ in range(3):
            t0 = time.perf_counter()
            encs = tok.encode_batch(lines, add_special_tokens=False)
            best_lines = min(best_lines, time.perf_counter() - t0)
        res["bench"] = {"bytes": nbytes, "threads": os.environ["RAYON_NUM_THREADS"],
                        "one_string": {"seconds": best, "mb_per_s": nbytes / best / 1e6, "tokens": len(enc.ids)},
                        "lines": {"seconds": best_lines, "mb_per_s": nbytes / best_lines / 1e6,
                                  "tokens": sum(len(e.ids) for e in encs), "lines": len(lines)}}
        print("bench: %d bytes; one string: %d tokens, %.3f s, %.2f MB/s; by line (encode_batch): %.3f s, %.2f MB/s (RAYON_NUM_THREADS=%s)"
              % (nbytes, len(enc.ids), best, nbytes / best / 1e6, best_lines, nbytes / best_lines / 1e6,
                 os.environ["RAYON_NUM_THREADS"]), flush=True)
        if a.bench_ids:
            import array
            arr = array.array("i", enc.ids)
            if sys.byteorder != "little":
                arr.byteswap()
            with open(a.bench_ids, "wb") as f:
                arr.tofile(f)
    if a.merge_into:
        old = json.load(open(a.merge_into, encoding="utf-8"))
        if old["texts"] != texts:
            sys.exit("--merge-into %s: its texts are not --texts %s" % (a.merge_into, a.texts))
        for key in ("ids", "decode_ok", "transformers", "errors"):
            old.setdefault(key, {}).update(res[key])
        old["merged"] = {"names": sorted(res["ids"]), "tokenizers_version": res["tokenizers_version"]}
        res = old
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(res, f, ensure_ascii=False, separators=(",", ":"))
    print("wrote", a.out)


if __name__ == "__main__":
    main()
