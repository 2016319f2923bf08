#!/usr/bin/env python3
"""Writes a benchmark model's config.json from a preset's: the vocabulary and width of real models.

  bench/model_config.py BASE_CONFIG OUT_CONFIG [--vocab V] [--width small|1b] [--layers N]

--width small keeps the preset's width (small-llama: hidden 384, 6 heads / 2 KV heads, intermediate 1024);
--width 1b is Llama-3.2-1B's: hidden 2048, 32 heads / 8 KV heads (head_dim 64), intermediate 8192, tied embeddings.
--vocab V gives the embedding and LM head V rows (the byte tokenizer uses the first 261), e.g. 128256 (Llama 3),
151936 (Qwen 2.5), 256000 (Gemma). --layers N overrides the layer count.
"""
import argparse
import json

WIDTHS = {
    "small": {},
    "1b": {"hidden_size": 2048, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
           "intermediate_size": 8192, "tie_word_embeddings": True},
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base")
    p.add_argument("out")
    p.add_argument("--vocab", type=int)
    p.add_argument("--width", default="small", choices=sorted(WIDTHS))
    p.add_argument("--layers", type=int)
    a = p.parse_args()
    c = json.load(open(a.base))
    c.update(WIDTHS[a.width])
    if a.vocab:
        c["vocab_size"] = a.vocab
    if a.layers:
        c["num_hidden_layers"] = a.layers
    json.dump(c, open(a.out, "w"), indent=2)


if __name__ == "__main__":
    main()
