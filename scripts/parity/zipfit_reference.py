#!/usr/bin/env python3
"""Reference for the ZIP-FIT select stage (METHODS.md E.1, notes/select_contract.md), computed independently with
the standard library only.

  zipfit_reference.py --pool POOL.jsonl --target TARGET.jsonl [--text prompt+completion]
                      (--keep K | --keep-fraction F) [--skip-invalid] [--out DIR] [--compare STAGE_DIR]
  zipfit_reference.py --self-test

What it computes:
  * the text of a line: the `--text` fields ('+'-joined, of prompt, completion, chosen, rejected) concatenated
    without a separator; default by the file's kind (the fields of its first non-blank line that parses:
    chosen+rejected -> preference, label -> unpaired, completion or messages -> sft, rejected -> negatives, else
    prompts): prompt+completion (sft, unpaired), prompt+chosen (preference), prompt+rejected (negatives), prompt
    (prompts). The target's default follows the target's own kind. A field holding a message list gives its
    messages' contents joined by "\\n"; on a messages-form SFT line (no prompt/completion field) prompt is every
    message but the last and completion the last one's content.
  * C(s) = len(gzip.compress(s.encode("utf-8"), compresslevel=1))  (gzip header and trailer included)
    NCD(x, t) = (C(x + t) - min(C(x), C(t))) / max(C(x), C(t))      (candidate first, no separator)
    S(x) = Align(x) = 1 - (1/n) sum_j NCD(x, t_j)                      (sum over targets in file order)
  * K = keep, or max(1, llround(keep_fraction * N)) with N the number of valid candidates; the top K by S
    descending, ties by the earlier line; written in input order.

Outputs (--out DIR): scores.jsonl ({"line": N, "score": S}, 17 significant digits, every valid candidate in input
order), selected.jsonl (the kept lines byte for byte as read, a CR before the newline included, each ending
"\\n"), summary.json (the
metrics line the stage logs: select/candidates, kept, score_mean, score_mean_kept, score_threshold = the lowest
kept score).
--compare STAGE_DIR checks aligntrain's STAGE_DIR/scores.jsonl (same lines, |S - S_ref| <= 1e-9 each) and
STAGE_DIR/selected.jsonl (byte for byte) and, when STAGE_DIR/../metrics.jsonl has the stage's line, its select/*
values (1e-9); prints the first mismatch and exits 1 on any.
Exit codes like aligntrain's: 2 for a bad argument (an unknown text field), 3 for bad data (FILE:LINE: FIELD:
problem; an empty file; keep larger than the pool).
"""
import argparse
import gzip
import json
import math
import os
import sys

FIELDS = ("prompt", "completion", "chosen", "rejected")
DEFAULT_TEXT = {"sft": "prompt+completion", "unpaired": "prompt+completion", "preference": "prompt+chosen",
                "negatives": "prompt+rejected", "prompts": "prompt"}
REQUIRED = {"sft": ("prompt", "completion"), "unpaired": ("prompt", "completion", "label"),
            "preference": ("prompt", "chosen", "rejected"), "negatives": ("prompt", "rejected"),
            "prompts": ("prompt",)}
SCORE_TOL = 1e-9


class DataError(Exception):
    """Bad data: exit 3."""


class UsageError(Exception):
    """Bad arguments: exit 2."""


# ---- the metric ----------------------------------------------------------------------------------------------
def csize(s):
    """C(s): gzip level 1, with the 10-byte header and 8-byte trailer (what Python's gzip.compress returns)."""
    return len(gzip.compress(s.encode("utf-8"), compresslevel=1))


def ncd(cx, ct, cxt):
    return (cxt - min(cx, ct)) / max(cx, ct)


def align_scores(candidates, targets):
    """S_i = 1 - mean_j NCD(x_i, t_j); single-string sizes computed once."""
    ct = [csize(t) for t in targets]
    out = []
    for x in candidates:
        cx = csize(x)
        total = 0.0
        for t, c in zip(targets, ct):
            total += ncd(cx, c, csize(x + t))
        out.append(1.0 - total / len(targets))
    return out


def llround(x):
    """C's llround for x >= 0: halves away from zero (Python's round() would round halves to even)."""
    f = math.floor(x)
    return int(f) + (1 if x - f >= 0.5 else 0)


def top_k(scores, k):
    """Indices of the K best (score descending, ties: lower index first), in ascending index order."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return sorted(order[:k])


# ---- the data ------------------------------------------------------------------------------------------------
def parse_fields(spec):
    fields = spec.split("+")
    for f in fields:
        if f not in FIELDS:
            raise UsageError(f"--text: unknown field `{f}` in `{spec}` (expected {', '.join(FIELDS)} joined by +)")
    return fields


def detect_kind(obj):
    if "chosen" in obj and "rejected" in obj:
        return "preference"
    if "label" in obj:
        return "unpaired"
    if "completion" in obj or "messages" in obj:
        return "sft"
    if "rejected" in obj:
        return "negatives"
    return "prompts"


def contents(messages, where):
    parts = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}[{i}].content: expected a string")
        parts.append(m["content"])
    return "\n".join(parts)


def has_field(obj, field):
    """A field as the data reader sees it: present and not null, or derived from a messages-form SFT line."""
    if obj.get(field) is not None:
        return True
    return field in ("prompt", "completion") and isinstance(obj.get("messages"), list) and len(obj["messages"]) > 0


def field_text(obj, field, where):
    v = obj.get(field)
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return contents(v, f"{where}{field}")
    if v is not None:
        raise DataError(f"{where}{field}: expected a string or a list of messages")
    m = obj.get("messages")
    if field in ("prompt", "completion") and isinstance(m, list) and m:
        # messages-form SFT: the last message is the completion, the others the prompt
        return contents(m[:-1], f"{where}messages") if field == "prompt" else contents(m[-1:], f"{where}messages")
    raise DataError(f"{where}{field}: missing field")


def read_texts(path, spec, skip_invalid=False):
    """(lines, raws, texts, kind): per valid line its 1-based number, its bytes as read (without the newline) and
    its text. A CR before the newline is not part of the JSON; a line of blanks (spaces, tabs) is skipped but
    counted."""
    with open(path, "rb") as f:
        data = f.read()
    rows = data.split(b"\n")
    if rows and rows[-1] == b"":
        rows.pop()
    kind, parsed = None, []
    for n, raw in enumerate(rows, 1):
        body = raw[:-1] if raw.endswith(b"\r") else raw
        if body.strip(b" \t") == b"":
            continue
        where = f"{path}:{n}: "
        try:
            try:
                obj = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                raise DataError(f"{where}invalid JSON: {e}")
            if not isinstance(obj, dict):
                raise DataError(f"{where}expected a JSON object")
            if kind is None:
                kind = detect_kind(obj)
            for field in REQUIRED[kind]:
                if field == "label":
                    if not isinstance(obj.get("label"), bool):
                        raise DataError(f"{where}label: expected true or false")
                elif not has_field(obj, field):
                    raise DataError(f"{where}{field}: missing field")
            parsed.append((n, raw, obj))
        except DataError:
            if not skip_invalid:
                raise
    if not parsed:
        raise DataError(f"{path}: no examples (empty file)")
    fields = parse_fields(spec) if spec else parse_fields(DEFAULT_TEXT[kind])
    lines, raws, texts = [], [], []
    for n, raw, obj in parsed:
        texts.append("".join(field_text(obj, f, f"{path}:{n}: ") for f in fields))
        lines.append(n)
        raws.append(raw)
    return lines, raws, texts, kind


def select(pool, target, text=None, keep=None, keep_fraction=None, skip_invalid=False):
    """The stage's result as a dict: lines, scores, kept indices, selected bytes, summary metrics."""
    if text:
        parse_fields(text)  # an unknown field is a usage error before any data is read
    lines, raws, texts, _ = read_texts(pool, text, skip_invalid)
    _, _, targets, _ = read_texts(target, text, skip_invalid)
    n = len(texts)
    if keep is not None:
        k = keep
        if k > n:
            raise DataError(f"{pool}: keep {k} is larger than the number of candidates ({n})")
    else:
        k = max(1, llround((0.1 if keep_fraction is None else keep_fraction) * n))
    scores = align_scores(texts, targets)
    kept = top_k(scores, k)
    ks = [scores[i] for i in kept]
    summary = {"select/candidates": n, "select/kept": k, "select/score_mean": sum(scores) / n,
               "select/score_mean_kept": sum(ks) / k, "select/score_threshold": min(ks)}
    return {"lines": lines, "scores": scores, "kept": kept, "selected": b"".join(raws[i] + b"\n" for i in kept),
            "summary": summary}


def scores_text(res):
    return "".join('{"line": %d, "score": %.17g}\n' % (ln, s) for ln, s in zip(res["lines"], res["scores"]))


# ---- comparison with aligntrain ------------------------------------------------------------------------------
def compare(res, stage_dir):
    """Problems found comparing aligntrain's stage folder with `res` (an empty list when they agree)."""
    problems = []
    path = os.path.join(stage_dir, "scores.jsonl")
    try:
        got = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
    except (OSError, ValueError) as e:
        return [f"{path}: cannot read: {e}"]
    if len(got) != len(res["lines"]):
        problems.append(f"{path}: {len(got)} lines, expected {len(res['lines'])}")
    worst = 0.0
    for i, (g, ln, s) in enumerate(zip(got, res["lines"], res["scores"])):
        if g.get("line") != ln or not isinstance(g.get("score"), (int, float)):
            problems.append(f"{path}:{i + 1}: got {json.dumps(g)}, expected line {ln}")
            break
        d = abs(g["score"] - s)
        worst = max(worst, d)
        if not d <= SCORE_TOL:
            problems.append(f"{path}:{i + 1}: line {ln}: score {g['score']!r}, expected {s!r} (|diff| {d:.3g})")
            break
    print(f"scores: {len(got)} lines, max |diff| {worst:.3g}")
    path = os.path.join(stage_dir, "selected.jsonl")
    try:
        sel = open(path, "rb").read()
    except OSError as e:
        return problems + [f"{path}: cannot read: {e}"]
    if sel != res["selected"]:
        a, b = sel.split(b"\n"), res["selected"].split(b"\n")
        i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        x = a[i] if i < len(a) else b"<end of file>"
        y = b[i] if i < len(b) else b"<end of file>"
        problems.append(f"{path}:{i + 1}: got {x[:120]!r}, expected {y[:120]!r} "
                        f"({len(a) - 1} lines, expected {len(b) - 1})")
    else:
        print(f"selected: {len(res['kept'])} lines, byte-identical")
    metrics = os.path.join(os.path.dirname(os.path.abspath(stage_dir)), "metrics.jsonl")
    stage = os.path.basename(os.path.abspath(stage_dir))
    if os.path.exists(metrics):
        line = next((j for j in map(json.loads, filter(str.strip, open(metrics))) if j.get("stage") == stage
                     and "select/candidates" in j), None)
        if line is None:
            problems.append(f"{metrics}: no select/* line of stage {stage}")
        else:
            for key, want in res["summary"].items():
                v = line.get(key)
                if not isinstance(v, (int, float)) or not abs(v - want) <= SCORE_TOL:
                    problems.append(f"{metrics}: {key} = {v!r}, expected {want!r}")
    return problems


# ---- self-test -----------------------------------------------------------------------------------------------
def self_test():
    import tempfile
    import zlib

    ok = True

    def expect(cond, what):
        nonlocal ok
        print(("ok   - " if cond else "FAIL - ") + what)
        ok = ok and cond

    src1 = "def add(a, b):\n    return a + b\n"
    src2 = "The quick brown fox jumps over the lazy dog."
    tgts = ["def sub(a, b):\n    return a - b\n", "def mul(a, b):\n    return a * b\n"]
    sizes = (csize(src1), csize(tgts[0]), csize(src1 + tgts[0]))
    expect(sizes == (50, 50, 61), f"METHODS E.1: gzip-1 sizes of add, sub, add+sub = (50, 50, 61), got {sizes}")
    sizes = (csize(src2), csize(tgts[0]), csize(src2 + tgts[0]))
    expect(sizes == (63, 50, 92), f"METHODS E.1: gzip-1 sizes of fox, sub, fox+sub = (63, 50, 92), got {sizes}")
    s = align_scores([src1, src2], tgts)
    expect(abs(s[0] - 0.78) < 1e-12 and abs(s[1] - 1 / 3) < 1e-12,
           f"METHODS E.1: Align = 0.780000 and 0.333333, got {s[0]:.6f} and {s[1]:.6f}")

    def raw(x):  # raw deflate, level 1: what a C++ port gets if it forgets the gzip wrapper
        c = zlib.compressobj(1, zlib.DEFLATED, -15)
        return len(c.compress(x.encode()) + c.flush())

    r = [1 - sum((raw(x + t) - min(raw(x), raw(t))) / max(raw(x), raw(t)) for t in tgts) / 2 for x in (src1, src2)]
    expect(f"{r[0]:.6f} {r[1]:.6f}" == "0.656250 0.066667",
           f"raw deflate gives other values (METHODS: 0.656250 and 0.066667), got {r[0]:.6f} and {r[1]:.6f}")

    expect([llround(x) for x in (0.5, 1.5, 2.5, 2.4999, 49.5)] == [1, 2, 3, 2, 50], "K rounds halves up (llround)")
    expect(top_k([0.5, 0.7, 0.5, 0.7, 0.1], 3) == [0, 1, 3], "top-K: ties go to the earlier line; input order kept")

    with tempfile.TemporaryDirectory() as d:
        def write(name, text):
            p = os.path.join(d, name)
            with open(p, "wb") as f:
                f.write(text.encode())
            return p

        pool = write("pool.jsonl", '{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, '
                                   '{"role": "assistant", "content": "c"}]}\r\n\n   \n'
                                   '{"prompt": [{"role": "user", "content": "p"}], "completion": '
                                   '[{"role": "assistant", "content": "q"}, {"role": "assistant", "content": "r"}]}\n'
                                   '{"prompt": "x", "completion": "y"}')
        lines, raws, texts, kind = read_texts(pool, None)
        expect(kind == "sft" and lines == [1, 4, 5], f"kind sft, blank lines skipped but counted: {kind} {lines}")
        expect(texts == ["a\nbc", "pq\nr", "xy"], f"messages-form split and message contents joined by \\n: {texts}")
        expect(raws[0].endswith(b"}\r") and raws[2].endswith(b"}"),
               "a CR before the newline stays in the line's bytes; the last line needs no newline")
        pairs = write("pairs.jsonl", '{"prompt": "P", "chosen": "C", "rejected": "R"}\n')
        expect(read_texts(pairs, None)[2] == ["PC"] and read_texts(pairs, "rejected+prompt")[2] == ["RP"],
               "preference default prompt+chosen; explicit fields in the given order")
        try:
            read_texts(write("p.jsonl", '{"prompt": "a"}\n{"prompt": "b", "completion": "c"}\n'),
                       "prompt+completion")
            expect(False, "a line without the text field is an error")
        except DataError as e:
            expect(str(e).endswith("p.jsonl:1: completion: missing field"), f"missing field names FILE:LINE: {e}")
        try:
            select(pool, write("empty.jsonl", ""), keep=1)
            expect(False, "an empty target is an error")
        except DataError as e:
            expect("empty.jsonl" in str(e), f"an empty target is a data error naming the file: {e}")
        try:
            select(pool, pairs, text="prompt+answer", keep=1)
            expect(False, "an unknown text field is an error")
        except UsageError as e:
            expect("answer" in str(e), f"an unknown text field is a usage error: {e}")
    print("self-test " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool")
    ap.add_argument("--target")
    ap.add_argument("--text", default=None, help="'+'-joined fields (default: by each file's kind)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--keep", type=int)
    g.add_argument("--keep-fraction", type=float)
    ap.add_argument("--skip-invalid", action="store_true")
    ap.add_argument("--out", help="folder for scores.jsonl, selected.jsonl, summary.json")
    ap.add_argument("--compare", metavar="STAGE_DIR", help="aligntrain's <output_dir>/<stage> to check")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    if not a.pool or not a.target or not (a.out or a.compare):
        ap.error("--pool, --target and --out or --compare are required (or --self-test)")
    try:
        res = select(a.pool, a.target, a.text, a.keep, a.keep_fraction, a.skip_invalid)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "scores.jsonl"), "w", encoding="utf-8") as f:
            f.write(scores_text(res))
        with open(os.path.join(a.out, "selected.jsonl"), "wb") as f:
            f.write(res["selected"])
        with open(os.path.join(a.out, "summary.json"), "w", encoding="utf-8") as f:
            json.dump(res["summary"], f)
            f.write("\n")
    if a.compare:
        problems = compare(res, a.compare)
        for p in problems:
            print("MISMATCH: " + p)
        if problems:
            return 1
        print("aligntrain's selection equals the reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
