#!/usr/bin/env python3
"""A random-initialised Llama model folder for bench/gpu/, made with torch alone (no transformers), on the GPU when
there is one, so that the 1B-parameter models of the benchmark are created on the GPU host instead of being packed.

  make_model.py --base DIR --out DIR --hidden H --layers L --heads A --kv-heads K --head-dim D --intermediate I
                --vocab V [--seed 1] [--device cuda|cpu]

DIR given as --base is a folder `aligntrain init-model` wrote (any preset): its config.json gives the remaining
Llama fields (rope, norms, special token ids) and its tokenizer files (the byte tokenizer) are copied. The weights
follow the usual initialisation (normal, std = initializer_range, norms 1), tied embeddings (no lm_head tensor),
stored as bfloat16 in model.safetensors (the config says torch_dtype bfloat16). Both aligntrain and transformers
load the folder as it is.
"""
import argparse
import json
import os
import shutil


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True)
    p.add_argument("--out", required=True)
    for k in ("hidden", "layers", "heads", "kv-heads", "head-dim", "intermediate", "vocab"):
        p.add_argument("--" + k, type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cuda")
    a = p.parse_args()

    import torch
    from safetensors.torch import save_file

    cfg = json.load(open(os.path.join(a.base, "config.json")))
    if cfg.get("model_type") != "llama":
        raise SystemExit(f"{a.base}: model_type {cfg.get('model_type')!r}, expected llama")
    cfg.update({"hidden_size": a.hidden, "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
                "num_key_value_heads": a.kv_heads, "head_dim": a.head_dim, "intermediate_size": a.intermediate,
                "vocab_size": a.vocab, "tie_word_embeddings": True, "torch_dtype": "bfloat16"})
    cfg.pop("dtype", None)  # transformers 5 spelling; one of the two is enough
    std = float(cfg.get("initializer_range", 0.02))
    h, q, kv, i = a.hidden, a.heads * a.head_dim, a.kv_heads * a.head_dim, a.intermediate
    shapes = {"model.embed_tokens.weight": (a.vocab, h), "model.norm.weight": (h,)}
    for l in range(a.layers):
        pre = f"model.layers.{l}."
        shapes.update({
            pre + "self_attn.q_proj.weight": (q, h), pre + "self_attn.k_proj.weight": (kv, h),
            pre + "self_attn.v_proj.weight": (kv, h), pre + "self_attn.o_proj.weight": (h, q),
            pre + "mlp.gate_proj.weight": (i, h), pre + "mlp.up_proj.weight": (i, h), pre + "mlp.down_proj.weight": (h, i),
            pre + "input_layernorm.weight": (h,), pre + "post_attention_layernorm.weight": (h,)})
    device = a.device if (a.device != "cuda" or torch.cuda.is_available()) else "cpu"
    gen = torch.Generator(device=device).manual_seed(a.seed)
    tensors = {}
    for name, shape in shapes.items():
        if len(shape) == 1:
            t = torch.ones(shape, dtype=torch.bfloat16)
        else:
            t = torch.randn(shape, generator=gen, device=device, dtype=torch.float32).mul_(std).to(torch.bfloat16).cpu()
        tensors[name] = t.contiguous()

    tmp = a.out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for f in os.listdir(a.base):
        if f not in ("config.json", "model.safetensors", "model.safetensors.index.json") and not f.endswith(".safetensors"):
            shutil.copy(os.path.join(a.base, f), tmp)
    json.dump(cfg, open(os.path.join(tmp, "config.json"), "w"), indent=2)
    save_file(tensors, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
    shutil.rmtree(a.out, ignore_errors=True)
    os.rename(tmp, a.out)
    n = sum(t.numel() for t in tensors.values())
    print(f"wrote {a.out}: {n:,} parameters ({a.layers} layers, hidden {h}, vocab {a.vocab}), bf16, on {device}")


if __name__ == "__main__":
    main()
