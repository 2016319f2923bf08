// trainer/optim/adamw.h: the same arithmetic as LibTorch's torch::optim::AdamW (weight decay on some parameters,
// off on others), a missing gradient as zero, fp32 master weights for bf16 parameters, and the checkpoint round
// trip of the optimizer state.
#include "trainer/optim/adamw.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace aligntrain::optim {
namespace {

at::Tensor randn(at::IntArrayRef shape, at::Generator& gen, at::ScalarType dtype = at::kFloat) {
  return at::randn(shape, gen).to(dtype);
}

std::vector<at::Tensor> clones(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> out;
  for (const auto& t : ts) out.push_back(t.detach().clone().requires_grad_(true));
  return out;
}

std::map<std::string, at::Tensor> by_name(const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, t] : tensors) out[name] = t;
  return out;
}

constexpr double kLrs[] = {1e-2, 3e-3, 5e-2, 2e-2, 1e-3, 4e-2};

TEST(AdamW, DecaysByDefaultOnlyMatrices) {
  EXPECT_TRUE(model::default_decay({3, 4}));
  EXPECT_TRUE(model::default_decay({2, 3, 4}));
  EXPECT_FALSE(model::default_decay({4}));
  EXPECT_FALSE(model::default_decay({}));
}

// Several steps with a varying learning rate and fresh gradients each step, against torch::optim::AdamW with two
// parameter groups (weight decay 0.1 for the matrices, 0 for the vectors).
TEST(AdamW, MatchesLibTorchAdamWWithTwoParamGroups) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const std::vector<at::Tensor> init = {randn({6, 5}, gen), randn({5}, gen), randn({3, 4}, gen), randn({4}, gen)};
  const std::vector<bool> decay = {true, false, true, false};
  auto ours = clones(init), theirs = clones(init);

  AdamWOptions options;
  options.weight_decay = 0.1;
  options.beta1 = 0.8;
  options.beta2 = 0.95;
  options.eps = 1e-6;
  std::vector<ParamGroupEntry> entries;
  for (size_t i = 0; i < ours.size(); ++i) entries.push_back({"p" + std::to_string(i), ours[i], decay[i]});
  AdamW opt(entries, options);

  auto torch_options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(1e-2).betas({0.8, 0.95}).eps(1e-6).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<at::Tensor>{theirs[0], theirs[2]}, torch_options(0.1));
  groups.emplace_back(std::vector<at::Tensor>{theirs[1], theirs[3]}, torch_options(0.0));
  torch::optim::AdamW ref(groups, *torch_options(0.0));

  for (double lr : kLrs) {
    for (size_t i = 0; i < init.size(); ++i) {
      const auto g = randn(init[i].sizes(), gen) * 0.5;
      ours[i].mutable_grad() = g.clone();
      theirs[i].mutable_grad() = g.clone();
    }
    for (auto& group : ref.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    opt.step(lr);
    ref.step();
  }
  EXPECT_EQ(opt.steps(), 6);
  for (size_t i = 0; i < init.size(); ++i) {
    // The same operations in the same order: bitwise equal.
    EXPECT_TRUE(at::equal(ours[i], theirs[i])) << "p" << i << " max diff "
                                               << (ours[i] - theirs[i]).abs().max().item<double>();
    EXPECT_FALSE(at::equal(ours[i], init[i])) << "p" << i << " did not move";
  }
  // The moments match torch's state too.
  const auto state = by_name(opt.state_tensors());
  ASSERT_EQ(state.size(), 8u);  // fp32 parameters have no master copy
  const auto& torch_state = ref.state();
  const auto& s0 = static_cast<const torch::optim::AdamWParamState&>(*torch_state.at(theirs[0].unsafeGetTensorImpl()));
  EXPECT_TRUE(at::equal(state.at("exp_avg.p0"), s0.exp_avg()));
  EXPECT_TRUE(at::equal(state.at("exp_avg_sq.p0"), s0.exp_avg_sq()));
  EXPECT_EQ(s0.step(), 6);
}

// Hand-worked first step: m̂ = g, v̂ = g², so the update is lr·g/(|g| + ε) after decay p·(1 − lr·wd).
TEST(AdamW, FirstStepHandWorked) {
  auto w = at::full({2}, 2.0f).requires_grad_();
  auto b = at::full({2}, 2.0f).requires_grad_();
  w.mutable_grad() = at::tensor({4.0f, -0.5f});
  b.mutable_grad() = at::tensor({4.0f, -0.5f});
  AdamWOptions options;
  options.weight_decay = 0.5;
  options.eps = 0.0;
  AdamW opt({{"w", w, true}, {"b", b, false}}, options);
  opt.step(0.1);
  // decayed: 2·(1 − 0.05) = 1.9, then ∓0.1
  EXPECT_NEAR(w[0].item<float>(), 1.8f, 1e-6);
  EXPECT_NEAR(w[1].item<float>(), 2.0f, 1e-6);
  EXPECT_NEAR(b[0].item<float>(), 1.9f, 1e-6);
  EXPECT_NEAR(b[1].item<float>(), 2.1f, 1e-6);
}

TEST(AdamW, MissingGradientCountsAsZero) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  const auto init = randn({4, 3}, gen);
  auto missing = init.clone().requires_grad_(), zero = init.clone().requires_grad_();
  AdamWOptions options;
  options.weight_decay = 0.2;
  AdamW a({{"w", missing, true}}, options), b({{"w", zero, true}}, options);
  for (int step = 0; step < 5; ++step) {
    const bool skip = step == 0 || step == 3;  // on the first step (empty moments) and after some history
    const auto g = randn({4, 3}, gen);
    missing.mutable_grad() = skip ? at::Tensor() : g.clone();
    zero.mutable_grad() = skip ? at::zeros({4, 3}) : g.clone();
    const auto before = missing.detach().clone();
    a.step(0.05);
    b.step(0.05);
    EXPECT_TRUE(at::equal(missing, zero)) << "step " << step;
    if (step == 0) {
      // Zero moments: only the weight decay moves the parameter (to within fp32 rounding of the product).
      EXPECT_TRUE(at::allclose(missing, before * (1.0 - 0.05 * 0.2), /*rtol=*/1e-6, /*atol=*/0.0));
    }
    if (step == 3) {
      // Moments from earlier steps still move it (a missing gradient is not a skipped parameter).
      EXPECT_GT((missing - before * (1.0 - 0.05 * 0.2)).abs().max().item<double>(), 1e-3);
    }
  }
  const auto sa = by_name(a.state_tensors()), sb = by_name(b.state_tensors());
  EXPECT_TRUE(at::equal(sa.at("exp_avg.w"), sb.at("exp_avg.w")));
  EXPECT_TRUE(at::equal(sa.at("exp_avg_sq.w"), sb.at("exp_avg_sq.w")));
}

// bf16 parameters: the update runs on an fp32 master (the same numbers as an fp32 parameter with the same
// gradients), the parameter is the master rounded to bf16, and updates below bf16's resolution accumulate.
TEST(AdamW, Bf16ParametersKeepAnFp32Master) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto init = randn({3, 8}, gen, at::kBFloat16);  // bf16-representable start values
  auto p16 = init.clone().requires_grad_(), p32 = init.to(at::kFloat).requires_grad_();
  AdamWOptions options;
  options.weight_decay = 0.01;
  AdamW a({{"w", p16, true}}, options), b({{"w", p32, true}}, options);
  for (double lr : kLrs) {
    const auto g = randn({3, 8}, gen, at::kBFloat16);
    p16.mutable_grad() = g.clone();
    p32.mutable_grad() = g.to(at::kFloat);
    a.step(lr);
    b.step(lr);
  }
  EXPECT_EQ(p16.scalar_type(), at::kBFloat16);
  const auto state = by_name(a.state_tensors());
  ASSERT_EQ(state.size(), 3u);
  const auto& master = state.at("master.w");
  EXPECT_EQ(master.scalar_type(), at::kFloat);
  EXPECT_EQ(state.at("exp_avg.w").scalar_type(), at::kFloat);
  EXPECT_EQ(state.at("exp_avg_sq.w").scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(master, p32)) << (master - p32).abs().max().item<double>();
  EXPECT_TRUE(at::equal(p16, master.to(at::kBFloat16)));
  EXPECT_EQ(by_name(b.state_tensors()).count("master.w"), 0u);
  // fp32 state: 3 tensors of 24 floats for bf16, 2 for fp32.
  EXPECT_EQ(a.state_bytes(), 3 * 24 * 4);
  EXPECT_EQ(b.state_bytes(), 2 * 24 * 4);
}

TEST(AdamW, Bf16UpdatesBelowResolutionAccumulateInTheMaster) {
  // Adam moves a parameter with a steady gradient by about lr a step; bf16 spacing at 1.0 is 2⁻⁷ (below 1.0,
  // 2⁻⁸ ≈ 0.0039), so steps of 1e-3 round back to 1.0 until enough of them have accumulated.
  auto p = at::ones({4}, at::kBFloat16).requires_grad_();
  AdamW opt({{"w", p, false}}, AdamWOptions{});
  for (int step = 1; step <= 10; ++step) {
    p.mutable_grad() = at::ones({4}, at::kBFloat16);
    opt.step(1e-3);
    const auto master = by_name(opt.state_tensors()).at("master.w");
    EXPECT_NEAR(master[0].item<double>(), 1.0 - 1e-3 * step, 1e-5) << "step " << step;
    EXPECT_TRUE(at::equal(p, master.to(at::kBFloat16))) << "step " << step;
    if (step == 1) {
      EXPECT_EQ(p[0].item<float>(), 1.0f);  // 0.999 rounds to 1.0 in bf16
    }
  }
  // 0.99 in bf16 is 253·2⁻⁸ = 0.98828125: the parameter moved only because the master kept every step.
  EXPECT_EQ(p[0].item<float>(), 0.98828125f);
}

// state_tensors() → load_state() into a fresh optimizer over the same weights: the next steps are identical,
// for fp32 parameters and for a bf16 one with its master.
TEST(AdamW, StateRoundTripContinuesIdentically) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const std::vector<at::Tensor> init = {randn({5, 4}, gen), randn({4}, gen), randn({2, 6}, gen, at::kBFloat16)};
  AdamWOptions options;
  options.weight_decay = 0.05;
  auto make = [&](std::vector<at::Tensor>& params) {
    return std::make_unique<AdamW>(
        std::vector<ParamGroupEntry>{{"a", params[0], true}, {"b", params[1], false}, {"c", params[2], true}},
        options);
  };
  auto grads = [&](std::vector<at::Tensor>& params, const std::vector<at::Tensor>& g) {
    for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = g[i].clone();
  };
  auto orig = clones(init);
  auto a = make(orig);
  for (int step = 0; step < 3; ++step) {
    std::vector<at::Tensor> g;
    for (const auto& t : init) g.push_back(randn(t.sizes(), gen, t.scalar_type()));
    grads(orig, g);
    a->step(kLrs[step]);
  }
  // A checkpoint: the weights and the optimizer state, copied.
  std::vector<std::pair<std::string, at::Tensor>> saved;
  for (const auto& [name, t] : a->state_tensors()) saved.emplace_back(name, t.clone());
  ASSERT_EQ(saved.size(), 7u);
  auto resumed_params = clones(orig);
  auto b = make(resumed_params);
  b->load_state(saved, a->steps());
  EXPECT_EQ(b->steps(), 3);
  EXPECT_EQ(b->state_bytes(), a->state_bytes());

  // A fresh optimizer that was not given the state diverges (a control that the comparison can fail).
  auto control_params = clones(orig);
  auto c = make(control_params);
  for (int step = 3; step < 6; ++step) {
    std::vector<at::Tensor> g;
    for (const auto& t : init) g.push_back(randn(t.sizes(), gen, t.scalar_type()));
    grads(orig, g);
    grads(resumed_params, g);
    grads(control_params, g);
    a->step(kLrs[step]);
    b->step(kLrs[step]);
    c->step(kLrs[step]);
  }
  for (size_t i = 0; i < init.size(); ++i) {
    EXPECT_TRUE(at::equal(orig[i], resumed_params[i])) << i;
    EXPECT_FALSE(at::equal(orig[i], control_params[i])) << i;
  }
  const auto sa = by_name(a->state_tensors()), sb = by_name(b->state_tensors());
  for (const auto& [name, t] : sa) EXPECT_TRUE(at::equal(t, sb.at(name))) << name;
}

TEST(AdamW, LoadStateWithAMissingTensorThrows) {
  auto w = at::zeros({2, 2}).requires_grad_(), v = at::zeros({3}, at::kBFloat16).requires_grad_();
  AdamW opt({{"w", w, true}, {"v", v, false}}, AdamWOptions{});
  const auto full = opt.state_tensors();
  ASSERT_EQ(full.size(), 5u);
  EXPECT_NO_THROW(opt.load_state(full, 0));
  for (const auto& [drop, _] : full) {
    std::vector<std::pair<std::string, at::Tensor>> partial;
    for (const auto& [name, t] : full)
      if (name != drop) partial.emplace_back(name, t.clone());
    try {
      opt.load_state(partial, 1);
      ADD_FAILURE() << "no error without " << drop;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(drop), std::string::npos) << e.what();
    }
  }
  // A mis-shaped tensor is named too.
  auto wrong = full;
  wrong[0].second = at::zeros({4});
  try {
    opt.load_state(wrong, 1);
    ADD_FAILURE() << "no error for a mis-shaped tensor";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(full[0].first), std::string::npos) << e.what();
  }
}

// The multi-tensor implementations against the per-parameter one, over six steps with a varying learning rate: weight
// decay on the matrices only, a bf16 parameter (fp32 master), a parameter whose gradient is missing at one step, and
// one larger than the per-parameter path's slice (2²² elements, updated in slices there). foreach runs the same ATen
// ops (on the CPU one tensor at a time), so it is bitwise the same; fused (_fused_adamw_) computes the decay as
// θ − lr·wd·θ and the update in one expression, so it agrees within fp32 rounding: each fp32 weight and each state
// tensor within a few units in the last place of its scale (1e-6 and 1e-5 relative), the bf16 parameter within one
// bf16 unit (1e-2 relative: it can round to the neighbouring bf16 value where the fp32 masters differ in a last bit).
struct ImplRun {
  std::vector<at::Tensor> params;
  std::map<std::string, at::Tensor> state;
};

ImplRun run_impl(AdamWImpl impl) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  const std::vector<at::Tensor> init = {randn({6, 5}, gen), randn({5}, gen), randn({4, 8}, gen, at::kBFloat16),
                                        randn({(int64_t{1} << 22) + 3}, gen), randn({3, 3}, gen)};
  const std::vector<bool> decay = {true, false, true, false, true};
  ImplRun r{clones(init), {}};
  AdamWOptions options;
  options.weight_decay = 0.1;
  options.beta1 = 0.8;
  options.beta2 = 0.95;
  options.impl = impl;
  std::vector<ParamGroupEntry> entries;
  for (size_t i = 0; i < init.size(); ++i) entries.push_back({"p" + std::to_string(i), r.params[i], decay[i]});
  AdamW opt(entries, options);
  EXPECT_EQ(opt.impl(), impl);
  auto grads = at::make_generator<at::CPUGeneratorImpl>(12);
  int step = 0;
  for (double lr : kLrs) {
    for (auto& p : r.params) p.mutable_grad() = randn(p.sizes(), grads, p.scalar_type());
    if (step++ == 2) r.params[4].mutable_grad() = at::Tensor();  // missing: counts as zero
    opt.step(lr);
  }
  r.state = by_name(opt.state_tensors());
  return r;
}

TEST(AdamW, ForeachIsBitwiseThePerParameterUpdate) {
  const ImplRun per = run_impl(AdamWImpl::kPerParameter), each = run_impl(AdamWImpl::kForeach);
  for (size_t i = 0; i < per.params.size(); ++i) {
    EXPECT_TRUE(at::equal(each.params[i], per.params[i])) << "p" << i;
  }
  ASSERT_EQ(each.state.size(), per.state.size());
  for (const auto& [name, t] : per.state) EXPECT_TRUE(at::equal(each.state.at(name), t)) << name;
}

TEST(AdamW, FusedAgreesWithThePerParameterUpdateWithinRounding) {
  const ImplRun per = run_impl(AdamWImpl::kPerParameter), fused = run_impl(AdamWImpl::kFused);
  for (size_t i = 0; i < per.params.size(); ++i) {
    const auto want = per.params[i].detach().to(at::kDouble), got = fused.params[i].detach().to(at::kDouble);
    const double rtol = per.params[i].scalar_type() == at::kBFloat16 ? 1e-2 : 1e-6;
    const double err = (got - want).abs().max().item<double>(), scale = want.abs().max().item<double>();
    EXPECT_LE(err, rtol * scale) << "p" << i;
  }
  for (const auto& [name, t] : per.state) {
    const double err = (fused.state.at(name) - t).abs().max().item<double>(), scale = t.abs().max().item<double>();
    EXPECT_LE(err, 1e-5 * scale) << name;
  }
  // Not the same code: the fused kernel does round differently somewhere (else this test would show nothing).
  bool any_difference = false;
  for (size_t i = 0; i < per.params.size(); ++i) any_difference |= !at::equal(fused.params[i], per.params[i]);
  EXPECT_TRUE(any_difference);
}

TEST(AdamW, AutoIsPerParameterOnTheCpu) {
  auto p = at::zeros({3}).requires_grad_();
  EXPECT_EQ(AdamW({{"w", p, false}}, AdamWOptions{}).impl(), AdamWImpl::kPerParameter);
}

}  // namespace
}  // namespace aligntrain::optim
