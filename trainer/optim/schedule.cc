#include "trainer/optim/schedule.h"

#include <algorithm>
#include <cmath>

namespace aligntrain::optim {

int64_t warmup_steps(const config::ScheduleConfig& schedule, int64_t total) {
  if (schedule.warmup_ratio > 0.0) return static_cast<int64_t>(std::llround(schedule.warmup_ratio * total));
  return schedule.warmup_steps;
}

double learning_rate(const config::ScheduleConfig& schedule, double base_lr, int64_t step, int64_t total) {
  const int64_t w = warmup_steps(schedule, total);
  if (step < w) return base_lr * static_cast<double>(step + 1) / static_cast<double>(w);
  const double m = schedule.min_lr_ratio;
  const double p =
      std::clamp(static_cast<double>(step - w) / static_cast<double>(std::max<int64_t>(1, total - w - 1)), 0.0, 1.0);
  switch (schedule.decay) {
    case config::Decay::constant: return base_lr;
    case config::Decay::linear: return base_lr * (1.0 - (1.0 - m) * p);
    case config::Decay::cosine: return base_lr * (m + (1.0 - m) * 0.5 * (1.0 + std::cos(M_PI * p)));
  }
  return base_lr;
}

}  // namespace aligntrain::optim
