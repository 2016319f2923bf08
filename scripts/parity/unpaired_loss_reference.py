#!/usr/bin/env python3
"""Reference for the step-1 loss of aligntrain's unpaired (KTO, BCO) and negatives (D2O) stages, computed
independently with transformers log-probs (logprobs_reference.py) and METHODS.md C.10-C.12 in float64.

  unpaired_loss_reference.py kto|bco POLICY_DIR REF_DIR DATA.jsonl [beta=0.1]
  unpaired_loss_reference.py d2o POLICY_DIR REF_DIR NEGATIVES.jsonl SAMPLES.jsonl K [beta=0.1] [alpha=0.1]

The global batch is the whole file (one optimizer step, one micro-batch). rho = log pi(y|x) - log pi_ref(y|x),
summed over response tokens.
  kto  z0 = max(mean_i [log pi(y'_i|x_i) - log pi_ref(y'_i|x_i)], 0), y'_i = the completion of example i-1 in file
       order (cyclic); desirable 1 - sigma(beta (rho - z0)), undesirable 1 - sigma(beta (z0 - rho)); mean
  bco  r = beta rho; delta = mean of r over the batch (the running mean after this batch, from n = 1e-24);
       desirable -log sigma(r - delta), undesirable -log sigma(-(r - delta)); mean
  d2o  -log sigma((beta/K) sum_k rho(y_k) - alpha rho(y_l)), y_k the first K samples of the prompt in SAMPLES
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import logprobs_reference as lr  # noqa: E402


def logsigmoid(u):
    return -math.log1p(math.exp(-u)) if u >= 0 else u - math.log1p(math.exp(u))


def sigmoid(u):
    return math.exp(logsigmoid(u))


def seq_logps(model, tok, pairs):
    """pairs: [(prompt, response)] -> summed response log-probs (one unpadded sequence at a time)."""
    out = []
    for prompt, resp in pairs:
        item = lr.encode_item(tok, prompt, resp)
        out.append(lr.score_batch(model, [item], tokens=False)[0]["logp"])
    return out


def main():
    a = sys.argv[1:]
    if len(a) < 4:
        sys.exit(__doc__)
    kind, pol_dir, ref_dir = a[0], a[1], a[2]
    tok = lr.load_tokenizer(pol_dir)
    pol, ref = lr.load_model(pol_dir), lr.load_model(ref_dir)
    rho = lambda pairs: [p - r for p, r in zip(seq_logps(pol, tok, pairs), seq_logps(ref, tok, pairs))]  # noqa: E731
    opts = dict(x.split("=", 1) for x in a[4:] if "=" in x)
    if kind in ("kto", "bco"):
        rows = lr.read_examples(a[3])
        beta = float(opts.get("beta", 0.1))
        r = rho([(x["prompt"], x["completion"]) for x in rows])
        if kind == "kto":
            mism = rho([(x["prompt"], rows[i - 1]["completion"]) for i, x in enumerate(rows)])
            z0 = max(sum(mism) / len(mism), 0.0)
            terms = [1 - sigmoid(beta * (v - z0)) if x["label"] else 1 - sigmoid(beta * (z0 - v)) for v, x in zip(r, rows)]
        else:
            delta = sum(beta * v for v in r) / len(r)
            terms = [-logsigmoid(beta * v - delta) if x["label"] else -logsigmoid(-(beta * v - delta))
                     for v, x in zip(r, rows)]
        print(f"{sum(terms) / len(terms):.10f}")
    else:
        negs, samples, k = lr.read_examples(a[3]), lr.read_examples(a[4]), int(a[5])
        opts = dict(x.split("=", 1) for x in a[6:] if "=" in x)
        beta, alpha = float(opts.get("beta", 0.1)), float(opts.get("alpha", 0.1))
        by_prompt = {}
        for s in samples:
            by_prompt.setdefault(s["prompt"], []).append(s["completion"])
        terms = []
        for x in negs:
            ys = by_prompt[x["prompt"]][:k]
            rs = rho([(x["prompt"], y) for y in ys])
            rl = rho([(x["prompt"], x["rejected"])])[0]
            terms.append(-logsigmoid(beta / k * sum(rs) - alpha * rl))
        print(f"{sum(terms) / len(terms):.10f}")


if __name__ == "__main__":
    main()
