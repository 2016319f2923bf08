#!/usr/bin/env python3
"""Reference renderings of chat templates by transformers, for the parity test of aligntrain's Jinja engine.

    chat_template_reference.py TEMPLATES_DIR OUT.jsonl

Renders every TEMPLATES_DIR/*.jinja (our corpus in test/data/chat_templates, or the real templates TRL ships in
trl/chat_templates) with every conversation below through transformers' own machinery
(transformers.utils.chat_template_utils.render_jinja_template, as apply_chat_template calls it, with the template's
special tokens and extra keyword arguments), and writes one JSON line per rendering:

    {"template": "qwen3.jinja", "case": "tool_calls", "variables": {...}, "expected": "..."}
    {"template": ..., "variables": ..., "error": {"kind": "raise", "message": "..."}}    raise_exception(message)
    {"template": ..., "variables": ..., "error": {"kind": "error", "message": "..."}}    any other template error

`variables` is exactly what the template sees (messages after transformers' reasoning-field aliasing, tools,
documents, add_generation_prompt, special tokens, extra kwargs). For templates with {% generation %} blocks,
"generation_ranges" holds the [begin, end) *byte* offsets of the assistant text (transformers reports character
offsets; they are converted here). strftime_now is pinned to NOW (UTC) so that renderings are reproducible; the
C++ side renders with the same time and TZ=UTC.
"""

import copy
import datetime
import json
import os
import re
import sys

from transformers.utils import chat_template_utils as ctu

NOW = 1721995200  # 2024-07-26 12:00:00 UTC

SPECIAL_TOKENS = {
    "llama2.jinja": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "llama31.jinja": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "mistral_v03.jinja": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "qwen25.jinja": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "qwen3.jinja": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "gemma.jinja": {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"},
    "phi3.jinja": {"bos_token": "<s>", "eos_token": "<|endoftext|>"},
    "chatml_generation.jinja": {"eos_token": "<|im_end|>"},
    "tool_schema_macros.jinja": {"eos_token": "</s>"},
}

DEFAULT_SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.\nUse sparingly.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "description": "Forecast days"},
            },
            "required": ["city"],
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search_docs",
        "description": "Full-text search — returns ≤ 5 hits",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "filters": {
                    "type": "object",
                    "properties": {"lang": {"type": "string"}, "max_age_days": {"type": "number"}},
                    "required": ["lang"],
                },
                "tags": {"type": "array", "items": {"type": "string"}},
                "exact": {"type": "boolean"},
            },
            "required": ["query"],
        },
        "return": {"type": "array"},
    },
}
NO_PARAMS = {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}


def call(name, arguments, call_id="call00001"):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


def tool(text, call_id="call00001", name=None):
    message = {"role": "tool", "tool_call_id": call_id, "content": text}
    if name:
        message["name"] = name
    return message


# (case name, messages, tools, add_generation_prompt, extra kwargs)
CONVERSATIONS = [
    ("single_user_prompt", [u("Hello!")], None, True, {}),
    ("single_user_no_prompt", [u("Hello!")], None, False, {}),
    ("system_user_assistant", [s("You are terse."), u("What is 2+2?"), a("4")], None, False, {}),
    ("system_user_assistant_prompt", [s("You are terse."), u("What is 2+2?"), a("4"), u("And 3+3?")], None, True, {}),
    ("multi_turn", [u("Hi"), a("Hello! How can I help?"), u("Tell me a joke."), a("Why did the chicken cross the road?"),
                    u("Why?"), a("To get to the other side.")], None, False, {}),
    ("long_dialogue", [m for k in range(6) for m in (u(f"Question {k}: what is {k} squared?"), a(f"{k * k}"))],
     None, True, {}),
    ("whitespace_edges", [s("  padded system  \n"), u("\n  lots of space  \n\n"), a("  answer with spaces  "),
                          u("tabs\there\tand\r\nwindows newlines")], None, True, {}),
    ("unicode", [u("Ça va? 你好 🌍 — naïve café"), a("Très bien! 很好 👍"), u("ß ∑ ≤ ∞ \u2028 end")], None, True, {}),
    ("template_like_text", [u("Print {{ x }} and {% if %} literally, with 'quotes' and \"double\" and \\ backslash"),
                            a("Sure: {{ x }} {% raw %} }} {#")], None, False, {}),
    ("empty_system", [s(""), u("Hi"), a("Yo")], None, False, {}),
    ("tools_no_calls", [u("What's the weather in Paris?")], [WEATHER, SEARCH], True, {}),
    ("tool_call_dict_args", [u("Weather in Paris?"),
                             {"role": "assistant", "tool_calls": [call("get_weather", {"city": "Paris", "unit": "celsius"})]},
                             tool('{"temperature": 21.5, "sky": "clear"}'),
                             a("It is 21.5 °C and clear in Paris.")], [WEATHER], False, {}),
    ("tool_call_string_args", [s("Use tools when needed."), u("Weather in Oslo for 3 days?"),
                               {"role": "assistant", "content": "",
                                "tool_calls": [call("get_weather", '{"city": "Oslo", "days": 3}')]},
                               tool("rain, 4 °C"), a("Rainy and cold.")], [WEATHER], True, {}),
    ("tool_call_with_content", [u("Find docs about tokenizers in English"),
                                {"role": "assistant", "content": "Let me search.",
                                 "tool_calls": [call("search_docs", {"query": "tokenizers", "filters": {"lang": "en", "max_age_days": 30.0},
                                                                     "tags": ["nlp", "bpe"], "exact": False})]},
                                tool('[{"title": "BPE", "score": 0.93}]'), a("Found one: BPE.")], [SEARCH, WEATHER], False, {}),
    ("parallel_tool_calls", [u("Weather in Paris and Rome?"),
                             {"role": "assistant", "tool_calls": [call("get_weather", {"city": "Paris"}, "callParis"),
                                                                  call("get_weather", {"city": "Rome"}, "call0Rome")]},
                             tool("sunny", "callParis"), tool("cloudy", "call0Rome"),
                             a("Paris is sunny, Rome is cloudy.")], [WEATHER], True, {}),
    ("tool_then_followup", [u("Time?"), {"role": "assistant", "tool_calls": [call("now", {})]}, tool("12:00"),
                            a("It is noon."), u("Thanks! And the weather in Lima?")], [NO_PARAMS, WEATHER], True, {}),
    ("reasoning_content", [u("Is 17 prime?"), {"role": "assistant", "reasoning_content": "Check divisors up to 4.",
                                               "content": "Yes, 17 is prime."}], None, False, {}),
    ("inline_think", [u("Is 21 prime?"), a("<think>\n3 * 7 = 21\n</think>\n\nNo, 21 = 3 × 7."), u("And 23?")],
     None, True, {}),
    ("thinking_disabled", [u("Quick: capital of France?")], None, True, {"enable_thinking": False}),
    ("thinking_enabled", [u("Quick: capital of Peru?")], None, True, {"enable_thinking": True}),
    ("date_string", [s("Be helpful."), u("What day is it?")], None, True, {"date_string": "01 Jan 2025"}),
    ("tools_in_system", [u("Weather in Kyiv?")], [WEATHER], True, {"tools_in_user_message": False}),
    ("bad_alternation", [u("one"), u("two")], None, True, {}),
    ("assistant_first", [a("I start."), u("ok")], None, True, {}),
    ("system_only", [s("Only a system prompt.")], None, True, {}),
    ("empty_conversation", [], None, True, {}),
    ("unknown_role", [u("hi"), {"role": "critic", "content": "meh"}], None, False, {}),
    ("content_blocks", [u("plain"), a("ok"), {"role": "user", "content": [{"type": "text", "text": " from blocks "}]}],
     None, True, {}),
    ("extra_kwargs", [u("Hi")], None, True, {"custom_flag": True, "user_name": "Ada", "max_items": 3}),
]


def fixed_strftime_now(fmt):
    return datetime.datetime.fromtimestamp(NOW, tz=datetime.timezone.utc).strftime(fmt)


def byte_offsets(text, ranges):
    return [[len(text[:b].encode("utf-8")), len(text[:e].encode("utf-8"))] for b, e in ranges]


def main():
    templates_dir, out_path = sys.argv[1], sys.argv[2]
    names = sorted(n for n in os.listdir(templates_dir) if n.endswith(".jinja"))
    lines = []
    for name in names:
        with open(os.path.join(templates_dir, name), encoding="utf-8") as f:
            template = f.read()
        compiled = ctu._compile_jinja_template(template)
        compiled.environment.globals["strftime_now"] = fixed_strftime_now
        has_generation = re.search(r"\{\%-?\s*generation\s*-?\%\}", template) is not None  # transformers' test
        for case, messages, tools, add_generation_prompt, extra in CONVERSATIONS:
            kwargs = {**SPECIAL_TOKENS.get(name, DEFAULT_SPECIAL_TOKENS), **extra}
            # What the template sees: transformers' plain-data copy with reasoning fields aliased.
            seen_messages = ctu._alias_reasoning_fields(ctu._plain_template_data(copy.deepcopy(messages)))
            variables = {"messages": seen_messages, "tools": tools, "documents": None,
                         "add_generation_prompt": add_generation_prompt, **kwargs}
            record = {"template": name, "case": case, "variables": variables}
            try:
                rendered, generation = ctu.render_jinja_template(
                    conversations=[copy.deepcopy(messages)], tools=copy.deepcopy(tools), chat_template=template,
                    return_assistant_tokens_mask=has_generation, add_generation_prompt=add_generation_prompt,
                    **copy.deepcopy(kwargs))
                record["expected"] = rendered[0]
                if has_generation:
                    record["generation_ranges"] = byte_offsets(rendered[0], generation[0])
            except Exception as e:  # noqa: BLE001 - every template failure is a reference outcome
                raised = type(e).__name__ == "TemplateError"
                record["error"] = {"kind": "raise" if raised else "error", "message": str(e),
                                   "type": type(e).__name__}
            lines.append(json.dumps(record, ensure_ascii=False))
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines)} renderings of {len(names)} templates x {len(CONVERSATIONS)} conversations -> {out_path}")


if __name__ == "__main__":
    main()
