// Reward-model folders (model/classifier_config.h) and the score head (model/sequence_classifier.h): which
// config.json files are one-label sequence classifiers and which errors (exit 2 or 3) the others give; the position
// transformers pools (the rightmost token that is not the pad id); and scores of a padded batch equal each row's
// scores alone, computed by hand from the final hidden states.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "test/util/test_env.h"
#include "trainer/model/classifier_config.h"
#include "trainer/model/model_config.h"
#include "trainer/model/presets.h"
#include "trainer/model/projection.h"
#include "trainer/model/sequence_classifier.h"

namespace aligntrain::model {
namespace {

// A folder whose config.json is tiny-llama's with `edit` applied.
std::string folder(const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
  const auto dir = testing::scratch_dir("sequence_classifier_" + name);
  auto j = nlohmann::json::parse(model_config_to_json(preset_config("tiny-llama")));
  j["architectures"] = {"LlamaForSequenceClassification"};
  j["id2label"] = {{"0", "LABEL_0"}};
  edit(j);
  std::ofstream(dir / "config.json") << j.dump();
  return dir.string();
}

template <class E>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ClassifierConfig, OneLabelLlamaClassifierIsARewardModel) {
  const auto c = load_reward_model_config(folder("ok", [](nlohmann::json&) {}));
  EXPECT_EQ(c.hf_class, "LlamaForSequenceClassification");
  EXPECT_EQ(c.num_labels, 1);
  EXPECT_EQ(c.decoder.arch, Arch::kLlama);
  EXPECT_TRUE(classifier_decoder_config(c).tie_word_embeddings);  // no lm_head.weight in the name table
}

TEST(ClassifierConfig, NumLabelsFromId2LabelThenNumLabelsThenTransformersDefault) {
  EXPECT_EQ(load_classifier_config(folder("three", [](nlohmann::json& j) {
              j.erase("id2label");
              j["num_labels"] = 3;
            })).num_labels,
            3);
  EXPECT_EQ(load_classifier_config(folder("default", [](nlohmann::json& j) { j.erase("id2label"); })).num_labels, 2);
  const auto msg = error_of<UsageError>(
      [] { load_reward_model_config(folder("two", [](nlohmann::json& j) { j["id2label"] = {{"0", "a"}, {"1", "b"}}; })); });
  EXPECT_NE(msg.find("num_labels: a reward model scores each sample with one label"), std::string::npos) << msg;
  EXPECT_NE(msg.find("has 2"), std::string::npos) << msg;
}

TEST(ClassifierConfig, OtherClassesAreUsageErrorsNamingTheClass) {
  auto msg = error_of<UsageError>([] {
    load_classifier_config(folder("causal", [](nlohmann::json& j) { j["architectures"] = {"LlamaForCausalLM"}; }));
  });
  EXPECT_NE(msg.find("`LlamaForCausalLM` is not a sequence classifier"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Qwen2ForSequenceClassification"), std::string::npos) << msg;  // the supported ones listed
  msg = error_of<UsageError>([] { load_classifier_config(folder("none", [](nlohmann::json& j) { j.erase("architectures"); })); });
  EXPECT_NE(msg.find("architectures: missing"), std::string::npos) << msg;
  msg = error_of<UsageError>([] {
    load_classifier_config(folder("gpt2", [](nlohmann::json& j) {
      j["architectures"] = {"GPT2ForSequenceClassification"};
      j["model_type"] = "gpt2";
    }));
  });
  EXPECT_NE(msg.find("`GPT2ForSequenceClassification` is not a sequence classifier"), std::string::npos) << msg;
  // A class that contradicts model_type is a broken folder (exit 3).
  msg = error_of<DataError>([] {
    load_classifier_config(folder("mixed", [](nlohmann::json& j) { j["architectures"] = {"Qwen2ForSequenceClassification"}; }));
  });
  EXPECT_NE(msg.find("does not match model_type `llama`"), std::string::npos) << msg;
  msg = error_of<DataError>([] { load_classifier_config("/nonexistent/reward_model"); });
  EXPECT_NE(msg.find("cannot open model config"), std::string::npos) << msg;
}

TEST(PooledPosition, RightmostTokenThatIsNotPad) {
  EXPECT_EQ(pooled_position({5, 6, 0, 0}, 0), 1);
  EXPECT_EQ(pooled_position({5, 0, 6, 0}, 0), 2);  // a pad id inside the text is skipped only at the end
  EXPECT_EQ(pooled_position({0, 0}, 0), 0);        // all pad: argmax of zeros, position 0
  EXPECT_EQ(pooled_position({5, 6, 7}, std::nullopt), 2);
}

TEST(ClassifierScores, PaddedBatchEqualsEachRowAloneAndTheHandComputedHead) {
  ClassifierConfig c;
  c.decoder = preset_config("tiny-llama");
  c.num_labels = 1;
  auto factory = dense_layer_factory();
  CausalLM lm(classifier_decoder_config(c), *factory);
  add_score_head(lm, 1);
  EXPECT_EQ(lm.parameter_set().find("lm_head.weight"), nullptr);
  ASSERT_NE(lm.parameter_set().find(kScoreWeight), nullptr);
  EXPECT_FALSE(lm.parameter_set().find(kScoreWeight)->trainable);
  at::manual_seed(3);
  {
    at::NoGradGuard no_grad;
    for (const auto& p : lm.parameter_set()) {
      at::Tensor t = p.tensor;
      t.copy_(at::randn(t.sizes()) * 0.1 + (p.name().find("norm") != std::string::npos ? 1.0 : 0.0));
    }
  }
  at::NoGradGuard no_grad;
  const std::vector<std::vector<int64_t>> rows = {{1, 9, 4, 7, 3}, {2, 8, 5}};
  ForwardInput batch;
  batch.input_ids = at::tensor(std::vector<int64_t>{1, 9, 4, 7, 3, 2, 8, 5, 0, 0}, at::kLong).view({2, 5});
  batch.attention_mask = at::tensor(std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, at::kLong).view({2, 5});
  const at::Tensor got = classifier_scores(lm, batch, at::tensor(std::vector<int64_t>{4, 2}, at::kLong));
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{2, 1}));
  const at::Tensor w = lm.parameter_set().find(kScoreWeight)->tensor;
  for (size_t r = 0; r < rows.size(); ++r) {
    ForwardInput one;
    one.input_ids = at::tensor(rows[r], at::kLong).view({1, -1});
    const at::Tensor h = lm.hidden_states(one)[0][static_cast<int64_t>(rows[r].size()) - 1];
    const double want = (h * w[0]).sum().item<double>();
    EXPECT_NEAR(got[static_cast<int64_t>(r)][0].item<double>(), want, 1e-5 * std::max(1.0, std::abs(want))) << r;
  }
}

}  // namespace
}  // namespace aligntrain::model
