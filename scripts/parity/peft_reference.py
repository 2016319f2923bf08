#!/usr/bin/env python3
"""Reference computations with PEFT (LoRA) for aligntrain's adapter parity tests (test/model/lora_parity_test.cc).

  peft_reference.py fixtures OUT_DIR
      A tiny random Llama (GQA, untied LM head) saved to OUT_DIR/base, and for every case (attention-only, MLP and
      all-linear targets, each with and without rsLoRA) under OUT_DIR/<case>/:
        adapter/               PEFT save_pretrained of a LoRA adapter with random non-zero A and B
        merged.safetensors     the weights of merge_and_unload()
        expected.safetensors   input_ids [2, T], token_logps [2, T-1] (adapters on), base_token_logps (adapters
                               off), and "grad.<name>" for the gradient of sum(token_logps) w.r.t. every adapter
                               tensor, <name> as in the adapter file without its "base_model.model." prefix.
  peft_reference.py init BASE_DIR OUT_DIR RANK
      PEFT's own initialisation of all-linear rank-RANK adapters on BASE_DIR, once per init_lora_weights option that
      aligntrain implements: OUT_DIR/init_true.safetensors (True: A kaiming-uniform, B = 0) and
      OUT_DIR/init_gaussian.safetensors ("gaussian": A normal with std 1/RANK, B = 0), tensors named as in aligntrain.
  peft_reference.py check_adapter BASE_DIR ADAPTER_DIR IDS_SAFETENSORS OUT_SAFETENSORS
      Loads ADAPTER_DIR onto BASE_DIR with PEFT; fails if any adapter key is missing or unexpected; writes the fp32
      logits of input_ids.
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

torch.use_deterministic_algorithms(True)

CASES = {
    "attn": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mlp": ["gate_proj", "up_proj", "down_proj"],
    "all": "all-linear",
}
PREFIX = "base_model.model."


def token_logps(logits, ids):
    lp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return lp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def our_name(peft_param_name):
    # base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight → model.layers.0....lora_A.weight
    return peft_param_name[len(PREFIX):].replace(".default.", ".")


def make_fixtures(out_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(vocab_size=120, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6,
                      tie_word_embeddings=False)
    cfg._attn_implementation = "eager"
    torch.manual_seed(11)
    base = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)
    base_dir = os.path.join(out_dir, "base")
    base.save_pretrained(base_dir)
    ids = torch.randint(0, cfg.vocab_size, (2, 16), generator=torch.Generator().manual_seed(5))
    for i, (case, targets) in enumerate(CASES.items()):
        for rslora in (False, True):
            name = case + ("_rslora" if rslora else "")
            torch.manual_seed(100 + 2 * i + int(rslora))
            model = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
            model.config._attn_implementation = "eager"
            lcfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets, use_rslora=rslora,
                              task_type="CAUSAL_LM", init_lora_weights="gaussian")
            pm = get_peft_model(model, lcfg)
            with torch.no_grad():
                for pname, p in pm.named_parameters():
                    if "lora_" in pname:
                        p.copy_(0.2 * torch.randn_like(p))
            d = os.path.join(out_dir, name)
            pm.save_pretrained(os.path.join(d, "adapter"))
            pm.zero_grad()
            tl = token_logps(pm(input_ids=ids).logits, ids)
            tl.sum().backward()
            out = {"input_ids": ids, "token_logps": tl.detach().contiguous()}
            for pname, p in pm.named_parameters():
                if p.requires_grad:
                    out["grad." + our_name(pname)] = p.grad.detach().clone().contiguous()
            with torch.no_grad(), pm.disable_adapter():
                out["base_token_logps"] = token_logps(pm(input_ids=ids).logits, ids).contiguous()
            save_file(out, os.path.join(d, "expected.safetensors"))
            merged = pm.merge_and_unload()
            save_file({k: v.contiguous() for k, v in merged.state_dict().items()},
                      os.path.join(d, "merged.safetensors"))


def init_tensors(base_dir, out_dir, rank):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    for name, option in (("true", True), ("gaussian", "gaussian")):
        torch.manual_seed(1)
        model = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
        cfg = LoraConfig(r=rank, lora_alpha=rank, target_modules="all-linear", task_type="CAUSAL_LM",
                         init_lora_weights=option)
        pm = get_peft_model(model, cfg)
        out = {our_name(n): p.detach().clone().contiguous() for n, p in pm.named_parameters() if "lora_" in n}
        save_file(out, os.path.join(out_dir, f"init_{name}.safetensors"))


def check_adapter(base_dir, adapter_dir, ids_path, out_path):
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
    model.config._attn_implementation = "eager"
    cfg = LoraConfig.from_pretrained(adapter_dir)
    pm = get_peft_model(model, cfg)
    state = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    result = set_peft_model_state_dict(pm, state)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing or result.unexpected_keys:
        sys.exit(f"missing {missing} unexpected {result.unexpected_keys}")
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        raw = json.load(f)
    assert raw["peft_type"] == "LORA" and raw["task_type"] == "CAUSAL_LM", raw
    ids = load_file(ids_path)["input_ids"]
    with torch.no_grad():
        logits = pm.eval()(input_ids=ids).logits.float().contiguous()
    save_file({"logits": logits}, out_path)


if __name__ == "__main__":
    if sys.argv[1] == "fixtures":
        make_fixtures(sys.argv[2])
    elif sys.argv[1] == "init":
        init_tensors(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "check_adapter":
        check_adapter(*sys.argv[2:6])
    else:
        sys.exit(__doc__)
