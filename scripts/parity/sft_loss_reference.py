#!/usr/bin/env python3
"""Reference for the step-1 loss of an aligntrain SFT stage, computed independently with transformers.

  sft_loss_reference.py MODEL_DIR DATA.jsonl

Prints the token-mean negative log-likelihood of the completion tokens of every example in DATA.jsonl (the loss of
one optimizer step whose global batch is the whole file, before the update), with 10 decimals:
  loss = -sum_i sum_t log p(completion_i,t | prefix) / sum_i n_tokens_i
Tokenisation and scoring are logprobs_reference.py's (transformers fp32, eager; EOS appended to the completion).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from logprobs_reference import reference  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rows = reference(sys.argv[1], sys.argv[2], tokens=False)
    logp = sum(r["completion"]["logp"] for r in rows)
    n = sum(r["completion"]["n_tokens"] for r in rows)
    print(f"{-logp / n:.10f}")


if __name__ == "__main__":
    main()
