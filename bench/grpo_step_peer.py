#!/usr/bin/env python3
"""The TRL peer of `aligntrain run bench/grpo_bench.yaml`: the same GRPO run with TRL's GRPOTrainer (no vLLM), for
bench/run_grpo_step.sh to compare samples/s, completion tokens/s and peak memory of whole optimizer steps
(sampling + scoring + update).

  grpo_step_peer.py --make-data OUT.jsonl [--prompts 64] [--seed 0]
      writes the synthetic {"prompt"} set: ASCII words, 32-64 bytes each (33-65 tokens with BOS).
  grpo_step_peer.py --recipe bench/grpo_bench.yaml --model-dir DIR --data FILE [--threads 2] [--steps 8]
                    [--profile] [--out FILE.jsonl]
      trains with trl.GRPOTrainer and writes one JSON line per optimizer step (samples, completion_tokens,
      samples_per_sec, completion_tokens_per_sec, step_sec, gen_sec, loss, reward, grad_norm, prompts); prints a last
      line "RESULT {json}".

What it sets up, matching the online stage of the recipe (aligntrain: trainer/stages/online.cc):
  * trl.GRPOTrainer, use_vllm False (transformers' generate with its KV cache, use_transformers_continuous_batching
    False), num_generations = online.num_samples, max_completion_length = generation.max_new_tokens, temperature /
    top_p / top_k from the recipe (top_k 0 = off on both sides), beta 0 (no reference model), epsilon,
    scale_rewards, loss_type = online.aggregation (dapo), importance_sampling_level, num_iterations =
    online.updates_per_batch (1), mask_truncated_completions False (aligntrain trains on truncated samples too).
  * the model folder `aligntrain init-model` wrote, fp32 (bf16=False), sdpa attention, gradient_checkpointing=False
    (GRPOConfig's default is True; aligntrain does not checkpoint), use_cpu, torch.set_num_threads(--threads).
  * batch: per_device_train_batch_size = batch.micro x G sequences, gradient_accumulation_steps = global / micro,
    generation_batch_size = global x G: each optimizer step samples and trains on the same batch.global prompts x G
    completions as aligntrain's step. (With micro < global TRL generates the whole step's batch at once and
    aligntrain micro x G at a time; the recipe has micro = global, so both generate 32 sequences in one batch.)
    Since generation happens once per optimizer step with num_iterations 1, TRL skips its old-log-prob forward,
    as aligntrain does (the ratio's denominator is the detached current log-prob on both sides).
  * the reward: the recipe's regex rewards as a Python function (re.search, score when found, weights summed),
    on the decoded completion (special tokens skipped), as aligntrain's `regex` reward.
  * tokenisation: dpo_step_peer.byte_tokenizer() (the byte tokenizer built in memory; id = byte value, BOS 256
    prepended, EOS 257, PAD 258). Every prompt's ids are checked against aligntrain's [BOS] + utf8(prompt) before
    training.
  * prompt order: the prompts are put in the order of aligntrain's sampler (dpo_step_peer.permutation: run.seed,
    epoch 0) and TRL reads them sequentially (shuffle_dataset False), so step k samples from the same prompts on
    both sides; the prompt indices of each step are written out for run_grpo_step.sh to compare with aligntrain's
    samples/step-N.jsonl.
  * timing: a step is timed from fetching its prompts (Trainer.get_batch_samples) to on_step_end (after clipping,
    optimizer.step, scheduler, zero_grad): generation, decoding, reward, advantages, forward/backward, AdamW --
    the span aligntrain's train loop times (its begin_step samples and scores). gen_sec is the time inside
    transformers' generate. completion_tokens counts each completion's tokens including its EOS (TRL's completion
    mask), as aligntrain's completion_length does.
What cannot be the same: the samples. TRL draws with torch's generator through transformers' sampling, aligntrain
with its own noise streams, so completions (and their lengths, and so the update's token count) differ in detail;
with a nearly uniform random model about 4 in 5 completions run to max_new_tokens on both sides (EOS is 1 of 261
tokens), and both samples/s and completion tokens/s are reported.
"""
import argparse
import json
import os
import random
import re
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dpo_step_peer import BOS, WORDS, byte_tokenizer, permutation, status_kb  # noqa: E402


def make_data(path, n, seed):
    rng = random.Random(seed)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        for i in range(n):
            length = rng.randint(32, 64)
            s = f"Q{i}:"
            while len(s) < length:
                s += " " + rng.choice(WORDS)
            f.write(json.dumps({"prompt": s[:length]}) + "\n")
    print(f"wrote {path}: {n} prompts")


def read_prompts(path):
    with open(path) as f:
        return [json.loads(line)["prompt"] for line in f if line.strip()]


def train(args):
    for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ.setdefault(k, "1")
    import yaml
    with open(args.recipe) as f:
        recipe = yaml.safe_load(f)
    stage = next(s for s in recipe["stages"] if s["kind"] == "online")
    opt, batch, online = stage["optimizer"], stage["batch"], stage.get("online", {})
    gen, loss_cfg, sched = stage.get("generation", {}), stage.get("loss", {}), stage.get("schedule", {})
    if sched.get("decay", "cosine") != "constant" or sched.get("warmup_steps", 0) or sched.get("warmup_ratio", 0):
        sys.exit("the peer implements the constant schedule without warm-up only")
    if loss_cfg.get("type", "grpo") not in ("grpo", ["grpo"]):
        sys.exit("the peer implements loss type grpo only")
    if float(online.get("beta", 0.0)) != 0.0:
        sys.exit("the peer implements beta 0 (no reference model) only")
    rewards = online.get("rewards", [])
    if not rewards or any(r.get("type") != "regex" for r in rewards):
        sys.exit("the peer implements regex rewards only")
    patterns = [(re.compile(r["pattern"]), float(r.get("score", 1.0)), float(r.get("weight", 1.0))) for r in rewards]
    seed = int(recipe["run"]["seed"])
    G = int(online.get("num_samples", 8))
    global_bs, micro = int(batch["global"]), int(batch["micro"])
    if global_bs % micro:
        sys.exit("batch.global must be a multiple of batch.micro")
    total = args.steps

    import torch
    torch.set_num_threads(args.threads)
    import datasets
    import transformers
    import trl
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    datasets.disable_progress_bars()
    datasets.disable_caching()

    prompts = read_prompts(args.data)
    if total * global_bs > len(prompts):
        sys.exit(f"{total} steps x global {global_bs} > {len(prompts)} prompts: more than one epoch is not handled")
    order = permutation(len(prompts), seed, 0)
    tokenizer = byte_tokenizer()
    for i, p in enumerate(prompts):  # aligntrain's plain template: [BOS] + utf8(prompt)
        if tokenizer(text=p)["input_ids"] != [BOS] + list(p.encode("utf-8")):
            sys.exit(f"TRL's tokenisation of prompt {i} differs from aligntrain's")

    class Timer(TrainerCallback):
        def __init__(self):
            self.t0 = None
            self.gen = 0.0
            self.current = {}
            self.steps = {}
            self.threads = None

        def on_train_begin(self, args_, state, control, **kw):
            self.threads = torch.get_num_threads()

        def on_step_end(self, args_, state, control, **kw):
            now = time.perf_counter()
            self.steps[state.global_step] = {"step_sec": now - self.t0, "gen_sec": self.gen, **self.current}

        def on_log(self, args_, state, control, logs=None, **kw):
            if logs and "loss" in logs and state.global_step in self.steps:
                self.steps[state.global_step].update(
                    {k: logs[k] for k in ("loss", "grad_norm", "reward", "reward_std", "completions/mean_length",
                                          "completions/clipped_ratio") if k in logs})

    timer = Timer()

    def regex_reward(prompts, completions, completion_ids, index, **kw):
        # also records what the step sampled: its prompts and completion tokens (EOS included)
        timer.current = {"samples": len(completions), "completion_tokens": sum(len(c) for c in completion_ids),
                         "prompts": sorted(set(int(i) for i in index))}
        return [sum(w * s for rx, s, w in patterns if rx.search(c)) for c in completions]

    class BenchGRPOTrainer(GRPOTrainer):
        def get_batch_samples(self, epoch_iterator, num_batches, device):
            timer.t0 = time.perf_counter()
            timer.gen = 0.0
            return super().get_batch_samples(epoch_iterator, num_batches, device)

        def _generate_single_turn(self, *a, **kw):
            t = time.perf_counter()
            out = super()._generate_single_turn(*a, **kw)
            timer.gen += time.perf_counter() - t
            return out

    import tempfile
    out_dir = tempfile.mkdtemp(prefix="grpo_peer_")
    config = GRPOConfig(
        output_dir=out_dir, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
        max_steps=total, per_device_train_batch_size=micro * G, gradient_accumulation_steps=global_bs // micro,
        generation_batch_size=global_bs * G, num_generations=G, shuffle_dataset=False,
        learning_rate=float(opt["lr"]), weight_decay=float(opt.get("weight_decay", 0.0)),
        adam_beta1=float(opt.get("betas", [0.9, 0.999])[0]), adam_beta2=float(opt.get("betas", [0.9, 0.999])[1]),
        adam_epsilon=float(opt.get("eps", 1e-8)), max_grad_norm=float(opt.get("grad_clip", 1.0)),
        lr_scheduler_type="constant", warmup_steps=0, seed=seed, use_cpu=True, bf16=False, fp16=False,
        gradient_checkpointing=False, dataloader_num_workers=0, dataloader_pin_memory=False,
        use_vllm=False, max_completion_length=int(gen.get("max_new_tokens", 128)),
        temperature=float(gen.get("temperature", 1.0)), top_p=float(gen.get("top_p", 1.0)),
        top_k=int(gen.get("top_k", 0)), beta=0.0, epsilon=float(online.get("epsilon", 0.2)),
        epsilon_high=float(online["epsilon_high"]) if "epsilon_high" in online else None,
        scale_rewards=str(online.get("scale_rewards", "group")), loss_type=str(online.get("aggregation", "dapo")),
        importance_sampling_level=str(online.get("importance_sampling_level", "token")),
        num_iterations=int(online.get("updates_per_batch", 1)), mask_truncated_completions=False,
        model_init_kwargs={"dtype": torch.float32, "attn_implementation": args.attn},
    )
    train_ds = datasets.Dataset.from_list([{"prompt": prompts[i], "index": i} for i in order])
    trainer = BenchGRPOTrainer(model=args.model_dir, reward_funcs=[regex_reward], args=config, train_dataset=train_ds,
                               processing_class=tokenizer, callbacks=[timer])
    if trainer.ref_model is not None:
        sys.exit("expected no reference model (beta 0)")
    rss_loaded = status_kb("VmRSS")
    print(f"optimizer: {config.optim}; torch threads {torch.get_num_threads()}; G {G}; per-device batch "
          f"{config.per_device_train_batch_size}, accumulation {config.gradient_accumulation_steps}, generation batch "
          f"{config.generation_batch_size}; eos ids {trainer.eos_token_ids}; tokenisation identical to aligntrain's "
          f"for all {len(prompts)} prompts", flush=True)

    prof = None
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        class Prof(TrainerCallback):
            def on_step_begin(self, a, state, control, **kw):
                nonlocal prof
                if state.global_step == total - 1:
                    prof = profile(activities=[ProfilerActivity.CPU])
                    prof.__enter__()

            def on_step_end(self, a, state, control, **kw):
                if prof is not None and state.global_step == total:
                    prof.__exit__(None, None, None)
        trainer.add_callback(Prof())

    trainer.train()
    if prof is not None:
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))

    rows = []
    out = open(args.out, "w") if args.out else None
    for step in sorted(timer.steps):
        s = timer.steps[step]
        line = {"stage": "grpo", "step": step, "loss": s.get("loss"), "grad_norm": s.get("grad_norm"),
                "reward": s.get("reward"), "samples": s["samples"], "completion_tokens": s["completion_tokens"],
                "samples_per_sec": s["samples"] / s["step_sec"],
                "completion_tokens_per_sec": s["completion_tokens"] / s["step_sec"], "step_sec": s["step_sec"],
                "gen_sec": s["gen_sec"], "clipped_ratio": s.get("completions/clipped_ratio"), "prompts": s["prompts"]}
        rows.append(line)
        if out:
            out.write(json.dumps(line) + "\n")
        print(f"step {step}/{total} | loss {line['loss']} | reward {line['reward']} | {line['samples']} samples, "
              f"{line['completion_tokens']} completion tokens | {line['samples_per_sec']:.2f} samples/s | "
              f"{line['step_sec']:.3f} s (generate {line['gen_sec']:.3f} s)", flush=True)
    if out:
        out.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    res = {"impl": "trl-grpo", "threads": timer.threads, "optim": str(config.optim), "torch": torch.__version__,
           "transformers": transformers.__version__, "trl": trl.__version__, "peak_rss_mib": ru.ru_maxrss / 1024,
           "rss_after_load_mib": rss_loaded / 1024}
    print("RESULT " + json.dumps(res))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--make-data", metavar="OUT")
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipe", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "grpo_bench.yaml"))
    p.add_argument("--model-dir")
    p.add_argument("--data")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    p.add_argument("--profile", action="store_true", help="print torch.profiler's op table for the last step")
    p.add_argument("--out", help="per-step JSON lines")
    args = p.parse_args()
    if args.make_data:
        make_data(args.make_data, args.prompts, args.seed)
    elif args.model_dir and args.data:
        train(args)
    else:
        p.error("--make-data, or --model-dir and --data, are required")


if __name__ == "__main__":
    sys.exit(main())
