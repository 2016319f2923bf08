#!/usr/bin/env python3
"""Reference token ids and loss masks by transformers / TRL, for the parity test of `aligntrain tokenize`.

    tokenize_reference.py OUR_TEMPLATES_DIR TRL_TEMPLATES_DIR OUT_DIR

Trains a small byte-level BPE tokenizer (Hugging Face `tokenizers`) with the special tokens of the templates, then
for every template writes a model folder and a data file of conversations (system / user / assistant messages,
assistant tool calls and tool results, some with TRL's per-example `tools` and `chat_template_kwargs` fields), and
the expected encoding of each line (tool results are never trained):

  last-turn mask (the default; TRL's conversational prompt-completion preparation): prompt = the conversation
    without its last assistant message, rendered with add_generation_prompt; ids = apply_chat_template(whole,
    tokenize=True); mask = 0 for the first len(apply_chat_template(prompt, tokenize=True)) ids, 1 after.
  every assistant turn, templates with {% generation %} blocks (TRL's *_training.jinja): ids and assistant_masks
    of apply_chat_template(whole, return_dict=True, return_assistant_tokens_mask=True), as SFTTrainer's
    assistant_only_loss takes them.
  every assistant turn, templates without: ids of the whole rendering; a token is masked when it overlaps the
    span of an assistant message (from the end of the rendered prefix with a generation prompt to the end of the
    rendered prefix that includes it), mapped with the fast tokenizer's offsets as transformers maps generation
    spans.
Only conversations the template renders without error, with prompts that are prefixes of the whole, are kept; a
template with fewer than 20 such is left out (manifest "skipped"); >= 8 templates with >= 20 each are asserted.

Writes OUT_DIR/<template>/model/ (tokenizer.json, tokenizer_config.json), OUT_DIR/<template>/data.jsonl,
OUT_DIR/<template>/expected_last.jsonl, OUT_DIR/<template>/expected_all.jsonl, OUT_DIR/manifest.json.
"""
import json
import os
import re
import sys

from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL = {
    "llama2.jinja": ("<s>", "</s>"), "llama31.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "mistral_v03.jinja": ("<s>", "</s>"), "qwen25.jinja": (None, "<|im_end|>"), "qwen3.jinja": (None, "<|im_end|>"),
    "gemma.jinja": ("<bos>", "<eos>"), "phi3.jinja": ("<s>", "<|endoftext|>"),
    "chatml_generation.jinja": (None, "<|im_end|>"), "tool_schema_macros.jinja": (None, "</s>"),
}
TRL_TEMPLATES = ["llama3_training.jinja", "qwen2_5_training.jinja", "qwen3_training.jinja", "gemma_training.jinja",
                 "phi3_training.jinja"]
TRL_SPECIAL = {"llama3_training.jinja": ("<|begin_of_text|>", "<|eot_id|>"), "gemma_training.jinja": ("<bos>", "<eos>"),
               "phi3_training.jinja": ("<s>", "<|endoftext|>")}

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def u(t):
    return {"role": "user", "content": t}


def a(t):
    return {"role": "assistant", "content": t}


def s(t):
    return {"role": "system", "content": t}


WORDS = ["alpha", "beta", "the", "cat", "sat", "on", "mat", "Paris", "weather", "café", "naïve", "你好", "世界", "🌍",
         "42", "3.14", "tokens", "mask", "loss", "  spaced", "tab\there", "new\nline"]


CLOCK = {"type": "function", "function": {"name": "get_time", "description": "The time in a time zone.",
         "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}


def call(*calls, content=None, null_content=False, ids=None):
    """An assistant message making tool calls [(name, arguments)], in the OpenAI / Hugging Face shape, with the
    calls' `ids` if given."""
    m = {"role": "assistant"}
    if content is not None or null_content:
        m["content"] = content
    m["tool_calls"] = [dict({"type": "function", "function": {"name": n, "arguments": args}},
                            **({"id": ids[i]} if ids else {})) for i, (n, args) in enumerate(calls)]
    return m


def tool(content, name=None, call_id=None):
    m = {"role": "tool", "content": content}
    if name is not None:
        m["name"] = name
    if call_id is not None:
        m["tool_call_id"] = call_id
    return m


def tool_conversations():
    """Conversations with tool calls (arguments as objects or JSON strings, content absent, null or text, one or two
    calls a turn) and tool results (with and without name / tool_call_id), most with a `tools` list."""
    both = {"tools": [WEATHER, CLOCK]}
    weather = {"tools": [WEATHER]}
    return [
        ([u("Weather in Paris?"), call(("get_weather", {"city": "Paris"})), tool('{"temp": 21, "sky": "clear"}'),
          a("It is 21 degrees and clear in Paris.")], weather),
        ([u("And in Oslo?"), call(("get_weather", '{"city": "Oslo"}')), tool("-3 C, snow", name="get_weather"),
          a("Cold: -3 C with snow.")], weather),
        ([s("Use tools when needed."), u("Time in Tokyo?"), call(("get_time", {"zone": "Asia/Tokyo"}), ids=["call_0"]),
          tool("09:30", name="get_time", call_id="call_0"), a("It is 09:30 in Tokyo.")], both),
        ([u("Weather and time in Rome?"), call(("get_weather", {"city": "Rome"}), ("get_time", {"zone": "Europe/Rome"})),
          tool("18 C"), tool("14:05"), a("18 C, and it is 14:05.")], both),
        ([u("Is it raining in Lima?"), call(("get_weather", {"city": "Lima"}), content="Let me check.")], weather),
        ([u("Weather in Cairo?"), call(("get_weather", {"city": "Cairo"}), null_content=True), tool("35 C"),
          a("Hot: 35 C.")], weather),
        ([u("Weather in Berlin?"), call(("get_weather", {"city": "Berlin"})), tool('{"temp": 12}'), a("12 C."),
          u("And the time there?"), call(("get_time", {"zone": "Europe/Berlin"})), tool("10:00"),
          a("It is 10:00 in Berlin.")], both),
        ([u("Time in Sydney, please."), call(("get_time", {"zone": "Australia/Sydney"}), content="")], both),
        ([u("Weather in Nairobi? 🌍"), call(("get_weather", {"city": "Nairobi", "unit": "C"})),
          tool("{\"temp\": 24, \"note\": \"naïve café\"}"), a("24 C — pleasant.")], weather),
        ([u("Use the result: weather in Quito"), call(("get_weather", {"city": "Quito"})), tool("15 C"),
          a("15 C in Quito.")], {}),
        ([s("Be brief."), u("Weather in Lisbon?"), call(("get_weather", {"city": "Lisbon"})), tool("20 C"),
          a("20 C.")], weather),
        ([u("Check the time in UTC."), call(("get_time", {"zone": "UTC"})), tool("12:00", call_id="x1"),
          a("12:00 UTC.")], {"tools": [CLOCK], "chat_template_kwargs": {"enable_thinking": False}}),
        # Mistral-style call ids (nine alphanumerics) on the calls and their results.
        ([u("Weather in Madrid?"), call(("get_weather", {"city": "Madrid"}), ids=["a1b2c3d4e"]),
          tool("25 C", call_id="a1b2c3d4e"), a("25 C in Madrid.")], weather),
        ([u("Time in Delhi and weather in Hanoi?"),
          call(("get_time", {"zone": "Asia/Kolkata"}), ("get_weather", {"city": "Hanoi"}), ids=["k9L8m7N6p", "Q5r4S3t2u"]),
          tool("16:30", name="get_time", call_id="k9L8m7N6p"), tool("30 C", name="get_weather", call_id="Q5r4S3t2u"),
          a("16:30 in Delhi; 30 C in Hanoi.")], both),
    ]


def conversations():
    out = tool_conversations() + [
        ([u("Hello!"), a("Hi there.")], {}),
        ([s("You are terse."), u("What is 2+2?"), a("4")], {}),
        ([u("Hi"), a("Hello! How can I help?"), u("Tell me a joke."), a("Why did the chicken cross the road?")], {}),
        ([u("Ça va? 你好 🌍 — naïve café"), a("Très bien! 很好 👍")], {}),
        ([u("  padded  \n"), a("  answer with spaces  ")], {}),
        ([u("Print {{ x }} literally"), a("Sure: {{ x }} {% raw %}")], {}),
        ([u("Weather in Paris?"), a("Sunny.")], {"tools": [WEATHER]}),
        ([u("Capital of France?"), a("Paris.")], {"chat_template_kwargs": {"enable_thinking": False}}),
        ([u("Is 17 prime?"), a("<think>\ncheck\n</think>\n\nYes.")], {}),
        ([s("Be brief."), u("One"), a("1"), u("Two"), a("2"), u("Three"), a("3")], {}),
    ]
    for k in range(22):
        turns = []
        for t in range(1 + k % 3):
            q = " ".join(WORDS[(k * 7 + t * 3 + j) % len(WORDS)] for j in range(3 + k % 4))
            turns += [u(f"Q{k}.{t}: {q}?"), a(f"A{k}.{t}: {q[::-1]}")]
        if k % 4 == 0:
            turns = [s(f"System prompt {k}.")] + turns
        out.append((turns, {"chat_template_kwargs": {"enable_thinking": True}} if k % 5 == 1 else {}))
    return out


def train_tokenizer(specials, out_dir):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ([" ".join(WORDS)] * 20 + [json.dumps(WEATHER), json.dumps(CLOCK)] * 5
              + [" ".join(m.get("content") or "" for c, _ in conversations() for m in c)] * 5)
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    return tok


def token_mask(offsets, n, spans):
    mask = [0] * n
    for b, e in spans:
        for i, (ob, oe) in enumerate(offsets):
            if ob < e and oe > b:
                mask[i] = 1
    return mask


def main():
    ours_dir, trl_dir, out = sys.argv[1], sys.argv[2], sys.argv[3]
    templates = {n: open(os.path.join(ours_dir, n), encoding="utf-8").read()
                 for n in sorted(os.listdir(ours_dir)) if n.endswith(".jinja")}
    for n in TRL_TEMPLATES:
        templates["trl_" + n] = open(os.path.join(trl_dir, n), encoding="utf-8").read()
    specials = sorted({t for text in templates.values() for t in re.findall(r"<\|[A-Za-z_]+\|>|</?s>|<bos>|<eos>|"
                                                                           r"<start_of_turn>|<end_of_turn>|\[/?INST\]",
                                                                           text)}
                      | {t for pair in list(SPECIAL.values()) + list(TRL_SPECIAL.values()) for t in pair if t}
                      | {"<s>", "</s>", "<unk>"})
    os.makedirs(out, exist_ok=True)
    base = train_tokenizer(specials, os.path.join(out, "tokenizer"))
    manifest = {}
    for name, text in templates.items():
        bos, eos = (TRL_SPECIAL.get(name[4:], (None, "<|im_end|>")) if name.startswith("trl_")
                    else SPECIAL.get(name, ("<s>", "</s>")))
        d = os.path.join(out, name[:-len(".jinja")])
        model = os.path.join(d, "model")
        os.makedirs(model, exist_ok=True)
        base.save(os.path.join(model, "tokenizer.json"))
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": bos, "eos_token": eos}
        with open(os.path.join(model, "tokenizer_config.json"), "w") as f:
            json.dump(config, f)
        with open(os.path.join(d, "template.jinja"), "w", encoding="utf-8") as f:
            f.write(text)
        hf = PreTrainedTokenizerFast(tokenizer_object=base, bos_token=bos, eos_token=eos)
        hf.chat_template = text
        generation = re.search(r"\{\%-?\s*generation\s*-?\%\}", text) is not None
        data, last, every = [], [], []
        for messages, extra in conversations():
            tools = extra.get("tools")
            kwargs = extra.get("chat_template_kwargs", {})

            def render(msgs, gen):
                return hf.apply_chat_template(msgs, tools=tools, tokenize=False, add_generation_prompt=gen, **kwargs)

            try:
                full = render(messages, False)
                prompt = render(messages[:-1], True)
                prefixes = [(render(messages[:i], True) if i else "", render(messages[:i + 1], False))
                            for i, m in enumerate(messages) if m["role"] == "assistant"]
            except Exception:  # noqa: BLE001 - the template rejects this conversation: not a parity case
                continue
            if not full.startswith(prompt) or any(not full.startswith(p) or not full.startswith(t)
                                                  for p, t in prefixes):
                continue
            enc = hf(full, add_special_tokens=False, return_offsets_mapping=True)
            ids = enc["input_ids"]
            prompt_ids = hf(prompt, add_special_tokens=False)["input_ids"]
            last.append({"input_ids": ids, "loss_mask": [0] * len(prompt_ids) + [1] * (len(ids) - len(prompt_ids)),
                         "text": full})
            if generation:
                r = hf.apply_chat_template(messages, tools=tools, tokenize=True, return_dict=True,
                                           return_assistant_tokens_mask=True, **kwargs)
                every.append({"input_ids": list(r["input_ids"]), "loss_mask": list(r["assistant_masks"]),
                              "text": full})
            else:
                spans = [(len(p), len(t)) for p, t in prefixes]
                every.append({"input_ids": ids, "loss_mask": token_mask(enc["offset_mapping"], len(ids), spans),
                              "text": full})
            data.append({"messages": messages, **extra})
        if len(data) < 20:  # e.g. phi3: its prompt rendering is not a prefix of the whole (aligntrain refuses it)
            manifest[name] = {"skipped": f"only {len(data)} conversations render with a prefix prompt"}
            continue
        for file, rows in (("data.jsonl", data), ("expected_last.jsonl", last), ("expected_all.jsonl", every)):
            with open(os.path.join(d, file), "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        manifest[name] = {"conversations": len(data), "generation_blocks": generation,
                          "with_tool_turns": sum(any(m["role"] == "tool" or "tool_calls" in m for m in row["messages"])
                                                 for row in data)}
    assert sum("conversations" in m for m in manifest.values()) >= 8, manifest
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(json.dumps(manifest))


if __name__ == "__main__":
    main()
