// See reward_model.h.
#include "trainer/stages/reward_model.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "common/errors.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/sequence_classifier.h"
#include "trainer/parallel/layers.h"
#include "trainer/runtime/host_sync.h"

namespace aligntrain::stages {

namespace {

// The classifier's decoder with its score head, sharded over groups.tp, loaded through the name table, frozen.
LoadedModel load_classifier(const ModelSource& source, runtime::Groups& groups, const at::Device& device,
                            at::ScalarType dtype) {
  const model::ClassifierConfig config = model::load_reward_model_config(source.weights_dir);
  LoadedModel out;
  out.factory = parallel::tensor_parallel_layer_factory(*groups.tp);
  out.lm = std::make_shared<model::CausalLM>(model::classifier_decoder_config(config), *out.factory);
  model::add_score_head(*out.lm, config.num_labels);
  model::load_hf_weights(*out.lm, source.weights_dir, groups.layout.tp_rank, groups.layout.tp);
  out.lm->to(device, dtype);
  out.lm->parameter_set().set_trainable([](const model::Parameter&) { return true; }, false);
  out.lm->eval();
  return out;
}

}  // namespace

void check_reward_model_template(const ModelSource& source, const std::string& chat_template_kwargs,
                                 const std::vector<data::Example>& examples, const std::string& path) {
  const auto it = std::find_if(examples.begin(), examples.end(),
                               [](const data::Example& ex) { return ex.prompt.conversational; });
  if (it == examples.end()) return;
  const auto tok = data::load_tokenizer(source.tokenizer_dir);
  data::EncodeOptions eo;
  eo.chat_template_kwargs = chat_template_kwargs;
  const data::Encoder encoder(*tok, source.chat_template, source.weights_dir, eo);
  std::vector<data::Message> messages = it->prompt.messages;
  messages.push_back({"assistant", ""});
  try {
    (void)encoder.render_conversation(messages);
  } catch (const UsageError& e) {
    throw UsageError(path + ":" + std::to_string(it->line) + ": the prompts are conversations, which reward model `" +
                     source.name + "` scores through its chat template: " + e.what());
  }
}

RewardModel::RewardModel(const ModelSource& source, runtime::Groups& groups, const at::Device& device,
                         at::ScalarType dtype, const std::string& chat_template_kwargs, int64_t micro_batch)
    : name_(source.name), groups_(groups), device_(device), micro_(std::max<int64_t>(1, micro_batch)) {
  tok_ = data::load_tokenizer(source.tokenizer_dir);
  data::EncodeOptions eo;
  eo.chat_template_kwargs = chat_template_kwargs;
  encoder_ = std::make_unique<data::Encoder>(*tok_, source.chat_template, source.weights_dir, eo);
  pad_ = tok_->pad_id() ? tok_->pad_id() : tok_->eos_id();
  model_ = load_classifier(source, groups, device, dtype);
}

std::string RewardModel::text_of(const data::Text& prompt, const std::string& completion) const {
  if (!prompt.conversational) return prompt.text + completion;
  std::vector<data::Message> messages = prompt.messages;
  messages.push_back({"assistant", completion});
  return encoder_->render_conversation(messages);
}

std::vector<double> RewardModel::score(const std::vector<const data::Text*>& prompts,
                                       const std::vector<std::string>& completions, const std::string& label) {
  const auto n = static_cast<int64_t>(prompts.size());
  const int64_t dp = groups_.layout.dp, rank = groups_.layout.dp_rank;
  const int64_t lo = n * rank / dp, hi = n * (rank + 1) / dp;  // this replica's share
  auto scores = at::zeros({n}, at::kDouble);
  at::NoGradGuard no_grad;
  for (int64_t begin = lo; begin < hi; begin += micro_) {
    const int64_t end = std::min(hi, begin + micro_);
    std::vector<std::vector<int32_t>> rows;
    size_t width = 0;
    for (int64_t i = begin; i < end; ++i) {
      rows.push_back(tok_->encode(text_of(*prompts[static_cast<size_t>(i)], completions[static_cast<size_t>(i)])));
      if (rows.back().empty()) {
        throw DataError(label + ": sample " + std::to_string(i) + " (prompt and completion) is empty for reward "
                        "model `" + name_ + "`, which has nothing to score");
      }
      width = std::max(width, rows.back().size());
    }
    const auto b = static_cast<int64_t>(rows.size()), t = static_cast<int64_t>(width);
    // Right padding, as TRL pads the reward model's inputs; the mask keeps the padding out of the forward.
    std::vector<int64_t> ids(static_cast<size_t>(b * t), pad_.value_or(0)), mask(static_cast<size_t>(b * t), 0),
        pooled;
    bool padded = false;
    for (int64_t r = 0; r < b; ++r) {
      const auto& row = rows[static_cast<size_t>(r)];
      for (size_t k = 0; k < row.size(); ++k) {
        ids[static_cast<size_t>(r * t) + k] = row[k];
        mask[static_cast<size_t>(r * t) + k] = 1;
      }
      padded = padded || static_cast<int64_t>(row.size()) < t;
      pooled.push_back(model::pooled_position(row, pad_));
    }
    model::ForwardInput in;
    in.input_ids = at::tensor(ids, at::kLong).view({b, t}).to(device_);
    if (padded) in.attention_mask = at::tensor(mask, at::kLong).view({b, t}).to(device_);
    const at::Tensor s = model::classifier_scores(*model_.lm, in, at::tensor(pooled, at::kLong));
    scores.narrow(0, begin, b).copy_(runtime::to_host(s.select(1, 0).to(at::kDouble)));
  }
  auto all = scores.to(device_);
  groups_.dp->all_reduce(all, runtime::ReduceOp::kSum);
  all = runtime::to_host(all).contiguous();
  const double* p = all.data_ptr<double>();
  return std::vector<double>(p, p + n);
}

}  // namespace aligntrain::stages
