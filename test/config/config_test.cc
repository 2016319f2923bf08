// Example recipes, round trips, defaults, --set overrides and the run-time checks.
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "config/resolve.h"

#include "test/config/test_util.h"

namespace aligntrain::config::testing {
namespace {

// ---- every example recipe loads, validates and round-trips ----

class ExampleRecipe : public ::testing::TestWithParam<const char*> {};

TEST_P(ExampleRecipe, LoadsAndRoundTrips) {
  const std::string path = repo_file(std::string("config/recipes/") + GetParam());
  Recipe recipe;
  ASSERT_NO_THROW(recipe = load_recipe(path)) << path;
  ASSERT_FALSE(recipe.stages.empty());

  // The resolved YAML, loaded again from another folder, gives an equal Recipe and the same text.
  const std::string yaml = to_yaml(recipe);
  const fs::path copy = temp_root() / (std::string("aligntrain_roundtrip_") + GetParam());
  write_file(copy, yaml);
  Recipe again;
  try {
    again = load_recipe(copy.string());
  } catch (const RecipeError& e) {
    FAIL() << e.what() << "\n" << yaml;
  }
  fs::remove(copy);
  EXPECT_TRUE(recipe == again) << yaml;
  // The first line names the recipe file, which differs; everything after it must be identical.
  const auto body = [](const std::string& text) { return text.substr(text.find('\n')); };
  EXPECT_EQ(body(to_yaml(again)), body(yaml));
}

INSTANTIATE_TEST_SUITE_P(All, ExampleRecipe, ::testing::Values("demo.yaml", "sft.yaml", "sft_dpo.yaml", "distill.yaml", "select_sft.yaml"),
                         [](const auto& info) {
                           std::string name = info.param;
                           return name.substr(0, name.find('.'));
                         });

TEST(ExampleRecipes, EveryYamlFileInTheFolderIsTested) {
  const fs::path folder = fs::path(repo_file("config/recipes/demo.yaml")).parent_path();
  int count = 0;
  for (const auto& entry : fs::directory_iterator(folder)) count += entry.path().extension() == ".yaml";
  EXPECT_EQ(count, 5) << "add new recipes to the ExampleRecipe list";
}

// ---- defaults and resolution ----

using Resolved = RecipeTest;

TEST_F(Resolved, DefaultsAreFilledAndPathsAbsolute) {
  const Recipe r = load(kBase);
  EXPECT_EQ(r.run.name, "recipe");
  EXPECT_EQ(r.run.output_dir, (dir_ / "runs/recipe").string());
  EXPECT_EQ(r.stages[0].data.train, (dir_ / "data/sft.jsonl").string());
  EXPECT_EQ(r.stages[0].loss.type, std::vector<LossType>{LossType::sft});
  EXPECT_EQ(r.stages[0].loss.weights, std::vector<double>{1.0});
  EXPECT_EQ(r.stages[0].optimizer.lr, 2e-5);  // sft default
  EXPECT_EQ(r.stages[1].optimizer.lr, 1e-6);  // preference default
  EXPECT_EQ(r.stages[0].train.epochs, 1);
  EXPECT_FALSE(r.stages[0].train.steps);
  EXPECT_EQ(r.models.find("base")->tokenizer, "byte");
  EXPECT_EQ(r.models.find("base")->dtype, Precision::fp32);
  EXPECT_EQ(r.stages[0].batch.max_prompt_length, 512);  // half of the default max_length 1024
  EXPECT_EQ(r.stages[1].reference->model, "sft");
  EXPECT_FALSE(r.stages[1].reference->precompute);
}

TEST_F(Resolved, BetaDefaultFollowsTheMethod) {
  const Recipe simpo = load(edit("    reference: sft\n", "", edit("type: dpo, beta: 0.1", "type: simpo")));
  EXPECT_EQ(simpo.stages[1].loss.beta, 2.0);
  const Recipe dpo = load(edit("type: dpo, beta: 0.1", "type: dpo"));
  EXPECT_EQ(dpo.stages[1].loss.beta, 0.1);
  const Recipe preference_default = load(edit("    loss: {type: dpo, beta: 0.1}\n", ""));
  EXPECT_EQ(preference_default.stages[1].loss.type, std::vector<LossType>{LossType::dpo});
}

// Stages read β through resolved_beta, which has no default of its own: SimPO's is 2.0 (not the DPO family's 0.1), a
// mix takes its first β-using type's, a β-less stage has none (NaN), and an unresolved β is an error, not 0.1.
TEST_F(Resolved, ResolvedBetaIsTheResolvedValueAndNothingElse) {
  const Recipe simpo = load(edit("    reference: sft\n", "", edit("type: dpo, beta: 0.1", "type: simpo")));
  EXPECT_EQ(resolved_beta(simpo.stages[1].loss), 2.0);
  EXPECT_EQ(resolved_beta(load(edit("type: dpo, beta: 0.1", "type: [sft, simpo, dpo]")).stages[1].loss), 2.0);
  EXPECT_EQ(resolved_beta(load(edit("type: dpo, beta: 0.1", "type: [dpo, simpo]")).stages[1].loss), 0.1);
  EXPECT_EQ(resolved_beta(load(edit("beta: 0.1", "beta: 0.25")).stages[1].loss), 0.25);
  const Recipe orpo = load(edit("    reference: sft\n", "", edit("type: dpo, beta: 0.1", "type: orpo")));
  EXPECT_FALSE(orpo.stages[1].loss.beta);
  EXPECT_TRUE(std::isnan(resolved_beta(orpo.stages[1].loss)));
  EXPECT_TRUE(std::isnan(resolved_beta(load(kBase).stages[0].loss)));  // sft

  LossConfig unresolved;
  unresolved.type = {LossType::simpo};
  EXPECT_THROW(resolved_beta(unresolved), std::logic_error);
  unresolved.beta = 3.0;
  EXPECT_EQ(resolved_beta(unresolved), 3.0);
}

TEST_F(Resolved, PromptLengthDefaultFollowsMaxLength) {
  const Recipe r = load(edit("    data: {train: data/sft.jsonl}\n",
                             "    data: {train: data/sft.jsonl}\n    batch: {max_length: 128}\n"));
  EXPECT_EQ(r.stages[0].batch.max_prompt_length, 64);
}

TEST_F(Resolved, ResolvedYamlShowsOnlyWhatApplies) {
  const std::string yaml = to_yaml(load(kBase));
  EXPECT_NE(yaml.find("beta: 0.1"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("lr: 2e-05"), std::string::npos) << yaml;
  EXPECT_EQ(yaml.find("cpo_alpha"), std::string::npos) << yaml;   // not a dpo parameter
  EXPECT_EQ(yaml.find("generation"), std::string::npos) << yaml;  // not a generate stage
}

TEST_F(Resolved, LoadFromStringUsesTheVirtualPath) {
  const Recipe r = load_recipe_from_string(kBase, (dir_ / "virtual.yaml").string());
  EXPECT_EQ(r.run.name, "virtual");
  EXPECT_EQ(r.folder, dir_.string());
  try {
    load_recipe_from_string("stages: 3\n", "inline.yaml");
    FAIL();
  } catch (const RecipeError& e) {
    EXPECT_TRUE(HasError(e.diagnostics(), {"inline.yaml:1:9", "stages", "expected a list of stages"}));
  }
}

TEST_F(Resolved, EqualityNoticesAChange) {
  const Recipe a = load(kBase);
  Recipe b = load(kBase);
  EXPECT_TRUE(a == b);
  b.stages[1].loss.beta = 0.2;
  EXPECT_FALSE(a == b);
  b = a;
  b.models.items[0].second.init->num_layers = 3;
  EXPECT_FALSE(a == b);
}

TEST_F(Resolved, StagesMayReadAnEarlierGenerateStagesOutput) {
  const std::string text = std::string(kBase) +
                           "  - name: gen\n    kind: generate\n    policy: dpo\n    data: {train: data/prompts.jsonl}\n"
                           "    generation: {num_samples: 4, temperature: 0.7}\n"
                           "  - name: neg\n    kind: negatives\n    policy: dpo\n    reference: sft\n"
                           "    data: {train: data/pairs.jsonl, samples: gen}\n";
  const Recipe r = load(text);
  EXPECT_EQ(r.stages[3].data.samples, "gen");
  EXPECT_EQ(r.stages[3].data.num_samples, 4);
  EXPECT_EQ(r.stages[2].generation.out, (dir_ / "runs/recipe/gen/generations.jsonl").string());
  EXPECT_EQ(r.stages[2].generation.seed, 1234);
  EXPECT_EQ(r.stages[3].loss.type, std::vector<LossType>{LossType::d2o});
}

TEST_F(Resolved, BracketsInsideQuotesAreNotNesting) {
  const std::string deep_text(100, '[');
  const Recipe r = load(std::string("run: {output_dir: \"") + deep_text + "\"}\n" + kBase);
  EXPECT_NE(r.run.output_dir.find(deep_text), std::string::npos);
}

// ---- --set ----

using Overrides = RecipeTest;

TEST_F(Overrides, StageByName) {
  const Recipe r = load(kBase, {"stages.dpo.loss.beta=0.05"});
  EXPECT_EQ(r.stages[1].loss.beta, 0.05);
}

TEST_F(Overrides, StageByIndexBothSpellings) {
  EXPECT_EQ(load(kBase, {"stages.1.loss.beta=0.2"}).stages[1].loss.beta, 0.2);
  EXPECT_EQ(load(kBase, {"stages[1].loss.beta=0.3"}).stages[1].loss.beta, 0.3);
}

TEST_F(Overrides, FlowValues) {
  const Recipe r = load(kBase, {"stages.dpo.loss.type=[dpo, sft]", "stages.dpo.loss.weights=[1, 0.5]",
                                "stages.dpo.reference={model: sft, precompute: true}"});
  EXPECT_EQ(r.stages[1].loss.type, (std::vector<LossType>{LossType::dpo, LossType::sft}));
  EXPECT_EQ(r.stages[1].loss.weights, (std::vector<double>{1.0, 0.5}));
  EXPECT_TRUE(r.stages[1].reference->precompute);
}

TEST_F(Overrides, CreatesMissingMapsAndLaterOverridesWin) {
  const Recipe r = load(kBase, {"stages.sft.optimizer.lr=1e-3", "run.seed=7", "run.seed=8"});
  EXPECT_EQ(r.stages[0].optimizer.lr, 1e-3);
  EXPECT_EQ(r.run.seed, 8);
}

TEST_F(Overrides, RelativePathsResolveAgainstTheCurrentFolder) {
  const Recipe r = load(kBase, {"run.output_dir=out/x"});
  EXPECT_EQ(r.run.output_dir, (fs::current_path() / "out/x").lexically_normal().string());
}

TEST_F(Overrides, NullUnsetsAnOptional) {
  const Recipe r = load(edit("type: dpo, beta: 0.1", "type: simpo"), {"stages.dpo.reference="});
  EXPECT_FALSE(r.stages[1].reference);
}

TEST_F(Overrides, DeeplyNestedValueIsRejected) {
  try {
    load(kBase, {"run.seed=" + std::string(100000, '[')});
    FAIL();
  } catch (const RecipeError& e) {
    EXPECT_TRUE(HasError(e.diagnostics(), {"--set run.seed=[[[", "nested deeper than 64"})) << e.what();
  }
  try {
    load(kBase, {"run.seed=" + std::string(100, '[') + std::string(100, ']')});
    FAIL();
  } catch (const RecipeError& e) {
    EXPECT_TRUE(HasError(e.diagnostics(), {"--set run.seed=[[[", "nested deeper than 64"})) << e.what();
  }
}

// ---- run-time checks ----

using RunTime = RecipeTest;

TEST_F(RunTime, WorldSize) {
  const Recipe r = load(edit("    data: {train: data/sft.jsonl}\n",
                             "    data: {train: data/sft.jsonl}\n    batch: {global: 32, micro: 8}\n",
                             std::string("parallel: {tensor: 2}\n") + kBase));
  EXPECT_TRUE(check_world(r, 2).empty());  // dp 1
  EXPECT_TRUE(check_world(r, 8).empty());  // dp 4: 8 × 4 = 32
  EXPECT_TRUE(HasError(check_world(r, 3), {"recipe.yaml:1:20", "parallel.tensor", "must divide the world size (3)"}));
  EXPECT_TRUE(HasError(check_world(r, 16), {"recipe.yaml:9:21", "stages.sft.batch.global", "8 × 8 = 64"}));
}

TEST(ModelDims, EachSplitDimensionMustDivide) {
  EXPECT_TRUE(check_model_dims(2, 8, 2, 256, 512).empty());
  const Diagnostics ds = check_model_dims(4, 8, 2, 256, 258);
  ASSERT_EQ(ds.size(), 2u);
  EXPECT_EQ(format(ds[0]), "num_key_value_heads: num_key_value_heads (2) is not divisible by parallel.tensor (4)");
  EXPECT_EQ(ds[1].path, "vocab_size");
}

// ---- formatting ----

TEST(Format, Diagnostic) {
  EXPECT_EQ(format(Diagnostic{"recipe.yaml", 12, 5, "stages.dpo.loss.bta", "unknown key (did you mean `beta`?)"}),
            "recipe.yaml:12:5: stages.dpo.loss.bta: unknown key (did you mean `beta`?)");
  EXPECT_EQ(format(Diagnostic{"--set a=b", 0, 0, "a", "bad"}), "--set a=b: a: bad");
  EXPECT_EQ(format(Diagnostic{"recipe.yaml", 0, 0, "", "the recipe is empty"}), "recipe.yaml: the recipe is empty");
}

}  // namespace
}  // namespace aligntrain::config::testing
