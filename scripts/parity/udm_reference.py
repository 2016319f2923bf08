#!/usr/bin/env python3
"""Reference for BCO with underlying-distribution matching (METHODS.md C.11), computed independently.

  udm_reference.py EMBED_MODEL_DIR DATA.jsonl PROMPT_SAMPLE_SIZE MIN_RATIO MAX_RATIO

DATA holds {"prompt", "completion", "label"} lines. Each prompt ([BOS] + prompt, logprobs_reference.py's
tokenisation) is embedded as the mean of the embedding model's final hidden states (transformers, fp32); a
class-balanced L2 logistic regression (C = 1, unpenalised intercept: scikit-learn's LogisticRegression defaults,
solved here with numpy's Newton iterations in float64) is fitted on the first PROMPT_SAMPLE_SIZE prompts of each
class; an undesirable example weighs clamp(p / (1 - p + 1e-8), MIN, MAX). Prints one JSON object:
{"weights": [...], "step1_loss": ln 2 * mean(weights)} — the BCO loss of a first step over the whole file when the
policy equals the reference (every reward and the running mean are 0, so each term is -log sigmoid(0) = ln 2).
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from logprobs_reference import load_model, load_tokenizer, read_examples  # noqa: E402


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    import numpy as np
    import torch

    emb_dir, data, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lo, hi = float(sys.argv[4]), float(sys.argv[5])
    tok = load_tokenizer(emb_dir)
    model = load_model(emb_dir)
    rows = read_examples(data)
    emb, labels = [], []
    for r in rows:
        ids = ([tok.bos_id] if tok.bos_id is not None else []) + tok.encode(r["prompt"])
        with torch.no_grad():
            h = model.model(input_ids=torch.tensor([ids])).last_hidden_state[0].double()
        emb.append(h.mean(0).numpy())
        labels.append(1.0 if r["label"] else 0.0)
    x, y = np.array(emb), np.array(labels)
    pick, seen = [], {0.0: 0, 1.0: 0}
    for i, lab in enumerate(y):
        if seen[lab] < k:
            seen[lab] += 1
            pick.append(i)
    xs, ys = x[pick], y[pick]
    n, n1 = len(ys), ys.sum()
    w = np.where(ys > 0.5, n / (2 * n1), n / (2 * (n - n1)))
    xa = np.hstack([xs, np.ones((n, 1))])
    reg = np.ones(xa.shape[1])
    reg[-1] = 0.0
    theta = np.zeros(xa.shape[1])
    for _ in range(200):
        p = 1 / (1 + np.exp(-xa @ theta))
        g = xa.T @ (w * (p - ys)) + reg * theta
        if np.linalg.norm(g) < 1e-12:
            break
        hess = (xa.T * (w * p * (1 - p))) @ xa + np.diag(reg)
        theta -= np.linalg.solve(hess, g)
    p_all = 1 / (1 + np.exp(-(np.hstack([x, np.ones((len(y), 1))]) @ theta)))
    weights = [1.0 if lab else float(min(max(p / (1 - p + 1e-8), lo), hi)) for p, lab in zip(p_all, y)]
    print(json.dumps({"weights": weights, "step1_loss": math.log(2) * sum(weights) / len(weights)}))


if __name__ == "__main__":
    main()
