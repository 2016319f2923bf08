// See online.h.
#include "trainer/stages/online.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <optional>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "data/collate.h"
#include "data/encode.h"
#include "data/sampler.h"
#include "trainer/generation/completions.h"
#include "trainer/generation/generator.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/lora.h"
#include "trainer/objectives/online.h"
#include "trainer/parallel/vocab_parallel.h"
#include "trainer/runtime/host_sync.h"
#include "trainer/stages/distill_data.h"
#include "trainer/stages/models.h"
#include "trainer/stages/online_rewards.h"
#include "trainer/stages/reward_model.h"
#include "trainer/stages/training_stage.h"

namespace aligntrain::stages {

namespace {

namespace obj = objectives;
using config::LossType;

obj::RewardScaling scaling_of(config::RewardScaling s) {
  switch (s) {
    case config::RewardScaling::group: return obj::RewardScaling::kGroup;
    case config::RewardScaling::batch: return obj::RewardScaling::kBatch;
    case config::RewardScaling::none: return obj::RewardScaling::kNone;
  }
  return obj::RewardScaling::kGroup;
}

obj::GrpoAggregation aggregation_of(config::GrpoAggregation a) {
  switch (a) {
    case config::GrpoAggregation::grpo: return obj::GrpoAggregation::kGrpo;
    case config::GrpoAggregation::bnpo: return obj::GrpoAggregation::kBnpo;
    case config::GrpoAggregation::dapo: return obj::GrpoAggregation::kDapo;
    case config::GrpoAggregation::dr_grpo: return obj::GrpoAggregation::kDrGrpo;
  }
  return obj::GrpoAggregation::kDapo;
}

obj::FDivergence divergence_of(config::Divergence d) {
  switch (d) {
    case config::Divergence::forward_kl: return obj::FDivergence::kForwardKl;
    case config::Divergence::reverse_kl: return obj::FDivergence::kReverseKl;
    case config::Divergence::jsd: return obj::FDivergence::kJensenShannon;
    case config::Divergence::tvd: return obj::FDivergence::kTotalVariation;
  }
  return obj::FDivergence::kJensenShannon;
}

// disco's MovingAverage of one prompt's importance weights P(x)/q(x): the running mean of every value seen.
struct RunningMean {
  double value = 0;
  int64_t weight = 0;
  void add(double x) {
    value = weight == 0 ? x : (value * static_cast<double>(weight) + x) / static_cast<double>(weight + 1);
    ++weight;
  }
};

class OnlineObjective : public TrainObjective {
 public:
  // `reference` null with `reference_is_base`: the reference is the policy with its LoRA adapters off.
  OnlineObjective(StageEnv& env, const config::StageConfig& stage, model::CausalLM& policy, model::CausalLM* reference,
                  bool reference_is_base, const std::vector<data::Example>& examples, const std::vector<std::vector<int32_t>>& prompts,
                  const data::Tokenizer& tok, const Rewards& rewards, int32_t pad)
      : env_(env), stage_(stage), o_(stage.online), type_(stage.loss.type.front()), policy_(policy), ref_(reference),
        ref_base_(reference_is_base), examples_(examples), prompts_(prompts), tok_(tok), rewards_(rewards), pad_(pad), g_(o_.num_samples),
        beta_(o_.beta.value_or(config::default_online_beta(type_))), baseline_(o_.baseline_window) {}

  int64_t num_examples() const override { return static_cast<int64_t>(prompts_.size()); }
  const std::vector<int64_t>& lengths() const override { return no_lengths_; }
  int64_t steps_per_batch() const override { return o_.updates_per_batch; }

  void begin_step(const data::StepRows& step) override {
    if (pass_ % o_.updates_per_batch == 0) new_batch(step);
    pass_in_batch_ = pass_ % o_.updates_per_batch;
    ++pass_;
    micro_ = 0;
    const auto opts = at::TensorOptions().dtype(at::kDouble).device(env_.device);
    sums_ = at::zeros({4}, opts);  // loss, Σ m·KL, Σ clipped, Σ m (or sequences)
  }

  void micro_step(const std::vector<std::vector<int64_t>>& rows) override {
    const auto& mine = my_micros_.at(static_cast<size_t>(micro_));
    if (mine.size() != rows.size()) throw std::logic_error("online stage: micro-batch plan differs from the loop's");
    const size_t k = static_cast<size_t>(micro_++);
    const auto idx = sample_index(mine);
    const auto mb = batch_of(idx);
    const at::Tensor mask = mb.labels.ne(model::kIgnoreIndex).to(at::kFloat);
    const auto index = at::tensor(idx, at::kLong);
    const double tau = type_ == LossType::fdpg ? 1.0 : logp_temperature();
    const at::Tensor lp = token_logps(policy_, mb, tau);
    at::Tensor part;
    if (type_ == LossType::fdpg) {
      const at::Tensor seq = (lp.to(at::kDouble) * mask.to(at::kDouble)).sum(-1);  // fp64 sums, as responses.cc
      const at::Tensor adv = advantages_.index_select(0, index).to(env_.device);
      const at::Tensor q = proposal_.index_select(0, index).to(env_.device);
      const at::Tensor used = included_.index_select(0, index).to(env_.device);
      const double denom = static_cast<double>(g_) * static_cast<double>(std::max<int64_t>(contexts_used_, 1));
      part = (obj::fdpg_sample_loss(seq, q, adv) * used).sum() / denom;
    } else {
      at::Tensor old;
      if (o_.updates_per_batch == 1) {
        old = lp.detach();
      } else if (pass_in_batch_ == 0) {
        old = lp.detach();
        old_cache_.resize(my_micros_.size());
        old_cache_[k] = old;
      } else {
        old = old_cache_.at(k);
      }
      const at::Tensor adv = advantages_.index_select(0, index).to(env_.device);
      const obj::ClipRange clip{o_.epsilon, o_.epsilon_high.value_or(o_.epsilon)};
      if (type_ == LossType::grpo) {
        at::Tensor ref;
        if (beta_ > 0) {
          if (pass_in_batch_ == 0) {
            at::NoGradGuard no_grad;
            ref = reference_logps(mb, tau);
            if (o_.updates_per_batch > 1) {
              ref_cache_.resize(my_micros_.size());
              ref_cache_[k] = ref;
            }
          } else {
            ref = ref_cache_.at(k);
          }
        }
        const auto level = o_.importance_sampling_level == config::ImportanceLevel::sequence
                               ? obj::ImportanceLevel::kSequence
                               : obj::ImportanceLevel::kToken;
        const auto terms = obj::grpo_token_loss(lp, old, ref, adv, mask, clip, beta_, level);
        part = obj::aggregate_grpo_loss(terms.loss, mask, aggregation_of(o_.aggregation), global_);
        const at::Tensor m = mask.detach().to(at::kDouble);
        if (beta_ > 0) sums_[1] += (terms.kl.detach().to(at::kDouble) * m).sum();
        sums_[2] += (terms.clipped.to(at::kDouble) * m).sum();
        sums_[3] += m.sum();
      } else {  // rloo
        const auto terms = obj::rloo_sequence_loss(lp, old, adv, mask, clip);
        part = terms.loss.sum() / static_cast<double>(global_.sequences);
        sums_[2] += terms.clipped.to(at::kDouble).sum();
        sums_[3] += static_cast<double>(idx.size());
      }
    }
    sums_[0] += part.detach().to(at::kDouble);
    if (part.requires_grad()) (part * static_cast<double>(env_.groups.layout.dp)).backward();
  }

  StepMetrics end_step(bool report) override {
    if (!report) return {};
    // The samples of a logged step's batch, once per batch (with updates_per_batch > 1 a logged step may be any
    // step on them), named by the batch's first step.
    const int64_t first = pass_ - pass_in_batch_;
    if (env_.world.is_root() && samples_written_ != first) {
      write_samples(first);
      samples_written_ = first;
    }
    env_.groups.dp->all_reduce(sums_, runtime::ReduceOp::kSum);
    const auto s = runtime::to_host(sums_);
    const double* v = s.data_ptr<double>();
    StepMetrics m;
    m.emplace_back("loss", v[0]);
    for (const auto& [k, x] : batch_metrics_) m.emplace_back(k, x);
    if (type_ == LossType::grpo) {
      if (beta_ > 0) m.emplace_back("kl", v[1] / std::max(v[3], 1.0));
      m.emplace_back("clip_fraction", v[2] / std::max(v[3], 1.0));
    } else if (type_ == LossType::rloo) {
      m.emplace_back("clip_fraction", v[2] / std::max(v[3], 1.0));
    }
    return m;
  }

  int64_t step_tokens() const override { return step_tokens_; }

  nlohmann::json state() const override {
    nlohmann::json j = {{"steps", pass_}};
    if (type_ != LossType::fdpg) return j;
    nlohmann::json z = nlohmann::json::object();
    for (const auto& [i, r] : z_) z[std::to_string(i)] = {r.value, r.weight};
    j["baseline"] = baseline_.state();
    j["z"] = z;
    return j;
  }

  void load_state(const nlohmann::json& j) override {
    if (!j.is_object()) return;
    pass_ = j.value("steps", int64_t{0});
    if (type_ != LossType::fdpg) return;
    if (j.contains("baseline")) baseline_.load_state(j.at("baseline").get<std::vector<double>>());
    z_.clear();
    if (j.contains("z"))
      for (const auto& [key, val] : j.at("z").items())
        z_[std::stoll(key)] = RunningMean{val.at(0).get<double>(), val.at(1).get<int64_t>()};
  }

 private:
  // <output_dir>/<stage>/samples/step-N.jsonl: the batch's samples at a logged step (N = the first step on them),
  // one line each: prompt index, sample, text, rewards, advantage and token ids. Rewritten whole on a resume.
  void write_samples(int64_t step) const {
    const auto dir = std::filesystem::path(env_.recipe.run.output_dir) / stage_.name / "samples";
    std::filesystem::create_directories(dir);
    AtomicFile f((dir / fmt::format("step-{:06d}.jsonl", step)).string());
    for (size_t i = 0; i < samples_.size(); ++i) {
      nlohmann::ordered_json line;
      line["step"] = step;
      line["example"] = sample_prompt_[i];
      line["sample"] = static_cast<int64_t>(i) % g_;
      line["completion"] = texts_[i];
      line["reward"] = totals_[i];
      for (size_t k = 0; k < rewards_.size(); ++k) line[rewards_.names()[k]] = values_[k][i];
      line["advantage"] = advantages_[static_cast<int64_t>(i)].item<double>();
      const auto& e = samples_[i];
      line["prompt_ids"] = std::vector<int32_t>(e.ids.begin(), e.ids.begin() + e.prompt_len);
      line["completion_ids"] = std::vector<int32_t>(e.ids.begin() + e.prompt_len, e.ids.end());
      f.write(line.dump() + "\n");
    }
    f.commit();
  }

  // The sampling distribution's temperature (GRPO and RLOO take log-probs of logits / temperature, as TRL does).
  double logp_temperature() const {
    const double t = stage_.generation.temperature;
    return t > 0 ? t : 1.0;
  }

  std::vector<int64_t> sample_index(const std::vector<std::vector<int64_t>>& rows) const {
    std::vector<int64_t> idx;
    for (const auto& row : rows)
      for (int64_t p : row)
        for (int64_t s = 0; s < g_; ++s) idx.push_back(p * g_ + s);
    return idx;
  }

  // The samples `idx` as one batch. The samples of a prompt share it: each prompt goes through the model once
  // (ForwardInput::shared_prefix), and its gradient sums over the prompt's samples.
  ModelBatch batch_of(const std::vector<int64_t>& idx) const {
    std::vector<std::vector<const data::Encoded*>> rows;
    std::vector<const data::Encoded*> flat;
    std::vector<int64_t> prompt_of;  // batch position
    for (int64_t i : idx) {
      flat.push_back(&samples_.at(static_cast<size_t>(i)));
      rows.push_back({flat.back()});
      prompt_of.push_back(i / g_);
    }
    auto mb = model_batch(data::collate(rows, data::CollateOptions{pad_, false}), env_.device);
    share_prefixes(mb, flat, prompt_of);
    return mb;
  }

  // Per-token log-probs [B, T] of the completion tokens (0 elsewhere) with the logits divided by `tau`.
  at::Tensor token_logps(model::CausalLM& lm, const ModelBatch& mb, double tau) {
    at::Tensor h = lm.hidden_states(mb.input);
    if (tau != 1.0) h = h / tau;  // the LM head is linear without a bias: logits / τ
    return parallel::token_logprobs(lm, h, mb.labels, *env_.groups.tp);
  }

  // The reference's per-token log-probs: a model of its own, or the policy with its adapters switched off.
  at::Tensor reference_logps(const ModelBatch& mb, double tau) {
    if (!ref_base_) return token_logps(*ref_, mb, tau);
    model::LoraDisabled off(policy_);
    return token_logps(policy_, mb, tau);
  }

  // Sequence sums over this rank's samples of the batch, all-reduced into [S] vectors (fp64, host) on every rank;
  // a null model is the reference.
  std::vector<at::Tensor> score_pass(const std::vector<std::pair<model::CausalLM*, double>>& models) {
    at::NoGradGuard no_grad;
    const int64_t n = static_cast<int64_t>(samples_.size());
    auto table = at::zeros({static_cast<int64_t>(models.size()), n}, at::TensorOptions().dtype(at::kDouble));
    for (const auto& micro : my_micros_) {
      const auto idx = sample_index(micro);
      const auto mb = batch_of(idx);
      const at::Tensor mask = mb.labels.ne(model::kIgnoreIndex).to(at::kFloat);
      const auto index = at::tensor(idx, at::kLong);
      for (size_t j = 0; j < models.size(); ++j) {
        const double tau = models[j].second;
        const at::Tensor lp = (models[j].first ? token_logps(*models[j].first, mb, tau) : reference_logps(mb, tau))
                                  .to(at::kDouble);
        const at::Tensor seq = (lp * mask.to(at::kDouble)).sum(-1);
        table[static_cast<int64_t>(j)].index_copy_(0, index, runtime::to_host(seq));
      }
    }
    auto t = table.to(env_.device);
    env_.groups.dp->all_reduce(t, runtime::ReduceOp::kSum);
    t = runtime::to_host(t);
    std::vector<at::Tensor> out;
    for (size_t j = 0; j < models.size(); ++j) out.push_back(t[static_cast<int64_t>(j)].clone());
    return out;
  }

  void new_batch(const data::StepRows& step) {
    std::vector<int64_t> prompt_of;  // batch position → example
    for (const auto& row : step.rows) prompt_of.insert(prompt_of.end(), row.begin(), row.end());
    const int64_t P = static_cast<int64_t>(prompt_of.size());
    data::StepRows positions;
    positions.begin = step.begin;
    positions.end = step.end;
    for (int64_t p = 0; p < P; ++p) positions.rows.push_back({p});
    my_micros_ = data::micro_batches(positions, env_.groups.layout.dp_rank, env_.groups.layout.dp, stage_.batch.micro);
    old_cache_.clear();
    ref_cache_.clear();

    // Sample G completions of every prompt; each from its own noise stream (batch start, position, sample).
    std::vector<generation::Request> requests;
    for (int64_t p = 0; p < P; ++p)
      for (int64_t s = 0; s < g_; ++s)
        requests.push_back({prompts_[static_cast<size_t>(prompt_of[static_cast<size_t>(p)])],
                            (static_cast<uint64_t>(step.begin) * 1000003ULL + static_cast<uint64_t>(p)) *
                                    static_cast<uint64_t>(g_) + static_cast<uint64_t>(s)});
    const auto& gen = stage_.generation;
    generation::GenerateOptions go;
    go.sampling = {gen.temperature, gen.top_p, gen.top_k};
    go.max_new_tokens = gen.max_new_tokens;
    go.batch_size = std::max<int64_t>(1, int64_t{stage_.batch.micro} * g_);
    go.seed = static_cast<uint64_t>(gen.seed.value_or(0));
    go.eos_ids = generation::stop_ids(policy_.config(), tok_);
    go.pad_id = pad_;
    go.vocab_limit = tok_.vocab_size();
    at::NoGradGuard no_grad;
    const auto out = generation::generate_sharded(policy_, env_.groups, requests, go, env_.device);

    samples_.clear();
    texts_.clear();
    sample_prompt_.clear();
    std::vector<RewardSample> scored;
    int64_t completion_tokens = 0, stopped = 0, generated = 0;
    step_tokens_ = 0;
    const auto eos = tok_.eos_id();
    for (size_t j = 0; j < requests.size(); ++j) {
      data::Encoded e;
      e.ids = requests[j].prompt;
      e.prompt_len = static_cast<int64_t>(e.ids.size());
      e.ids.insert(e.ids.end(), out[j].tokens.begin(), out[j].tokens.end());
      if (out[j].stopped) e.ids.push_back(eos ? *eos : static_cast<int32_t>(go.eos_ids.front()));
      if (e.ids.size() == static_cast<size_t>(e.prompt_len)) e.ids.push_back(eos.value_or(pad_));
      if (static_cast<int64_t>(e.ids.size()) > stage_.batch.max_length)
        e.ids.resize(static_cast<size_t>(std::max<int64_t>(stage_.batch.max_length, e.prompt_len + 1)));
      completion_tokens += static_cast<int64_t>(e.ids.size()) - e.prompt_len;
      step_tokens_ += static_cast<int64_t>(e.ids.size());
      stopped += out[j].stopped;
      generated += static_cast<int64_t>(out[j].tokens.size());
      const auto& ex = examples_[static_cast<size_t>(prompt_of[j / static_cast<size_t>(g_)])];
      scored.push_back({&ex, tok_.decode(out[j].tokens, /*skip_special=*/true),
                        static_cast<int64_t>(out[j].tokens.size())});
      texts_.push_back(scored.back().completion);
      sample_prompt_.push_back(prompt_of[j / static_cast<size_t>(g_)]);
      samples_.push_back(std::move(e));
    }
    const int64_t S = static_cast<int64_t>(samples_.size());
    global_.sequences = S;
    global_.completion_tokens = static_cast<double>(completion_tokens);
    global_.max_completion_length = gen.max_new_tokens;

    values_ = rewards_.score(scored, *env_.groups.host);
    totals_ = rewards_.total(values_);
    const auto& values = values_;
    const auto& total = totals_;
    const at::Tensor r = at::tensor(total, at::kDouble);
    batch_metrics_.clear();
    batch_metrics_.emplace_back("reward", r.mean().item<double>());
    batch_metrics_.emplace_back("reward_std", S > 1 ? r.std().item<double>() : 0.0);
    for (size_t k = 0; k < rewards_.size(); ++k)
      batch_metrics_.emplace_back(rewards_.names()[k], at::tensor(values[k], at::kDouble).mean().item<double>());
    if (const int em = rewards_.exact_match_index(); em >= 0)
      batch_metrics_.emplace_back("correct", at::tensor(values[static_cast<size_t>(em)], at::kDouble).mean().item<double>());
    batch_metrics_.emplace_back("completion_length", static_cast<double>(completion_tokens) / static_cast<double>(S));
    batch_metrics_.emplace_back("stopped", static_cast<double>(stopped) / static_cast<double>(S));

    switch (type_) {
      case LossType::grpo:
        advantages_ = obj::grpo_advantages(r, g_, scaling_of(o_.scale_rewards));
        break;
      case LossType::rloo: {
        at::Tensor rr = r;
        if (beta_ > 0) {  // r − β·Σ_t (ℓ^old − ℓ^ref), the sampling policy being the current one
          const auto t = score_pass({{&policy_, logp_temperature()}, {nullptr, logp_temperature()}});
          const at::Tensor kl = t[0] - t[1];
          rr = r - beta_ * kl;
          batch_metrics_.emplace_back("kl", kl.mean().item<double>());
        }
        advantages_ = obj::rloo_advantages(rr, g_, o_.normalize_advantages);
        break;
      }
      case LossType::fdpg: fdpg_batch(prompt_of, r); break;
      default: throw std::logic_error("online stage: unexpected loss type");
    }
    advantages_ = advantages_.to(at::kDouble).contiguous();
  }

  // f-DPG: target log-scores, the per-prompt Z, the pseudo-rewards and the baseline, prompt by prompt in batch
  // order as disco's tuner processes contexts.
  void fdpg_batch(const std::vector<int64_t>& prompt_of, const at::Tensor& r) {
    const double tau = logp_temperature();
    const bool same = tau == 1.0;
    std::vector<std::pair<model::CausalLM*, double>> models = {{&policy_, 1.0}, {nullptr, 1.0}};
    if (!same) models.push_back({&policy_, tau});
    const auto t = score_pass(models);
    const at::Tensor pi = t[0], base = t[1];
    proposal_ = same ? pi : t[2];
    const double inf = std::numeric_limits<double>::infinity();
    const at::Tensor log_b = o_.target == config::FdpgTarget::constraint
                                 ? at::where(r > 0, at::zeros_like(r), at::full_like(r, -inf))
                                 : r / o_.beta.value_or(config::default_online_beta(LossType::fdpg));
    const at::Tensor target = base + log_b;  // log P(x)
    const int64_t S = r.numel();
    advantages_ = at::zeros({S}, at::kDouble);
    included_ = at::zeros({S}, at::kDouble);
    contexts_used_ = 0;
    const auto div = divergence_of(o_.divergence);
    double z_sum = 0, pseudo_sum = 0;
    int64_t pseudo_n = 0;
    for (size_t p = 0; p < prompt_of.size(); ++p) {
      const int64_t lo = static_cast<int64_t>(p) * g_;
      const at::Tensor tp = target.narrow(0, lo, g_), qp = proposal_.narrow(0, lo, g_), pip = pi.narrow(0, lo, g_);
      RunningMean& z = z_[prompt_of[p]];
      const at::Tensor w = (tp - qp).exp();  // importance weights P(x)/q(x), one update each
      for (int64_t s = 0; s < g_; ++s) z.add(w[s].item<double>());
      z_sum += z.value;
      if (!(z.value > 0)) continue;  // no sample of this prompt has met the target yet: no loss (disco)
      const at::Tensor pseudo = obj::fdpg_pseudo_rewards(pip, tp, std::log(z.value), div);
      advantages_.narrow(0, lo, g_).copy_(baseline_.advantages(pseudo));
      included_.narrow(0, lo, g_).fill_(1.0);
      pseudo_sum += pseudo.sum().item<double>();
      pseudo_n += g_;
      ++contexts_used_;
    }
    batch_metrics_.emplace_back("z", z_sum / static_cast<double>(std::max<size_t>(prompt_of.size(), 1)));
    batch_metrics_.emplace_back("baseline", baseline_.value().value_or(0.0));
    batch_metrics_.emplace_back("pseudo_reward", pseudo_n ? pseudo_sum / static_cast<double>(pseudo_n) : 0.0);
    batch_metrics_.emplace_back("prompts_used", static_cast<double>(contexts_used_));
    batch_metrics_.emplace_back("kl_base", (pi - base).mean().item<double>());
  }

  StageEnv& env_;
  const config::StageConfig& stage_;
  const config::OnlineConfig& o_;
  LossType type_;
  model::CausalLM& policy_;
  model::CausalLM* ref_;
  bool ref_base_;
  const std::vector<data::Example>& examples_;
  const std::vector<std::vector<int32_t>>& prompts_;
  const data::Tokenizer& tok_;
  const Rewards& rewards_;
  int32_t pad_;
  int64_t g_;
  double beta_;
  std::vector<int64_t> no_lengths_;

  int64_t pass_ = 0, pass_in_batch_ = 0, micro_ = 0, step_tokens_ = 0;
  int64_t samples_written_ = -1;  // the first step of the batch whose samples were last written
  std::vector<std::vector<std::vector<int64_t>>> my_micros_;  // this rank's micro-batches of batch positions
  std::vector<data::Encoded> samples_;                        // position·G + sample
  std::vector<std::string> texts_;                            // their decoded completions
  std::vector<int64_t> sample_prompt_;                        // their example index
  std::vector<std::vector<double>> values_;                   // [reward][sample]
  std::vector<double> totals_;                                // weighted sums
  at::Tensor advantages_, proposal_, included_;               // [S] fp64 on the host
  int64_t contexts_used_ = 0;
  obj::GlobalBatch global_;
  std::vector<at::Tensor> old_cache_, ref_cache_;  // per micro-batch, for updates_per_batch > 1
  StepMetrics batch_metrics_;
  at::Tensor sums_;
  obj::WindowedBaseline baseline_;
  std::map<int64_t, RunningMean> z_;  // per prompt (example index)
};

}  // namespace

data::DataKind online_data_kind(const config::StageConfig& stage) {
  for (const auto& r : stage.online.rewards)
    if (r.type == config::RewardType::exact_match) return data::DataKind::kSft;
  return data::DataKind::kPrompts;
}

StageResult run_online(StageEnv& env, const config::StageConfig& stage) {
  const ModelSource src = policy_source(env.recipe, stage);
  std::optional<ModelSource> ref_src;
  const bool ref_base = stage.reference && config::is_policy_base(env.recipe, stage.reference->model);
  if (stage.reference && !ref_base) {
    ref_src = resolve_model(env.recipe, stage.reference->model);
    check_shared_tokenizer(stage, src, *ref_src, "reference");
  }
  const auto tok = data::load_tokenizer(src.tokenizer_dir);
  Rewards rewards(stage.online.rewards, stage.name);
  std::vector<std::pair<size_t, ModelSource>> reward_models;  // (reward index, source) of each model reward
  for (size_t r = 0; r < rewards.size(); ++r)
    if (rewards.spec(r).type == config::RewardType::model)
      reward_models.emplace_back(r, resolve_model(env.recipe, rewards.spec(r).model));
  data::ReadOptions ro;
  ro.kind = online_data_kind(stage);
  ro.skip_invalid = stage.data.skip_invalid;
  const auto examples = data::read_examples(stage.data.train, ro);
  rewards.check_examples(examples, stage.data.train);
  for (const auto& [r, rm] : reward_models)
    check_reward_model_template(rm, stage.data.chat_template_kwargs.json, examples, stage.data.train);
  data::EncodeOptions eo;
  eo.chat_template_kwargs = stage.data.chat_template_kwargs.json;
  const data::Encoder encoder(*tok, src.chat_template, src.weights_dir, eo);
  const int64_t max_prompt = stage.batch.max_prompt_length.value_or(config::default_max_prompt_length(stage.batch.max_length));
  std::vector<std::vector<int32_t>> prompts;
  int64_t cut = 0;
  for (const auto& ex : examples) {
    auto ids = encoder.encode_prompt(ex.prompt, ex.template_vars);
    if (ids.empty()) {
      throw DataError(stage.data.train + ":" + std::to_string(ex.line) +
                      ": prompt: tokenises to nothing and the tokenizer has no BOS token to start from");
    }
    if (static_cast<int64_t>(ids.size()) > max_prompt) {  // keep the end of the prompt, as TRL truncates
      ids.erase(ids.begin(), ids.end() - max_prompt);
      ++cut;
    }
    prompts.push_back(std::move(ids));
  }
  const auto& o = stage.online;
  spdlog::info("[{}] {} prompt(s){}; {} sample(s) each, loss {}, {} update(s) per batch, rewards: {}", stage.name,
               prompts.size(), cut ? fmt::format(" ({} cut to their last {} tokens)", cut, max_prompt) : "",
               o.num_samples, config::to_string(stage.loss.type.front()), o.updates_per_batch,
               fmt::join(rewards.names(), ", "));
  const int32_t pad = collate_options(*tok, stage).pad_id;
  std::optional<LoadedModel> reference;
  return run_training_stage(env, stage, src, [&](model::CausalLM& policy) {
    if (ref_src) reference = load_frozen_model(*ref_src, env.groups, env.device, frozen_dtype(env.recipe, ref_src->name));
    // Reward models score micro-batches of as many sequences as the policy's (batch.micro prompts × num_samples).
    for (const auto& [r, rm] : reward_models)
      rewards.set_model(r, std::make_shared<RewardModel>(rm, env.groups, env.device, frozen_dtype(env.recipe, rm.name),
                                                         stage.data.chat_template_kwargs.json,
                                                         int64_t{stage.batch.micro} * o.num_samples));
    StageTraining t;
    t.objective = std::make_unique<OnlineObjective>(env, stage, policy, reference ? reference->lm.get() : nullptr,
                                                    ref_base, examples, prompts, *tok, rewards, pad);
    return t;
  });
}

}  // namespace aligntrain::stages
