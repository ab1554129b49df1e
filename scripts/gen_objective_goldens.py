#!/usr/bin/env python3
"""Gradient goldens for seek.c's objectives as data (TrainBatch targets and weights), from
transformers' autograd and, for the weighted loss transformers has no argument for, PyTorch.

For each fixture folder (tests/fixtures/<name>) and its golden input ids (B, T) this writes:

  sft_grads.safetensors       supervised fine-tuning: transformers' own loss for
                              model(input_ids, labels) with labels = input_ids and
                              labels[b, :P_b] = -100 (the prompt is not predicted; transformers
                              shifts the labels itself), P_b = prompt_len[b].
      prompt_len  I64 [B]     the prompt lengths, chosen here (not by seek.c)
      loss        F32 [1]
      <name>      F32 ...     d loss / d parameter under the checkpoint's names

  weighted_grads.safetensors  (with --weighted) a per-token weighted cross-entropy written in
                              PyTorch on transformers' logits:
                              loss = sum_n w_n * CE_n / count over the count positions with a
                              target (the next token within the window), w_n = weights[b, t].
      weights     F32 [B, T]  the weights, chosen here
      loss, <name>            as above

Run (needs torch, transformers 5.x, safetensors; CPU only):
    CUDA_VISIBLE_DEVICES= python3 scripts/gen_objective_goldens.py tests/fixtures v3 v3_noq ...
    CUDA_VISIBLE_DEVICES= python3 scripts/gen_objective_goldens.py --weighted tests/fixtures v3 llama_gqa
"""
import os
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import load_model, split_fused_experts  # noqa: E402


def prompt_lens(B, T):
    """Prompt lengths that cover the cases: half the sequence, one token, all but one target."""
    pattern = [T // 2, 1, T - 2, 3]
    return torch.tensor([pattern[b % len(pattern)] for b in range(B)], dtype=torch.int64)


def token_weights(B, T):
    """Deterministic, unequal, positive and one negative weight (advantages can be negative)."""
    w = torch.empty(B, T, dtype=torch.float32)
    for b in range(B):
        for t in range(T):
            w[b, t] = 0.25 + 0.5 * ((3 * b + 5 * t) % 7) / 6.0
    w[0, 1] = -0.75
    return w


def grads_by_name(model, d):
    grads = {k: p.grad.detach().float().clone() for k, p in model.named_parameters() if p.grad is not None}
    cfg = model.config
    inter = getattr(cfg, "moe_intermediate_size", None) or 0
    grads, _, _ = split_fused_experts(grads, {}, inter, cfg.hidden_size)
    path = os.path.join(d, "model.safetensors")
    if os.path.exists(path):
        on_disk = set(load_file(path).keys())
        missing = sorted(k for k in grads if k not in on_disk)
        assert not missing, f"{d}: gradient names not on disk: {missing[:5]}"
    return {k: v.contiguous() for k, v in grads.items()}


def main():
    args = sys.argv[1:]
    weighted = "--weighted" in args
    args = [a for a in args if a != "--weighted"]
    root, names = args[0], args[1:]
    torch.use_deterministic_algorithms(True)
    meta = {"transformers": transformers.__version__, "torch": torch.__version__}
    for name in names:
        d = os.path.join(root, name)
        model, _ = load_model(d)
        ids = load_file(os.path.join(d, "golden.safetensors"))["input_ids"]
        B, T = ids.shape
        model.zero_grad()
        if not weighted:
            P = prompt_lens(B, T)
            labels = ids.clone()
            for b in range(B):
                labels[b, : int(P[b])] = -100
            out = model(ids, labels=labels)
            out.loss.backward()
            g = grads_by_name(model, d)
            g["prompt_len"] = P
            what = "d loss(labels = input_ids, -100 on each prompt) / d parameter, fp32 CPU eager"
            fname = "sft_grads.safetensors"
        else:
            w = token_weights(B, T)
            logits = model(ids).logits.float()
            V = logits.shape[-1]
            ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1),
                                                   reduction="none")
            wn = w[:, :-1].reshape(-1)
            loss = (wn.double() * ce.double()).sum() / ce.numel()
            loss.backward()
            g = grads_by_name(model, d)
            g["weights"] = w
            out = type("O", (), {"loss": loss})
            what = "d (sum_n w_n CE_n / count) / d parameter, next-token targets, fp32 CPU eager"
            fname = "weighted_grads.safetensors"
        g["loss"] = out.loss.detach().float().reshape(1)
        save_file(g, os.path.join(d, fname), metadata={**meta, "what": what})
        print(f"{name}: {fname}: loss {out.loss.item():.6f}, {len(g) - 2} gradient tensors", flush=True)


if __name__ == "__main__":
    main()
