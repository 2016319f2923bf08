#!/usr/bin/env python3
"""Reference for the `select` stage's ISA method (METHODS.md E.2; the stage contract in README "Data selection"),
computed independently with numpy and scikit-learn, and compared with what aligntrain wrote.

  isa_reference.py STAGE_DIR POOL.jsonl [--covariance diag|full] [--components K] [--max-iter N] [--tol T]
                   [--reg-covar R] [--prefer rare|common] [--keep K | --keep-fraction F] [--atol A]
                   [--model DIR --max-length L [--text FIELDS]]

STAGE_DIR is the select stage's folder of a run with `select.save_embeddings: true`: embeddings.safetensors
(tensor "embeddings", F64 [N, d], row i = the i-th valid candidate), gmm.json, scores.jsonl and selected.jsonl.
POOL.jsonl is the candidate pool the stage read; the options are the stage's `select` options (defaults as in the
recipe schema: diag, 2, 100, 1e-3, 1e-6, rare, keep_fraction 0.1).

What is recomputed:
  * the deterministic initialisation: mean_1 = the embedding farthest (Euclidean) from the data mean; each next
    mean = the embedding maximising its minimum distance to the means chosen so far (ties: lowest index); every
    embedding hard-assigned to its nearest mean (ties: lowest component); weights, means and covariances of that
    assignment as sklearn's _estimate_gaussian_parameters computes them (nk = counts + 10 eps, reg_covar on the
    diagonal), weights normalised to sum 1;
  * the EM fit: sklearn.mixture.GaussianMixture(n_components, covariance_type, tol, reg_covar, max_iter, n_init=1)
    started from weights_init / means_init / precisions_init (inverse covariances; inverse variances for diag);
  * per-example log densities log p_i = score_samples, H(D) = -mean_i log p_i, ΔH_i = -(log p_i + H(D)) / (N - 1);
  * the selection: sort by ΔH descending (prefer common: ascending), ties by the earlier line; K = keep, or
    max(1, llround(keep_fraction * N)); the chosen pool lines, in input order, byte for byte.
Compared with aligntrain: n_iter and converged equal; weights, means and covariances within ATOL (absolute,
default 1e-4); lower_bound, H(D) and every log p_i (aligntrain's recovered from its scores as
log p_i = -ΔH_i (N - 1) - H(D)) within ATOL * max(1, |value|) (log densities of 64-dimensional points are in the
hundreds); selected.jsonl equal to the top K by aligntrain's own printed scores exactly, and to the top K by the
reference's scores (a difference only among candidates whose reference scores lie within the tolerance of the
K-th is reported as a near tie, not a failure).

With --model DIR (an HF model folder, e.g. one written by `aligntrain init-model`), the embeddings are also
recomputed with transformers (fp32, eager): each candidate's text (the `select.text` fields, '+'-joined, concatenated
without separator; by default by the line's kind) encoded by the model's tokenizer without special tokens,
truncated to --max-length tokens (an empty text is the EOS token), the mean over its tokens of the final hidden
states (after the final norm), compared with embeddings.safetensors within ATOL.

Prints a report; exit status 0 when everything matches, 1 on a mismatch, 2 on bad arguments or files.
"""
import argparse
import json
import math
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TEXT_FIELDS = ("prompt", "completion", "chosen", "rejected")


def llround(x):
    """C's llround: halves away from zero (Python's round() rounds halves to even)."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def load_embeddings(path):
    from safetensors.numpy import load_file

    tensors = load_file(path)
    if "embeddings" not in tensors:
        raise ValueError(f"{path}: no tensor 'embeddings' (has {sorted(tensors)})")
    x = tensors["embeddings"]
    if x.dtype != np.float64 or x.ndim != 2:
        raise ValueError(f"{path}: embeddings is {x.dtype} {list(x.shape)}, expected F64 [N, d]")
    return x


def read_scores(path):
    lines, scores = [], []
    with open(path, encoding="utf-8") as f:
        for row in f:
            j = json.loads(row)
            lines.append(int(j["line"]))
            scores.append(float(j["score"]))
    return lines, np.array(scores)


def pool_lines(path):
    """The pool's raw lines (bytes, each with its newline; a missing final newline added), 1-based."""
    with open(path, "rb") as f:
        raw = f.read().split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    return {i + 1: line + b"\n" for i, line in enumerate(raw)}


# ----------------------------------------------------------------------------------------------------------------
# The deterministic initialisation and the sklearn fit.

def farthest_point_means(x, k):
    """Indices of the initial means: farthest from the data mean, then greedy max-min distance (lowest index wins
    ties: np.argmax returns the first maximum)."""
    center = x.mean(axis=0)
    first = int(np.argmax(((x - center) ** 2).sum(axis=1)))
    chosen = [first]
    min_d2 = ((x - x[first]) ** 2).sum(axis=1)
    while len(chosen) < k:
        nxt = int(np.argmax(min_d2))
        chosen.append(nxt)
        min_d2 = np.minimum(min_d2, ((x - x[nxt]) ** 2).sum(axis=1))
    return chosen


def gaussian_parameters(x, resp, reg_covar, covariance):
    """sklearn.mixture._gaussian_mixture._estimate_gaussian_parameters (diag and full), restated in numpy."""
    nk = resp.sum(axis=0) + 10 * np.finfo(resp.dtype).eps
    means = (resp.T @ x) / nk[:, None]
    if covariance == "diag":
        covs = (resp.T @ (x * x)) / nk[:, None] - means**2 + reg_covar
    else:
        k, d = means.shape
        covs = np.empty((k, d, d))
        for c in range(k):
            diff = x - means[c]
            covs[c] = ((resp[:, c] * diff.T) @ diff) / nk[c]
            covs[c].flat[:: d + 1] += reg_covar
    return nk, means, covs


def initial_parameters(x, k, reg_covar, covariance):
    seeds = farthest_point_means(x, k)
    centers = x[seeds]
    d2 = ((x[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)  # [N, k]
    labels = np.argmin(d2, axis=1)  # the first minimum: lowest component on ties
    resp = np.zeros((x.shape[0], k))
    resp[np.arange(x.shape[0]), labels] = 1.0
    nk, means, covs = gaussian_parameters(x, resp, reg_covar, covariance)
    weights = nk / nk.sum()
    if covariance == "diag":
        precisions = 1.0 / covs
    else:
        precisions = np.linalg.inv(covs)
        precisions = (precisions + np.transpose(precisions, (0, 2, 1))) / 2
    return seeds, np.bincount(labels, minlength=k), weights, means, precisions


def fit(x, opts):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    seeds, counts, weights, means, precisions = initial_parameters(x, opts.components, opts.reg_covar,
                                                                   opts.covariance)
    gm = GaussianMixture(n_components=opts.components, covariance_type=opts.covariance, tol=opts.tol,
                         reg_covar=opts.reg_covar, max_iter=opts.max_iter, n_init=1, weights_init=weights,
                         means_init=means, precisions_init=precisions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(x)
    return gm, seeds, counts


# ----------------------------------------------------------------------------------------------------------------
# Optional: the embeddings themselves, with transformers.

def candidate_text(obj, fields):
    def content(value):
        if isinstance(value, str):
            return value
        return "\n".join(m["content"] for m in value)

    if "messages" in obj:  # messages-format SFT: prompt = all messages but the last, completion = the last
        obj = {"prompt": obj["messages"][:-1], "completion": obj["messages"][-1:]}
    if fields is None:
        if "chosen" in obj and "rejected" in obj:
            fields = ["prompt", "chosen"]
        elif "completion" in obj:
            fields = ["prompt", "completion"]
        elif "rejected" in obj:
            fields = ["prompt", "rejected"]
        else:
            fields = ["prompt"]
    return "".join(content(obj[f]) for f in fields)


def model_embeddings(model_dir, texts, max_length):
    import torch
    import transformers

    from logprobs_reference import load_model, load_tokenizer

    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar in the report

    tok = load_tokenizer(model_dir)
    model = load_model(model_dir)
    rows = []
    with torch.no_grad():
        for text in texts:
            ids = tok.encode(text)[:max_length] or [tok.eos_id]
            h = model.model(input_ids=torch.tensor([ids])).last_hidden_state[0]
            rows.append(h.double().mean(0).numpy())
    return np.array(rows)


# ----------------------------------------------------------------------------------------------------------------

class Report:
    def __init__(self):
        self.failures = 0

    def line(self, ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            self.failures += 1


def matched_candidates(selected, candidates):
    """Indices of the candidates that selected.jsonl holds (its lines matched in order against the candidate lines),
    or None when its lines are not a subsequence of them."""
    picked, i = [], 0
    for line in selected.splitlines(keepends=True):
        while i < len(candidates) and candidates[i] != line:
            i += 1
        if i == len(candidates):
            return None
        picked.append(i)
        i += 1
    return picked


def top_k(scores, k, prefer):
    sign = -1.0 if prefer == "rare" else 1.0
    order = sorted(range(len(scores)), key=lambda i: (sign * scores[i], i))
    return sorted(order[:k]), order


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stage_dir")
    ap.add_argument("pool")
    ap.add_argument("--covariance", choices=["diag", "full"], default="diag")
    ap.add_argument("--components", type=int, default=2)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--reg-covar", type=float, default=1e-6)
    ap.add_argument("--prefer", choices=["rare", "common"], default="rare")
    budget = ap.add_mutually_exclusive_group()
    budget.add_argument("--keep", type=int)
    budget.add_argument("--keep-fraction", type=float)
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--model")
    ap.add_argument("--max-length", type=int)
    ap.add_argument("--text", help="'+'-joined fields of prompt, completion, chosen, rejected")
    opts = ap.parse_args()
    if opts.model and not opts.max_length:
        ap.error("--model needs --max-length (the stage's batch.max_length)")
    fields = opts.text.split("+") if opts.text else None
    if fields and any(f not in TEXT_FIELDS for f in fields):
        ap.error(f"--text: fields are {'+'.join(TEXT_FIELDS)}")

    try:
        x = load_embeddings(os.path.join(opts.stage_dir, "embeddings.safetensors"))
        with open(os.path.join(opts.stage_dir, "gmm.json"), encoding="utf-8") as f:
            gmm = json.load(f)
        lines, at_scores = read_scores(os.path.join(opts.stage_dir, "scores.jsonl"))
        with open(os.path.join(opts.stage_dir, "selected.jsonl"), "rb") as f:
            at_selected = f.read()
        pool = pool_lines(opts.pool)
    except (OSError, ValueError, KeyError) as e:
        print(f"isa_reference: {e}", file=sys.stderr)
        return 2

    rep = Report()
    n, d = x.shape
    print(f"{opts.stage_dir}: N = {n} candidates, d = {d}, covariance {opts.covariance}, "
          f"{opts.components} components, tol {opts.tol}, reg_covar {opts.reg_covar}, max_iter {opts.max_iter}")
    valid = [i for i, raw in sorted(pool.items()) if raw.strip()]
    rep.line(len(lines) == n and lines == valid,
             f"scores.jsonl has one line per valid candidate, in pool order ({len(lines)} scores, {n} embeddings, "
             f"{len(valid)} non-blank pool lines)")
    if len(lines) != n:
        return 1
    rep.line(bool(np.isfinite(x).all()), "embeddings are finite")

    if opts.model:
        texts = [candidate_text(json.loads(pool[i]), fields) for i in lines]
        ref_x = model_embeddings(opts.model, texts, opts.max_length)
        err = float(np.abs(ref_x - x).max())
        rep.line(err <= opts.atol, f"embeddings = transformers' mean final hidden state (max |diff| {err:.3g})")

    gm, seeds, counts = fit(x, opts)
    print(f"initialisation: seed rows {seeds}, hard-assignment sizes {counts.tolist()}")
    print(f"sklearn: n_iter {gm.n_iter_}, converged {gm.converged_}, lower_bound {gm.lower_bound_:.10g}, "
          f"weights {np.round(gm.weights_, 6).tolist()}")

    rep.line(gmm.get("covariance") == opts.covariance and gmm.get("components") == opts.components,
             f"gmm.json: covariance {gmm.get('covariance')}, components {gmm.get('components')}")
    rep.line(gmm.get("n_iter") == gm.n_iter_, f"n_iter: aligntrain {gmm.get('n_iter')}, sklearn {gm.n_iter_}")
    rep.line(gmm.get("converged") == bool(gm.converged_),
             f"converged: aligntrain {gmm.get('converged')}, sklearn {bool(gm.converged_)}")

    def close(name, got, want, scaled=False):
        got = np.asarray(got, dtype=np.float64)
        want = np.asarray(want, dtype=np.float64)
        if got.shape != want.shape:
            rep.line(False, f"{name}: shape {list(got.shape)}, sklearn {list(want.shape)}")
            return
        err = np.abs(got - want)
        bound = opts.atol * (np.maximum(1.0, np.abs(want)) if scaled else 1.0)
        bad = int((~(err <= bound)).sum())
        rep.line(bad == 0, f"{name}: max |diff| {float(err.max()):.3g}"
                           + (f" ({bad} of {err.size} beyond tolerance)" if bad else ""))

    close("weights", gmm.get("weights", []), gm.weights_)
    close("means", gmm.get("means", []), gm.means_)
    close("covariances", gmm.get("covariances", []), gm.covariances_)
    close("lower_bound", gmm.get("lower_bound", math.nan), gm.lower_bound_, scaled=True)

    ref_logp = gm.score_samples(x)
    ref_h = -float(ref_logp.mean())
    at_h = float(gmm.get("entropy", math.nan))
    close("entropy H(D)", at_h, ref_h, scaled=True)
    at_logp = -at_scores * (n - 1) - at_h
    close("log p_i (from scores)", at_logp, ref_logp, scaled=True)
    ref_scores = -(ref_logp + ref_h) / (n - 1)
    print(f"log p_i: reference range [{ref_logp.min():.6g}, {ref_logp.max():.6g}]; "
          f"ΔH_i range [{ref_scores.min():.6g}, {ref_scores.max():.6g}]")

    if opts.keep is not None:
        k = opts.keep
    else:
        k = max(1, llround((0.1 if opts.keep_fraction is None else opts.keep_fraction) * n))
    at_pick, _ = top_k(at_scores, k, opts.prefer)
    ref_pick, ref_order = top_k(ref_scores, k, opts.prefer)
    got_lines = at_selected.count(b"\n")
    rep.line(got_lines == k, f"selected.jsonl has K = {k} lines (got {got_lines})")
    expected_at = b"".join(pool[lines[i]] for i in at_pick)
    rep.line(at_selected == expected_at,
             f"selected.jsonl = the top {k} by aligntrain's own scores ({opts.prefer} first, ties by line), "
             "byte for byte, in input order")
    got_pick = matched_candidates(at_selected, [pool[i] for i in lines])
    if got_pick == ref_pick:
        rep.line(True, f"selection = the top {k} by the reference's ΔH")
    elif got_pick is None:
        rep.line(False, "selected.jsonl is not a subsequence of the candidate lines")
    else:
        threshold = ref_logp[ref_order[k - 1]]  # the K-th candidate's log density
        differ = set(ref_pick) ^ set(got_pick)
        tie = len(got_pick) == k and all(
            abs(ref_logp[i] - threshold) <= opts.atol * max(1.0, abs(threshold)) for i in differ)
        print(f"{'note' if tie else 'FAIL'} selection differs from the reference's top {k} in pool lines "
              f"{sorted(lines[i] for i in differ)}" + (" (near ties at the threshold)" if tie else ""))
        if not tie:
            rep.failures += 1

    print(f"isa_reference: {'all checks passed' if rep.failures == 0 else f'{rep.failures} mismatches'}")
    return 0 if rep.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
