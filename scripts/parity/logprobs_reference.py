#!/usr/bin/env python3
"""Reference for `aligntrain logprobs`, computed independently with Hugging Face transformers (fp32, eager).

  logprobs_reference.py [--tokens] MODEL_DIR DATA.jsonl OUT.jsonl [MODEL_DIR DATA.jsonl OUT.jsonl]...

Writes one JSON line per example of DATA.jsonl, in input order, in aligntrain's format:
  {"index": i, "<field>": {"logp": sum, "mean": sum / n, "n_tokens": n[, "token_logps": [...]]}, ...}
with one sub-object per response field the example has ("completion", "chosen", "rejected"). Several
MODEL/DATA/OUT triples share one process (the transformers import is the slow part).

Tokenisation of plain-text examples (strings only; conversational message lists are not supported here):
  ids      = [BOS if the tokenizer has one] + encode(prompt) + encode(response) + [EOS if it has one]
  response = encode(response) + [EOS], scored with the standard causal shift (token t by the logits at t-1).
The tokenizer is
  * aligntrain's byte-level one when MODEL_DIR has aligntrain_tokenizer.json: ids 0..255 are the UTF-8 bytes,
    BOS 256, EOS 257;
  * otherwise the `tokenizers` library on MODEL_DIR/tokenizer.json, encode(text, add_special_tokens=False), with
    BOS/EOS from tokenizer_config.json's bos_token/eos_token (a string or an AddedToken object; null = none),
    falling back to config.json's bos_token_id/eos_token_id when tokenizer_config.json does not name them;
  * for a folder with tokenizer.model and no tokenizer.json: transformers' AutoTokenizer, the same way.

Also importable: `reference(model_dir, data_path, tokens=True)` returns the list of result objects.
"""
import json
import os
import sys

RESPONSE_FIELDS = ("completion", "chosen", "rejected")
BYTE_BOS, BYTE_EOS = 256, 257


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class ByteTokenizer:
    bos_id, eos_id = BYTE_BOS, BYTE_EOS

    def encode(self, text):
        return list(text.encode("utf-8"))


class AutoTokenizerAdapter:
    """transformers' AutoTokenizer (a tokenizer.model folder) behind the two calls HFTokenizer makes."""

    def __init__(self, model_dir):
        from transformers import AutoTokenizer

        self.auto = AutoTokenizer.from_pretrained(model_dir)

    def token_to_id(self, token):
        return self.auto.convert_tokens_to_ids(token)

    def encode(self, text, add_special_tokens):
        class Ids:
            ids = self.auto(text, add_special_tokens=add_special_tokens)["input_ids"]
        return Ids


class HFTokenizer:
    def __init__(self, model_dir):
        from tokenizers import Tokenizer

        if not os.path.exists(os.path.join(model_dir, "tokenizer.json")) and os.path.exists(
                os.path.join(model_dir, "tokenizer.model")):
            self.tok = AutoTokenizerAdapter(model_dir)
        else:
            self.tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        tc_path = os.path.join(model_dir, "tokenizer_config.json")
        cfg_path = os.path.join(model_dir, "config.json")
        tc = _read_json(tc_path) if os.path.exists(tc_path) else {}
        cfg = _read_json(cfg_path) if os.path.exists(cfg_path) else {}
        self.bos_id = self._special(tc, cfg, "bos")
        self.eos_id = self._special(tc, cfg, "eos")

    def _special(self, tc, cfg, kind):
        key = kind + "_token"
        if key in tc:
            token = tc[key]
            if token is None:
                return None
            if isinstance(token, dict):
                token = token["content"]
            tid = self.tok.token_to_id(token)
            if tid is None:
                raise ValueError(f"tokenizer_config.json: {key} {token!r} is not in tokenizer.json")
            return tid
        tid = cfg.get(kind + "_token_id")
        if isinstance(tid, list):
            tid = tid[0] if tid else None
        return tid

    def encode(self, text):
        return self.tok.encode(text, add_special_tokens=False).ids


def load_tokenizer(model_dir):
    if os.path.exists(os.path.join(model_dir, "aligntrain_tokenizer.json")):
        spec = _read_json(os.path.join(model_dir, "aligntrain_tokenizer.json"))
        if spec.get("type", "byte") != "byte":
            raise ValueError(f"{model_dir}/aligntrain_tokenizer.json: unsupported type {spec.get('type')!r}")
        return ByteTokenizer()
    return HFTokenizer(model_dir)


def load_model(model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


def read_examples(data_path):
    examples = []
    with open(data_path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            ex = json.loads(line)
            for key in ("prompt",) + RESPONSE_FIELDS:
                if key in ex and not isinstance(ex[key], str):
                    raise ValueError(f"{data_path}:{line_no}: field {key!r} is not a string (unsupported here)")
            examples.append(ex)
    return examples


def encode_item(tokenizer, prompt, response):
    prefix = ([tokenizer.bos_id] if tokenizer.bos_id is not None else []) + tokenizer.encode(prompt)
    resp = tokenizer.encode(response) + ([tokenizer.eos_id] if tokenizer.eos_id is not None else [])
    if not prefix:
        raise ValueError("an example with no BOS and an empty prompt has no context for its first token")
    return prefix, resp


def score_batch(model, items, tokens):
    """items: [(prefix_ids, response_ids)]; one forward pass, right-padded with an attention mask."""
    import torch

    seqs = [p + r for p, r in items]
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.int64)
    mask = torch.zeros(len(seqs), width, dtype=torch.int64)
    for b, s in enumerate(seqs):
        ids[b, :len(s)] = torch.tensor(s)
        mask[b, :len(s)] = 1
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
    logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    out = []
    for b, (prefix, resp) in enumerate(items):
        token_logps = logps[b, len(prefix) - 1:len(prefix) - 1 + len(resp)].tolist()
        total = sum(token_logps)  # summed in float64, like aligntrain's output
        row = {"logp": total, "mean": total / len(resp) if resp else 0.0, "n_tokens": len(resp)}
        if tokens:
            row["token_logps"] = token_logps
        out.append(row)
    return out


def reference(model_dir, data_path, tokens=True, model=None, batch_size=16):
    """Each response is scored in a right-padded batch of batch_size (1 = one unpadded sequence at a time)."""
    model = model if model is not None else load_model(model_dir)
    tokenizer = load_tokenizer(model_dir)
    examples = read_examples(data_path)
    items = [(i, field, encode_item(tokenizer, ex.get("prompt", ""), ex[field]))
             for i, ex in enumerate(examples) for field in RESPONSE_FIELDS if field in ex]
    results = [{"index": i} for i in range(len(examples))]
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        for (i, field, _), row in zip(chunk, score_batch(model, [enc for _, _, enc in chunk], tokens)):
            results[i][field] = row
    return results


def main(argv):
    tokens = "--tokens" in argv
    args = [a for a in argv if a != "--tokens"]
    if not args or len(args) % 3 != 0 or any(a.startswith("-") for a in args):
        sys.exit(__doc__)
    import torch

    torch.use_deterministic_algorithms(True)
    models = {}
    for k in range(0, len(args), 3):
        model_dir, data_path, out_path = args[k:k + 3]
        if model_dir not in models:
            models[model_dir] = load_model(model_dir)
        rows = reference(model_dir, data_path, tokens, model=models[model_dir])
        with open(out_path, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        print(f"logprobs_reference: {len(rows)} examples of {data_path} under {model_dir} -> {out_path}")


if __name__ == "__main__":
    main(sys.argv[1:])
