#!/usr/bin/env python3
"""Forward + backward step throughput of transformers (PyTorch eager, Python) on CPU: the peer of
bench/model_step_bench.cc. bench/run_model_step.sh runs both back to back.

  model_step_peer.py --make-model DIR [--seed 0] [--batch 4] [--seq 256]
      writes an HF Llama folder (4 layers, hidden 256, 8 heads / 4 kv heads, intermediate 688, vocab 32000, fp32,
      untied LM head) with random weights from the seed, plus input_ids.bin (int64 [B, T], raw little-endian), so
      that both benchmarks use identical weights and tokens.
  model_step_peer.py --model-dir DIR [--threads 2] [--attn sdpa|eager] [--warmup 2] [--steps 5] [--phases]
                     [--malloc default|tuned|nommap]
      times steps of: forward → mean cross-entropy over all shifted positions → backward → zero_grad.

The loss is transformers' own: model(input_ids, labels=input_ids) shifts the labels, upcasts the logits to fp32 and
takes cross_entropy (log_softmax + nll_loss) averaged over the B*(T-1) predicted positions — the same objective as
aligntrain's shift_labels + token_logprobs. attn_implementation defaults to "sdpa" (transformers' default and its
fast path on CPU: it calls the same torch.nn.functional.scaled_dot_product_attention as aligntrain).
Prints one machine-readable line starting with "RESULT " (JSON).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time


def status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def machine_busy_ms():
    """Busy CPU time of the whole machine (all processes, all cores) from /proc/stat, in ms."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:11]]
    return (sum(v) - v[3] - v[4]) * 1000 / os.sysconf("SC_CLK_TCK")


def reset_peak_rss():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def make_model(args):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(args.seed)
    config = LlamaConfig(
        vocab_size=32000, hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
        num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-6, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, initializer_range=0.02)
    model = LlamaForCausalLM(config).to(torch.float32)
    os.makedirs(args.make_model, exist_ok=True)
    model.save_pretrained(args.make_model, safe_serialization=True)
    g = torch.Generator().manual_seed(args.seed + 1)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=g, dtype=torch.int64)
    ids.numpy().tofile(os.path.join(args.make_model, "input_ids.bin"))
    print(f"wrote {args.make_model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
          f"input_ids {tuple(ids.shape)}")


def apply_malloc(mode):
    """The same mallopt settings as model_step_bench --malloc (glibc's M_* constants), set before torch loads."""
    if mode == "default":
        return
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -2, -3, -4
    ok = libc.mallopt(M_TRIM_THRESHOLD, 2047 << 20) == 1 and libc.mallopt(M_TOP_PAD, 64 << 20) == 1
    if mode == "tuned":
        ok = ok and libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1
    if mode == "nommap":
        ok = ok and libc.mallopt(M_MMAP_MAX, 0) == 1
    if not ok:
        sys.exit(f"mallopt failed for --malloc {mode}")


def bench(args):
    apply_malloc(args.malloc)
    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32, attn_implementation=args.attn)
    model.train()  # dropout is 0 in Llama; train() only to match a training step
    ids = torch.from_numpy(np.fromfile(os.path.join(args.model_dir, "input_ids.bin"), dtype=np.int64))
    ids = ids.view(args.batch, args.seq)

    rss_before = status_kb("VmRSS")
    step_ms, phases = [], [[] for _ in range(5)]
    first_loss = None
    faults0 = 0
    for s in range(args.warmup + args.steps):
        timed = s >= args.warmup
        if s == args.warmup:
            reset_peak_rss()
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            faults0 = ru0.ru_minflt
            busy0 = machine_busy_ms()
            timed_start = time.perf_counter()
        t0 = time.perf_counter()
        if not args.phases:
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            model.zero_grad(set_to_none=True)
        else:
            t = time.perf_counter()
            ph = []

            def lap():
                nonlocal t
                now = time.perf_counter()
                ph.append((now - t) * 1000)
                t = now

            hidden = model.model(input_ids=ids).last_hidden_state
            lap()
            h = hidden.detach().requires_grad_(True)
            logits = model.lm_head(h)
            loss = model.loss_function(logits=logits, labels=ids, vocab_size=model.config.vocab_size)
            lap()
            loss.backward()
            lap()
            hidden.backward(h.grad)
            lap()
            model.zero_grad(set_to_none=True)
            lap()
            if timed:
                for i, v in enumerate(ph):
                    phases[i].append(v)
        ms = (time.perf_counter() - t0) * 1000
        if s == 0:
            first_loss = loss.item()
        if timed:
            step_ms.append(ms)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    faults = ru1.ru_minflt - faults0
    user_ms = (ru1.ru_utime - ru0.ru_utime) * 1000 / args.steps
    sys_ms = (ru1.ru_stime - ru0.ru_stime) * 1000 / args.steps
    # Cores' worth of CPU that other processes used while the steps ran (a contended run is not a measurement).
    foreign = max(0.0, (machine_busy_ms() - busy0 - (user_ms + sys_ms) * args.steps)
                  / ((time.perf_counter() - timed_start) * 1000))

    med = statistics.median(step_ms)
    tps = args.batch * args.seq / (med / 1000)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step_peak_kb = status_kb("VmHWM")
    label = f"transformers-{args.attn}"
    print(f"{label}: threads={torch.get_num_threads()} malloc={args.malloc} torch {torch.__version__}  first-step loss {first_loss:.6f}")
    print(f"  step median {med:.1f} ms (best {min(step_ms):.1f})  {tps:.0f} tokens/s  peak RSS {peak_kb / 1024:.0f} MiB "
          f"(during steps {step_peak_kb / 1024:.0f}, before {rss_before / 1024:.0f})  minor faults/step "
          f"{faults // args.steps}  cpu/step user {user_ms:.0f} sys {sys_ms:.0f} ms  "
          f"other processes {foreign:.2f} cores")
    res = {"impl": label, "threads": args.threads, "loss": "cross_entropy", "chunk": 0,
           "malloc": args.malloc, "batch": args.batch, "seq": args.seq,
           "steps": args.steps, "step_ms_median": med, "step_ms_best": min(step_ms), "tokens_per_s": tps,
           "peak_rss_mib": peak_kb / 1024, "step_peak_rss_mib": step_peak_kb / 1024,
           "rss_before_mib": rss_before / 1024, "minor_faults_per_step": faults // args.steps,
           "cpu_user_ms": user_ms, "cpu_sys_ms": sys_ms, "foreign_cores": foreign,
           "first_loss": first_loss}
    if args.phases:
        names = ["body_fwd", "head_fwd", "head_bwd", "body_bwd", "zero_grad"]
        res["phases_ms"] = {n: statistics.median(v) for n, v in zip(names, phases)}
        for n in names:
            print(f"  {n:<9} {res['phases_ms'][n]:7.1f} ms")
    print("RESULT " + json.dumps(res))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--make-model", metavar="DIR")
    p.add_argument("--model-dir")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    p.add_argument("--phases", action="store_true")
    p.add_argument("--malloc", default="default", choices=["default", "tuned", "nommap"])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.make_model:
        make_model(args)
    elif args.model_dir:
        bench(args)
    else:
        p.error("one of --make-model or --model-dir is required")


if __name__ == "__main__":
    sys.exit(main())
