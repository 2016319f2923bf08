// A reward model as an online stage's reward (`{type: model, model: NAME}`): an HF <Family>ForSequenceClassification
// folder with one label (model/classifier_config.h), loaded like any model — the same loader and name table,
// sharded over the tensor-parallel group, frozen (no gradients, no optimizer state), in the recipe's frozen dtype —
// and scored as TRL 1.16's GRPOTrainer scores with a reward model (_calculate_rewards):
//   text    plain-text prompts: prompt + completion; conversational prompts: the reward model's chat template
//           applied to the prompt's messages + {"role": "assistant", "content": completion}, without a generation
//           prompt, with the stage's data.chat_template_kwargs (TRL's chat_template_kwargs; a data line's own
//           template variables are not passed, as TRL passes none)
//   tokens  the reward model's own tokenizer (it may differ from the policy's), add_special_tokens=False (no BOS
//           added: a chat template's BOS text is part of the text), no truncation
//   reward  logits[:, 0]: the score head at the last token that is not the reward tokenizer's pad token (its EOS
//           when it has no pad token, as TRL sets config.pad_token_id), as transformers pools
// Each data-parallel replica scores its contiguous share of the step's samples in micro-batches of `micro_batch`
// sequences under no_grad, and the scores are all-reduced over the data-parallel group.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/encode.h"
#include "data/example.h"
#include "data/tokenizer.h"
#include "trainer/runtime/communicators.h"
#include "trainer/stages/models.h"

namespace aligntrain::stages {

// Before any model is loaded: when `examples` has conversational prompts, the reward model `source` must have a chat
// template to render them with (UsageError naming the model, its folder and the first such example, PATH:LINE).
void check_reward_model_template(const ModelSource& source, const std::string& chat_template_kwargs,
                                 const std::vector<data::Example>& examples, const std::string& path);

class RewardModel {
 public:
  // `source`: a declared model whose folder holds a reward model (config.json checked again here: UsageError when
  // it is not a one-label sequence classifier; DataError naming the folder and the tensor for missing weights,
  // score.weight included). `chat_template_kwargs`: the stage's (a JSON object, or "").
  RewardModel(const ModelSource& source, runtime::Groups& groups, const at::Device& device, at::ScalarType dtype,
              const std::string& chat_template_kwargs, int64_t micro_batch);

  // The text the reward model reads for one sample (see above).
  std::string text_of(const data::Text& prompt, const std::string& completion) const;

  // The reward of each sample: every rank passes the same prompts and completions and gets every score. Collective
  // over the world (the tensor- and data-parallel groups). `label` names the reward in errors.
  std::vector<double> score(const std::vector<const data::Text*>& prompts, const std::vector<std::string>& completions,
                            const std::string& label);

  const std::string& name() const { return name_; }

 private:
  std::string name_;
  runtime::Groups& groups_;
  at::Device device_;
  std::unique_ptr<data::Tokenizer> tok_;
  std::unique_ptr<data::Encoder> encoder_;
  std::optional<int32_t> pad_;  // the id pooling skips (TRL: pad, else EOS)
  int64_t micro_;
  LoadedModel model_;
};

}  // namespace aligntrain::stages
