#!/usr/bin/env python3
"""Transformers' view of the shipped tiny models: the oracle for tests/test_tiny_models.c.

Run where torch, transformers and tokenizers are installed (the GPU machine; CPU is used):
    python3 scripts/tiny_models_golden.py tiny-models/seek-v1-mini tiny-models/seek-v3-mini \
        tiny-models/seek-r1-base tiny-models/seek-r1-zero
For each folder it loads the model with AutoModelForCausalLM (fp32, eager attention) and the
folder's tokenizer.json with the `tokenizers` library, then records in
tests/fixtures/tiny_models/NAME.golden.safetensors:
  prompt_ids    the prompt (PROMPT below; for the arithmetic models seek-r1-*, R1_PROMPT) encoded by HF tokenizers, BOS first when
                tokenizer_config.json says add_bos_token (as `seek generate --prompt` does)
  logits        the model's logits for prompt_ids (fp32)
  greedy_ids    transformers' greedy continuation of prompt_ids, N_NEW tokens (argmax of the
                model's forward each step, EOS not suppressed)
  heldout_ids   tests/fixtures/tiny_models/heldout.txt (seek-r1-*: heldout-r1.txt, 40 pretraining-style
                documents of seed 2 written by `seek tasks --documents --n 40 --seed 2`) encoded by HF
                tokenizers (no BOS)
  heldout_loss  the mean next-token cross-entropy over the consecutive windows of SEQ_LEN tokens of
                heldout_ids (the last partial window dropped), each window from position 0, summed
                in float64: what `seek eval DIR --text heldout.txt --seq-len 128` computes
and metadata: the versions, the prompt, the held-out file's name, the decoded continuation.
It fails if transformers reports missing or unexpected weights other than the MTP module
(model.layers.{>= num_hidden_layers}), which transformers does not build.
"""
import json
import os
import sys

import numpy as np
import tokenizers
import torch
import transformers
from safetensors.numpy import save_file
from hf_load import load_causal_lm

PROMPT = "And God said"
# test task 0 of seek tasks' 2..3-digit additions (seed 1), in the R1-Zero template
R1_PROMPT = ("User: What is 75 + 954? Think in <think> </think>, then answer in <answer> </answer>.\n"
             "Assistant: <think>")
N_NEW = 32
SEQ_LEN = 128
HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "tests", "fixtures", "tiny_models")


def golden(d):
    name = os.path.basename(os.path.normpath(d))
    r1 = name.startswith("seek-r1")
    prompt = R1_PROMPT if r1 else PROMPT
    heldout = "heldout-r1.txt" if r1 else "heldout.txt"
    tok = tokenizers.Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    cfg_path = os.path.join(d, "tokenizer_config.json")
    add_bos = json.load(open(cfg_path)).get("add_bos_token", False) if os.path.exists(cfg_path) else False
    bos = tok.token_to_id(json.load(open(cfg_path))["bos_token"]) if add_bos else None
    prompt_ids = ([bos] if add_bos else []) + tok.encode(prompt, add_special_tokens=False).ids
    # transformers' own loading of the folder's tokenizer agrees (BOS included)
    auto_ids = transformers.AutoTokenizer.from_pretrained(d)(prompt)["input_ids"]
    if auto_ids != prompt_ids:
        print(f"{d}: AutoTokenizer gives {auto_ids}, tokenizers + tokenizer_config.json give {prompt_ids}")
        return False

    model, problems = load_causal_lm(d)
    if problems:
        print(f"{d}: transformers reports {problems}")
        return False

    with torch.no_grad():
        x = torch.tensor([prompt_ids])
        logits = model(x).logits[0].float().numpy()
        # greedy by argmax of the full forward, N_NEW tokens, EOS included like any token (generate's
        # min_new_tokens would suppress EOS, which `seek generate` does not: the arithmetic models end
        # their answers with it)
        seq = list(prompt_ids)
        for _ in range(N_NEW):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
        greedy = seq[len(prompt_ids):]
        text = open(os.path.join(FIX, heldout), encoding="utf-8").read()
        held = tok.encode(text, add_special_tokens=False).ids
        n_win = len(held) // SEQ_LEN
        total, count = 0.0, 0
        for w in range(n_win):
            ids = torch.tensor([held[w * SEQ_LEN:(w + 1) * SEQ_LEN]])
            lg = model(ids).logits[0].double()
            lp = torch.log_softmax(lg[:-1], dim=-1)
            tgt = ids[0, 1:]
            total += float(-lp[torch.arange(SEQ_LEN - 1), tgt].sum())
            count += SEQ_LEN - 1
    loss = total / count
    cont = tok.decode(greedy, skip_special_tokens=False)
    os.makedirs(FIX, exist_ok=True)
    save_file({"prompt_ids": np.array(prompt_ids, dtype=np.int64), "logits": logits.astype(np.float32),
               "greedy_ids": np.array(greedy, dtype=np.int64), "heldout_ids": np.array(held, dtype=np.int64),
               "heldout_loss": np.array([loss], dtype=np.float64)},
              os.path.join(FIX, f"{name}.golden.safetensors"),
              metadata={"transformers": transformers.__version__, "torch": torch.__version__,
                        "tokenizers": tokenizers.__version__, "prompt": prompt, "heldout": heldout, "continuation": cont,
                        "seq_len": str(SEQ_LEN), "windows": str(n_win)})
    print(f"{name}: {model.config.model_type}, prompt {prompt_ids} -> greedy {greedy}\n"
          f"  text: {prompt!r} + {cont!r}\n  heldout: {len(held)} tokens, {n_win} windows of {SEQ_LEN}, "
          f"loss {loss:.6f} (perplexity {np.exp(loss):.2f})")
    return True


def main():
    dirs = sys.argv[1:]
    if not dirs:
        print(__doc__)
        return 2
    ok = all([golden(d) for d in dirs])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
