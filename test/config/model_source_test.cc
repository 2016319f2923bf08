// Recipe keys of issue 15: models.<name>.chat_template as a .jinja file (resolved against the recipe's folder),
// data.chat_template_kwargs (a YAML map kept with its types) and data.assistant_only_loss, and models by name
// (`org/name` found offline in a fake Hugging Face cache built here; a miss lists where it looked).
#include <gtest/gtest.h>

#include <cstdlib>

#include "common/hf_cache.h"
#include "config/recipe.h"
#include "test/config/test_util.h"

namespace aligntrain::config {
namespace {

using testing::edit;
using testing::HasError;
using testing::kBase;
using testing::write_file;
using ModelSource = testing::RecipeTest;

TEST_F(ModelSource, ChatTemplateFileResolvesAgainstTheRecipeFolder) {
  write_file(dir_ / "templates/mine.jinja", "{{ messages[0]['content'] }}");
  const Recipe r = load(edit("{init: {preset: tiny-llama}}", "{init: {preset: tiny-llama}, chat_template: templates/mine.jinja}"));
  EXPECT_EQ(r.models.find("base")->chat_template, (dir_ / "templates/mine.jinja").string());
  EXPECT_EQ(load(kBase).models.find("base")->chat_template, "auto");
  EXPECT_EQ(load(edit("{init: {preset: tiny-llama}}", "{init: {preset: tiny-llama}, chat_template: llama3}"))
                .models.find("base")->chat_template,
            "llama3");
}

TEST_F(ModelSource, ChatTemplateErrors) {
  EXPECT_TRUE(HasError(errors(edit("{init: {preset: tiny-llama}}", "{init: {preset: tiny-llama}, chat_template: chatmll}")),
                       {"recipe.yaml:2:", "models.base.chat_template", "expected auto, chatml, llama3, plain or a .jinja",
                        "chatml"}));
  EXPECT_TRUE(HasError(errors(edit("{init: {preset: tiny-llama}}", "{init: {preset: tiny-llama}, chat_template: no.jinja}")),
                       {"models.base.chat_template", "no such template file", "no.jinja"}));
}

TEST_F(ModelSource, ChatTemplateKwargsKeepTheirTypesAndRoundTrip) {
  const std::string text = edit("data: {train: data/sft.jsonl}",
                                "data: {train: data/sft.jsonl, assistant_only_loss: true, chat_template_kwargs: "
                                "{enable_thinking: false, n: 3, name: Ada, quoted: 'false', list: [1, x]}}");
  const Recipe r = load(text);
  EXPECT_TRUE(r.stages[0].data.assistant_only_loss);
  EXPECT_EQ(r.stages[0].data.chat_template_kwargs.json,
            R"({"enable_thinking":false,"n":3,"name":"Ada","quoted":"false","list":[1,"x"]})");
  // The resolved recipe reads back the same.
  const Recipe again = load_recipe(write(to_yaml(r), "resolved.yaml"), {});
  EXPECT_EQ(again.stages[0].data.chat_template_kwargs.json, r.stages[0].data.chat_template_kwargs.json);
  EXPECT_TRUE(HasError(errors(edit("data: {train: data/sft.jsonl}", "data: {train: data/sft.jsonl, chat_template_kwargs: 3}")),
                       {"chat_template_kwargs", "expected a map"}));
  EXPECT_TRUE(HasError(errors(edit("data: {train: data/pairs.jsonl}", "data: {train: data/pairs.jsonl, assistant_only_loss: true}")),
                       {"assistant_only_loss"}));
}

// A fake Hugging Face cache: models--org--name/refs/main and snapshots/<hash>/config.json.
class HfCache : public testing::RecipeTest {
 protected:
  void SetUp() override {
    RecipeTest::SetUp();
    cache_ = dir_ / "hf" / "hub";
    const auto repo = cache_ / "models--Org--Tiny-Model.v1";
    write_file(repo / "refs/main", "abc123\n");
    write_file(repo / "refs/v2", "def456");
    write_file(repo / "snapshots/abc123/config.json", "{}");
    write_file(repo / "snapshots/def456/config.json", "{}");
    setenv("HF_HOME", (dir_ / "hf").string().c_str(), 1);
    unsetenv("HF_HUB_CACHE");
  }
  void TearDown() override {
    unsetenv("HF_HOME");
    RecipeTest::TearDown();
  }
  std::filesystem::path cache_;
};

TEST_F(HfCache, FindsRefsAndRevisions) {
  EXPECT_TRUE(looks_like_repo_id("Qwen/Qwen2.5-0.5B-Instruct"));
  EXPECT_FALSE(looks_like_repo_id("models/a/b"));
  EXPECT_FALSE(looks_like_repo_id("../x"));
  EXPECT_FALSE(looks_like_repo_id("/abs/x"));
  const auto main = find_in_hf_cache("Org/Tiny-Model.v1", "");
  ASSERT_TRUE(main.snapshot);
  EXPECT_EQ(*main.snapshot, (cache_ / "models--Org--Tiny-Model.v1/snapshots/abc123").string());
  EXPECT_EQ(*find_in_hf_cache("Org/Tiny-Model.v1", "v2").snapshot,
            (cache_ / "models--Org--Tiny-Model.v1/snapshots/def456").string());
  EXPECT_EQ(*find_in_hf_cache("Org/Tiny-Model.v1", "def456").snapshot,
            (cache_ / "models--Org--Tiny-Model.v1/snapshots/def456").string());
  setenv("HF_HUB_CACHE", cache_.string().c_str(), 1);  // searched first
  EXPECT_TRUE(find_in_hf_cache("Org/Tiny-Model.v1", "").snapshot);
  EXPECT_EQ(find_in_hf_cache("Org/Missing", "").searched.front(),
            (cache_ / "models--Org--Missing/snapshots/main").string());
  unsetenv("HF_HUB_CACHE");
}

TEST_F(HfCache, RecipePathByNameAndMisses) {
  const std::string by_name = edit("base: {init: {preset: tiny-llama}}", "base: {path: Org/Tiny-Model.v1, revision: v2}");
  const Recipe r = load_recipe(write(by_name), {});
  // (validation checks the folder exists; config.json content is checked when the model loads)
  EXPECT_EQ(r.models.find("base")->path, (cache_ / "models--Org--Tiny-Model.v1/snapshots/def456").string());
  EXPECT_EQ(r.models.find("base")->tokenizer, r.models.find("base")->path);
  const auto miss = errors(edit("base: {init: {preset: tiny-llama}}", "base: {path: Org/Other}"));
  EXPECT_TRUE(HasError(miss, {"models.base.path", "`Org/Other` is neither a model folder nor in the Hugging Face cache",
                              (cache_ / "models--Org--Other/snapshots/main").string()}));
  // A local folder of that shape wins over the cache.
  write_file(dir_ / "Org/Tiny-Model.v1/config.json", "{}");
  EXPECT_EQ(load(edit("base: {init: {preset: tiny-llama}}", "base: {path: Org/Tiny-Model.v1}")).models.find("base")->path,
            (dir_ / "Org/Tiny-Model.v1").string());
}

}  // namespace
}  // namespace aligntrain::config
