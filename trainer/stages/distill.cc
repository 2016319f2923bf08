// See distill.h.
#include "trainer/stages/distill.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <optional>

#include "common/errors.h"
#include "data/collate.h"
#include "data/dealing.h"
#include "data/example.h"
#include "trainer/generation/completions.h"
#include "trainer/generation/generator.h"
#include "trainer/model/logprobs.h"
#include "trainer/objectives/distill.h"
#include "trainer/parallel/vocab_parallel.h"
#include "trainer/runtime/host_sync.h"
#include "trainer/stages/distill_data.h"
#include "trainer/stages/distill_losses.h"
#include "trainer/stages/models.h"
#include "trainer/stages/responses.h"
#include "trainer/stages/teacher_tables.h"
#include "trainer/stages/training_stage.h"

namespace aligntrain::stages {

namespace {

struct Sums {
  double nll = 0, distill0 = 0, distill1 = 0;
};

class DistillObjective : public TrainObjective {
 public:
  DistillObjective(StageEnv& env, const config::StageConfig& stage, DistillMethod method, model::CausalLM& student,
                   const Teacher& teacher, const Teacher* teacher_ref, const ResponseSet& train,
                   const data::Tokenizer& tok)
      : env_(env), stage_(stage), method_(method), loss_(make_distill_loss(method, stage.loss)), lm_(student),
        teacher_(teacher), ref_(teacher_ref), train_(train), tok_(tok), pad_(collate_options(tok, stage).pad_id) {}

  int64_t num_examples() const override { return train_.size(); }
  const std::vector<int64_t>& lengths() const override { return no_lengths_; }

  void begin_step(const data::StepRows& step) override {
    samples_.clear();
    on_policy_ = false;
    const double lmbda = stage_.loss.lmbda.value_or(0.0);
    if ((method_ == DistillMethod::kd || method_ == DistillMethod::aligndistil) && lmbda > 0) {
      const uint64_t seed = static_cast<uint64_t>(stage_.generation.seed.value_or(0));
      const double u = static_cast<double>(data::splitmix64_of(seed ^ data::splitmix64_of(static_cast<uint64_t>(step.begin))) >> 11) * 0x1.0p-53;
      on_policy_ = u < lmbda;
      if (on_policy_) sample_completions(step, seed);
    }
    set_counts(step.rows, train_);
    step_tokens_ = 0;
    for (const auto& row : step.rows)
      for (int64_t i : row)
        for (int64_t c = 0; c < train_.width; ++c) step_tokens_ += static_cast<int64_t>(item(train_, i, c).ids.size());
    sums_ = {};
  }

  void micro_step(const std::vector<std::vector<int64_t>>& rows) override {
    std::vector<int64_t> index;
    for (const auto& r : rows) index.insert(index.end(), r.begin(), r.end());
    for (int64_t c = 0; c < train_.width; ++c) column(train_, index, c, /*train=*/true, sums_);
  }

  // One backward pass per response column.
  bool one_backward_per_micro_step() const override { return train_.width == 1; }

  StepMetrics end_step(bool) override {
    auto m = reduce(sums_, "");
    m.emplace_back("on_policy", on_policy_ ? 1.0 : 0.0);
    return m;
  }
  int64_t step_tokens() const override { return step_tokens_; }

  // The objective over a whole data set without gradients, examples dealt round-robin over the DP group.
  StepMetrics evaluate(const ResponseSet& set) {
    at::NoGradGuard no_grad;
    evaluating_ = true;
    samples_.clear();
    std::vector<std::vector<int64_t>> all;
    for (int64_t i = 0; i < set.size(); ++i) all.push_back({i});
    set_counts(all, set);
    Sums sums;
    const int dp = env_.groups.layout.dp, r = env_.groups.layout.dp_rank;
    for (const auto& mine : data::rank_batches(set.size(), r, dp, stage_.batch.micro))
      for (int64_t c = 0; c < set.width; ++c) column(set, mine, c, /*train=*/false, sums);
    evaluating_ = false;
    return reduce(sums, "eval/");
  }

 private:
  const data::Encoded& item(const ResponseSet& set, int64_t i, int64_t c) const {
    if (c == 0 && !samples_.empty()) return samples_.at(i);
    return set.at(i, c);
  }

  // Global response-token counts and sequence count of the rows a step (or an evaluation) covers.
  void set_counts(const std::vector<std::vector<int64_t>>& rows, const ResponseSet& set) {
    tokens_.assign(static_cast<size_t>(set.width), 0);
    seqs_ = 0;
    for (const auto& row : rows) {
      for (int64_t i : row) {
        ++seqs_;
        for (int64_t c = 0; c < set.width; ++c) {
          const auto& e = item(set, i, c);
          tokens_[static_cast<size_t>(c)] += static_cast<int64_t>(e.ids.size()) - e.prompt_len;
        }
      }
    }
  }

  // An on-policy step (GKD; on-policy AlignDistil): every row's completion is replaced by one the student samples now.
  void sample_completions(const data::StepRows& step, uint64_t seed) {
    std::vector<int64_t> order;
    std::vector<generation::Request> requests;
    for (const auto& row : step.rows) {
      for (int64_t i : row) {
        const auto& e = train_.at(i, 0);
        order.push_back(i);
        requests.push_back({std::vector<int32_t>(e.ids.begin(), e.ids.begin() + e.prompt_len),
                            static_cast<uint64_t>(step.begin) * 1000003ULL + order.size()});
      }
    }
    const auto& g = stage_.generation;
    generation::GenerateOptions o;
    o.sampling = {g.temperature, g.top_p, g.top_k};
    o.max_new_tokens = g.max_new_tokens;
    o.batch_size = stage_.batch.micro;
    o.seed = seed;
    o.eos_ids = generation::stop_ids(lm_.config(), tok_);
    o.pad_id = pad_;
    o.vocab_limit = tok_.vocab_size();
    const auto out = generation::generate_sharded(lm_, env_.groups, requests, o, env_.device);
    const auto eos = tok_.eos_id();
    for (size_t j = 0; j < order.size(); ++j) {
      data::Encoded e;
      e.ids = requests[j].prompt;
      e.prompt_len = static_cast<int64_t>(e.ids.size());
      e.ids.insert(e.ids.end(), out[j].tokens.begin(), out[j].tokens.end());
      if (out[j].stopped && eos) e.ids.push_back(*eos);
      if (e.ids.size() == static_cast<size_t>(e.prompt_len)) e.ids.push_back(eos.value_or(pad_));
      if (static_cast<int64_t>(e.ids.size()) > stage_.batch.max_length) {
        e.ids.resize(static_cast<size_t>(std::max<int64_t>(stage_.batch.max_length, e.prompt_len + 1)));
      }
      samples_[order[j]] = std::move(e);
    }
  }

  // Loss terms of response column c of examples `index`: adds each term's share of the global mean to `sums` and,
  // when training, back-propagates the weighted sum (scaled for the data-parallel gradient average).
  void column(const ResponseSet& set, const std::vector<int64_t>& index, int64_t c, bool train, Sums& sums) {
    const double w_nll = loss_->nll_weight(c), w_dist = loss_->distill_weight(c);
    std::vector<std::vector<const data::Encoded*>> rows;
    for (int64_t i : index) rows.push_back({&item(set, i, c)});
    const auto b = data::collate(rows, data::CollateOptions{pad_, false});
    const auto& dev = env_.device;
    const auto mb = model_batch(b, dev);
    auto& tp = *env_.groups.tp;
    const double tokens = static_cast<double>(std::max<int64_t>(tokens_[static_cast<size_t>(c)], 1));

    const auto hidden = lm_.hidden_states(mb.input);
    at::Tensor total = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(dev));
    if (c == 0) {
      // Only a metric when its weight is 0: no graph, so its log-softmax blocks are not kept for a backward.
      std::optional<at::NoGradGuard> metric_only;
      if (w_nll <= 0) metric_only.emplace();
      const auto nll = -objectives::token_logprob_sum(hidden, *lm_.lm_head, mb.labels, tp) / tokens;
      sums.nll += runtime::host_value<double>(nll);
      if (w_nll > 0) total = total + w_nll * nll;
    }
    if (loss_->has_divergence(c)) {
      const auto pos_mask = loss_->own_positions() ? mb.loss_mask.to(at::kBool) : mb.labels.ne(model::kIgnoreIndex);
      const auto sel = pos_mask.reshape({-1}).nonzero().squeeze(-1);
      auto select = [&](const at::Tensor& h) { return h.reshape({-1, h.size(-1)}).index_select(0, sel); };
      const auto h_sel = select(hidden);
      at::Tensor t_sel, r_sel;
      {
        at::NoGradGuard no_grad;
        if (teacher_.lm) t_sel = select(teacher_.lm->hidden_states(mb.input));
        if (ref_ && ref_->lm) {
          std::optional<model::LoraDisabled> base;
          if (ref_->adapters_off) base.emplace(*ref_->lm);
          r_sel = select(ref_->lm->hidden_states(mb.input));
        }
      }
      // Table rows of these positions, when a teacher's tables are precomputed.
      const at::Tensor table_rows_of =
          (teacher_.lm && (!ref_ || ref_->lm)) ? at::Tensor() : table_rows(offsets_of(teacher_), set, index, c);
      auto table = [&](bool reference, int64_t start, int64_t n) {
        const Teacher& who = reference ? *ref_ : teacher_;
        const at::Tensor& who_sel = reference ? r_sel : t_sel;
        if (who.lm) return objectives::teacher_table(who.lm->lm_head_forward(who_sel.narrow(0, start, n)), stage_.loss.top_k, tp);
        const auto& store = evaluating_ ? *who.eval : *who.train;
        return store.rows(table_rows_of.narrow(0, start, n), dev);
      };
      const auto weights = loss_->position_weights(pos_mask, sel, tokens, seqs_);
      const DivergenceInput in{h_sel, *lm_.lm_head, weights, teacher_.lm, ref_ ? ref_->lm : nullptr, t_sel, r_sel,
                               table, tp, lm_.config().vocab_size};
      const auto d = loss_->divergence(in);
      (c == 0 ? sums.distill0 : sums.distill1) += runtime::host_value<double>(d);
      if (w_dist > 0) total = total + w_dist * d;
    }
    if (train && total.requires_grad()) (total * static_cast<double>(env_.groups.layout.dp)).backward();
  }

  // Sums over the DP group into the metrics of the global batch.
  StepMetrics reduce(const Sums& s, const std::string& prefix) {
    auto t = at::tensor({s.nll, s.distill0, s.distill1}, at::kDouble).to(env_.device);
    env_.groups.dp->all_reduce(t, runtime::ReduceOp::kSum);
    t = runtime::to_host(t);
    StepMetrics m = loss_->metrics(t[0].item<double>(), t[1].item<double>(), t[2].item<double>());
    if (!prefix.empty())
      for (auto& [k, v] : m) k = prefix + k;
    return m;
  }

  StageEnv& env_;
  const config::StageConfig& stage_;
  DistillMethod method_;
  std::unique_ptr<DistillLoss> loss_;
  model::CausalLM& lm_;
  // The offsets of whichever teacher (or teacher_reference) is precomputed; both cover the same positions.
  const std::vector<int64_t>& offsets_of(const Teacher& t) const {
    const Teacher& pre = t.lm ? *ref_ : t;
    return (evaluating_ ? *pre.eval : *pre.train).offsets;
  }

  const Teacher& teacher_;
  const Teacher* ref_;
  bool evaluating_ = false;
  const ResponseSet& train_;
  const data::Tokenizer& tok_;
  int32_t pad_;
  std::vector<int64_t> no_lengths_;
  std::map<int64_t, data::Encoded> samples_;  // on-policy completions of this step's examples
  bool on_policy_ = false;
  std::vector<int64_t> tokens_;
  int64_t seqs_ = 0, step_tokens_ = 0;
  Sums sums_;
};

}  // namespace

StageResult run_distill(StageEnv& env, const config::StageConfig& stage) {
  const DistillMethod method = distill_method_of(stage);
  const auto& l = stage.loss;
  if (method == DistillMethod::adpa && (l.adpa_importance_sampling || l.kl_penalty_weight > 0)) {
    throw UsageError("stage '" + stage.name + "': adpa_importance_sampling and kl_penalty_weight (off in the released "
                     "recipes) are not built yet; leave them unset");
  }
  for (const auto* ref : {&stage.teacher, &stage.teacher_reference}) {
    if (*ref && (*ref)->precompute && method != DistillMethod::dckd && method != DistillMethod::adpa) {
      throw UsageError("stage '" + stage.name + "': loss type " + config::to_string(l.type.front()) +
                       " needs the teacher's full distribution online; drop `precompute: true`");
    }
  }
  const ModelSource src = policy_source(env.recipe, stage);
  const ModelSource teacher_src = resolve_model(env.recipe, stage.teacher->model);
  check_shared_tokenizer(stage, src, teacher_src, "teacher");
  std::optional<ModelSource> ref_src;
  // `teacher_reference: base`: the teacher with its adapters off; the live teacher itself when it is resident, else
  // its base model alone.
  const bool teacher_base =
      stage.teacher_reference && config::is_policy_base(env.recipe, stage.teacher_reference->model);
  if (teacher_base) {
    if (!teacher_src.lora) {
      throw UsageError("stage '" + stage.name + "': `teacher_reference: base` (the teacher with its LoRA adapters off) "
                       "needs a teacher with adapters; teacher '" + teacher_src.name + "' has none");
    }
    ref_src = teacher_src;  // keeps the teacher's name (and so its dtype)
    ref_src->lora.reset();
    ref_src->adapter_dir.clear();
  } else if (stage.teacher_reference) {
    ref_src = resolve_model(env.recipe, stage.teacher_reference->model);
    check_shared_tokenizer(stage, src, *ref_src, "teacher_reference");
  }
  const auto tok = data::load_tokenizer(src.tokenizer_dir);
  const auto train_set = load_distill_data(stage.data.train, stage, method, *tok, src);
  std::optional<ResponseSet> eval;
  if (!stage.data.eval.empty()) eval = load_distill_data(stage.data.eval, stage, method, *tok, src);
  spdlog::info("[{}] {} training example(s){}; student '{}', teacher '{}'{}, loss {}", stage.name, train_set.size(),
               eval ? fmt::format(", {} eval example(s)", eval->size()) : "", stage.policy, stage.teacher->model,
               ref_src ? ", teacher_reference '" + stage.teacher_reference->model + "'" : "",
               config::to_string(l.type.front()));

  // Precomputed tables first, so that a large teacher is loaded, used and freed before the student is loaded.
  const int32_t pad = collate_options(*tok, stage).pad_id;
  const std::vector<int64_t> table_columns =
      method == DistillMethod::dckd ? std::vector<int64_t>{0, 1} : std::vector<int64_t>{1};
  Teacher teacher, teacher_ref;
  auto prepare = [&](Teacher& t, const ModelSource& s, const config::ModelRef& ref) {
    if (!ref.precompute) return;
    t.train = precompute_tables(env, stage, s, train_set, table_columns, pad);
    if (eval) t.eval = precompute_tables(env, stage, s, *eval, table_columns, pad);
  };
  prepare(teacher, teacher_src, *stage.teacher);
  if (ref_src) prepare(teacher_ref, *ref_src, *stage.teacher_reference);

  std::vector<LoadedModel> resident;  // live (not precomputed) teachers, loaded after the student
  return run_training_stage(env, stage, src, [&](model::CausalLM& student) {
    auto frozen = [&](Teacher& t, const ModelSource& s, const config::ModelRef& ref) {
      if (ref.precompute) return;
      resident.push_back(load_frozen_model(s, env.groups, env.device, frozen_dtype(env.recipe, s.name)));
      t.lm = resident.back().lm.get();
    };
    frozen(teacher, teacher_src, *stage.teacher);
    if (teacher_base && teacher.lm && !stage.teacher_reference->precompute) {
      teacher_ref.lm = teacher.lm;  // no second copy of the weights
      teacher_ref.adapters_off = true;
    } else if (ref_src) {
      frozen(teacher_ref, *ref_src, *stage.teacher_reference);
    }
    StageTraining t;
    auto objective = std::make_unique<DistillObjective>(env, stage, method, student, teacher,
                                                        ref_src ? &teacher_ref : nullptr, train_set, *tok);
    if (eval) t.evaluate = [o = objective.get(), &eval]() -> StepMetrics { return o->evaluate(*eval); };
    t.objective = std::move(objective);
    return t;
  });
}

}  // namespace aligntrain::stages
