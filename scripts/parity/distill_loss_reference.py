#!/usr/bin/env python3
"""Reference for the step-1 loss of an aligntrain distill stage, computed independently with transformers logits
and the formulas of METHODS.md (§A.2–A.4, §B.2, §D.1) in float64.

  distill_loss_reference.py METHOD STUDENT_DIR TEACHER_DIR REF_DIR|- DATA.jsonl [KEY=VALUE ...]
  distill_loss_reference.py -      (one such argument list per line of standard input; one loss per line out)

METHOD: kd | dckd | adpa | aligndistil. The global batch is the whole DATA file (one optimizer step). Prints the loss
with 10 decimals. Options (defaults as aligntrain's): divergence=forward_kl|reverse_kl|jsd|tvd jsd_beta=0.5
temperature=1 kd_ratio=1 top_k=50 sft_weight=1 chosen_distil_weight=0.1 rejected_distil_weight=0.1 adpa_weight=1.6
beta=0.1 beta2=10 mode=published|theorem1|contrast|theorem1_adaptive len_norm=1.
Responses: kd/aligndistil the "completion" (or "chosen"); dckd chosen and rejected; adpa chosen (NLL) and
"completion" (the student's response ŷ). Tokenisation is logprobs_reference.py's ([BOS] + prompt + response + [EOS]).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from logprobs_reference import encode_item, load_model, load_tokenizer, read_examples  # noqa: E402


def response_logits(model, prefix, resp):
    """fp64 logits at the positions predicting each response token: [len(resp), V]."""
    import torch

    ids = torch.tensor([prefix + resp])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    return logits[len(prefix) - 1:len(prefix) - 1 + len(resp)]


def divergence(kind, t, s, beta, temp):
    import torch

    lp, lq = torch.log_softmax(t / temp, -1), torch.log_softmax(s / temp, -1)
    p, q = lp.exp(), lq.exp()
    if kind == "forward_kl":
        return (p * (lp - lq)).sum(-1)
    if kind == "reverse_kl":
        return (q * (lq - lp)).sum(-1)
    if kind == "tvd":
        return 0.5 * (p - q).abs().sum(-1)
    if beta == 0:
        return (p * (lp - lq)).sum(-1)
    if beta == 1:
        return (q * (lq - lp)).sum(-1)
    m = beta * p + (1 - beta) * q
    lm = m.log()
    return beta * (p * (lp - lm)).sum(-1) + (1 - beta) * (q * (lq - lm)).sum(-1)


def table(t, k):
    import torch

    p = torch.softmax(t, -1)
    vals, idx = p.topk(k, -1)
    return idx, vals, 1 - vals.sum(-1)


def dckd_kl(s, t, k):
    import torch

    idx, vals, rest = table(t, k)
    q = torch.softmax(s, -1).gather(-1, idx)
    qb = torch.cat([q, (1 - q.sum(-1, keepdim=True))], -1).clamp(1e-8, 1 - 1e-8)
    pb = torch.cat([vals, rest.unsqueeze(-1)], -1).clamp(1e-8, 1 - 1e-8)
    return (pb * (pb.log() - qb.clamp_min(1e-7).log())).sum(-1)


def adpa_term(s, t, r, k):
    import torch

    di, dv, _ = table(t, k)
    ri, rv, _ = table(r, k)
    out = []
    q_all = torch.softmax(s, -1)
    for n in range(s.shape[0]):
        floor = max(dv[n].min().item(), 1e-7)
        ref = {int(i): float(v) for i, v in zip(ri[n], rv[n])}
        total = 0.0
        qsum = 0.0
        for i, v in zip(di[n].tolist(), dv[n].tolist()):
            import math
            a = math.log(max(v, 1e-7)) - math.log(max(ref[i], 1e-7) if i in ref else floor)
            qa = q_all[n, i].item()
            qsum += qa
            total += min(max(qa, 1e-8), 1 - 1e-8) * min(max(a, 1e-8), 1 - 1e-8)
        total += min(max(1 - qsum, 1e-8), 1 - 1e-8) * 1e-8
        out.append(-total)
    return torch.tensor(out, dtype=torch.float64)


def aligndistil(s, zd, zr, mode, beta, beta2, temp):
    import torch

    if mode == "published":
        d = (torch.softmax(zd, -1) - torch.softmax(zr, -1)).abs().sum(-1, keepdim=True)
        w = beta2 * d + 1e-3
        zs, coef = zd + w * (zd - zr), beta / w.squeeze(-1)
    elif mode == "theorem1":
        w = beta / beta2
        zs, coef = w * zd + (1 - w) * zr, beta2
    elif mode == "theorem1_adaptive":  # the released code's adaptive w_t as the theorem1 interpolation weight
        d = (torch.softmax(zd, -1) - torch.softmax(zr, -1)).abs().sum(-1, keepdim=True)
        w = beta2 * d + 1e-3
        zs, coef = w * zd + (1 - w) * zr, beta / w.squeeze(-1)
    else:
        zs, coef = zd + (beta / beta2) * (zd - zr), beta2
    lt = torch.log_softmax(zs / temp, -1)
    lq = torch.log_softmax(s, -1)
    return coef * (lq.exp() * (lq - lt)).sum(-1)


_models = {}


def model(path):
    if path not in _models:
        _models[path] = load_model(path)
    return _models[path]


def case(argv):
    method, student_dir, teacher_dir, ref_dir, data = argv[:5]
    opt = dict(a.split("=", 1) for a in argv[5:])
    f = lambda k, d: float(opt.get(k, d))  # noqa: E731
    tok = load_tokenizer(student_dir)
    student, teacher = model(student_dir), model(teacher_dir)
    ref = model(ref_dir) if ref_dir != "-" else None
    examples = read_examples(data)
    fields = {"kd": ["completion"], "aligndistil": ["completion"], "dckd": ["chosen", "rejected"],
              "adpa": ["chosen", "completion"]}[method]
    per_col = [[] for _ in fields]  # per column: list of (student logits, teacher logits, ref logits, n)
    nll_sum, nll_tokens = 0.0, 0
    import torch

    for ex in examples:
        for c, field in enumerate(fields):
            resp_text = ex.get(field, ex.get("chosen")) if field == "completion" and method != "adpa" else ex[field]
            prefix, resp = encode_item(tok, ex["prompt"], resp_text)
            s = response_logits(student, prefix, resp)
            t = response_logits(teacher, prefix, resp)
            r = response_logits(ref, prefix, resp) if ref is not None else None
            if c == 0:
                nll_sum += -torch.log_softmax(s, -1).gather(-1, torch.tensor(resp).unsqueeze(-1)).sum().item()
                nll_tokens += len(resp)
            per_col[c].append((s, t, r, len(resp)))
    nll = nll_sum / nll_tokens
    token_mean = lambda vals, col: sum(v.sum().item() for v in vals) / sum(x[3] for x in col)  # noqa: E731
    if method == "kd":
        vals = [divergence(opt.get("divergence", "forward_kl"), t, s, f("jsd_beta", 0.5), f("temperature", 1))
                for s, t, _, _ in per_col[0]]
        kr = f("kd_ratio", 1)
        loss = (1 - kr) * nll + kr * token_mean(vals, per_col[0])
    elif method == "dckd":
        k = int(f("top_k", 50))
        kl = [token_mean([dckd_kl(s, t, k) for s, t, _, _ in col], col) for col in per_col]
        loss = f("sft_weight", 1) * nll + f("chosen_distil_weight", 0.1) * kl[0] + f("rejected_distil_weight", 0.1) * kl[1]
    elif method == "adpa":
        k = int(f("top_k", 50))
        term = token_mean([adpa_term(s, t, r, k) for s, t, r, _ in per_col[1]], per_col[1])
        loss = f("sft_weight", 1) * nll + f("adpa_weight", 1.6) * term
    else:
        vals = [aligndistil(s, t, r, opt.get("mode", "published"), f("beta", 0.1), f("beta2", 10), f("temperature", 1))
                for s, t, r, _ in per_col[0]]
        if int(f("len_norm", 1)):
            term = sum(v.mean().item() for v in vals) / len(vals)
        else:
            term = sum(v.sum().item() for v in vals) / len(vals)
        kr = f("kd_ratio", 1)
        loss = (1 - kr) * nll + kr * term
    return loss


def main():
    if sys.argv[1:] == ["-"]:
        for line in sys.stdin:
            if line.strip():
                print(f"{case(line.split()):.10f}", flush=True)
    elif len(sys.argv) >= 6:
        print(f"{case(sys.argv[1:]):.10f}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
