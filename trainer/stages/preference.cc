#include "trainer/stages/preference.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <spdlog/spdlog.h>


#include <map>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "config/resolve.h"
#include "data/example.h"
#include "trainer/objectives/preference.h"
#include "trainer/runtime/host_sync.h"
#include "trainer/stages/udm.h"

namespace aligntrain::stages {

namespace {

struct Loaded {
  ModelSource policy;
  std::unique_ptr<data::Tokenizer> tokenizer;
  int32_t pad = 0;
};

Loaded load_policy(StageEnv& env, const config::StageConfig& stage) {
  Loaded l;
  l.policy = policy_source(env.recipe, stage);
  l.tokenizer = data::load_tokenizer(l.policy.tokenizer_dir);
  l.pad = collate_options(*l.tokenizer, stage).pad_id;
  return l;
}

std::string loss_names(const config::StageConfig& stage) {
  std::string types;
  for (auto t : stage.loss.type) types += (types.empty() ? "" : "+") + config::to_string(t);
  return types;
}

}  // namespace

std::vector<data::Example> read_stage_examples(const std::string& path, const config::StageConfig& stage, data::DataKind kind) {
  data::ReadOptions ro;
  ro.kind = kind;
  ro.skip_invalid = stage.data.skip_invalid;
  data::ReadReport report;
  auto examples = data::read_examples(path, ro, &report);
  if (report.skipped > 0) {
    spdlog::warn("{}: skipped {} invalid line(s) of {} (data.skip_invalid); first: {}", path, report.skipped,
                 report.lines, report.first_errors.empty() ? "" : report.first_errors.front());
  }
  return examples;
}

// Tokenises each example's responses; drops (and counts) an example when any response is dropped.
ResponseSet encode_responses(const std::string& path, const config::StageConfig& stage, const data::Tokenizer& tokenizer,
                       const std::string& chat_template, const std::string& model_dir,
                       const std::vector<data::Example>& examples, int64_t width,
                       const std::function<std::vector<const data::Text*>(const data::Example&)>& responses) {
  ResponseSet set;
  set.path = path;
  set.width = width;
  data::EncodeOptions eo;
  eo.max_length = stage.batch.max_length;
  eo.truncate = truncate_of(stage.data.truncate);
  eo.chat_template_kwargs = stage.data.chat_template_kwargs.json;
  data::Encoder encoder(tokenizer, chat_template, model_dir, eo);
  int64_t dropped = 0;
  for (const auto& ex : examples) {
    std::vector<data::Encoded> enc;
    for (const data::Text* t : responses(ex)) {
      auto e = encoder.encode_example(ex, *t, path, &set.stats);
      if (!e || data::loss_tokens(*e, false) <= 0) break;
      enc.push_back(std::move(*e));
    }
    if (static_cast<int64_t>(enc.size()) != width) {
      ++dropped;
      continue;
    }
    for (auto& e : enc) set.items.push_back(std::move(e));
    set.lines.push_back(ex.line);
    if (ex.label) set.desirable.push_back(*ex.label ? 1 : 0);
  }
  if (set.stats.truncated > 0 || dropped > 0) {
    spdlog::info("{}: {} response(s) truncated ({}), {} example(s) dropped, to max_length {}", path,
                 set.stats.truncated, config::name_of(stage.data.truncate), dropped, stage.batch.max_length);
  }
  if (set.size() == 0) {
    throw DataError(path + ": no usable example: all " + std::to_string(examples.size()) +
                    " were dropped (longer than batch.max_length " + std::to_string(stage.batch.max_length) +
                    " with truncate: " + std::string(config::name_of(stage.data.truncate)) +
                    ", or no response token left)");
  }
  return set;
}

ResponseSet load_pair_data(const std::string& path, const config::StageConfig& stage, const data::Tokenizer& tokenizer,
                           const std::string& chat_template, const std::string& model_dir) {
  const auto examples = read_stage_examples(path, stage, data::DataKind::kPreference);
  return encode_responses(path, stage, tokenizer, chat_template, model_dir, examples, 2, [](const data::Example& ex) {
    return std::vector<const data::Text*>{&*ex.chosen, &*ex.rejected};
  });
}

StageResult run_preference(StageEnv& env, const config::StageConfig& stage) {
  const Loaded l = load_policy(env, stage);
  // An eval stage scores data.eval with the same losses and metrics, without training (run_response_stage).
  const bool eval_only = stage.kind == config::StageKind::eval;
  const auto train_set = load_pair_data(eval_only ? stage.data.eval : stage.data.train, stage, *l.tokenizer,
                                        l.policy.chat_template, l.policy.weights_dir);
  std::optional<ResponseSet> eval;
  if (!eval_only && !stage.data.eval.empty()) {
    eval = load_pair_data(stage.data.eval, stage, *l.tokenizer, l.policy.chat_template, l.policy.weights_dir);
  }
  const double beta = config::resolved_beta(stage.loss);  // NaN for orpo or sft alone, which read none
  spdlog::info("[{}] {} training pair(s){}; policy '{}', loss {}{}", stage.name, train_set.size(),
               eval ? fmt::format(", {} eval pair(s)", eval->size()) : "", stage.policy, loss_names(stage),
               stage.loss.beta ? fmt::format(" (beta {})", *stage.loss.beta) : "");
  Reference reference = make_reference(env, stage, l.policy, train_set, eval ? &*eval : nullptr, l.pad);
  bool full = false;
  for (auto t : stage.loss.type) full = full || (t == config::LossType::orpo && stage.loss.orpo_prompt_in_nll);
  ResponseLoss loss;
  loss.train_columns = loss.eval_columns = {0, 1};
  loss.loss = [&stage, beta, full](const LossInput& in) {
    objectives::PairLogps p;
    p.chosen = in.policy.sum.select(1, 0);
    p.rejected = in.policy.sum.select(1, 1);
    p.chosen_len = in.policy.len.select(1, 0);
    p.rejected_len = in.policy.len.select(1, 1);
    p.chosen_nll = -p.chosen / p.chosen_len;
    if (full) p.chosen_nll_with_prompt = -in.policy.full_sum / in.policy.full_len;
    if (in.reference.defined()) {
      p.ref_chosen = in.reference.select(1, 0);
      p.ref_rejected = in.reference.select(1, 1);
    }
    return objectives::paired_loss_mix(stage.loss, beta, p);
  };
  return run_response_stage(env, stage, l.policy, train_set, eval ? &*eval : nullptr, reference, loss, l.pad);
}

// ------------------------------------------------------------------------------------------------------------------
// unpaired: responses (completion, mismatched completion). The mismatched completion of example i is example
// (i − 1 mod N)'s completion in file order, after example i's prompt (TRL's KL dataset); KTO's reference point z0 is
// the clamped mean over the global batch of its policy/reference log-ratio (detached, all-reduced).

namespace {

ResponseSet load_unpaired(const std::string& path, const config::StageConfig& stage, const data::Tokenizer& tokenizer,
                          const std::string& chat_template, const std::string& model_dir) {
  const auto examples = read_stage_examples(path, stage, data::DataKind::kUnpaired);
  std::map<int64_t, const data::Text*> previous;  // example position → the completion before it (cyclic)
  for (size_t i = 0; i < examples.size(); ++i) {
    previous[static_cast<int64_t>(i)] = &*examples[(i + examples.size() - 1) % examples.size()].completion;
  }
  int64_t position = 0;
  std::map<const data::Example*, int64_t> index;
  for (const auto& ex : examples) index[&ex] = position++;
  return encode_responses(path, stage, tokenizer, chat_template, model_dir, examples, 2, [&](const data::Example& ex) {
    return std::vector<const data::Text*>{&*ex.completion, previous[index[&ex]]};
  });
}

at::Tensor desirable_of(const ResponseSet& set, const std::vector<int64_t>& index, const at::Device& device) {
  std::vector<uint8_t> d;
  for (int64_t i : index) d.push_back(set.desirable.at(static_cast<size_t>(i)));
  return at::tensor(std::vector<int64_t>(d.begin(), d.end()), at::kLong).to(at::kBool).to(device);
}

}  // namespace

StageResult run_unpaired(StageEnv& env, const config::StageConfig& stage) {
  const Loaded l = load_policy(env, stage);
  const auto train_set = load_unpaired(stage.data.train, stage, *l.tokenizer, l.policy.chat_template, l.policy.weights_dir);
  std::optional<ResponseSet> eval;
  if (!stage.data.eval.empty()) {
    eval = load_unpaired(stage.data.eval, stage, *l.tokenizer, l.policy.chat_template, l.policy.weights_dir);
  }
  const double beta = config::resolved_beta(stage.loss);
  const config::LossType type = stage.loss.type.at(0);
  if (stage.loss.type.size() != 1) throw UsageError("stage '" + stage.name + "': an unpaired stage takes one loss type");
  // BCO's underlying-distribution matching: per-example weights of the training and eval sets, computed (and the
  // embedding model freed) before the reference and the policy load.
  auto udm = std::make_shared<std::map<const ResponseSet*, at::Tensor>>();
  if (type == config::LossType::bco && !stage.loss.udm_model.empty()) {
    std::vector<const ResponseSet*> sets{&train_set};
    if (eval) sets.push_back(&*eval);
    const auto weights = udm_weights(env, stage, sets);
    for (size_t s = 0; s < sets.size(); ++s) (*udm)[sets[s]] = at::tensor(weights[s], at::kDouble);
  }
  int64_t n_desirable = 0;
  for (auto d : train_set.desirable) n_desirable += d;
  const int64_t n_undesirable = train_set.size() - n_desirable;
  spdlog::info("[{}] {} training example(s) ({} desirable, {} undesirable){}; policy '{}', loss {} (beta {})",
               stage.name, train_set.size(), n_desirable, n_undesirable,
               eval ? fmt::format(", {} eval example(s)", eval->size()) : "", stage.policy, loss_names(stage), beta);
  if (type == config::LossType::kto && n_undesirable > 0) {
    const double ratio = stage.loss.desirable_weight * static_cast<double>(n_desirable) /
                         (stage.loss.undesirable_weight * static_cast<double>(n_undesirable));
    if (ratio < 1.0 || ratio > 4.0 / 3.0) {
      spdlog::warn("[{}] desirable_weight x desirable / (undesirable_weight x undesirable) = {:.3f} is outside [1, 4/3], "
                   "the range TRL recommends for KTO; consider adjusting loss.desirable_weight or "
                   "loss.undesirable_weight", stage.name, ratio);
    }
  }
  Reference reference = make_reference(env, stage, l.policy, train_set, eval ? &*eval : nullptr, l.pad);

  // KTO: z0 of the step, from a no-grad pass over this rank's mismatched pairs, all-reduced over DP.
  auto z0 = std::make_shared<double>(0.0);
  // BCO: running mean δ of the rewards (checkpointed for exact resume).
  auto delta = std::make_shared<std::pair<double, double>>(0.0, 1e-24);
  ResponseLoss loss;
  const at::Device device = env.device;
  runtime::Groups* groups = &env.groups;
  const int32_t pad = l.pad;
  if (type == config::LossType::kto) {
    loss.train_columns = {0};
    loss.eval_columns = {0, 1};
    loss.loss = [&stage, beta, z0](const LossInput& in) {
      const at::Tensor rho_ref = in.reference.select(1, 0);
      const at::Tensor desirable = desirable_of(in.set, in.index, in.policy.sum.device());
      double z = *z0;
      if (!in.training) {  // evaluation: the reference point of this batch
        at::NoGradGuard no_grad;
        const auto kl = (in.policy.sum.select(1, 1) - in.reference.select(1, 1)).to(at::kDouble);
        z = objectives::kto_z0(kl.sum().item<double>(), static_cast<double>(kl.numel()));
      }
      auto terms = objectives::kto_loss(stage.loss, beta, in.policy.sum.select(1, 0), rho_ref, desirable, z);
      return terms;
    };
  } else {
    loss.train_columns = loss.eval_columns = {0};
    loss.loss = [&stage, beta, delta, groups, device, udm](const LossInput& in) {
      const at::Tensor desirable = desirable_of(in.set, in.index, in.policy.sum.device());
      const at::Tensor ref = in.reference.select(1, 0);
      if (in.training) {  // update δ with this micro-batch's rewards over all DP ranks, before using it
        at::NoGradGuard no_grad;
        const auto r = (beta * (in.policy.sum.select(1, 0) - ref)).to(at::kDouble);
        auto t = at::stack({r.sum(), at::scalar_tensor(static_cast<double>(r.numel()), at::kDouble).to(r.device())})
                     .to(device);
        groups->dp->all_reduce(t, runtime::ReduceOp::kSum);
        t = runtime::to_host(t);
        const double count = t[1].item<double>();
        *delta = objectives::running_mean_update(delta->first, delta->second, t[0].item<double>() / count, count);
      }
      at::Tensor w;
      if (const auto it = udm->find(&in.set); it != udm->end()) {
        w = it->second.index_select(0, at::tensor(in.index, at::kLong)).to(in.policy.sum.device());
      }
      return objectives::bco_loss(stage.loss, beta, in.policy.sum.select(1, 0), ref, desirable, delta->first, w);
    };
    loss.state = [delta] { return nlohmann::json{{"bco_delta", delta->first}, {"bco_count", delta->second}}; };
    loss.load_state = [delta](const nlohmann::json& j) {
      if (j.contains("bco_delta")) *delta = {j["bco_delta"].get<double>(), j["bco_count"].get<double>()};
    };
  }
  if (type == config::LossType::kto) {
    const ReferenceFn& ref_fn = reference.train;
    const ResponseSet* set = &train_set;
    loss.before_step = [z0, groups, device, pad, &ref_fn, set](
                           model::CausalLM& policy, const std::vector<std::vector<std::vector<int64_t>>>& micro_batches) {
      at::NoGradGuard no_grad;
      double sum = 0, count = 0;
      for (const auto& rows : micro_batches) {
        std::vector<int64_t> index;
        for (const auto& r : rows) index.insert(index.end(), r.begin(), r.end());
        const auto p = sequence_logps(policy, *groups->tp, device, *set, index, {1}, pad).sum.select(1, 0);
        const auto r = ref_fn(*set, index, {1}).select(1, 0);
        sum += runtime::host_value<double>((p - r).to(at::kDouble).sum());
        count += static_cast<double>(index.size());
      }
      auto t = at::tensor({sum, count}, at::kDouble).to(device);
      groups->dp->all_reduce(t, runtime::ReduceOp::kSum);
      t = runtime::to_host(t);
      *z0 = objectives::kto_z0(t[0].item<double>(), t[1].item<double>());
    };
  }
  return run_response_stage(env, stage, l.policy, train_set, eval ? &*eval : nullptr, reference, loss, l.pad);
}

// ------------------------------------------------------------------------------------------------------------------
// negatives: responses (rejected, sample 1..K). Samples come from data.samples, a JSONL of {"prompt",
// "completion"} lines (a generate stage's output), matched to the examples by prompt text; the first K per prompt
// are used (K = data.num_samples, or the smallest count over the prompts).

StageResult run_negatives(StageEnv& env, const config::StageConfig& stage) {
  const Loaded l = load_policy(env, stage);
  if (stage.data.samples.empty()) {
    throw UsageError("stage '" + stage.name + "': a negatives stage needs data.samples (self-generated responses)");
  }
  data::ReadOptions so;
  so.kind = data::DataKind::kSft;
  so.skip_invalid = stage.data.skip_invalid;
  const auto samples = data::read_examples(stage.data.samples, so);
  std::map<std::string, std::vector<const data::Text*>> by_prompt;
  for (const auto& s : samples) by_prompt[s.prompt.text].push_back(&*s.completion);

  auto load = [&](const std::string& path, int64_t k_wanted) {
    const auto examples = read_stage_examples(path, stage, data::DataKind::kNegatives);
    int64_t k = k_wanted;
    for (const auto& ex : examples) {
      const auto it = by_prompt.find(ex.prompt.text);
      const int64_t have = it == by_prompt.end() ? 0 : static_cast<int64_t>(it->second.size());
      if (have == 0) {
        throw DataError(path + ":" + std::to_string(ex.line) + ": prompt: no self-generated sample for this prompt in " +
                        stage.data.samples);
      }
      if (k_wanted > 0 && have < k_wanted) {
        throw DataError(path + ":" + std::to_string(ex.line) + ": prompt: " + std::to_string(have) +
                        " sample(s) in " + stage.data.samples + ", data.num_samples asks for " + std::to_string(k_wanted));
      }
      if (k_wanted <= 0) k = k <= 0 ? have : std::min(k, have);
    }
    return std::pair{encode_responses(path, stage, *l.tokenizer, l.policy.chat_template, l.policy.weights_dir, examples, 1 + k,
                                [&](const data::Example& ex) {
                                  std::vector<const data::Text*> r{&*ex.rejected};
                                  const auto& s = by_prompt.at(ex.prompt.text);
                                  r.insert(r.end(), s.begin(), s.begin() + k);
                                  return r;
                                }),
                     k};
  };
  auto [train_set, k] = load(stage.data.train, stage.data.num_samples.value_or(0));
  std::optional<ResponseSet> eval;
  if (!stage.data.eval.empty()) eval = load(stage.data.eval, k).first;
  const double beta = config::resolved_beta(stage.loss);
  spdlog::info("[{}] {} training prompt(s) with a rejected response and {} sample(s) each; policy '{}', loss {} "
               "(beta {}, alpha {})", stage.name, train_set.size(), k, stage.policy, loss_names(stage), beta,
               stage.loss.d2o_alpha);
  Reference reference = make_reference(env, stage, l.policy, train_set, eval ? &*eval : nullptr, l.pad);
  ResponseLoss loss;
  for (int64_t c = 0; c <= k; ++c) loss.train_columns.push_back(c);
  loss.eval_columns = loss.train_columns;
  loss.loss = [&stage, beta](const LossInput& in) {
    const auto ratio = in.policy.sum - in.reference;  // [B, 1 + K]
    const auto k = ratio.size(1) - 1;
    return objectives::d2o_loss(stage.loss, beta, ratio.narrow(1, 1, k), ratio.select(1, 0));
  };
  return run_response_stage(env, stage, l.policy, train_set, eval ? &*eval : nullptr, reference, loss, l.pad);
}

}  // namespace aligntrain::stages
