#!/usr/bin/env python3
"""Compares two output folders of `aligntrain run` for a behaviour-preserving change: metrics.jsonl line by line
without its timing fields (tokens_per_sec, elapsed_sec) and measured memory peak (peak_mib), and every saved model,
generated file and tokenizer file byte for byte (checkpoints, caches, logs and DONE markers, which hold paths and
times, are left out).

    python3 scripts/compare_runs.py RUN_BEFORE RUN_AFTER

Prints what differs; exit 0 when nothing does, 1 otherwise.
"""
import json
import os
import sys

TIMING = {"tokens_per_sec", "elapsed_sec", "peak_mib"}
SKIP_DIRS = {"checkpoints", "cache"}
SKIP_FILES = {"metrics.jsonl", "aligntrain.log", "recipe.resolved.yaml", "DONE"}


def metrics(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in f if line.strip()]


def files(run):
    out = set()
    for root, dirs, names in os.walk(run):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for n in names:
            if n not in SKIP_FILES:
                out.add(os.path.relpath(os.path.join(root, n), run))
    return out


def main(a, b):
    bad = 0
    ma, mb = metrics(a), metrics(b)
    if len(ma) != len(mb):
        print(f"metrics.jsonl: {len(ma)} lines vs {len(mb)}")
        bad += 1
    for i, (x, y) in enumerate(zip(ma, mb)):
        if x != y:
            print(f"metrics.jsonl line {i + 1} differs:\n  {x}\n  {y}")
            bad += 1
    fa, fb = files(a), files(b)
    for f in sorted(fa ^ fb):
        print(f"only in {'the first' if f in fa else 'the second'}: {f}")
        bad += 1
    same = 0
    for f in sorted(fa & fb):
        with open(os.path.join(a, f), "rb") as x, open(os.path.join(b, f), "rb") as y:
            if x.read() != y.read():
                print(f"differs: {f}")
                bad += 1
            else:
                same += 1
    print(f"compare_runs: {len(ma)} metrics lines, {same} files identical, {bad} difference(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
