#!/usr/bin/env python3
"""Reference computations with Hugging Face transformers for aligntrain's parity tests (test/model/).

  hf_models.py fixtures OUT_DIR
      Builds tiny random models of every supported family with transformers (Llama with GQA and tied embeddings,
      Llama with llama3 rope scaling, Qwen2 with q/k/v biases, Qwen3 with q/k norms, Mistral) and writes for each,
      under OUT_DIR/<name>/:
        model/            save_pretrained (single file); model_sharded/ the same weights in several shards
        expected.safetensors
            input_ids [2, T] int64, attention_mask [2, T] (second row right-padded), logits [2, T, V] fp32 (no mask),
            masked_logits (with attention_mask), token_logps [2, T-1] (sum target), and "grad.<param name>" for the
            gradient of sum(token_logps) w.r.t. every parameter.
  hf_models.py logits MODEL_DIR IDS_SAFETENSORS OUT_SAFETENSORS
      Loads MODEL_DIR with transformers and writes the fp32 logits of input_ids.
  hf_models.py completion_logps MODEL_DIR EXAMPLES_JSON OUT_JSON
      EXAMPLES_JSON: [{"prompt_ids": [...], "completion_ids": [...]}, ...]; writes [{"logp", "mean", "n_tokens"}].
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

torch.use_deterministic_algorithms(True)


def tiny_configs():
    from transformers import LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

    common = dict(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6)
    return {
        "llama_gqa_tied": LlamaConfig(**common, tie_word_embeddings=True, rope_theta=10000.0),
        "llama3_rope": LlamaConfig(**common, tie_word_embeddings=False, rope_theta=500000.0,
                                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
        "qwen2_bias": Qwen2Config(**common, tie_word_embeddings=False, rope_theta=1000000.0),
        "qwen3_qknorm": Qwen3Config(**{**common, "head_dim": 32}, tie_word_embeddings=True, rope_theta=1000000.0),
        "mistral": MistralConfig(**common, sliding_window=None, tie_word_embeddings=False),
    }


def token_logps(logits, ids):
    lp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return lp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def make_fixtures(out_dir):
    from transformers import AutoModelForCausalLM

    for i, (name, cfg) in enumerate(tiny_configs().items()):
        torch.manual_seed(1000 + i)
        cfg._attn_implementation = "eager"
        model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)
        # Non-trivial norms and biases so that every parameter matters.
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if pname.endswith("norm.weight"):
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                elif pname.endswith(".bias"):
                    p.copy_(0.05 * torch.randn_like(p))
        d = os.path.join(out_dir, name)
        model.save_pretrained(os.path.join(d, "model"))
        model.save_pretrained(os.path.join(d, "model_sharded"), max_shard_size="60KB")
        g = torch.Generator().manual_seed(7 + i)
        T = 24
        ids = torch.randint(0, cfg.vocab_size, (2, T), generator=g)
        mask = torch.ones(2, T, dtype=torch.int64)
        mask[1, T - 5:] = 0
        model.zero_grad()
        logits = model(input_ids=ids).logits
        tl = token_logps(logits, ids)
        tl.sum().backward()
        out = {"input_ids": ids, "attention_mask": mask, "logits": logits.detach().contiguous(),
               "token_logps": tl.detach().contiguous()}
        for pname, p in model.named_parameters():
            out["grad." + pname] = p.grad.detach().clone().contiguous()
        with torch.no_grad():
            out["masked_logits"] = model(input_ids=ids, attention_mask=mask).logits.contiguous()
        save_file(out, os.path.join(d, "expected.safetensors"))
        print(f"{name}: {sum(p.numel() for p in model.parameters())} params")


def logits(model_dir, ids_path, out_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    ids = load_file(ids_path)["input_ids"]
    with torch.no_grad():
        out = model(input_ids=ids).logits.float().contiguous()
    save_file({"logits": out}, out_path)


def completion_logps(model_dir, examples_path, out_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    with open(examples_path) as f:
        examples = json.load(f)
    results = []
    with torch.no_grad():
        for ex in examples:
            ids = torch.tensor([ex["prompt_ids"] + ex["completion_ids"]])
            lp = token_logps(model(input_ids=ids).logits, ids)[0]
            comp = lp[len(ex["prompt_ids"]) - 1:]
            results.append({"logp": comp.sum().item(), "mean": comp.mean().item(), "n_tokens": comp.numel(),
                            "token_logps": comp.tolist()})
    with open(out_path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "fixtures" and len(sys.argv) == 3:
        make_fixtures(sys.argv[2])
    elif cmd == "logits" and len(sys.argv) == 5:
        logits(*sys.argv[2:])
    elif cmd == "completion_logps" and len(sys.argv) == 5:
        completion_logps(*sys.argv[2:])
    else:
        sys.exit(__doc__)
