// The tokenizer interface used by the data pipeline and the trainer, and the factory that loads the tokenizer of
// a model directory: a Hugging Face tokenizer.json (byte-level BPE: GPT-2, Llama-3, Qwen2 families) with its
// special tokens from tokenizer_config.json / generation_config.json, or aligntrain's byte-level tokenizer for
// the embedded tiny models (a directory whose aligntrain_tokenizer.json says {"type": "byte"}).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace aligntrain::data {

// The special tokens the trainer needs; each may be absent.
struct SpecialTokenIds {
  std::optional<int32_t> bos, eos, pad;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // The ids of `text`, with no BOS/EOS added. Special-token text in `text` (e.g. "<|im_end|>") becomes that
  // token's id, as with Hugging Face added tokens. Never fails on text that is not valid UTF-8 (see each
  // implementation for what it makes of it).
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;

  // The text of `ids`, always valid UTF-8 (byte runs that are not become U+FFFD); special tokens are left out
  // if `skip_special`. Throws std::out_of_range for an id that has no token.
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;

  // One more than the largest id: the embedding needs at least this many rows.
  virtual int vocab_size() const = 0;

  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual std::optional<std::string> id_to_token(int32_t id) const = 0;

  // `a` (and `b` for a pair, when not null) with the special tokens that Hugging Face's add_special_tokens=True
  // adds: those of a tokenizer.json's TemplateProcessing post-processor, or of a tokenizer.model folder's
  // add_bos_token / add_eos_token. The default adds none.
  virtual std::vector<int32_t> add_special_tokens(const std::vector<int32_t>& a,
                                                  const std::vector<int32_t>* b = nullptr) const {
    std::vector<int32_t> out = a;
    if (b) out.insert(out.end(), b->begin(), b->end());
    return out;
  }

  std::optional<int32_t> bos_id() const { return special_ids_.bos; }
  std::optional<int32_t> eos_id() const { return special_ids_.eos; }
  std::optional<int32_t> pad_id() const { return special_ids_.pad; }
  const SpecialTokenIds& special_ids() const { return special_ids_; }

  // Replaces the special ids; throws std::out_of_range for an id outside [0, vocab_size()).
  void set_special_ids(const SpecialTokenIds& ids);

 private:
  SpecialTokenIds special_ids_;
};

// Loads the tokenizer of a model directory:
//   - aligntrain_tokenizer.json {"type": "byte"}  -> the byte-level tokenizer (tokenizer_byte.h);
//   - otherwise tokenizer.json                    -> byte-level BPE (tokenizer_bpe.h) or, without a ByteLevel
//     decoder / pre-tokenizer, SentencePiece-style BPE (tokenizer_spm_bpe.h), with BOS/EOS/PAD from
//     tokenizer_config.json ("bos_token", ...: a token string or an AddedToken object {"content": ...}) and,
//     for any still unknown, generation_config.json ("bos_token_id", ...: an id, or a list whose first id is
//     taken).
// Throws DataError naming the file and the field for anything missing, malformed or unsupported.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir);

// Writes the byte-level tokenizer into `model_dir` (created if needed): aligntrain_tokenizer.json, and a
// tokenizer_config.json naming its special tokens and carrying the `plain` chat template.
void save_byte_tokenizer(const std::string& model_dir);

}  // namespace aligntrain::data
