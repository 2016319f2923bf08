// See teacher_tables.h.
#include "trainer/stages/teacher_tables.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "data/collate.h"
#include "data/dealing.h"
#include "trainer/model/logprobs.h"
#include "trainer/parallel/data_parallel.h"
#include "trainer/stages/frozen_cache.h"

namespace aligntrain::stages {

std::vector<int64_t> table_offsets(const ResponseSet& set, const std::vector<int64_t>& columns) {
  std::vector<int64_t> off(static_cast<size_t>(set.size() * set.width + 1), 0);
  for (int64_t i = 0; i < set.size(); ++i) {
    for (int64_t c = 0; c < set.width; ++c) {
      const auto& e = set.at(i, c);
      const bool used = std::find(columns.begin(), columns.end(), c) != columns.end();
      const size_t k = static_cast<size_t>(i * set.width + c);
      off[k + 1] = off[k] + (used ? static_cast<int64_t>(e.ids.size()) - e.prompt_len : 0);
    }
  }
  return off;
}

at::Tensor table_rows(const std::vector<int64_t>& offsets, const ResponseSet& set, const std::vector<int64_t>& index,
                      int64_t c) {
  std::vector<int64_t> rows;
  for (int64_t i : index) {
    const size_t k = static_cast<size_t>(i * set.width + c);
    for (int64_t r = offsets[k]; r < offsets[k + 1]; ++r) rows.push_back(r);
  }
  return at::tensor(rows, at::kLong);
}

TableStore precompute_tables(StageEnv& env, const config::StageConfig& stage, const ModelSource& teacher_src,
                             const ResponseSet& set, const std::vector<int64_t>& columns, int32_t pad) {
  TableStore t;
  t.offsets = table_offsets(set, columns);
  const int64_t rows = t.offsets.back(), k = stage.loss.top_k;
  const auto dtype = frozen_dtype(env.recipe, teacher_src.name);
  std::string cols;
  for (int64_t c : columns) cols += std::to_string(c) + ",";
  const FrozenCache cache =
      frozen_cache(env.recipe, "teacher", teacher_src, set, dtype, "top_k:" + std::to_string(k) + "|columns:" + cols);
  const auto cached = read_frozen(env.world, cache, [&](const CachedTensors& c) {
    const auto i = c.find("indices"), p = c.find("probs"), r = c.find("remaining");
    return i != c.end() && p != c.end() && r != c.end() && i->second.dim() == 2 && i->second.size(0) == rows &&
           i->second.size(1) == k && p->second.sizes() == i->second.sizes() && r->second.dim() == 1 &&
           r->second.size(0) == rows;
  });
  if (cached) {
    t.indices = cached->at("indices").to(at::kLong);
    t.probs = cached->at("probs").to(at::kFloat);
    t.remaining = cached->at("remaining").to(at::kFloat);
    spdlog::info("[{}] top-{} tables of '{}' on {} from cache {}", stage.name, k, teacher_src.name, set.path,
                 cache.file.string());
    return t;
  }
  spdlog::info("[{}] precomputing top-{} tables of '{}' on {} ({} positions)", stage.name, k, teacher_src.name, set.path,
               rows);
  auto loaded = load_frozen_model(teacher_src, env.groups, env.device, dtype);
  at::NoGradGuard no_grad;
  t.indices = at::zeros({rows, k}, at::kLong);
  t.probs = at::zeros({rows, k}, at::kFloat);
  t.remaining = at::zeros({rows}, at::kFloat);
  const int dp = env.groups.layout.dp;
  for (const auto& mine : data::rank_batches(set.size(), env.groups.layout.dp_rank, dp, stage.batch.micro)) {
    for (int64_t c : columns) {
      const auto b = data::collate(set.rows(mine, c), data::CollateOptions{pad, false});
      const auto mb = model_batch(b, env.device);
      const auto sel = mb.labels.ne(model::kIgnoreIndex).reshape({-1}).nonzero().squeeze(-1);
      const auto h = loaded.lm->hidden_states(mb.input);
      const auto h_sel = h.reshape({-1, h.size(-1)}).index_select(0, sel);
      const auto dest = table_rows(t.offsets, set, mine, c);
      const auto table = objectives::teacher_table(loaded.lm->lm_head_forward(h_sel), k, *env.groups.tp);
      t.indices.index_copy_(0, dest, table.indices.to(at::kCPU));
      t.probs.index_copy_(0, dest, table.probs.to(at::kCPU, at::kFloat));
      t.remaining.index_copy_(0, dest, table.remaining.to(at::kCPU, at::kFloat));
    }
  }
  for (at::Tensor* x : {&t.indices, &t.probs, &t.remaining}) *x = parallel::sum_dealt_rows(*x, *env.groups.dp, env.device);
  write_frozen(env.world, cache, {{"indices", t.indices}, {"probs", t.probs}, {"remaining", t.remaining}},
               {{"data", set.path}, {"teacher", teacher_src.name}});
  return t;  // the teacher model is freed here
}

}  // namespace aligntrain::stages
