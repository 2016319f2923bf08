#!/usr/bin/env python3
"""TRL's DPOTrainer with a peft_config (a new LoRA adapter; reference = the same model with its adapters off), for
test/stages/lora_dpo_parity_test.sh.

  lora_dpo_reference.py loss BASE_DIR ADAPTER_OUT DATA.jsonl BETA TARGETS RSLORA
      DPOTrainer(model=BASE_DIR, peft_config=LoraConfig(r 4, alpha 8, TARGETS comma-separated or all-linear,
      use_rslora RSLORA 0|1, init_lora_weights=False: random non-zero A and B, so that the policy differs from its
      base)); saves the adapter TRL created to ADAPTER_OUT before training (aligntrain starts from it), runs one step
      (sigmoid loss, fp32, the whole file as one global batch of micro-batches of 2) and prints {"loss": step-1 loss}
      as the last line. (TRL 1.16 given a PeftModel with an existing adapter uses a copy of that adapter as the
      reference, not the base: hence a new adapter through peft_config.)
The model folders are aligntrain's (byte tokenizer): the tokenizer is bench/dpo_step_peer.py's byte_tokenizer(),
whose ids equal aligntrain's encoding.
"""
import json
import os
import sys
import tempfile

import torch

torch.use_deterministic_algorithms(True)
HERE = os.path.dirname(os.path.abspath(__file__))


def loss(base_dir, adapter_out, data, beta, targets, rslora):
    for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ.setdefault(k, "1")
    sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import DPOConfig, DPOTrainer
    from dpo_step_peer import byte_tokenizer

    datasets.disable_progress_bars()
    torch.set_num_threads(1)
    with open(data) as f:
        pairs = [json.loads(line) for line in f if line.strip()]
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="eager")
    t = "all-linear" if targets == "all-linear" else targets.split(",")
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=t, use_rslora=rslora == "1", lora_dropout=0.0,
                             init_lora_weights=False, task_type="CAUSAL_LM")
    torch.manual_seed(3)
    logged = {}

    class Grab(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs and state.global_step == 1:
                logged["loss"] = logs["loss"]

    micro = 2
    config = DPOConfig(output_dir=tempfile.mkdtemp(prefix="lora_dpo_"), report_to="none", save_strategy="no",
                       logging_steps=1, disable_tqdm=True, max_steps=1, per_device_train_batch_size=micro,
                       gradient_accumulation_steps=len(pairs) // micro, learning_rate=1e-4,
                       lr_scheduler_type="constant", use_cpu=True, bf16=False, gradient_checkpointing=False,
                       max_length=1024, beta=float(beta), loss_type=["sigmoid"], seed=7)
    trainer = DPOTrainer(model=model, ref_model=None, args=config, train_dataset=datasets.Dataset.from_list(pairs),
                         processing_class=byte_tokenizer(), callbacks=[Grab()], peft_config=peft_config)
    if trainer.ref_model is not None or "ref" in trainer.model.peft_config:
        sys.exit("expected the reference to be the adapter-free base (no ref model, no ref adapter)")
    trainer.model.save_pretrained(adapter_out)
    trainer.train()
    print(json.dumps({"loss": logged["loss"]}))


if __name__ == "__main__":
    if sys.argv[1] == "loss":
        loss(*sys.argv[2:8])
    else:
        sys.exit(__doc__)
