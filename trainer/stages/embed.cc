// See embed.h.
#include "trainer/stages/embed.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "data/dealing.h"
#include "trainer/parallel/data_parallel.h"

namespace aligntrain::stages {

at::Tensor mean_hidden_states(StageEnv& env, model::CausalLM& lm, const std::vector<std::vector<int32_t>>& sequences,
                              int64_t micro, int32_t pad, const std::function<void(int64_t)>& on_batch) {
  const int64_t n = static_cast<int64_t>(sequences.size()), h = lm.config().hidden_size;
  auto out = at::zeros({n, h}, at::kDouble);
  at::NoGradGuard no_grad;
  int64_t done = 0;
  for (const auto& mine : data::rank_batches(n, env.groups.layout.dp_rank, env.groups.layout.dp, micro)) {
    int64_t t = 0;
    for (int64_t i : mine) t = std::max<int64_t>(t, sequences[static_cast<size_t>(i)].size());
    const int64_t b = static_cast<int64_t>(mine.size());
    auto ids = at::full({b, t}, pad, at::kLong);
    auto mask = at::zeros({b, t}, at::kLong);
    for (int64_t r = 0; r < b; ++r) {
      const auto& p = sequences[static_cast<size_t>(mine[static_cast<size_t>(r)])];
      const int64_t len = static_cast<int64_t>(p.size());
      ids[r].narrow(0, 0, len).copy_(at::tensor(std::vector<int64_t>(p.begin(), p.end()), at::kLong));
      mask[r].narrow(0, 0, len).fill_(1);
    }
    const auto hidden = lm.hidden_states({ids.to(env.device), mask.to(env.device), std::nullopt, std::nullopt});
    const auto m = mask.to(env.device, at::kDouble).unsqueeze(-1);
    const auto mean = ((hidden.to(at::kDouble) * m).sum(1) / m.sum(1)).to(at::kCPU);
    out.index_copy_(0, at::tensor(mine, at::kLong), mean);
    done += b;
    if (on_batch) on_batch(done);
  }
  return parallel::sum_dealt_rows(out, *env.groups.dp, env.device);
}

}  // namespace aligntrain::stages
