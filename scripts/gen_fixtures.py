#!/usr/bin/env python3
"""Generate the Hugging Face golden fixtures under tests/fixtures/ for seek.c.

Each fixture is a tiny, randomly initialised model saved as a Hugging Face model folder
(config.json + safetensors weights) plus golden.safetensors holding what transformers computes
for it on the CPU in fp32 with eager attention:

  input_ids      I64 [2, 7]            seeded random ids in [3, vocab)
  logits         F32 [2, 7, vocab]     model(input_ids).logits
  hidden_states  F32 [layers+1, 2, 7, hidden]
                                       torch.stack(model(input_ids, output_hidden_states=True).hidden_states)
  greedy_ids     I64 [2, 8]            8 greedy tokens, full forward (no KV cache) on the growing sequence
  greedy_margin  F32 [2, 8]            top-1 minus top-2 logit at each greedy step
  blocks.L.mlp.hook_expert_indices  I64 [2, 7, K]   (each MoE layer L) experts chosen by HF, ascending
  blocks.L.mlp.hook_expert_weights  F32 [2, 7, K]   their final gate weights, permuted alongside

Run (needs torch, transformers 5.x, safetensors; CPU only):
    CUDA_VISIBLE_DEVICES= python3 scripts/gen_fixtures.py --out tests/fixtures \
        [--summary summary.json] [--sources sources.tar.gz] [--only v3,llama_gqa]

The script is deterministic for a given torch/transformers version: weights come from fixed
per-fixture seeds, inputs from per-fixture input seeds (the first that passes the margin checks
is kept, up to 30 tries).
"""
import argparse
import copy
import glob
import json
import math
import os
import re
import shutil
import sys
import tarfile
import traceback
from functools import partial

import torch
import torch.nn.functional as F

B, T, NGEN = 2, 7, 8
MAX_TRIES = 30
GREEDY_REL_MIN = 1e-3  # greedy margin must be >= this * max|logit| at every step
ROUTE_GAP_MIN = 1e-5   # K-th vs (K+1)-th selection score (and group selection) gap
FP8_BLOCK = 16
FP8_MAX = 448.0

LOG_LINES = []


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    LOG_LINES.append(s)


# --------------------------------------------------------------------------------------------
# Fixture definitions
# --------------------------------------------------------------------------------------------

COMMON = dict(vocab_size=256, max_position_embeddings=128, bos_token_id=0, eos_token_id=1,
              hidden_act="silu", attention_bias=False)

V3_BASE = dict(COMMON, hidden_size=48, intermediate_size=64, moe_intermediate_size=8,
               num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
               n_shared_experts=1, n_routed_experts=32, routed_scaling_factor=2.5,
               kv_lora_rank=24, q_lora_rank=32, qk_rope_head_dim=8, v_head_dim=12,
               qk_nope_head_dim=16, n_group=8, topk_group=4, num_experts_per_tok=4,
               first_k_dense_replace=1, norm_topk_prob=True, rms_norm_eps=1e-6,
               rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
               rope_interleave=True, tie_word_embeddings=False)

V2_BASE = dict(COMMON, hidden_size=48, intermediate_size=64, moe_intermediate_size=8,
               num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
               n_shared_experts=2, n_routed_experts=16, num_experts_per_tok=3,
               routed_scaling_factor=2.0, topk_method="greedy", norm_topk_prob=False,
               first_k_dense_replace=1, q_lora_rank=None, kv_lora_rank=24,
               qk_rope_head_dim=8, v_head_dim=12, qk_nope_head_dim=16, rms_norm_eps=1e-6,
               rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
               tie_word_embeddings=False)

YARN_V3 = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
           "original_max_position_embeddings": 32, "beta_fast": 32.0, "beta_slow": 1.0,
           "mscale": 0.9, "mscale_all_dim": 0.8}
YARN_V2 = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
           "original_max_position_embeddings": 32, "beta_fast": 32.0, "beta_slow": 1.0,
           "mscale": 0.707, "mscale_all_dim": 0.707}

LLAMA = dict(COMMON, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=True,
             rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})


def fixture_specs():
    return [
        dict(name="v3", model_type="deepseek_v3", cfg=dict(V3_BASE), wseed=1001, iseed=100,
             disk_dtype="float32"),
        dict(name="v3_yarn", model_type="deepseek_v3",
             cfg=dict(V3_BASE, rope_parameters=dict(YARN_V3)), wseed=1002, iseed=200,
             disk_dtype="float32", sharded=True),
        dict(name="v3_noq", model_type="deepseek_v3",
             cfg=dict(V3_BASE, q_lora_rank=None, rope_interleave=False, rms_norm_eps=1e-5),
             wseed=1003, iseed=300, disk_dtype="bfloat16"),
        dict(name="v3_fp8", model_type="deepseek_v3", cfg=dict(V3_BASE), wseed=1001, iseed=400,
             disk_dtype="float32", fp8=True),
        dict(name="v2_greedy", model_type="deepseek_v2", cfg=dict(V2_BASE), wseed=1005,
             iseed=500, disk_dtype="float32", extra_json={"scoring_func": "softmax"}),
        dict(name="v2_group", model_type="deepseek_v2",
             cfg=dict(V2_BASE, topk_method="group_limited_greedy", n_group=4, topk_group=2,
                      num_experts_per_tok=4, q_lora_rank=32, rope_parameters=dict(YARN_V2)),
             wseed=1006, iseed=600, disk_dtype="float16", extra_json={"scoring_func": "softmax"},
             legacy_rope=True),
        dict(name="llama_gqa", model_type="llama", cfg=dict(LLAMA), wseed=1007, iseed=700,
             disk_dtype="float32"),
    ]


# --------------------------------------------------------------------------------------------
# Pure-torch helpers (no transformers needed)
# --------------------------------------------------------------------------------------------

def init_weights(model, seed, round_dtype=None):
    """Overwrite every parameter (and the V3 router bias) with seeded non-default values."""
    g = torch.Generator().manual_seed(seed)
    counts = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = tuple(p.shape)
            r = torch.randn(shape, generator=g, dtype=torch.float32)
            if "embed_tokens" in name:
                kind, v = "embedding", r
            elif p.ndim == 1 and "norm" in name:
                kind, v = "rmsnorm", 1.0 + 0.3 * r
            elif re.search(r"mlp\.gate\.weight$", name):
                kind, v = "router", 0.4 * r
            elif p.ndim >= 2:
                kind, v = "linear", 0.15 * r
            else:
                raise RuntimeError(f"unclassified parameter {name} {shape}")
            counts[kind] = counts.get(kind, 0) + 1
            p.copy_(v.to(p.dtype))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                r = torch.randn(tuple(b.shape), generator=g, dtype=torch.float32)
                b.copy_((0.1 * r).to(b.dtype))
                counts["router_bias"] = counts.get("router_bias", 0) + 1
        if round_dtype is not None:
            for name, p in model.named_parameters():
                p.copy_(p.detach().to(round_dtype).to(p.dtype))
            for name, b in model.named_buffers():
                if name.endswith("e_score_correction_bias"):
                    b.copy_(b.to(round_dtype).to(b.dtype))
    return counts


def fp8_quantize(w, bs=FP8_BLOCK):
    """DeepSeek-style block quantisation. Returns (q float8_e4m3fn, scale_inv f32, dequant f32)."""
    out, inn = w.shape
    ro, ri = (out + bs - 1) // bs, (inn + bs - 1) // bs
    w = w.float()
    scale = torch.empty(ro, ri, dtype=torch.float32)
    qf = torch.empty(out, inn, dtype=torch.float32)  # e4m3-representable values, kept in f32
    for i in range(ro):
        for j in range(ri):
            blk = w[i * bs:(i + 1) * bs, j * bs:(j + 1) * bs]
            s = blk.abs().max() / FP8_MAX
            if float(s) == 0.0:
                s = torch.tensor(1.0)
            scale[i, j] = s
            qf[i * bs:(i + 1) * bs, j * bs:(j + 1) * bs] = (blk / s).clamp(-FP8_MAX, FP8_MAX).to(
                torch.float8_e4m3fn).float()
    q = qf.to(torch.float8_e4m3fn)
    assert torch.equal(q.float(), qf)
    deq = fp8_dequantize(q, scale, bs)
    return q, scale, deq


def fp8_dequantize(q, scale_inv, bs=FP8_BLOCK):
    out, inn = q.shape
    full = scale_inv.repeat_interleave(bs, 0)[:out].repeat_interleave(bs, 1)[:, :inn]
    return q.float() * full


FP8_TARGET = re.compile(
    r"\.(q_a_proj|q_b_proj|q_proj|kv_a_proj_with_mqa|kv_b_proj|o_proj|gate_proj|up_proj|down_proj)"
    r"\.weight$")


def split_fused_experts(tensors, shard_of, inter, hidden):
    """Rewrite fused experts tensors ([E,2I,H] gate_up_proj, [E,H,I] down_proj) per expert."""
    new, new_shard, nfused = {}, {}, 0
    for k, v in tensors.items():
        m = re.match(r"^(.*\.experts)\.(gate_up_proj|down_proj)(\.weight)?$", k)
        if m and v.ndim == 3:
            nfused += 1
            pre, kind = m.group(1), m.group(2)
            for e in range(v.shape[0]):
                w = v[e]
                if kind == "gate_up_proj":
                    if tuple(w.shape) == (hidden, 2 * inter):
                        w = w.t()
                    assert tuple(w.shape) == (2 * inter, hidden), (k, tuple(v.shape))
                    parts = {"gate_proj": w[:inter], "up_proj": w[inter:]}
                else:
                    if tuple(w.shape) == (inter, hidden):
                        w = w.t()
                    assert tuple(w.shape) == (hidden, inter), (k, tuple(v.shape))
                    parts = {"down_proj": w}
                for pn, pw in parts.items():
                    nk = f"{pre}.{e}.{pn}.weight"
                    new[nk] = pw.contiguous().clone()
                    new_shard[nk] = shard_of.get(k)
        else:
            new[k] = v
            new_shard[k] = shard_of.get(k)
    return new, new_shard, nfused


def route_reference(model_type, cfg, gate_w, bias, x2d):
    """Our own re-implementation of the router (fp32). Returns dict with idx/weights/gaps."""
    n = x2d.shape[0]
    E = cfg["n_routed_experts"]
    K = cfg["num_experts_per_tok"]
    logits = F.linear(x2d.float(), gate_w.float())
    res = {}
    inf = torch.full((n,), float("inf"))

    def group_select(sel, G, topk_group, group_score_fn, fill):
        gs = group_score_fn(sel.view(n, G, E // G))
        gsort = gs.sort(dim=-1, descending=True).values
        ggap = gsort[:, topk_group - 1] - gsort[:, topk_group] if topk_group < G else inf
        gidx = gs.topk(topk_group, dim=-1).indices
        gmask = torch.zeros(n, G).scatter(1, gidx, 1.0).bool()
        emask = gmask.unsqueeze(-1).expand(n, G, E // G).reshape(n, E)
        return sel.masked_fill(~emask, fill), ggap

    def topk_gap(sel):
        ssort = sel.sort(dim=-1, descending=True).values
        kgap = ssort[:, K - 1] - ssort[:, K]
        kgap = torch.where(torch.isnan(kgap), inf, kgap)
        return sel.topk(K, dim=-1).indices, kgap

    if model_type == "deepseek_v3":
        s = logits.sigmoid()
        G, TG = cfg["n_group"], cfg["topk_group"]

        def v3_select(b, fill):
            sb = s + b
            masked, ggap = group_select(sb, G, TG, lambda v: v.topk(2, dim=-1).values.sum(-1), fill)
            idx, kgap = topk_gap(masked)
            return idx, kgap, ggap

        idx, kgap, ggap = v3_select(bias.float(), float("-inf"))
        idx_fill0, _, _ = v3_select(bias.float(), 0.0)
        idx_nobias, _, _ = v3_select(torch.zeros_like(bias.float()), float("-inf"))
        w = s.gather(1, idx)
        if cfg.get("norm_topk_prob", True):
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        w = w * cfg["routed_scaling_factor"]
        same = lambda a, b_: (a.sort(-1).values == b_.sort(-1).values).all(-1)
        res["bias_changes_selection"] = int((~same(idx, idx_nobias)).sum())
        res["fill0_changes_selection"] = int((~same(idx, idx_fill0)).sum())
    else:
        p = logits.softmax(dim=-1)
        if cfg.get("topk_method", "greedy") == "group_limited_greedy":
            masked, ggap = group_select(p, cfg["n_group"], cfg["topk_group"],
                                        lambda v: v.max(dim=-1).values, 0.0)
        else:
            masked, ggap = p, inf
        idx, kgap = topk_gap(masked)
        w = p.gather(1, idx)
        if cfg.get("norm_topk_prob", False):
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        w = w * cfg["routed_scaling_factor"]
    res.update(idx=idx, w=w, kgap=kgap, ggap=ggap)
    return res


def sort_routing(idx, w):
    order = idx.argsort(dim=-1)
    return idx.gather(-1, order), w.gather(-1, order)


def find_tensors(args, kwargs):
    out = [a for a in args if torch.is_tensor(a)]
    out += [v for v in kwargs.values() if torch.is_tensor(v)]
    return out


class MoERecorder:
    """Captures, for every MoE layer, the MoE input, what HF hands its experts, and the MoE output."""

    def __init__(self, model, hidden):
        self.hidden = hidden
        self.data = {}
        self.handles = []
        self.moe_layers = []
        for L, layer in enumerate(model.model.layers):
            mlp = layer.mlp
            if not hasattr(mlp, "experts"):
                continue
            self.moe_layers.append(L)
            self.handles.append(mlp.register_forward_pre_hook(partial(self._pre_mlp, L),
                                                              with_kwargs=True))
            self.handles.append(mlp.register_forward_hook(partial(self._post_mlp, L)))
            if isinstance(mlp.experts, torch.nn.Module) and not isinstance(mlp.experts,
                                                                          torch.nn.ModuleList):
                self.handles.append(mlp.experts.register_forward_pre_hook(
                    partial(self._pre_experts, L), with_kwargs=True))
            if isinstance(getattr(mlp, "gate", None), torch.nn.Module):
                self.handles.append(mlp.gate.register_forward_hook(partial(self._post_gate, L)))

    def reset(self):
        self.data = {L: {} for L in self.moe_layers}

    def _pre_mlp(self, L, mod, args, kwargs):
        self.data[L]["x"] = find_tensors(args, kwargs)[0].detach().clone()

    def _post_mlp(self, L, mod, args, out):
        o = out[0] if isinstance(out, tuple) else out
        self.data[L]["out"] = o.detach().clone()

    def _pre_experts(self, L, mod, args, kwargs):
        ts = find_tensors(args, kwargs)
        ints = [t for t in ts if not t.is_floating_point()]
        floats = [t for t in ts if t.is_floating_point()]
        hid = [t for t in floats if t.shape[-1] == self.hidden]
        oth = [t for t in floats if t.shape[-1] != self.hidden]
        if ints and oth:
            self.data[L]["exp_idx"] = ints[0].detach().clone()
            self.data[L]["exp_w"] = oth[0].detach().clone()
        self.data[L]["exp_nargs"] = (len(args), sorted(kwargs.keys()),
                                     [tuple(t.shape) for t in ts], [str(t.dtype) for t in ts])

    def _post_gate(self, L, mod, args, out):
        if isinstance(out, tuple):
            ts = [t for t in out if torch.is_tensor(t)]
            self.data[L]["gate_out"] = [t.detach().clone() for t in ts]


# --------------------------------------------------------------------------------------------
# transformers-dependent part
# --------------------------------------------------------------------------------------------

def make_config(spec):
    import transformers
    kw = copy.deepcopy(spec["cfg"])
    cls = {"deepseek_v3": transformers.DeepseekV3Config, "deepseek_v2": transformers.DeepseekV2Config,
           "llama": transformers.LlamaConfig}[spec["model_type"]]
    cfg = cls(**kw)
    for k, v in spec.get("extra_json", {}).items():
        setattr(cfg, k, v)
    return cfg


def new_model(cfg, seed):
    from transformers import AutoModelForCausalLM
    torch.manual_seed(seed)
    try:
        m = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager",
                                             experts_implementation="eager")
    except Exception as e:
        log("  from_config without experts_implementation:", repr(e)[:200])
        m = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    return m.float().eval()


def load_model(d):
    from transformers import AutoModelForCausalLM
    kw = dict(dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    try:
        m, info = AutoModelForCausalLM.from_pretrained(d, experts_implementation="eager", **kw)
    except Exception as e:
        log("  from_pretrained without experts_implementation:", repr(e)[:200])
        m, info = AutoModelForCausalLM.from_pretrained(d, **kw)
    info = {k: (sorted(v) if isinstance(v, (set, list)) else str(v)) for k, v in info.items()}
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys",
                                                           "mismatched_keys")}
    if bad:
        log("  LOADING INFO PROBLEM:", json.dumps(bad)[:2000])
    return m.eval(), info


def expert_weights(mlp, e, inter, hidden):
    ex = mlp.experts
    if isinstance(ex, torch.nn.ModuleList):
        return ex[e].gate_proj.weight, ex[e].up_proj.weight, ex[e].down_proj.weight
    gu, dp = ex.gate_up_proj[e], ex.down_proj[e]
    if tuple(gu.shape) == (hidden, 2 * inter):
        gu = gu.t()
    if tuple(dp.shape) == (inter, hidden):
        dp = dp.t()
    return gu[:inter], gu[inter:], dp


def my_moe(mlp, x2d, idx, w, inter, hidden):
    out = torch.zeros_like(x2d)
    for t in range(x2d.shape[0]):
        for k in range(idx.shape[1]):
            wg, wu, wd = expert_weights(mlp, int(idx[t, k]), inter, hidden)
            h = F.silu(x2d[t] @ wg.t()) * (x2d[t] @ wu.t())
            out[t] += w[t, k] * (h @ wd.t())
    return out + mlp.shared_experts(x2d)


def analyse_routing(model, spec, cfgd, rec, what):
    """Turn one forward's recordings into per-layer routing tensors and statistics."""
    H = cfgd["hidden_size"]
    K = cfgd["num_experts_per_tok"]
    layers = {}
    stats = dict(kgap_min=float("inf"), ggap_min=float("inf"), bias_changes=0, fill0_changes=0,
                 idx_mismatch=0, w_maxdiff=0.0, moe_out_maxdiff=0.0, source=set())
    for L in rec.moe_layers:
        d = rec.data[L]
        mlp = model.model.layers[L].mlp
        x2d = d["x"].reshape(-1, H)
        bias = getattr(mlp.gate, "e_score_correction_bias", None)
        if bias is None:
            bias = torch.zeros(cfgd["n_routed_experts"])
        ref = route_reference(spec["model_type"], cfgd, mlp.gate.weight.detach(), bias.detach(), x2d)
        if "exp_idx" in d:
            idx, w = d["exp_idx"].long(), d["exp_w"].float()
            src = "experts-input"
        elif "gate_out" in d:
            g = d["gate_out"]
            idx = [t for t in g if not t.is_floating_point()][0].long()
            w = [t for t in g if t.is_floating_point() and t.shape == idx.shape][0].float()
            src = "gate-output"
        else:
            idx, w = ref["idx"], ref["w"]
            src = "own-reimplementation"
        if w.shape != idx.shape:  # dense [n, E] weights
            w = w.gather(1, idx)
            src += "(dense-weights)"
        stats["source"].add(src)
        idx_s, w_s = sort_routing(idx, w)
        ridx_s, rw_s = sort_routing(ref["idx"], ref["w"])
        stats["idx_mismatch"] += int((idx_s != ridx_s).any(-1).sum())
        if (idx_s == ridx_s).all():
            stats["w_maxdiff"] = max(stats["w_maxdiff"], float((w_s - rw_s).abs().max()))
        stats["kgap_min"] = min(stats["kgap_min"], float(ref["kgap"].min()))
        stats["ggap_min"] = min(stats["ggap_min"], float(ref["ggap"].min()))
        stats["bias_changes"] += ref.get("bias_changes_selection", 0)
        stats["fill0_changes"] += ref.get("fill0_changes_selection", 0)
        with torch.no_grad():
            mine = my_moe(mlp, x2d, idx_s, w_s, cfgd["moe_intermediate_size"], H)
        stats["moe_out_maxdiff"] = max(stats["moe_out_maxdiff"],
                                       float((mine - d["out"].reshape(-1, H)).abs().max()))
        layers[L] = (idx_s.reshape(B, -1, K), w_s.reshape(B, -1, K))
    stats["source"] = sorted(stats["source"])
    return layers, stats


def evaluate(model, spec, cfgd, rec, ids):
    with torch.no_grad():
        if rec:
            rec.reset()
        out = model(ids)
        logits = out.logits.float().clone()
        routing, rstats = (analyse_routing(model, spec, cfgd, rec, "main") if rec else ({}, {}))
        out2 = model(ids, output_hidden_states=True)
        hs = torch.stack([h.float() for h in out2.hidden_states]).clone()
        same_logits = bool(torch.equal(out2.logits.float(), logits))
        seq = ids.clone()
        gids, gmarg, grel = [], [], []
        gk, gg = float("inf"), float("inf")
        for _ in range(NGEN):
            if rec:
                rec.reset()
            lg = model(seq, use_cache=False).logits[:, -1, :].float()
            top = lg.topk(2, dim=-1)
            m = top.values[:, 0] - top.values[:, 1]
            rel = m / lg.abs().max(dim=-1).values
            nxt = lg.argmax(dim=-1)
            assert torch.equal(nxt, top.indices[:, 0])
            gids.append(nxt)
            gmarg.append(m)
            grel.append(rel)
            if rec:
                _, st = analyse_routing(model, spec, cfgd, rec, "greedy")
                gk, gg = min(gk, st["kgap_min"]), min(gg, st["ggap_min"])
            seq = torch.cat([seq, nxt[:, None]], dim=1)
    res = dict(logits=logits, hidden_states=hs, routing=routing, rstats=rstats,
               greedy_ids=torch.stack(gids, 1), greedy_margin=torch.stack(gmarg, 1),
               greedy_rel=torch.stack(grel, 1), greedy_kgap_min=gk, greedy_ggap_min=gg,
               hs_logits_equal=same_logits)
    return res


def acceptable(spec, r):
    ok = float(r["greedy_rel"].min()) >= GREEDY_REL_MIN
    if r["rstats"]:
        ok = ok and min(r["rstats"]["kgap_min"], r["rstats"]["ggap_min"], r["greedy_kgap_min"],
                        r["greedy_ggap_min"]) >= ROUTE_GAP_MIN
        if spec["model_type"] == "deepseek_v3":
            ok = ok and r["rstats"]["bias_changes"] > 0
    return ok


def read_dir_tensors(d):
    from safetensors import safe_open
    tensors, shard_of = {}, {}
    for f in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        base = os.path.basename(f)
        if base == "golden.safetensors":
            continue
        with safe_open(f, framework="pt") as so:
            for k in so.keys():
                tensors[k] = so.get_tensor(k)
                shard_of[k] = base
    return tensors, shard_of


def write_weights(d, tensors, shard_of=None, sharded=False):
    from safetensors.torch import save_file
    for f in glob.glob(os.path.join(d, "model*.safetensors")) + glob.glob(
            os.path.join(d, "model.safetensors.index.json")):
        os.remove(f)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    if not sharded:
        save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        return ["model.safetensors"]
    shards = sorted(set(v for v in (shard_of or {}).values() if v))
    if len(shards) < 2 or any(not (shard_of or {}).get(k) for k in tensors):
        # make our own 3 shards by cumulative size
        keys = sorted(tensors)
        total = sum(tensors[k].numel() * tensors[k].element_size() for k in keys)
        n = 3
        shard_of, acc = {}, 0
        for k in keys:
            i = min(n - 1, int(acc * n / total))
            shard_of[k] = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            acc += tensors[k].numel() * tensors[k].element_size()
        shards = sorted(set(shard_of.values()))
    for s in shards:
        part = {k: v for k, v in tensors.items() if shard_of[k] == s}
        save_file(part, os.path.join(d, s), metadata={"format": "pt"})
    index = {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in tensors.values())},
             "weight_map": {k: shard_of[k] for k in sorted(tensors)}}
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    return shards


def edit_config_json(d, fn):
    p = os.path.join(d, "config.json")
    with open(p) as f:
        c = json.load(f)
    c = fn(c) or c
    with open(p, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")
    return c


def set_dtype_key(c, dt):
    keys = [k for k in ("dtype", "torch_dtype") if k in c] or ["dtype"]
    for k in keys:
        c[k] = dt


def cleanup_dir(d):
    keep = re.compile(r"^(config\.json|generation_config\.json|model\.safetensors|"
                      r"model-\d+-of-\d+\.safetensors|model\.safetensors\.index\.json|"
                      r"golden\.safetensors)$")
    removed = []
    for f in os.listdir(d):
        if not keep.match(f):
            p = os.path.join(d, f)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
            removed.append(f)
    return removed


def tensor_listing(d):
    from safetensors import safe_open
    rows = []
    for f in sorted(glob.glob(os.path.join(d, "model*.safetensors"))):
        with safe_open(f, framework="pt") as so:
            for k in so.keys():
                t = so.get_tensor(k)
                rows.append((os.path.basename(f), k, str(t.dtype).replace("torch.", ""),
                             tuple(t.shape)))
    return rows


def check_hidden_semantics(model, ids):
    """Is hidden_states[-1] the final-normed state? Is hidden_states[L] the layer L-1 output?"""
    outs = []
    hs_ = [lay.register_forward_hook(lambda m, a, o: outs.append((o[0] if isinstance(o, tuple)
                                                                  else o).detach().clone()))
           for lay in model.model.layers]
    with torch.no_grad():
        o = model(ids, output_hidden_states=True)
    for h in hs_:
        h.remove()
    hs = o.hidden_states
    with torch.no_grad():
        normed = model.model.norm(outs[-1])
        emb = model.model.embed_tokens(ids)
    return dict(
        n=len(hs),
        first_is_embedding=bool(torch.equal(hs[0], emb)),
        last_is_final_norm=bool(torch.equal(hs[-1], normed)),
        last_is_raw_last_layer=bool(torch.equal(hs[-1], outs[-1])),
        middle_are_layer_outputs=all(torch.equal(hs[i + 1], outs[i]) for i in range(len(outs) - 1)))


def implementation_facts(model, spec, cfgd):
    f = {}
    attn = model.model.layers[0].self_attn
    f["attn_class"] = type(attn).__name__
    f["attn_scaling"] = float(getattr(attn, "scaling", float("nan")))
    if spec["model_type"] != "llama":
        qk = cfgd["qk_nope_head_dim"] + cfgd["qk_rope_head_dim"]
        f["qk_head_dim^-0.5"] = qk ** -0.5
        rp = cfgd.get("rope_parameters") or {}
        if rp.get("rope_type") == "yarn":
            m = 0.1 * rp["mscale_all_dim"] * math.log(rp["factor"]) + 1.0
            f["qk^-0.5*mscale_all_dim^2"] = qk ** -0.5 * m * m
        for nm in ("q_a_layernorm", "kv_a_layernorm"):
            if getattr(attn, nm, None) is not None:
                f[nm + ".eps"] = float(getattr(attn, nm).variance_epsilon)
    lay = model.model.layers[0]
    f["input_layernorm.eps"] = float(lay.input_layernorm.variance_epsilon)
    f["final_norm.eps"] = float(model.model.norm.variance_epsilon)
    re_ = model.model.rotary_emb
    f["rotary_class"] = type(re_).__name__
    f["rotary_attention_scaling"] = float(getattr(re_, "attention_scaling", float("nan")))
    f["inv_freq"] = [float(x) for x in re_.inv_freq]
    f["config.rope_parameters(loaded)"] = getattr(model.config, "rope_parameters", None)
    f["experts_implementation"] = str(getattr(model.config, "_experts_implementation", None))
    f["attn_implementation"] = str(getattr(model.config, "_attn_implementation", None))
    f["moe_layers"] = [L for L, l_ in enumerate(model.model.layers) if hasattr(l_.mlp, "experts")]
    if f["moe_layers"]:
        mlp = model.model.layers[f["moe_layers"][0]].mlp
        f["moe_class"] = type(mlp).__name__
        f["experts_class"] = type(mlp.experts).__name__
        f["gate_class"] = type(mlp.gate).__name__
        f["expert_param_shapes"] = [(n, list(p.shape)) for n, p in
                                    list(mlp.experts.named_parameters())[:6]]
    # V3 router: empirical -inf vs 0.0 fill for masked groups (all biased scores negative)
    if spec["model_type"] == "deepseek_v3" and f["moe_layers"]:
        gate = copy.deepcopy(model.model.layers[f["moe_layers"][0]].mlp.gate)
        with torch.no_grad():
            gate.e_score_correction_bias.fill_(-2.0)
            x = torch.randn(64, cfgd["hidden_size"], generator=torch.Generator().manual_seed(5))
            out = gate(x)
        ts = out if isinstance(out, tuple) else (out,)
        hidx = [t for t in ts if torch.is_tensor(t) and not t.is_floating_point()]
        if hidx:
            hidx = hidx[0].sort(-1).values
            r_inf = route_reference("deepseek_v3", cfgd, gate.weight, gate.e_score_correction_bias, x)
            # fill 0.0 variant
            s = F.linear(x, gate.weight).sigmoid() + gate.e_score_correction_bias
            G, E = cfgd["n_group"], cfgd["n_routed_experts"]
            gsc = s.view(64, G, E // G).topk(2, dim=-1).values.sum(-1)
            gi = gsc.topk(cfgd["topk_group"], dim=-1).indices
            em = torch.zeros(64, G).scatter(1, gi, 1.0).bool().unsqueeze(-1).expand(64, G, E // G)
            i0 = s.masked_fill(~em.reshape(64, E), 0.0).topk(cfgd["num_experts_per_tok"]).indices
            f["v3_router_fill_test(all biased scores<0)"] = dict(
                matches_minus_inf=bool(torch.equal(hidx, r_inf["idx"].sort(-1).values)),
                matches_zero_fill=bool(torch.equal(hidx, i0.sort(-1).values)))
        f["v3_router_forward_returns"] = [f"{t.dtype}{list(t.shape)}" for t in ts if torch.is_tensor(t)]
    return f


def build_fixture(spec, outroot, tv):
    import transformers
    name = spec["name"]
    d = os.path.join(outroot, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    log(f"=== {name} ===")
    cfg = make_config(spec)
    cfgd = cfg.to_dict()
    log("  config rope_parameters:", cfgd.get("rope_parameters"), " head_dim:", cfgd.get("head_dim"))
    round_dt = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[
        spec["disk_dtype"]]
    model = new_model(cfg, spec["wseed"])
    counts = init_weights(model, spec["wseed"], round_dt)
    log("  init counts:", counts, " experts impl:",
        getattr(model.config, "_experts_implementation", None))
    if spec["model_type"] == "llama":
        log("  lm_head tied to embed:",
            model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr())
    summary = dict(name=name, model_type=spec["model_type"], weight_seed=spec["wseed"],
                   disk_dtype=spec["disk_dtype"], init_counts=counts)

    # save with HF first
    save_kw = {"max_shard_size": "200KB"} if spec.get("sharded") else {}
    model.save_pretrained(d, **save_kw)
    hf_files = sorted(os.listdir(d))
    log("  save_pretrained wrote:", hf_files)
    tensors, shard_of = read_dir_tensors(d)
    hf_names = sorted(tensors)
    fused_names = [k for k in hf_names if re.search(r"(^|\.)experts\.(gate_up_proj|down_proj)", k)]
    log(f"  HF saved {len(hf_names)} tensors; fused expert tensors on disk: {fused_names[:4]}")
    summary["hf_saved_fused_experts"] = bool(fused_names)
    inter = cfgd.get("moe_intermediate_size", 0)
    tensors, shard_of, nfused = split_fused_experts(tensors, shard_of, inter, cfgd["hidden_size"])
    summary["fused_tensors_split"] = nfused

    golden_model = model
    if spec.get("fp8"):
        # Quantise in the per-expert (checkpoint) layout, load dequantised weights into a plain model.
        q_tensors, deq_tensors, nq = {}, {}, 0
        for k, v in tensors.items():
            if FP8_TARGET.search(k) and v.ndim == 2:
                q, sc, deq = fp8_quantize(v)
                q_tensors[k] = q
                q_tensors[k + "_scale_inv"] = sc
                deq_tensors[k] = deq
                nq += 1
            else:
                q_tensors[k] = v
                deq_tensors[k] = v
        log(f"  fp8: quantised {nq} tensors")
        tmp = d + "_dequant_tmp"
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        shutil.copytree(d, tmp)
        write_weights(tmp, deq_tensors)
        golden_model, info = load_model(tmp)
        summary["fp8_quantised_tensors"] = nq
        # sanity: dequantised weights differ from the originals (the quantisation matters)
        diffs = [float((deq_tensors[k] - tensors[k]).abs().max()) for k in tensors
                 if k in deq_tensors and FP8_TARGET.search(k)]
        summary["fp8_max_weight_change"] = max(diffs)
        write_weights(d, q_tensors)
        edit_config_json(d, lambda c: c.update(quantization_config={
            "quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
            "weight_block_size": [FP8_BLOCK, FP8_BLOCK]}))
    else:
        if round_dt is not None:
            tensors = {k: (v if k.endswith("e_score_correction_bias") else v.to(round_dt))
                       for k, v in tensors.items()}
        need_shards = spec.get("sharded", False) and not os.path.exists(
            os.path.join(d, "model.safetensors.index.json"))
        if nfused or round_dt is not None or need_shards:
            write_weights(d, tensors, shard_of, sharded=spec.get("sharded", False))
        if round_dt is not None:
            edit_config_json(d, lambda c: set_dtype_key(c, spec["disk_dtype"]))
    if spec.get("extra_json"):
        edit_config_json(d, lambda c: c.update(spec["extra_json"]))

    # seed search + goldens
    rec = MoERecorder(golden_model, cfgd["hidden_size"]) if spec["model_type"] != "llama" else None
    tries, chosen = [], None
    V = cfgd["vocab_size"]
    for t in range(MAX_TRIES):
        iseed = spec["iseed"] + t
        ids = torch.randint(3, V, (B, T), generator=torch.Generator().manual_seed(iseed))
        r = evaluate(golden_model, spec, cfgd, rec, ids)
        row = dict(input_seed=iseed, greedy_margin_min=float(r["greedy_margin"].min()),
                   greedy_rel_margin_min=float(r["greedy_rel"].min()),
                   max_abs_logit=float(r["logits"].abs().max()))
        if r["rstats"]:
            row.update(route_kgap_min=r["rstats"]["kgap_min"], route_ggap_min=r["rstats"]["ggap_min"],
                       greedy_route_kgap_min=r["greedy_kgap_min"],
                       greedy_route_ggap_min=r["greedy_ggap_min"],
                       bias_changes_selection=r["rstats"]["bias_changes"],
                       fill0_changes_selection=r["rstats"]["fill0_changes"],
                       hf_vs_own_idx_mismatch=r["rstats"]["idx_mismatch"],
                       hf_vs_own_weight_maxdiff=r["rstats"]["w_maxdiff"],
                       own_moe_vs_hf_out_maxdiff=r["rstats"]["moe_out_maxdiff"],
                       routing_source=r["rstats"]["source"])
        row["accepted"] = acceptable(spec, r)
        tries.append(row)
        log("  try", json.dumps(row))
        if row["accepted"]:
            chosen = (ids, r, row)
            break
    if chosen is None:
        log("  WARNING: no input seed passed all checks; keeping the best greedy margin")
        best = max(range(len(tries)), key=lambda i: tries[i]["greedy_rel_margin_min"])
        iseed = tries[best]["input_seed"]
        ids = torch.randint(3, V, (B, T), generator=torch.Generator().manual_seed(iseed))
        chosen = (ids, evaluate(golden_model, spec, cfgd, rec, ids), tries[best])
    ids, r, row = chosen
    summary["tries"] = tries
    summary["chosen"] = row
    summary["greedy_ids"] = r["greedy_ids"].tolist()
    summary["greedy_margin"] = r["greedy_margin"].tolist()
    summary["hidden_states_logits_equal_plain_call"] = r["hs_logits_equal"]

    g = {"input_ids": ids.to(torch.int64), "logits": r["logits"],
         "hidden_states": r["hidden_states"], "greedy_ids": r["greedy_ids"].to(torch.int64),
         "greedy_margin": r["greedy_margin"].float()}
    for L, (idx, w) in r["routing"].items():
        g[f"blocks.{L}.mlp.hook_expert_indices"] = idx.to(torch.int64)
        g[f"blocks.{L}.mlp.hook_expert_weights"] = w.float()
    g = {k: v.detach().contiguous().clone() for k, v in g.items()}
    meta = {"fixture": name, "transformers": tv["transformers"], "torch": tv["torch"],
            "safetensors": tv["safetensors"], "weight_seed": str(spec["wseed"]),
            "input_seed": str(row["input_seed"]), "attn_implementation": "eager",
            "experts_implementation": str(getattr(golden_model.config, "_experts_implementation",
                                                  None)),
            "device": "cpu", "compute_dtype": "float32", "disk_dtype": spec["disk_dtype"],
            "generator": "scripts/gen_fixtures.py"}
    from safetensors.torch import save_file
    save_file(g, os.path.join(d, "golden.safetensors"), metadata=meta)
    log("  golden shapes:", {k: list(v.shape) for k, v in g.items()})

    # implementation facts + hidden_states semantics (informational; never fatal)
    try:
        summary["facts"] = implementation_facts(golden_model, spec, cfgd)
    except Exception:
        summary["facts"] = {"error": traceback.format_exc()}
    try:
        summary["hidden_states_semantics"] = check_hidden_semantics(golden_model, ids)
    except Exception:
        summary["hidden_states_semantics"] = {"error": traceback.format_exc()}
    log("  facts:", json.dumps(summary["facts"], default=str))
    log("  hidden_states semantics:", summary["hidden_states_semantics"])

    # legacy config rewrite (v2_group)
    if spec.get("legacy_rope"):
        before, _ = load_model(d)
        with torch.no_grad():
            lb = before(ids).logits
        summary["reload_before_legacy_equal_golden"] = bool(torch.equal(lb, r["logits"]))

        def to_legacy(c):
            rp = c.pop("rope_parameters", None) or dict(spec["cfg"]["rope_parameters"])
            c["rope_theta"] = float(rp.get("rope_theta", 10000.0))
            rs = {"type": "yarn"}
            for k in ("factor", "original_max_position_embeddings", "beta_fast", "beta_slow",
                      "mscale", "mscale_all_dim"):
                rs[k] = rp[k]
            c["rope_scaling"] = rs
        edit_config_json(d, to_legacy)

    # (a) listing (b) reload check (c) cleanup
    removed = cleanup_dir(d)
    if os.path.exists(d + "_dequant_tmp"):
        shutil.rmtree(d + "_dequant_tmp")
    listing = tensor_listing(d)
    names = [x[1] for x in listing]
    summary["disk_tensors"] = len(listing)
    summary["disk_files"] = sorted(os.listdir(d))
    summary["removed_files"] = removed
    fused_left = [n for n in names if re.search(r"(^|\.)experts\.(gate_up_proj|down_proj)", n)]
    per_expert = [n for n in names if re.search(r"\.experts\.\d+\.(gate|up|down)_proj\.weight$", n)]
    summary["per_expert_tensors"] = len(per_expert)
    if fused_left:
        log("  ERROR: fused experts still on disk:", fused_left)
    dts = {}
    for _, n, dt, _ in listing:
        dts[dt] = dts.get(dt, 0) + 1
    summary["disk_dtypes"] = dts
    log("  disk files:", summary["disk_files"], " dtypes:", dts, " per-expert tensors:",
        len(per_expert))
    for row_ in listing[:8]:
        log("   ", row_)

    if spec.get("fp8"):
        tensors_disk, _ = read_dir_tensors(d)
        ok = True
        for k, v in tensors_disk.items():
            if k.endswith("_scale_inv"):
                continue
            if v.dtype == torch.float8_e4m3fn:
                deq = fp8_dequantize(v, tensors_disk[k + "_scale_inv"])
                ok = ok and bool(torch.equal(deq, deq_tensors[k]))
            else:
                ok = ok and bool(torch.equal(v.float(), deq_tensors[k].float()))
        summary["fp8_disk_dequant_matches_golden_weights"] = ok
        # tensors with partial 16x16 blocks (where rows//scale_rows or cols//scale_cols != 16)
        partial = sorted({re.sub(r"experts\.\d+\.", "experts.E.", re.sub(r"^model\.layers\.\d+\.", "", k)) + str(list(v.shape))
                          for k, v in tensors_disk.items() if v.dtype == torch.float8_e4m3fn and
                          (v.shape[0] % FP8_BLOCK or v.shape[1] % FP8_BLOCK)})
        summary["fp8_partial_block_tensors"] = partial
        log("  fp8 tensors with partial blocks:", partial)
        log("  fp8 on-disk dequant == golden model weights:", ok)
        try:
            from transformers import AutoModelForCausalLM, FineGrainedFP8Config
            qc = FineGrainedFP8Config(weight_block_size=(FP8_BLOCK, FP8_BLOCK), dequantize=True)
            m8 = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                      attn_implementation="eager",
                                                      quantization_config=qc)
            with torch.no_grad():
                l8 = m8(ids).logits.float()
            diff = float((l8 - r["logits"]).abs().max())
            summary["hf_fp8_dequantize_load_maxdiff"] = diff
            log("  HF FineGrainedFP8(dequantize=True) load: max|dlogit| =", diff)
        except Exception as e:  # informational only
            summary["hf_fp8_dequantize_load_maxdiff"] = "failed: " + repr(e)[:300]
            log("  HF fp8 dequantize load failed (informational):", repr(e)[:300])
    else:
        m2, info = load_model(d)
        with torch.no_grad():
            l2 = m2(ids).logits.float()
            o2 = m2(ids, output_hidden_states=True)
            h2 = torch.stack([h.float() for h in o2.hidden_states])
        summary["reload_logits_bitwise_equal"] = bool(torch.equal(l2, r["logits"]))
        summary["reload_logits_maxdiff"] = float((l2 - r["logits"]).abs().max())
        summary["reload_hidden_bitwise_equal"] = bool(torch.equal(h2, r["hidden_states"]))
        summary["reload_loading_info"] = info
        summary["reload_config_rope_parameters"] = getattr(m2.config, "rope_parameters", None)
        log("  reload: logits bitwise equal:", summary["reload_logits_bitwise_equal"],
            " maxdiff:", summary["reload_logits_maxdiff"], " hidden equal:",
            summary["reload_hidden_bitwise_equal"], " rope:", summary["reload_config_rope_parameters"])
    with open(os.path.join(d, "config.json")) as f:
        summary["config_json"] = json.load(f)
    summary["bytes"] = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
    return summary


def dump_sources(path):
    import transformers
    root = os.path.dirname(transformers.__file__)
    rels = ["models/deepseek_v3/modeling_deepseek_v3.py",
            "models/deepseek_v3/configuration_deepseek_v3.py",
            "models/deepseek_v2/modeling_deepseek_v2.py",
            "models/deepseek_v2/configuration_deepseek_v2.py",
            "models/llama/modeling_llama.py", "models/llama/configuration_llama.py",
            "models/qwen2_moe/modeling_qwen2_moe.py",
            "modeling_rope_utils.py", "integrations/moe.py", "integrations/finegrained_fp8.py",
            "conversion_mapping.py", "utils/output_capturing.py", "masking_utils.py",
            "models/deepseek_v3/modular_deepseek_v3.py", "models/deepseek_v2/modular_deepseek_v2.py"]
    with tarfile.open(path, "w:gz") as tf:
        for r_ in rels:
            p = os.path.join(root, r_)
            if os.path.exists(p):
                tf.add(p, arcname="transformers/" + r_)
            else:
                log("  source not found:", r_)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures")
    ap.add_argument("--summary", default=None)
    ap.add_argument("--sources", default=None)
    ap.add_argument("--only", default=None)
    a = ap.parse_args()
    import safetensors
    import transformers
    torch.set_grad_enabled(False)
    tv = {"transformers": transformers.__version__, "torch": torch.__version__,
          "safetensors": safetensors.__version__}
    log("versions:", tv, "python", sys.version.split()[0])
    if a.sources:
        try:
            dump_sources(a.sources)
        except Exception:
            log(traceback.format_exc())
    os.makedirs(a.out, exist_ok=True)
    only = set(a.only.split(",")) if a.only else None
    summaries = []
    for spec in fixture_specs():
        if only and spec["name"] not in only:
            continue
        try:
            summaries.append(build_fixture(spec, a.out, tv))
        except Exception:
            log(f"FIXTURE {spec['name']} FAILED:\n" + traceback.format_exc())
            summaries.append(dict(name=spec["name"], error=traceback.format_exc()))
        if a.summary:
            with open(a.summary, "w") as f:
                json.dump(dict(versions=tv, fixtures=summaries), f, indent=1, default=str)
    log("done:", [(s["name"], "error" in s) for s in summaries])


if __name__ == "__main__":
    main()
