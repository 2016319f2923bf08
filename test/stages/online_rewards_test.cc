// The rewards of online stages (trainer/stages/online_rewards.h): values of each kind, the weighted total, metric
// names, the check that exact_match data has reference completions, and a command reward's scores and failures
// reaching every caller (a group of one here; test/stages/online_errors_test.sh runs the failures end to end).
#include "trainer/stages/online_rewards.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "common/errors.h"
#include "trainer/runtime/communicator_self.h"

namespace aligntrain::stages {
namespace {

data::Example plain(const std::string& prompt, const std::string& completion, int64_t line = 1) {
  data::Example e;
  e.line = line;
  e.prompt.text = prompt;
  if (!completion.empty()) e.completion = data::Text{completion, {}, false};
  e.raw = "{\"prompt\": \"" + prompt + "\", \"completion\": \"" + completion + "\", \"id\": 7}";
  return e;
}

config::RewardSpec spec(config::RewardType t) {
  config::RewardSpec s;
  s.type = t;
  return s;
}

TEST(OnlineRewards, EachKindAndTheWeightedTotal) {
  auto em = spec(config::RewardType::exact_match);
  auto re = spec(config::RewardType::regex);
  re.pattern = "^1 2";
  re.score = 0.5;
  re.weight = 2.0;
  auto len = spec(config::RewardType::length);
  len.target = 3;
  len.penalty = 0.25;
  const Rewards rewards({em, re, len}, "s");
  const auto ex = plain("sort: 2 1\n", "1 2");
  runtime::SelfCommunicator world;
  const auto v = rewards.score({{&ex, "  1 2\n", 4}, {&ex, "1 2 3", 3}, {&ex, "2 1", 1}}, world);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0], (std::vector<double>{1, 0, 0}));        // surrounding whitespace ignored, nothing else
  EXPECT_EQ(v[1], (std::vector<double>{0, 0.5, 0}));      // "^1 2" does not match "  1 2"
  EXPECT_EQ(v[2], (std::vector<double>{-0.25, 0, -0.5}));  // −penalty·|tokens − target|
  EXPECT_EQ(rewards.total(v), (std::vector<double>{0.75, 1.0, -0.5}));
  EXPECT_EQ(rewards.names(), (std::vector<std::string>{"reward/exact_match", "reward/regex", "reward/length"}));
  EXPECT_EQ(rewards.exact_match_index(), 0);
}

TEST(OnlineRewards, ConversationalReferenceIsTheLastMessage) {
  data::Example ex;
  ex.prompt.conversational = true;
  ex.prompt.messages = {{"user", "sort 2 1"}};
  ex.completion = data::Text{"", {{"assistant", "1 2"}}, true};
  const Rewards rewards({spec(config::RewardType::exact_match)}, "s");
  runtime::SelfCommunicator world;
  EXPECT_EQ(rewards.score({{&ex, "1 2", 3}, {&ex, "1 3", 3}}, world)[0], (std::vector<double>{1, 0}));
}

TEST(OnlineRewards, RepeatedTypesGetNumberedNames) {
  auto a = spec(config::RewardType::regex);
  a.pattern = "a";
  auto b = a;
  b.pattern = "b";
  const Rewards rewards({a, b, spec(config::RewardType::length)}, "s");
  EXPECT_EQ(rewards.names(), (std::vector<std::string>{"reward/regex1", "reward/regex2", "reward/length"}));
  EXPECT_EQ(rewards.exact_match_index(), -1);
}

TEST(OnlineRewards, BadRegexIsAUsageError) {
  auto re = spec(config::RewardType::regex);
  re.pattern = "([";
  EXPECT_THROW(Rewards({re}, "s"), UsageError);
}

TEST(OnlineRewards, ExactMatchNeedsReferenceCompletions) {
  const Rewards rewards({spec(config::RewardType::exact_match)}, "s");
  const std::vector<data::Example> ok = {plain("p", "c")};
  EXPECT_NO_THROW(rewards.check_examples(ok, "f.jsonl"));
  const std::vector<data::Example> missing = {plain("p", "c", 1), plain("q", "", 9)};
  try {
    rewards.check_examples(missing, "f.jsonl");
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("f.jsonl:9: completion: missing field"), std::string::npos) << e.what();
  }
}

TEST(OnlineRewards, CommandSeesTheSampleAndTheDataFields) {
  const std::string script = ::testing::TempDir() + "/reward_fields.py";
  std::ofstream(script) << "import json, sys\n"
                           "for line in sys.stdin:\n"
                           "    j = json.loads(line)\n"
                           "    print(j['id'] + len(j['completion']) + (100 if j['reference'] == '1 2' else 0))\n";
  auto cmd = spec(config::RewardType::command);
  cmd.command = "python3 " + script;
  const Rewards rewards({cmd}, "s");
  const auto ex = plain("sort: 2 1", "1 2");
  runtime::SelfCommunicator world;
  EXPECT_EQ(rewards.score({{&ex, "abc", 3}, {&ex, "", 0}}, world)[0], (std::vector<double>{110, 107}));
  cmd.command = "echo oops >&2; exit 4";
  const Rewards failing({cmd}, "stage1");
  try {
    failing.score({{&ex, "abc", 3}}, world);
    FAIL() << "no error";
  } catch (const DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("stage 'stage1': reward/command: "), std::string::npos) << m;
    EXPECT_NE(m.find("exited with status 4"), std::string::npos) << m;
    EXPECT_NE(m.find("oops"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace aligntrain::stages

namespace aligntrain::stages {
namespace {

// A model reward is named like the others, and scoring without its loaded model (run_online attaches it once the
// stage's models load) or attaching a model to another reward type is a programming error, never a silent 0.
TEST(OnlineRewards, ModelRewardsNeedTheirLoadedModel) {
  auto rm = spec(config::RewardType::model);
  rm.model = "rm";
  Rewards rewards({rm, spec(config::RewardType::length), rm}, "s");
  EXPECT_EQ(rewards.names(), (std::vector<std::string>{"reward/model1", "reward/length", "reward/model2"}));
  EXPECT_THROW(rewards.set_model(1, nullptr), std::logic_error);
  const auto ex = plain("p", "c");
  runtime::SelfCommunicator world;
  EXPECT_THROW(rewards.score({{&ex, "c", 1}}, world), std::logic_error);
}

}  // namespace
}  // namespace aligntrain::stages
