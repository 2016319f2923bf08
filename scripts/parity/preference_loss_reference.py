#!/usr/bin/env python3
"""Reference for the step-1 loss of an aligntrain preference stage, computed independently with transformers.

  preference_loss_reference.py POLICY_DIR REF_DIR DATA.jsonl LOSS [LOSS...]

LOSS is a JSON object with the keys of the recipe's `loss:` section (config/schema.h LossConfig), e.g.
  '{"type": "dpo", "beta": 0.1}'   '{"type": "cdpo", "label_smoothing": 0.1}'   '{"type": "ipo", "ipo_raw": true}'
  '{"type": ["dpo", "sft"], "weights": [1.0, 0.2]}'
(JSON is also YAML, so a test can paste the same text into the recipe). For every LOSS, in order, one line with the
loss of one optimizer step whose global batch is the whole of DATA.jsonl, before the update, with 10 decimals.
REF_DIR is read only when some LOSS has a reference-based type (pass any path otherwise, e.g. POLICY_DIR again).

Log-probs: logprobs_reference.py (transformers fp32, eager; the byte or HF tokenizer; ids = [BOS] + prompt +
response + [EOS]; response tokens incl. EOS carry the loss, scored with the causal shift). Per example,
  lw, ll   = logπ_θ(y_w|x), logπ_θ(y_l|x)   (sums over response tokens), nw, nl = |y_w|, |y_l|
  rw, rl   = the same under π_ref,          ρ_w = lw − rw, ρ_l = ll − rl, h = ρ_w − ρ_l
  NLL      = −lw / nw (mean token NLL of the chosen response)
and the loss is the batch mean of the per-example loss below (METHODS.md §C; β = `beta`, default 0.1, simpo 2.0;
ε = label_smoothing):
  dpo      −logσ(βh)
  cdpo     −(1−ε)logσ(βh) − ε logσ(−βh)
  robust   [−(1−ε)logσ(βh) + ε logσ(−βh)] / (1−2ε)
  hinge    max(0, 1 − βh)
  ipo      (ρ_w/nw − ρ_l/nl − 1/(2β))²          ipo_raw: (h − 1/(2β))²
  ln_dpo   −logσ(β(ρ_w/nw − ρ_l/nl))
  bco_pair −logσ(βρ_w) − logσ(−βρ_l)
  simpo    −logσ(β(lw/nw − ll/nl) − γ),  γ = gamma_beta_ratio·β (default 0.25)
  orpo     NLL_o − λ logσ((a_w − a_l) − (log1mexp(a_w) − log1mexp(a_l))),  a = lw/nw, ll/nl, λ = orpo_lambda (0.1);
           NLL_o = NLL, or with orpo_prompt_in_nll (default true) the mean token NLL over every token of the chosen
           sequence after the first (prompt + response + EOS; BOS has no predictor)
  cpo      −(1−ε)logσ(β(lw − ll)) − ε logσ(−β(lw − ll)) + cpo_alpha·NLL   (cpo_alpha default 1.0)
  mapo     ℓ_w − β logσ(T·(g(sℓ_w) − g(sℓ_l))),  ℓ_w = −lw/nw, ℓ_l = −ll/nl, g(u) = u/(e^u − 1) (g(0) = 1),
           s = mapo_snr (0.5), T = mapo_timesteps (1.0)
  sft      NLL
A list of types is Σ_i weights_i · L_i (weights default 1), with one β for all: `beta`, else the default of the
first type that uses β (sft and orpo do not). All arithmetic after the forward passes is float64.
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import logprobs_reference as lr  # noqa: E402

REFERENCE_FREE = {"simpo", "orpo", "cpo", "mapo", "sft"}
KNOWN_KEYS = {"type", "weights", "beta", "label_smoothing", "ipo_raw", "gamma_beta_ratio", "cpo_alpha", "alpha",
              "orpo_lambda", "orpo_prompt_in_nll", "mapo_snr", "mapo_timesteps"}


def logsigmoid(u):
    # −softplus(−u), stable for both signs
    return -math.log1p(math.exp(-u)) if u >= 0 else u - math.log1p(math.exp(u))


def log1mexp(u):  # log(1 − e^u) for u < 0
    return math.log1p(-math.exp(u)) if u < -math.log(2) else math.log(-math.expm1(u))


def g(u):  # u / (e^u − 1), g(0) = 1
    return 1.0 if u == 0 else u / math.expm1(u)


def default_beta(t):
    return {"simpo": 2.0, "sft": None, "orpo": None}.get(t, 0.1)


def example_loss(t, spec, beta, e):
    """e: dict with lw, ll, nw, nl, rw, rl (None without a reference), full_nll (chosen, prompt included)."""
    eps = spec.get("label_smoothing", 0.0)
    lw, ll, nw, nl = e["lw"], e["ll"], e["nw"], e["nl"]
    nll = -lw / nw
    if t == "sft":
        return nll
    if t in REFERENCE_FREE:
        if t == "simpo":
            gamma = spec.get("gamma_beta_ratio", 0.25) * beta
            return -logsigmoid(beta * (lw / nw - ll / nl) - gamma)
        if t == "orpo":
            aw, al = lw / nw, ll / nl
            log_odds = (aw - al) - (log1mexp(aw) - log1mexp(al))
            nll_o = e["full_nll"] if spec.get("orpo_prompt_in_nll", True) else nll
            return nll_o - spec.get("orpo_lambda", 0.1) * logsigmoid(log_odds)
        if t == "cpo":
            if spec.get("alpha", 0.0) != 0.0:
                raise ValueError("cpo with alpha != 0 (AlphaPO) is not implemented here")
            u = beta * (lw - ll)
            return -(1 - eps) * logsigmoid(u) - eps * logsigmoid(-u) + spec.get("cpo_alpha", 1.0) * nll
        if t == "mapo":
            s, T = spec.get("mapo_snr", 0.5), spec.get("mapo_timesteps", 1.0)
            lw_, ll_ = -lw / nw, -ll / nl
            m = g(s * lw_) - g(s * ll_)
            return lw_ - beta * logsigmoid(T * m)
    rho_w, rho_l = lw - e["rw"], ll - e["rl"]
    h = rho_w - rho_l
    if t == "dpo":
        return -logsigmoid(beta * h)
    if t == "cdpo":
        return -(1 - eps) * logsigmoid(beta * h) - eps * logsigmoid(-beta * h)
    if t == "robust":
        return (-(1 - eps) * logsigmoid(beta * h) + eps * logsigmoid(-beta * h)) / (1 - 2 * eps)
    if t == "hinge":
        return max(0.0, 1 - beta * h)
    if t == "ipo":
        margin = h if spec.get("ipo_raw", False) else rho_w / nw - rho_l / nl
        return (margin - 1 / (2 * beta)) ** 2
    if t == "ln_dpo":
        return -logsigmoid(beta * (rho_w / nw - rho_l / nl))
    if t == "bco_pair":
        return -logsigmoid(beta * rho_w) - logsigmoid(-beta * rho_l)
    raise ValueError(f"unknown loss type {t!r}")


def parse_spec(text):
    spec = json.loads(text)
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"LOSS {text!r}: expected a JSON object with a 'type'")
    unknown = set(spec) - KNOWN_KEYS
    if unknown:
        raise ValueError(f"LOSS {text!r}: unsupported keys {sorted(unknown)}")
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    weights = spec.get("weights", [1.0] * len(types))
    if len(weights) != len(types):
        raise ValueError(f"LOSS {text!r}: {len(weights)} weights for {len(types)} types")
    beta = spec.get("beta")
    if beta is None:
        beta = next((default_beta(t) for t in types if default_beta(t) is not None), None)
    return spec, types, weights, beta


def full_sequence_nll(model_dir, data_path, model):
    """Per example: mean token NLL over every token of the chosen sequence after BOS (prompt + response + EOS)."""
    tok = lr.load_tokenizer(model_dir)
    seqs = [sum(lr.encode_item(tok, ex.get("prompt", ""), ex["chosen"]), []) for ex in lr.read_examples(data_path)]
    rows = lr.score_batch(model, [(s[:1], s[1:]) for s in seqs], tokens=False)
    return [-row["logp"] / row["n_tokens"] for row in rows]


def main(argv):
    if len(argv) < 4 or any(a in ("-h", "--help") for a in argv):
        sys.exit(__doc__)
    policy_dir, ref_dir, data_path = argv[:3]
    specs = [parse_spec(a) for a in argv[3:]]
    import torch

    torch.use_deterministic_algorithms(True)
    need_ref = any(t not in REFERENCE_FREE for _, types, _, _ in specs for t in types)
    need_full = any("orpo" in types and spec.get("orpo_prompt_in_nll", True) for spec, types, _, _ in specs)

    policy = lr.load_model(policy_dir)
    pol_rows = lr.reference(policy_dir, data_path, tokens=False, model=policy)
    full = full_sequence_nll(policy_dir, data_path, policy) if need_full else [None] * len(pol_rows)
    ref_rows = lr.reference(ref_dir, data_path, tokens=False) if need_ref else [None] * len(pol_rows)

    examples = []
    for p, r, f in zip(pol_rows, ref_rows, full):
        examples.append({
            "lw": p["chosen"]["logp"], "ll": p["rejected"]["logp"],
            "nw": p["chosen"]["n_tokens"], "nl": p["rejected"]["n_tokens"],
            "rw": r["chosen"]["logp"] if r else None, "rl": r["rejected"]["logp"] if r else None,
            "full_nll": f,
        })
    for spec, types, weights, beta in specs:
        total = 0.0
        for t, w in zip(types, weights):
            total += w * sum(example_loss(t, spec, beta, e) for e in examples) / len(examples)
        print(f"{total:.10f}")


if __name__ == "__main__":
    main(sys.argv[1:])
