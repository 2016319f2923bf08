// Prepend / Replace / NFC / NFD / NFKC / NFKD normalizers and their Sequence (see tokenizer_normalizer.h).
#include "data/tokenizer_normalizer.h"

namespace aligntrain::data {

std::string replace_all(std::string_view text, std::string_view pattern, std::string_view content) {
  std::string out;
  out.reserve(text.size());
  std::size_t from = 0;
  for (std::size_t at = text.find(pattern); at != std::string_view::npos; at = text.find(pattern, from)) {
    out.append(text.substr(from, at - from));
    out.append(content);
    from = at + pattern.size();
  }
  out.append(text.substr(from));
  return out;
}

Normalizer::Normalizer(const JsonView& spec) {
  if (spec["type"].string() != "Sequence") {
    read_step(spec);
    return;
  }
  const JsonView steps = spec["normalizers"];
  for (std::size_t i = 0; i < steps.array().size(); ++i) {
    if (steps[i]["type"].string() == "Sequence") {
      Normalizer nested(steps[i]);
      steps_.insert(steps_.end(), nested.steps_.begin(), nested.steps_.end());
    } else {
      read_step(steps[i]);
    }
  }
}

void Normalizer::read_step(const JsonView& spec) {
  const JsonView type = spec["type"];
  const std::string kind = type.string();
  if (kind == "Prepend") {
    steps_.push_back({Kind::kPrepend, "", spec["prepend"].string()});
  } else if (kind == "Replace") {
    const JsonView pattern = spec["pattern"];
    if (!pattern.get("String")) {
      pattern.fail("only a {\"String\": ...} pattern is supported (Regex patterns are not)");
    }
    const std::string text = pattern["String"].string();
    if (text.empty()) pattern["String"].fail("an empty pattern is not supported");
    steps_.push_back({Kind::kReplace, text, spec["content"].string()});
  } else if (kind == "NFC" || kind == "NFD" || kind == "NFKC" || kind == "NFKD") {
    const UnicodeForm form = kind == "NFC"    ? UnicodeForm::kNfc
                             : kind == "NFD"  ? UnicodeForm::kNfd
                             : kind == "NFKC" ? UnicodeForm::kNfkc
                                              : UnicodeForm::kNfkd;
    steps_.push_back({Kind::kUnicode, "", "", form});
  } else {
    type.fail("unsupported normalizer '" + kind + "' (supported: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD)");
  }
}

std::string Normalizer::normalize(std::string_view text) const {
  std::string current(text);
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::kPrepend:
        if (!current.empty()) current.insert(0, step.content);
        break;
      case Kind::kReplace:
        current = replace_all(current, step.pattern, step.content);
        break;
      case Kind::kUnicode:
        current = unicode_normalize(current, step.form);
        break;
    }
  }
  return current;
}

}  // namespace aligntrain::data
