// TemplateProcessing (see tokenizer_post_processor.h).
#include "data/tokenizer_post_processor.h"

#include <string>

namespace aligntrain::data {

PostProcessor::PostProcessor(const JsonView& spec, int vocab_size) {
  const std::string type = spec["type"].string();
  if (type == "ByteLevel") return;
  if (type != "TemplateProcessing") {
    spec["type"].fail("unsupported post-processor '" + type + "' (supported: null, TemplateProcessing, ByteLevel)");
  }
  templated_ = true;
  single_ = read_template(spec["single"], spec["special_tokens"], vocab_size);
  pair_ = read_template(spec["pair"], spec["special_tokens"], vocab_size);
}

std::vector<PostProcessor::Piece> PostProcessor::read_template(const JsonView& pieces, const JsonView& special_tokens,
                                                               int vocab_size) {
  std::vector<Piece> out;
  for (std::size_t i = 0; i < pieces.array().size(); ++i) {
    const JsonView piece = pieces[i];
    Piece read;
    if (const auto sequence = piece.get("Sequence")) {
      const std::string id = (*sequence)["id"].string();
      if (id != "A" && id != "B") (*sequence)["id"].fail("expected \"A\" or \"B\", got \"" + id + "\"");
      read.sequence = id == "A" ? 0 : 1;
    } else if (const auto special = piece.get("SpecialToken")) {
      const std::string name = (*special)["id"].string();
      const auto entry = special_tokens.get(name);
      if (!entry) special_tokens.fail("no entry for the template's special token '" + name + "'");
      const JsonView ids = (*entry)["ids"];
      for (std::size_t k = 0; k < ids.array().size(); ++k) {
        const int64_t id = ids[k].integer();
        if (id < 0 || id >= vocab_size) ids[k].fail("id " + std::to_string(id) + " is outside the vocabulary");
        read.ids.push_back(static_cast<int32_t>(id));
      }
    } else {
      piece.fail("expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
    out.push_back(std::move(read));
  }
  return out;
}

std::vector<int32_t> PostProcessor::apply(const std::vector<int32_t>& a, const std::vector<int32_t>* b) const {
  std::vector<int32_t> out;
  if (!templated_) {
    out = a;
    if (b) out.insert(out.end(), b->begin(), b->end());
    return out;
  }
  for (const Piece& piece : b ? pair_ : single_) {
    if (piece.sequence < 0) {
      out.insert(out.end(), piece.ids.begin(), piece.ids.end());
    } else {
      const std::vector<int32_t>& seq = piece.sequence == 0 ? a : *b;
      out.insert(out.end(), seq.begin(), seq.end());
    }
  }
  return out;
}

}  // namespace aligntrain::data
