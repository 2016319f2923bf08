#!/usr/bin/env python3
"""The Python peer of `aligntrain run bench/sft_bench.yaml`: the same SFT training loop written the ordinary way
with PyTorch + transformers, for bench/run_sft_step.sh to compare step throughput and peak memory.

  sft_step_peer.py --make-data OUT.jsonl [--examples 512] [--seed 0]
      writes the synthetic {"prompt", "completion"} set: ASCII words, 128-256 tokens per example with the byte
      tokenizer (BOS + prompt bytes + completion bytes + EOS), prompt 20-45% of it.
  sft_step_peer.py --recipe bench/sft_bench.yaml --model-dir DIR --data FILE [--threads 2] [--steps 12]
                   [--attn sdpa|eager] [--malloc default|keep] [--optim default|foreach|fused] [--causal-only] [--profile]
                   [--device cpu|cuda] [--dtype fp32|bf16] [--out FILE.jsonl]
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
  * fp32 throughout by default, model.train() (Llama has no dropout), grads set to None before each step.
  * --device cuda --dtype bf16 (bench/gpu/): the model on the GPU with fp32 weights, AdamW state and gradients
    (aligntrain's fp32 master weights), forwards under torch.autocast(bfloat16) (aligntrain's bf16 weights and
    activations); the loss in fp32 as transformers computes it. Defaults: the recipe's run.device (auto: cuda when
    present) and run.precision. CUDA memory: the caching allocator's peaks (max_memory_allocated / _reserved).
  * data.packing (from the recipe): examples fill rows of at most max_length tokens in sampler order (a new row
    starts when the next example does not fit; a step takes `global` rows), as data/sampler.cc plans them;
    position_ids restart at each document and a 4-D boolean mask [rows, 1, L, L] keeps attention causal inside each
    document (what aligntrain's segment ids do); sdpa then runs with that mask.
  * activation_checkpointing (from the recipe): transformers' gradient checkpointing (use_reentrant=False).
  * timing: a step is timed from choosing its examples to after optimizer.step() and the loss .item(), the span
    aligntrain's train loop times (on CUDA after a torch.cuda.synchronize()); tokens = non-padding tokens of the
    step (aligntrain's "tokens").
"""
import argparse
import contextlib
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


def plan_step(sampler, cursor, global_bs, packing, lengths, max_length):
    """data/sampler.cc plan_step: (rows of example indices, the next cursor). Without packing one example per row;
    with packing, examples fill rows of at most max_length tokens in stream order until `global` rows are full."""
    if not packing:
        return [[sampler.at(cursor + r)] for r in range(global_bs)], cursor + global_bs
    rows = []
    while len(rows) < global_bs:
        row, used = [], 0
        while True:
            i = sampler.at(cursor)
            if row and used + lengths[i] > max_length:
                break
            row.append(i)
            used += lengths[i]
            cursor += 1
        rows.append(row)
    return rows, cursor


def collate(rows, examples, torch):
    """One micro-batch: rows of (possibly packed) documents, right-padded with PAD to the longest row.
    Returns input_ids, attention_mask (2-D, 1 on tokens; None when a row is packed), position_ids or None, a 4-D
    boolean mask or None (packed rows: causal inside each document), labels (completion tokens; -100 elsewhere)."""
    length = max(sum(len(examples[i][0]) for i in row) for row in rows)
    n = len(rows)
    input_ids = torch.full((n, length), PAD, dtype=torch.long)
    attention_mask = torch.zeros((n, length), dtype=torch.long)
    position_ids = torch.zeros((n, length), dtype=torch.long)
    segment = torch.zeros((n, length), dtype=torch.long)
    labels = torch.full((n, length), -100, dtype=torch.long)
    packed = any(len(row) > 1 for row in rows)
    for r, row in enumerate(rows):
        at = 0
        for d, i in enumerate(row):
            ids, plen = examples[i]
            t = torch.tensor(ids, dtype=torch.long)
            input_ids[r, at:at + len(ids)] = t
            attention_mask[r, at:at + len(ids)] = 1
            position_ids[r, at:at + len(ids)] = torch.arange(len(ids))
            segment[r, at:at + len(ids)] = d + 1
            # a document's first token is never a label: nothing in its document predicts it
            labels[r, at + max(1, plen):at + len(ids)] = t[max(1, plen):]
            at += len(ids)
    if not packed:
        return input_ids, attention_mask, None, None, labels
    idx = torch.arange(length)
    causal = idx.view(1, length) <= idx.view(length, 1)                         # [query, key]
    same = segment.unsqueeze(2) == segment.unsqueeze(1)                         # [rows, query, key]
    mask = causal.unsqueeze(0) & same & (segment != 0).unsqueeze(1)
    mask = mask | torch.eye(length, dtype=torch.bool).unsqueeze(0)              # padding queries see themselves
    return input_ids, attention_mask, position_ids, mask.unsqueeze(1), labels


def resolve_device(name, torch):
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA GPU")
    return name


def cuda_peaks(torch, device):
    if device != "cuda":
        return {}
    return {"cuda_peak_allocated_mib": torch.cuda.max_memory_allocated() / 2**20,
            "cuda_peak_reserved_mib": torch.cuda.max_memory_reserved() / 2**20}


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
    packing = bool(stage.get("data", {}).get("packing", False))
    checkpointing = bool(stage.get("activation_checkpointing", False))
    total = args.steps

    import torch
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM

    device = resolve_device(args.device or recipe["run"].get("device", "auto"), torch)
    dtype = args.dtype or recipe["run"].get("precision", "fp32")
    autocast = (torch.autocast(device_type=device, dtype=torch.bfloat16) if dtype == "bf16"
                else contextlib.nullcontext())
    examples = encode(args.data, max_length)
    lengths = [len(ids) for ids, _ in examples]
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32, attn_implementation=args.attn)
    model.to(device)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
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
        step_rows, cursor = plan_step(sampler, cursor, global_bs, packing, lengths, max_length)
        idx = [i for row in step_rows for i in row]
        loss_tokens = sum(len(examples[i][0]) - max(1, examples[i][1]) for i in idx)
        tokens = sum(len(examples[i][0]) for i in idx)
        for p in params:
            p.grad = None
        loss_sum = 0.0
        for start in range(0, global_bs, micro):
            input_ids, attention_mask, position_ids, mask4d, labels = collate(step_rows[start:start + micro],
                                                                             examples, torch)
            # transformers shifts labels inside the loss; num_items_in_batch makes it sum / global loss tokens.
            # --causal-only: no padding mask. With right padding a causal mask alone already hides every pad key
            # from every real query, so the loss and gradients are the same; sdpa then runs with is_causal.
            # Packed rows: the 4-D mask (causal inside each document) and per-document positions.
            if mask4d is not None:
                kw = {"attention_mask": mask4d.to(device), "position_ids": position_ids.to(device)}
            else:
                kw = {"attention_mask": None if args.causal_only else attention_mask.to(device)}
            with autocast:
                loss = model(input_ids=input_ids.to(device), labels=labels.to(device),
                             num_items_in_batch=loss_tokens, **kw).loss
            loss.backward()
            loss_sum += loss.item()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip).item() if clip > 0 else float("nan")
        lr = learning_rate(sched, float(opt["lr"]), step, total)
        for g in optimizer.param_groups:
            g["lr"] = lr
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if prof is not None:
            prof.__exit__(None, None, None)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
        line = {"stage": "sft", "step": step + 1, "loss": loss_sum, "lr": lr, "grad_norm": grad_norm,
                "tokens": tokens, "tokens_per_sec": tokens / dt, "step_sec": dt, **cuda_peaks(torch, device)}
        rows_log.append(line)
        if out:
            out.write(json.dumps(line) + "\n")
            out.flush()
        print(f"step {step + 1}/{total} | loss {loss_sum:.6f} | grad {grad_norm:.3f} | {tokens} tokens | "
              f"{tokens / dt:.0f} tok/s", flush=True)
    if out:
        out.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    import transformers
    res = {"impl": f"transformers-{args.attn}", "causal_only": args.causal_only, "threads": torch.get_num_threads(), "malloc": args.malloc,
           "optim": args.optim, "torch": torch.__version__, "transformers": transformers.__version__,
           "device": device, "dtype": dtype, "packing": packing, "activation_checkpointing": checkpointing,
           "first_loss": rows_log[0]["loss"], "peak_rss_mib": ru.ru_maxrss / 1024, "rss_after_load_mib": rss_loaded / 1024,
           **cuda_peaks(torch, device)}
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
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: the recipe's run.device")
    p.add_argument("--dtype", choices=["fp32", "bf16"],
                   help="bf16: fp32 weights and optimizer, forwards under bf16 autocast (default: run.precision)")
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
