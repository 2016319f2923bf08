// A model folder with only tokenizer.model (a SentencePiece BPE model, no tokenizer.json), tokenised as
// transformers' AutoTokenizer tokenises it: the model is read with libsentencepiece and turned into the
// SentencePiece-style BPE tokenizer that transformers builds from it for LlamaTokenizer (the class Llama 2,
// Mistral and TinyLlama folders name): the pieces as the vocabulary, merges generated from the pieces (every split
// of a piece into two pieces, ranked by the piece's id, then by the left part's length), byte_fallback and
// fuse_unk, a Metaspace pre-tokenizer (prepend_scheme "first", or "always" with `legacy: true`, or "never" with
// `add_prefix_space: false`), no normalizer, the Replace / ByteFallback / Fuse / Strip decoder, a
// TemplateProcessing post-processor from add_bos_token / add_eos_token (both false when absent, as in transformers
// 5), and control and user-defined pieces as added tokens. tokenizer_config.json must name the class
// (LlamaTokenizer or LlamaTokenizerFast); none, another class, or a Unigram model is an error naming the field or
// file.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "data/tokenizer.h"

namespace aligntrain::data {

// The tokenizer.json (as JSON) that transformers builds for `model_dir`'s tokenizer.model and
// tokenizer_config.json (if present). Throws std::runtime_error naming the file and field.
nlohmann::json sentencepiece_to_tokenizer_json(const std::string& model_dir);

// The tokenizer of that tokenizer.json (tokenizer_spm_bpe.h), with no special ids set.
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_dir);

}  // namespace aligntrain::data
