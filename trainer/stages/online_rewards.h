// The rewards of an online stage (config::RewardSpec): each scores every sample of a step, and a sample's reward is
// the weighted sum. Kinds:
//   exact_match  1 when the completion text equals the example's reference completion (both trimmed of surrounding
//                whitespace; the last message's content for conversational data), else 0
//   regex        `score` when the ECMAScript pattern occurs in the completion text, else 0
//   length       −penalty·|completion tokens − target| (the end-of-sequence token not counted)
//   command      a user program (objectives/command_reward.h), run on world rank 0 and its scores broadcast, so
//                a program with side effects or randomness runs once; its failure stops every rank with exit 3
//   model        a reward model (reward_model.h), attached with set_model once it is loaded; each data-parallel
//                replica scores its share of the samples
#pragma once

#include <cstdint>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "config/schema.h"
#include "data/example.h"
#include "trainer/runtime/communicator.h"

namespace aligntrain::stages {

class RewardModel;

struct RewardSample {
  const data::Example* example = nullptr;
  std::string completion;  // decoded text, special tokens left out
  int64_t tokens = 0;      // generated tokens, without the end-of-sequence token
};

class Rewards {
 public:
  // Throws UsageError for a reward that cannot work (a regex that does not compile).
  Rewards(std::vector<config::RewardSpec> specs, std::string stage_name);

  // Checks that the examples carry what the rewards read (exact_match: a completion); DataError with FILE:LINE.
  void check_examples(const std::vector<data::Example>& examples, const std::string& path) const;

  // values[r][i]: reward r (unweighted) of sample i. Collective over `world` (the host communicator): every rank
  // passes the same samples and gets the same values.
  std::vector<std::vector<double>> score(const std::vector<RewardSample>& samples, runtime::Communicator& world) const;

  // Σ_r weight_r · values[r][i].
  std::vector<double> total(const std::vector<std::vector<double>>& values) const;

  size_t size() const { return specs_.size(); }
  // Metric names "reward/<type>", with a 1-based suffix when a type occurs more than once.
  const std::vector<std::string>& names() const { return names_; }
  // The index of the exact_match reward, or −1.
  int exact_match_index() const;
  const config::RewardSpec& spec(size_t r) const { return specs_.at(r); }
  // Attaches the loaded reward model of reward `r` (of type model); score() needs one for every such reward.
  void set_model(size_t r, std::shared_ptr<RewardModel> model);

 private:
  std::vector<double> run_command(size_t r, const std::vector<RewardSample>& samples,
                                  runtime::Communicator& world) const;

  std::vector<config::RewardSpec> specs_;
  std::string stage_;
  std::vector<std::regex> regexes_;  // one per spec (unused for other types)
  std::vector<std::shared_ptr<RewardModel>> models_;  // one per spec (set for type model)
  std::vector<std::string> names_;
};

}  // namespace aligntrain::stages
