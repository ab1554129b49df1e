#!/usr/bin/env python3
"""Proves that model folders written by `seek convert` load in Hugging Face transformers unchanged
and give the logits seek.c computes for them.

Run where torch and transformers are installed (the GPU machine; CPU is used):
    python3 scripts/check_hf_roundtrip.py DIR1 DIR2 ...
Each DIR was written by `seek convert` and holds `seek_ids.txt` (one line of ids per sequence)
and `seek_logits.f32` (what `seek forward` wrote for those ids). The script loads DIR with
AutoModelForCausalLM.from_pretrained (fp32, eager), runs the same ids, and reports the largest
difference relative to the largest logit; it exits 1 if any is above 1e-4 (TOL_HF_LOGITS_REL)
or if transformers reports missing or unexpected weights (other than MTP modules, which it does
not build). With --save-golden, transformers' logits and the ids are written to
DIR/golden.safetensors (the committed fixture of a checkpoint seek.c trained).
"""
import os
import sys

import numpy as np
import torch
import transformers
from hf_load import load_causal_lm

TOL = 1e-4


def check(d):
    ids = [[int(x) for x in line.split()] for line in open(f"{d}/seek_ids.txt") if line.strip()]
    model, problems = load_causal_lm(d)
    with torch.no_grad():
        hf = model(torch.tensor(ids)).logits.float().numpy()
    ours = np.fromfile(f"{d}/seek_logits.f32", dtype="<f4").reshape(hf.shape)
    rel = float(np.abs(hf - ours).max() / np.abs(hf).max())
    ok = rel <= TOL and not problems
    if SAVE_GOLDEN:
        from safetensors.numpy import save_file
        save_file({"input_ids": np.array(ids, dtype=np.int64), "logits": hf.astype(np.float32)},
                  os.path.join(d, "golden.safetensors"),
                  metadata={"transformers": transformers.__version__, "torch": torch.__version__})
    print(f"{d}: {model.config.model_type}, weights {next(iter(model.state_dict().values())).dtype} on load, "
          f"logits {tuple(hf.shape)}, max rel diff {rel:.2e} {'ok' if ok else 'FAIL'} {problems if problems else ''}")
    return ok


SAVE_GOLDEN = False


def main():
    global SAVE_GOLDEN
    args = sys.argv[1:]
    if args and args[0] == "--save-golden":
        SAVE_GOLDEN = True
        args = args[1:]
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    results = [check(d) for d in args]
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
