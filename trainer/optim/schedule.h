// Learning-rate schedules: linear warmup, then constant, linear or cosine decay to min_lr_ratio · lr.
//
// For optimizer step s (0-based) of a stage of `total` steps with W warmup steps:
//   s < W        lr · (s + 1) / W                                  (the first step already learns)
//   otherwise    lr · f(p), p = (s − W) / max(1, total − W − 1) ∈ [0, 1]
//                constant: 1   linear: 1 − (1 − m)·p   cosine: m + (1 − m)·(1 + cos(π p)) / 2
// so the last step runs at min_lr_ratio · lr (m = min_lr_ratio).
#pragma once

#include <cstdint>

#include "config/schema.h"

namespace aligntrain::optim {

// W for a stage: schedule.warmup_steps, or round(warmup_ratio · total) when warmup_ratio is set.
int64_t warmup_steps(const config::ScheduleConfig& schedule, int64_t total);

double learning_rate(const config::ScheduleConfig& schedule, double base_lr, int64_t step, int64_t total);

}  // namespace aligntrain::optim
