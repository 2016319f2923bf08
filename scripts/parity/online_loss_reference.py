#!/usr/bin/env python3
"""Reference for the first step of an aligntrain online stage (kind online), computed independently with transformers.

  online_loss_reference.py LOSS SAMPLES.jsonl POLICY_DIR [REFERENCE_DIR] [--key value ...]

LOSS is grpo, rloo or fdpg. SAMPLES.jsonl is the stage's <stage>/samples/step-000001.jsonl (prompt and completion token
ids and the rewards of every sample, G consecutive lines per prompt). Options: --num-samples G, --temperature T (the
sampling temperature), --beta B, --epsilon E, --epsilon-high E, --scale-rewards group|batch|none,
--aggregation grpo|bnpo|dapo|dr_grpo, --max-new-tokens N, --importance-level token|sequence,
--normalize-advantages 0|1, --divergence forward_kl|reverse_kl|jsd|tvd, --target constraint|reward.

Prints one JSON object: {"loss", "scale", "grad_norm", "advantages": [...]} ("scale": the magnitude of the terms
the loss sums, the floor of a relative comparison): the loss of one optimizer step whose samples are
those of the file (before any update, so every importance ratio is 1) and the global L2 norm of its gradient over
every parameter of the policy, with the formulas of TRL 1.16's GRPOTrainer._compute_loss and RLOOTrainer
(_generate_and_score_completions, _compute_loss) and of naver/disco's f-DPG tuner (METHODS.md §G, §D.2) written out
here, each sample scored on its own (no padding), transformers fp32 eager attention.
"""
import json
import math
import sys

import torch

torch.use_deterministic_algorithms(True)


def parse(argv):
    pos, opts = [], {}
    i = 0
    while i < len(argv):
        if argv[i].startswith("--"):
            opts[argv[i][2:].replace("-", "_")] = argv[i + 1]
            i += 2
        else:
            pos.append(argv[i])
            i += 1
    return pos, opts


def load(path):
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager")
    m.train(False)
    return m


def token_logps(model, prompt, completion, temperature):
    """Per-token log-probs [n] of the completion tokens, logits divided by the temperature (TRL's
    _get_per_token_logps_and_entropies)."""
    ids = torch.tensor([prompt + completion])
    logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion).unsqueeze(-1)).squeeze(-1)


def grouped(x, g):
    return x.view(-1, g)


def main():
    pos, o = parse(sys.argv[1:])
    loss_type, samples_path, policy_dir = pos[0], pos[1], pos[2]
    ref_dir = pos[3] if len(pos) > 3 else None
    g = int(o.get("num_samples", 4))
    tau = float(o.get("temperature", 1.0)) or 1.0
    beta = float(o.get("beta", 0.0))
    eps_low = float(o.get("epsilon", 0.2))
    eps_high = float(o.get("epsilon_high", eps_low))
    rows = [json.loads(l) for l in open(samples_path)]
    rewards = torch.tensor([r["reward"] for r in rows], dtype=torch.float64)
    policy = load(policy_dir)
    ref = load(ref_dir) if ref_dir else None
    n = len(rows)

    loss_scale = 1.0
    if loss_type == "fdpg":
        tau_logp = 1.0
    else:
        tau_logp = tau
    lps = [token_logps(policy, r["prompt_ids"], r["completion_ids"], tau_logp) for r in rows]
    with torch.no_grad():
        refs = [token_logps(ref, r["prompt_ids"], r["completion_ids"], tau_logp) for r in rows] if ref else None

    if loss_type == "grpo":
        grp = grouped(rewards, g)
        mean = grp.mean(1, keepdim=True).expand(-1, g).reshape(-1)
        adv = rewards - mean
        scale = o.get("scale_rewards", "group")
        if scale == "group":
            adv = adv / (grp.std(1, keepdim=True).expand(-1, g).reshape(-1) + 1e-4)
        elif scale == "batch":
            adv = adv / (rewards.std() + 1e-4)
        level = o.get("importance_level", "token")
        per_seq, masks = [], []
        for i, lp in enumerate(lps):
            old = lp.detach()
            log_ratio = lp - old
            if level == "sequence":
                log_ratio = (log_ratio.sum() / max(len(lp), 1)).expand(len(lp))
            c1 = torch.exp(log_ratio)
            c2 = torch.clamp(c1, 1 - eps_low, 1 + eps_high)
            a = float(adv[i])
            ptl = -torch.min(c1 * a, c2 * a)
            if beta != 0.0:
                d = refs[i] - lp
                ptl = ptl + beta * (torch.exp(d) - d - 1)
            per_seq.append(ptl)
        agg = o.get("aggregation", "dapo")
        total_tokens = sum(len(x) for x in per_seq)
        if agg == "grpo":
            loss = sum(x.sum() / max(len(x), 1) for x in per_seq) / n
        elif agg in ("bnpo", "dapo"):
            loss = sum(x.sum() for x in per_seq) / total_tokens
        else:
            loss = sum(x.sum() for x in per_seq) / (n * int(o.get("max_new_tokens", 128)))
    elif loss_type == "rloo":
        r = rewards.clone()
        if beta != 0.0:
            kl = torch.tensor([float((lp.detach() - rf).sum()) for lp, rf in zip(lps, refs)], dtype=torch.float64)
            r = r - beta * kl
        grp = grouped(r, g)
        baseline = ((grp.sum(1, keepdim=True) - grp) / (g - 1)).reshape(-1)
        adv = r - baseline
        if o.get("normalize_advantages", "0") == "1":
            adv = (adv - adv.mean()) / (adv.std() + 1e-4)
        terms = []
        for i, lp in enumerate(lps):
            c1 = torch.exp(lp.sum() - lp.detach().sum())
            c2 = torch.clamp(c1, 1 - eps_low, 1 + eps_high)
            a = float(adv[i])
            terms.append(-torch.min(c1 * a, c2 * a))
        loss = sum(terms) / n
    elif loss_type == "fdpg":
        # disco: contexts in order; Z per context a running mean of exp(log P - log q); pseudo-reward -f'(t) with
        # log t = log pi - (log P - log Z); advantage = R - baseline (window mean of earlier pseudo-rewards);
        # loss = mean over contexts with Z > 0 of mean_x (pi/q)_detached * (-A) * log pi.
        # Sequence log-probs summed in fp64 (as aligntrain does), from fp32 token log-probs.
        seq = [lp.double().sum() for lp in lps]
        with torch.no_grad():
            q = [float(token_logps(policy, r["prompt_ids"], r["completion_ids"], tau).double().sum()) for r in rows]
            base = [float(rf.double().sum()) for rf in refs]
        if o.get("target", "constraint") == "constraint":
            logp_target = [b + (0.0 if float(rw) > 0 else -math.inf) for b, rw in zip(base, rewards)]
        else:
            logp_target = [b + float(rw) / beta for b, rw in zip(base, rewards)]
        div = o.get("divergence", "jsd")

        def f_prime(log_t):
            if div == "forward_kl":
                return -math.exp(-log_t)
            if div == "reverse_kl":
                return log_t + 1
            if div == "jsd":
                return math.log(2) - (math.log1p(math.exp(-log_t)) if -log_t < 30 else -log_t)
            return 0.5 * (1 if log_t > 0 else -1 if log_t < 0 else 0)

        window, baseline = [], None
        scale_terms = []
        adv = torch.zeros(n, dtype=torch.float64)
        ctx_losses = []
        for c in range(n // g):
            idx = range(c * g, (c + 1) * g)
            zs = [math.exp(logp_target[i] - q[i]) for i in idx]
            z = None
            w = 0
            for v in zs:
                z = v if w == 0 else (z * w + v) / (w + 1)
                w += 1
            if not z > 0:
                continue
            pseudo = [-f_prime(float(seq[i].detach()) - (logp_target[i] - math.log(z))) for i in idx]
            a = [p - baseline if baseline is not None else p for p in pseudo]
            window = (window + pseudo)[-int(o.get("baseline_window", 1024)):]
            baseline = sum(window) / len(window)
            for k, i in enumerate(idx):
                adv[i] = a[k]
            scale_terms += [abs(math.exp(float(seq[i].detach()) - q[i]) * a[k] * float(seq[i].detach()))
                            for k, i in enumerate(idx)]
            ctx_losses.append(sum(math.exp(float(seq[i].detach()) - q[i]) * (-a[k]) * seq[i]
                                  for k, i in enumerate(idx)) / g)
        loss = sum(ctx_losses) / max(len(ctx_losses), 1)
        # The loss sums terms w·A·log π of magnitude |log π| (tens of nats) that largely cancel: two fp32 computations
        # differ in proportion to the terms, not to the sum.
        loss_scale = sum(scale_terms) / max(len(scale_terms), 1)
    else:
        sys.exit("unknown loss " + loss_type)

    loss.backward()
    sq = sum(float((p.grad.double() ** 2).sum()) for p in policy.parameters() if p.grad is not None)
    print(json.dumps({"loss": float(loss.detach()), "scale": max(1.0, loss_scale), "grad_norm": math.sqrt(sq),
                      "advantages": [float(a) for a in adv]}))


if __name__ == "__main__":
    main()
