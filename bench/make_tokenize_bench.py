#!/usr/bin/env python3
"""The workload of bench/run_tokenize.sh: a model folder with a byte-level BPE tokenizer (vocabulary 16k, trained here
with `tokenizers`, Qwen's special tokens) and TRL's Qwen2.5 training template (with {% generation %} blocks), and N
synthetic multi-turn conversations (system prompt on a third, 1-3 user/assistant turns, 20-120 words a message,
mixed scripts).

    make_tokenize_bench.py OUT_DIR [--conversations 50000] [--seed 0]
Writes OUT_DIR/model/{tokenizer.json, tokenizer_config.json} and OUT_DIR/sft.jsonl.
"""
import argparse
import json
import os
import random

import trl
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"]
WORDS = ("the of and to in is that for it as with was on be by this are from or an at which but not have has were "
         "model training data token loss gradient batch layer weight attention vector matrix sequence prompt answer "
         "question Paris London Tokyo café naïve résumé 東京 你好 世界 データ 学習 😀 🌍 42 3.14 2026 x+y=z f(x) "
         "print(\"hi\") {key: value} [1, 2, 3] <tag> http://example.com/path?q=1").split()


def sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + rng.choice([".", "?", "!", ":\n-"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--conversations", type=int, default=50000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = random.Random(a.seed)
    rows = []
    for i in range(a.conversations):
        messages = [{"role": "system", "content": sentence(rng, rng.randint(5, 20))}] if i % 3 == 0 else []
        for _ in range(rng.randint(1, 3)):
            messages.append({"role": "user", "content": " ".join(sentence(rng, 10) for _ in range(rng.randint(2, 8)))})
            messages.append({"role": "assistant",
                             "content": " ".join(sentence(rng, 12) for _ in range(rng.randint(2, 10)))})
        rows.append(json.dumps({"messages": messages}, ensure_ascii=False))
    os.makedirs(os.path.join(a.out, "model"), exist_ok=True)
    with open(os.path.join(a.out, "sft.jsonl"), "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=16000, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(rows[:5000], trainer)
    tok.save(os.path.join(a.out, "model", "tokenizer.json"))
    template_path = os.path.join(os.path.dirname(trl.__file__), "chat_templates", "qwen2_5_training.jinja")
    with open(template_path, encoding="utf-8") as f:
        template = f.read()
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": "<|im_end|>",
              "pad_token": "<|endoftext|>", "model_max_length": 32768, "chat_template": template}
    with open(os.path.join(a.out, "model", "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f)
    print(f"{a.conversations} conversations -> {a.out}/sft.jsonl")


if __name__ == "__main__":
    main()
