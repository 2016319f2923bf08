#!/usr/bin/env python3
"""Reference greedy completions computed independently with transformers' generate().

  generate_reference.py MODEL_DIR PROMPTS.jsonl MAX_NEW_TOKENS

Prints one JSON line per prompt, in input order: {"index": i, "completion_ids": [...]}, the tokens that
`model.generate(do_sample=False)` produces for [BOS] + encode(prompt) (one prompt at a time, no padding; fp32,
eager attention), without the end-of-sequence token that stopped it. Tokenisation is logprobs_reference.py's.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from logprobs_reference import load_model, load_tokenizer, read_examples  # noqa: E402


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    import torch

    model_dir, prompts, max_new = sys.argv[1], sys.argv[2], int(sys.argv[3])
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir)
    eos = tokenizer.eos_id
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    stop = cfg.get("eos_token_id")
    stop = [stop] if isinstance(stop, int) else list(stop or [])
    if eos is not None and eos not in stop:
        stop.append(eos)
    for i, ex in enumerate(read_examples(prompts)):
        ids = ([tokenizer.bos_id] if tokenizer.bos_id is not None else []) + tokenizer.encode(ex["prompt"])
        x = torch.tensor([ids])
        with torch.no_grad():
            out = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=max_new,
                                 eos_token_id=stop or None, pad_token_id=stop[0] if stop else 0)
        new = out[0, len(ids):].tolist()
        for k, t in enumerate(new):
            if t in stop:
                new = new[:k]
                break
        print(json.dumps({"index": i, "completion_ids": new}))


if __name__ == "__main__":
    main()
