// Comparing two floating-point computations of the same quantity. fp32 results differ in their last bits between
// CPUs (MKL takes different code paths on Intel and AMD hosts), summation orders (a batch split over ranks, a
// vocabulary over shards, positions over chunks) and libraries, by an amount proportional to the magnitude of the
// numbers involved, never by a fixed constant. So a bound here is relative to the reference's scale:
//   max |got − want| ≤ rtol · max(max |want|, floor)
// `floor` is the magnitude of the inputs where the result can be much smaller than they are (a KL of near-equal
// distributions, a difference of log-probs): its rounding is set by the inputs. fp32 carries 24 bits, so rtol 1e-6
// is about 8 units in the last place of the scale. Checks that compare a run with another run of the same binary on
// the same machine (determinism, resume, ZeRO-1) stay bitwise: at::equal.
// ALIGNTRAIN_TOLERANCE_REPORT=1 prints every comparison's error in units of rtol · scale (the margin on this CPU).
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <sstream>

namespace aligntrain::testing {

// max |t| in fp64 (0 for an empty tensor).
inline double max_abs(const at::Tensor& t) {
  return t.numel() == 0 ? 0.0 : t.detach().to(at::kDouble).abs().max().item<double>();
}

inline ::testing::AssertionResult near_scaled(double err, double ref_scale, double rtol, double floor) {
  const double scale = std::max(ref_scale, floor), bound = rtol * scale;
  if (const char* r = std::getenv("ALIGNTRAIN_TOLERANCE_REPORT"); r && *r && *r != '0') {
    std::ostringstream line;  // one write, so that ranks' lines do not interleave
    line << "[tolerance] error " << err << " = " << err / bound << " of the bound (rtol " << rtol << ", scale " << scale
         << ")\n";
    std::cerr << line.str();
  }
  if (err <= bound) return ::testing::AssertionSuccess();  // false for NaN
  return ::testing::AssertionFailure() << "max |got - want| = " << err << " exceeds rtol * scale = " << rtol << " * "
                                       << scale << " = " << bound << " (error / scale = " << err / scale << ")";
}

// max |got − want| ≤ rtol · max(max |want|, floor), elementwise over tensors of the same shape.
inline ::testing::AssertionResult near_in_scale(const at::Tensor& got, const at::Tensor& want, double rtol,
                                                double floor = 0.0) {
  if (got.sizes() != want.sizes()) {
    return ::testing::AssertionFailure() << "shapes differ: " << got.sizes() << " vs " << want.sizes();
  }
  const auto w = want.detach().to(at::kDouble);
  return near_scaled(max_abs(got.detach().to(at::kDouble) - w), max_abs(w), rtol, floor);
}

// |got − want| ≤ rtol · max(|want|, floor) for scalars.
inline ::testing::AssertionResult near_in_scale(double got, double want, double rtol, double floor = 0.0) {
  return near_scaled(std::abs(got - want), std::abs(want), rtol, floor);
}

}  // namespace aligntrain::testing
