// Broken recipes: each must fail with a diagnostic naming file:line (or the --set) and the key path.
#include "test/config/test_util.h"

namespace aligntrain::config::testing {
namespace {

using Broken = RecipeTest;

// ---- the file itself ----

TEST_F(Broken, EmptyFile) {
  EXPECT_TRUE(HasError(errors(""), {"recipe.yaml", "the recipe is empty"}));
}

TEST_F(Broken, CommentsOnly) {
  EXPECT_TRUE(HasError(errors("# nothing here\n"), {"recipe.yaml", "the recipe is empty"}));
}

TEST_F(Broken, NotYaml) {
  EXPECT_TRUE(HasError(errors("run: {seed: [1, 2}\n"), {"recipe.yaml:1:", "not valid YAML"}));
}

TEST_F(Broken, TopLevelList) {
  EXPECT_TRUE(HasError(errors("- run\n- stages\n"), {"recipe.yaml:1:1", "top level must be a map", "got a list"}));
}

TEST_F(Broken, TopLevelScalar) {
  EXPECT_TRUE(HasError(errors("just text\n"), {"recipe.yaml:1:1", "top level must be a map"}));
}

TEST_F(Broken, SeveralDocuments) {
  EXPECT_TRUE(HasError(errors(std::string(kBase) + "---\nrun: {seed: 1}\n"), {"recipe.yaml:14", "another YAML document"}));
}

TEST_F(Broken, LoneCommaDoesNotHang) {  // yaml-cpp 0.7's LoadAll loops forever on this
  EXPECT_TRUE(HasError(errors(","), {"recipe.yaml", "the recipe is empty"}));
}

TEST_F(Broken, DeepNestingIsRejectedBeforeParsing) {
  EXPECT_TRUE(HasError(errors("run: " + std::string(1000, '[') + "\n"), {"recipe.yaml", "nesting deeper than 64"}));
}

TEST_F(Broken, MissingFile) {
  try {
    load_recipe((dir_ / "nope.yaml").string());
    FAIL() << "loaded a missing file";
  } catch (const RecipeError& e) {
    EXPECT_TRUE(HasError(e.diagnostics(), {"nope.yaml", "cannot read the recipe file"}));
  }
}

TEST_F(Broken, MissingStages) {
  EXPECT_TRUE(HasError(errors("run: {seed: 1}\n"), {"recipe.yaml:1:1", "stages", "missing required key `stages`"}));
}

TEST_F(Broken, EmptyStageList) {
  EXPECT_TRUE(HasError(errors("stages: []\n"), {"recipe.yaml:1:9", "stages", "at least one stage"}));
}

// ---- keys ----

TEST_F(Broken, UnknownTopLevelKey) {
  EXPECT_TRUE(HasError(errors(std::string("runn: {seed: 1}\n") + kBase),
                       {"recipe.yaml:1:1", "runn", "unknown key (did you mean `run`?)"}));
}

TEST_F(Broken, MisspelledLossKeySuggestsNearest) {
  EXPECT_TRUE(HasError(errors(edit("beta: 0.1", "bta: 0.1")),
                       {"recipe.yaml:13:23", "stages.dpo.loss.bta", "unknown key (did you mean `beta`?)"}));
}

TEST_F(Broken, UnknownKeyFarFromAnyListsValidKeys) {
  EXPECT_TRUE(HasError(errors(std::string("run: {zzzzzzzz: 1}\n") + kBase),
                       {"recipe.yaml:1:7", "run.zzzzzzzz", "unknown key; valid keys: name, output_dir, seed"}));
}

TEST_F(Broken, DuplicateKey) {
  EXPECT_TRUE(HasError(errors(edit("    kind: sft\n", "    kind: sft\n    kind: sft\n")),
                       {"recipe.yaml:6:5", "stages.sft.kind", "duplicate key (first at line 5)"}));
}

TEST_F(Broken, DuplicateModelName) {
  EXPECT_TRUE(HasError(errors(edit("  base: {init: {preset: tiny-llama}}\n",
                                   "  base: {init: {preset: tiny-llama}}\n  base: {init: {preset: x}}\n")),
                       {"recipe.yaml:3:3", "models.base", "duplicate key"}));
}

TEST_F(Broken, KeyThatDoesNotApplyToTheStageKind) {
  const std::string text = std::string(kBase) +
                           "  - name: ev\n    kind: eval\n    policy: dpo\n    data: {eval: data/sft.jsonl}\n"
                           "    optimizer: {lr: 1.0e-3}\n";
  EXPECT_TRUE(HasError(errors(text), {"recipe.yaml:18:5", "stages.ev.optimizer", "does not apply to eval stages"}));
}

TEST_F(Broken, LossParameterOfAnotherMethod) {
  EXPECT_TRUE(HasError(errors(edit("beta: 0.1}", "beta: 0.1, cpo_alpha: 0.5}")),
                       {"recipe.yaml:13:", "stages.dpo.loss.cpo_alpha", "no effect with loss type dpo",
                        "used by loss type cpo"}));
}

TEST_F(Broken, MissingStageKind) {
  EXPECT_TRUE(HasError(errors(edit("    kind: sft\n", "")), {"recipe.yaml:4:", "stages.sft.kind", "missing required key"}));
}

TEST_F(Broken, NonScalarKey) {
  EXPECT_TRUE(HasError(errors(std::string("? [a, b]\n: 1\n") + kBase), {"recipe.yaml:1:", "a key must be a plain name"}));
}

TEST_F(Broken, StageNameWithDot) {
  EXPECT_TRUE(HasError(errors(edit("name: sft", "name: s.ft")), {"recipe.yaml:4:11", "stages[0].name", "must be a name"}));
}

// ---- types and values ----

TEST_F(Broken, WrongTypeForInteger) {
  EXPECT_TRUE(HasError(errors(std::string("run: {seed: abc}\n") + kBase),
                       {"recipe.yaml:1:13", "run.seed", "expected an integer, got `abc`"}));
}

TEST_F(Broken, FractionForInteger) {
  EXPECT_TRUE(HasError(errors(std::string("parallel: {tensor: 1.5}\n") + kBase),
                       {"recipe.yaml:1:20", "parallel.tensor", "expected an integer"}));
}

TEST_F(Broken, MapWhereAStringBelongs) {
  EXPECT_TRUE(HasError(errors(edit("policy: base", "policy: {name: base}")),
                       {"recipe.yaml:6:13", "stages.sft.policy", "expected a string, got a map"}));
}

TEST_F(Broken, YesIsNotABoolean) {
  EXPECT_TRUE(HasError(errors(std::string("parallel: {zero1: yes}\n") + kBase),
                       {"recipe.yaml:1:19", "parallel.zero1", "expected true or false"}));
}

TEST_F(Broken, MissingValue) {
  EXPECT_TRUE(HasError(errors(std::string("run:\n  seed:\n") + kBase),
                       {"recipe.yaml:2:3", "run.seed", "missing value (expected an integer)"}));
}

TEST_F(Broken, BadEnumValue) {
  EXPECT_TRUE(HasError(errors(std::string("run: {device: gpu}\n") + kBase),
                       {"recipe.yaml:1:15", "run.device", "expected one of: auto, cpu, cuda", "did you mean `cpu`?"}));
}

TEST_F(Broken, BadStageKindReportsOnlyThat) {
  const Diagnostics ds = errors(edit("kind: preference", "kind: preferance"));
  EXPECT_TRUE(HasError(ds, {"recipe.yaml:9:11", "stages.dpo.kind", "did you mean `preference`?"}));
  EXPECT_EQ(ds.size(), 1u) << format(ds);  // no follow-on errors judged against a kind we could not read
}

TEST_F(Broken, BadLossType) {
  EXPECT_TRUE(HasError(errors(edit("type: dpo", "type: dpoo")),
                       {"recipe.yaml:13:18", "stages.dpo.loss.type", "did you mean `dpo`?"}));
}

TEST_F(Broken, BetasNeedTwoNumbers) {
  EXPECT_TRUE(HasError(errors(edit("    data: {train: data/sft.jsonl}\n",
                                   "    data: {train: data/sft.jsonl}\n    optimizer: {betas: [0.9]}\n")),
                       {"recipe.yaml:8:", "stages.sft.optimizer.betas", "a list of two numbers"}));
}

// ---- ranges ----

TEST_F(Broken, NegativeLearningRate) {
  EXPECT_TRUE(HasError(errors(edit("    data: {train: data/sft.jsonl}\n",
                                   "    data: {train: data/sft.jsonl}\n    optimizer: {lr: -1.0e-3}\n")),
                       {"recipe.yaml:8:21", "stages.sft.optimizer.lr", "must be > 0 (got -0.001)"}));
}

TEST_F(Broken, BetaMustBePositive) {
  EXPECT_TRUE(HasError(errors(edit("beta: 0.1", "beta: 0")),
                       {"recipe.yaml:13:29", "stages.dpo.loss.beta", "must be > 0 (got 0)"}));
}

TEST_F(Broken, LabelSmoothingBelowOneHalf) {
  EXPECT_TRUE(HasError(errors(edit("type: dpo, beta: 0.1", "type: cdpo, label_smoothing: 0.5")),
                       {"recipe.yaml:13:", "stages.dpo.loss.label_smoothing", "must be in [0, 0.5) (got 0.5)"}));
}

TEST_F(Broken, MicroBatchMustBePositive) {
  EXPECT_TRUE(HasError(errors(edit("    data: {train: data/sft.jsonl}\n",
                                   "    data: {train: data/sft.jsonl}\n    batch: {micro: 0}\n")),
                       {"recipe.yaml:8:", "stages.sft.batch.micro", "must be > 0"}));
}

TEST_F(Broken, NotANumber) {
  EXPECT_TRUE(HasError(errors(edit("beta: 0.1", "beta: .nan")), {"recipe.yaml:13:", "stages.dpo.loss.beta", "expected a number"}));
}

// ---- references between models and stages ----

TEST_F(Broken, UnknownModel) {
  EXPECT_TRUE(HasError(errors(edit("policy: base", "policy: bsae")),
                       {"recipe.yaml:6:13", "stages.sft.policy", "unknown model or stage `bsae` (did you mean `base`?)"}));
}

TEST_F(Broken, ForwardReference) {
  EXPECT_TRUE(HasError(errors(edit("policy: base", "policy: dpo")),
                       {"recipe.yaml:6:13", "stages.sft.policy", "`dpo` is a later stage"}));
}

TEST_F(Broken, SelfReference) {
  EXPECT_TRUE(HasError(errors(edit("reference: sft", "reference: dpo")),
                       {"recipe.yaml:11:16", "stages.dpo.reference", "`dpo` is this stage itself"}));
}

TEST_F(Broken, DuplicateStageNames) {
  EXPECT_TRUE(HasError(errors(edit("name: dpo", "name: sft")),
                       {"recipe.yaml:8:11", "stages.sft.name", "duplicate stage name `sft`", "line 4"}));
}

TEST_F(Broken, ModelAndStageShareAName) {
  EXPECT_TRUE(HasError(errors(edit("  base: {init", "  sft: {init")),
                       {"recipe.yaml:4:11", "stages.sft.name", "both a model and a stage name"}));
}

TEST_F(Broken, PolicyFromAStageThatMakesNoModel) {
  const std::string text = edit("  - name: dpo\n    kind: preference\n    policy: sft\n",
                                "  - name: gen\n    kind: generate\n    policy: sft\n    data: {train: data/prompts.jsonl}\n"
                                "  - name: dpo\n    kind: preference\n    policy: gen\n");
  EXPECT_TRUE(HasError(errors(text), {"recipe.yaml:14:13", "stages.dpo.policy", "`gen` is a generate stage, which makes no model"}));
}

// ---- what each stage kind needs ----

TEST_F(Broken, PreferenceWithoutReference) {
  EXPECT_TRUE(HasError(errors(edit("    reference: sft\n", "")),
                       {"recipe.yaml:8:", "stages.dpo.reference", "needs `reference`"}));
}

TEST_F(Broken, ReferenceFreeLossWithReference) {
  EXPECT_TRUE(HasError(errors(edit("type: dpo", "type: simpo")),
                       {"recipe.yaml:11:16", "stages.dpo.reference", "is not used by loss type simpo"}));
}

TEST_F(Broken, DistillWithoutTeacher) {
  const std::string text = std::string(kBase) +
                           "  - name: kd\n    kind: distill\n    policy: sft\n    data: {train: data/sft.jsonl}\n"
                           "    loss: {type: kd}\n";
  EXPECT_TRUE(HasError(errors(text), {"recipe.yaml:14:", "stages.kd.teacher", "needs `teacher`"}));
}

TEST_F(Broken, AdpaWithoutTeacherReference) {
  const std::string text = std::string(kBase) +
                           "  - name: adpa\n    kind: distill\n    policy: sft\n    teacher: dpo\n"
                           "    data: {train: data/pairs.jsonl}\n    loss: {type: adpa}\n";
  EXPECT_TRUE(HasError(errors(text), {"recipe.yaml:14:", "stages.adpa.teacher_reference", "needs `teacher_reference`"}));
}

TEST_F(Broken, DistillWithoutLossType) {
  const std::string text = std::string(kBase) +
                           "  - name: kd\n    kind: distill\n    policy: sft\n    teacher: dpo\n"
                           "    data: {train: data/sft.jsonl}\n";
  EXPECT_TRUE(HasError(errors(text), {"recipe.yaml:14:", "stages.kd.loss.type", "needs `loss.type`"}));
}

TEST_F(Broken, OnlineTeacherCannotBePrecomputed) {
  const std::string text = std::string(kBase) +
                           "  - name: kd\n    kind: distill\n    policy: sft\n    teacher: {model: dpo, precompute: true}\n"
                           "    data: {train: data/sft.jsonl}\n    loss: {type: kd}\n";
  EXPECT_TRUE(HasError(errors(text), {"recipe.yaml:17:", "stages.kd.teacher.precompute", "cannot be precomputed"}));
}

TEST_F(Broken, UnpairedWithoutReference) {
  EXPECT_TRUE(HasError(errors(edit("kind: preference", "kind: unpaired", edit("    reference: sft\n", "", edit("type: dpo", "type: kto")))),
                       {"recipe.yaml:8:", "stages.dpo.reference", "an unpaired stage with loss type kto needs `reference`"}));
}

TEST_F(Broken, NegativesWithoutSamples) {
  EXPECT_TRUE(HasError(errors(edit("kind: preference", "kind: negatives", edit("type: dpo", "type: d2o"))),
                       {"recipe.yaml:12:11", "stages.dpo.data.samples", "needs `data.samples`"}));
}

TEST_F(Broken, LossTypeNotValidForKind) {
  EXPECT_TRUE(HasError(errors(edit("    data: {train: data/sft.jsonl}\n",
                                   "    data: {train: data/sft.jsonl}\n    loss: {type: dpo}\n")),
                       {"recipe.yaml:8:18", "stages.sft.loss.type", "loss type `dpo` is not valid for an sft stage"}));
}

TEST_F(Broken, WeightsLengthMismatch) {
  EXPECT_TRUE(HasError(errors(edit("type: dpo, beta: 0.1", "type: [dpo, sft], weights: [1.0]")),
                       {"recipe.yaml:13:", "stages.dpo.loss.weights", "has 1 weight for 2 loss types"}));
}

TEST_F(Broken, TrainingStageWithoutData) {
  EXPECT_TRUE(HasError(errors(edit("    data: {train: data/sft.jsonl}\n", "")),
                       {"recipe.yaml:4:", "stages.sft.data.train", "an sft stage needs `data.train`"}));
}

// ---- numbers that must agree ----

TEST_F(Broken, GlobalBatchNotDivisibleByMicro) {
  EXPECT_TRUE(HasError(errors(edit("    data: {train: data/sft.jsonl}\n",
                                   "    data: {train: data/sft.jsonl}\n    batch: {global: 30, micro: 8}\n")),
                       {"recipe.yaml:8:21", "stages.sft.batch.global", "batch.global (30) must be divisible by batch.micro (8)"}));
}

TEST_F(Broken, EpochsAndSteps) {
  EXPECT_TRUE(HasError(errors(edit("    data: {train: data/sft.jsonl}\n",
                                   "    data: {train: data/sft.jsonl}\n    train: {epochs: 1, steps: 10}\n")),
                       {"recipe.yaml:8:12", "stages.sft.train", "set one of `epochs` and `steps`, not both"}));
}

TEST_F(Broken, WarmupStepsAndRatio) {
  EXPECT_TRUE(HasError(errors(edit("    data: {train: data/sft.jsonl}\n",
                                   "    data: {train: data/sft.jsonl}\n    schedule: {warmup_steps: 5, warmup_ratio: 0.1}\n")),
                       {"recipe.yaml:8:15", "stages.sft.schedule", "not both"}));
}

// ---- files ----

TEST_F(Broken, MissingDataFile) {
  EXPECT_TRUE(HasError(errors(edit("data/sft.jsonl", "data/missing.jsonl")),
                       {"recipe.yaml:7:19", "stages.sft.data.train", "no such file:", "data/missing.jsonl"}));
}

TEST_F(Broken, EmptyDataFile) {
  EXPECT_TRUE(HasError(errors(edit("data/sft.jsonl", "data/empty.jsonl")),
                       {"recipe.yaml:7:19", "stages.sft.data.train", "the file is empty"}));
}

TEST_F(Broken, DataPathIsAFolder) {
  EXPECT_TRUE(HasError(errors(edit("data/sft.jsonl", "data/folder.jsonl")),
                       {"recipe.yaml:7:19", "stages.sft.data.train", "not a regular file"}));
}

TEST_F(Broken, ModelFolderMissing) {
  EXPECT_TRUE(HasError(errors(edit("{init: {preset: tiny-llama}}", "{path: no_such_model}")),
                       {"recipe.yaml:2:16", "models.base.path", "no such model folder"}));
}

TEST_F(Broken, ModelWithPathAndInit) {
  fs::create_directories(dir_ / "m");
  EXPECT_TRUE(HasError(errors(edit("{init: {preset: tiny-llama}}", "{path: m, init: {preset: tiny-llama}}")),
                       {"recipe.yaml:2:9", "models.base", "exactly one of `path`"}));
}

// ---- --set ----

TEST_F(Broken, SetUnknownKeySuggests) {
  EXPECT_TRUE(HasError(errors(kBase, {"stages.dpo.loss.bta=0.05"}),
                       {"--set stages.dpo.loss.bta=0.05", "stages.dpo.loss.bta", "did you mean `beta`?"}));
}

TEST_F(Broken, SetBadValueType) {
  EXPECT_TRUE(HasError(errors(kBase, {"stages.dpo.loss.beta=abc"}),
                       {"--set stages.dpo.loss.beta=abc", "stages.dpo.loss.beta", "expected a number, got `abc`"}));
}

TEST_F(Broken, SetNoSuchStage) {
  EXPECT_TRUE(HasError(errors(kBase, {"stages.dop.loss.beta=0.05"}),
                       {"--set stages.dop.loss.beta=0.05", "stages.dop", "no item named `dop`", "did you mean `dpo`?"}));
}

TEST_F(Broken, SetIndexOutOfRange) {
  EXPECT_TRUE(HasError(errors(kBase, {"stages[5].loss.beta=0.05"}), {"--set stages[5]", "index 5 is out of range"}));
}

TEST_F(Broken, SetWithoutValue) {
  EXPECT_TRUE(HasError(errors(kBase, {"stages.dpo.loss.beta"}), {"--set stages.dpo.loss.beta", "expected KEY=VALUE"}));
}

TEST_F(Broken, SetThroughAScalar) {
  EXPECT_TRUE(HasError(errors(kBase, {"stages.dpo.policy.x=1"}),
                       {"--set stages.dpo.policy.x=1", "stages.dpo.policy.x", "is a single value"}));
}

TEST_F(Broken, SetRangeErrorNamesTheOverride) {
  EXPECT_TRUE(HasError(errors(kBase, {"stages.1.loss.beta=-1"}),
                       {"--set stages.1.loss.beta=-1", "stages.dpo.loss.beta", "must be > 0"}));
}

// ---- several at once ----

TEST_F(Broken, AllErrorsAreReportedTogetherInFileOrder) {
  std::string text = edit("beta: 0.1", "bta: 0.1");
  text = edit("policy: base", "policy: nobody", text);
  text = edit("data/pairs.jsonl", "data/missing.jsonl", text);
  text = "run: {device: gpu}\n" + text;
  const Diagnostics ds = errors(text, {"stages.sft.optimizer.lr=-1"});
  EXPECT_EQ(ds.size(), 5u) << format(ds);
  EXPECT_TRUE(HasError(ds, {"recipe.yaml:1:15", "run.device"}));
  EXPECT_TRUE(HasError(ds, {"recipe.yaml:7:13", "stages.sft.policy", "nobody"}));
  EXPECT_TRUE(HasError(ds, {"recipe.yaml:13:19", "stages.dpo.data.train", "no such file"}));
  EXPECT_TRUE(HasError(ds, {"recipe.yaml:14:", "stages.dpo.loss.bta"}));
  EXPECT_TRUE(HasError(ds, {"--set stages.sft.optimizer.lr=-1", "stages.sft.optimizer.lr", "must be > 0"}));
  for (size_t i = 1; i + 1 < ds.size(); ++i) EXPECT_LE(ds[i - 1].line, ds[i].line) << format(ds);
  EXPECT_EQ(ds.back().file, "--set stages.sft.optimizer.lr=-1");
}

TEST_F(Broken, RecipeErrorMessageListsEverything) {
  try {
    load(edit("policy: base", "policy: nobody", edit("beta: 0.1", "beta: -1")));
    FAIL();
  } catch (const RecipeError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("recipe has 2 errors"), std::string::npos) << what;
    EXPECT_NE(what.find("stages.sft.policy"), std::string::npos) << what;
    EXPECT_NE(what.find("stages.dpo.loss.beta"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace aligntrain::config::testing
