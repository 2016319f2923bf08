// A stage's recipe fingerprint changes when its model's chat template TEXT changes, not only its name: a .jinja file
// named by the recipe, and (chat_template: auto) the template files of the model's own folder. A resumed run then
// refuses to continue on a checkpoint made with another template, naming the key.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config/recipe.h"
#include "trainer/checkpoint/fingerprint.h"

namespace aligntrain {
namespace {

namespace fs = std::filesystem;

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

class TemplateFingerprint : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = fs::path(tmp ? tmp : "/tmp") / ("template_fp_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    write(dir_ / "sft.jsonl", R"({"prompt": "a", "completion": "b"})" "\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  nlohmann::json fingerprint(const std::string& model_yaml) {
    write(dir_ / "recipe.yaml", "models:\n  base: " + model_yaml +
                                    "\nstages:\n  - {name: sft, kind: sft, policy: base, data: {train: sft.jsonl}}\n");
    const config::Recipe r = config::load_recipe((dir_ / "recipe.yaml").string(), {});
    return checkpoint::stage_fingerprint(r, r.stages[0]);
  }

  fs::path dir_;
};

TEST_F(TemplateFingerprint, AJinjaFilesTextIsInTheFingerprint) {
  write(dir_ / "t.jinja", "{% for m in messages %}{{ m.content }}{% endfor %}");
  const auto before = fingerprint("{init: {preset: tiny-llama}, chat_template: t.jinja}");
  EXPECT_EQ(before, fingerprint("{init: {preset: tiny-llama}, chat_template: t.jinja}"));
  write(dir_ / "t.jinja", "{% for m in messages %}{{ m.content }}\n{% endfor %}");
  const auto after = fingerprint("{init: {preset: tiny-llama}, chat_template: t.jinja}");
  const auto diff = checkpoint::fingerprint_difference(before, after);
  ASSERT_TRUE(diff);
  EXPECT_EQ(diff->rfind("models.base.chat_template (text): was ", 0), 0u) << *diff;
}

TEST_F(TemplateFingerprint, TheModelsOwnTemplateTextIsInTheFingerprint) {
  write(dir_ / "model/config.json", "{}");
  write(dir_ / "model/tokenizer_config.json", R"({"chat_template": "{{ messages[0].content }}"})");
  const auto before = fingerprint("{path: model}");
  write(dir_ / "model/chat_template.jinja", "{{ messages[0].content }}!");
  const auto diff = checkpoint::fingerprint_difference(before, fingerprint("{path: model}"));
  ASSERT_TRUE(diff);
  EXPECT_EQ(diff->rfind("models.base.chat_template (text): was ", 0), 0u) << *diff;
  // A built-in template: its name is the fingerprint.
  const auto chatml = fingerprint("{path: model, chat_template: chatml}");
  EXPECT_FALSE(chatml.contains("models.base.chat_template (text)"));
  EXPECT_EQ(chatml["models.base.chat_template"], "chatml");
}

}  // namespace
}  // namespace aligntrain
