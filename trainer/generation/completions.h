// Completions for JSONL examples: each example's prompt is rendered and tokenised as training would (plain text:
// BOS + prompt; conversational: the chat template up to the assistant turn's opening), decoded K times, and the
// output objects are the input objects plus "completion" (a string, or an assistant message list for
// conversational prompts) and, when K > 1, "sample": k (DESIGN.md §2, §4). Shared by `aligntrain generate`, the
// generate stage and the eval stage's exact-match accuracy.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/encode.h"
#include "data/example.h"
#include "data/tokenizer.h"
#include "trainer/generation/generator.h"
#include "trainer/model/transformer.h"
#include "trainer/runtime/communicators.h"

namespace aligntrain::generation {

struct Completion {
  size_t example = 0;  // index into the examples
  int sample = 0;
  std::string text;    // decoded, special tokens left out
  std::vector<int32_t> ids;  // generated token ids (without the end-of-sequence token)
  bool stopped = false;
};

// The stop tokens of a model: config.json's eos_token_id(s) and the tokenizer's EOS.
std::vector<int64_t> stop_ids(const model::ModelConfig& config, const data::Tokenizer& tokenizer);

// K completions of every example, ordered by example then sample. `options.eos_ids`, `pad_id` and `vocab_limit`
// are filled from the tokenizer and config when left empty/zero. Collective over the world (data- and
// tensor-parallel); every rank returns the same completions. Throws DataError for a prompt that tokenises to
// nothing.
std::vector<Completion> complete(model::CausalLM& lm, runtime::Groups& groups, const data::Tokenizer& tokenizer,
                                 const data::Encoder& encoder, const std::vector<data::Example>& examples,
                                 const std::string& data_path, int num_samples, GenerateOptions options,
                                 const at::Device& device, const std::string& what);

// The output object of one completion: the example's input object plus "completion" (and "sample" when K > 1;
// "completion_ids" with `with_ids`).
nlohmann::ordered_json output_object(const data::Example& example, const Completion& completion, int num_samples,
                                     bool with_ids = false);

// Writes the output objects as JSONL to `path` through a temporary file renamed into place (a crash never leaves
// a half-written file under the final name). Call on one rank.
void write_completions(const std::filesystem::path& path, const std::vector<data::Example>& examples,
                       const std::vector<Completion>& completions, int num_samples, bool with_ids = false);

}  // namespace aligntrain::generation
