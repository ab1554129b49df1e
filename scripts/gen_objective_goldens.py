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

  grpo_group.json, grpo_grads.safetensors  (with --grpo) one GRPO group (DeepSeekMath §4.1, as
                              TRL's GRPOTrainer computes it, written here in PyTorch): completions
                              cut from the golden ids, rewards chosen here; v3's reference model is
                              the v3_fp8 fixture (same architecture, other weights; its FP8 weights
                              dequantised here with gen_fixtures' fp8_dequantize), llama_gqa has
                              none (KL 0) and uses Dr. GRPO's switches (no std, no 1/|o_i|).
      loss, <name>            the loss and d loss / d parameter

Run (needs torch, transformers 5.x, safetensors; CPU only):
    CUDA_VISIBLE_DEVICES= python3 scripts/gen_objective_goldens.py tests/fixtures v3 v3_noq ...
    CUDA_VISIBLE_DEVICES= python3 scripts/gen_objective_goldens.py --weighted tests/fixtures v3 llama_gqa
    CUDA_VISIBLE_DEVICES= python3 scripts/gen_objective_goldens.py --grpo tests/fixtures v3 llama_gqa
"""
import json
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


GRPO_SPEC = {
    # fixture: (ref folder or None, scale_rewards, length_norm, beta, clip, rewards)
    "v3": ("../v3_fp8", True, True, 0.04, 0.2, [1.0, 0.0, 0.5, 1.0]),
    "llama_gqa": (None, False, False, 0.0, 0.2, [0.0, 1.0, 1.0, 0.25]),
}


def load_ref(d, ref_dir):
    """The reference policy: the ref folder's weights, FP8 dequantised here, written with d's
    config.json into a temporary folder that transformers loads as it loads the fixtures."""
    import shutil
    import tempfile
    from safetensors.torch import save_file as save_st
    from gen_fixtures import fp8_dequantize
    raw = load_file(os.path.join(ref_dir, "model.safetensors"))
    sd = {}
    for k, v in raw.items():
        if k.endswith("_scale_inv"):
            continue
        if v.dtype == torch.float8_e4m3fn:
            v = fp8_dequantize(v, raw[k + "_scale_inv"])
        sd[k] = v.float().contiguous()
    tmp = tempfile.mkdtemp()
    try:
        shutil.copy(os.path.join(d, "config.json"), tmp)
        save_st(sd, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        model, _ = load_model(tmp)
    finally:
        shutil.rmtree(tmp)
    model.eval()
    return model


def grpo_golden(d, name, model):
    ids = load_file(os.path.join(d, "golden.safetensors"))["input_ids"]
    ref_rel, scale, lnorm, beta, clip, rewards = GRPO_SPEC[name]
    T0 = ids.shape[1]
    P = 3
    prompt = ids[0, :P].tolist()
    # four completions of different lengths from the golden rows
    comps = [ids[0, P:].tolist(), ids[1, P:P + 2].tolist(), ids[1, 1:T0].tolist(), ids[0, P + 1:P + 3].tolist()]
    G = len(comps)
    group = {"prompt": prompt, "completions": comps, "rewards": rewards, "beta": beta, "clip": clip,
             "scale_rewards": scale, "length_norm": lnorm}
    if ref_rel:
        group["ref"] = ref_rel
    with open(os.path.join(d, "grpo_group.json"), "w") as f:
        json.dump(group, f)
    pad = model.config.eos_token_id if model.config.eos_token_id is not None else 0
    lens = [len(c) for c in comps]
    T = P + max(lens)
    rows = torch.full((G, T), pad, dtype=torch.long)
    mask = torch.zeros(G, T - 1)
    for i, c in enumerate(comps):
        rows[i, :P] = torch.tensor(prompt)
        rows[i, P:P + len(c)] = torch.tensor(c)
        mask[i, P - 1:P - 1 + len(c)] = 1.0
    r = torch.tensor(rewards, dtype=torch.float64)
    A = (r - r.mean()) / (r.std() + 1e-4) if scale else r - r.mean()
    A = A.float()[:, None]
    logits = model(rows).logits.float()
    logp = torch.log_softmax(logits[:, :-1].double(), -1).gather(-1, rows[:, 1:, None]).squeeze(-1)
    ratio = torch.exp(logp - logp.detach())
    pg = torch.min(ratio * A, torch.clamp(ratio, 1 - clip, 1 + clip) * A)
    if ref_rel:
        refm = load_ref(d, os.path.normpath(os.path.join(d, ref_rel)))
        with torch.no_grad():
            rl = torch.log_softmax(refm(rows).logits.float()[:, :-1].double(), -1).gather(-1, rows[:, 1:, None]).squeeze(-1)
        kl = torch.exp(rl - logp) - (rl - logp) - 1
    else:
        kl = torch.zeros_like(logp)
    per_tok = -(pg - beta * kl)
    if lnorm:
        loss = ((per_tok * mask).sum(1) / mask.sum(1)).mean()
    else:
        loss = (per_tok * mask).sum() / (G * max(lens))
    loss.backward()
    return loss


def main():
    args = sys.argv[1:]
    weighted = "--weighted" in args
    grpo = "--grpo" in args
    args = [a for a in args if a not in ("--weighted", "--grpo")]
    root, names = args[0], args[1:]
    torch.use_deterministic_algorithms(True)
    meta = {"transformers": transformers.__version__, "torch": torch.__version__}
    for name in names:
        d = os.path.join(root, name)
        model, _ = load_model(d)
        ids = load_file(os.path.join(d, "golden.safetensors"))["input_ids"]
        B, T = ids.shape
        model.zero_grad()
        if grpo:
            out = type("O", (), {"loss": grpo_golden(d, name, model)})
            g = grads_by_name(model, d)
            what = "d (GRPO loss of grpo_group.json, pi_old = pi) / d parameter, fp32 CPU eager"
            fname = "grpo_grads.safetensors"
        elif not weighted:
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
        print(f"{name}: {fname}: loss {out.loss.item():.9f}, {len(g) - 1} tensors", flush=True)


if __name__ == "__main__":
    main()
