// Parity of the LibTorch decoder with Hugging Face transformers on tiny random models of every supported family:
// logits (with and without padding), gradients of a summed log-prob w.r.t. every parameter, sharded checkpoints,
// activation checkpointing, the padding-free forward of padded batches, and the save → transformers load round trip. References come from
// scripts/parity/hf_models.py, run once per test binary.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <vector>

#include "test/util/test_env.h"
#include "test/util/tolerance.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/model_config.h"
#include "trainer/model/safetensors.h"
#include "trainer/model/safetensors_torch.h"
#include "trainer/model/transformer.h"

namespace aligntrain::model {
namespace {

namespace fs = std::filesystem;
using aligntrain::testing::python;
using aligntrain::testing::run_or_throw;

const fs::path& fixtures() {
  static const fs::path dir = [] {
    auto d = aligntrain::testing::scratch_dir("hf_fixtures");
    run_or_throw(python() + " scripts/parity/hf_models.py fixtures " + d.string() + " > " + (d / "log.txt").string() +
                 " 2>&1");
    return d;
  }();
  return dir;
}

std::map<std::string, at::Tensor> read_all(const fs::path& path) {
  const auto file = SafetensorsFile::open(path.string());
  std::map<std::string, at::Tensor> out;
  for (const auto& info : file.tensors()) out[info.name] = to_tensor(file, info);
  return out;
}

std::shared_ptr<CausalLM> load(const fs::path& dir, const std::unique_ptr<LayerFactory>& factory) {
  auto config = load_model_config((dir / "config.json").string());
  auto model = std::make_shared<CausalLM>(config, *factory);
  load_hf_weights(*model, dir.string(), 0, 1);
  return model;
}

using aligntrain::testing::near_in_scale;

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// Two fp32 implementations (ours and transformers') of the same model: logits, log-probs and each gradient within
// 1e-5 of their scale (the largest error seen on an Intel host was 7e-7 of it).
constexpr double kParity = 1e-5;

class ModelParity : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path dir() const { return fixtures() / GetParam(); }
  std::unique_ptr<LayerFactory> factory = dense_layer_factory();
};

TEST_P(ModelParity, LogitsMatchTransformers) {
  auto expected = read_all(dir() / "expected.safetensors");
  auto model = load(dir() / "model", factory);
  at::NoGradGuard no_grad;
  const auto logits = model->forward({expected["input_ids"]});
  EXPECT_TRUE(near_in_scale(logits, expected["logits"], kParity));
}

TEST_P(ModelParity, PaddedLogitsMatchOnTokens) {
  auto expected = read_all(dir() / "expected.safetensors");
  auto model = load(dir() / "model", factory);
  at::NoGradGuard no_grad;
  const auto mask = expected["attention_mask"];
  const auto logits = model->forward({expected["input_ids"], mask});
  const auto valid = mask.to(at::kBool).unsqueeze(-1).expand_as(logits);
  EXPECT_TRUE(near_in_scale(logits.masked_select(valid), expected["masked_logits"].masked_select(valid), kParity));
}

void expect_gradients_match(CausalLM& model, std::map<std::string, at::Tensor>& expected) {
  const auto ids = expected["input_ids"];
  const auto labels = shift_labels(ids, at::ones_like(ids));
  const auto lp = token_logprobs(model, model.hidden_states({ids}), labels, /*chunk_positions=*/7);
  EXPECT_TRUE(near_in_scale(lp.narrow(1, 0, ids.size(1) - 1), expected["token_logps"], kParity));
  lp.sum().backward();
  int checked = 0;
  for (const auto& [name, param] : model.named_parameters(true).pairs()) {
    const auto& want = expected.at("grad." + name);
    ASSERT_TRUE(param.grad().defined()) << name;
    EXPECT_TRUE(near_in_scale(param.grad(), want, kParity)) << name;
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(model.named_parameters(true).size()));
}

TEST_P(ModelParity, GradientsOfSummedLogprobMatch) {
  auto expected = read_all(dir() / "expected.safetensors");
  auto model = load(dir() / "model", factory);
  expect_gradients_match(*model, expected);
}

TEST_P(ModelParity, ActivationCheckpointingGivesSameGradients) {
  auto expected = read_all(dir() / "expected.safetensors");
  auto model = load(dir() / "model", factory);
  model->set_activation_checkpointing(true);
  expect_gradients_match(*model, expected);
}

// A batch with padding runs padding-free (position-wise ops on the real tokens only): its log-probs and parameter
// gradients equal running each row alone without padding, with and without activation checkpointing, and its
// hidden states are 0 at padding positions.
TEST_P(ModelParity, PaddingFreeForwardEqualsRowsAlone) {
  auto expected = read_all(dir() / "expected.safetensors");
  const auto ids = expected["input_ids"];
  const int64_t b = ids.size(0), t = ids.size(1);
  ASSERT_GE(t, 4);
  auto mask = at::ones_like(ids);
  std::vector<int64_t> lengths;
  for (int64_t i = 0; i < b; ++i) {
    lengths.push_back(t - (i * 3) % (t - 2));  // right padding of 0, 3, 6, ... positions
    mask[i].narrow(0, lengths.back(), t - lengths.back()).fill_(0);
  }
  ASSERT_LT(mask.sum().item<int64_t>(), mask.numel());
  for (bool checkpointing : {false, true}) {
    auto padded = load(dir() / "model", factory);
    auto alone = load(dir() / "model", factory);
    padded->set_activation_checkpointing(checkpointing);
    alone->set_activation_checkpointing(checkpointing);
    const auto hidden = padded->hidden_states({ids, mask});
    const auto lp = token_logprobs(*padded, hidden, shift_labels(ids, mask), /*chunk_positions=*/5);
    lp.sum().backward();
    EXPECT_EQ(hidden.masked_select(mask.logical_not().unsqueeze(-1).expand_as(hidden)).abs().max().item<double>(),
              0.0);
    for (int64_t i = 0; i < b; ++i) {
      const auto row = ids[i].narrow(0, 0, lengths[i]).unsqueeze(0);
      const auto row_lp = token_logprobs(*alone, alone->hidden_states({row}),
                                         shift_labels(row, at::ones_like(row)), /*chunk_positions=*/5);
      row_lp.sum().backward();
      EXPECT_TRUE(near_in_scale(lp[i].narrow(0, 0, lengths[i]), row_lp[0], 1e-6))
          << "row " << i << " checkpointing " << checkpointing;
    }
    const auto want = alone->named_parameters(true);
    for (const auto& [name, param] : padded->named_parameters(true).pairs()) {
      const auto& g = want[name].grad();
      ASSERT_TRUE(param.grad().defined() && g.defined()) << name;
      EXPECT_TRUE(near_in_scale(param.grad(), g, 1e-5)) << name << " checkpointing " << checkpointing;
    }
  }
}

// Rows that share a prefix (the samples of one prompt) with ForwardInput::shared_prefix: each shared token runs
// once, and the log-probs and parameter gradients equal the same batch without sharing (itself equal to each row
// alone, above), with and without padding and activation checkpointing. A shared prefix whose ids differ from its
// source row's is refused.
TEST_P(ModelParity, SharedPrefixForwardEqualsUnsharedBatch) {
  auto expected = read_all(dir() / "expected.safetensors");
  const auto src = expected["input_ids"];
  const int64_t n = src.size(0), t = src.size(1), p = t / 2;
  ASSERT_GE(t, 6);
  // Two groups: rows 0-2 start with row 0's first p tokens, rows 3-4 with row 3's; the rest of each row comes from
  // a different source row, reversed so that the continuations differ.
  const std::vector<int64_t> group_of = {0, 0, 0, 1, 1};
  const int64_t b = static_cast<int64_t>(group_of.size());
  auto ids = at::zeros({b, t}, at::kLong);
  std::vector<int64_t> row(b), length(b, 0);
  for (int64_t i = 0; i < b; ++i) {
    ids[i].narrow(0, 0, p).copy_(src[group_of[i] % n].narrow(0, 0, p));
    ids[i].narrow(0, p, t - p).copy_(src[(i + 1) % n].narrow(0, p, t - p).flip(0));
    row[i] = group_of[i] == 0 ? 0 : 3;
    if (i != row[i]) length[i] = p;
  }
  const ForwardInput::SharedPrefix shared{at::tensor(row, at::kLong), at::tensor(length, at::kLong)};
  auto mask = at::ones_like(ids);
  for (int64_t i = 0; i < b; ++i) mask[i].narrow(0, t - i % 3, i % 3).fill_(0);  // right padding of 0-2 positions
  for (bool padded : {false, true}) {
    for (bool checkpointing : {false, true}) {
      auto with = load(dir() / "model", factory);
      auto without = load(dir() / "model", factory);
      with->set_activation_checkpointing(checkpointing);
      without->set_activation_checkpointing(checkpointing);
      ForwardInput in{ids};
      if (padded) in.attention_mask = mask;
      const auto labels = shift_labels(ids, padded ? mask : at::ones_like(ids));
      const auto plain = token_logprobs(*without, without->hidden_states(in), labels, /*chunk_positions=*/5);
      in.shared_prefix = shared;
      const auto hidden = with->hidden_states(in);
      const auto lp = token_logprobs(*with, hidden, labels, /*chunk_positions=*/5);
      const std::string what = std::string(padded ? "padded" : "unpadded") + (checkpointing ? ", checkpointing" : "");
      EXPECT_TRUE(near_in_scale(lp, plain, 1e-6)) << what;
      if (padded) {
        EXPECT_EQ(hidden.masked_select(mask.logical_not().unsqueeze(-1).expand_as(hidden)).abs().max().item<double>(), 0.0);
      }
      (lp * at::arange(1, b + 1).view({b, 1})).sum().backward();  // rows weighted differently
      (plain * at::arange(1, b + 1).view({b, 1})).sum().backward();
      const auto want = without->named_parameters(true);
      for (const auto& [name, param] : with->named_parameters(true).pairs()) {
        const auto& g = want[name].grad();
        ASSERT_TRUE(param.grad().defined() && g.defined()) << name;
        EXPECT_TRUE(near_in_scale(param.grad(), g, 1e-5)) << name << ", " << what;
      }
    }
  }
  auto model = load(dir() / "model", factory);
  auto wrong = ids.clone();
  wrong[1][p - 1] = (wrong[0][p - 1].item<int64_t>() + 1) % model->config().vocab_size;
  ForwardInput in{wrong};
  in.shared_prefix = shared;
  EXPECT_THROW(model->hidden_states(in), std::logic_error);
}

TEST_P(ModelParity, ShardedCheckpointLoadsTheSameWeights) {
  auto expected = read_all(dir() / "expected.safetensors");
  auto model = load(dir() / "model_sharded", factory);
  at::NoGradGuard no_grad;
  EXPECT_TRUE(near_in_scale(model->forward({expected["input_ids"]}), expected["logits"], kParity));
}

TEST_P(ModelParity, SavedModelLoadsInTransformersWithSameLogits) {
  auto expected = read_all(dir() / "expected.safetensors");
  auto model = load(dir() / "model", factory);
  const auto out = aligntrain::testing::scratch_dir("saved_" + GetParam());
  save_hf_model((out / "model").string(), model->config(), model->parameter_set().named_tensors(), "");
  const auto ids_path = out / "ids.safetensors";
  const auto ids = expected["input_ids"].contiguous();
  save_safetensors(ids_path.string(), {{"input_ids", ids}});
  run_or_throw(python() + " scripts/parity/hf_models.py logits " + (out / "model").string() + " " +
               ids_path.string() + " " + (out / "logits.safetensors").string());
  auto got = read_all(out / "logits.safetensors");
  EXPECT_TRUE(near_in_scale(got["logits"], expected["logits"], kParity));
}

TEST_P(ModelParity, Bf16ForwardTracksFp32) {
  // bf16 weights and activations (log-softmax still in fp32): log-probs stay close to the fp32 model's.
  auto expected = read_all(dir() / "expected.safetensors");
  auto model = load(dir() / "model", factory);
  model->to(at::kBFloat16);
  ASSERT_EQ(model->dtype(), at::kBFloat16);
  at::NoGradGuard no_grad;
  const auto ids = expected["input_ids"];
  const auto lp = token_logprobs(*model, model->hidden_states({ids}), shift_labels(ids, at::ones_like(ids)));
  EXPECT_EQ(lp.scalar_type(), at::kFloat);
  const double diff = max_abs_diff(lp.narrow(1, 0, ids.size(1) - 1), expected["token_logps"]);
  EXPECT_LE(diff, 0.1);   // bf16 has 8 bits of mantissa: agreement to ~1e-2 per token
  EXPECT_GT(diff, 0.0);   // and it really ran in bf16
}

INSTANTIATE_TEST_SUITE_P(Families, ModelParity,
                         ::testing::Values("llama_gqa_tied", "llama3_rope", "qwen2_bias", "qwen3_qknorm", "mistral"));

}  // namespace
}  // namespace aligntrain::model
