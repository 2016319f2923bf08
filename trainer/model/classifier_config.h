// Reward models: Hugging Face `<Family>ForSequenceClassification` folders (LlamaForSequenceClassification,
// Qwen2ForSequenceClassification, and the Mistral and Qwen3 ones): the decoder of architectures.h without its LM
// head, plus `score.weight` [num_labels, hidden] (no bias) applied to the final hidden states. A reward model has
// num_labels 1 (TRL's reward models, whose reward is logits[:, 0]). This file reads and checks config.json only; the
// score head itself is in sequence_classifier.h.
#pragma once

#include <cstdint>
#include <string>

#include "trainer/model/model_config.h"

namespace aligntrain::model {

struct ClassifierConfig {
  ModelConfig decoder;     // the decoder's architecture, read as for a causal LM
  std::string hf_class;    // config.json "architectures"[0]
  int64_t num_labels = 2;  // len(id2label), else "num_labels", else transformers' default 2
};

// Reads `dir`/config.json as a sequence classifier. Throws DataError (exit code 3) for a missing or malformed
// config.json or an unsupported decoder field, and UsageError (exit code 2) when it is not a supported
// `<Family>ForSequenceClassification` (naming the class found) — a recipe that names the wrong folder.
ClassifierConfig load_classifier_config(const std::string& dir);

// load_classifier_config, and also a UsageError unless num_labels is 1 (a reward model's single score).
ClassifierConfig load_reward_model_config(const std::string& dir);

// "LlamaForSequenceClassification, MistralForSequenceClassification, ...": for error messages.
std::string classifier_class_names();

}  // namespace aligntrain::model
