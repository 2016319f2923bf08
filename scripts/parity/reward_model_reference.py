#!/usr/bin/env python3
"""Reward models for aligntrain's online-stage tests, built and scored with Hugging Face transformers.

  reward_model_reference.py make OUT_DIR --arch llama|qwen2|mistral|qwen3 --tokenizer TOKENIZER_DIR [--seed N] [--num-labels 1]
                                         [--no-score]
      A tiny random {Llama,Qwen2,Mistral,Qwen3}ForSequenceClassification (the decoder plus
      `score.weight` [num_labels, hidden], no bias) saved with save_pretrained, with the tokenizer files of
      TOKENIZER_DIR copied beside it. Weights are scaled up from the 0.02 init so that scores differ between texts.
      --no-score drops score.weight from the safetensors file (a broken folder for the error tests).
  reward_model_reference.py score DATA_JSONL SAMPLES_JSONL MODEL_DIR... [--chat-template-kwargs JSON]
      For each MODEL_DIR, the reward of every sample of an online stage's samples file (<stage>/samples/step-N.jsonl: "example" = the
      data line's index, "completion" = the sampled text) as TRL 1.16's GRPOTrainer computes it with a reward model
      (GRPOTrainer.__init__ and _calculate_rewards): the reward tokenizer's pad token is its EOS when it has none,
      and the model's config.pad_token_id is set to it; texts are prompt + completion for plain-text prompts, the
      chat template applied to prompt messages + [{"role": "assistant", "content": completion}] for conversational
      ones; tokenised in one batch with padding=True, padding_side="right", add_special_tokens=False; the reward is
      model(**inputs).logits[:, 0] under inference_mode. Prints a JSON list (one per model) of lists of floats.
"""
import argparse
import json
import os
import shutil

import torch

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                   "chat_template.jinja")


def make(args):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification, MistralConfig, \
        MistralForSequenceClassification, Qwen2Config, Qwen2ForSequenceClassification, Qwen3Config, \
        Qwen3ForSequenceClassification

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    vocab = len(tok)
    vocab += (-vocab) % 8  # divisible by the tensor-parallel degrees the tests use
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6, num_labels=args.num_labels,
                  tie_word_embeddings=False)
    if args.arch == "llama":
        model = LlamaForSequenceClassification(LlamaConfig(**common, rope_theta=10000.0))
    elif args.arch == "mistral":  # a sliding window shorter than the scored texts
        model = MistralForSequenceClassification(MistralConfig(**common, rope_theta=10000.0, sliding_window=16))
    elif args.arch == "qwen3":  # q/k norms and a head_dim of its own
        model = Qwen3ForSequenceClassification(Qwen3Config(**common, rope_theta=1000000.0, head_dim=32))
    else:
        model = Qwen2ForSequenceClassification(Qwen2Config(**common, rope_theta=1000000.0))
    torch.manual_seed(args.seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.05 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    model.save_pretrained(args.out_dir)
    for name in TOKENIZER_FILES:
        src = os.path.join(args.tokenizer, name)
        if os.path.exists(src):
            shutil.copy(src, args.out_dir)
    if args.no_score:
        from safetensors.torch import load_file, save_file
        path = os.path.join(args.out_dir, "model.safetensors")
        tensors = load_file(path)
        del tensors["score.weight"]
        save_file(tensors, path, metadata={"format": "pt"})
    print(f"{type(model).__name__} (vocab {vocab}, num_labels {args.num_labels}) written to {args.out_dir}")


def trl_rewards(model_dir, prompts, completions, chat_template_kwargs):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    # GRPOTrainer.__init__ for a reward model given as a model:
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.config.get_text_config().pad_token_id = tok.pad_token_id
    # GRPOTrainer._calculate_rewards:
    if isinstance(prompts[0], list):
        texts = [tok.apply_chat_template(p + [{"role": "assistant", "content": c}], tokenize=False,
                                         **chat_template_kwargs) for p, c in zip(prompts, completions)]
    else:
        texts = [p + c for p, c in zip(prompts, completions)]
    inputs = tok(text=texts, return_tensors="pt", padding=True, padding_side="right", add_special_tokens=False)
    with torch.inference_mode():
        return [float(r) for r in model(**inputs).logits[:, 0]]


def score(args):
    torch.use_deterministic_algorithms(True)
    kwargs = json.loads(args.chat_template_kwargs) if args.chat_template_kwargs else {}
    data = [json.loads(line) for line in open(args.data, encoding="utf-8") if line.strip()]
    samples = [json.loads(line) for line in open(args.samples, encoding="utf-8")]
    prompts = [data[s["example"]]["prompt"] for s in samples]
    completions = [s["completion"] for s in samples]
    print(json.dumps([trl_rewards(d, prompts, completions, kwargs) for d in args.model_dirs]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out_dir")
    m.add_argument("--arch", choices=["llama", "qwen2", "mistral", "qwen3"], required=True)
    m.add_argument("--tokenizer", required=True)
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--num-labels", type=int, default=1)
    m.add_argument("--no-score", action="store_true")
    s = sub.add_parser("score")
    s.add_argument("data")
    s.add_argument("samples")
    s.add_argument("model_dirs", nargs="+")
    s.add_argument("--chat-template-kwargs", default="")
    args = parser.parse_args()
    make(args) if args.cmd == "make" else score(args)


if __name__ == "__main__":
    main()
