// Replace / ByteFallback / Fuse / Strip / Metaspace decoders and their Sequence (see tokenizer_decoder.h).
#include "data/tokenizer_decoder.h"

#include <optional>

#include "data/tokenizer_normalizer.h"
#include "data/tokenizer_unicode.h"

namespace aligntrain::data {
namespace {

const char* const kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

std::optional<int> hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return std::nullopt;
}

// The byte of a "<0xNN>" token (Rust's u8::from_str_radix(NN, 16), which also takes "+N"), or nullopt.
std::optional<uint8_t> fallback_byte(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return std::nullopt;
  if (token[3] == '+') {
    const auto low = hex_digit(token[4]);
    return low ? std::optional<uint8_t>(static_cast<uint8_t>(*low)) : std::nullopt;
  }
  const auto high = hex_digit(token[3]), low = hex_digit(token[4]);
  if (!high || !low) return std::nullopt;
  return static_cast<uint8_t>(*high * 16 + *low);
}

std::vector<std::string> characters(const std::string& text) {
  std::vector<std::string> out;
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t start = pos;
    next_code_point(text, pos);
    out.push_back(text.substr(start, pos - start));
  }
  return out;
}

std::string one_character(const JsonView& value) {
  const std::string text = value.string();
  if (text.empty() || !is_valid_utf8(text) || characters(text).size() != 1) value.fail("expected one character");
  return text;
}

std::size_t count(const JsonView& value) {
  if (value.integer() < 0) value.fail("expected a count >= 0");
  return static_cast<std::size_t>(value.integer());
}

}  // namespace

Decoder::Decoder(const JsonView& spec) : null_(false) {
  if (spec["type"].string() != "Sequence") {
    read_step(spec);
    return;
  }
  const JsonView steps = spec["decoders"];
  for (std::size_t i = 0; i < steps.array().size(); ++i) {
    if (steps[i]["type"].string() == "Sequence") {
      const Decoder nested(steps[i]);
      steps_.insert(steps_.end(), nested.steps_.begin(), nested.steps_.end());
    } else {
      read_step(steps[i]);
    }
  }
}

void Decoder::read_step(const JsonView& spec) {
  const JsonView type = spec["type"];
  const std::string kind = type.string();
  Step step{};
  if (kind == "Replace") {
    step.kind = Kind::kReplace;
    const JsonView pattern = spec["pattern"];
    if (!pattern.get("String")) pattern.fail("only a {\"String\": ...} pattern is supported (Regex patterns are not)");
    step.pattern = pattern["String"].string();
    if (step.pattern.empty()) pattern["String"].fail("an empty pattern is not supported");
    step.content = spec["content"].string();
  } else if (kind == "ByteFallback") {
    step.kind = Kind::kByteFallback;
  } else if (kind == "Fuse") {
    step.kind = Kind::kFuse;
  } else if (kind == "Strip") {
    step.kind = Kind::kStrip;
    step.pattern = one_character(spec["content"]);
    step.start = count(spec["start"]);
    step.stop = count(spec["stop"]);
  } else if (kind == "Metaspace") {
    step.kind = Kind::kMetaspace;
    step.pattern = one_character(spec["replacement"]);
    const auto scheme = spec.get("prepend_scheme");
    const std::string name = scheme ? scheme->string() : "always";
    if (name != "always" && name != "first" && name != "never") {
      scheme->fail("unknown prepend_scheme '" + name + "' (known: always, first, never)");
    }
    const bool add_prefix_space = spec.boolean_or("add_prefix_space", true);
    if (!add_prefix_space && name != "never") {
      spec["add_prefix_space"].fail("add_prefix_space false does not match prepend_scheme '" + name + "'");
    }
    step.drop_first_replacement = add_prefix_space && name != "never";
  } else {
    type.fail("unsupported decoder '" + kind +
              "' for SentencePiece-style BPE (supported: null, Sequence, Replace, ByteFallback, Fuse, Strip, "
              "Metaspace)");
  }
  steps_.push_back(std::move(step));
}

void Decoder::apply(const Step& step, std::vector<std::string>& tokens) {
  switch (step.kind) {
    case Kind::kReplace:
      for (std::string& token : tokens) token = replace_all(token, step.pattern, step.content);
      break;
    case Kind::kByteFallback: {
      std::vector<std::string> out;
      std::string bytes;
      std::size_t byte_tokens = 0;
      const auto flush = [&] {
        if (byte_tokens == 0) return;
        if (is_valid_utf8(bytes)) {
          out.push_back(bytes);
        } else {
          for (std::size_t i = 0; i < byte_tokens; ++i) out.emplace_back(kReplacementCharacter);
        }
        bytes.clear();
        byte_tokens = 0;
      };
      for (std::string& token : tokens) {
        if (const auto byte = fallback_byte(token)) {
          bytes += static_cast<char>(*byte);
          ++byte_tokens;
        } else {
          flush();
          out.push_back(std::move(token));
        }
      }
      flush();
      tokens.swap(out);
      break;
    }
    case Kind::kFuse: {
      std::string fused;
      for (const std::string& token : tokens) fused += token;
      tokens.assign(1, fused);
      break;
    }
    case Kind::kStrip:
      for (std::string& token : tokens) {
        const std::vector<std::string> chars = characters(token);
        std::size_t start = 0, stop = chars.size();
        while (start < step.start && start < chars.size() && chars[start] == step.pattern) ++start;
        while (chars.size() - stop < step.stop && stop > start && chars[stop - 1] == step.pattern) --stop;
        std::string stripped;
        for (std::size_t i = start; i < stop; ++i) stripped += chars[i];
        token = stripped;
      }
      break;
    case Kind::kMetaspace:
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        tokens[i] = replace_all(tokens[i], step.pattern, i == 0 && step.drop_first_replacement ? "" : " ");
      }
      break;
  }
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
  std::string text;
  if (null_) {
    for (std::size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
    return text;
  }
  for (const Step& step : steps_) apply(step, tokens);
  for (const std::string& token : tokens) text += token;
  return text;
}

}  // namespace aligntrain::data
