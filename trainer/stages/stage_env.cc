#include "trainer/stages/stage_env.h"

#include <ATen/ATen.h>

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
