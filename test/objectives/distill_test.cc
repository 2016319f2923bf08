// trainer/objectives/distill.h on one rank (a group of one): the worked numbers of METHODS.md §A, §B and §D.1; cases
// of our own (3 positions, V = 11, k = 3, temperature 2, out-of-vocabulary table ids, differing table sizes) whose
// expected values were computed independently in Python double precision with the math module (plain lists, no
// torch); central finite-difference gradients in fp64 for every student-differentiable function; no gradient to
// teachers; and the chunked token loss against the unchunked computation (chunk sizes 1, 3, N, a tied weight).
#include "trainer/objectives/distill.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "test/util/tolerance.h"
#include "trainer/parallel/vocab_parallel.h"
#include "trainer/runtime/communicator_self.h"

namespace aligntrain::objectives {
namespace {

runtime::SelfCommunicator one;

at::Tensor row(const std::vector<double>& v) { return at::tensor(v, at::kDouble).view({1, -1}); }

void expect_values(const at::Tensor& t, const std::vector<double>& want, double tol, const std::string& what) {
  const auto got = t.detach().to(at::kDouble).contiguous().view({-1});
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size())) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(got[i].item<double>(), want[i], tol * std::max(1.0, std::abs(want[i]))) << what << " [" << i << "]";
  }
}

using aligntrain::testing::near_in_scale;

// ---- METHODS.md worked numbers: student z=[2,1,0,−1], teacher (DPO) z=[0.5,2,0.3,−1], ref (rdpo) z=[1.5,1,0.5,−1].
at::Tensor toy_student() { return row({2.0, 1.0, 0.0, -1.0}); }
at::Tensor toy_teacher() { return row({0.5, 2.0, 0.3, -1.0}); }
at::Tensor toy_ref() { return row({1.5, 1.0, 0.5, -1.0}); }

TEST(MethodsToy, KdDivergences) {
  for (auto dtype : {at::kDouble, at::kFloat}) {
    const auto t = toy_teacher().to(dtype), s = toy_student().to(dtype);
    expect_values(kd_divergence(t, s, Divergence::forward_kl, 0.0, 1.0, one), {0.559488}, 1e-6, "FKL");
    expect_values(kd_divergence(t, s, Divergence::reverse_kl, 0.0, 1.0, one), {0.638074}, 1e-6, "RKL");
    expect_values(kd_divergence(t, s, Divergence::jsd, 0.5, 1.0, one), {0.140154}, 1e-6, "JSD(0.5)");
    expect_values(kd_divergence(t, s, Divergence::jsd, 0.1, 1.0, one), {0.049918}, 1e-6, "JSD(0.1)");
    expect_values(kd_divergence(t, s, Divergence::tvd, 0.0, 1.0, one), {0.490623}, 1e-6, "TVD");
  }
}

TEST(MethodsToy, DckdAndAdpa) {
  const auto dpo = teacher_table(toy_teacher(), 2, one), ref = teacher_table(toy_ref(), 2, one);
  EXPECT_TRUE(dpo.indices.equal(at::tensor({1, 0}, at::kLong).view({1, 2})));
  expect_values(dckd_kl(toy_student(), dpo, 4, one), {0.558209}, 1e-6, "DCKD 3-bin KL");
  const auto adv = adpa_advantages(dpo, ref);
  EXPECT_TRUE(adv.indices.equal(at::tensor({1, 0}, at::kLong).view({1, 2})));
  expect_values(adv.advantages, {0.845584, -1.154416}, 1e-6, "advantages {tok1, tok0}");
  expect_values(adpa_term(toy_student(), adv, {}, one), {-0.200304}, 1e-6, "ADPA as coded");
  expect_values(adpa_term(toy_student(), adv, {false, 1.0}, one), {0.543040}, 1e-6, "ADPA paper form, β = 1");
}

TEST(MethodsToy, AlignDistil) {
  expect_values(aligndistil(toy_student(), toy_teacher(), toy_ref(), {}, one), {0.145796}, 1e-6, "aligndistil");
  AlignDistilOptions t1;
  t1.mode = AlignDistilMode::theorem1;
  expect_values(aligndistil(toy_student(), toy_teacher(), toy_ref(), t1, one), {0.612088}, 1e-6,
                "theorem1 with ref = rdpo");
}

// ---- Our own case: N = 3, V = 11, logits from closed-form expressions (the same in the Python reference).
at::Tensor grid(const std::function<double(int, int)>& f) {
  auto out = at::empty({3, 11}, at::kDouble);
  for (int n = 0; n < 3; ++n)
    for (int v = 0; v < 11; ++v) out[n][v] = f(n, v);
  return out;
}
at::Tensor own_student() {
  return grid([](int n, int v) { return 2 * std::sin(1.3 * v + 0.7 * n) + 0.1 * v; });
}
at::Tensor own_teacher() {
  return grid([](int n, int v) { return 1.5 * std::cos(0.9 * v - 0.4 * n) + 0.05 * v * v / 11.0; });
}
at::Tensor own_ref() {
  return grid([](int n, int v) { return std::sin(0.5 * v * v + n) - 0.2 * v; });
}

TEST(OwnCases, KdDivergencesAtTemperatureTwo) {
  expect_values(kd_divergence(own_teacher(), own_student(), Divergence::forward_kl, 0.0, 2.0, one),
                {0.2327482916, 0.3673871242, 0.4614954241}, 1e-9, "FKL τ=2");
  expect_values(kd_divergence(own_teacher(), own_student(), Divergence::reverse_kl, 0.0, 2.0, one),
                {0.2176043662, 0.3644702200, 0.4500378631}, 1e-9, "RKL τ=2");
  expect_values(kd_divergence(own_teacher(), own_student(), Divergence::jsd, 0.3, 2.0, one),
                {0.0462806387, 0.0723850192, 0.0903471339}, 1e-9, "JSD(0.3) τ=2");
  expect_values(kd_divergence(own_teacher(), own_student(), Divergence::tvd, 0.0, 2.0, one),
                {0.2882830098, 0.3326407438, 0.3793972642}, 1e-9, "TVD τ=2");
  // TRL's endpoints: β = 0 is forward KL, β = 1 reverse KL, exactly.
  EXPECT_TRUE(kd_divergence(own_teacher(), own_student(), Divergence::jsd, 0.0, 2.0, one)
                  .equal(kd_divergence(own_teacher(), own_student(), Divergence::forward_kl, 0.0, 2.0, one)));
  EXPECT_TRUE(kd_divergence(own_teacher(), own_student(), Divergence::jsd, 1.0, 2.0, one)
                  .equal(kd_divergence(own_teacher(), own_student(), Divergence::reverse_kl, 0.0, 2.0, one)));
  // fp32 agrees with the vocab-parallel building blocks.
  const auto t32 = own_teacher().to(at::kFloat), s32 = own_student().to(at::kFloat);
  // (within 1e-6 of the log-probs' scale, which sets the divergences' rounding)
  const double lp_scale = aligntrain::testing::max_abs(at::log_softmax(at::cat({t32, s32}), -1));
  EXPECT_TRUE(near_in_scale(kd_divergence(t32, s32, Divergence::forward_kl, 0, 1, one), parallel::forward_kl(t32, s32, one),
                            1e-6, lp_scale));
  EXPECT_TRUE(near_in_scale(kd_divergence(t32, s32, Divergence::reverse_kl, 0, 1, one),
                            parallel::reverse_kl(t32, s32, one), 1e-6, lp_scale));
  EXPECT_TRUE(near_in_scale(kd_divergence(t32, s32, Divergence::jsd, 0.3, 1, one), parallel::jsd(t32, s32, 0.3, one),
                            1e-6, lp_scale));
  EXPECT_EQ(kd_divergence(t32, s32, Divergence::tvd, 0, 1, one).scalar_type(), at::kFloat);
  EXPECT_EQ(kd_divergence(own_teacher().to(at::kBFloat16), own_student().to(at::kBFloat16), Divergence::tvd, 0, 1, one)
                .scalar_type(),
            at::kFloat);
}

TEST(OwnCases, TeacherTableAndDckd) {
  const auto table = teacher_table(own_teacher(), 3, one);
  EXPECT_TRUE(table.indices.equal(at::tensor({7, 0, 8, 7, 8, 0, 8, 1, 7}, at::kLong).view({3, 3})));
  expect_values(table.probs,
                {0.24871953717484724, 0.199100690190937, 0.1480051011390373, 0.2068549337678784, 0.20297405279428218,
                 0.16396685712426115, 0.23275248862141976, 0.17527231352354025, 0.14188559636314108},
                1e-12, "top-3 probs");
  expect_values(table.remaining, {0.4041746714951784, 0.4262041563135782, 0.4500896014918989}, 1e-12, "remaining");
  expect_values(dckd_kl(own_student(), table, 11, one), {0.7273505297, 1.0049335964, 1.0676336620}, 1e-9, "DCKD k=3");
  EXPECT_EQ(teacher_table(own_teacher().to(at::kFloat), 3, one).probs.scalar_type(), at::kFloat);
}

// A hand-written table with ids beyond the student's vocabulary of 11 (12 and 15): their mass joins the rest bin.
TeacherTable hand_table() {
  return {at::tensor({3, 12, 0, 7, 1, 15, 4, 9, 10}, at::kLong).view({3, 3}),
          at::tensor({0.4, 0.3, 0.1, 0.5, 0.2, 0.2, 0.3, 0.3, 0.3}, at::kDouble).view({3, 3}),
          at::tensor({0.2, 0.1, 0.1}, at::kDouble)};
}

TEST(OwnCases, DckdMovesOutOfVocabularyIdsIntoTheRestBin) {
  expect_values(dckd_kl(own_student(), hand_table(), 11, one), {1.3440433193, 1.3787398657, 0.5970140255}, 1e-9,
                "DCKD OOV");
}

TEST(OwnCases, AdpaWithTablesOfDifferentSizes) {
  // DPO table k = 3, ref table k = 4: ids missing from the ref table get the DPO table's floor (A = 0 for the DPO
  // table's own minimum).
  const auto adv = adpa_advantages(teacher_table(own_teacher(), 3, one), teacher_table(own_ref(), 4, one));
  EXPECT_TRUE(adv.indices.equal(at::tensor({7, 0, 8, 7, 8, 0, 8, 7, 1}, at::kLong).view({3, 3})));
  expect_values(adv.advantages,
                {0.5190791645949224, 0.2896227844298618, 0.0, 0.23235342783899826, 0.2134138354295012,
                 -0.4875129749111473, 0.4949545348822173, 0.0, -0.018974199636658806},
                1e-12, "advantages");
  expect_values(adpa_term(own_student(), adv, {}, one), {-0.0572199844, -0.0059189906, -0.0050453154}, 1e-9,
                "ADPA as coded");
  expect_values(adpa_term(own_student(), adv, {false, 0.5}, one), {-0.0286099878, 0.0150981068, -0.0020707394}, 1e-9,
                "ADPA paper form, β = 0.5");
}

TEST(OwnCases, AlignDistilModes) {
  const std::vector<std::pair<AlignDistilMode, std::pair<std::vector<double>, std::vector<double>>>> cases = {
      {AlignDistilMode::aligndistil,
       {{0.0834670518, 0.0978507312, 0.1474273831}, {0.8561618310, 1.0455453226, 1.5074685974}}},
      {AlignDistilMode::theorem1,
       {{7.9029828606, 6.7274553123, 7.0127168012}, {3.1168144006, 2.8393852952, 2.9177907709}}},
      {AlignDistilMode::theorem1_contrast,
       {{4.9988726210, 8.0795455904, 9.0330875820}, {2.2852870191, 4.1566535022, 4.7970318742}}},
      {AlignDistilMode::theorem1_adaptive,
       {{0.0740014971, 0.0848206608, 0.1284588784}, {0.5526459201, 0.6606598087, 0.9194403072}}},
  };
  for (const auto& [mode, want] : cases) {
    AlignDistilOptions a;  // β = 0.1, β₂ = 10, τ = 2
    a.mode = mode;
    a.temperature = 2.0;
    expect_values(aligndistil(own_student(), own_teacher(), own_ref(), a, one), want.first, 1e-9,
                  "β=0.1 β₂=10 τ=2 mode " + std::to_string(int(mode)));
    AlignDistilOptions b;  // β = 0.5, β₂ = 3, τ = 1
    b.mode = mode;
    b.beta = 0.5;
    b.beta2 = 3.0;
    expect_values(aligndistil(own_student(), own_teacher(), own_ref(), b, one), want.second, 1e-9,
                  "β=0.5 β₂=3 mode " + std::to_string(int(mode)));
  }
}

// ---- Gradients: autograd against central finite differences in fp64, for Σ_n r_n·f(student)_n.
void expect_gradient(const std::function<at::Tensor(const at::Tensor&)>& f, const std::string& what) {
  const auto r = at::tensor({1.0, -0.7, 0.4}, at::kDouble);
  const auto x = own_student().clone().requires_grad_(true);
  (f(x) * r).sum().backward();
  const auto analytic = x.grad().contiguous().view({-1});
  const double eps = 1e-5;
  for (int64_t i = 0; i < x.numel(); ++i) {
    auto plus = own_student().clone(), minus = own_student().clone();
    plus.view({-1})[i] += eps;
    minus.view({-1})[i] -= eps;
    const double fd = ((f(plus) - f(minus)) * r).sum().item<double>() / (2 * eps);
    EXPECT_NEAR(analytic[i].item<double>(), fd, 1e-7 * std::max(1.0, std::abs(fd))) << what << " element " << i;
  }
}

TEST(Gradients, MatchFiniteDifferences) {
  for (auto [d, name] : {std::pair{Divergence::forward_kl, "FKL"},
                         {Divergence::reverse_kl, "RKL"},
                         {Divergence::jsd, "JSD"},
                         {Divergence::tvd, "TVD"}}) {
    expect_gradient([d = d](const at::Tensor& s) { return kd_divergence(own_teacher(), s, d, 0.3, 2.0, one); }, name);
  }
  expect_gradient([](const at::Tensor& s) { return kd_divergence(own_teacher(), s, Divergence::jsd, 0.0, 1.0, one); },
                  "JSD β=0");
  expect_gradient([](const at::Tensor& s) { return kd_divergence(own_teacher(), s, Divergence::jsd, 1.0, 1.0, one); },
                  "JSD β=1");
  const auto table = teacher_table(own_teacher(), 3, one);
  expect_gradient([&](const at::Tensor& s) { return dckd_kl(s, table, 11, one); }, "DCKD");
  expect_gradient([&](const at::Tensor& s) { return dckd_kl(s, hand_table(), 11, one); }, "DCKD OOV");
  const auto adv = adpa_advantages(table, teacher_table(own_ref(), 4, one));
  expect_gradient([&](const at::Tensor& s) { return adpa_term(s, adv, {}, one); }, "ADPA as coded");
  expect_gradient([&](const at::Tensor& s) { return adpa_term(s, adv, {false, 0.5}, one); }, "ADPA paper");
  for (auto mode : {AlignDistilMode::aligndistil, AlignDistilMode::theorem1, AlignDistilMode::theorem1_contrast,
                    AlignDistilMode::theorem1_adaptive}) {
    AlignDistilOptions o;
    o.mode = mode;
    o.temperature = 2.0;
    expect_gradient([&](const at::Tensor& s) { return aligndistil(s, own_teacher(), own_ref(), o, one); },
                    "AlignDistil mode " + std::to_string(int(mode)));
  }
}

TEST(Gradients, NeverReachTeachers) {
  const auto t = own_teacher().clone().requires_grad_(true), r = own_ref().clone().requires_grad_(true);
  const auto s = own_student().clone().requires_grad_(true);
  (kd_divergence(t, s, Divergence::jsd, 0.3, 1.0, one).sum() + aligndistil(s, t, r, {}, one).sum()).backward();
  EXPECT_TRUE(s.grad().defined());
  EXPECT_FALSE(t.grad().defined());
  EXPECT_FALSE(r.grad().defined());
  EXPECT_FALSE(teacher_table(t, 3, one).probs.requires_grad());
}

TEST(Validation, RejectsBadArguments) {
  EXPECT_THROW(kd_divergence(own_teacher(), own_student().narrow(1, 0, 10), Divergence::forward_kl, 0, 1, one),
               std::invalid_argument);
  EXPECT_THROW(kd_divergence(own_teacher(), own_student(), Divergence::jsd, 1.5, 1, one), std::invalid_argument);
  EXPECT_THROW(kd_divergence(own_teacher(), own_student(), Divergence::forward_kl, 0, 0.0, one), std::invalid_argument);
  EXPECT_THROW(teacher_table(own_teacher(), 12, one), std::invalid_argument);
  EXPECT_THROW(dckd_kl(own_student(), teacher_table(own_teacher(), 3, one), 12, one), std::invalid_argument);
  EXPECT_THROW(dckd_kl(own_student().narrow(0, 0, 2), teacher_table(own_teacher(), 3, one), 11, one),
               std::invalid_argument);
  const auto adv = adpa_advantages(teacher_table(own_teacher(), 3, one), teacher_table(own_ref(), 3, one));
  EXPECT_THROW(adpa_term(own_student(), adv, {true, 0.5}, one), std::invalid_argument);
  AlignDistilOptions o;
  o.temperature = -1;
  EXPECT_THROW(aligndistil(own_student(), own_teacher(), own_ref(), o, one), std::invalid_argument);
  EXPECT_THROW(aligndistil(own_student(), own_teacher(), own_ref().narrow(0, 0, 2), {}, one), std::invalid_argument);
}

// ---- Chunked token loss ------------------------------------------------------------------------------------------
// N = 7 positions, H = 5, V = 11, fp32. The term mixes every objective: teacher logits are made inside it from the
// teacher's hidden states of the same positions, and the DCKD table is sliced to the chunk.
struct ChunkSetup {
  static constexpr int64_t kN = 7, kH = 5, kV = 11;
  at::Tensor hidden, weight, weights, teacher_hidden, teacher_weight, ref_weight;
  TeacherTable table;
  ChunkSetup() {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
    hidden = at::normal(0.0, 1.0, {kN, kH}, gen);
    weight = at::normal(0.0, 0.7, {kV, kH}, gen);
    teacher_hidden = at::normal(0.0, 1.0, {kN, kH}, gen);
    teacher_weight = at::normal(0.0, 0.7, {kV, kH}, gen);
    ref_weight = at::normal(0.0, 0.7, {kV, kH}, gen);
    weights = at::rand({kN}, gen) / kN;
    table = teacher_table(at::matmul(teacher_hidden, teacher_weight.t()), 3, one);
  }
  ChunkTerm term(runtime::Communicator& g, const at::Tensor& w_teacher, const at::Tensor& w_ref,
                 std::vector<std::pair<int64_t, int64_t>>* calls = nullptr) const {
    return [=, &g](const at::Tensor& logits, int64_t start, int64_t n) {
      if (calls) calls->emplace_back(start, n);
      const auto th = teacher_hidden.narrow(0, start, n);
      const auto t = at::matmul(th, w_teacher.t()), r = at::matmul(th, w_ref.t());
      const TeacherTable part{table.indices.narrow(0, start, n), table.probs.narrow(0, start, n),
                              table.remaining.narrow(0, start, n)};
      return kd_divergence(t, logits, Divergence::forward_kl, 0.0, 2.0, g) + 0.5 * aligndistil(logits, t, r, {}, g) +
             0.3 * dckd_kl(logits, part, w_teacher.size(0) * g.size(), g);
    };
  }
};

struct Result {
  at::Tensor loss, grad_hidden, grad_weight;
};

// The unchunked reference: full logits, plain autograd.
Result unchunked(const ChunkSetup& c, double scale) {
  const auto h = c.hidden.clone().requires_grad_(true), w = c.weight.clone().requires_grad_(true);
  const auto loss = (c.weights * c.term(one, c.teacher_weight, c.ref_weight)(at::matmul(h, w.t()), 0, c.kN)).sum();
  (scale * loss).backward();
  return {loss.detach(), h.grad(), w.grad()};
}

// Chunked and whole are fp32 sums of the same terms in another order: the loss within 1e-6 of its terms' scale (KL
// terms of log-probs of order one), the gradients within 1e-5 of theirs (sums of more products; 2e-7 here).
constexpr double kChunked = 1e-6, kLossScale = 1.0, kChunkedGrad = 1e-5;

void expect_same_result(const Result& got, const Result& want, const std::string& what) {
  EXPECT_TRUE(near_in_scale(got.loss, want.loss, kChunked, kLossScale)) << what << " loss";
  EXPECT_TRUE(near_in_scale(got.grad_hidden, want.grad_hidden, kChunkedGrad)) << what << " hidden gradient";
  EXPECT_TRUE(near_in_scale(got.grad_weight, want.grad_weight, kChunkedGrad)) << what << " weight gradient";
}

TEST(ChunkedTokenLoss, EqualsUnchunkedComputation) {
  const ChunkSetup c;
  const auto want = unchunked(c, 2.5);
  for (int64_t chunk : {int64_t{1}, int64_t{3}, ChunkSetup::kN, int64_t{0}}) {
    const auto h = c.hidden.clone().requires_grad_(true), w = c.weight.clone().requires_grad_(true);
    std::vector<std::pair<int64_t, int64_t>> calls;
    const auto loss =
        chunked_token_loss(h, w, c.weights, c.term(one, c.teacher_weight, c.ref_weight, &calls), one, chunk);
    EXPECT_EQ(loss.dim(), 0);
    EXPECT_TRUE(loss.requires_grad());
    (2.5 * loss).backward();  // the incoming gradient scales the saved ones
    const std::string what = "chunk " + std::to_string(chunk);
    expect_same_result({loss.detach(), h.grad(), w.grad()}, want, what);
    if (chunk == 3) {
      EXPECT_EQ(calls, (std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 3}, {6, 1}}));
    }
  }
}

TEST(ChunkedTokenLoss, TiedWeightGetsBothGradients) {
  // The head shares the embedding: hidden = x + ½·E[ids], logits = hidden·Eᵀ. E's gradient has both paths.
  const ChunkSetup c;
  const auto ids = at::tensor({3, 0, 10, 3, 7, 1, 5}, at::kLong);
  const auto run = [&](bool chunked) {
    const auto x = c.hidden.clone().requires_grad_(true), e = c.weight.clone().requires_grad_(true);
    const auto h = x + 0.5 * e.index_select(0, ids);
    const auto term = c.term(one, c.teacher_weight, c.ref_weight);
    const auto loss = chunked ? chunked_token_loss(h, e, c.weights, term, one, 2)
                              : (c.weights * term(at::matmul(h, e.t()), 0, c.kN)).sum();
    loss.backward();
    return Result{loss.detach(), x.grad(), e.grad()};
  };
  const auto want = run(false), got = run(true);
  expect_same_result(got, want, "tied");
}

TEST(ChunkedTokenLoss, LmHeadOverloadAndEvaluation) {
  const ChunkSetup c;
  auto head = model::dense_layer_factory()->lm_head(ChunkSetup::kH, ChunkSetup::kV, nullptr);
  {
    at::NoGradGuard no_grad;
    head->weight().copy_(c.weight);
  }
  const auto term = c.term(one, c.teacher_weight, c.ref_weight);
  const auto want = unchunked(c, 1.0);
  const auto h = c.hidden.clone().requires_grad_(true);
  chunked_token_loss(h, *head, c.weights, term, one, 3).backward();
  expect_same_result({want.loss, h.grad(), head->weight().grad()}, want, "lm head");

  // Evaluation: no grad mode, or nothing requiring grad, gives the value and no graph.
  {
    at::NoGradGuard no_grad;
    const auto loss = chunked_token_loss(h, *head, c.weights, term, one, 3);
    EXPECT_FALSE(loss.requires_grad());
    EXPECT_TRUE(near_in_scale(loss, want.loss, kChunked, kLossScale));
  }
  const auto loss = chunked_token_loss(c.hidden, c.weight, c.weights, term, one, 4);
  EXPECT_FALSE(loss.requires_grad());
  EXPECT_TRUE(near_in_scale(loss, want.loss, kChunked, kLossScale));
  EXPECT_THROW(chunked_token_loss(c.hidden, c.weight, c.weights.narrow(0, 0, 3), term, one, 4), std::invalid_argument);
}

}  // namespace
}  // namespace aligntrain::objectives
