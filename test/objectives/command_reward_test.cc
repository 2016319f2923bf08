// trainer/objectives/command_reward.h: a user program scores samples over JSONL. Scores come back in order; every way
// a program can fail (a line that is not a number, too few or too many lines, a non-zero exit, a signal, a hang,
// not reading its input) is a DataError naming the command and the problem, and never kills or hangs the caller.
#include "trainer/objectives/command_reward.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/errors.h"

namespace aligntrain::objectives {
namespace {

std::vector<nlohmann::json> samples(int n) {
  std::vector<nlohmann::json> out;
  for (int i = 0; i < n; ++i) {
    out.push_back({{"prompt", "sort " + std::to_string(i)}, {"completion", std::string(static_cast<size_t>(i), 'x')},
                   {"reference", "x"}});
  }
  return out;
}

// The DataError message of running `command` on `n` samples ("" if it did not throw one).
std::string error_of(const std::string& command, int n, double timeout = 20) {
  try {
    run_command_reward({command, timeout}, samples(n));
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

TEST(CommandReward, ScoresInOrderFromTheJsonLines) {
  const auto scores = run_command_reward(
      {"python3 -c \"import sys, json\nfor l in sys.stdin: j = json.loads(l); print(len(j['completion']) + "
       "(j['completion'] == j['reference']) / 2)\""},
      samples(5));
  EXPECT_EQ(scores, (std::vector<double>{0, 1.5, 2, 3, 4}));
}

TEST(CommandReward, EveryFieldReachesTheProgramAsUtf8) {
  std::vector<nlohmann::json> s = {{{"prompt", "é"}, {"completion", "日本"}, {"answer", 7}}};
  const auto scores = run_command_reward(
      {"python3 -c \"import sys, json\nj = json.loads(sys.stdin.buffer.read().decode('utf-8'))\n"
       "print(len(j['completion']) * 10 + j['answer'] + len(j['prompt']))\""},
      s);
  EXPECT_EQ(scores, (std::vector<double>{28}));
}

TEST(CommandReward, NoSamplesNoInput) {
  EXPECT_TRUE(run_command_reward({"cat"}, {}).empty());
}

TEST(CommandReward, GarbageNamesTheLine) {
  const auto e = error_of("echo 1; echo abc", 2);
  EXPECT_NE(e.find("reward command 'echo 1; echo abc'"), std::string::npos) << e;
  EXPECT_NE(e.find("line 2 of its output, 'abc', is not a finite JSON number"), std::string::npos) << e;
  EXPECT_NE(error_of("echo NaN", 1).find("'NaN', is not a finite JSON number"), std::string::npos);
  EXPECT_NE(error_of("echo 1e999", 1).find("is not a finite JSON number"), std::string::npos);
  EXPECT_NE(error_of("echo '\"3\"'", 1).find("is not a finite JSON number"), std::string::npos);
}

TEST(CommandReward, WrongNumberOfLines) {
  EXPECT_NE(error_of("echo 1", 2).find("printed 1 score(s) for 2 sample(s)"), std::string::npos);
  EXPECT_NE(error_of("printf '1\\n2\\n3\\n'", 2).find("printed more lines than the 2 sample(s)"), std::string::npos);
}

TEST(CommandReward, ExitStatusAndStandardError) {
  const auto e = error_of("cat > /dev/null; echo 'model not found' >&2; exit 4", 3);
  EXPECT_NE(e.find("exited with status 4"), std::string::npos) << e;
  EXPECT_NE(e.find("model not found"), std::string::npos) << e;
}

TEST(CommandReward, Crash) {
  const auto e = error_of("kill -SEGV $$", 2);
  EXPECT_NE(e.find("killed by signal 11"), std::string::npos) << e;
}

TEST(CommandReward, HangIsKilledAtTheTimeout) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto e = error_of("sleep 30 & sleep 30; echo 1", 1, 0.5);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(e.find("no answer within 0.5"), std::string::npos) << e;
  EXPECT_LT(s, 10.0);
}

TEST(CommandReward, ProgramThatDoesNotReadItsInput) {
  // 20,000 samples (far more than a pipe holds) and a program that never reads them: no deadlock, no SIGPIPE.
  auto many = samples(0);
  for (int i = 0; i < 20000; ++i) many.push_back({{"prompt", std::string(100, 'p')}, {"completion", "c"}});
  const auto scores = run_command_reward({"yes 0.25 | head -n 20000"}, many);
  ASSERT_EQ(scores.size(), 20000u);
  EXPECT_EQ(scores.back(), 0.25);
  // One that exits at once without reading or printing.
  EXPECT_NE(error_of("exit 0", 3).find("printed 0 score(s) for 3 sample(s)"), std::string::npos);
}

}  // namespace
}  // namespace aligntrain::objectives
