// Metaspace / Split / Sequence pre-tokenization for SentencePiece-style BPE (see tokenizer_metaspace.h). The
// Split behaviors follow SplitDelimiterBehavior in the tokenizers library, including its handling of
// consecutive delimiters (the first merges with its neighbour, the next stands alone).
#include "data/tokenizer_metaspace.h"

#include <algorithm>

#include "data/tokenizer_normalizer.h"
#include "data/tokenizer_unicode.h"

namespace aligntrain::data {
namespace {

struct Span {
  std::size_t start, end;
  bool is_match;
};

// The text cut into the occurrences of `pattern` and the (non-empty) gaps between them, in order.
std::vector<Span> find_matches(std::string_view text, std::string_view pattern) {
  std::vector<Span> spans;
  std::size_t from = 0;
  for (std::size_t at = text.find(pattern); at != std::string_view::npos; at = text.find(pattern, from)) {
    if (at > from) spans.push_back({from, at, false});
    spans.push_back({at, at + pattern.size(), true});
    from = at + pattern.size();
  }
  if (from < text.size()) spans.push_back({from, text.size(), false});
  return spans;
}

bool is_one_character(std::string_view text) {
  if (text.empty() || !is_valid_utf8(text)) return false;
  std::size_t pos = 0;
  next_code_point(text, pos);
  return pos == text.size();
}

}  // namespace

MetaspacePreTokenizer::MetaspacePreTokenizer(const JsonView& spec) {
  if (spec["type"].string() != "Sequence") {
    read_step(spec);
    return;
  }
  const JsonView steps = spec["pretokenizers"];
  for (std::size_t i = 0; i < steps.array().size(); ++i) read_step(steps[i]);
}

void MetaspacePreTokenizer::read_step(const JsonView& spec) {
  const JsonView type = spec["type"];
  const std::string kind = type.string();
  Step step{};
  if (kind == "Metaspace") {
    step.kind = Kind::kMetaspace;
    step.pattern = spec["replacement"].string();
    if (!is_one_character(step.pattern)) spec["replacement"].fail("expected exactly one character");
    const auto scheme = spec.get("prepend_scheme");
    const std::string name = scheme ? scheme->string() : "always";
    if (name == "always") {
      step.prepend = Prepend::kAlways;
    } else if (name == "first") {
      step.prepend = Prepend::kFirst;
    } else if (name == "never") {
      step.prepend = Prepend::kNever;
    } else {
      scheme->fail("unknown prepend_scheme '" + name + "' (known: always, first, never)");
    }
    if (spec.get("add_prefix_space") && !spec["add_prefix_space"].boolean()) {
      if (step.prepend != Prepend::kNever) {
        spec["add_prefix_space"].fail("add_prefix_space false does not match prepend_scheme '" + name + "'");
      }
    }
    step.split = spec.boolean_or("split", true);
  } else if (kind == "Split") {
    step.kind = Kind::kSplit;
    const JsonView pattern = spec["pattern"];
    if (!pattern.get("String")) {
      pattern.fail("only a {\"String\": ...} pattern is supported here (Regex patterns need byte-level BPE)");
    }
    step.pattern = pattern["String"].string();
    if (step.pattern.empty()) pattern["String"].fail("an empty pattern is not supported");
    if (spec.boolean_or("invert", false)) spec["invert"].fail("inverted Split patterns are not supported");
    const std::string behavior = spec["behavior"].string();
    if (behavior == "Removed") {
      step.behavior = Behavior::kRemoved;
    } else if (behavior == "Isolated") {
      step.behavior = Behavior::kIsolated;
    } else if (behavior == "MergedWithPrevious") {
      step.behavior = Behavior::kMergedWithPrevious;
    } else if (behavior == "MergedWithNext") {
      step.behavior = Behavior::kMergedWithNext;
    } else {
      spec["behavior"].fail("unsupported Split behavior '" + behavior +
                            "' (supported: Removed, Isolated, MergedWithPrevious, MergedWithNext)");
    }
  } else {
    type.fail("unsupported pre-tokenizer '" + kind +
              "' for SentencePiece-style BPE (supported: null, Metaspace, Split with a String pattern, Sequence)");
  }
  steps_.push_back(std::move(step));
}

void MetaspacePreTokenizer::split_on(const std::string& text, std::string_view pattern, Behavior behavior,
                                     bool starts_input, std::vector<Piece>& out) {
  std::vector<Span> spans = find_matches(text, pattern);
  std::vector<Span> merged;
  switch (behavior) {
    case Behavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) merged.push_back(s);
      }
      break;
    case Behavior::kIsolated:
      merged = spans;
      break;
    case Behavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !merged.empty()) {
          merged.back().end = s.end;
        } else {
          merged.push_back(s);
        }
        previous_match = s.is_match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool next_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !next_match && !merged.empty()) {
          merged.back().start = it->start;
        } else {
          merged.push_back(*it);
        }
        next_match = it->is_match;
      }
      std::reverse(merged.begin(), merged.end());
      break;
    }
  }
  for (const Span& s : merged) {
    if (s.end > s.start) out.push_back({text.substr(s.start, s.end - s.start), starts_input && s.start == 0});
  }
}

void MetaspacePreTokenizer::apply(const Step& step, const Piece& piece, std::vector<Piece>& out) const {
  if (step.kind == Kind::kSplit) {
    split_on(piece.text, step.pattern, step.behavior, piece.starts_input, out);
    return;
  }
  std::string text = replace_all(piece.text, " ", step.pattern);
  const bool starts_with_replacement = text.compare(0, step.pattern.size(), step.pattern) == 0;
  if (!starts_with_replacement && (step.prepend == Prepend::kAlways ||
                                   (step.prepend == Prepend::kFirst && piece.starts_input))) {
    text.insert(0, step.pattern);
  }
  if (step.split) {
    split_on(text, step.pattern, Behavior::kMergedWithNext, piece.starts_input, out);
  } else if (!text.empty()) {
    out.push_back({std::move(text), piece.starts_input});
  }
}

void MetaspacePreTokenizer::split(std::string_view text, bool starts_input,
                                  const std::function<void(std::string_view)>& emit) const {
  if (text.empty()) return;
  std::vector<Piece> pieces{{std::string(text), starts_input}}, next;
  for (const Step& step : steps_) {
    next.clear();
    for (const Piece& piece : pieces) apply(step, piece, next);
    pieces.swap(next);
  }
  for (const Piece& piece : pieces) emit(piece.text);
}

}  // namespace aligntrain::data
