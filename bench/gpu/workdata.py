"""The synthetic data of bench/gpu/: ASCII words, so that with the byte tokenizer (one token per byte, BOS and EOS
added by the plain template) every sequence has exactly the length asked for and nothing is padded or truncated."""
import json
import random

WORDS = ("the a of to and in is it that for on with as was at by this be from or have an are but not all can one two "
         "three four five six seven eight nine ten model train loss token batch layer weight gradient step rate value "
         "sort list order number first last next small large fast slow read write keep find answer question").split()


def text(rng, length):
    s = ""
    while len(s) < length:
        s = (s + " " + rng.choice(WORDS)) if s else rng.choice(WORDS)
    return s[:length]


def write_docs(path, n, length, seed):
    """n {"prompt", "completion"} documents of exactly `length` tokens (BOS + prompt + completion + EOS), the prompt a
    quarter of it (under max_length / 2, so distillation never truncates it)."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            p = max(1, (length - 2) // 4)
            f.write(json.dumps({"prompt": text(rng, p), "completion": text(rng, length - 2 - p)}) + "\n")


def write_pairs(path, n, length, seed):
    """n {"prompt", "chosen", "rejected"} pairs; each of BOS + prompt + response + EOS is exactly `length` tokens."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            p = max(1, (length - 2) // 4)
            prompt = text(rng, p)
            chosen, rejected = text(rng, length - 2 - p), text(rng, length - 2 - p)
            f.write(json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected}) + "\n")
