#!/usr/bin/env python3
"""The Python peer of a ZIP-FIT `select` stage: the paper's own implementation, rewritten here with the structure
of its first release, for bench/run_zipfit.sh to compare wall time and the selection.

  zipfit_peer.py --make-data DIR [--candidates 20000] [--targets 200] [--seed 0]
      writes DIR/pool.jsonl and DIR/target.jsonl: synthetic {"prompt", "completion"} lines of a few hundred bytes
      (Python functions, English prose, arithmetic word problems, sorting and list tasks, short dialogues with
      some non-ASCII text); the targets are Python functions, as in the paper's code-domain experiments. Every
      line is distinct. Deterministic for a seed.
  zipfit_peer.py --pool POOL.jsonl --target TARGET.jsonl --k K --out TOPK.txt [--processes N] [--cache all|none]
      selects the K candidates most aligned with the targets and writes their 1-based line numbers, ascending,
      one per line; prints a last line "RESULT {json}" (timings of the phases).

The paper's code (stair-lab/ZIP-FIT, zip_fit/zipfit.py; first release efa64e6, "ZIP-FIT PyPi Package"), whose
structure this follows:
  * compress(s): len(gzip.compress(s.encode("utf-8"), compresslevel=1)) behind a dict cache keyed by the string,
    an attribute of the ZIPFIT object. Every string compressed is stored, the concatenations included (they never
    repeat). The pools run the object's bound methods, so each task (a chunk of 2000 items) unpickles its own
    copy of the object with the parent's cache, which stays empty: a cache lives for one chunk, and no size is
    ever found in it (single-string sizes are computed once by the precompute step, not by the cache).
    `--cache none` leaves the cache out (the released code has no such switch).
  * single-string sizes of the pool and of the targets: Pool(cpu_count()).map(compress, texts, chunksize=2000);
  * every (candidate, target) pair as one task tuple (s1, s2, c1, c2) built up front (N * n tuples), scored by
    Pool(cpu_count()).imap_unordered(similarity, pairs, chunksize=2000), similarity = 1 - NCD with
    NCD = (C(s1 + s2) - min(c1, c2)) / max(c1, c2);
  * the top K by score, `sorted(..., key=score, reverse=True)[:k]`.
  The first release zips the N * n pair scores, in completion order, with the N candidates, so a candidate's score
  is some pair's similarity and not a mean over the targets; the repository fixed that in 3d7711a by returning the
  candidate's index with each similarity and taking np.mean per candidate. This peer does the fixed version (the
  mean over the targets, as METHODS.md E.1 and the paper define it); everything else is the release's.
The pool size is --processes (default: all cores, cpu_count() as the paper's code) so that both sides use the
same cores. Text of a line: prompt + completion (the stage's default for SFT data).
"""
import argparse
import gzip
import json
import os
import random
import sys
import time
from collections import defaultdict
from multiprocessing import Pool

import numpy as np


# ---- the peer ------------------------------------------------------------------------------------------------
class ZipFitPeer:
    def __init__(self, k, processes, cache=True):
        self.k = k
        self.processes = processes
        self.cache = cache
        self.compress_cache = {}

    def compress(self, data):
        if self.cache and data in self.compress_cache:
            return self.compress_cache[data]
        size = len(gzip.compress(data.encode("utf-8"), compresslevel=1))
        if self.cache:
            self.compress_cache[data] = size
        return size

    @staticmethod
    def normalized_compression_distance(c1, c2, c12):
        return (c12 - min(c1, c2)) / max(c1, c2)

    def similarity(self, args):
        s1, s2, c1, c2, source_idx = args
        c12 = self.compress(s1 + s2)
        return source_idx, 1 - self.normalized_compression_distance(c1, c2, c12)

    def precompute_sizes(self, texts):
        with Pool(self.processes) as pool:
            return pool.map(self.compress, texts, chunksize=2000)

    def rank(self, source, target, timings):
        t0 = time.perf_counter()
        source_sizes = self.precompute_sizes(source)
        target_sizes = self.precompute_sizes(target)
        t1 = time.perf_counter()
        pairs = [(s, t, source_sizes[i], target_sizes[j], i)
                 for i, s in enumerate(source) for j, t in enumerate(target)]
        t2 = time.perf_counter()
        by_source = defaultdict(list)
        with Pool(self.processes) as pool:
            for idx, sim in pool.imap_unordered(self.similarity, pairs, chunksize=2000):
                by_source[idx].append(sim)
        t3 = time.perf_counter()
        scored = [(idx, float(np.mean(sims))) for idx, sims in by_source.items()]
        best = sorted(scored, key=lambda x: x[1], reverse=True)[:self.k]
        timings.update(sizes_s=t1 - t0, pair_list_s=t2 - t1, pairs_s=t3 - t2, rank_s=time.perf_counter() - t3)
        return best


def load_texts(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                item = json.loads(line)
                out.append(item["prompt"] + item["completion"])
    return out


def run(args):
    t0 = time.perf_counter()
    source, target = load_texts(args.pool), load_texts(args.target)
    timings = {"load_s": time.perf_counter() - t0}
    peer = ZipFitPeer(args.k, args.processes, cache=args.cache == "all")
    best = peer.rank(source, target, timings)
    with open(args.out, "w") as f:
        f.writelines(f"{idx + 1}\n" for idx in sorted(idx for idx, _ in best))
    timings["total_s"] = time.perf_counter() - t0
    print("RESULT " + json.dumps({"candidates": len(source), "targets": len(target), "k": args.k,
                                  "processes": args.processes, "cache": args.cache, **timings}))


# ---- the synthetic workload ----------------------------------------------------------------------------------
WORDS = ("time people way year day thing man world life hand part child eye woman place work week case point "
         "government company number group problem fact river mountain garden kitchen window letter market city "
         "village story music picture history morning evening winter summer question answer reason idea voice "
         "family friend teacher student doctor road bridge train ship island forest field stone paper light").split()
VERBS = ("take make find give tell work call try ask need feel become leave put mean keep let begin seem help "
         "show hear play run move live believe bring happen write provide sit stand lose pay meet include "
         "continue set learn change lead understand watch follow stop create speak read spend grow open walk").split()
ADJ = ("good new first last long great little own other old right big high different small large next early "
       "young important few public bad same able quiet bright heavy green cold warm strange simple").split()
NAMES = "Alice Bob Carol Dmitri Elena Farah Goro Hana Ivan Jun Kofi Lena Mateo Nadia Omar Priya".split()
CODE_VERBS = "compute count find filter merge parse sort split sum reverse validate normalize encode flatten".split()
CODE_NOUNS = "items values words pairs matrix tokens scores records lines digits intervals nodes edges prices".split()
FOREIGN = ["Das Wetter ist heute schön, und wir gehen später in den Park.", "¿Dónde está la estación de tren?",
           "Le café était délicieux, merci beaucoup !", "今日はとても良い天気ですね。", "Спасибо за вашу помощь.",
           "这个问题很有意思。", "Η θάλασσα είναι ήρεμη σήμερα.", "Bon appétit 🍽️ and cheers 🎉",
           "The rocket launched 🚀 at dawn ☀️.", "मुझे यह किताब पसंद है।"]


def sentence(rng):
    n = rng.randint(6, 14)
    words = [rng.choice(WORDS if i % 3 else ADJ) if i % 4 else rng.choice(VERBS) for i in range(n)]
    return words[0].capitalize() + " " + " ".join(words[1:]) + rng.choice([".", ".", ".", "?", "!"])


def prose(rng, length):
    s = ""
    while len(s) < length:
        s += (" " if s else "") + sentence(rng)
    return s


def code_example(rng):
    verb, noun = rng.choice(CODE_VERBS), rng.choice(CODE_NOUNS)
    name = f"{verb}_{noun}" + (f"_{rng.randint(2, 99)}" if rng.random() < 0.5 else "")
    arg, k = rng.choice(["xs", "data", "values", "seq", "items"]), rng.randint(1, 9)
    prompt = (f'def {name}({arg}, k={k}):\n    """{verb.capitalize()} the {noun} in {arg} '
              f'{rng.choice(["and return a list", "keeping the order", "ignoring empty entries", "in place"])}.\n'
              f'    >>> {name}([{", ".join(str(rng.randint(0, 50)) for _ in range(rng.randint(3, 6)))}])\n    """\n')
    body = [f"    result = []", f"    for i, x in enumerate({arg}):"]
    for _ in range(rng.randint(2, 6)):
        body.append(rng.choice([
            f"        if x % {rng.randint(2, 7)} == {rng.randint(0, 1)}:\n            continue",
            f"        result.append(x * {rng.randint(2, 9)} + k)",
            f"        if i > {rng.randint(1, 20)}:\n            break",
            f"        x = x - {rng.randint(1, 30)} if x > k else x",
            f"        total = sum(result[-{rng.randint(2, 5)}:])"]))
    body.append(rng.choice(["    return result", "    return sorted(result)", "    return result[:k]"]))
    return prompt, "\n".join(body) + "\n"


def math_example(rng):
    a, b, c = rng.choice(NAMES), rng.randint(3, 90), rng.randint(2, 40)
    thing = rng.choice(["apples", "books", "coins", "stamps", "marbles", "tickets", "shells"])
    prompt = (f"{a} has {b} {thing}. {rng.choice(NAMES)} gives {a} {c} more, and then {a} shares them equally "
              f"among {rng.randint(2, 6)} friends, keeping the rest. {prose(rng, rng.randint(40, 160))} "
              f"How many {thing} does each friend get?")
    return prompt, f"{a} has {b} + {c} = {b + c} {thing}. " + prose(rng, rng.randint(60, 200))


def sorting_example(rng):
    d = [rng.randint(0, 9) for _ in range(rng.randint(4, 40))]
    return (f"sort these digits: {' '.join(map(str, d))}\n{prose(rng, rng.randint(20, 120))}\n",
            " ".join(map(str, sorted(d))))


def dialogue(rng):
    turns = []
    for i in range(rng.randint(2, 5)):
        turns.append(f"{rng.choice(NAMES)}: " + (rng.choice(FOREIGN) if rng.random() < 0.4 else sentence(rng)))
    return "\n".join(turns) + "\n", prose(rng, rng.randint(80, 300))


def make_data(out_dir, candidates, targets, seed):
    rng = random.Random(seed)
    kinds = [(0.20, code_example), (0.30, lambda r: (prose(r, r.randint(80, 250)), prose(r, r.randint(80, 300)))),
             (0.20, math_example), (0.15, sorting_example), (0.15, dialogue)]
    seen = set()

    def unique(make):
        while True:
            p, c = make()
            if (p, c) not in seen:
                seen.add((p, c))
                return p, c

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "target.jsonl"), "w", encoding="utf-8") as f:
        for _ in range(targets):
            p, c = unique(lambda: code_example(rng))
            f.write(json.dumps({"prompt": p, "completion": c}, ensure_ascii=False) + "\n")
    total = 0
    with open(os.path.join(out_dir, "pool.jsonl"), "w", encoding="utf-8") as f:
        for _ in range(candidates):
            x, make = rng.random(), kinds[-1][1]
            for w, fn in kinds:
                if x < w:
                    make = fn
                    break
                x -= w
            p, c = unique(lambda: make(rng))
            total += len((p + c).encode())
            f.write(json.dumps({"prompt": p, "completion": c}, ensure_ascii=False) + "\n")
    print(f"wrote {candidates} candidates (mean {total / candidates:.0f} bytes of text) and {targets} targets "
          f"to {out_dir}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make-data", metavar="DIR")
    ap.add_argument("--candidates", type=int, default=20000)
    ap.add_argument("--targets", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pool")
    ap.add_argument("--target")
    ap.add_argument("--k", type=int)
    ap.add_argument("--out")
    ap.add_argument("--processes", type=int, default=os.cpu_count())
    ap.add_argument("--cache", choices=["all", "none"], default="all")
    args = ap.parse_args()
    if args.make_data:
        make_data(args.make_data, args.candidates, args.targets, args.seed)
    elif args.pool and args.target and args.k and args.out:
        run(args)
    else:
        ap.error("--make-data DIR, or --pool, --target, --k and --out")


if __name__ == "__main__":
    sys.exit(main())
