#include "trainer/stages/responses.h"

#include <chrono>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "common/errors.h"
#include "data/collate.h"
#include "data/dealing.h"
#include "trainer/model/logprobs.h"
#include "trainer/parallel/data_parallel.h"
#include "trainer/parallel/vocab_parallel.h"
#include "trainer/runtime/host_sync.h"
#include "trainer/stages/frozen_cache.h"
#include "trainer/stages/train_loop.h"
#include "trainer/stages/training_stage.h"

namespace aligntrain::stages {

namespace {

std::vector<int64_t> all_columns(const ResponseSet& set) {
  std::vector<int64_t> c(static_cast<size_t>(set.width));
  for (int64_t r = 0; r < set.width; ++r) c[r] = r;
  return c;
}

// Examples dealt round-robin over the DP group, in micro-batches: calls `f` with each of this rank's batches.
template <class F>
void for_my_batches(const ResponseSet& set, runtime::Groups& groups, int64_t micro, F f) {
  for (const auto& batch : data::rank_batches(set.size(), groups.layout.dp_rank, groups.layout.dp, micro)) f(batch);
}

// [N, R] fp64 CPU table of reference log-probs, computed over the DP group.
at::Tensor reference_table(model::CausalLM& ref, runtime::Groups& groups, const at::Device& device,
                           const ResponseSet& set, int64_t micro, int32_t pad) {
  at::NoGradGuard no_grad;
  auto table = at::zeros({set.size(), set.width}, at::kDouble);
  const auto columns = all_columns(set);
  for_my_batches(set, groups, micro, [&](const std::vector<int64_t>& batch) {
    const auto s = sequence_logps(ref, *groups.tp, device, set, batch, columns, pad).sum.to(at::kCPU, at::kDouble);
    table.index_copy_(0, at::tensor(batch, at::kLong), s);
  });
  return parallel::sum_dealt_rows(table, *groups.dp, device);
}

ReferenceFn table_reference(at::Tensor table, const at::Device& device) {
  return [table, device](const ResponseSet&, const std::vector<int64_t>& index, const std::vector<int64_t>& columns) {
    return table.index_select(0, at::tensor(index, at::kLong))
        .index_select(1, at::tensor(columns, at::kLong))
        .to(device);
  };
}

}  // namespace

SeqLogps sequence_logps(model::CausalLM& lm, runtime::Communicator& tp, const at::Device& device,
                        const ResponseSet& set, const std::vector<int64_t>& index, const std::vector<int64_t>& columns,
                        int32_t pad_id) {
  std::vector<std::vector<const data::Encoded*>> rows;
  std::vector<const data::Encoded*> flat;
  std::vector<int64_t> example;  // row → its example (the responses of an example share their prompt)
  for (int64_t c : columns) {
    auto column = set.rows(index, c);
    rows.insert(rows.end(), column.begin(), column.end());
    for (size_t k = 0; k < column.size(); ++k) {
      flat.push_back(column[k][0]);
      example.push_back(index[k]);
    }
  }
  data::CollateOptions co;
  co.pad_id = pad_id;
  co.train_on_prompt = true;  // labels on every token; the response mask below selects the sums
  const auto b = data::collate(rows, co);
  // response[r, t] = 1 where position t predicts a response token (the token at t + 1).
  std::vector<float> response(static_cast<size_t>(b.rows * b.length), 0.f);
  for (int64_t r = 0; r < b.rows; ++r) {
    const auto& e = *rows[r][0];
    const auto n = static_cast<int64_t>(e.ids.size());
    for (int64_t j = std::max<int64_t>(1, e.prompt_len); j < n; ++j) response[r * b.length + j - 1] = 1.f;
  }
  auto mb = model_batch(b, device);
  share_prefixes(mb, flat, example);
  const auto lp = parallel::token_logprobs(lm, lm.hidden_states(mb.input), mb.labels, tp);  // [B·C, T] fp32, 0 where ignored
  // Sequence sums in fp64: a response's log-prob is a sum of many fp32 terms, and the losses of differences of
  // such sums (IPO, raw IPO) amplify its rounding.
  const auto lp64 = lp.to(at::kDouble);
  const auto mask = at::from_blob(response.data(), {b.rows, b.length}, at::kFloat).clone().to(device, at::kDouble);
  const auto B = static_cast<int64_t>(index.size()), C = static_cast<int64_t>(columns.size());
  SeqLogps out;
  out.sum = (lp64 * mask).sum(1).view({C, B}).t();
  out.len = mask.sum(1).view({C, B}).t();
  out.full_sum = lp64.narrow(0, 0, B).sum(1);
  out.full_len = (mb.labels.narrow(0, 0, B) != model::kIgnoreIndex).sum(1).to(at::kDouble);
  out.tokens = b.tokens;
  return out;
}

Reference make_reference(StageEnv& env, const config::StageConfig& stage, const ModelSource& policy,
                         const ResponseSet& train, const ResponseSet* eval, int32_t pad) {
  Reference out;
  if (!stage.reference) return out;
  const bool base = config::is_policy_base(env.recipe, stage.reference->model);
  if (base && !stage.reference->precompute) {  // the policy with its adapters off, set once it is loaded
    out.policy_base = true;
    return out;
  }
  ModelSource ref_src = base ? policy : resolve_model(env.recipe, stage.reference->model);
  if (base) {  // precomputed: the base model alone
    if (!ref_src.lora) throw UsageError("stage '" + stage.name + "': `reference: base` needs a policy with LoRA adapters");
    ref_src.lora.reset();
    ref_src.adapter_dir.clear();
    ref_src.name = policy.name + " (base)";
  }
  const auto dtype = frozen_dtype(env.recipe, base ? stage.policy : stage.reference->model);
  if (ref_src.config.vocab_size != policy.config.vocab_size) {
    throw UsageError("stage '" + stage.name + "': reference '" + ref_src.name + "' has vocab_size " +
                     std::to_string(ref_src.config.vocab_size) + " but the policy has " +
                     std::to_string(policy.config.vocab_size) + " (they must share a tokenizer)");
  }
  if (!stage.reference->precompute) {
    out.live = load_frozen_model(ref_src, env.groups, env.device, dtype);
    model::CausalLM* lm = out.live->lm.get();
    runtime::Groups* groups = &env.groups;
    const at::Device device = env.device;
    out.train = [lm, groups, device, pad](const ResponseSet& set, const std::vector<int64_t>& index,
                                          const std::vector<int64_t>& columns) {
      at::NoGradGuard no_grad;
      return sequence_logps(*lm, *groups->tp, device, set, index, columns, pad).sum;
    };
    out.eval = out.train;
    return out;
  }
  std::optional<LoadedModel> model;
  auto table_for = [&](const ResponseSet& set) {
    const FrozenCache cache = frozen_cache(env.recipe, "reference", ref_src, set, dtype,
                                           "stage-kind:" + std::string(config::name_of(stage.kind)));
    const auto cached = read_frozen(env.world, cache, [&](const CachedTensors& t) {
      const auto it = t.find("reference_logps");
      return it != t.end() && it->second.dim() == 2 && it->second.size(0) == set.size() &&
             it->second.size(1) == set.width;
    });
    if (cached) {
      spdlog::info("[{}] reference log-probs of {} from cache {}", stage.name, set.path, cache.file.string());
      return cached->at("reference_logps").to(at::kDouble);
    }
    if (!model) model = load_frozen_model(ref_src, env.groups, env.device, dtype);
    spdlog::info("[{}] precomputing reference log-probs of {} examples of {} with '{}'", stage.name, set.size(),
                 set.path, ref_src.name);
    auto table = reference_table(*model->lm, env.groups, env.device, set, stage.batch.micro, pad);
    write_frozen(env.world, cache, {{"reference_logps", table}}, {{"data", set.path}});
    return table;
  };
  out.train = table_reference(table_for(train), env.device);
  if (eval) out.eval = table_reference(table_for(*eval), env.device);
  return out;  // `model` is freed here: the reference is not needed during training
}

ReferenceFn policy_base_reference(model::CausalLM& lm, runtime::Groups& groups, const at::Device& device, int32_t pad) {
  model::CausalLM* policy = &lm;
  runtime::Groups* g = &groups;
  return [policy, g, device, pad](const ResponseSet& set, const std::vector<int64_t>& index,
                                  const std::vector<int64_t>& columns) {
    at::NoGradGuard no_grad;
    model::LoraDisabled off(*policy);
    return sequence_logps(*policy, *g->tp, device, set, index, columns, pad).sum;
  };
}

void MetricSums::add(const objectives::LossTerms& terms) {
  auto put = [&](const std::string& key, const at::Tensor& v) {
    const auto d = v.detach().to(at::kDouble);
    const auto ok = ~d.isnan();
    const double s = runtime::host_value<double>(at::where(ok, d, at::zeros_like(d)).sum());
    const double c = runtime::host_value<double>(ok.sum());
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) {
        sums[i] += s;
        counts[i] += c;
        return;
      }
    }
    keys.push_back(key);
    sums.push_back(s);
    counts.push_back(c);
  };
  put("loss", terms.loss);
  for (const auto& [k, v] : terms.metrics) put(k, v);
}

StepMetrics MetricSums::mean(runtime::Communicator& dp, const at::Device& device, double examples,
                             const std::string& prefix) const {
  std::vector<double> both(sums);
  both.insert(both.end(), counts.begin(), counts.end());
  auto t = at::tensor(both, at::kDouble).to(device);
  dp.all_reduce(t, runtime::ReduceOp::kSum);
  t = runtime::to_host(t);
  const auto n = static_cast<int64_t>(keys.size());
  StepMetrics out;
  for (int64_t i = 0; i < n; ++i) {
    const double sum = t[i].item<double>(), count = t[n + i].item<double>();
    const double value = keys[i] == "loss" ? sum / examples : (count > 0 ? sum / count : std::nan(""));
    out.emplace_back(prefix + keys[i], value);
  }
  return out;
}

namespace {

class ResponseObjective : public TrainObjective {
 public:
  ResponseObjective(model::CausalLM& lm, runtime::Groups& groups, at::Device device, const ResponseSet& set,
                    const ReferenceFn& ref, ResponseLoss& loss, int32_t pad, int64_t micro)
      : lm_(lm), groups_(groups), device_(device), set_(set), ref_(ref), loss_(loss), pad_(pad), micro_(micro) {}

  int64_t num_examples() const override { return set_.size(); }
  const std::vector<int64_t>& lengths() const override { return no_lengths_; }
  void begin_step(const data::StepRows& step) override {
    global_ = static_cast<int64_t>(step.rows.size());
    tokens_ = 0;
    for (const auto& row : step.rows)
      for (int64_t i : row)
        for (int64_t c : loss_.train_columns) tokens_ += static_cast<int64_t>(set_.at(i, c).ids.size());
    sums_ = MetricSums{};
    if (loss_.before_step) loss_.before_step(lm_, data::micro_batches(step, groups_.layout.dp_rank, groups_.layout.dp, micro_));
  }
  void micro_step(const std::vector<std::vector<int64_t>>& rows) override {
    std::vector<int64_t> index;
    for (const auto& r : rows) index.insert(index.end(), r.begin(), r.end());
    const auto policy = sequence_logps(lm_, *groups_.tp, device_, set_, index, loss_.train_columns, pad_);
    const at::Tensor ref = ref_ ? ref_(set_, index, loss_.train_columns) : at::Tensor();
    const auto terms = loss_.loss({set_, index, policy, ref, true});
    (terms.loss.sum() * (static_cast<double>(groups_.layout.dp) / static_cast<double>(global_))).backward();
    sums_.add(terms);
  }
  StepMetrics end_step(bool) override { return sums_.mean(*groups_.dp, device_, static_cast<double>(global_), ""); }
  int64_t step_tokens() const override { return tokens_; }
  nlohmann::json state() const override { return loss_.state ? loss_.state() : nlohmann::json::object(); }
  void load_state(const nlohmann::json& j) override {
    if (loss_.load_state) loss_.load_state(j);
  }

 private:
  model::CausalLM& lm_;
  runtime::Groups& groups_;
  at::Device device_;
  const ResponseSet& set_;
  const ReferenceFn& ref_;
  ResponseLoss& loss_;
  int32_t pad_;
  int64_t micro_;
  std::vector<int64_t> no_lengths_;
  int64_t global_ = 0, tokens_ = 0;
  MetricSums sums_;
};

StepMetrics evaluate_responses(model::CausalLM& lm, runtime::Groups& groups, const at::Device& device,
                               const ResponseSet& set, const ReferenceFn& ref, ResponseLoss& loss, int64_t micro,
                               int32_t pad) {
  at::NoGradGuard no_grad;
  MetricSums sums;
  auto score = [&](const std::vector<int64_t>& batch) {
    const auto policy = sequence_logps(lm, *groups.tp, device, set, batch, loss.eval_columns, pad);
    const at::Tensor r = ref ? ref(set, batch, loss.eval_columns) : at::Tensor();
    sums.add(loss.loss({set, batch, policy, r, false}));
  };
  for_my_batches(set, groups, micro, score);
  if (sums.keys.empty()) {  // no example on this rank: contribute zeros under the same keys as the others
    score({0});
    std::fill(sums.sums.begin(), sums.sums.end(), 0.0);
    std::fill(sums.counts.begin(), sums.counts.end(), 0.0);
  }
  return sums.mean(*groups.dp, device, static_cast<double>(set.size()), "eval/");
}

}  // namespace

StageResult run_response_stage(StageEnv& env, const config::StageConfig& stage, const ModelSource& policy,
                               const ResponseSet& train_set, const ResponseSet* eval, Reference& reference,
                               ResponseLoss& loss, int32_t pad) {
  if (stage.kind == config::StageKind::eval) {  // evaluation only: `train_set` is the stage's data.eval
    auto loaded = load_model(policy, env.groups, env.device, frozen_dtype(env.recipe, stage.policy));
    if (reference.policy_base) reference.train = policy_base_reference(*loaded.lm, env.groups, env.device, pad);
    const auto t0 = std::chrono::steady_clock::now();
    const StepMetrics m = evaluate_responses(*loaded.lm, env.groups, env.device, train_set, reference.train, loss,
                                             stage.batch.micro, pad);
    nlohmann::ordered_json line;
    line["stage"] = stage.name;
    line["step"] = 0;
    std::string shown;
    for (const auto& [k, v] : m) {
      line[k] = v;
      shown += fmt::format("  {} {:.4f}", k, v);
    }
    env.metrics.truncate_after(stage.name, -1);
    env.metrics.write(line);
    spdlog::info("[{}] '{}' on {}:{}", stage.name, stage.policy, train_set.path, shown);
    const std::optional<double> accuracy =
        line.contains("eval/rewards/accuracies") ? std::optional<double>(line["eval/rewards/accuracies"]) : std::nullopt;
    return {eval_summary(line.value("eval/loss", 0.0), accuracy,
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()),
            false};
  }
  return run_training_stage(env, stage, policy, [&](model::CausalLM& lm) {
    if (reference.policy_base) reference.train = reference.eval = policy_base_reference(lm, env.groups, env.device, pad);
    StageTraining t;
    t.objective = std::make_unique<ResponseObjective>(lm, env.groups, env.device, train_set, reference.train, loss, pad,
                                                      stage.batch.micro);
    if (eval) {
      t.evaluate = [&env, &lm, eval, &reference, &loss, &stage, pad]() -> StepMetrics {
        return evaluate_responses(lm, env.groups, env.device, *eval, reference.eval, loss, stage.batch.micro, pad);
      };
    }
    return t;
  });
}

}  // namespace aligntrain::stages
