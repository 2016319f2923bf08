// LoRA adapters against PEFT 0.21 on a tiny random Llama: for attention-only, MLP and all-linear targets, each with
// and without rsLoRA, a PEFT adapter loads, its token log-probs and the gradient of every adapter tensor equal PEFT's,
// adapters switched off give the base model's log-probs, merge equals merge_and_unload, and an adapter saved by
// aligntrain loads in PEFT with no missing or unexpected key and the same logits. References come from
// scripts/parity/peft_reference.py, run once per test binary. Plus PEFT's initialisation (each `init` against PEFT's
// own draws), dropout (seeded, recomputed alike, the same mask under TP as without) and the adapter errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "common/errors.h"
#include "test/util/test_env.h"
#include "test/util/tolerance.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/lora.h"
#include "trainer/model/peft_io.h"
#include "trainer/model/safetensors_torch.h"
#include "trainer/model/transformer.h"
#include "trainer/stages/models.h"

namespace aligntrain::model {
namespace {

namespace fs = std::filesystem;
using aligntrain::testing::near_in_scale;
using aligntrain::testing::python;
using aligntrain::testing::run_or_throw;

// fp32 against PEFT's fp32: within 1e-5 of the values' scale.
constexpr double kParity = 1e-5;

const fs::path& fixtures() {
  static const fs::path dir = [] {
    auto d = aligntrain::testing::scratch_dir("peft_fixtures");
    run_or_throw(python() + " scripts/parity/peft_reference.py fixtures " + d.string() + " > " +
                 (d / "log.txt").string() + " 2>&1");
    return d;
  }();
  return dir;
}

std::map<std::string, at::Tensor> read_all(const fs::path& path) {
  std::map<std::string, at::Tensor> out;
  for (auto& [name, t] : load_safetensors(path.string())) out[name] = t;
  return out;
}

struct Loaded {
  std::unique_ptr<LayerFactory> factory = dense_layer_factory();
  std::shared_ptr<CausalLM> lm;
  LoraSettings settings;
};

Loaded load_with_adapter(const fs::path& adapter) {
  Loaded out;
  const auto base = fixtures() / "base";
  out.lm = std::make_shared<CausalLM>(load_model_config((base / "config.json").string()), *out.factory);
  load_hf_weights(*out.lm, base.string(), 0, 1);
  out.settings = read_adapter_config(adapter.string());
  attach_lora(*out.lm, out.settings, 0, 1, {});
  load_adapter_weights(*out.lm, adapter.string(), 0, 1);
  return out;
}

at::Tensor summed_target_logps(CausalLM& lm, const at::Tensor& ids) {
  const auto lp = token_logprobs(lm, lm.hidden_states({ids}), shift_labels(ids, at::ones_like(ids)), 5);
  return lp.narrow(1, 0, ids.size(1) - 1);
}

class LoraParity : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path dir() const { return fixtures() / GetParam(); }
};

TEST_P(LoraParity, LogprobsAndAdapterGradientsMatchPeft) {
  auto expected = read_all(dir() / "expected.safetensors");
  for (bool checkpointing : {false, true}) {
    auto m = load_with_adapter(dir() / "adapter");
    m.lm->set_activation_checkpointing(checkpointing);
    const auto lp = summed_target_logps(*m.lm, expected["input_ids"]);
    EXPECT_TRUE(near_in_scale(lp, expected["token_logps"], kParity));
    lp.sum().backward();
    int adapters = 0;
    for (const auto& p : m.lm->parameter_set()) {
      if (!is_adapter_name(p.name())) {
        EXPECT_FALSE(p.trainable) << p.name();
        EXPECT_FALSE(p.tensor.grad().defined()) << p.name();
        continue;
      }
      ++adapters;
      ASSERT_TRUE(p.tensor.grad().defined()) << p.name();
      EXPECT_TRUE(near_in_scale(p.tensor.grad(), expected.at("grad." + p.name()), kParity))
          << p.name() << " checkpointing " << checkpointing;
    }
    int64_t want = 0;
    for (const auto& [name, t] : expected) want += name.rfind("grad.", 0) == 0;
    EXPECT_EQ(adapters, want);
  }
}

TEST_P(LoraParity, DisabledAdaptersGiveTheBaseModel) {
  auto expected = read_all(dir() / "expected.safetensors");
  auto m = load_with_adapter(dir() / "adapter");
  at::NoGradGuard no_grad;
  {
    LoraDisabled off(*m.lm);
    EXPECT_TRUE(near_in_scale(summed_target_logps(*m.lm, expected["input_ids"]), expected["base_token_logps"],
                              kParity));
  }
  EXPECT_TRUE(near_in_scale(summed_target_logps(*m.lm, expected["input_ids"]), expected["token_logps"], kParity));
}

TEST_P(LoraParity, MergeEqualsMergeAndUnload) {
  auto want = read_all(dir() / "merged.safetensors");
  auto m = load_with_adapter(dir() / "adapter");
  const auto merged = merge_lora(m.lm->parameter_set().named_tensors(), m.settings.scaling());
  EXPECT_EQ(merged.size(), want.size());
  for (const auto& [name, t] : merged) {
    ASSERT_TRUE(want.count(name)) << name;
    EXPECT_TRUE(near_in_scale(t, want[name], kParity)) << name;
  }
}

TEST_P(LoraParity, SavedAdapterLoadsInPeftWithSameLogits) {
  auto expected = read_all(dir() / "expected.safetensors");
  auto m = load_with_adapter(dir() / "adapter");
  std::vector<std::pair<std::string, at::Tensor>> adapters;
  for (const auto& [name, t] : m.lm->parameter_set().named_tensors())
    if (is_adapter_name(name)) adapters.emplace_back(name, t);
  const auto out = aligntrain::testing::scratch_dir("saved_" + GetParam());
  save_adapter((out / "adapter").string(), m.settings, (fixtures() / "base").string(), adapters);
  // It also loads back into aligntrain unchanged.
  EXPECT_EQ(read_adapter_config((out / "adapter").string()).targets, m.settings.targets);
  const auto ids = expected["input_ids"].contiguous();
  save_safetensors((out / "ids.safetensors").string(), {{"input_ids", ids}});
  run_or_throw(python() + " scripts/parity/peft_reference.py check_adapter " + (fixtures() / "base").string() + " " +
               (out / "adapter").string() + " " + (out / "ids.safetensors").string() + " " +
               (out / "logits.safetensors").string());
  at::NoGradGuard no_grad;
  EXPECT_TRUE(near_in_scale(read_all(out / "logits.safetensors")["logits"], m.lm->forward({ids}), kParity));
}

INSTANTIATE_TEST_SUITE_P(Targets, LoraParity,
                         ::testing::Values("attn", "attn_rslora", "mlp", "mlp_rslora", "all", "all_rslora"));

// Statistics of a set of tensors pooled: the largest |x|, and the excess-free kurtosis E[z⁴] of z = x / std(x) (1.8
// for a uniform distribution, 3 for a normal one), so the shape is compared as well as the scale.
struct Pooled {
  double max_abs = 0, kurtosis = 0;
};

Pooled pooled(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> z;
  Pooled out;
  for (const auto& t : ts) {
    const auto d = t.to(at::kDouble).flatten();
    out.max_abs = std::max(out.max_abs, d.abs().max().item<double>());
    z.push_back(d / d.std());
  }
  out.kurtosis = at::cat(z).pow(4).mean().item<double>();
  return out;
}

// Each `init` draws PEFT's distribution (scripts/parity/peft_reference.py init: PEFT's own initialisation of the same
// all-linear rank-16 adapters): default and its alias zeros_b as init_lora_weights=True (A kaiming-uniform with a =
// √5, i.e. U(±1/√in), B = 0), gaussian as "gaussian" (A ~ N(0, std 1/r), B = 0). With no common RNG the comparison
// is statistical: per A tensor the standard deviations agree within 20% (~5 standard errors at 512 samples), and the
// pooled kurtosis within 0.3 (uniform 1.8 vs normal 3, ~5 standard errors at 7,000 samples); uniform draws stay within
// the bound 1/√in; B is exactly 0. The initial model equals its base.
TEST(LoraInit, EachInitDrawsPeftsDistribution) {
  const auto base = fixtures() / "base";
  const int64_t rank = 16;
  const auto out = aligntrain::testing::scratch_dir("peft_init");
  run_or_throw(python() + " scripts/parity/peft_reference.py init " + base.string() + " " + out.string() + " " +
               std::to_string(rank) + " > " + (out / "log.txt").string() + " 2>&1");
  auto expected = read_all(fixtures() / "attn" / "expected.safetensors");
  for (const auto& [yaml, peft_file] : std::vector<std::pair<std::string, std::string>>{
           {"default", "init_true"}, {"zeros_b", "init_true"}, {"gaussian", "init_gaussian"}}) {
    SCOPED_TRACE("init: " + yaml);
    config::LoraConfig c;
    c.rank = rank;
    c.alpha = 16;
    c.targets = {"all-linear"};
    c.init = *config::parse_enum<config::LoraInit>(yaml);
    const LoraSettings s = stages::lora_settings(c);
    auto factory = dense_layer_factory();
    auto lm = std::make_shared<CausalLM>(load_model_config((base / "config.json").string()), *factory);
    load_hf_weights(*lm, base.string(), 0, 1);
    attach_lora(*lm, s, 0, 1, {});
    init_lora(*lm, s, 7, 0, 1);
    auto peft = read_all(out / (peft_file + ".safetensors"));
    std::vector<at::Tensor> ours_a, peft_a;
    for (const auto& p : lm->parameter_set()) {
      if (!is_adapter_name(p.name())) continue;
      ASSERT_TRUE(peft.count(p.name())) << p.name();
      const at::Tensor theirs = peft.at(p.name());
      ASSERT_EQ(p.tensor.sizes(), theirs.sizes()) << p.name();
      if (p.name().find("lora_B") != std::string::npos) {
        EXPECT_EQ(p.tensor.abs().max().item<double>(), 0.0) << p.name();
        EXPECT_EQ(theirs.abs().max().item<double>(), 0.0) << p.name();
        continue;
      }
      const double ratio = p.tensor.std().item<double>() / theirs.std().item<double>();
      EXPECT_GT(ratio, 0.8) << p.name();
      EXPECT_LT(ratio, 1.25) << p.name();
      if (peft_file == "init_true") {
        const double bound = 1.0 / std::sqrt(static_cast<double>(p.spec.shape[1]));
        EXPECT_LE(p.tensor.abs().max().item<double>(), bound) << p.name();
        EXPECT_LE(theirs.abs().max().item<double>(), bound) << p.name();
      } else {
        EXPECT_NEAR(p.tensor.std().item<double>(), 1.0 / rank, 0.15 / rank) << p.name();
      }
      ours_a.push_back(p.tensor.detach());
      peft_a.push_back(theirs);
    }
    const Pooled o = pooled(ours_a), t = pooled(peft_a);
    EXPECT_NEAR(o.kurtosis, t.kurtosis, 0.3);
    EXPECT_NEAR(o.kurtosis, peft_file == "init_true" ? 1.8 : 3.0, 0.3);
    at::NoGradGuard no_grad;
    EXPECT_TRUE(near_in_scale(summed_target_logps(*lm, expected["input_ids"]), expected["base_token_logps"], kParity));
  }
}

// Dropout on the adapter input: active with gradients on, off without; the seeded generator makes it repeatable, and
// activation checkpointing recomputes a layer with the same mask (the same gradients).
TEST(LoraDropout, SeededAndRecomputedWithTheSameMask) {
  auto expected = read_all(fixtures() / "all" / "expected.safetensors");
  const auto ids = expected["input_ids"];
  std::vector<std::map<std::string, at::Tensor>> grads;
  std::vector<at::Tensor> lps;
  for (bool checkpointing : {false, true, false}) {
    auto m = load_with_adapter(fixtures() / "all" / "adapter");
    auto s = m.settings;
    s.dropout = 0.3;
    auto lm = std::make_shared<CausalLM>(m.lm->config(), *m.factory);
    load_hf_weights(*lm, (fixtures() / "base").string(), 0, 1);
    attach_lora(*lm, s, 0, 1, {});
    load_adapter_weights(*lm, (fixtures() / "all" / "adapter").string(), 0, 1);
    lm->set_activation_checkpointing(checkpointing);
    at::manual_seed(42);
    const auto lp = summed_target_logps(*lm, ids);
    lp.sum().backward();
    lps.push_back(lp.detach());
    grads.emplace_back();
    for (const auto& p : lm->parameter_set())
      if (is_adapter_name(p.name())) grads.back()[p.name()] = p.tensor.grad().clone();
    if (!checkpointing) {
      at::NoGradGuard no_grad;  // no dropout without gradients: PEFT's eval logits
      EXPECT_TRUE(near_in_scale(summed_target_logps(*lm, ids), expected["token_logps"], kParity));
    }
  }
  EXPECT_FALSE(near_in_scale(lps[0], expected["token_logps"], 1e-3));  // dropout was active
  EXPECT_TRUE(lps[0].equal(lps[2]));                                   // seeded: bitwise repeatable
  EXPECT_TRUE(near_in_scale(lps[1], lps[0], 1e-6));
  for (const auto& [name, g] : grads[0]) {
    EXPECT_TRUE(g.equal(grads[2].at(name))) << name;
    EXPECT_TRUE(near_in_scale(grads[1].at(name), g, 1e-5)) << name;
  }
}

void write_config(const fs::path& dir, const std::string& json) {
  fs::create_directories(dir);
  std::ofstream(dir / "adapter_config.json") << json;
}

std::string error_of(const fs::path& dir) {
  try {
    read_adapter_config(dir.string());
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

TEST(PeftConfig, UnsupportedOptionsNameTheField) {
  const auto d = aligntrain::testing::scratch_dir("peft_errors");
  const std::string ok = R"("peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"])";
  write_config(d / "dora", "{" + ok + R"(, "use_dora": true})");
  EXPECT_NE(error_of(d / "dora").find("`use_dora`"), std::string::npos) << error_of(d / "dora");
  write_config(d / "ia3", R"({"peft_type": "IA3", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]})");
  EXPECT_NE(error_of(d / "ia3").find("`peft_type`"), std::string::npos) << error_of(d / "ia3");
  write_config(d / "save", "{" + ok + R"(, "modules_to_save": ["embed_tokens"]})");
  EXPECT_NE(error_of(d / "save").find("`modules_to_save`"), std::string::npos) << error_of(d / "save");
  write_config(d / "bias", "{" + ok + R"(, "bias": "all"})");
  EXPECT_NE(error_of(d / "bias").find("`bias`"), std::string::npos) << error_of(d / "bias");
  write_config(d / "regex", R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ".*proj"})");
  EXPECT_NE(error_of(d / "regex").find("`target_modules`"), std::string::npos) << error_of(d / "regex");
  write_config(d / "good", "{" + ok + R"(, "use_rslora": true, "modules_to_save": null})");
  EXPECT_EQ(error_of(d / "good"), "");
  EXPECT_DOUBLE_EQ(read_adapter_config((d / "good").string()).scaling(), 4.0);  // 8 / √4
}

}  // namespace
}  // namespace aligntrain::model
