// A model directory as the commands that work on one (logprobs, generate) open it.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "data/tokenizer.h"
#include "trainer/model/model_config.h"
#include "trainer/runtime/communicators.h"
#include "trainer/stages/models.h"

namespace aligntrain::cli {

struct ModelDir {
  model::ModelConfig config;
  std::unique_ptr<data::Tokenizer> tokenizer;
};

// config.json and the tokenizer of `dir`; a DataError when the tokenizer does not fit the model's vocabulary.
ModelDir read_model_dir(const std::string& dir);

// The weights of `dir`, sharded over groups.tp, on `device` in fp32.
stages::LoadedModel load_model_dir(const std::string& dir, const model::ModelConfig& config, runtime::Groups& groups,
                                   const at::Device& device);

}  // namespace aligntrain::cli
