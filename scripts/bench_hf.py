"""bench_hf.py: the peer seek's GPU backends are measured against, run in the same device call as
`seek bench --backend cuda|cuda-fast` (docs/cuda-fast.md, "Speed"): Hugging Face transformers on
PyTorch, bf16, the same config with random weights, the same batch.

  python3 scripts/bench_hf.py [CONFIG_DIR] [--batch 8] [--seq-len 1024] [--impl sdpa:grouped_mm:compile ...]

For each implementation (attention : experts : eager|compile) it measures, medians of timed runs
after warm-ups, with torch.cuda.synchronize around each timing:
  forward   tokens/s of one no-grad forward over batch x seq-len tokens (logits included);
  training  tokens/s of loss.backward() and a fused AdamW step;
  peak      torch.cuda.max_memory_allocated over the training steps;
and once, eagerly: batch-1 greedy decode tokens/s after a 16-token prompt (generate, KV cache),
the setting `seek bench` decodes in. Prints one line per figure and writes bench_hf.json to $OUT
(or the current folder)."""
import json, os, statistics, sys, time

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def timed(fn, warm, reps):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        t.append(time.perf_counter() - t0)
    return statistics.median(t)


def build(cfg, attn, experts):
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(cfg, attn_implementation=attn, torch_dtype=torch.bfloat16).cuda()
    if experts != "eager":
        try:
            m.set_experts_implementation(experts)
        except Exception as e:  # older transformers: say so, measure what runs
            print(f"experts implementation {experts} not set: {e}", flush=True)
    return m


def main():
    args = sys.argv[1:]
    cdir, B, T, impls = "tests/configs/bench-460m", 8, 1024, []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--batch": B = int(args[i + 1]); i += 2
        elif a == "--seq-len": T = int(args[i + 1]); i += 2
        elif a == "--impl": impls.append(args[i + 1]); i += 2
        else: cdir = a; i += 1
    impls = impls or ["sdpa:grouped_mm:compile"]
    cfg = AutoConfig.from_pretrained(cdir)
    res = {"config": cdir, "batch": B, "seq_len": T, "torch": torch.__version__,
           "gpu": torch.cuda.get_device_name(0)}
    x = torch.randint(3, cfg.vocab_size, (B, T), device="cuda")
    for impl in impls:
        attn, experts, mode = impl.split(":")
        m = build(cfg, attn, experts)
        run = torch.compile(m) if mode == "compile" else m
        r = {}
        try:
            with torch.no_grad():
                dt = timed(lambda: run(input_ids=x).logits, 3, 10)
            r["forward_tok_s"] = B * T / dt
            opt = torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True)

            def step():
                run(input_ids=x, labels=x).loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            torch.cuda.reset_peak_memory_stats()
            dt = timed(step, 3, 10)
            r["train_tok_s"] = B * T / dt
            r["train_ms"] = dt * 1e3
            r["peak_mem_GB"] = torch.cuda.max_memory_allocated() / 1e9
        except Exception as e:
            r["error"] = str(e)[:300]
        res[impl] = r
        print(impl, json.dumps(r), flush=True)
        del m, run
        torch.cuda.empty_cache()
    m = build(cfg, "sdpa", "eager").eval()
    p = torch.randint(3, cfg.vocab_size, (1, 16), device="cuda")
    n = 64
    with torch.no_grad():
        dt = timed(lambda: m.generate(p, max_new_tokens=n, min_new_tokens=n, do_sample=False), 1, 3)
    res["decode_b1_tok_s"] = n / dt
    print("decode b1 (eager, generate)", json.dumps({"tok_s": n / dt}), flush=True)
    json.dump(res, open(os.path.join(os.environ.get("OUT", "."), "bench_hf.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
