// See layers.h.
#include "trainer/model/layers.h"

#include <ATen/ATen.h>

#include <cmath>

namespace aligntrain::model {

RMSNorm::RMSNorm(int64_t dim, double eps) : eps_(eps) { weight = register_parameter("weight", at::ones({dim})); }

at::Tensor RMSNorm::normalize(const at::Tensor& x) const {
  const auto x32 = x.to(at::kFloat);
  return (x32 * at::rsqrt(x32.pow(2).mean({-1}, /*keepdim=*/true) + eps_)).to(x.scalar_type());
}

at::Tensor rope_inv_freq(const ModelConfig& c) {
  const int64_t d = c.head_dim;
  auto inv = 1.0 / at::pow(c.rope_theta, at::arange(0, d, 2, at::kLong).to(at::kFloat) / static_cast<double>(d));
  const RopeScaling& s = c.rope_scaling;
  if (s.type == "linear") return inv / s.factor;
  if (s.type != "llama3") return inv;
  // Llama 3.1: keep high frequencies, divide low frequencies by `factor`, interpolate smoothly in between.
  const double old_len = static_cast<double>(s.original_max_position_embeddings);
  const double low_wavelen = old_len / s.low_freq_factor;
  const double high_wavelen = old_len / s.high_freq_factor;
  const auto wavelen = 2.0 * M_PI / inv;
  auto scaled = at::where(wavelen > low_wavelen, inv / s.factor, inv);
  const auto smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  const auto smoothed = (1.0 - smooth) * scaled / s.factor + smooth * scaled;
  const auto medium = at::logical_not(wavelen < high_wavelen).logical_and(at::logical_not(wavelen > low_wavelen));
  return at::where(medium, smoothed, scaled);
}

RopeTables rope_tables(const at::Tensor& inv_freq, const at::Tensor& positions, at::ScalarType dtype) {
  auto pos = positions.dim() == 1 ? positions.unsqueeze(0) : positions;  // [B, T]
  const auto freqs = pos.to(at::kFloat).unsqueeze(-1) * inv_freq.to(pos.device()).view({1, 1, -1});  // [B, T, d/2]
  const auto emb = at::cat({freqs, freqs}, -1);                                                       // [B, T, d]
  return {emb.cos().to(dtype).unsqueeze(1), emb.sin().to(dtype).unsqueeze(1)};
}

at::Tensor apply_rope(const at::Tensor& x, const RopeTables& rope) {
  const int64_t half = x.size(-1) / 2;
  const auto x1 = x.narrow(-1, 0, half);
  const auto x2 = x.narrow(-1, half, half);
  const auto rotated = at::cat({-x2, x1}, -1);
  return x * rope.cos + rotated * rope.sin;
}

}  // namespace aligntrain::model
