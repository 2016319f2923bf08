// The model's parameter set (trainer/model/parameters.h) is the one list that loading, saving, the optimizer and
// gradient clipping walk: frozen parameters get no gradient, no optimizer state and no weight decay; a parameter
// registered beyond the architecture's table is saved and loaded with the others.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "test/util/test_env.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/presets.h"
#include "trainer/model/transformer.h"
#include "trainer/optim/adamw.h"
#include "trainer/parallel/data_parallel.h"

namespace aligntrain::model {
namespace {

namespace fs = std::filesystem;

struct Tiny {
  std::unique_ptr<LayerFactory> factory = dense_layer_factory();
  std::shared_ptr<CausalLM> lm;
  explicit Tiny(uint64_t seed = 1) {
    lm = std::make_shared<CausalLM>(preset_config("tiny-llama"), *factory);
    init_weights(*lm, seed, 0, 1);
  }
};

bool is_norm(const Parameter& p) { return p.name().find("norm") != std::string::npos; }

at::Tensor sum_logits(CausalLM& lm) {
  const auto ids = at::arange(12, at::kLong).remainder(lm.config().vocab_size).view({2, 6});
  return lm.forward({ids, std::nullopt, std::nullopt, std::nullopt}).sum();
}

TEST(ParameterSet, FollowsTheNameTableAndHoldsTheModulesOwnTensors) {
  Tiny m;
  const auto table = hf_tensor_table(m.lm->config());
  const auto& set = m.lm->parameter_set();
  ASSERT_EQ(set.size(), table.size());
  auto named = m.lm->named_parameters(true);
  size_t i = 0;
  for (const auto& p : set) {
    EXPECT_EQ(p.name(), table[i++].name);
    EXPECT_TRUE(p.tensor.is_same(named[p.name()])) << p.name();  // the parameter itself, not a copy
    EXPECT_EQ(p.decay, p.tensor.dim() >= 2) << p.name();          // matrices decay, norms do not
    EXPECT_TRUE(p.trainable);
  }
}

TEST(ParameterSet, FrozenParametersGetNoGradientNoOptimizerStateNoDecay) {
  Tiny m;
  auto& set = m.lm->parameter_set();
  set.set_trainable([](const Parameter& p) { return p.name() == "model.embed_tokens.weight" || is_norm(p); }, false);
  sum_logits(*m.lm).backward();
  std::set<std::string> frozen;
  for (const auto& p : set) {
    if (p.trainable) {
      EXPECT_TRUE(p.tensor.grad().defined()) << p.name();
    } else {
      frozen.insert(p.name());
      EXPECT_FALSE(p.tensor.grad().defined()) << p.name();
      EXPECT_FALSE(p.tensor.requires_grad()) << p.name();
    }
  }
  ASSERT_GT(frozen.size(), 2u);

  // Gradient clipping sees only the trainable parameters.
  EXPECT_EQ(parallel::norm_params(set).size(), set.size() - frozen.size());

  // AdamW with weight decay: frozen tensors are untouched and have no state; with zero gradients a trainable matrix
  // shrinks by exactly (1 - lr·wd) and a trainable norm (no-decay group) stays as it is.
  std::map<std::string, at::Tensor> before;
  for (const auto& p : set) {
    before[p.name()] = p.tensor.detach().clone();
    if (p.trainable) p.tensor.mutable_grad() = at::zeros_like(p.tensor);
  }
  optim::AdamWOptions o;
  o.weight_decay = 0.1;
  optim::AdamW adamw(optim::trainable_entries(set), o);
  adamw.step(0.5);
  for (const auto& [name, t] : adamw.state_tensors()) {
    for (const auto& f : frozen) EXPECT_EQ(name.find(f), std::string::npos) << name;
  }
  EXPECT_EQ(adamw.state_tensors().size(), 2 * (set.size() - frozen.size()));
  for (const auto& p : set) {
    const auto& b = before[p.name()];
    if (!p.trainable || !p.decay) {
      EXPECT_TRUE(at::equal(p.tensor, b)) << p.name();
    } else {
      EXPECT_TRUE(at::allclose(p.tensor, b * (1.0 - 0.5 * 0.1), 0, 0)) << p.name();
    }
  }
}

TEST(ParameterSet, ExtraParameterIsTrainedSavedAndLoaded) {
  const fs::path dir = aligntrain::testing::scratch_dir("parameter_set") / "model";
  Tiny m(3);
  const int64_t h = m.lm->config().hidden_size;
  TensorSpec spec{"score.weight", {1, h}, Split::kReplicated, Init::kNormal};
  m.lm->add_parameter(spec, at::randn({1, h}));
  const auto* extra = m.lm->parameter_set().find("score.weight");
  ASSERT_NE(extra, nullptr);
  EXPECT_EQ(m.lm->parameter_set().size(), hf_tensor_table(m.lm->config()).size() + 1);
  // The optimizer and the module (dtype/device moves) see it.
  const auto entries = optim::trainable_entries(m.lm->parameter_set());
  EXPECT_EQ(entries.back().name, "score.weight");
  m.lm->to(at::kDouble);
  EXPECT_EQ(extra->tensor.scalar_type(), at::kDouble);
  m.lm->to(at::kFloat);

  save_hf_model(dir.string(), m.lm->config(), m.lm->parameter_set().named_tensors(), "");

  // A model with the same registered parameter loads it back, bit for bit.
  Tiny back(99);
  back.lm->add_parameter(spec, at::zeros({1, h}));
  load_hf_weights(*back.lm, dir.string(), 0, 1);
  for (const auto& p : m.lm->parameter_set()) {
    const auto* q = back.lm->parameter_set().find(p.name());
    ASSERT_NE(q, nullptr) << p.name();
    EXPECT_TRUE(at::equal(p.tensor, q->tensor)) << p.name();
  }
  // A model without it refuses the folder, naming the tensor: loading goes through the set, not a fixed table.
  Tiny plain;
  try {
    load_hf_weights(*plain.lm, dir.string(), 0, 1);
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("score.weight"), std::string::npos) << e.what();
  }
  // Registering a name twice is a bug.
  EXPECT_THROW(m.lm->add_parameter(spec, at::zeros({1, h})), std::logic_error);
}

}  // namespace
}  // namespace aligntrain::model
