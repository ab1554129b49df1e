#!/usr/bin/env python3
"""Gradient goldens for seek.c's backward pass, from transformers' autograd.

For each fixture folder (tests/fixtures/<name>, made by gen_fixtures.py) this loads the model in
fp32 on the CPU (eager attention and experts), runs model(input_ids, labels=input_ids) on the
golden input ids, back-propagates the loss, and writes tests/fixtures/<name>/grads.safetensors:
  loss                         F32 [1]   transformers' loss (mean over B*(T-1) predicted tokens)
  <checkpoint tensor name>     F32 ...   d loss / d parameter, under the names on disk (routed
                                         experts one tensor per expert, as seek.c's table has them)
Tied embeddings have one gradient (both uses summed), stored as model.embed_tokens.weight.

Run (needs torch, transformers 5.x, safetensors; CPU only):
    CUDA_VISIBLE_DEVICES= python3 scripts/gen_grad_goldens.py tests/fixtures v3 v3_noq ...
"""
import os
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import load_model, split_fused_experts  # noqa: E402


def main():
    root, names = sys.argv[1], sys.argv[2:]
    torch.use_deterministic_algorithms(True)
    for name in names:
        d = os.path.join(root, name)
        model, info = load_model(d)
        ids = load_file(os.path.join(d, "golden.safetensors"))["input_ids"]
        model.zero_grad()
        out = model(ids, labels=ids)
        out.loss.backward()
        grads = {k: p.grad.detach().float().clone() for k, p in model.named_parameters() if p.grad is not None}
        cfg = model.config
        inter = getattr(cfg, "moe_intermediate_size", None) or 0
        grads, _, nfused = split_fused_experts(grads, {}, inter, cfg.hidden_size)
        # parameter names end in .weight on disk; fused expert tensors were split above
        on_disk = set(load_file(os.path.join(d, "model.safetensors")).keys()) if os.path.exists(
            os.path.join(d, "model.safetensors")) else None
        if on_disk is not None:
            missing = sorted(k for k in grads if k not in on_disk)
            assert not missing, f"{name}: gradient names not on disk: {missing[:5]}"
        grads = {k: v.contiguous() for k, v in grads.items()}
        grads["loss"] = out.loss.detach().float().reshape(1)
        save_file(grads, os.path.join(d, "grads.safetensors"),
                  metadata={"transformers": transformers.__version__, "torch": torch.__version__,
                            "what": "d loss(labels=input_ids) / d parameter, fp32 CPU eager"})
        n = sum(v.numel() for k, v in grads.items() if k != "loss")
        print(f"{name}: loss {out.loss.item():.6f}, {len(grads) - 1} gradient tensors, {n} values, "
              f"{nfused} fused expert tensors split", flush=True)


if __name__ == "__main__":
    main()
