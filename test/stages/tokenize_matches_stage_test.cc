// `aligntrain tokenize` writes exactly what the sft and preference stages train on: the same ids and loss masks as
// stages::load_sft_data / load_pair_data for the same data, template (.jinja file), template variables (the stage's
// chat_template_kwargs and the lines' own), max_length and truncation, with every assistant turn or only the last,
// in input order (an example a stage drops is a "dropped" line).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "config/schema.h"
#include "data/tokenizer.h"
#include "test/util/mpi_test_main.h"
#include "trainer/cli/commands.h"
#include "trainer/stages/preference.h"
#include "trainer/stages/sft.h"

namespace aligntrain {
namespace {

namespace fs = std::filesystem;

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

std::vector<nlohmann::json> read_lines(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::vector<int> ints(const std::vector<int32_t>& v) { return {v.begin(), v.end()}; }
std::vector<int> ints(const std::vector<uint8_t>& v) { return {v.begin(), v.end()}; }

class TokenizeMatchesStage : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = fs::path(tmp ? tmp : "/tmp") / ("tokenize_stage_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    data::save_byte_tokenizer((dir_ / "model").string());
    write(dir_ / "t.jinja",
          "{{ bos_token }}{% for m in messages %}{% if m.role == 'assistant' %}>{% generation %}{{ m.content }}"
          "{{ eos_token }}{% endgeneration %}{% else %}[{{ m.role }}{% if who %} {{ who }}{% endif %}] {{ m.content }}\n"
          "{% endif %}{% endfor %}{% if add_generation_prompt %}>{% endif %}");
    std::string sft;
    for (int i = 0; i < 12; ++i) {
      sft += R"({"messages": [{"role": "user", "content": "question )" + std::to_string(i) +
             R"("}, {"role": "assistant", "content": "answer )" + std::string(static_cast<size_t>(i * 3), 'x') +
             R"("}, {"role": "user", "content": "more?"}, {"role": "assistant", "content": "no"}])" +
             (i % 3 == 0 ? R"(, "chat_template_kwargs": {"who": "Ada"})" : "") + "}\n";
    }
    write(dir_ / "sft.jsonl", sft);
    write(dir_ / "pairs.jsonl",
          R"({"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "good"}], )"
          R"("rejected": [{"role": "assistant", "content": "bad"}]})" "\n"
          R"({"prompt": "plain q", "chosen": "yes", "rejected": "no"})" "\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
};

TEST_F(TokenizeMatchesStage, Sft) {
  const auto tok = data::load_tokenizer((dir_ / "model").string());
  for (const bool every : {false, true}) {
    for (const auto truncate : {config::Truncate::right, config::Truncate::left}) {
      config::StageConfig stage;
      stage.kind = config::StageKind::sft;
      stage.batch.max_length = 60;
      stage.data.truncate = truncate;
      stage.data.assistant_only_loss = every;
      stage.data.chat_template_kwargs.json = R"({"who": "Bob"})";
      const auto trained = stages::load_sft_data((dir_ / "sft.jsonl").string(), stage, *tok,
                                                 (dir_ / "t.jinja").string(), (dir_ / "model").string());
      cli::TokenizeArgs args;
      args.model = (dir_ / "model").string();
      args.data = (dir_ / "sft.jsonl").string();
      args.out = (dir_ / "out.jsonl").string();
      args.chat_template = (dir_ / "t.jinja").string();
      args.chat_template_kwargs = stage.data.chat_template_kwargs.json;
      args.max_length = 60;
      args.truncate = truncate == config::Truncate::left ? "left" : "right";
      args.assistant_only_loss = every;
      ASSERT_EQ(cli::tokenize(aligntrain::testing::world(), args), 0);
      const auto lines = read_lines(dir_ / "out.jsonl");
      ASSERT_EQ(lines.size(), 12u);
      size_t k = 0;
      for (const auto& line : lines) {
        if (line.contains("dropped")) continue;
        ASSERT_LT(k, trained.examples.size());
        const auto& e = trained.examples[k++];
        EXPECT_EQ(line["input_ids"].get<std::vector<int>>(), ints(e.ids)) << line["index"];
        EXPECT_EQ(line["loss_mask"].get<std::vector<int>>(), ints(data::loss_mask_of(e))) << line["index"];
      }
      EXPECT_EQ(k, trained.examples.size()) << "every example the stage trains on is in tokenize's output";
      EXPECT_GT(trained.stats.truncated, 0);
    }
  }
}

TEST_F(TokenizeMatchesStage, Pairs) {
  const auto tok = data::load_tokenizer((dir_ / "model").string());
  config::StageConfig stage;
  stage.kind = config::StageKind::preference;
  const auto trained = stages::load_pair_data((dir_ / "pairs.jsonl").string(), stage, *tok,
                                              (dir_ / "t.jinja").string(), (dir_ / "model").string());
  cli::TokenizeArgs args;
  args.model = (dir_ / "model").string();
  args.data = (dir_ / "pairs.jsonl").string();
  args.out = (dir_ / "pairs_out.jsonl").string();
  args.chat_template = (dir_ / "t.jinja").string();
  args.max_length = stage.batch.max_length;
  ASSERT_EQ(cli::tokenize(aligntrain::testing::world(), args), 0);
  const auto lines = read_lines(dir_ / "pairs_out.jsonl");
  ASSERT_EQ(lines.size(), 2u);
  ASSERT_EQ(trained.items.size(), 4u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(lines[i]["chosen"]["input_ids"].get<std::vector<int>>(), ints(trained.items[2 * i].ids));
    EXPECT_EQ(lines[i]["rejected"]["input_ids"].get<std::vector<int>>(), ints(trained.items[2 * i + 1].ids));
    EXPECT_EQ(lines[i]["chosen"]["loss_mask"].get<std::vector<int>>(),
              ints(data::loss_mask_of(trained.items[2 * i])));
  }
  EXPECT_EQ(lines[1]["chosen"]["text"], "plain qyes");
}

}  // namespace
}  // namespace aligntrain
