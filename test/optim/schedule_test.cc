// trainer/optim/schedule.h: warmup then constant, linear or cosine decay to min_lr_ratio · lr. The expected values
// below are worked by hand from the formulas in the header.
#include "trainer/optim/schedule.h"

#include <gtest/gtest.h>

namespace aligntrain::optim {
namespace {

config::ScheduleConfig schedule(config::Decay decay, int warmup_steps = 0, double warmup_ratio = 0.0,
                                double min_lr_ratio = 0.0) {
  config::ScheduleConfig s;
  s.decay = decay;
  s.warmup_steps = warmup_steps;
  s.warmup_ratio = warmup_ratio;
  s.min_lr_ratio = min_lr_ratio;
  return s;
}

constexpr double kTol = 1e-12;

TEST(Schedule, WarmupSteps) {
  EXPECT_EQ(warmup_steps(schedule(config::Decay::linear, 7), 100), 7);
  EXPECT_EQ(warmup_steps(schedule(config::Decay::linear), 100), 0);
  EXPECT_EQ(warmup_steps(schedule(config::Decay::linear, 0, 0.1), 100), 10);
  EXPECT_EQ(warmup_steps(schedule(config::Decay::linear, 0, 0.25), 8), 2);
  EXPECT_EQ(warmup_steps(schedule(config::Decay::linear, 0, 0.2), 12), 2);    // 2.4 rounds down
  EXPECT_EQ(warmup_steps(schedule(config::Decay::linear, 0, 0.125), 12), 2);  // 1.5 rounds up
  EXPECT_EQ(warmup_steps(schedule(config::Decay::linear, 0, 0.3), 12), 4);    // 3.6 rounds up
}

TEST(Schedule, ConstantWithoutWarmup) {
  const auto s = schedule(config::Decay::constant, 0, 0.0, 0.5);  // min_lr_ratio does not apply to constant
  for (int64_t step : {0, 1, 5, 9}) EXPECT_DOUBLE_EQ(learning_rate(s, 3e-4, step, 10), 3e-4) << step;
}

TEST(Schedule, ConstantWithWarmupSteps) {
  const auto s = schedule(config::Decay::constant, 4);
  EXPECT_NEAR(learning_rate(s, 1.0, 0, 10), 0.25, kTol);  // the first step already learns
  EXPECT_NEAR(learning_rate(s, 1.0, 1, 10), 0.50, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 2, 10), 0.75, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 3, 10), 1.00, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 4, 10), 1.00, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 9, 10), 1.00, kTol);
}

TEST(Schedule, LinearWithoutWarmup) {
  // p = s / 4: 1, 0.75, 0.5, 0.25, 0.
  const auto s = schedule(config::Decay::linear);
  const double want[] = {1.0, 0.75, 0.5, 0.25, 0.0};
  for (int64_t step = 0; step < 5; ++step) EXPECT_NEAR(learning_rate(s, 1.0, step, 5), want[step], kTol) << step;
}

TEST(Schedule, LinearWithWarmupAndMinLr) {
  // W = 2, total 12, m = 0.1, lr 2: p = (s − 2) / 9, lr · (1 − 0.9 p).
  const auto s = schedule(config::Decay::linear, 2, 0.0, 0.1);
  EXPECT_NEAR(learning_rate(s, 2.0, 0, 12), 1.0, kTol);
  EXPECT_NEAR(learning_rate(s, 2.0, 1, 12), 2.0, kTol);
  EXPECT_NEAR(learning_rate(s, 2.0, 2, 12), 2.0, kTol);   // p = 0
  EXPECT_NEAR(learning_rate(s, 2.0, 5, 12), 1.4, kTol);   // p = 1/3: 2 · 0.7
  EXPECT_NEAR(learning_rate(s, 2.0, 8, 12), 0.8, kTol);   // p = 2/3: 2 · 0.4
  EXPECT_NEAR(learning_rate(s, 2.0, 11, 12), 0.2, kTol);  // the last step: m · lr
  EXPECT_NEAR(learning_rate(s, 2.0, 15, 12), 0.2, kTol);  // past the end: p stays 1
}

TEST(Schedule, LinearWithWarmupRatio) {
  // warmup_ratio 0.25 of 8 steps: W = 2; p = (s − 2) / 5.
  const auto s = schedule(config::Decay::linear, 0, 0.25);
  EXPECT_NEAR(learning_rate(s, 1.0, 0, 8), 0.5, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 1, 8), 1.0, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 2, 8), 1.0, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 4, 8), 0.6, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 7, 8), 0.0, kTol);
}

TEST(Schedule, CosineWithoutWarmup) {
  // p = s / 4: (1 + cos(π p)) / 2 = 1, (1 + √½) / 2, ½, (1 − √½) / 2, 0.
  const auto s = schedule(config::Decay::cosine);
  const double want[] = {1.0, 0.85355339059327376, 0.5, 0.14644660940672624, 0.0};
  for (int64_t step = 0; step < 5; ++step) EXPECT_NEAR(learning_rate(s, 1.0, step, 5), want[step], kTol) << step;
}

TEST(Schedule, CosineWithWarmupAndMinLr) {
  // W = 1, total 6, m = 0.2, lr 1e-3: p = (s − 1) / 4, lr · (0.2 + 0.8 · (1 + cos(π p)) / 2).
  const auto s = schedule(config::Decay::cosine, 1, 0.0, 0.2);
  EXPECT_NEAR(learning_rate(s, 1e-3, 0, 6), 1e-3, kTol);                   // warmup: 1e-3 · 1/1
  EXPECT_NEAR(learning_rate(s, 1e-3, 1, 6), 1e-3, kTol);                   // p = 0
  EXPECT_NEAR(learning_rate(s, 1e-3, 2, 6), 0.88284271247461901e-3, kTol);  // 0.2 + 0.8 · 0.8535534
  EXPECT_NEAR(learning_rate(s, 1e-3, 3, 6), 0.6e-3, kTol);                 // p = ½
  EXPECT_NEAR(learning_rate(s, 1e-3, 4, 6), 0.31715728752538099e-3, kTol);  // 0.2 + 0.8 · 0.1464466
  EXPECT_NEAR(learning_rate(s, 1e-3, 5, 6), 0.2e-3, kTol);                 // the last step: m · lr
}

TEST(Schedule, CosineWithWarmupRatio) {
  // warmup_ratio 0.1 of 21 steps: W = round(2.1) = 2; p = (s − 2) / 18; m = 0.5.
  const auto s = schedule(config::Decay::cosine, 0, 0.1, 0.5);
  EXPECT_NEAR(learning_rate(s, 1.0, 0, 21), 0.5, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 1, 21), 1.0, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 2, 21), 1.0, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 11, 21), 0.75, kTol);  // p = ½
  EXPECT_NEAR(learning_rate(s, 1.0, 20, 21), 0.5, kTol);
}

TEST(Schedule, ShortStages) {
  // One step: p = 0 / max(1, 0) = 0, so it runs at the full rate.
  EXPECT_NEAR(learning_rate(schedule(config::Decay::linear, 0, 0.0, 0.1), 1.0, 0, 1), 1.0, kTol);
  // Two steps: the full rate, then the minimum.
  EXPECT_NEAR(learning_rate(schedule(config::Decay::cosine, 0, 0.0, 0.1), 1.0, 0, 2), 1.0, kTol);
  EXPECT_NEAR(learning_rate(schedule(config::Decay::cosine, 0, 0.0, 0.1), 1.0, 1, 2), 0.1, kTol);
  // Warmup longer than the stage: every step is a warmup step.
  const auto s = schedule(config::Decay::linear, 4);
  EXPECT_NEAR(learning_rate(s, 1.0, 0, 3), 0.25, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 2, 3), 0.75, kTol);
}

}  // namespace
}  // namespace aligntrain::optim
