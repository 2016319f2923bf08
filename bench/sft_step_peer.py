#!/usr/bin/env python3
"""The Python peer of `aligntrain run bench/sft_bench.yaml`: the same SFT training loop written the ordinary way
with PyTorch + transformers, for bench/run_sft_step.sh to compare step throughput and peak memory.

  sft_step_peer.py --make-data OUT.jsonl [--examples 512] [--seed 0]
      writes the synthetic {"prompt", "completion"} set: ASCII words, 128-256 tokens per example with the byte
      tokenizer (BOS + prompt bytes + completion bytes + EOS), prompt 20-45% of it.
  sft_step_peer.py --recipe bench/sft_bench.yaml --model-dir DIR --data FILE [--threads 2] [--steps 12]
                   [--attn sdpa|eager] [--malloc default|keep] [--optim default|foreach|fused] [--causal-only] [--profile]
                   [--out FILE.jsonl]
      trains like aligntrain's sft stage and writes one JSON line per step (loss, grad_norm, tokens,
      tokens_per_sec), as aligntrain's metrics.jsonl does; prints a last line "RESULT {json}".

What it does, matching aligntrain (trainer/stages/{sft,train_loop}.cc, data/{encode,collate,sampler}.cc):
  * batch, optimizer, schedule, seed and max_length come from the recipe file, so both sides run one config.
  * tokenisation: [BOS=256] + utf-8 bytes of prompt + utf-8 bytes of completion + [EOS=257]; loss on the
    completion bytes and EOS. Examples longer than max_length are an error here (the data never has any).
  * data order: aligntrain's sampler (Fisher-Yates driven by splitmix64, seeded from (run.seed, epoch)); a step
    takes the next `global` examples and splits them into consecutive micro-batches of `micro` rows.
  * a micro-batch is right-padded with PAD=258 to its longest row, with attention_mask (0 on padding).
  * loss: transformers' own ForCausalLMLoss with num_items_in_batch = completion tokens of the whole global
    batch (fp32 logits, cross_entropy with reduction="sum", divided by that count: exactly what the HF Trainer
    does under gradient accumulation), i.e. the token-mean NLL over the global batch's completion tokens;
    backward per micro-batch accumulates the gradient.
  * torch.nn.utils.clip_grad_norm_(1.0) over all parameters, then torch.optim.AdamW (weight decay only on
    parameters with >= 2 dims), constant / warmup / linear / cosine lr exactly as trainer/optim/schedule.cc.
  * attention: attn_implementation="sdpa" by default (transformers' default, the same
    torch.nn.functional.scaled_dot_product_attention aligntrain calls); "eager" is available.
  * fp32 throughout, model.train() (Llama has no dropout), grads set to None before each step.
  * timing: a step is timed from choosing its examples to after optimizer.step() and the loss .item(), the span
    aligntrain's train loop times; tokens = non-padding tokens of the step (aligntrain's "tokens").
"""
import argparse
import json
import math
import os
import random
import resource
import sys
import time

BOS, EOS, PAD = 256, 257, 258
MASK64 = (1 << 64) - 1


# ---- data --------------------------------------------------------------------------------------------------
WORDS = ("the a of to and in is it that for on with as was at by this be from or have an are but not all can "
         "one two three four five six seven eight nine ten model train loss token batch layer weight gradient "
         "step rate value sort list order number first last next small large fast slow read write keep find "
         "answer question reason because then when where which while after before again every other such only "
         "make take give show tell ask turn move change learn").split()


def make_data(path, n, seed):
    rng = random.Random(seed)

    def text(length):
        s = ""
        while len(s) < length:
            s = (s + " " + rng.choice(WORDS)) if s else rng.choice(WORDS)
        return s[:length]

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        for i in range(n):
            total = rng.randint(128, 256) - 2  # bytes of prompt + completion; + BOS + EOS
            p = int(total * rng.uniform(0.20, 0.45))
            prompt = f"Q{i}: " + text(p - len(f"Q{i}: ") - 1) + "\n"
            completion = text(total - len(prompt))
            assert len(prompt) + len(completion) == total
            f.write(json.dumps({"prompt": prompt, "completion": completion}) + "\n")
    print(f"wrote {path}: {n} examples")


def encode(path, max_length):
    examples = []
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            ex = json.loads(line)
            p = list(ex["prompt"].encode("utf-8"))
            c = list(ex["completion"].encode("utf-8"))
            ids = [BOS] + p + c + [EOS]
            if len(ids) > max_length:
                sys.exit(f"{path}:{line_no}: {len(ids)} tokens > max_length {max_length} (not handled here)")
            examples.append((ids, 1 + len(p)))  # (ids, prompt_len): ids[prompt_len:] carries the loss
    return examples


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def permutation(n, seed, epoch):
    """data/sampler.cc Sampler::permutation."""
    order = list(range(n))
    state = ((seed * 0x100000001B3) & MASK64) ^ ((epoch + 0x5851F42D4C957F2D) & MASK64)
    for i in range(n - 1, 0, -1):
        state, r = splitmix64(state)
        j = r % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


class Sampler:
    def __init__(self, n, seed):
        self.n, self.seed, self.epoch, self.order = n, seed, -1, None

    def at(self, position):
        epoch = position // self.n
        if epoch != self.epoch:
            self.order, self.epoch = permutation(self.n, self.seed, epoch), epoch
        return self.order[position % self.n]


def learning_rate(sched, base_lr, step, total):
    """trainer/optim/schedule.cc learning_rate."""
    w = round(sched.get("warmup_ratio", 0.0) * total) if sched.get("warmup_ratio", 0.0) > 0 else \
        sched.get("warmup_steps", 0)
    if step < w:
        return base_lr * (step + 1) / w
    m = sched.get("min_lr_ratio", 0.0)
    p = min(1.0, max(0.0, (step - w) / max(1, total - w - 1)))
    decay = sched.get("decay", "cosine")
    if decay == "constant":
        return base_lr
    if decay == "linear":
        return base_lr * (1.0 - (1.0 - m) * p)
    return base_lr * (m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * p)))


def apply_malloc(mode):
    """--malloc keep: aligntrain's runtime::keep_freed_memory() (glibc mallopt), before torch loads."""
    if mode == "default":
        return
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    ok = (libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2047 << 20) == 1
          and libc.mallopt(M_TOP_PAD, 64 << 20) == 1)
    if not ok:
        sys.exit("mallopt failed")


def status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def train(args):
    apply_malloc(args.malloc)
    import yaml
    with open(args.recipe) as f:
        recipe = yaml.safe_load(f)
    stage = next(s for s in recipe["stages"] if s["kind"] == "sft")
    opt, sched, batch = stage["optimizer"], stage.get("schedule", {}), stage["batch"]
    seed = int(recipe["run"]["seed"])
    global_bs, micro, max_length = int(batch["global"]), int(batch["micro"]), int(batch["max_length"])
    total = args.steps

    import torch
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM

    examples = encode(args.data, max_length)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32, attn_implementation=args.attn)
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    kw = {}
    if args.optim == "foreach":
        kw["foreach"] = True
    elif args.optim == "fused":
        kw["fused"] = True
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": float(opt.get("weight_decay", 0.0))},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=float(opt["lr"]), betas=tuple(float(b) for b in opt.get("betas", (0.9, 0.999))),
        eps=float(opt.get("eps", 1e-8)), **kw)
    clip = float(opt.get("grad_clip", 1.0))
    params = list(model.parameters())
    sampler = Sampler(len(examples), seed)
    rss_loaded = status_kb("VmRSS")

    out = open(args.out, "w") if args.out else None
    cursor = 0
    rows_log = []
    prof = None
    for step in range(total):
        if args.profile and step == total - 1:
            from torch.profiler import profile, ProfilerActivity
            prof = profile(activities=[ProfilerActivity.CPU])
            prof.__enter__()
        t0 = time.perf_counter()
        idx = [sampler.at(cursor + r) for r in range(global_bs)]
        cursor += global_bs
        loss_tokens = sum(len(examples[i][0]) - max(1, examples[i][1]) for i in idx)
        tokens = sum(len(examples[i][0]) for i in idx)
        for p in params:
            p.grad = None
        loss_sum = 0.0
        for start in range(0, global_bs, micro):
            rows = [examples[i] for i in idx[start:start + micro]]
            length = max(len(ids) for ids, _ in rows)
            input_ids = torch.full((len(rows), length), PAD, dtype=torch.long)
            attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
            labels = torch.full((len(rows), length), -100, dtype=torch.long)
            for r, (ids, plen) in enumerate(rows):
                t = torch.tensor(ids, dtype=torch.long)
                input_ids[r, :len(ids)] = t
                attention_mask[r, :len(ids)] = 1
                labels[r, max(1, plen):len(ids)] = t[max(1, plen):]
            # transformers shifts labels inside the loss; num_items_in_batch makes it sum / global loss tokens.
            # --causal-only: no padding mask. With right padding a causal mask alone already hides every pad key
            # from every real query, so the loss and gradients are the same; sdpa then runs with is_causal.
            loss = model(input_ids=input_ids, attention_mask=None if args.causal_only else attention_mask,
                         labels=labels, num_items_in_batch=loss_tokens).loss
            loss.backward()
            loss_sum += loss.item()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip).item() if clip > 0 else float("nan")
        lr = learning_rate(sched, float(opt["lr"]), step, total)
        for g in optimizer.param_groups:
            g["lr"] = lr
        optimizer.step()
        dt = time.perf_counter() - t0
        if prof is not None:
            prof.__exit__(None, None, None)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
        line = {"stage": "sft", "step": step + 1, "loss": loss_sum, "lr": lr, "grad_norm": grad_norm,
                "tokens": tokens, "tokens_per_sec": tokens / dt, "step_sec": dt}
        rows_log.append(line)
        if out:
            out.write(json.dumps(line) + "\n")
            out.flush()
        print(f"step {step + 1}/{total} | loss {loss_sum:.6f} | grad {grad_norm:.3f} | {tokens} tokens | "
              f"{tokens / dt:.0f} tok/s", flush=True)
    if out:
        out.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    res = {"impl": f"transformers-{args.attn}", "causal_only": args.causal_only, "threads": torch.get_num_threads(), "malloc": args.malloc,
           "optim": args.optim, "torch": torch.__version__, "first_loss": rows_log[0]["loss"],
           "peak_rss_mib": ru.ru_maxrss / 1024, "rss_after_load_mib": rss_loaded / 1024}
    print("RESULT " + json.dumps(res))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--make-data", metavar="OUT")
    p.add_argument("--examples", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipe", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "sft_bench.yaml"))
    p.add_argument("--model-dir")
    p.add_argument("--data")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    p.add_argument("--malloc", default="default", choices=["default", "keep"])
    p.add_argument("--optim", default="default", choices=["default", "foreach", "fused"],
                   help="torch.optim.AdamW implementation (default: its CPU default, the per-tensor loop)")
    p.add_argument("--causal-only", action="store_true",
                   help="pass no attention_mask (right padding makes it redundant): sdpa runs with is_causal")
    p.add_argument("--profile", action="store_true", help="print torch.profiler's op table for the last step")
    p.add_argument("--out", help="per-step JSON lines (like aligntrain's metrics.jsonl)")
    args = p.parse_args()
    if args.make_data:
        make_data(args.make_data, args.examples, args.seed)
    elif args.model_dir and args.data:
        train(args)
    else:
        p.error("--make-data, or --model-dir and --data, are required")


if __name__ == "__main__":
    sys.exit(main())
