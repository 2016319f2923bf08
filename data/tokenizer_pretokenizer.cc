// Split / ByteLevel pre-tokenization (see tokenizer_pretokenizer.h), following the tokenizers library: each step
// splits every piece the previous step produced, and ByteLevel's prefix space goes in front of each piece that
// does not already start with a space.
#include "data/tokenizer_pretokenizer.h"

#include <stdexcept>
#include <string>

namespace aligntrain::data {
namespace {

constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace

PreTokenizer::PreTokenizer(const JsonView& spec) {
  const std::string type = spec["type"].string();
  if (type == "ByteLevel") {
    read_byte_level(spec);
    return;
  }
  if (type != "Sequence") {
    spec["type"].fail("unsupported pre-tokenizer '" + type + "' (supported: ByteLevel, Sequence of Split + ByteLevel)");
  }
  const JsonView steps = spec["pretokenizers"];
  const std::size_t count = steps.array().size();
  if (count == 0 || steps[count - 1]["type"].string() != "ByteLevel") {
    steps.fail("a Sequence pre-tokenizer must end with ByteLevel (byte-level BPE)");
  }
  for (std::size_t i = 0; i + 1 < count; ++i) {
    const JsonView step = steps[i];
    if (step["type"].string() != "Split") {
      step["type"].fail("unsupported step '" + step["type"].string() + "' (supported: Split, then ByteLevel)");
    }
    splits_.push_back(read_split(step));
  }
  read_byte_level(steps[count - 1]);
}

void PreTokenizer::read_byte_level(const JsonView& spec) {
  add_prefix_space_ = spec["add_prefix_space"].boolean();
  if (spec.boolean_or("use_regex", true)) byte_level_regex_.emplace(kGpt2Pattern);
}

Regex PreTokenizer::read_split(const JsonView& spec) {
  if (spec["behavior"].string() != "Isolated") {
    spec["behavior"].fail("unsupported Split behavior '" + spec["behavior"].string() + "' (supported: Isolated)");
  }
  if (spec["invert"].boolean()) spec["invert"].fail("inverted Split patterns are not supported");
  const JsonView pattern = spec["pattern"];
  const bool literal = static_cast<bool>(pattern.get("String"));
  const JsonView text = literal ? pattern["String"] : pattern["Regex"];
  try {
    return Regex(text.string(), literal ? Regex::Syntax::kLiteral : Regex::Syntax::kOniguruma);
  } catch (const std::invalid_argument& e) {
    text.fail(e.what());
  }
}

void PreTokenizer::split(std::string_view text, const std::function<void(std::string_view)>& emit) const {
  if (text.empty()) return;
  std::vector<std::string_view> pieces{text}, next;
  for (const Regex& regex : splits_) {
    next.clear();
    for (std::string_view piece : pieces) regex.split_isolated(piece, next);
    pieces.swap(next);
  }
  std::string prefixed;
  for (std::string_view piece : pieces) {
    if (add_prefix_space_ && piece.front() != ' ') {
      prefixed = " ";
      prefixed += piece;
      piece = prefixed;
    }
    if (!byte_level_regex_) {
      emit(piece);
      continue;
    }
    next.clear();
    byte_level_regex_->split_isolated(piece, next);
    for (std::string_view word : next) emit(word);
  }
}

}  // namespace aligntrain::data
