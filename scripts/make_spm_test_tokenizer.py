#!/usr/bin/env python3
"""Builds the SentencePiece-style tokenizer parity fixtures used by test/data (spm_tokenizer_parity_test).

Trains one BPE vocabulary with the Hugging Face `tokenizers` trainer (Metaspace pre-tokenizer, a limited alphabet so
that rare characters need byte fallback), lays it out as Llama 2 does (<unk> <s> </s>, then the 256 <0xNN> byte
tokens), and writes it as tokenizer.json in the shapes the Llama 2 / Mistral / TinyLlama / Gemma families ship
(normalizers Prepend + Replace, NFC, NFKC, NFKD, Metaspace with each prepend_scheme, Split, decoders Replace /
ByteFallback / Fuse / Strip / Metaspace, TemplateProcessing, byte_fallback / fuse_unk / unk_token / ignore_merges,
added tokens with each flag). Also trains a SentencePiece BPE tokenizer.model with the `sentencepiece` trainer
(Llama 2 settings) and reads it with transformers' AutoTokenizer. For >= 2000 test strings (those of
make_test_tokenizer.py: multilingual text, CJK, emoji, compatibility characters, characters outside the vocabulary,
whitespace runs, special-token strings inside text, invalid UTF-8) it writes each variant's ids, ids with special
tokens, pair ids, and decodes. Deterministic for a given --seed.

Usage: make_spm_test_tokenizer.py OUT_DIR [--seed N] [--vocab-size N] [--num-strings N]
Writes OUT_DIR/<variant>/ (tokenizer.json or tokenizer.model, tokenizer_config.json), OUT_DIR/cases.jsonl
({"text"} or {"bytes_hex"}, and per variant {"ids", "ids_special", "decoded", "decoded_skip"} plus "pair" on every
tenth line with both strings non-empty: the ids of (this string, the next) with special tokens) and
OUT_DIR/manifest.json.
"""
import argparse
import io
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import make_test_tokenizer as base  # noqa: E402  (corpus and test strings)

import sentencepiece  # noqa: E402
import tokenizers  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402

SPACE = "\u2581"
BASE_SPECIALS = ["<unk>", "<s>", "</s>"]


def train_vocab(lines, vocab_size):
    """vocab (token -> id, Llama 2 layout) and merges [[left, right], ...] of a Metaspace BPE."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=BASE_SPECIALS, show_progress=False,
                                  limit_alphabet=160)
    tok.train_from_iterator(lines, trainer=trainer)
    spec = json.loads(tok.to_str())
    trained = sorted(spec["model"]["vocab"].items(), key=lambda item: item[1])
    merges = [list(m) if isinstance(m, list) else m.split(" ", 1) for m in spec["model"]["merges"]]
    order = BASE_SPECIALS + [f"<0x{b:02X}>" for b in range(256)]
    order += [t for t, _ in trained if t not in BASE_SPECIALS]
    # Whitespace runs as single tokens (SentencePiece vocabularies have them; the Metaspace trainer cannot).
    for left, right in [(SPACE, SPACE), (SPACE * 2, SPACE * 2), (SPACE * 2, SPACE), (SPACE * 4, SPACE * 4)]:
        if left + right not in order:
            order.append(left + right)
            merges.append([left, right])
    return {t: i for i, t in enumerate(order)}, merges


def added(content, id_, special=True, normalized=False, lstrip=False, rstrip=False, single_word=False):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": normalized, "special": special}


def template(single, pair, specials):
    def pieces(text):
        out = []
        for item in text.split():
            type_id = 1 if item.endswith(":1") else 0
            item = item.split(":")[0]
            out.append({"Sequence": {"id": item[1:], "type_id": type_id}} if item.startswith("$")
                       else {"SpecialToken": {"id": item, "type_id": type_id}})
        return out
    return {"type": "TemplateProcessing", "single": pieces(single), "pair": pieces(pair),
            "special_tokens": {t: {"id": t, "ids": [i], "tokens": [t]} for t, i in specials.items()}}


def replace(pattern, content):
    return {"type": "Replace", "pattern": {"String": pattern}, "content": content}


STRIP_DECODER = {"type": "Sequence", "decoders": [replace(SPACE, " "), {"type": "ByteFallback"}, {"type": "Fuse"},
                                                  {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}


def variant_specs(vocab, merges):
    """name -> (tokenizer.json dict, tokenizer_config.json dict)."""
    n = len(vocab)

    def model(**options):
        spec = {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                "vocab": dict(vocab), "merges": merges}
        spec.update(options)
        return spec

    def tokenizer(added_tokens, normalizer, pre_tokenizer, post_processor, decoder, model_spec):
        return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
                "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": post_processor,
                "decoder": decoder, "model": model_spec}

    base_added = [added("<unk>", 0), added("<s>", 1), added("</s>", 2)]
    bos = template("<s> $A", "<s> $A <s>:1 $B:1", {"<s>": 1})
    llama_config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
                    "add_eos_token": False, "tokenizer_class": "LlamaTokenizer"}
    specs = {}
    # Llama 2 / TinyLlama (legacy): Prepend + Replace normalizer, no pre-tokenizer, added tokens with each flag.
    specs["llama2"] = (tokenizer(
        base_added + [added("<mask>", n, lstrip=True), added("[SEP]", n + 1, rstrip=True),
                      added("wikitoken", n + 2, special=False, normalized=True, single_word=True),
                      added("hello world", n + 3, special=False, normalized=True),
                      added("<think>", n + 4, special=False)],
        {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": SPACE}, replace(" ", SPACE)]},
        None, bos, STRIP_DECODER, model()), llama_config)
    # Mistral v0.3 / non-legacy Llama: Metaspace(first, split=false), control tokens.
    specs["mistral"] = (tokenizer(
        base_added + [added("[INST]", n), added("[/INST]", n + 1), added("[TOOL_CALLS]", n + 2),
                      added("<mask>", n + 3, lstrip=True, rstrip=True)],
        None, {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "first", "split": False}, bos,
        STRIP_DECODER, model()), dict(llama_config, tokenizer_class="LlamaTokenizerFast"))
    # Gemma: Replace normalizer, Split(" ", MergedWithPrevious), no Strip, its own BOS template.
    specs["gemma"] = (tokenizer(
        base_added + [added("<start_of_turn>", n), added("<end_of_turn>", n + 1),
                      added("<mask>", n + 2, special=False, normalized=True)],
        replace(" ", SPACE),
        {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False},
        template("<s> $A", "<s> $A $B:1", {"<s>": 1}),
        {"type": "Sequence", "decoders": [replace(SPACE, " "), {"type": "ByteFallback"}, {"type": "Fuse"}]},
        model()), {"bos_token": "<s>", "eos_token": "<end_of_turn>", "pad_token": "<unk>"})
    # Metaspace(always, split) with its decoder, NFC, ignore_merges, unk without fusing, 4-byte bytes missing.
    removed = {f"<0x{b:02X}>" for b in range(0xF0, 0xF5)}
    no_f0 = {t: i for i, t in enumerate(t for t in vocab if t not in removed)}
    specs["metaspace_always"] = (tokenizer(
        base_added + [added("<|im_end|>", n, normalized=True)],
        {"type": "NFC"}, {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "always", "split": True},
        template("<s> $A </s>", "<s> $A </s> </s>:1 $B:1 </s>:1", {"<s>": 1, "</s>": 2}),
        {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "always", "split": True},
        model(fuse_unk=False, ignore_merges=True, vocab=no_f0)), {"eos_token": "<|im_end|>"})
    # Metaspace(never) in a Sequence, no byte fallback (unknown characters fused into <unk>), no post-processor.
    specs["metaspace_never"] = (tokenizer(
        base_added,
        None, {"type": "Sequence", "pretokenizers": [
            {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "never", "split": True}]},
        None, {"type": "Sequence", "decoders": [
            {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "never", "split": True}]},
        model(byte_fallback=False)), {"eos_token": "</s>"})
    # Llama 2 layout behind NFKC (compatibility characters fold before Prepend / Replace), with a normalized added
    # token written with a ligature (matched in its NFKC form, as the library normalizes it).
    specs["llama2_nfkc"] = (tokenizer(
        base_added + [added("\ufb01nal", n, special=False, normalized=True)],
        {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Prepend", "prepend": SPACE},
                                             replace(" ", SPACE)]},
        None, bos, STRIP_DECODER, model()), llama_config)
    # Metaspace(first) behind NFKD: everything decomposed, combining marks by byte fallback.
    specs["metaspace_nfkd"] = (tokenizer(
        base_added, {"type": "NFKD"},
        {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "first", "split": True}, bos,
        STRIP_DECODER, model()), llama_config)
    return specs


def train_sentencepiece(lines, vocab_size):
    buffer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=buffer, model_type="bpe", vocab_size=vocab_size,
        byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=True, split_digits=True, allow_whitespace_only_pieces=True, character_coverage=0.9995,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, user_defined_symbols=["<tool>"], control_symbols=["<ctrl>"],
        minloglevel=2, num_threads=2)
    return buffer.getvalue()


def write_error_folders(out_dir, spm_folder):
    """errors/<case>/: folders aligntrain must refuse, with the field or file its error names (errors.json)."""
    cases = {}
    root = os.path.join(out_dir, "errors")

    def folder(name, model_bytes, config, expected):
        path = os.path.join(root, name)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "tokenizer.model"), "wb") as f:
            f.write(model_bytes)
        write_json(os.path.join(path, "tokenizer_config.json"), config)
        cases[name] = expected

    with open(os.path.join(spm_folder, "tokenizer.model"), "rb") as f:
        bpe = f.read()
    folder("t5_class", bpe, {"tokenizer_class": "T5Tokenizer"}, "field 'tokenizer_class'")
    folder("missing_bos", bpe, {"tokenizer_class": "LlamaTokenizer", "bos_token": "<bos>"}, "field 'bos_token'")
    folder("no_class", bpe, {"bos_token": "<s>"}, "field 'tokenizer_class'")
    folder("truncated", bpe[:len(bpe) // 2], {"tokenizer_class": "LlamaTokenizer"}, "tokenizer.model")
    buffer = io.BytesIO()
    lines = [f"word{i} other{i % 7} text" for i in range(400)]
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buffer, model_type="unigram",
                                             vocab_size=40, minloglevel=2)
    folder("unigram", buffer.getvalue(), {"tokenizer_class": "LlamaTokenizer"}, "model_type")
    write_json(os.path.join(root, "errors.json"), cases)


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=1)


class HfTokenizer:
    """The `tokenizers` library's view of a tokenizer.json."""
    def __init__(self, path):
        self.tok = Tokenizer.from_file(path)

    def expectations(self, text, pair):
        ids = self.tok.encode(text, add_special_tokens=False).ids
        out = {"ids": ids, "ids_special": self.tok.encode(text).ids,
               "decoded": self.tok.decode(ids, skip_special_tokens=False),
               "decoded_skip": self.tok.decode(ids, skip_special_tokens=True)}
        if pair is not None:
            out["pair"] = self.tok.encode(text, pair).ids
        return out

    def vocab_size(self):  # one more than the largest id
        return max(self.tok.get_vocab(with_added_tokens=True).values()) + 1


class AutoTokenizerView:
    """transformers' AutoTokenizer for a folder with only tokenizer.model and tokenizer_config.json."""
    def __init__(self, folder):
        from transformers import AutoTokenizer
        self.tok = AutoTokenizer.from_pretrained(folder)

    def expectations(self, text, pair):
        ids = self.tok(text, add_special_tokens=False)["input_ids"]
        out = {"ids": ids, "ids_special": self.tok(text)["input_ids"],
               "decoded": self.tok.decode(ids, skip_special_tokens=False),
               "decoded_skip": self.tok.decode(ids, skip_special_tokens=True)}
        if pair is not None:
            out["pair"] = self.tok(text, pair)["input_ids"]
        return out

    def vocab_size(self):
        return len(self.tok)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--vocab-size", type=int, default=3000)
    parser.add_argument("--num-strings", type=int, default=2200)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    rng = random.Random(args.seed)
    lines = list(base.corpus(rng, 20000))

    vocab, merges = train_vocab(lines, args.vocab_size)
    views = {}
    for name, (spec, config) in variant_specs(vocab, merges).items():
        folder = os.path.join(args.out_dir, name)
        os.makedirs(folder, exist_ok=True)
        write_json(os.path.join(folder, "tokenizer.json"), spec)
        write_json(os.path.join(folder, "tokenizer_config.json"), config)
        views[name] = HfTokenizer(os.path.join(folder, "tokenizer.json"))
    folder = os.path.join(args.out_dir, "spm_model")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "tokenizer.model"), "wb") as f:
        f.write(train_sentencepiece(lines, args.vocab_size))
    write_json(os.path.join(folder, "tokenizer_config.json"),
               {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                "add_bos_token": True, "add_eos_token": False, "legacy": False})
    views["spm_model"] = AutoTokenizerView(folder)
    # The same model with transformers' defaults for what the config leaves out (bos/eos/unk, add_bos_token false),
    # legacy Metaspace (prepend_scheme always) and an EOS added by the post-processor.
    legacy = os.path.join(args.out_dir, "spm_model_legacy")
    os.makedirs(legacy, exist_ok=True)
    with open(os.path.join(legacy, "tokenizer.model"), "wb") as f, open(os.path.join(folder, "tokenizer.model"),
                                                                          "rb") as g:
        f.write(g.read())
    write_json(os.path.join(legacy, "tokenizer_config.json"),
               {"tokenizer_class": "LlamaTokenizer", "legacy": True, "add_eos_token": True})
    views["spm_model_legacy"] = AutoTokenizerView(legacy)
    write_error_folders(args.out_dir, folder)

    specials = sorted({"<s>", "</s>", "<unk>", "<mask>", "[SEP]", "[INST]", "[/INST]", "[TOOL_CALLS]", "wikitoken",
                       "hello world", "<think>", "<start_of_turn>", "<end_of_turn>", "<|im_end|>", "<tool>",
                       "<ctrl>", "<0x41>", "\ufb01nal", "final", SPACE})
    strings = base.test_strings(rng, specials, args.num_strings)
    texts = [(s, {"text": s}) for s in strings]
    texts += [(raw.decode("utf-8", "replace"), {"bytes_hex": raw.hex()}) for raw in base.invalid_utf8(rng, 100)]
    with open(os.path.join(args.out_dir, "cases.jsonl"), "w", encoding="utf-8") as f:
        for line, (text, case) in enumerate(texts):
            pair = texts[(line + 1) % len(texts)][0] if line % 10 == 0 else None
            if not text or not pair:  # transformers reads an empty text or pair as "no pair"
                pair = None
            case = dict(case)
            case.update({name: view.expectations(text, pair) for name, view in views.items()})
            f.write(json.dumps(case, ensure_ascii=False) + "\n")

    manifest = {"variants": sorted(views), "strings": len(strings), "invalid_utf8": len(texts) - len(strings),
                "vocab_sizes": {name: view.vocab_size() for name, view in views.items()},
                "tokenizers_version": tokenizers.__version__}
    write_json(os.path.join(args.out_dir, "manifest.json"), manifest)
    print(json.dumps(manifest))


if __name__ == "__main__":
    main()
