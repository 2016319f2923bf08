#!/usr/bin/env python3
"""The TRL peer of `aligntrain run bench/dpo_bench.yaml`: the same DPO training run with TRL's DPOTrainer, for
bench/run_dpo_step.sh to compare step throughput and peak memory.

  dpo_step_peer.py --make-data OUT.jsonl [--pairs 128] [--seed 0]
      writes the synthetic {"prompt", "chosen", "rejected"} set: ASCII words; BOS + prompt + chosen + EOS and
      BOS + prompt + rejected + EOS are each 128-256 tokens with the byte tokenizer, the prompt 20-45% of the
      longer one.
  dpo_step_peer.py --recipe bench/dpo_bench.yaml --model-dir DIR --data FILE [--threads 2] [--steps 11]
                   [--precompute] [--malloc default|keep] [--profile] [--device cpu|cuda] [--dtype fp32|bf16]
                   [--out FILE.jsonl]
      trains with trl.DPOTrainer and writes one JSON line per optimizer step (loss, grad_norm, tokens,
      tokens_per_sec, step_sec), as aligntrain's metrics.jsonl does; prints a last line "RESULT {json}".

What it sets up, matching the dpo stage of the recipe (aligntrain: trainer/stages/preference.cc):
  * trl.DPOTrainer, loss_type ["sigmoid"], beta from the recipe (0.1), a live reference model (ref_model=None:
    TRL loads a second copy of the same folder, as aligntrain's `reference: small` does); `--precompute` sets
    precompute_ref_log_probs=True instead (TRL's counterpart of `reference: {model: small, precompute: true}`).
  * the model folder `aligntrain init-model` wrote, fp32 (bf16=False; TRL's default would be bf16), sdpa
    attention (transformers' default), gradient_checkpointing=False (TRL's default is True; aligntrain does not
    checkpoint), dropout off (Llama has none).
  * per_device_train_batch_size = batch.micro, gradient_accumulation_steps = batch.global / batch.micro,
    max_length = batch.max_length (no sequence reaches it), lr / betas / eps / weight decay / grad_clip from the
    recipe, constant schedule, TrainingArguments' default optimizer (AdamW), torch.set_num_threads(--threads).
  * tokenisation: the model folder has no tokenizer.json (aligntrain's byte tokenizer is built in), so
    AutoTokenizer cannot load it. byte_tokenizer() builds the same tokenizer in memory as a
    PreTrainedTokenizerFast (id = byte value, BOS 256 prepended, EOS 257, PAD 258) and TRL tokenises the raw text
    with it as usual (it appends the EOS token text itself). The ids TRL ends up with are checked against
    aligntrain's encoding, [BOS] + utf8(prompt) + utf8(response) + [EOS], before training: identical, so both
    sides see the same tokens, padding and response masks.
  * data order: the examples are put in the order of aligntrain's sampler (Fisher-Yates driven by splitmix64,
    seeded from (run.seed, epoch 0), data/sampler.cc) and TRL reads them sequentially (the random sampler is
    replaced by a SequentialSampler), so step k trains on the same pairs on both sides, split into the same two
    consecutive micro-batches of 4 pairs. steps * global must not exceed the number of pairs (one epoch).
  * --device cuda --dtype bf16 (bench/gpu/): use_cpu=False and bf16=True, i.e. the HF Trainer's mixed precision
    (accelerate's bf16 autocast) over fp32 weights, gradients and AdamW state (aligntrain's fp32 master weights);
    the live reference is loaded as TRL loads it (model_init_kwargs, fp32, run under the same autocast; aligntrain
    keeps it in bf16). Defaults: the recipe's run.device (auto: cuda when present) and run.precision. On CUDA a
    step's timer stops after torch.cuda.synchronize(); memory: the caching allocator's peaks.
  * timing: a step is timed from fetching its micro-batches (Trainer.get_batch_samples: dataloader + TRL's
    collator) to on_step_end (after clipping, optimizer.step, scheduler, zero_grad) -- the span aligntrain's
    train loop times (choosing the rows, collating, forward/backward per micro-batch, clip, AdamW, metrics).
    TRL's per-step logging after on_step_end is outside it, as aligntrain's metrics writing is. tokens = the
    non-padding tokens of chosen + rejected of the step (sum of the attention masks), aligntrain's "tokens".
"""
import argparse
import json
import os
import random
import resource
import sys
import time

BOS, EOS, PAD = 256, 257, 258
MASK64 = (1 << 64) - 1
SPECIALS = ["<|bos|>", "<|eos|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]  # ids 256..260, as aligntrain's


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
            # bytes of prompt + response (BOS and EOS make 2 more tokens), for each of chosen and rejected
            long_total = rng.randint(128, 256) - 2
            short_total = rng.randint(128, long_total + 2) - 2
            p = int(long_total * rng.uniform(0.20, 0.45))
            prompt = f"Q{i}: " + text(p - len(f"Q{i}: ") - 1) + "\n"
            a = text(long_total - len(prompt))
            b = text(short_total - len(prompt))
            chosen, rejected = (a, b) if rng.random() < 0.5 else (b, a)
            assert 128 <= len(prompt) + len(chosen) + 2 <= 256 and 128 <= len(prompt) + len(rejected) + 2 <= 256
            f.write(json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected}) + "\n")
    print(f"wrote {path}: {n} pairs")


def read_pairs(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def encode(prompt, response):
    """aligntrain's encoding with the byte tokenizer and the plain template: (ids, prompt_len)."""
    p = list(prompt.encode("utf-8"))
    return [BOS] + p + list(response.encode("utf-8")) + [EOS], 1 + len(p)


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


# ---- tokenizer ---------------------------------------------------------------------------------------------
def byte_tokenizer():
    """aligntrain's byte tokenizer as a transformers PreTrainedTokenizerFast: token id = byte value (GPT-2's
    byte-to-unicode alphabet, no merges), specials 256..260, BOS prepended by the post-processor."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    vocab = {chr(c): b for b, c in zip(bs, cs)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    assert [tok.token_to_id(s) for s in SPECIALS] == list(range(256, 256 + len(SPECIALS)))
    tok.post_processor = processors.TemplateProcessing(single="<|bos|> $A", pair="<|bos|> $A $B",
                                                       special_tokens=[("<|bos|>", BOS)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>",
                                   pad_token="<|pad|>", padding_side="left")  # TRL asks for left; its collator pads right


# ---- training ----------------------------------------------------------------------------------------------
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
    for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ.setdefault(k, "1")
    import yaml
    with open(args.recipe) as f:
        recipe = yaml.safe_load(f)
    stage = next(s for s in recipe["stages"] if s["kind"] == "preference")
    opt, batch, loss_cfg = stage["optimizer"], stage["batch"], stage.get("loss", {})
    sched = stage.get("schedule", {})
    if sched.get("decay", "cosine") != "constant" or sched.get("warmup_steps", 0) or sched.get("warmup_ratio", 0):
        sys.exit("the peer implements the constant schedule without warm-up only")
    if loss_cfg.get("type", "dpo") not in ("dpo", ["dpo"]):
        sys.exit("the peer implements loss type dpo (TRL sigmoid) only")
    seed = int(recipe["run"]["seed"])
    global_bs, micro, max_length = int(batch["global"]), int(batch["micro"]), int(batch["max_length"])
    if global_bs % micro:
        sys.exit("batch.global must be a multiple of batch.micro")
    total = args.steps

    import torch
    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from sft_step_peer import cuda_peaks, resolve_device
    device = resolve_device(args.device or recipe["run"].get("device", "auto"), torch)
    dtype = args.dtype or recipe["run"].get("precision", "fp32")
    import datasets
    import transformers
    import trl
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer
    datasets.disable_progress_bars()
    datasets.disable_caching()

    pairs = read_pairs(args.data)
    if total * global_bs > len(pairs):
        sys.exit(f"{total} steps x global {global_bs} > {len(pairs)} pairs: more than one epoch is not handled")
    order = permutation(len(pairs), seed, 0)
    ordered = [pairs[i] for i in order]
    tokenizer = byte_tokenizer()

    class Timer(TrainerCallback):
        def __init__(self):
            self.t0 = None
            self.tokens = 0
            self.steps = {}   # global_step -> {"step_sec", "tokens", "compute_sec"}
            self.begin = None
            self.threads = None

        def on_train_begin(self, args_, state, control, **kw):
            self.threads = torch.get_num_threads()

        def on_step_begin(self, args_, state, control, **kw):
            self.begin = time.perf_counter()

        def on_step_end(self, args_, state, control, **kw):
            if device == "cuda":
                torch.cuda.synchronize()
            now = time.perf_counter()
            self.steps[state.global_step] = {"step_sec": now - self.t0, "compute_sec": now - self.begin,
                                             "tokens": self.tokens}

        def on_log(self, args_, state, control, logs=None, **kw):
            if logs and "loss" in logs and state.global_step in self.steps:
                self.steps[state.global_step].update(
                    {k: logs[k] for k in ("loss", "grad_norm", "rewards/margins", "learning_rate") if k in logs})

    timer = Timer()

    class BenchDPOTrainer(DPOTrainer):
        def _get_train_sampler(self, train_dataset=None):  # aligntrain's order, already applied to the data
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

        def get_batch_samples(self, epoch_iterator, num_batches, device):
            timer.t0 = time.perf_counter()
            samples, n = super().get_batch_samples(epoch_iterator, num_batches, device)
            timer.tokens = int(sum(int(b["attention_mask"].sum()) for b in samples))
            return samples, n

    import tempfile
    out_dir = tempfile.mkdtemp(prefix="dpo_peer_")
    config = DPOConfig(
        output_dir=out_dir, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
        max_steps=total, per_device_train_batch_size=micro, gradient_accumulation_steps=global_bs // micro,
        learning_rate=float(opt["lr"]), weight_decay=float(opt.get("weight_decay", 0.0)),
        adam_beta1=float(opt.get("betas", [0.9, 0.999])[0]), adam_beta2=float(opt.get("betas", [0.9, 0.999])[1]),
        adam_epsilon=float(opt.get("eps", 1e-8)), max_grad_norm=float(opt.get("grad_clip", 1.0)),
        lr_scheduler_type="constant", warmup_steps=0, seed=seed, use_cpu=device == "cpu", bf16=dtype == "bf16",
        fp16=False,
        gradient_checkpointing=False, dataloader_num_workers=0, dataloader_pin_memory=False,
        max_length=max_length, beta=float(loss_cfg.get("beta", 0.1)), loss_type=["sigmoid"],
        precompute_ref_log_probs=args.precompute,
        model_init_kwargs={"dtype": torch.float32, "attn_implementation": args.attn},
    )
    train_ds = datasets.Dataset.from_list(ordered)
    peft_config = None
    if args.lora:  # LoRA on every linear layer, base frozen; TRL's reference is then the base (adapters off)
        from peft import LoraConfig
        peft_config = LoraConfig(r=args.lora, lora_alpha=2 * args.lora, lora_dropout=0.0,
                                 target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = BenchDPOTrainer(model=args.model_dir, ref_model=None, args=config, train_dataset=train_ds,
                              processing_class=tokenizer, callbacks=[timer], peft_config=peft_config)
    # Same token ids as aligntrain, example by example (TRL tokenised the text itself).
    ds = trainer.train_dataset
    for k in range(len(ordered)):
        row = ds[k]
        c_ids, c_plen = encode(ordered[k]["prompt"], ordered[k]["chosen"])
        r_ids, _ = encode(ordered[k]["prompt"], ordered[k]["rejected"])
        if (row["prompt_ids"] != c_ids[:c_plen] or row["prompt_ids"] + row["chosen_ids"] != c_ids
                or row["prompt_ids"] + row["rejected_ids"] != r_ids):
            sys.exit(f"TRL's tokenisation of pair {k} differs from aligntrain's")
    if trainer.ref_model is None and not args.precompute and not args.lora:
        sys.exit("expected a live reference model")
    rss_loaded = status_kb("VmRSS")
    print(f"optimizer: {config.optim}; torch threads {torch.get_num_threads()}; live reference: "
          f"{trainer.ref_model is not None}; tokenisation identical to aligntrain's for all {len(ordered)} pairs",
          flush=True)

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
        line = {"stage": "dpo", "step": step, "loss": s.get("loss"), "grad_norm": s.get("grad_norm"),
                "tokens": s["tokens"], "tokens_per_sec": s["tokens"] / s["step_sec"], "step_sec": s["step_sec"],
                "compute_sec": s["compute_sec"], **cuda_peaks(torch, device)}
        rows.append(line)
        if out:
            out.write(json.dumps(line) + "\n")
        print(f"step {step}/{total} | loss {line['loss']:.6f} | grad {line['grad_norm']:.4f} | {line['tokens']} "
              f"tokens | {line['tokens_per_sec']:.0f} tok/s | {line['step_sec']:.3f} s", flush=True)
    if out:
        out.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    res = {"impl": "trl-dpo" + ("-precompute" if args.precompute else ""), "threads": timer.threads,
           "malloc": args.malloc, "optim": str(config.optim), "torch": torch.__version__,
           "transformers": transformers.__version__, "trl": trl.__version__, "device": device, "dtype": dtype,
           "first_loss": rows[0]["loss"], "peak_rss_mib": ru.ru_maxrss / 1024, "rss_after_load_mib": rss_loaded / 1024,
           **cuda_peaks(torch, device)}
    print("RESULT " + json.dumps(res))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--make-data", metavar="OUT")
    p.add_argument("--pairs", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipe", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "dpo_bench.yaml"))
    p.add_argument("--model-dir")
    p.add_argument("--data")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=11)
    p.add_argument("--precompute", action="store_true", help="precompute_ref_log_probs=True (no live reference)")
    p.add_argument("--lora", type=int, default=0, metavar="R",
                   help="train LoRA adapters of rank R (alpha 2R, every linear layer, no dropout) through PEFT; the "
                        "reference is the base with the adapters off")
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    p.add_argument("--malloc", default="default", choices=["default", "keep"])
    p.add_argument("--profile", action="store_true", help="print torch.profiler's op table for the last step")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: the recipe's run.device")
    p.add_argument("--dtype", choices=["fp32", "bf16"],
                   help="bf16: the Trainer's bf16 mixed precision over fp32 weights (default: run.precision)")
    p.add_argument("--out", help="per-step JSON lines (like aligntrain's metrics.jsonl)")
    args = p.parse_args()
    if args.make_data:
        make_data(args.make_data, args.pairs, args.seed)
    elif args.model_dir and args.data:
        train(args)
    else:
        p.error("--make-data, or --model-dir and --data, are required")


if __name__ == "__main__":
    sys.exit(main())
