#include "trainer/stages/preference.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <optional>

#include "data/collate.h"
#include "data/example.h"
#include "trainer/checkpoint/fingerprint.h"
#include "trainer/errors.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/safetensors_torch.h"
#include "trainer/objectives/preference.h"
#include "trainer/parallel/vocab_parallel.h"
#include "trainer/stages/models.h"
#include "trainer/stages/objective.h"

namespace aligntrain::stages {

namespace fs = std::filesystem;

namespace {

data::Truncate truncate_of(config::Truncate t) {
  switch (t) {
    case config::Truncate::left: return data::Truncate::kLeft;
    case config::Truncate::drop: return data::Truncate::kDrop;
    default: return data::Truncate::kRight;
  }
}

at::Tensor as_tensor(const std::vector<int64_t>& v, int64_t rows, int64_t length, const at::Device& device) {
  return at::tensor(v, at::kLong).view({rows, length}).to(device);
}

// Reference log-probs of pairs: [B] chosen and rejected, fp32 on the device.
using ReferenceFn = std::function<std::pair<at::Tensor, at::Tensor>(const PairData&, const std::vector<int64_t>&)>;

objectives::PairLogps make_inputs(const PairSeqLogps& s, const std::optional<std::pair<at::Tensor, at::Tensor>>& ref,
                                  bool need_full) {
  objectives::PairLogps in;
  in.chosen = s.chosen;
  in.rejected = s.rejected;
  in.chosen_len = s.chosen_len;
  in.rejected_len = s.rejected_len;
  in.chosen_nll = -s.chosen / s.chosen_len;
  if (need_full) in.chosen_nll_with_prompt = -s.chosen_full / s.chosen_full_len;
  if (ref) {
    in.ref_chosen = ref->first;
    in.ref_rejected = ref->second;
  }
  return in;
}

// Sums of the loss and of each metric over a set of examples, in a fixed key order.
struct Sums {
  std::vector<std::string> keys;
  std::vector<double> values;
  void add(const std::string& key, double v) {
    for (size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) {
        values[i] += v;
        return;
      }
    keys.push_back(key);
    values.push_back(v);
  }
  // All-reduced over the group, divided by `count`.
  StepMetrics mean(runtime::Communicator& dp, const at::Device& device, double count, const std::string& prefix) const {
    auto t = at::tensor(values, at::kDouble).to(device);
    dp.all_reduce(t, runtime::ReduceOp::kSum);
    t = t.to(at::kCPU);
    StepMetrics out;
    for (size_t i = 0; i < keys.size(); ++i) out.emplace_back(prefix + keys[i], t[static_cast<int64_t>(i)].item<double>() / count);
    return out;
  }
};

void add_terms(Sums& sums, const objectives::LossTerms& terms) {
  sums.add("loss", terms.loss.detach().sum().item<double>());
  for (const auto& [k, v] : terms.metrics) sums.add(k, v.sum().item<double>());
}

bool needs_full(const config::LossConfig& loss) {
  for (auto t : loss.type)
    if (t == config::LossType::orpo && loss.orpo_prompt_in_nll) return true;
  return false;
}

class PreferenceObjective : public TrainObjective {
 public:
  PreferenceObjective(model::CausalLM& lm, runtime::Groups& groups, at::Device device, const PairData& data,
                      ReferenceFn ref, const config::LossConfig& loss, double beta, int32_t pad)
      : lm_(lm), groups_(groups), device_(device), data_(data), ref_(std::move(ref)), loss_(loss), beta_(beta),
        pad_(pad) {}

  int64_t num_examples() const override { return static_cast<int64_t>(data_.chosen.size()); }
  const std::vector<int64_t>& lengths() const override { return no_lengths_; }
  void begin_step(const data::StepRows& step) override {
    global_ = static_cast<int64_t>(step.rows.size());
    tokens_ = 0;
    for (const auto& row : step.rows)
      for (int64_t i : row) tokens_ += static_cast<int64_t>(data_.chosen[i].ids.size() + data_.rejected[i].ids.size());
    sums_ = Sums{};
  }
  void micro_step(const std::vector<std::vector<int64_t>>& rows) override {
    std::vector<int64_t> index;
    for (const auto& r : rows) index.insert(index.end(), r.begin(), r.end());
    const auto seq = pair_logps(lm_, *groups_.tp, device_, data_, index, pad_);
    std::optional<std::pair<at::Tensor, at::Tensor>> ref;
    if (ref_) ref = ref_(data_, index);
    const auto terms = objectives::paired_loss_mix(loss_, beta_, make_inputs(seq, ref, needs_full(loss_)));
    (terms.loss.sum() * (static_cast<double>(groups_.layout.dp) / static_cast<double>(global_))).backward();
    add_terms(sums_, terms);
  }
  StepMetrics end_step() override {
    return sums_.mean(*groups_.dp, device_, static_cast<double>(global_), "");
  }
  int64_t step_tokens() const override { return tokens_; }

 private:
  model::CausalLM& lm_;
  runtime::Groups& groups_;
  at::Device device_;
  const PairData& data_;
  ReferenceFn ref_;
  const config::LossConfig& loss_;
  double beta_;
  int32_t pad_;
  std::vector<int64_t> no_lengths_;
  int64_t global_ = 0, tokens_ = 0;
  Sums sums_;
};

// Metrics of a whole data set (no gradients), examples dealt round-robin over the DP group, "eval/" keys.
StepMetrics evaluate_pairs(model::CausalLM& lm, runtime::Groups& groups, const at::Device& device, const PairData& data,
                           const ReferenceFn& ref, const config::LossConfig& loss, double beta, int64_t micro,
                           int32_t pad) {
  at::NoGradGuard no_grad;
  Sums sums;
  std::vector<int64_t> mine;
  auto flush = [&] {
    if (mine.empty()) return;
    const auto seq = pair_logps(lm, *groups.tp, device, data, mine, pad);
    std::optional<std::pair<at::Tensor, at::Tensor>> r;
    if (ref) r = ref(data, mine);
    add_terms(sums, objectives::paired_loss_mix(loss, beta, make_inputs(seq, r, needs_full(loss))));
    mine.clear();
  };
  const auto n = static_cast<int64_t>(data.chosen.size());
  for (int64_t i = groups.layout.dp_rank; i < n; i += groups.layout.dp) {
    mine.push_back(i);
    if (static_cast<int64_t>(mine.size()) == micro) flush();
  }
  flush();
  if (sums.keys.empty()) {  // this rank had no eval example: contribute zeros under the same keys as the others
    std::vector<int64_t> one{0};
    const auto seq = pair_logps(lm, *groups.tp, device, data, one, pad);
    std::optional<std::pair<at::Tensor, at::Tensor>> r;
    if (ref) r = ref(data, one);
    add_terms(sums, objectives::paired_loss_mix(loss, beta, make_inputs(seq, r, needs_full(loss))));
    for (auto& v : sums.values) v = 0;
  }
  return sums.mean(*groups.dp, device, static_cast<double>(n), "eval/");
}

// [N, 2] fp64 CPU table of (chosen, rejected) reference log-probs, computed over the DP group.
at::Tensor reference_table(model::CausalLM& ref, runtime::Groups& groups, const at::Device& device,
                           const PairData& data, int64_t micro, int32_t pad) {
  at::NoGradGuard no_grad;
  const auto n = static_cast<int64_t>(data.chosen.size());
  auto table = at::zeros({n, 2}, at::kDouble);
  std::vector<int64_t> mine;
  auto flush = [&] {
    if (mine.empty()) return;
    const auto s = pair_logps(ref, *groups.tp, device, data, mine, pad);
    const auto c = s.chosen.to(at::kCPU, at::kDouble), r = s.rejected.to(at::kCPU, at::kDouble);
    for (size_t k = 0; k < mine.size(); ++k) {
      table[mine[k]][0] = c[static_cast<int64_t>(k)];
      table[mine[k]][1] = r[static_cast<int64_t>(k)];
    }
    mine.clear();
  };
  for (int64_t i = groups.layout.dp_rank; i < n; i += groups.layout.dp) {
    mine.push_back(i);
    if (static_cast<int64_t>(mine.size()) == micro) flush();
  }
  flush();
  table = table.to(device);
  groups.dp->all_reduce(table, runtime::ReduceOp::kSum);  // each row comes from exactly one replica
  return table.to(at::kCPU);
}

ReferenceFn table_reference(at::Tensor table, const at::Device& device) {
  return [table, device](const PairData&, const std::vector<int64_t>& index) {
    const auto idx = at::tensor(index, at::kLong);
    const auto rows = table.index_select(0, idx).to(at::kFloat).to(device);
    return std::pair{rows.select(1, 0).contiguous(), rows.select(1, 1).contiguous()};
  };
}

// Fingerprint of everything the cached reference log-probs of one data file depend on.
std::string reference_cache_key(const config::Recipe& recipe, const config::StageConfig& stage,
                                const ModelSource& ref, const std::string& data_path, at::ScalarType dtype) {
  std::string text = "v1|model:" + ref.name + "|config:" + model::model_config_to_json(ref.config);
  if (ref.init) {
    text += "|init:" + ref.init->preset + ":" + std::to_string(ref.init->seed);
  } else {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(ref.weights_dir)) {
      if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) text += "|w:" + fs::path(f).filename().string() + ":" + checkpoint::file_digest(f);
  }
  for (const auto& name : model::tokenizer_file_names()) {
    const fs::path p = fs::path(ref.tokenizer_dir) / name;
    if (fs::exists(p)) text += "|tok:" + name + ":" + checkpoint::file_digest(p.string());
  }
  text += "|data:" + checkpoint::file_digest(data_path) + "|max_length:" + std::to_string(stage.batch.max_length) +
          "|truncate:" + std::string(config::name_of(stage.data.truncate)) + "|template:" + ref.chat_template +
          "|skip_invalid:" + std::to_string(stage.data.skip_invalid) + "|dtype:" + std::string(c10::toString(dtype)) +
          "|tp:" + std::to_string(recipe.parallel.tensor);
  // Digest of the text itself (file_digest works on files; hash the string the same way).
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

std::optional<at::Tensor> read_cache(const fs::path& file, int64_t n) {
  if (!fs::exists(file)) return std::nullopt;
  try {
    for (const auto& [name, t] : model::load_safetensors(file.string())) {
      if (name == "reference_logps" && t.dim() == 2 && t.size(0) == n && t.size(1) == 2) return t.to(at::kDouble);
    }
  } catch (const std::exception& e) {
    spdlog::warn("ignoring unreadable reference cache {}: {}", file.string(), e.what());
    return std::nullopt;
  }
  spdlog::warn("ignoring reference cache {}: it does not hold {} pairs", file.string(), n);
  return std::nullopt;
}

}  // namespace

PairData load_pair_data(const std::string& path, const config::StageConfig& stage, const data::Tokenizer& tokenizer,
                        const std::string& chat_template, const std::string& model_dir) {
  PairData out;
  out.path = path;
  data::ReadOptions ro;
  ro.kind = data::DataKind::kPreference;
  ro.skip_invalid = stage.data.skip_invalid;
  data::ReadReport report;
  const auto examples = data::read_examples(path, ro, &report);
  if (report.skipped > 0) {
    spdlog::warn("{}: skipped {} invalid line(s) of {} (data.skip_invalid); first: {}", path, report.skipped,
                 report.lines, report.first_errors.empty() ? "" : report.first_errors.front());
  }
  data::EncodeOptions eo;
  eo.max_length = stage.batch.max_length;
  eo.truncate = truncate_of(stage.data.truncate);
  data::Encoder encoder(tokenizer, chat_template, model_dir, eo);
  int64_t dropped = 0;
  for (const auto& ex : examples) {
    auto c = encoder.encode(ex.prompt, *ex.chosen, &out.stats);
    auto r = encoder.encode(ex.prompt, *ex.rejected, &out.stats);
    if (!c || !r || data::loss_tokens(*c, false) <= 0 || data::loss_tokens(*r, false) <= 0) {
      ++dropped;
      continue;
    }
    out.chosen.push_back(std::move(*c));
    out.rejected.push_back(std::move(*r));
    out.lines.push_back(ex.line);
  }
  if (out.stats.truncated > 0 || dropped > 0) {
    spdlog::info("{}: {} response(s) truncated ({}), {} pair(s) dropped, to max_length {}", path, out.stats.truncated,
                 config::name_of(stage.data.truncate), dropped, stage.batch.max_length);
  }
  if (out.chosen.empty()) {
    throw DataError(path + ": no usable pair: all " + std::to_string(examples.size()) + " were dropped (longer than "
                    "batch.max_length " + std::to_string(stage.batch.max_length) + " with truncate: " +
                    std::string(config::name_of(stage.data.truncate)) + ", or no response token left)");
  }
  return out;
}

PairSeqLogps pair_logps(model::CausalLM& lm, runtime::Communicator& tp, const at::Device& device, const PairData& data,
                        const std::vector<int64_t>& index, int32_t pad_id) {
  std::vector<std::vector<const data::Encoded*>> rows;
  for (int64_t i : index) rows.push_back({&data.chosen.at(static_cast<size_t>(i))});
  for (int64_t i : index) rows.push_back({&data.rejected.at(static_cast<size_t>(i))});
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
  const auto ids = as_tensor(b.input_ids, b.rows, b.length, device);
  model::ForwardInput in{ids, std::nullopt, std::nullopt, std::nullopt};
  if (b.tokens < b.rows * b.length) in.attention_mask = as_tensor(b.attention_mask, b.rows, b.length, device);
  const auto labels = model::shift_labels(ids, as_tensor(b.loss_mask, b.rows, b.length, device));
  const auto lp = parallel::token_logprobs(lm, lm.hidden_states(in), labels, tp);  // [2B, T] fp32, 0 where ignored
  const auto mask = at::from_blob(response.data(), {b.rows, b.length}, at::kFloat).clone().to(device);
  const auto resp_sum = (lp * mask).sum(1);
  const auto resp_len = mask.sum(1);
  const auto full_sum = lp.sum(1);
  const auto full_len = (labels != model::kIgnoreIndex).sum(1).to(at::kFloat);
  const auto B = static_cast<int64_t>(index.size());
  PairSeqLogps out;
  out.chosen = resp_sum.narrow(0, 0, B);
  out.rejected = resp_sum.narrow(0, B, B);
  out.chosen_len = resp_len.narrow(0, 0, B);
  out.rejected_len = resp_len.narrow(0, B, B);
  out.chosen_full = full_sum.narrow(0, 0, B);
  out.chosen_full_len = full_len.narrow(0, 0, B);
  out.tokens = b.tokens;
  return out;
}

StageResult run_preference(StageEnv& env, const config::StageConfig& stage) {
  const ModelSource src = resolve_model(env.recipe, stage.policy);
  const auto tok = data::load_tokenizer(src.tokenizer_dir);
  const PairData train_data = load_pair_data(stage.data.train, stage, *tok, src.chat_template, src.weights_dir);
  std::optional<PairData> eval;
  if (!stage.data.eval.empty()) eval = load_pair_data(stage.data.eval, stage, *tok, src.chat_template, src.weights_dir);
  const double beta = stage.loss.beta.value_or(0.1);
  const int32_t pad = collate_options(*tok, stage).pad_id;
  std::string types;
  for (auto t : stage.loss.type) types += (types.empty() ? "" : "+") + config::to_string(t);
  spdlog::info("[{}] {} training pair(s){}; policy '{}', loss {} (beta {})", stage.name, train_data.chosen.size(),
               eval ? fmt::format(", {} eval pair(s)", eval->chosen.size()) : "", stage.policy, types, beta);

  // The reference: live (kept for the whole stage) or precomputed (cached tables, model freed).
  ReferenceFn ref_train, ref_eval;
  std::optional<LoadedModel> live_ref;
  if (stage.reference) {
    const ModelSource ref_src = resolve_model(env.recipe, stage.reference->model);
    const auto dtype = frozen_dtype(env.recipe, stage.reference->model);
    if (ref_src.config.vocab_size != src.config.vocab_size) {
      throw UsageError("stage '" + stage.name + "': reference '" + ref_src.name + "' has vocab_size " +
                       std::to_string(ref_src.config.vocab_size) + " but the policy has " +
                       std::to_string(src.config.vocab_size) + " (they must share a tokenizer)");
    }
    if (stage.reference->precompute) {
      const fs::path cache_dir = fs::path(env.recipe.run.output_dir) / "cache";
      std::optional<LoadedModel> ref_model;
      auto table_for = [&](const PairData& data) {
        const std::string key = reference_cache_key(env.recipe, stage, ref_src, data.path, dtype);
        const fs::path file = cache_dir / ("reference-" + key + ".safetensors");
        const auto n = static_cast<int64_t>(data.chosen.size());
        const bool have = read_cache(file, n).has_value();
        if (env.world.all_ok(have)) {
          spdlog::info("[{}] reference log-probs of {} from cache {}", stage.name, data.path, file.string());
          return *read_cache(file, n);
        }
        if (!ref_model) {
          ref_model = load_model(ref_src, env.groups, env.device, dtype);
          for (auto& p : ref_model->lm->parameters()) p.set_requires_grad(false);
        }
        spdlog::info("[{}] precomputing reference log-probs of {} pairs of {} with '{}'", stage.name, n, data.path,
                     ref_src.name);
        auto table = reference_table(*ref_model->lm, env.groups, env.device, data, stage.batch.micro, pad);
        if (env.world.is_root()) {
          fs::create_directories(cache_dir);
          model::save_safetensors(file.string(), {{"reference_logps", table}}, {{"key", key}, {"data", data.path}});
        }
        env.world.barrier();
        return table;
      };
      ref_train = table_reference(table_for(train_data), env.device);
      if (eval) ref_eval = table_reference(table_for(*eval), env.device);
      ref_model.reset();  // the reference is not needed during training
    } else {
      live_ref = load_model(ref_src, env.groups, env.device, dtype);
      for (auto& p : live_ref->lm->parameters()) p.set_requires_grad(false);
      model::CausalLM* ref_lm = live_ref->lm.get();
      auto* groups = &env.groups;
      const at::Device device = env.device;
      ref_train = [ref_lm, groups, device, pad](const PairData& data, const std::vector<int64_t>& index) {
        at::NoGradGuard no_grad;
        const auto s = pair_logps(*ref_lm, *groups->tp, device, data, index, pad);
        return std::pair{s.chosen, s.rejected};
      };
      ref_eval = ref_train;
    }
  }

  auto loaded = load_model(src, env.groups, env.device, policy_dtype(env.recipe));
  loaded.lm->set_activation_checkpointing(stage.activation_checkpointing);
  PreferenceObjective objective(*loaded.lm, env.groups, env.device, train_data, ref_train, stage.loss, beta, pad);
  TrainContext ctx{env.recipe, stage, env.groups, env.device, env.metrics, *loaded.lm, src.tokenizer_dir, {}};
  if (eval) {
    ctx.evaluate = [&]() -> StepMetrics {
      return evaluate_pairs(*loaded.lm, env.groups, env.device, *eval, ref_eval, stage.loss, beta, stage.batch.micro,
                            pad);
    };
  }
  const TrainOutcome outcome = train(ctx, objective);
  if (outcome.stopped) return {{}, true};
  save_model(*loaded.lm, env.groups, stage_model_dir(env.recipe, stage.name), src.tokenizer_dir);
  spdlog::info("[{}] model saved to {}", stage.name, stage_model_dir(env.recipe, stage.name).string());
  return {summary_of(stage, outcome), false};
}

}  // namespace aligntrain::stages
