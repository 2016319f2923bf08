// See online_rewards.h.
#include "trainer/stages/online_rewards.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "trainer/objectives/command_reward.h"
#include "trainer/stages/reward_model.h"

namespace aligntrain::stages {

namespace {

nlohmann::json text_json(const data::Text& t) {
  if (!t.conversational) return t.text;
  auto list = nlohmann::json::array();
  for (const auto& m : t.messages) {
    if (m.json.is_null()) {
      list.push_back({{"role", m.role}, {"content", m.content}});
    } else {
      list.push_back(nlohmann::json(m.json));  // tool calls and tool results as the data line has them
    }
  }
  return list;
}

// What a command reward reads for one sample: the data line's fields, "prompt" as in the data, "completion" the
// sample (a string, or one assistant message for conversational prompts) and the line's own completion, if any,
// as "reference".
nlohmann::json command_input(const RewardSample& s) {
  auto obj = nlohmann::json::parse(s.example->raw, nullptr, /*allow_exceptions=*/false);
  if (!obj.is_object()) obj = nlohmann::json::object();
  if (obj.contains("completion")) obj["reference"] = obj["completion"];
  obj["prompt"] = text_json(s.example->prompt);
  if (s.example->prompt.conversational) {
    obj["completion"] = nlohmann::json::array({{{"role", "assistant"}, {"content", s.completion}}});
  } else {
    obj["completion"] = s.completion;
  }
  return obj;
}

}  // namespace

Rewards::Rewards(std::vector<config::RewardSpec> specs, std::string stage_name)
    : specs_(std::move(specs)), stage_(std::move(stage_name)), models_(specs_.size()) {
  std::map<std::string, int> count, seen;
  for (const auto& s : specs_) ++count[config::to_string(s.type)];
  for (size_t r = 0; r < specs_.size(); ++r) {
    const auto& s = specs_[r];
    const std::string type = config::to_string(s.type);
    names_.push_back("reward/" + type + (count[type] > 1 ? std::to_string(++seen[type]) : ""));
    if (s.type == config::RewardType::regex) {
      try {
        regexes_.emplace_back(s.pattern, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        throw UsageError("stage '" + stage_ + "': online.rewards[" + std::to_string(r) + "].pattern: not a valid "
                         "ECMAScript regular expression: " + e.what());
      }
    } else {
      regexes_.emplace_back();
    }
  }
}

void Rewards::check_examples(const std::vector<data::Example>& examples, const std::string& path) const {
  if (exact_match_index() < 0) return;
  for (const auto& ex : examples) {
    if (!ex.completion) {
      throw DataError(path + ":" + std::to_string(ex.line) + ": completion: missing field (the exact_match reward "
                      "compares samples with each example's reference completion)");
    }
  }
}

void Rewards::set_model(size_t r, std::shared_ptr<RewardModel> model) {
  if (specs_.at(r).type != config::RewardType::model)
    throw std::logic_error("Rewards::set_model: reward " + std::to_string(r) + " is not a model reward");
  models_[r] = std::move(model);
}

int Rewards::exact_match_index() const {
  for (size_t r = 0; r < specs_.size(); ++r)
    if (specs_[r].type == config::RewardType::exact_match) return static_cast<int>(r);
  return -1;
}

std::vector<double> Rewards::run_command(size_t r, const std::vector<RewardSample>& samples,
                                         runtime::Communicator& world) const {
  const auto n = static_cast<int64_t>(samples.size());
  // [ok, scores...] from rank 0; the message of a failure stays on rank 0, which throws it.
  auto buffer = at::zeros({n + 1}, at::kDouble);
  std::string error;
  if (world.rank() == 0) {
    try {
      std::vector<nlohmann::json> inputs;
      inputs.reserve(samples.size());
      for (const auto& s : samples) inputs.push_back(command_input(s));
      const auto scores = objectives::run_command_reward({specs_[r].command, specs_[r].timeout}, inputs);
      auto* p = buffer.data_ptr<double>();
      p[0] = 1;
      for (int64_t i = 0; i < n; ++i) p[i + 1] = scores[static_cast<size_t>(i)];
    } catch (const DataError& e) {
      error = e.what();
    }
  }
  world.broadcast(buffer, 0);
  const auto* p = buffer.data_ptr<double>();
  if (p[0] != 1) {
    if (world.rank() == 0) throw DataError("stage '" + stage_ + "': " + names_[r] + ": " + error);
    throw DataError("stage '" + stage_ + "': " + names_[r] + " failed on rank 0 (its message is in rank 0's output)");
  }
  return std::vector<double>(p + 1, p + 1 + n);
}

std::vector<std::vector<double>> Rewards::score(const std::vector<RewardSample>& samples,
                                                runtime::Communicator& world) const {
  std::vector<std::vector<double>> values(specs_.size());
  for (size_t r = 0; r < specs_.size(); ++r) {
    const auto& s = specs_[r];
    auto& v = values[r];
    if (s.type == config::RewardType::command) {
      v = run_command(r, samples, world);
      continue;
    }
    if (s.type == config::RewardType::model) {
      if (!models_[r]) throw std::logic_error("Rewards::score: reward model " + s.model + " is not loaded");
      std::vector<const data::Text*> prompts;
      std::vector<std::string> completions;
      for (const auto& x : samples) {
        prompts.push_back(&x.example->prompt);
        completions.push_back(x.completion);
      }
      v = models_[r]->score(prompts, completions, "stage '" + stage_ + "': " + names_[r]);
      continue;
    }
    v.reserve(samples.size());
    for (const auto& x : samples) {
      switch (s.type) {
        case config::RewardType::exact_match:
          v.push_back(data::exact_match(x.completion, *x.example) ? 1.0 : 0.0);
          break;
        case config::RewardType::regex:
          v.push_back(std::regex_search(x.completion, regexes_[r]) ? s.score : 0.0);
          break;
        case config::RewardType::length:
          v.push_back(-s.penalty * std::abs(static_cast<double>(x.tokens - s.target)));
          break;
        case config::RewardType::command:
        case config::RewardType::model: break;
      }
    }
  }
  return values;
}

std::vector<double> Rewards::total(const std::vector<std::vector<double>>& values) const {
  const size_t n = values.empty() ? 0 : values.front().size();
  std::vector<double> out(n, 0.0);
  for (size_t r = 0; r < specs_.size(); ++r)
    for (size_t i = 0; i < n; ++i) out[i] += specs_[r].weight * values[r][i];
  return out;
}

}  // namespace aligntrain::stages
