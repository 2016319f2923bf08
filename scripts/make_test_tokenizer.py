#!/usr/bin/env python3
"""Builds the tokenizer parity fixtures used by test/data (tokenizer_parity_test).

Trains byte-level BPE tokenizers with the Hugging Face `tokenizers` library on a generated multilingual corpus, in
the three styles aligntrain supports (GPT-2: ByteLevel pre-tokenizer with its regex; Llama-3: Split(regex) +
ByteLevel(use_regex=false) with ignore_merges; Qwen2: NFC + Split(regex) + ByteLevel; and the Qwen2 vocabulary
behind NFKC), each with special and non-special added tokens, and writes for >= 2000 test strings (compatibility
characters among them) the library's ids and decodes (JSONL), plus chat
template renders made by transformers' own Jinja renderer. Everything is deterministic for a given --seed.

Usage: make_test_tokenizer.py OUT_DIR [--seed N] [--vocab-size N]
Writes:
  OUT_DIR/<variant>/tokenizer.json (+ tokenizer_config.json, generation_config.json, chat_template.jinja)
  OUT_DIR/cases.jsonl       one test string per line: {"text": s} or {"bytes_hex": h} (invalid UTF-8, encoded as
                            the library sees bytes.decode("utf-8", "replace")), "nfc" / "nfkc": the NFC / NFKC
                            normalisers' outputs,
                            and per variant {"ids", "decoded", "decoded_skip"}
  OUT_DIR/nfc_cases.jsonl   {"text", "nfc", "nfd", "nfkc", "nfkd"} for every character a Unicode normalizer can change,
                            alone and among combining marks
  OUT_DIR/chat_cases.jsonl  {"jinja", "name", "default_system", "bos_token", "eos_token", "messages", "prompt", "full"}
  OUT_DIR/manifest.json     variants, counts and library versions
"""
import argparse
import json
import os
import random
import sys
import unicodedata

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# --- corpus and test strings -------------------------------------------------------------------------------------

WORDS = {
    "en": "the of and to in is was for on that with as it he she they we you I'm don't can't it's we'll you've "
          "they're he'd model train token language data learning preference reward policy gradient value "
          "Hello World OpenAI Qwen Llama people because about would there their which".split(),
    "de": "der die das und ist nicht mit für über Größe Straße Mädchen schön grün Übung können müssen".split(),
    "fr": "le la les et est une pour été déjà où français garçon noël naïve café élève".split(),
    "es": "el la los y es una para señor niño año mañana corazón información".split(),
    "ru": "и в не на я что тот быть с он привет мир язык модель данные обучение".split(),
    "el": "και το να είναι της γλώσσα μοντέλο καλημέρα".split(),
    "ar": "في من على إلى هذا اللغة نموذج مرحبا بالعالم".split(),
    "he": "של את על זה שלום עולם שפה".split(),
    "hi": "और का के में है यह नमस्ते दुनिया भाषा".split(),
    "zh": "的 一 是 在 不 了 有 和 人 这 中 大 为 上 个 国 我 以 要 他 语言 模型 训练 数据 你好 世界".split(),
    "ja": "これ は です ます こんにちは 世界 言語 モデル カタカナ ひらがな".split(),
    "ko": "이 그 저 것 수 있다 하다 안녕하세요 세계 언어 모델".split(),
    "th": "สวัสดี ภาษา โลก ข้อมูล".split(),
    "vi": "tiếng Việt xin chào thế giới ngôn ngữ".split(),
}
EMOJI = ["😀", "🚀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "🧑🏿‍💻", "✨", "🤖"]
PUNCT = [",", ".", "!", "?", ":", ";", "-", "--", "...", "(", ")", "[", "]", "{", "}", "\"", "'", "«", "»", "—",
         "#", "$", "%", "&", "*", "+", "=", "/", "\\", "@", "^", "_", "`", "|", "~", "<", ">", "。", "、", "！"]
SPACES = [" ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\t\t", "\u00a0", "\u3000", "\u2028",
          "\u0085", "\u200b", "\ufeff", "\u180e", "\u2009", "\x0b", "\x0c", "\x1c"]
COMBINING = ["\u0301", "\u0300", "\u0308", "\u0323", "\u0327", "\u0303", "\u20dd", "\u0951", "\u05b8", "\u0670"]
CODE = ["def f(x):\n    return x + 1\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
        "if __name__ == '__main__':\n    main()", "SELECT * FROM t WHERE id = 42;", "<div class=\"a\">x</div>"]


def number(rng):
    return str(rng.choice([rng.randint(0, 9), rng.randint(10, 999), rng.randint(1000, 10**9), rng.random()]))


def sentence(rng):
    lang = rng.choice(list(WORDS))
    parts = []
    for _ in range(rng.randint(3, 18)):
        r = rng.random()
        if r < 0.75:
            word = rng.choice(WORDS[lang])
            parts.append(word.capitalize() if rng.random() < 0.1 else word)
        elif r < 0.83:
            parts.append(number(rng))
        elif r < 0.93:
            parts.append(rng.choice(PUNCT))
        else:
            parts.append(rng.choice(EMOJI))
    sep = "" if lang in ("zh", "ja") and rng.random() < 0.7 else " "
    return sep.join(parts) + rng.choice([".", "!", "?", "。", ""])


def corpus(rng, lines):
    for i in range(lines):
        yield rng.choice(CODE) if i % 50 == 0 else sentence(rng)


def random_piece(rng, specials):
    r = rng.random()
    if r < 0.35:
        return rng.choice(WORDS[rng.choice(list(WORDS))])
    if r < 0.45:
        return rng.choice(SPACES)
    if r < 0.53:
        return rng.choice(PUNCT)
    if r < 0.60:
        return number(rng)
    if r < 0.66:
        return rng.choice(EMOJI)
    if r < 0.72:
        return rng.choice("aeiouAEIOU") + "".join(rng.choice(COMBINING) for _ in range(rng.randint(1, 3)))
    if r < 0.77:
        return rng.choice(["'s", "'T", "'re", "'VE", "'m", "'Ll", "'d", "’s", "n't"])
    if r < 0.85:
        special = rng.choice(specials)
        return special[: rng.randint(1, len(special))] if rng.random() < 0.2 else special
    if r < 0.90:
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 12)))
    return chr(random_code_point(rng))


def random_code_point(rng):
    while True:
        block = rng.choice([(0x20, 0x7F), (0xA0, 0x2FF), (0x300, 0x36F), (0x370, 0x1FFF), (0x2000, 0x2BFF),
                            (0x3000, 0x9FFF), (0xAC00, 0xD7A3), (0x1100, 0x11FF), (0xF900, 0xFAFF),
                            (0xFB00, 0xFFFD), (0x1F300, 0x1FAFF), (0x10000, 0x10FFFF), (0x0, 0x1F)])
        cp = rng.randint(*block)
        if not 0xD800 <= cp <= 0xDFFF:
            return cp


def edge_cases(specials):
    cases = ["", " ", "  ", "\t", "\n", "\r\n", "\n\n\n", " \t \n ", "a", "A", "0", "00", "123", "1234",
             "1234567890", "12345678901234567890", "3.14159", "1,000,000", "I'm", "I'M", "you'll", "YOU'LL",
             "don't", "DON'T", "it's", "We've", "they'd", "'s", "''", "' s", "hello world", " hello", "hello ",
             "  hello  world  ", "Hello\tworld\n", "line1\nline2\r\nline3", "trailing spaces   ", "   leading",
             "e\u0301", "\u00e9", "cafe\u0301", "caf\u00e9", "nai\u0308ve", "na\u00efve", "a\u0323\u0301",
             "a\u0301\u0323", "\u1100\u1161\u11a8", "\uac00\u11a8", "\u0915\u093c", "\u212b", "\u2126", "\uf900",
             "\u00c5\u0301", "\u1e9b\u0323", "😀", "👨‍👩‍👧‍👦", "🇫🇷🇩🇪", "👍🏽👍🏿", "你好，世界！", "こんにちは世界",
             "안녕하세요", "مرحبا بالعالم", "שלום עולם", "नमस्ते", "สวัสดีครับ", "Ελληνικά", "Привет, мир!",
             "\u00a0", "\u3000", "\u2028", "\u0085", "\u200b", "\ufeff", "\u180e", "\x00", "\x7f", "\x0b\x0c",
             "\x1c\x1d\x1e\x1f", "a\u00a0b", "a\u3000b", "a\u0085b", "a\u2028b", "x" * 300, " " * 300, "\n" * 50,
             "ab" * 500, "wikitoken", "a wikitoken b", "awikitoken", "wikitokens", "_wikitoken", "wikitoken_",
             "hello world!", "say hello worldwide", "<mask>", "a <mask> b", "a   <mask>", "[SEP]", "[SEP]   x",
             "naïve café", "<think>", "<think>x</think>"]
    for s in specials:
        cases += [s, s + s, "x" + s + "y", " " + s + " ", "hi " + s + "user\nhello" + s + "\n", s[:-1], s[1:],
                  "\n" + s + "\n\n", s + " " + s]
    return cases


COMPATIBILITY_SAMPLES = [
    "\ufb01nance \ufb02ow \ufb00 \ufb03", "\uff21\uff42\uff43 \uff11\uff12\uff13\uff01", "\u2460\u2461\u2473 \u246a",
    "x\u00b2 + y\u00b3 = z\u2074", "H\u2082O", "\u00bd \u00bc \u2153", "\u210c\u2102\u211d", "5 \u3392 \u338f \u33a1",
    "\ud55c\uad6d\uc5b4 \u1112\u1161\u11ab", "\u3131\u314f \u3200 \u3260", "\ufef7\ufefb \ufe8d\ufe91",
    "\ufdfa \ufdf2", "\uff76\uff9e\uff77\uff9e \uff8a\uff9f", "\uff7a\uff9d\uff86\uff81\uff8a", "\u2126 \u212b \u212a",
    "e\u0301\u0323 \u1e9b\u0323 a\u0308\u0304", "\u00a0a\u00a0\u2003b\u3000c", "\u2026 \u2025 \u2024",
    "\u01c4\u01c6 \u0132\u0133", "\u2162 \u217b", "\u33c7 \u3314 \u337f", "\u1d2c\u1d43 \u2090",
    "\u00aa\u00ba \u00b5 \u017f", "\ufe35\ufe36 \ufe59", "\u2474 \u2488 \u249c", "\U0001d400\U0001d41a \U0001d7ce",
    "\U0001f100 \U0001f110 \U0001f12b", "\u32ff \ua7f2 \U0001fbf1", "\u0f77 \u0f79", "\u0e33 \u0eb3",
]


def compatibility_code_points():
    """Characters whose NFKD form differs from their NFD form (Python's tables), sorted."""
    return [cp for cp in range(0xA0, 0x110000) if not 0xD800 <= cp <= 0xDFFF
            and unicodedata.normalize("NFKD", chr(cp)) != unicodedata.normalize("NFD", chr(cp))]


def compatibility_strings(rng, count):
    """Text with compatibility characters (ligatures, full-width forms, circled and superscript digits, Hangul,
    Arabic presentation forms, half-width katakana, letterlike symbols, CJK squares) among words and combining
    marks, for NFKC / NFKD."""
    pool = compatibility_code_points()
    strings = list(COMPATIBILITY_SAMPLES)
    while len(strings) < count:
        pieces = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.5:
                pieces.append(chr(rng.choice(pool)))
            elif r < 0.65:
                pieces.append(rng.choice(["\u0301", "\u0323", "\u0308", "\u3099", "\u309a", "\u0654"]))
            elif r < 0.8:
                pieces.append(rng.choice(WORDS[rng.choice(list(WORDS))]))
            else:
                pieces.append(rng.choice([" ", "  ", "\n", "a", "1", "."]))
        strings.append("".join(pieces))
    return strings


def test_strings(rng, specials, count):
    strings = edge_cases(specials)
    strings += compatibility_strings(rng, 300)
    for word in compound_words():  # whole-vocabulary words for ignore_merges (Llama-3 variant)
        strings += [word, f"{word} {word}!", f"x{word}"]
    for _ in range(300):
        strings.append("".join(chr(random_code_point(rng)) for _ in range(rng.randint(1, 40))))
    for _ in range(400):
        strings.append(sentence(rng) + (" " + sentence(rng) if rng.random() < 0.5 else ""))
    for _ in range(8):
        strings.append("\n".join(sentence(rng) for _ in range(200)))
    while len(strings) < count:
        strings.append("".join(random_piece(rng, specials) for _ in range(rng.randint(1, 40))))
    return strings


def invalid_utf8(rng, count):
    out = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"a\x80b", b"\xe2\x82", b"\xf4\x90\x80\x80",
           b"\xf8\x88\x80\x80\x80", "héllo".encode()[:2] + b" world"]
    pool = [b"\x80", b"\xbf", b"\xc2", b"\xe0", b"\xed", b"\xf0", b"\xf4", b"\xff", b"a", b" ", b"\xe2\x82\xac",
            "😀".encode(), "é".encode(), "😀".encode()[:3]]
    while len(out) < count:
        out.append(b"".join(rng.choice(pool) for _ in range(rng.randint(1, 20))))
    return out


def nfc_cases():
    """Every character with a combining class or a (canonical or compatibility) decomposition, plus Hangul jamo, in a
    few contexts."""
    for cp in range(0x110000):
        c = chr(cp)
        if 0xD800 <= cp <= 0xDFFF or not (unicodedata.combining(c) or unicodedata.decomposition(c)
                                          or 0x1100 <= cp <= 0x11FF):
            continue
        for text in (c, "a" + c, c + "\u0301", "a\u0323" + c + "\u0301", "\u1100\u1161" + c, c + c):
            yield text


# --- tokenizers ----------------------------------------------------------------------------------------------------

def train(pre_tokenizer, specials, corpus_lines, vocab_size, normalizer=None, ignore_merges=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus_lines, trainer=trainer)
    return tok


def compound_words():
    """Two-word compounds ("modeldata", "Größetrain"): one pre-token each, usually several BPE tokens."""
    letters = sorted({w for ws in WORDS.values() for w in ws if w.isalpha()})
    rng = random.Random(7)
    return sorted({rng.choice(letters) + rng.choice(letters) for _ in range(120)})


def with_unmergeable_words(tok, words):
    """Adds whole words to the vocab without merges, so that only ignore_merges can produce them."""
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    next_id = max(list(vocab.values()) + [t["id"] for t in spec["added_tokens"]]) + 1
    byte_char = bytes_to_unicode()
    for word in words:
        for text in (word, " " + word):
            key = "".join(byte_char[b] for b in text.encode())
            if key not in vocab and len(tok.encode(text, add_special_tokens=False).ids) > 1:
                vocab[key] = next_id
                next_id += 1
    return Tokenizer.from_str(json.dumps(spec))


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def build_variants(rng, vocab_size):
    lines = list(corpus(rng, 30000))
    gpt2_specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    llama_specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                      "<|eot_id|>"] + [f"<|reserved_special_token_{i}|>" for i in range(8)]
    variants = {}

    gpt2 = train(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), gpt2_specials, lines, vocab_size)
    gpt2.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False),
                             AddedToken("[SEP]", rstrip=True, special=True, normalized=False)])
    gpt2.add_tokens([AddedToken("wikitoken", single_word=True, normalized=True),
                     AddedToken("hello world", normalized=False)])
    variants["gpt2"] = gpt2

    prefix = train(pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True), gpt2_specials, lines,
                   vocab_size)
    variants["gpt2_prefix"] = prefix

    llama_pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    llama = train(llama_pre, llama_specials, lines, vocab_size, ignore_merges=True)
    llama = with_unmergeable_words(llama, compound_words())
    variants["llama3"] = llama

    qwen_pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    qwen = train(qwen_pre, gpt2_specials, lines, vocab_size, normalizer=normalizers.NFC())
    qwen.add_tokens([AddedToken("naïve", normalized=True), AddedToken("<think>", normalized=False),
                     AddedToken("</think>", normalized=False)])
    variants["qwen2"] = qwen
    # The same vocabulary behind an NFKC normalizer (in a Sequence): compatibility characters fold before the model.
    nfkc = Tokenizer.from_str(qwen.to_str())
    nfkc.normalizer = normalizers.Sequence([normalizers.NFKC()])
    variants["qwen2_nfkc"] = nfkc
    specials = sorted({token.content for tok in variants.values()
                       for token in tok.get_added_tokens_decoder().values()})
    return variants, specials


# --- chat templates ------------------------------------------------------------------------------------------------

CHATML_JINJA = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
                "{% endif %}")
QWEN2_JINJA = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
               "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
               "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
               "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
QWEN25_JINJA = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""
LLAMA3_JINJA = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
                "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
                "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
                "{{ content }}{% endfor %}{% if add_generation_prompt %}"
                "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
# Must equal kPlainJinja in data/chat_template.cc (the test checks it).
PLAIN_JINJA = ("{#- aligntrain:plain -#}\n{{- bos_token -}}\n{%- for message in messages -%}\n"
               "{%- if message['role'] == 'system' -%}{{- 'System: ' + message['content'] + '\\n' -}}\n"
               "{%- elif message['role'] == 'user' -%}{{- 'User: ' + message['content'] + '\\n' -}}\n"
               "{%- else -%}{{- 'Assistant: ' + message['content'] + eos_token -}}{%- endif -%}\n"
               "{%- endfor -%}\n{%- if add_generation_prompt -%}{{- 'Assistant: ' -}}{%- endif -%}\n")

CHAT_TEMPLATES = [  # (jinja, name, default system, bos, eos)
    (CHATML_JINJA, "chatml", "", "", "<|im_end|>"),
    (QWEN2_JINJA, "chatml", "You are a helpful assistant.", "", "<|im_end|>"),
    (QWEN25_JINJA, "chatml", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.", "",
     "<|im_end|>"),
    (LLAMA3_JINJA, "llama3", "", "<|begin_of_text|>", "<|eot_id|>"),
    (PLAIN_JINJA, "plain", "", "<|bos|>", "<|eos|>"),
    (PLAIN_JINJA, "plain", "", "", "</s>"),
]


def conversations(rng, count):
    contents = ["Hello!", "What is 2+2?", "4.", "  padded with spaces  ", "multi\nline\n\ntext", "", "日本語で答えて",
                "😀 emoji", "Tell me about <|im_start|> tokens", "tabs\tand\ttabs", "\nleading newline",
                "trailing newline\n"]
    out = []
    for i in range(count):
        messages = [{"role": "system", "content": rng.choice(contents)}] if i % 3 == 0 else []
        for _ in range(rng.randint(1, 3)):
            messages += [{"role": "user", "content": rng.choice(contents)},
                         {"role": "assistant", "content": rng.choice(contents)}]
        out.append(messages)
    return out


def render(jinja, messages, add_generation_prompt, bos, eos):
    from transformers.utils.chat_template_utils import render_jinja_template
    rendered, _ = render_jinja_template(conversations=[messages], chat_template=jinja,
                                        add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token=eos)
    return rendered[0]


def chat_cases(rng):
    for jinja, name, system, bos, eos in CHAT_TEMPLATES:
        for messages in conversations(rng, 20):
            yield {"jinja": jinja, "name": name, "default_system": system, "bos_token": bos, "eos_token": eos,
                   "messages": messages, "prompt": render(jinja, messages[:-1], True, bos, eos),
                   "full": render(jinja, messages, False, bos, eos)}


# --- model dirs --------------------------------------------------------------------------------------------------

def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=1)


def added_token_object(content):
    return {"__type": "AddedToken", "content": content, "lstrip": False, "rstrip": False, "normalized": False,
            "single_word": False, "special": True}


def write_model_dirs(out, variants):
    for name, tok in variants.items():
        os.makedirs(os.path.join(out, name), exist_ok=True)
        tok.save(os.path.join(out, name, "tokenizer.json"))
    # GPT-2 style files carry legacy "a b" merges, and special tokens as strings.
    path = os.path.join(out, "gpt2", "tokenizer.json")
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    spec["model"]["merges"] = [" ".join(pair) for pair in spec["model"]["merges"]]
    write_json(path, spec)
    write_json(os.path.join(out, "gpt2", "tokenizer_config.json"),
               {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                "model_max_length": 1024, "tokenizer_class": "GPT2Tokenizer"})
    # Special tokens as AddedToken objects; pad comes from generation_config.json.
    write_json(os.path.join(out, "gpt2_prefix", "tokenizer_config.json"),
               {"bos_token": added_token_object("<|im_start|>"), "eos_token": added_token_object("<|im_end|>")})
    write_json(os.path.join(out, "gpt2_prefix", "generation_config.json"), {"pad_token_id": 0})
    # Llama-3 style: bos/eos from tokenizer_config, eos list in generation_config, template in chat_template.jinja.
    write_json(os.path.join(out, "llama3", "tokenizer_config.json"),
               {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "tokenizer_class": "PreTrainedTokenizerFast"})
    write_json(os.path.join(out, "llama3", "generation_config.json"), {"bos_token_id": 0, "eos_token_id": [1, 4]})
    with open(os.path.join(out, "llama3", "chat_template.jinja"), "w", encoding="utf-8") as f:
        f.write(LLAMA3_JINJA)
    # Qwen2 style: no bos, template inline.
    write_json(os.path.join(out, "qwen2", "tokenizer_config.json"),
               {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                "chat_template": QWEN25_JINJA, "errors": "replace"})
    write_json(os.path.join(out, "qwen2_nfkc", "tokenizer_config.json"), {"eos_token": "<|im_end|>"})


# --- main ----------------------------------------------------------------------------------------------------------

def expectations(tok, text):
    ids = tok.encode(text, add_special_tokens=False).ids
    return {"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip": tok.decode(ids, skip_special_tokens=True)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--vocab-size", type=int, default=4000)
    parser.add_argument("--num-strings", type=int, default=2400)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    rng = random.Random(args.seed)

    variants, specials = build_variants(rng, args.vocab_size)
    write_model_dirs(args.out_dir, variants)
    for name, tok in variants.items():
        if tok.get_vocab_size() < 2000:
            sys.exit(f"make_test_tokenizer.py: variant {name} has only {tok.get_vocab_size()} tokens")

    nfc, nfkc = normalizers.NFC(), normalizers.NFKC()
    forms = {"nfc": nfc, "nfd": normalizers.NFD(), "nfkc": nfkc, "nfkd": normalizers.NFKD()}
    n_strings = n_bytes = 0
    with open(os.path.join(args.out_dir, "cases.jsonl"), "w", encoding="utf-8") as f:
        for text in test_strings(rng, specials, args.num_strings):
            case = {"text": text, "nfc": nfc.normalize_str(text), "nfkc": nfkc.normalize_str(text)}
            case.update({name: expectations(tok, text) for name, tok in variants.items()})
            f.write(json.dumps(case, ensure_ascii=False) + "\n")
            n_strings += 1
        for raw in invalid_utf8(rng, 100):
            text = raw.decode("utf-8", "replace")
            case = {"bytes_hex": raw.hex(), "nfc": nfc.normalize_str(text), "nfkc": nfkc.normalize_str(text)}
            case.update({name: expectations(tok, text) for name, tok in variants.items()})
            f.write(json.dumps(case, ensure_ascii=False) + "\n")
            n_bytes += 1

    n_nfc = 0
    with open(os.path.join(args.out_dir, "nfc_cases.jsonl"), "w", encoding="utf-8") as f:
        for text in nfc_cases():
            case = {"text": text}
            case.update({name: form.normalize_str(text) for name, form in forms.items()})
            f.write(json.dumps(case, ensure_ascii=False) + "\n")
            n_nfc += 1

    n_chat = 0
    with open(os.path.join(args.out_dir, "chat_cases.jsonl"), "w", encoding="utf-8") as f:
        for case in chat_cases(rng):
            f.write(json.dumps(case, ensure_ascii=False) + "\n")
            n_chat += 1

    manifest = {"variants": sorted(variants), "strings": n_strings, "invalid_utf8": n_bytes, "nfc_cases": n_nfc,
                "chat_cases": n_chat,
                "vocab_sizes": {name: tok.get_vocab_size() for name, tok in variants.items()},
                "tokenizers_version": tokenizers.__version__}
    write_json(os.path.join(args.out_dir, "manifest.json"), manifest)
    print(json.dumps(manifest))


if __name__ == "__main__":
    main()
