// The shared training loop (trainer/stages/train_loop.h) as a unit, on a tiny model with in-memory SFT data: the
// number of steps and what each logged line holds, gradient accumulation (the same global batch in 1 or 4
// micro-batches gives the same step), frozen parameters (untouched, no optimizer state in the checkpoint), and resume
// (a run continued from a mid-stage checkpoint ends bit for bit where the uninterrupted run ends).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "config/recipe.h"
#include "test/util/mpi_test_main.h"
#include "test/util/test_env.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/presets.h"
#include "trainer/model/safetensors_torch.h"
#include "trainer/optim/schedule.h"
#include "trainer/runtime/communicators.h"
#include "trainer/runtime/host_sync.h"
#include "trainer/stages/sft.h"
#include "trainer/stages/train_loop.h"

namespace aligntrain::stages {
namespace {

namespace fs = std::filesystem;

// 12 examples of 10 tokens; the last 6 of each are the completion.
SftData toy_data() {
  SftData d;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  for (int i = 0; i < 12; ++i) {
    const auto ids = at::randint(0, 256, {10}, gen);
    data::Encoded e;
    for (int64_t j = 0; j < 10; ++j) e.ids.push_back(static_cast<int32_t>(ids[j].item<int64_t>()));
    e.prompt_len = 4;
    d.lengths.push_back(10);
    d.examples.push_back(e);
  }
  return d;
}

config::Recipe recipe_for(const fs::path& out, int micro, int every, int log_every = 1) {
  const std::string text = R"(
run: {name: loop, output_dir: )" + out.string() + R"(, seed: 7, threads: 1}
models:
  tiny: {init: {preset: tiny-llama, seed: 1}}
stages:
  - name: sft
    kind: sft
    policy: tiny
    data: {train: unused.jsonl}
    optimizer: {lr: 1.0e-2, weight_decay: 0.1, grad_clip: 1.0}
    schedule: {warmup_steps: 1, decay: cosine}
    batch: {global: 4, micro: )" + std::to_string(micro) + R"(, max_length: 16}
    train: {epochs: 2}
    checkpoint: {every_steps: )" + std::to_string(every) + R"(, keep_last: 10}
    log: {every_steps: )" + std::to_string(log_every) + R"(}
)";
  // The recipe names a data file (it must exist); the objective below trains on in-memory examples instead.
  fs::create_directories(out);
  std::ofstream(out / "unused.jsonl") << R"({"prompt": "p", "completion": "c"})" << "\n";
  return config::load_recipe_from_string(text, (out / "recipe.yaml").string());
}

struct LoopRun {
  std::unique_ptr<model::LayerFactory> factory = model::dense_layer_factory();
  std::shared_ptr<model::CausalLM> lm;
  TrainOutcome outcome;
  std::vector<nlohmann::json> lines;
};

// Trains a fresh tiny model (seed 1) on the toy data; `setup` (if any) changes the model first.
LoopRun train_once(const fs::path& out, int micro, int every, const std::function<void(model::CausalLM&)>& setup,
                   int log_every = 1) {
  LoopRun r;
  const auto recipe = recipe_for(out, micro, every, log_every);
  auto groups = runtime::make_groups(testing::world(), 1, runtime::Device::kCpu);
  r.lm = std::make_shared<model::CausalLM>(model::preset_config("tiny-llama"), *r.factory);
  model::init_weights(*r.lm, 1, 0, 1);
  if (setup) setup(*r.lm);
  const SftData data = toy_data();
  data::CollateOptions collate;
  collate.pad_id = 0;
  SftObjective objective(*r.lm, groups, at::kCPU, data, collate, false);
  fs::create_directories(out);
  metrics::MetricsLog log((out / "metrics.jsonl").string(), true);
  TrainContext ctx{recipe, recipe.stages.at(0), groups, at::kCPU, log, *r.lm, "", {}};
  r.outcome = train(ctx, objective);
  std::ifstream in(out / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) r.lines.push_back(nlohmann::json::parse(line));
  return r;
}

bool is_norm(const model::Parameter& p) { return p.name().find("norm") != std::string::npos; }

TEST(TrainLoop, StepsAndLoggedLines) {
  const auto out = aligntrain::testing::scratch_dir("loop_steps");
  const LoopRun r = train_once(out, 2, 0, {});
  // 2 epochs of 12 examples in global batches of 4.
  EXPECT_EQ(r.outcome.total, 6);
  EXPECT_EQ(r.outcome.steps, 6);
  ASSERT_EQ(r.lines.size(), 6u);
  for (size_t i = 0; i < r.lines.size(); ++i) {
    const auto& l = r.lines[i];
    EXPECT_EQ(l["stage"], "sft");
    EXPECT_EQ(l["step"], static_cast<int>(i) + 1);
    for (const char* key : {"loss", "ppl", "lr", "grad_norm", "tokens", "epoch"}) EXPECT_TRUE(l.contains(key)) << key;
    EXPECT_EQ(l["tokens"], 40);  // 4 examples of 10 tokens
    EXPECT_NEAR(l["epoch"].get<double>(), 4.0 * static_cast<double>(i + 1) / 12.0, 1e-12);
  }
  EXPECT_LT(r.lines.back()["loss"].get<double>(), r.lines.front()["loss"].get<double>());  // it learns
  // The learning rate logged at step k is the schedule's value for step k - 1 (the update that step made).
  const auto stage = recipe_for(out, 2, 0).stages.at(0);
  for (size_t i = 0; i < r.lines.size(); ++i) {
    EXPECT_DOUBLE_EQ(r.lines[i]["lr"].get<double>(),
                     optim::learning_rate(stage.schedule, 1e-2, static_cast<int64_t>(i), 6));
  }
}

TEST(TrainLoop, MicroBatchesAccumulateToTheGlobalBatch) {
  const auto base = aligntrain::testing::scratch_dir("loop_micro");
  const LoopRun one = train_once(base / "micro4", 4, 0, {});
  const LoopRun four = train_once(base / "micro1", 1, 0, {});
  ASSERT_EQ(one.lines.size(), four.lines.size());
  for (size_t i = 0; i < one.lines.size(); ++i) {
    const double a = one.lines[i]["loss"].get<double>(), b = four.lines[i]["loss"].get<double>();
    EXPECT_NEAR(a, b, 1e-5 * std::max(1.0, std::abs(a))) << "step " << i + 1;
    const double ga = one.lines[i]["grad_norm"].get<double>(), gb = four.lines[i]["grad_norm"].get<double>();
    EXPECT_NEAR(ga, gb, 1e-4 * std::max(1.0, std::abs(ga))) << "step " << i + 1;
  }
}

TEST(TrainLoop, FrozenParametersStayAndHaveNoOptimizerState) {
  const auto out = aligntrain::testing::scratch_dir("loop_frozen");
  auto factory = model::dense_layer_factory();
  model::CausalLM initial(model::preset_config("tiny-llama"), *factory);
  model::init_weights(initial, 1, 0, 1);
  // Norms frozen; one extra trainable parameter registered (unused by this objective: its gradient is zero).
  const model::TensorSpec extra{"score.weight", {64}, model::Split::kReplicated, model::Init::kOnes};
  const LoopRun r = train_once(out, 2, 3, [&](model::CausalLM& lm) {
    lm.parameter_set().set_trainable(is_norm, false);
    lm.add_parameter(extra, at::ones({64}));
  });
  int frozen = 0;
  for (const auto& p : r.lm->parameter_set()) {
    if (p.name() == extra.name) {
      EXPECT_TRUE(at::equal(p.tensor, at::ones({64})));  // zero gradient, no-decay group: unchanged
      continue;
    }
    const auto* before = initial.parameter_set().find(p.name());
    ASSERT_NE(before, nullptr);
    if (is_norm(p)) {
      ++frozen;
      EXPECT_TRUE(at::equal(p.tensor, before->tensor)) << p.name() << " was frozen but changed";
    } else {
      EXPECT_FALSE(at::equal(p.tensor, before->tensor)) << p.name() << " was trained but did not change";
    }
  }
  ASSERT_GT(frozen, 0);
  // The checkpoint holds every parameter, and optimizer state for the trainable ones only.
  const auto latest = checkpoint::latest_complete(out / "checkpoints" / "sft");
  ASSERT_TRUE(latest.has_value());
  int moments = 0, weights = 0;
  for (const auto& [name, t] : model::load_safetensors((*latest / checkpoint::rank_file_name(0)).string())) {
    if (name.rfind("model.", 0) == 0) ++weights;
    if (name.rfind("optim.exp_avg.", 0) == 0) {
      ++moments;
      EXPECT_EQ(name.find("norm"), std::string::npos) << name;
    }
  }
  EXPECT_EQ(weights, static_cast<int>(r.lm->parameter_set().size()));
  EXPECT_EQ(moments, static_cast<int>(r.lm->parameter_set().size()) - frozen);
  // The checkpoint records the parameter set (export gathers shards by it), extra parameter included.
  const auto state = checkpoint::read_state(*latest);
  ASSERT_EQ(state.parameters.size(), r.lm->parameter_set().size());
  EXPECT_EQ(state.parameters.back().name, "score.weight");
  EXPECT_EQ(state.parameters.back().shape, std::vector<int64_t>{64});
  EXPECT_EQ(state.parameters.back().split, model::Split::kReplicated);
}

// A step reads device values on the host (runtime/host_sync.h) only to log them: none in the steps that log nothing
// (2, 4 and 5 of 6 when logging every 3 steps), some in those that do (the loss and the gradient norm).
TEST(TrainLoop, NoHostReadsInStepsThatLogNothing) {
  const auto out = aligntrain::testing::scratch_dir("loop_host_reads");
  const int64_t before = runtime::host_syncs();
  const LoopRun r = train_once(out, 2, 0, {}, 3);
  ASSERT_EQ(r.lines.size(), 3u);  // steps 1, 3 and 6
  EXPECT_EQ(r.outcome.unlogged_host_syncs, 0);
  EXPECT_GE(runtime::host_syncs() - before, 3 * 2);
  EXPECT_TRUE(r.lines.back().contains("grad_norm"));
}

TEST(TrainLoop, ResumeFromAMidStageCheckpointEndsBitForBitTheSame) {
  const auto base = aligntrain::testing::scratch_dir("loop_resume");
  const LoopRun whole = train_once(base / "whole", 2, 2, {});
  // The same run, then everything after step 2 removed, as if it had been killed after that checkpoint.
  const fs::path cut = base / "cut";
  train_once(cut, 2, 2, {});
  for (const char* step : {"step-4", "step-6"}) fs::remove_all(cut / "checkpoints" / "sft" / step);
  const LoopRun resumed = train_once(cut, 2, 2, {});
  EXPECT_EQ(resumed.outcome.start_step, 2);
  EXPECT_EQ(resumed.outcome.steps, 6);
  for (const auto& p : whole.lm->parameter_set()) {
    EXPECT_TRUE(at::equal(p.tensor, resumed.lm->parameter_set().find(p.name())->tensor)) << p.name();
  }
  // metrics.jsonl: steps 1-2 from the first run, 3-6 from the resumed one, equal to the uninterrupted run's.
  ASSERT_EQ(resumed.lines.size(), whole.lines.size());
  for (size_t i = 0; i < whole.lines.size(); ++i) {
    EXPECT_EQ(resumed.lines[i]["loss"], whole.lines[i]["loss"]) << "step " << i + 1;
    EXPECT_EQ(resumed.lines[i]["grad_norm"], whole.lines[i]["grad_norm"]) << "step " << i + 1;
  }
}

}  // namespace
}  // namespace aligntrain::stages
