#!/usr/bin/env python3
"""Writes the demo data sets used by config/recipes/*.yaml (Python standard library only).

The task has a checkable answer: "sort these digits: 3 1 2" -> "1 2 3". Files (JSONL, TRL field names):
  sft_train.jsonl    {"prompt", "completion"}; about 10% of completions are wrong on purpose (label noise)
  sft_eval.jsonl     {"prompt", "completion"}; all correct
  pairs_train.jsonl  {"prompt", "chosen", "rejected"}; chosen is correct, rejected a plausible wrong answer
  pairs_eval.jsonl   the same, for evaluation
  prompts.jsonl      {"prompt"}; for generate stages
  select_pool.jsonl  {"prompt", "completion"}; 250 correct sorting examples hidden among 750 of four other tasks
                     (reverse letters, count words, repeat a word, add numbers), for select stages
  select_target.jsonl  {"prompt", "completion"}; 30 sorting examples: what a select stage should look for
  online_train.jsonl {"prompt", "completion"}; fresh prompts with their correct answers, for online stages (the
                     completion is what the exact_match reward compares a sample with)
Prompts never repeat across files. Output is a pure function of --seed.

Usage: scripts/make_demo_data.py [--out config/recipes/data] [--seed 0]
"""

import argparse
import json
import os
import random

SIZES = {"sft_train": 1000, "sft_eval": 100, "pairs_train": 800, "pairs_eval": 100, "prompts": 200}
NOISE = 0.10


def make_prompt(digits):
    return "sort these digits: " + " ".join(str(d) for d in digits) + "\n"


def answer(digits):
    return " ".join(str(d) for d in digits)


def wrong_answer(rng, digits):
    """A plausible mistake: unsorted, descending, two neighbours swapped, a digit dropped or repeated."""
    right = sorted(digits)
    while True:
        kind = rng.randrange(5)
        if kind == 0:
            guess = list(digits)
        elif kind == 1:
            guess = sorted(digits, reverse=True)
        elif kind == 2:
            guess = list(right)
            i = rng.randrange(len(guess) - 1)
            guess[i], guess[i + 1] = guess[i + 1], guess[i]
        elif kind == 3:
            guess = list(right)
            del guess[rng.randrange(len(guess))]
        else:
            guess = list(right)
            i = rng.randrange(len(guess))
            guess.insert(i, guess[i])
        if guess != right:
            return answer(guess)


def unique_digit_lists(rng, count, seen):
    out = []
    while len(out) < count:
        digits = tuple(rng.randrange(10) for _ in range(rng.randint(3, 6)))
        if digits in seen or len(set(digits)) == 1:
            continue
        seen.add(digits)
        out.append(list(digits))
    return out


SELECT_SORTING, SELECT_OTHER, SELECT_TARGET = 250, 750, 30
WORDS = ["apple", "river", "stone", "cloud", "tiger", "lemon", "paper", "glass", "music", "forest", "candle", "orbit"]


def other_task(rng):
    """An example of a task that is not sorting digits, in the same prompt/completion shape."""
    kind = rng.randrange(4)
    if kind == 0:
        letters = [chr(ord("a") + rng.randrange(26)) for _ in range(rng.randint(3, 7))]
        return {"prompt": "reverse these letters: " + " ".join(letters) + "\n", "completion": " ".join(letters[::-1])}
    if kind == 1:
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 8))]
        return {"prompt": "count the words: " + " ".join(words) + "\n", "completion": str(len(words))}
    if kind == 2:
        word, times = rng.choice(WORDS), rng.randint(2, 4)
        return {"prompt": f"repeat {word} {times} times\n", "completion": " ".join([word] * times)}
    numbers = [rng.randrange(20) for _ in range(rng.randint(2, 4))]
    return {"prompt": "add these numbers: " + " + ".join(map(str, numbers)) + "\n", "completion": str(sum(numbers))}


def selection_sets(seed, seen):
    """The select stage's pool (sorting examples hidden among other tasks, shuffled) and target set. A generator of
    its own, so that the other files stay what they were before these were added."""
    rng = random.Random(seed + 1000)
    sorting = [{"prompt": make_prompt(d), "completion": answer(sorted(d))}
               for d in unique_digit_lists(rng, SELECT_SORTING + SELECT_TARGET, seen)]
    pool = sorting[:SELECT_SORTING] + [other_task(rng) for _ in range(SELECT_OTHER)]
    rng.shuffle(pool)
    return pool, sorting[SELECT_SORTING:]


ONLINE_TRAIN = 6400


def online_set(seed, seen):
    """Prompts for online stages (each sampled and scored, never trained on as text), with their correct answers.
    A generator of its own, so that the other files stay what they were before this was added."""
    rng = random.Random(seed + 2000)
    return [{"prompt": make_prompt(d), "completion": answer(sorted(d))} for d in unique_digit_lists(rng, ONLINE_TRAIN, seen)]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=True) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "config", "recipes", "data"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    seen = set()
    sets = {name: unique_digit_lists(rng, n, seen) for name, n in SIZES.items()}

    files = {}
    files["sft_train"] = [
        {"prompt": make_prompt(d), "completion": wrong_answer(rng, d) if rng.random() < NOISE else answer(sorted(d))}
        for d in sets["sft_train"]
    ]
    files["sft_eval"] = [{"prompt": make_prompt(d), "completion": answer(sorted(d))} for d in sets["sft_eval"]]
    for name in ("pairs_train", "pairs_eval"):
        files[name] = [
            {"prompt": make_prompt(d), "chosen": answer(sorted(d)), "rejected": wrong_answer(rng, d)}
            for d in sets[name]
        ]
    files["prompts"] = [{"prompt": make_prompt(d)} for d in sets["prompts"]]
    files["select_pool"], files["select_target"] = selection_sets(args.seed, seen)
    files["online_train"] = online_set(args.seed, seen)

    os.makedirs(args.out, exist_ok=True)
    total = 0
    for name, rows in files.items():
        path = os.path.join(args.out, name + ".jsonl")
        write_jsonl(path, rows)
        total += os.path.getsize(path)
        print(f"{path}: {len(rows)} examples")
    print(f"{total} bytes in all")


if __name__ == "__main__":
    main()
