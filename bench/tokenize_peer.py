#!/usr/bin/env python3
"""TRL's SFT dataset preparation (template + tokenisation + masks + truncation), the peer of `aligntrain tokenize`.

    tokenize_peer.py MODEL_DIR DATA.jsonl --mode last|all [--num-proc N] [--max-length N]

Runs TRL's own SFTTrainer._prepare_dataset (the code SFTTrainer runs before training) with the fast tokenizer of
MODEL_DIR: `--mode last` on prompt-completion conversations (the last assistant message is the completion: TRL's
completion_mask, what aligntrain's default masks), `--mode all` on whole conversations with assistant_only_loss
(assistant_masks from the template's {% generation %} blocks). Prints one JSON line: examples, seconds, examples/s.
The time covers loading the JSONL into a datasets.Dataset and the preparation (the caches of `datasets` are off).
"""
import argparse
import json
import time
import types

import datasets
from transformers import AutoTokenizer
from trl import SFTConfig, SFTTrainer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--mode", choices=["last", "all"], required=True)
    p.add_argument("--num-proc", type=int, default=1)
    p.add_argument("--max-length", type=int, default=1024)
    a = p.parse_args()
    datasets.disable_caching()
    datasets.disable_progress_bars()
    tok = AutoTokenizer.from_pretrained(a.model)
    args = SFTConfig(output_dir="/tmp/tokenize_peer", max_length=a.max_length, assistant_only_loss=a.mode == "all",
                     dataset_num_proc=a.num_proc if a.num_proc > 1 else None, report_to=[],
                     use_cpu=True, bf16=False)
    fake = types.SimpleNamespace(chat_template=None, completion_only_loss=None, _tokenizer=tok)
    start = time.perf_counter()
    rows = []
    with open(a.data, encoding="utf-8") as f:
        for line in f:
            m = json.loads(line)["messages"]
            rows.append({"prompt": m[:-1], "completion": m[-1:]} if a.mode == "last" else {"messages": m})
    ds = datasets.Dataset.from_list(rows)
    out = SFTTrainer._prepare_dataset(fake, ds, tok, args, packing=False, formatting_func=None, dataset_name="train")
    n = len(out)
    tokens = sum(len(x) for x in out["input_ids"])
    seconds = time.perf_counter() - start
    print(json.dumps({"peer": "trl", "mode": a.mode, "num_proc": a.num_proc, "examples": n, "tokens": tokens,
                      "seconds": round(seconds, 2), "examples_per_s": round(n / seconds, 1)}))


if __name__ == "__main__":
    main()
