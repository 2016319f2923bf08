// trainer/objectives/preference.h: the worked numbers of METHODS.md §C (β = 0.1), cases of our own (batch of 3,
// unequal lengths, β = 0.3, non-default options) whose expected values were computed independently in Python double
// precision with the math module, gradients against central finite differences in fp64, the reductions between
// types (cdpo/robust with ε = 0 and D2O with K = 1, α = β are DPO), stability of the helpers at extreme inputs,
// KTO's z0, BCO's running mean against TRL's RunningMoments, and weighted mixes.
#include "trainer/objectives/preference.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/schema.h"

namespace aligntrain::objectives {
namespace {

using config::LossConfig;
using config::LossType;

at::Tensor T(const std::vector<double>& v) { return at::tensor(v, at::kDouble); }

std::vector<double> values(const at::Tensor& t) {
  const auto c = t.detach().to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

void expect_values(const at::Tensor& t, const std::vector<double>& expected, double tol, const std::string& what) {
  ASSERT_TRUE(t.defined()) << what;
  const auto got = values(t);
  ASSERT_EQ(got.size(), expected.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], expected[i], tol * std::max(1.0, std::abs(expected[i]))) << what << " [" << i << "]";
  }
}

std::map<std::string, at::Tensor> metrics_of(const LossTerms& t) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [k, v] : t.metrics) {
    EXPECT_FALSE(v.requires_grad()) << "metric " << k << " is not detached";
    EXPECT_EQ(out.count(k), 0u) << "metric " << k << " twice";
    out[k] = v;
  }
  return out;
}

double mean_of(const at::Tensor& t) { return t.mean().item<double>(); }

// METHODS.md §C worked example: logπθ(y_w) = −10, logπθ(y_l) = −12, logπref = −10.5 / −11.5, |y_w| = 5, |y_l| = 6,
// and a response-only NLL of 10/5 = 2.
PairLogps worked() {
  PairLogps in;
  in.chosen = T({-10.0});
  in.rejected = T({-12.0});
  in.chosen_len = T({5.0});
  in.rejected_len = T({6.0});
  in.ref_chosen = T({-10.5});
  in.ref_rejected = T({-11.5});
  in.chosen_nll = T({2.0});
  return in;
}

double worked_loss(LossType type, const LossConfig& cfg, double beta = 0.1) {
  return mean_of(paired_loss(type, cfg, beta, worked()).loss);
}

// Our own batch: three pairs with unequal lengths; the third has average log-probs above −ln 2 (the other branch
// of log1mexp). chosen_nll deliberately differs from −chosen/|y_w| so that the NLL input is the one used.
PairLogps own() {
  PairLogps in;
  in.chosen = T({-12.3, -40.0, -1.2});
  in.chosen_len = T({4, 17, 4});
  in.rejected = T({-15.1, -38.2, -1.0});
  in.rejected_len = T({9, 12, 2});
  in.ref_chosen = T({-13.0, -41.5, -0.7});
  in.ref_rejected = T({-14.0, -39.0, -1.6});
  in.chosen_nll = T({3.1, 2.2, 0.35});
  in.chosen_nll_with_prompt = T({2.9, 2.0, 0.5});
  return in;
}

constexpr double kOwnBeta = 0.3;

LossConfig own_cfg() {
  LossConfig c;
  c.label_smoothing = 0.2;
  c.gamma_beta_ratio = 0.4;
  c.orpo_lambda = 0.25;
  c.cpo_alpha = 0.7;
  c.mapo_snr = 0.5;
  c.mapo_timesteps = 3.0;
  return c;
}

// ---------------------------------------------------------------------------------------------------------------
// METHODS.md §C.14 and the per-method examples

TEST(WorkedExample, DpoFamily) {
  LossConfig c;
  EXPECT_NEAR(worked_loss(LossType::dpo, c), 0.644397, 1e-6);
  EXPECT_NEAR(worked_loss(LossType::cdpo, c), 0.644397, 1e-6);  // default ε = 0
  c.label_smoothing = 0.1;
  EXPECT_NEAR(worked_loss(LossType::cdpo, c), 0.654397, 1e-6);
  EXPECT_NEAR(worked_loss(LossType::robust, c), 0.631897, 1e-6);
  EXPECT_NEAR(worked_loss(LossType::hinge, c), 0.900000, 1e-6);
  EXPECT_NEAR(worked_loss(LossType::ln_dpo, c), 0.684023, 1e-6);
}

TEST(WorkedExample, Ipo) {
  LossConfig c;
  EXPECT_NEAR(worked_loss(LossType::ipo, c), 23.200278, 1e-6);
  c.ipo_raw = true;
  EXPECT_NEAR(worked_loss(LossType::ipo, c), 16.000000, 1e-6);
}

TEST(WorkedExample, SimPO) {
  LossConfig c;  // γ/β = 0.25 (official default)
  EXPECT_NEAR(worked_loss(LossType::simpo, c, 0.1), 0.705725, 1e-6);
  EXPECT_NEAR(worked_loss(LossType::simpo, c, 2.0), 0.974077, 1e-6);  // official β = 2
  c.gamma_beta_ratio = 5.0;                                           // β = 0.1, γ = 0.5 (TRL CPO simpo default)
  EXPECT_NEAR(worked_loss(LossType::simpo, c, 0.1), 0.974077, 1e-6);
  // TRL's CPO default adds the NLL (cpo_alpha = 1): SimPO + sft in a mix.
  c.type = {LossType::simpo, LossType::sft};
  EXPECT_NEAR(mean_of(paired_loss_mix(c, 0.1, worked()).loss), 2.974077, 1e-6);
}

TEST(WorkedExample, OrpoCpoMapo) {
  LossConfig c;
  EXPECT_NEAR(worked_loss(LossType::orpo, c, std::nan("")), 2.069315, 1e-6);  // ORPO ignores β
  EXPECT_NEAR(worked_loss(LossType::cpo, c), 2.598139, 1e-6);
  EXPECT_NEAR(worked_loss(LossType::mapo, c), 2.069315, 1e-6);
  EXPECT_NEAR(worked_loss(LossType::sft, c), 2.0, 1e-12);
}

TEST(WorkedExample, BcoPair) { EXPECT_NEAR(worked_loss(LossType::bco_pair, LossConfig{}), 1.336919, 1e-6); }

TEST(WorkedExample, Kto) {
  const auto policy = T({-10.0, -12.0}), ref = T({-10.5, -11.5});
  const auto desirable = at::tensor(std::vector<uint8_t>{1, 0}).to(at::kBool);
  auto t = kto_loss(LossConfig{}, 0.1, policy, ref, desirable, 0.0);
  expect_values(t.loss, {0.487503, 0.487503}, 1e-6, "kto z0=0");
  EXPECT_NEAR(mean_of(t.loss), 0.487503, 1e-6);
  t = kto_loss(LossConfig{}, 0.1, policy, ref, desirable, 0.2);
  expect_values(t.loss, {0.492501, 0.482507}, 1e-6, "kto z0=0.2");
  EXPECT_NEAR(mean_of(t.loss), 0.487504, 1e-6);
  auto m = metrics_of(t);
  EXPECT_NEAR(m.at("rewards/chosen")[0].item<double>(), 0.05, 1e-12);
  EXPECT_TRUE(std::isnan(m.at("rewards/chosen")[1].item<double>()));
  EXPECT_TRUE(std::isnan(m.at("rewards/rejected")[0].item<double>()));
  EXPECT_NEAR(m.at("rewards/rejected")[1].item<double>(), -0.05, 1e-12);
  EXPECT_EQ(m.at("logps/chosen")[0].item<double>(), -10.0);
  EXPECT_TRUE(std::isnan(m.at("logps/chosen")[1].item<double>()));
  EXPECT_EQ(m.at("logps/rejected")[1].item<double>(), -12.0);
  expect_values(m.at("kl"), {0.2, 0.2}, 0, "kl");
}

TEST(WorkedExample, Bco) {
  const auto policy = T({-10.0, -12.0}), ref = T({-10.5, -11.5});
  const auto desirable = at::tensor(std::vector<uint8_t>{1, 0}).to(at::kBool);
  // δ: the running mean updated with this batch's rewards (0.05, −0.05) first.
  const auto r = (policy - ref) * 0.1;
  const auto [delta, count] = running_mean_update(0.0, 1e-24, mean_of(r), 2.0);
  EXPECT_NEAR(delta, 0.0, 1e-15);
  EXPECT_NEAR(count, 2.0, 1e-15);
  auto t = bco_loss(LossConfig{}, 0.1, policy, ref, desirable, delta);
  expect_values(t.loss, {0.668460, 0.668460}, 1e-6, "bco");
  EXPECT_NEAR(mean_of(t.loss), 0.668460, 1e-6);
  // UDM with p = 0.8: w = clamp(p / (1 − p + 1e-8), 0.5, 10), on the undesirable example only (the weight given
  // for the desirable one is ignored).
  const double w = std::clamp(0.8 / (1 - 0.8 + 1e-8), 0.5, 10.0);
  t = bco_loss(LossConfig{}, 0.1, policy, ref, desirable, delta, T({w, w}));
  EXPECT_NEAR(mean_of(t.loss), 1.671149, 1e-6);
  auto m = metrics_of(t);
  expect_values(m.at("delta"), {delta, delta}, 0, "delta");
  EXPECT_NEAR(m.at("rewards/chosen")[0].item<double>(), 0.05, 1e-12);
  EXPECT_TRUE(std::isnan(m.at("rewards/chosen")[1].item<double>()));
}

TEST(WorkedExample, D2o) {
  LossConfig c;
  c.d2o_alpha = 0.1;  // K = 1, y_1 := y_w, α = β = 0.1
  const auto samples = T({0.5}).view({1, 1}), negative = T({-0.5});
  EXPECT_NEAR(mean_of(d2o_loss(c, 0.1, samples, negative).loss), 0.644397, 1e-6);
  c.d2o_alpha = 0.05;
  EXPECT_NEAR(mean_of(d2o_loss(c, 0.1, samples, negative).loss), 0.656350, 1e-6);
}

TEST(WorkedExample, Metrics) {
  LossConfig c;
  auto m = metrics_of(paired_loss(LossType::dpo, c, 0.1, worked()));
  EXPECT_NEAR(m.at("rewards/chosen").item<double>(), 0.05, 1e-12);
  EXPECT_NEAR(m.at("rewards/rejected").item<double>(), -0.05, 1e-12);
  EXPECT_EQ(m.at("rewards/accuracies").item<double>(), 1.0);
  EXPECT_NEAR(m.at("rewards/margins").item<double>(), 0.1, 1e-12);
  EXPECT_EQ(m.at("logps/chosen").item<double>(), -10.0);
  EXPECT_EQ(m.at("logps/rejected").item<double>(), -12.0);
  // CPO: β·Σlogπ; SimPO and MaPO: β·avg logπ; ORPO: λ·avg logπ.
  m = metrics_of(paired_loss(LossType::cpo, c, 0.1, worked()));
  EXPECT_NEAR(m.at("rewards/chosen").item<double>(), -1.0, 1e-12);
  EXPECT_NEAR(m.at("rewards/rejected").item<double>(), -1.2, 1e-12);
  EXPECT_EQ(m.at("nll").item<double>(), 2.0);
  m = metrics_of(paired_loss(LossType::simpo, c, 2.0, worked()));
  EXPECT_NEAR(m.at("rewards/chosen").item<double>(), -4.0, 1e-12);
  EXPECT_NEAR(m.at("rewards/rejected").item<double>(), -4.0, 1e-12);
  EXPECT_EQ(m.at("rewards/accuracies").item<double>(), 0.0);  // equal, not greater
  m = metrics_of(paired_loss(LossType::orpo, c, 0.1, worked()));
  EXPECT_NEAR(m.at("rewards/chosen").item<double>(), -0.2, 1e-12);
  EXPECT_NEAR(m.at("log_odds_ratio").item<double>(), -std::log(2.0), 1e-12);
  EXPECT_NEAR(m.at("log_odds_chosen").item<double>(), 0.0, 1e-12);
  EXPECT_EQ(m.at("nll").item<double>(), 2.0);
  m = metrics_of(paired_loss(LossType::mapo, c, 0.1, worked()));
  EXPECT_NEAR(m.at("rewards/chosen").item<double>(), -0.2, 1e-12);
  EXPECT_NEAR(m.at("log_odds").item<double>(), 0.0, 1e-12);
  m = metrics_of(paired_loss(LossType::sft, c, 0.1, worked()));
  EXPECT_NEAR(m.at("rewards/chosen").item<double>(), -2.0, 1e-12);
  EXPECT_EQ(m.at("nll").item<double>(), 2.0);
}

// ---------------------------------------------------------------------------------------------------------------
// Our own batch (β = 0.3, ε = 0.2, γ/β = 0.4, λ = 0.25, cpo_alpha = 0.7, s = 0.5, T = 3)

struct OwnCase {
  LossType type;
  std::function<void(LossConfig&)> tweak;
  std::vector<double> expected;
  const char* label;
};

std::vector<OwnCase> own_cases() {
  using L = LossType;
  auto none = [](LossConfig&) {};
  return {
      {L::dpo, none, {0.459162736270894, 0.593649581021783, 0.871698358593861}, "dpo"},
      {L::cdpo, none, {0.567162736270894, 0.635649581021783, 0.805698358593862}, "cdpo"},
      {L::robust, none, {0.279162736270894, 0.523649581021783, 0.981698358593861}, "robust"},
      {L::hinge, none, {0.46, 0.79, 1.33}, "hinge"},
      {L::ipo, none, {1.87537808641975, 2.7063475586313, 4.37506944444444}, "ipo"},
      {L::ipo,
       [](LossConfig& c) { c.ipo_raw = true; },
       {0.0177777777777775, 0.934444444444439, 7.65444444444444},
       "ipo_raw"},
      {L::ln_dpo, none, {0.649557354969375, 0.689917119997182, 0.758927836916096}, "ln_dpo"},
      {L::bco_pair, none, {1.13534793961565, 1.31357891262388, 1.55814877263031}, "bco_pair"},
      {L::simpo, none, {0.998636306701432, 0.630670831909756, 0.723597113076141}, "simpo"},
      {L::orpo, none, {3.33700083086998, 2.0861607668223, 0.607832799699795}, "orpo (NLL with prompt)"},
      {L::orpo,
       [](LossConfig& c) { c.orpo_prompt_in_nll = false; },
       {3.53700083086998, 2.2861607668223, 0.457832799699795},
       "orpo (response NLL)"},
      {L::cpo, none, {2.69686989966032, 2.43116273627089, 0.956597113076141}, "cpo"},
      {L::cpo,
       [](LossConfig& c) { c.alpha = 0.05; },
       {2.67638511472807, 4.6144241104181, 0.957667236093459},
       "cpo alphapo"},
      {L::mapo, none, {3.42352485680426, 2.35080522098133, 0.542672279273784}, "mapo"},
      {L::sft, none, {3.1, 2.2, 0.35}, "sft"},
  };
}

TEST(OwnBatch, LossValues) {
  for (const auto& oc : own_cases()) {
    auto cfg = own_cfg();
    oc.tweak(cfg);
    const auto t = paired_loss(oc.type, cfg, kOwnBeta, own());
    EXPECT_EQ(t.loss.scalar_type(), at::kDouble) << oc.label;
    expect_values(t.loss, oc.expected, 1e-12, oc.label);
  }
}

TEST(OwnBatch, Metrics) {
  auto m = metrics_of(paired_loss(LossType::ln_dpo, own_cfg(), kOwnBeta, own()));
  // ρ_w = (0.7, 1.5, −0.5), ρ_l = (−1.1, 0.8, 0.6).
  expect_values(m.at("rewards/chosen"), {0.21, 0.45, -0.15}, 1e-12, "rewards/chosen");
  expect_values(m.at("rewards/rejected"), {-0.33, 0.24, 0.18}, 1e-12, "rewards/rejected");
  expect_values(m.at("rewards/margins"), {0.54, 0.21, -0.33}, 1e-12, "rewards/margins");
  expect_values(m.at("rewards/accuracies"), {1, 1, 0}, 0, "rewards/accuracies");
  expect_values(m.at("logps/chosen"), {-12.3, -40.0, -1.2}, 0, "logps/chosen");
  expect_values(m.at("logps/rejected"), {-15.1, -38.2, -1.0}, 0, "logps/rejected");
  auto cfg = own_cfg();
  cfg.alpha = 0.05;
  m = metrics_of(paired_loss(LossType::cpo, cfg, kOwnBeta, own()));
  expect_values(m.at("rewards/chosen"), {-5.09793959734996, -38.3343365935839, -0.371019279272158}, 1e-12,
                "alphapo rewards/chosen");
  m = metrics_of(paired_loss(LossType::orpo, own_cfg(), kOwnBeta, own()));
  expect_values(m.at("log_odds_chosen"), {-1.55669600285022, 0.887980222475153, 0.617473483247658}, 1e-12,
                "orpo log_odds");
  expect_values(m.at("nll"), {2.9, 2.0, 0.5}, 0, "orpo nll with prompt");
  m = metrics_of(paired_loss(LossType::mapo, own_cfg(), kOwnBeta, own()));
  expect_values(m.at("log_odds"), {-0.220899329079705, 0.141981547453516, 0.0348478656096205}, 1e-12, "mapo m");
}

TEST(OwnBatch, OrpoFallsBackToResponseNllWithoutPromptNll) {
  auto in = own();
  in.chosen_nll_with_prompt = at::Tensor();
  expect_values(paired_loss(LossType::orpo, own_cfg(), kOwnBeta, in).loss,
                {3.53700083086998, 2.2861607668223, 0.457832799699795}, 1e-12, "orpo fallback");
}

TEST(OwnBatch, Kto) {
  LossConfig c;
  c.desirable_weight = 1.3;
  c.undesirable_weight = 0.8;
  const auto desirable = at::tensor(std::vector<uint8_t>{1, 0, 1, 0}).to(at::kBool);
  const auto t = kto_loss(c, kOwnBeta, T({-12.3, -40.0, -1.2, -7.7}), T({-13.0, -39.5, -0.7, -8.0}), desirable, 0.15);
  expect_values(t.loss, {0.596496331404704, 0.361123113133493, 0.713174941158075, 0.408998481557484}, 1e-12, "kto");
}

TEST(OwnBatch, Bco) {
  const auto desirable = at::tensor(std::vector<uint8_t>{1, 0, 1, 0}).to(at::kBool);
  const auto t = bco_loss(LossConfig{}, kOwnBeta, T({-12.3, -40.0, -1.2, -7.7}), T({-13.0, -39.5, -0.7, -8.0}),
                          desirable, -0.07, T({2.5, 3.0, 0.7, 1.9}));
  expect_values(t.loss, {0.562915333560347, 1.96184090195277, 0.73394696731759, 1.47505316877741}, 1e-12, "bco");
}

TEST(OwnBatch, D2oWithThreeSamples) {
  LossConfig c;
  c.d2o_alpha = 0.07;
  const auto samples = T({0.4, -0.2, 1.1, -0.6, 0.3, 0.05}).view({2, 3});
  const auto t = d2o_loss(c, kOwnBeta, samples, T({-0.5, 0.8}));
  expect_values(t.loss, {0.61404645213224, 0.73446708145629}, 1e-12, "d2o");
}

// ---------------------------------------------------------------------------------------------------------------
// Reductions between types

TEST(Reductions, ZeroSmoothingIsDpo) {
  auto cfg = own_cfg();
  cfg.label_smoothing = 0.0;
  const auto dpo = values(paired_loss(LossType::dpo, cfg, kOwnBeta, own()).loss);
  expect_values(paired_loss(LossType::cdpo, cfg, kOwnBeta, own()).loss, dpo, 1e-15, "cdpo eps=0");
  expect_values(paired_loss(LossType::robust, cfg, kOwnBeta, own()).loss, dpo, 1e-15, "robust eps=0");
}

TEST(Reductions, D2oWithOneSampleAndAlphaBetaIsDpo) {
  const auto in = own();
  LossConfig c;
  c.d2o_alpha = kOwnBeta;
  const auto dpo = paired_loss(LossType::dpo, c, kOwnBeta, in);
  const auto d2o = d2o_loss(c, kOwnBeta, (in.chosen - in.ref_chosen).view({3, 1}), in.rejected - in.ref_rejected);
  expect_values(d2o.loss, values(dpo.loss), 1e-14, "d2o K=1");
  auto md = metrics_of(dpo), m2 = metrics_of(d2o);
  for (const char* k : {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"})
    expect_values(m2.at(k), values(md.at(k)), 1e-14, k);
}

TEST(Reductions, FloatInputStaysFloat) {
  auto in = own();
  for (auto* t :
       {&in.chosen, &in.rejected, &in.ref_chosen, &in.ref_rejected, &in.chosen_nll, &in.chosen_nll_with_prompt})
    *t = t->to(at::kFloat);
  in.chosen_len = in.chosen_len.to(at::kLong);  // integer lengths are cast to the computing dtype
  for (const auto& oc : own_cases()) {
    auto cfg = own_cfg();
    oc.tweak(cfg);
    const auto t = paired_loss(oc.type, cfg, kOwnBeta, in);
    EXPECT_EQ(t.loss.scalar_type(), at::kFloat) << oc.label;
    expect_values(t.loss, oc.expected, 1e-5, oc.label);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Gradients against central finite differences (fp64)

using Field = at::Tensor PairLogps::*;
const std::vector<std::pair<Field, const char*>> kDiffFields = {
    {&PairLogps::chosen, "chosen"},
    {&PairLogps::rejected, "rejected"},
    {&PairLogps::chosen_nll, "chosen_nll"},
    {&PairLogps::chosen_nll_with_prompt, "chosen_nll_with_prompt"},
};

// d(Σ_b loss_b)/d input against (f(x + h) − f(x − h)) / 2h, element by element.
void check_gradients(const std::function<at::Tensor(const std::vector<at::Tensor>&)>& f,
                     const std::vector<at::Tensor>& inputs, const std::vector<std::string>& names,
                     const std::string& label) {
  std::vector<at::Tensor> leaves;
  for (const auto& x : inputs) leaves.push_back(x.detach().clone().requires_grad_(true));
  f(leaves).sum().backward();
  constexpr double h = 1e-6;
  for (size_t a = 0; a < inputs.size(); ++a) {
    const auto grad = leaves[a].grad();
    for (int64_t j = 0; j < inputs[a].numel(); ++j) {
      auto eval = [&](double step) {
        std::vector<at::Tensor> xs;
        for (const auto& x : inputs) xs.push_back(x.detach().clone());
        xs[a].view({-1})[j] += step;
        return f(xs).sum().item<double>();
      };
      const double fd = (eval(h) - eval(-h)) / (2 * h);
      const double an = grad.defined() ? grad.reshape({-1})[j].item<double>() : 0.0;
      EXPECT_NEAR(an, fd, 1e-6 * std::max(1.0, std::abs(fd))) << label << ": d/d " << names[a] << "[" << j << "]";
      EXPECT_TRUE(std::isfinite(an)) << label;
    }
  }
}

TEST(Gradients, PairedTypesMatchFiniteDifferences) {
  for (const auto& oc : own_cases()) {
    auto cfg = own_cfg();
    oc.tweak(cfg);
    std::vector<at::Tensor> inputs;
    std::vector<std::string> names;
    const auto base = own();
    for (const auto& [field, n] : kDiffFields) {
      inputs.push_back(base.*field);
      names.push_back(n);
    }
    check_gradients(
        [&](const std::vector<at::Tensor>& xs) {
          auto in = base;
          for (size_t i = 0; i < kDiffFields.size(); ++i) in.*(kDiffFields[i].first) = xs[i];
          return paired_loss(oc.type, cfg, kOwnBeta, in).loss;
        },
        inputs, names, oc.label);
  }
}

TEST(Gradients, ReferenceGetsNoGradient) {
  auto in = own();
  in.ref_chosen = in.ref_chosen.clone().requires_grad_(true);
  in.ref_rejected = in.ref_rejected.clone().requires_grad_(true);
  in.chosen = in.chosen.clone().requires_grad_(true);
  paired_loss(LossType::dpo, own_cfg(), kOwnBeta, in).loss.sum().backward();
  EXPECT_TRUE(in.chosen.grad().defined());
  EXPECT_FALSE(in.ref_chosen.grad().defined());
  EXPECT_FALSE(in.ref_rejected.grad().defined());
}

TEST(Gradients, MixMatchesFiniteDifferences) {
  auto cfg = own_cfg();
  cfg.type = {LossType::dpo, LossType::orpo, LossType::mapo};
  cfg.weights = {0.5, 1.5, -0.25};
  const auto base = own();
  check_gradients(
      [&](const std::vector<at::Tensor>& xs) {
        auto in = base;
        in.chosen = xs[0];
        in.rejected = xs[1];
        in.chosen_nll = xs[2];
        return paired_loss_mix(cfg, kOwnBeta, in).loss;
      },
      {base.chosen, base.rejected, base.chosen_nll}, {"chosen", "rejected", "chosen_nll"}, "mix");
}

TEST(Gradients, UnpairedAndD2o) {
  LossConfig c;
  c.desirable_weight = 1.3;
  c.undesirable_weight = 0.8;
  c.d2o_alpha = 0.07;
  const auto desirable = at::tensor(std::vector<uint8_t>{1, 0, 1, 0}).to(at::kBool);
  const auto ref = T({-13.0, -39.5, -0.7, -8.0});
  const auto policy = T({-12.3, -40.0, -1.2, -7.7});
  check_gradients(
      [&](const std::vector<at::Tensor>& xs) { return kto_loss(c, kOwnBeta, xs[0], ref, desirable, 0.15).loss; },
      {policy}, {"policy"}, "kto");
  check_gradients(
      [&](const std::vector<at::Tensor>& xs) {
        return bco_loss(c, kOwnBeta, xs[0], ref, desirable, -0.07, T({2.5, 3.0, 0.7, 1.9})).loss;
      },
      {policy}, {"policy"}, "bco");
  check_gradients([&](const std::vector<at::Tensor>& xs) { return d2o_loss(c, kOwnBeta, xs[0], xs[1]).loss; },
                  {T({0.4, -0.2, 1.1, -0.6, 0.3, 0.05}).view({2, 3}), T({-0.5, 0.8})}, {"samples", "negative"}, "d2o");
}

// ---------------------------------------------------------------------------------------------------------------
// Stable helpers

// Value and derivative at each input, all finite.
void expect_stable(const std::function<at::Tensor(const at::Tensor&)>& f, const std::vector<double>& u,
                   const std::vector<double>& value, const std::vector<double>& slope, const std::string& label) {
  const auto x = T(u).requires_grad_(true);
  const auto y = f(x);
  y.sum().backward();
  for (double v : values(y)) EXPECT_TRUE(std::isfinite(v)) << label << " value";
  for (double g : values(x.grad())) EXPECT_TRUE(std::isfinite(g)) << label << " gradient";
  expect_values(y, value, 1e-14, label + " value");
  expect_values(x.grad(), slope, 1e-12, label + " gradient");
}

TEST(Stable, LogSigmoid) {
  // logσ(u) = −log1p(e^−u); slope σ(−u).
  expect_stable(log_sigmoid, {-1e4, 1e4, -1e-10, 0.0, 40.0, -40.0},
                {-1e4, 0.0, -0.6931471806099453, -0.6931471805599453, -4.248354255291589e-18, -40.0},
                {1.0, 0.0, 0.500000000025, 0.5, 4.248354255291589e-18, 1.0}, "log_sigmoid");
}

TEST(Stable, Log1mexp) {
  // log(1 − e^u); slope −e^u / (1 − e^u) = −1 / expm1(−u). Both branches and the switch at −ln 2.
  const double ln2 = std::log(2.0);
  std::vector<double> u = {-1e4, -1e-10, -ln2, -ln2 - 1e-9, -ln2 + 1e-9, -3.0, -0.1, -50.0};
  std::vector<double> value, slope;
  for (double x : u) {
    value.push_back(std::log(-std::expm1(x)));
    slope.push_back(-1.0 / std::expm1(-x));
  }
  expect_stable(log1mexp, u, value, slope, "log1mexp");
  EXPECT_NEAR(values(log1mexp(T({-1e-10})))[0], -23.025850929990458, 1e-12);
  EXPECT_NEAR(values(log1mexp(T({-1e4})))[0], 0.0, 1e-300);
  // Relative accuracy where the result is tiny (log1p branch) and where 1 − e^u is tiny (expm1 branch).
  EXPECT_NEAR(values(log1mexp(T({-50.0})))[0] / -std::exp(-50.0), 1.0, 1e-14);
  EXPECT_NEAR(values(log1mexp(T({-1e-12})))[0], std::log(1e-12) - 5e-13, 1e-14);
}

TEST(Stable, MapoG) {
  // g(u) = u / expm1(u), g(0) = 1; slope (expm1(u) − u·e^u) / expm1(u)², with the limit −1/2 at 0.
  std::vector<double> u = {0.0, 1e-6, -1e-6, 1e-4, -1e-4, 2e-4, 0.5, 2.0, -3.0, 40.0, 1e4, -1e4};
  std::vector<double> value, slope;
  for (double x : u) {
    if (x == 0.0) {
      value.push_back(1.0);
      slope.push_back(-0.5);
    } else if (x > 700) {
      value.push_back(0.0);
      slope.push_back(0.0);
    } else {
      const double e = std::expm1(x);
      value.push_back(x / e);
      // Near 0 the closed form cancels; use the series slope −1/2 + u/6 − u³/180 there.
      slope.push_back(std::abs(x) < 1e-3 ? -0.5 + x / 6 - x * x * x / 180 : (e - x * std::exp(x)) / (e * e));
    }
  }
  expect_stable(mapo_g, u, value, slope, "mapo_g");
}

TEST(Stable, ExtremeLogProbsStayFinite) {
  // ORPO with average log-probs at −1e-10 and −1e4 (log1mexp at both ends), MaPO with a zero and a huge NLL.
  for (LossType t : {LossType::orpo, LossType::mapo, LossType::simpo, LossType::cpo}) {
    PairLogps in;
    in.chosen = T({-1e-10, -1e4}).requires_grad_(true);
    in.rejected = T({-1e4, -1e-10}).requires_grad_(true);
    in.chosen_len = T({1, 1});
    in.rejected_len = T({1, 1});
    in.chosen_nll = T({0.0, 1e4}).requires_grad_(true);
    const auto loss = paired_loss(t, LossConfig{}, 0.1, in).loss;
    loss.sum().backward();
    const std::string name = config::to_string(t);
    for (double v : values(loss)) EXPECT_TRUE(std::isfinite(v)) << name;
    ASSERT_TRUE(in.rejected.grad().defined()) << name;
    if (t != LossType::mapo) {  // MaPO's winner term is chosen_nll, not the summed log-prob
      ASSERT_TRUE(in.chosen.grad().defined()) << name;
      for (double g : values(in.chosen.grad())) EXPECT_TRUE(std::isfinite(g)) << name;
    }
    for (double g : values(in.rejected.grad())) EXPECT_TRUE(std::isfinite(g)) << name;
    if (t != LossType::simpo) {
      ASSERT_TRUE(in.chosen_nll.grad().defined()) << name;
      for (double g : values(in.chosen_nll.grad())) EXPECT_TRUE(std::isfinite(g)) << name;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// KTO z0, BCO running mean

TEST(KtoZ0, MeanClampedAtZero) {
  EXPECT_DOUBLE_EQ(kto_z0(0.8, 4.0), 0.2);
  EXPECT_EQ(kto_z0(-3.0, 4.0), 0.0);
  EXPECT_EQ(kto_z0(0.0, 4.0), 0.0);
  EXPECT_EQ(kto_z0(1.0, 0.0), 0.0);  // no mismatched pair
}

TEST(RunningMean, MatchesTrlRunningMoments) {
  // TRL RunningMoments (mean 0, count 1e-24) fed [0.05, −0.05], [0.3, 0.1, −0.2], [1.0], [−0.4, 0.25, 0.6, 0.9, −1.3];
  // its means after each batch, computed in Python fp64 with TRL's update.
  const std::vector<std::pair<double, double>> batches = {
      {0.0, 2}, {0.06666666666666668, 3}, {1.0, 1}, {0.010000000000000009, 5}};
  const std::vector<double> means = {0.0, 0.040000000000000008, 0.20000000000000001, 0.11363636363636365};
  double mean = 0.0, count = 1e-24;
  for (size_t i = 0; i < batches.size(); ++i) {
    std::tie(mean, count) = running_mean_update(mean, count, batches[i].first, batches[i].second);
    EXPECT_NEAR(mean, means[i], 1e-15) << "after batch " << i;
  }
  EXPECT_NEAR(count, 11.0, 1e-12);
  // The first batch replaces the initial mean (n = 1e-24 carries no weight).
  const auto first = running_mean_update(0.0, 1e-24, 0.37, 4);
  EXPECT_DOUBLE_EQ(first.first, 0.37);
}

// ---------------------------------------------------------------------------------------------------------------
// Mixes and errors

TEST(Mix, WeightedSumAndPerTypeMetrics) {
  auto cfg = own_cfg();
  cfg.type = {LossType::dpo, LossType::sft};
  cfg.weights = {0.5, 2.0};
  const auto t = paired_loss_mix(cfg, kOwnBeta, own());
  const std::vector<double> dpo = {0.459162736270894, 0.593649581021783, 0.871698358593861};
  const std::vector<double> nll = {3.1, 2.2, 0.35};
  expect_values(t.loss, {0.5 * dpo[0] + 2 * nll[0], 0.5 * dpo[1] + 2 * nll[1], 0.5 * dpo[2] + 2 * nll[2]}, 1e-12,
                "mix");
  auto m = metrics_of(t);
  expect_values(m.at("loss/dpo"), dpo, 1e-12, "loss/dpo (unweighted)");
  expect_values(m.at("loss/sft"), nll, 1e-12, "loss/sft (unweighted)");
  expect_values(m.at("rewards/chosen"), {0.21, 0.45, -0.15}, 1e-12, "first type's metrics");
  EXPECT_EQ(m.count("nll"), 0u);  // only the first type's metrics (and loss/<type>)

  cfg.weights.clear();  // all 1
  expect_values(paired_loss_mix(cfg, kOwnBeta, own()).loss, {dpo[0] + nll[0], dpo[1] + nll[1], dpo[2] + nll[2]}, 1e-12,
                "mix unit weights");
  cfg.type = {LossType::ipo};
  expect_values(paired_loss_mix(cfg, kOwnBeta, own()).loss, {1.87537808641975, 2.7063475586313, 4.37506944444444},
                1e-12, "single type");
}

TEST(Errors, RejectBadInputs) {
  auto in = own();
  in.ref_chosen = at::Tensor();
  EXPECT_THROW(paired_loss(LossType::dpo, LossConfig{}, 0.1, in), std::invalid_argument);
  EXPECT_NO_THROW(paired_loss(LossType::simpo, LossConfig{}, 2.0, in));  // reference-free
  EXPECT_THROW(paired_loss(LossType::kto, LossConfig{}, 0.1, own()), std::invalid_argument);
  LossConfig c;
  c.type = {LossType::dpo, LossType::sft};
  c.weights = {1.0};
  EXPECT_THROW(paired_loss_mix(c, 0.1, own()), std::invalid_argument);
  c.type.clear();
  c.weights.clear();
  EXPECT_THROW(paired_loss_mix(c, 0.1, own()), std::invalid_argument);
  c.label_smoothing = 0.5;
  EXPECT_THROW(paired_loss(LossType::robust, c, 0.1, own()), std::invalid_argument);
  EXPECT_THROW(d2o_loss(LossConfig{}, 0.1, T({1.0, 2.0}), T({1.0, 2.0})), std::invalid_argument);
}

}  // namespace
}  // namespace aligntrain::objectives
