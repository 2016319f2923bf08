// See model_dir.h.
#include "trainer/cli/model_dir.h"

#include <filesystem>

#include "common/errors.h"

namespace aligntrain::cli {

ModelDir read_model_dir(const std::string& dir) {
  ModelDir out;
  out.config = model::load_model_config((std::filesystem::path(dir) / "config.json").string());
  out.tokenizer = data::load_tokenizer(dir);
  if (out.tokenizer->vocab_size() > out.config.vocab_size) {
    throw DataError(dir + ": tokenizer has " + std::to_string(out.tokenizer->vocab_size()) +
                    " tokens but config.json vocab_size is " + std::to_string(out.config.vocab_size));
  }
  return out;
}

stages::LoadedModel load_model_dir(const std::string& dir, const model::ModelConfig& config, runtime::Groups& groups,
                                   const at::Device& device) {
  stages::ModelSource source;
  source.name = dir;
  source.config = config;
  source.weights_dir = dir;
  source.tokenizer_dir = dir;
  return stages::load_model(source, groups, device, at::kFloat);
}

}  // namespace aligntrain::cli
