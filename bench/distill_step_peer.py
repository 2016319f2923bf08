#!/usr/bin/env python3
"""The Python peer of `aligntrain run bench/distill_bench.yaml`: the same distillation training loop (teacher
forward, student forward and backward, full-vocabulary forward KL) written the ordinary way with PyTorch +
transformers, for bench/run_distill_step.sh to compare step throughput and peak memory.

  distill_step_peer.py --make-data OUT.jsonl [--examples 512] [--seed 0]
      writes the synthetic {"prompt", "completion"} set (bench/sft_step_peer.py's generator).
  distill_step_peer.py --recipe bench/distill_bench.yaml --teacher-dir DIR --student-dir DIR --data FILE
                       [--threads 2] [--steps 11] [--attn sdpa|eager] [--malloc default|keep] [--causal-only]
                       [--profile] [--device cpu|cuda] [--dtype fp32|bf16] [--out FILE.jsonl]
      trains like aligntrain's distill stage (loss type kd) and writes one JSON line per step (loss, grad_norm,
      tokens, tokens_per_sec), as aligntrain's metrics.jsonl does; prints a last line "RESULT {json}".

What it does, matching aligntrain (trainer/stages/{distill,train_loop}.cc, trainer/objectives/distill.cc):
  * batch, loss, optimizer, schedule, seed and max_length come from the recipe file, so both sides run one config.
    Only loss type kd with divergence forward_kl, kd_ratio 1 and lmbda 0 (no student samples) is implemented
    here; anything else is an error.
  * tokenisation, data order, micro-batches and padding: bench/sft_step_peer.py's (imported from it): [BOS=256] +
    prompt bytes + completion bytes + [EOS=257]; aligntrain's Fisher-Yates/splitmix64 sampler seeded from
    (run.seed, epoch); a step takes the next `global` examples in consecutive micro-batches of `micro` rows, each
    right-padded with PAD=258 to its longest row, with attention_mask (0 on padding).
  * loss: with the standard causal shift, at every position whose next token is a completion token (or EOS):
    forward KL(p_teacher || q_student) = sum_v p (log p - log q) over the full vocabulary, in fp32, at the recipe's
    temperature (logits / T); summed over those positions and divided by their count in the whole global batch,
    so the two accumulated micro-batch losses add up to the global token mean. It is written as TRL's GKD trainer
    writes it (generalized_jsd_loss with beta 0): F.kl_div(log q, log p, log_target=True) on log_softmax of the
    full [rows, length, vocab] logits of both models.
  * teacher: model.eval(), requires_grad off, forward under torch.no_grad(); its full logits are kept for the
    micro-batch (the teacher and student logits and both log-softmaxes are [rows, length, vocab] fp32 tensors).
  * torch.nn.utils.clip_grad_norm_(grad_clip) over the student's parameters, then torch.optim.AdamW (weight
    decay only on parameters with >= 2 dims, as aligntrain), constant / warmup / linear / cosine lr exactly as
    trainer/optim/schedule.cc.
  * attention: attn_implementation="sdpa" by default (transformers' default, the same
    torch.nn.functional.scaled_dot_product_attention aligntrain calls); "eager" is available.
  * fp32 throughout by default, the student in model.train() (Llama has no dropout), grads set to None before each
    step. --device cuda --dtype bf16 (bench/gpu/): both models on the GPU, the student's weights, gradients and
    AdamW state in fp32 (aligntrain's master weights), both forwards under torch.autocast(bfloat16), the teacher's
    weights in bf16 (aligntrain keeps frozen models in run.precision); log-softmaxes and the KL in fp32 as above.
    Defaults: the recipe's run.device (auto: cuda when present) and run.precision. On CUDA the step ends with
    torch.cuda.synchronize(); memory: the caching allocator's peaks.
  * timing: a step is timed from choosing its examples to after optimizer.step() and the loss .item(), the span
    aligntrain's train loop times; tokens = non-padding tokens of the step (aligntrain's "tokens").
"""
import argparse
import contextlib
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sft_step_peer import (BOS, EOS, PAD, Sampler, apply_malloc, cuda_peaks, encode,  # noqa: E402,F401
                           learning_rate, make_data, resolve_device, status_kb)


def train(args):
    apply_malloc(args.malloc)
    import yaml
    with open(args.recipe) as f:
        recipe = yaml.safe_load(f)
    stage = next(s for s in recipe["stages"] if s["kind"] == "distill")
    opt, sched, batch, loss_cfg = stage["optimizer"], stage.get("schedule", {}), stage["batch"], stage.get("loss", {})
    want = {"type": "kd", "divergence": "forward_kl", "kd_ratio": 1.0, "lmbda": 0.0}
    for k, v in want.items():
        got = loss_cfg.get(k)
        if got != v and not (isinstance(v, float) and got is not None and float(got) == v):
            sys.exit(f"{args.recipe}: loss.{k} is {got!r}; this peer implements only {want} (set it explicitly)")
    temperature = float(loss_cfg.get("temperature", 1.0))
    seed = int(recipe["run"]["seed"])
    global_bs, micro, max_length = int(batch["global"]), int(batch["micro"]), int(batch["max_length"])
    max_prompt = int(batch.get("max_prompt_length", max(1, max_length // 2)))
    total = args.steps

    import torch
    import torch.nn.functional as F
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM

    examples = encode(args.data, max_length)
    too_long = [plen for _, plen in examples if plen > max_prompt]
    if too_long:
        sys.exit(f"{args.data}: {len(too_long)} prompt(s) longer than max_prompt_length {max_prompt} "
                 "(aligntrain would truncate them; not handled here)")
    device = resolve_device(args.device or recipe["run"].get("device", "auto"), torch)
    dtype = args.dtype or recipe["run"].get("precision", "fp32")
    bf16 = dtype == "bf16"
    autocast = (torch.autocast(device_type=device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext())
    teacher = AutoModelForCausalLM.from_pretrained(args.teacher_dir, dtype=torch.bfloat16 if bf16 else torch.float32,
                                                   attn_implementation=args.attn).to(device)
    teacher.eval()
    teacher.requires_grad_(False)
    student = AutoModelForCausalLM.from_pretrained(args.student_dir, dtype=torch.float32,
                                                   attn_implementation=args.attn).to(device)
    student.train()
    if teacher.config.vocab_size != student.config.vocab_size:
        sys.exit(f"vocab_size differs: teacher {teacher.config.vocab_size}, student {student.config.vocab_size}")
    decay = [p for p in student.parameters() if p.dim() >= 2]
    no_decay = [p for p in student.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": float(opt.get("weight_decay", 0.0))},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=float(opt["lr"]), betas=tuple(float(b) for b in opt.get("betas", (0.9, 0.999))),
        eps=float(opt.get("eps", 1e-8)))
    clip = float(opt.get("grad_clip", 1.0))
    params = list(student.parameters())
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
            input_ids, attention_mask, labels = input_ids.to(device), attention_mask.to(device), labels.to(device)
            mask_arg = None if args.causal_only else attention_mask
            with torch.no_grad(), autocast:
                teacher_logits = teacher(input_ids=input_ids, attention_mask=mask_arg).logits
            with autocast:
                student_logits = student(input_ids=input_ids, attention_mask=mask_arg).logits
            # Causal shift: position j predicts token j + 1; keep the positions whose next token carries the loss.
            shift_mask = labels[:, 1:] != -100
            log_q = F.log_softmax(student_logits[:, :-1, :].float() / temperature, dim=-1)
            log_p = F.log_softmax(teacher_logits[:, :-1, :].float() / temperature, dim=-1)
            kl = F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(-1)  # [rows, length - 1]
            loss = kl[shift_mask].sum() / loss_tokens
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
        line = {"stage": stage["name"], "step": step + 1, "loss": loss_sum, "lr": lr, "grad_norm": grad_norm,
                "tokens": tokens, "loss_tokens": loss_tokens, "tokens_per_sec": tokens / dt, "step_sec": dt,
                **cuda_peaks(torch, device)}
        rows_log.append(line)
        if out:
            out.write(json.dumps(line) + "\n")
            out.flush()
        print(f"step {step + 1}/{total} | loss {loss_sum:.8f} | grad {grad_norm:.5f} | {tokens} tokens | "
              f"{tokens / dt:.0f} tok/s", flush=True)
    if out:
        out.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    import transformers
    res = {"impl": f"transformers-{args.attn}", "causal_only": args.causal_only, "threads": torch.get_num_threads(),
           "malloc": args.malloc, "torch": torch.__version__, "transformers": transformers.__version__,
           "device": device, "dtype": dtype, "first_loss": rows_log[0]["loss"],
           "peak_rss_mib": ru.ru_maxrss / 1024, "rss_after_load_mib": rss_loaded / 1024, **cuda_peaks(torch, device)}
    print("RESULT " + json.dumps(res))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--make-data", metavar="OUT")
    p.add_argument("--examples", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipe", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "distill_bench.yaml"))
    p.add_argument("--teacher-dir")
    p.add_argument("--student-dir")
    p.add_argument("--data")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=11)
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    p.add_argument("--malloc", default="default", choices=["default", "keep"])
    p.add_argument("--causal-only", action="store_true",
                   help="pass no attention_mask (right padding makes it redundant): sdpa runs with is_causal")
    p.add_argument("--profile", action="store_true", help="print torch.profiler's op table for the last step")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: the recipe's run.device")
    p.add_argument("--dtype", choices=["fp32", "bf16"],
                   help="bf16: fp32 student weights and optimizer, forwards under bf16 autocast (default: run.precision)")
    p.add_argument("--out", help="per-step JSON lines (like aligntrain's metrics.jsonl)")
    args = p.parse_args()
    if args.make_data:
        make_data(args.make_data, args.examples, args.seed)
    elif args.teacher_dir and args.student_dir and args.data:
        train(args)
    else:
        p.error("--make-data, or --teacher-dir, --student-dir and --data, are required")


if __name__ == "__main__":
    sys.exit(main())
