#include "trainer/stages/stage_env.h"

#include <algorithm>
#include <map>

#include <ATen/ATen.h>

#include "trainer/model/logprobs.h"

namespace aligntrain::stages {

nlohmann::ordered_json summary_of(const config::StageConfig& stage, const TrainOutcome& o) {
  nlohmann::ordered_json s;
  s["kind"] = std::string(config::name_of(stage.kind));
  s["steps"] = o.steps;
  auto get = [](const StepMetrics& m, const std::string& key) -> nlohmann::json {
    for (const auto& [k, v] : m)
      if (k == key) return v;
    return nullptr;
  };
  auto eval = [&](const std::optional<StepMetrics>& m, const std::string& key) {
    return m ? get(*m, key) : nlohmann::json(nullptr);
  };
  s["train_loss_first"] = get(o.first, "loss");
  s["train_loss_last"] = get(o.last, "loss");
  s["eval_loss_before"] = eval(o.eval_first, "eval/loss");
  s["eval_loss_after"] = eval(o.eval_last, "eval/loss");
  s["eval_accuracy_before"] = eval(o.eval_first, "eval/rewards/accuracies");
  s["eval_accuracy_after"] = eval(o.eval_last, "eval/rewards/accuracies");
  s["seconds"] = o.seconds;
  return s;
}

nlohmann::ordered_json eval_summary(double loss, std::optional<double> accuracy, double seconds) {
  nlohmann::ordered_json s;
  s["kind"] = "eval";
  s["steps"] = nullptr;
  s["train_loss_first"] = nullptr;
  s["train_loss_last"] = nullptr;
  s["eval_loss_before"] = nullptr;
  s["eval_loss_after"] = loss;
  if (accuracy) s["eval_accuracy_after"] = *accuracy;
  s["seconds"] = seconds;
  return s;
}

data::Truncate truncate_of(config::Truncate t) {
  switch (t) {
    case config::Truncate::left: return data::Truncate::kLeft;
    case config::Truncate::drop: return data::Truncate::kDrop;
    case config::Truncate::right: return data::Truncate::kRight;
  }
  return data::Truncate::kRight;
}

ModelBatch model_batch(const data::Batch& b, const at::Device& device) {
  auto as_tensor = [&](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).view({b.rows, b.length}).to(device); };
  ModelBatch out;
  out.input.input_ids = as_tensor(b.input_ids);
  if (b.tokens < b.rows * b.length) out.input.attention_mask = as_tensor(b.attention_mask);
  if (b.packed) {
    out.input.position_ids = as_tensor(b.position_ids);
    out.input.segment_ids = as_tensor(b.segment_ids);
  }
  out.loss_mask = as_tensor(b.loss_mask);
  out.labels = model::shift_labels(out.input.input_ids, out.loss_mask);
  return out;
}

void share_prefixes(ModelBatch& mb, const std::vector<const data::Encoded*>& rows, const std::vector<int64_t>& group) {
  const size_t n = rows.size();
  std::vector<int64_t> source(n), length(n, 0);
  std::map<int64_t, size_t> first;  // group key → its first row
  int64_t shared = 0;
  for (size_t r = 0; r < n; ++r) {
    const auto [it, fresh] = first.emplace(group.at(r), r);
    source[r] = static_cast<int64_t>(it->second);
    if (fresh) continue;
    const auto& a = rows[it->second]->ids;
    const auto& b = rows[r]->ids;
    const auto stop = std::mismatch(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(std::min(a.size(), b.size())), b.begin());
    length[r] = stop.first - a.begin();
    shared += length[r];
  }
  if (shared == 0) return;
  mb.input.shared_prefix = model::ForwardInput::SharedPrefix{at::tensor(source, at::kLong), at::tensor(length, at::kLong)};
}

data::CollateOptions collate_options(const data::Tokenizer& tok, const config::StageConfig& stage) {
  data::CollateOptions c;
  c.pad_id = tok.pad_id().value_or(tok.eos_id().value_or(0));
  c.train_on_prompt = stage.data.train_on_prompt;
  return c;
}

at::ScalarType policy_dtype(const config::Recipe& recipe) {
  return recipe.run.precision == config::Precision::bf16 ? at::kBFloat16 : at::kFloat;
}

at::ScalarType frozen_dtype(const config::Recipe& recipe, const std::string& name) {
  if (const config::ModelSpec* spec = recipe.models.find(name); spec && spec->dtype) {
    return *spec->dtype == config::Precision::bf16 ? at::kBFloat16 : at::kFloat;
  }
  return policy_dtype(recipe);
}

}  // namespace aligntrain::stages
