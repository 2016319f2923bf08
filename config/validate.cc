// Cross-field recipe checks (see validate.h).
#include "config/validate.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <regex>
#include <filesystem>

#include "common/data_source.h"
#include "common/hf_cache.h"
#include "config/resolve.h"
#include "config/suggest.h"

namespace aligntrain::config {
namespace fs = std::filesystem;

namespace {

// A key path in both spellings: canonical for SourceMap look-ups, shown for messages.
struct At {
  std::string canonical, shown;
  At operator/(const std::string& key) const { return {canonical + "." + key, shown + "." + key}; }
};

At stage_at(const Recipe& r, size_t i) {
  const std::string canonical = fmt::format("stages[{}]", i);
  const std::string& name = r.stages[i].name;
  return {canonical, name.empty() ? canonical : "stages." + name};
}

bool makes_model(StageKind k) { return is_training(k); }

bool uses_any(const LossConfig& loss, std::initializer_list<LossType> types) {
  return std::any_of(loss.type.begin(), loss.type.end(),
                     [&](LossType t) { return std::find(types.begin(), types.end(), t) != types.end(); });
}

std::string names_of(const std::vector<LossType>& types) {
  std::string out;
  for (LossType t : types) out += (out.empty() ? "" : ", ") + std::string(name_of(t));
  return out;
}

class Validator {
 public:
  explicit Validator(const Recipe& r) : r_(r) {}

  Diagnostics run() {
    check_models();
    check_stage_names();
    for (size_t i = 0; i < r_.stages.size(); ++i) check_stage(i);
    return std::move(out_);
  }

 private:
  void error(const At& at, std::string message) {
    out_.push_back(make_diagnostic(r_.sources.find(at.canonical), at.shown, std::move(message)));
  }

  // ---- models ----

  void check_models() {
    for (const auto& [name, m] : r_.models.items) {
      const At at{"models." + name, "models." + name};
      if (m.path.empty() == !m.init.has_value()) {
        error(at, "set exactly one of `path` (a Hugging Face model folder) and `init` (random initialisation "
                  "from a preset)");
      }
      std::error_code ec;
      if (!m.path.empty() && !fs::is_directory(m.path, ec)) {
        error(at / "path", looks_like_repo_id(m.path)
                               ? hf_cache_miss_message(m.path, m.revision, find_in_hf_cache(m.path, m.revision))
                               : "no such model folder: " + m.path);
      }
      if (!m.revision.empty() && !looks_like_repo_id(m.path) && m.path.find("/snapshots/") == std::string::npos)
        error(at / "revision", "applies only to a model named `org/name` in the Hugging Face cache");
      if (!is_named_chat_template(m.chat_template)) {
        if (fs::path(m.chat_template).extension() != ".jinja") {
          error(at / "chat_template",
                fmt::format("expected auto, chatml, llama3, plain or a .jinja file; got `{}`{}", m.chat_template,
                            did_you_mean(fs::path(m.chat_template).filename().string(),
                                         {"auto", "chatml", "llama3", "plain"})));
        } else if (!fs::is_regular_file(m.chat_template, ec)) {
          error(at / "chat_template", "no such template file: " + m.chat_template);
        }
      }
      if (m.init && m.tokenizer != kByteTokenizer && !fs::is_directory(m.tokenizer, ec))
        error(at / "tokenizer", "no such tokenizer folder: " + m.tokenizer);
      check_lora(at, m);
      for (size_t i = 0; i < r_.stages.size(); ++i) {
        if (r_.stages[i].name == name)
          error(stage_at(r_, i) / "name", fmt::format("`{}` is both a model and a stage name", name));
      }
    }
  }

  // LoRA: `lora` (new adapters) and `adapter` (a PEFT folder, which brings its own settings) exclude each other.
  void check_lora(const At& at, const ModelSpec& m) {
    std::error_code ec;
    if (m.lora && !m.adapter.empty())
      error(at / "adapter", "set either `lora` (train new adapters) or `adapter` (a PEFT adapter folder, whose "
                            "adapter_config.json gives the LoRA settings), not both");
    if (!m.adapter.empty() && !fs::is_regular_file(fs::path(m.adapter) / "adapter_config.json", ec))
      error(at / "adapter", "no PEFT adapter folder (adapter_config.json) at " + m.adapter);
    if (m.lora) check_lora_targets(at / "lora", *m.lora);
  }

  void check_lora_targets(const At& at, const LoraConfig& lora) {
    static const std::vector<std::string> kTargets = {"q_proj", "k_proj",    "v_proj",  "o_proj",
                                                      "gate_proj", "up_proj", "down_proj"};
    const auto& t = lora.targets;
    if (t.empty()) error(at / "targets", "expected at least one module name, or all-linear");
    for (const auto& name : t) {
      if (name == "all-linear" && t.size() == 1) continue;
      if (std::find(kTargets.begin(), kTargets.end(), name) == kTargets.end())
        error(at / "targets",
              fmt::format("unknown LoRA target `{}`{} (expected a list of {} or the single value all-linear)", name,
                          did_you_mean(name, kTargets), fmt::join(kTargets, ", ")));
    }
  }

  // ---- stages ----

  void check_stage_names() {
    for (size_t i = 0; i < r_.stages.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        if (r_.stages[i].name.empty() || r_.stages[i].name != r_.stages[j].name) continue;
        const int line = r_.sources.find(fmt::format("stages[{}].name", j)).line;
        error(stage_at(r_, i) / "name", fmt::format("duplicate stage name `{}` (first used by stages[{}]{})",
                                                    r_.stages[i].name, j,
                                                    line > 0 ? fmt::format(" at line {}", line) : ""));
        break;
      }
    }
  }

  int stage_index(const std::string& name) const {
    for (size_t i = 0; i < r_.stages.size(); ++i)
      if (r_.stages[i].name == name) return static_cast<int>(i);
    return -1;
  }

  // `name` must be a declared model or an earlier stage that makes a model.
  void check_ref(size_t i, const At& at, const std::string& name) {
    if (name.empty() || r_.models.find(name)) return;
    const int j = stage_index(name);
    if (j == static_cast<int>(i))
      return error(at, fmt::format("`{}` is this stage itself; name a model or an earlier stage", name));
    if (j > static_cast<int>(i))
      return error(at, fmt::format("`{}` is a later stage (stages[{}]); a stage can only use a model or an "
                                   "earlier stage",
                                   name, j));
    if (j >= 0) {
      if (!makes_model(r_.stages[j].kind))
        error(at, fmt::format("`{}` is {}, which makes no model", name, a_stage(r_.stages[j].kind)));
      return;
    }
    std::vector<std::string> candidates, models, earlier;
    for (const auto& [m, spec] : r_.models.items) models.push_back(m);
    for (size_t k = 0; k < i; ++k) earlier.push_back(r_.stages[k].name);
    candidates = models;
    candidates.insert(candidates.end(), earlier.begin(), earlier.end());
    auto list = [](const std::vector<std::string>& v) { return v.empty() ? std::string("none") : fmt::format("{}", fmt::join(v, ", ")); };
    error(at, fmt::format("unknown model or stage `{}`{} (models: {}; earlier stages: {})", name,
                          did_you_mean(name, candidates), list(models), list(earlier)));
  }

  void check_stage(size_t i) {
    const StageConfig& s = r_.stages[i];
    const At at = stage_at(r_, i);
    if (r_.sources.is_invalid(at.canonical) || r_.sources.is_invalid(at.canonical + ".kind")) return;
    if (s.kind != StageKind::select) check_ref(i, at / "policy", s.policy);
    for (const auto& [field, ref] : {std::pair{"reference", &s.reference}, std::pair{"teacher", &s.teacher},
                                     std::pair{"teacher_reference", &s.teacher_reference}}) {
      if (!*ref) continue;
      if (std::string(field) == "reference" && is_policy_base(r_, (*ref)->model)) {
        if (!s.lora && !has_lora(r_, s.policy))
          error(at / field, "`base` (the policy's base model with its adapters off) needs a policy with LoRA "
                            "adapters (models.<name>.lora, models.<name>.adapter or the stage's own `lora`)");
        continue;
      }
      if (std::string(field) == "teacher_reference" && is_policy_base(r_, (*ref)->model)) {
        if (s.teacher && !s.teacher->model.empty() && !has_lora(r_, s.teacher->model))
          error(at / field, fmt::format("`base` (the teacher's base model with its adapters off) needs a teacher with "
                                        "LoRA adapters; teacher `{}` has none", s.teacher->model));
        continue;
      }
      check_ref(i, at / field, (*ref)->model);
    }
    if (s.lora) check_stage_lora(s, at);
    const bool loss_ok = !r_.sources.is_invalid_within(at.canonical + ".loss.type") &&
                         !r_.sources.is_invalid(at.canonical + ".loss");
    if (loss_ok && (is_training(s.kind) || s.kind == StageKind::eval)) check_loss(i, at);
    check_data(i, at);
    if (is_training(s.kind)) check_training(s, at);
    if (s.kind == StageKind::select) check_select(i, at);
    if (s.kind == StageKind::online && loss_ok && !s.loss.type.empty()) check_online(s, at);
  }

  // A stage's `lora` puts fresh adapters on its policy: on a model without adapters, or in place of a declared
  // model's untrained `lora`. A policy that already carries trained adapters would need them merged first.
  void check_stage_lora(const StageConfig& s, const At& at) {
    check_lora_targets(at / "lora", *s.lora);
    const std::string trained = trained_adapters_of(r_, s.policy);
    if (!trained.empty())
      error(at / "lora", fmt::format("policy `{}` already carries trained LoRA adapters ({}); a stage `lora` adds fresh "
                                     "adapters, and stacking them on trained ones is not supported: leave out `lora` "
                                     "to continue training those adapters, or declare a model merged from them "
                                     "(`aligntrain export CHECKPOINT --merge`) as the policy",
                                     s.policy, trained));
  }

  void check_online(const StageConfig& s, const At& at) {
    const OnlineConfig& o = s.online;
    const At oat = at / "online";
    const LossType t = s.loss.type.front();
    if (s.loss.type.size() > 1) error(at / "loss" / "type", "an online stage takes one loss type (grpo, rloo or fdpg)");
    if (o.rewards.empty() && !r_.sources.is_invalid_within(oat.canonical + ".rewards"))
      error(oat / "rewards", "an online stage needs at least one reward (exact_match, regex, length, command or model)");
    for (size_t j = 0; j < o.rewards.size(); ++j) {
      const RewardSpec& r = o.rewards[j];
      const At rat = oat / ("rewards[" + std::to_string(j) + "]");
      if (r.type == RewardType::regex) {
        if (r.pattern.empty()) error(rat / "pattern", "a regex reward needs `pattern`");
        else {
          try {
            std::regex re(r.pattern, std::regex::ECMAScript);
          } catch (const std::regex_error& e) {
            error(rat / "pattern", fmt::format("is not a valid ECMAScript regular expression: {}", e.what()));
          }
        }
      }
      if (r.type == RewardType::command && r.command.empty())
        error(rat / "command", "a command reward needs `command` (run with /bin/sh -c)");
      if (r.type == RewardType::model) check_reward_model(r, rat);
    }
    if ((t == LossType::grpo || t == LossType::rloo) && o.num_samples < 2)
      error(oat / "num_samples", fmt::format("loss type {} compares the samples of a prompt with each other and needs "
                                             "at least 2, got {}", name_of(t), o.num_samples));
    const int mu = o.updates_per_batch;
    if (t == LossType::fdpg && mu > 1)
      error(oat / "updates_per_batch", "f-DPG updates once per batch of samples (the paper's online setting)");
    if (mu > 1 && s.train.steps && *s.train.steps % mu != 0)
      error(at / "train" / "steps", fmt::format("must be a multiple of online.updates_per_batch ({}), got {}", mu,
                                                *s.train.steps));
    if (mu > 1 && s.checkpoint.every_steps % mu != 0)
      error(at / "checkpoint" / "every_steps", fmt::format("must be a multiple of online.updates_per_batch ({}): "
                                                           "checkpoints are written between batches of samples, got {}",
                                                           mu, s.checkpoint.every_steps));
    if (t == LossType::fdpg && o.target == FdpgTarget::constraint && o.divergence == Divergence::reverse_kl)
      error(oat / "divergence", "reverse_kl is infinite on samples outside a 0/1 constraint (b(x) = 0); use jsd, "
                                "forward_kl or tvd, or online.target: reward");
    if (t == LossType::fdpg && o.target == FdpgTarget::reward && o.beta && *o.beta <= 0)
      error(oat / "beta", "f-DPG's reward target P = a·exp(r/β) needs β > 0");
  }

  // A reward model is a declared model with `path` (an HF sequence-classification folder; its config.json is read
  // by model::check_models); LoRA adapters on it are not supported.
  void check_reward_model(const RewardSpec& r, const At& rat) {
    if (r.model.empty()) return error(rat / "model", "a model reward needs `model` (a key of `models:` whose path is "
                                                     "an HF Llama, Mistral, Qwen2 or Qwen3 ForSequenceClassification "
                                                     "folder)");
    const ModelSpec* m = r_.models.find(r.model);
    if (!m) {
      std::vector<std::string> names;
      for (const auto& [name, spec] : r_.models.items) names.push_back(name);
      const bool stage = stage_index(r.model) >= 0;
      return error(rat / "model",
                   fmt::format("unknown model `{}`{}; a reward model must be declared under `models:` with the `path` "
                               "of an HF sequence-classification folder{} (models: {})",
                               r.model, did_you_mean(r.model, names),
                               stage ? " (a stage's output is a causal LM, not a reward model)" : "",
                               names.empty() ? std::string("none") : fmt::format("{}", fmt::join(names, ", "))));
    }
    if (m->init)
      error(rat / "model", fmt::format("`{}` is a random initialisation (`init`); a reward model must be the `path` of "
                                       "an HF sequence-classification folder",
                                       r.model));
    if (m->lora || !m->adapter.empty())
      error(rat / "model", fmt::format("`{}` has LoRA adapters, which a reward model does not support", r.model));
  }

  void check_loss(size_t i, const At& at) {
    const StageConfig& s = r_.stages[i];
    const LossConfig& loss = s.loss;
    const auto allowed = allowed_loss_types(s.kind);
    if (loss.type.empty()) {
      error(at / "loss" / "type", fmt::format("{} needs `loss.type` (one of: {})", a_stage(s.kind), names_of(allowed)));
      return;
    }
    for (size_t k = 0; k < loss.type.size(); ++k) {
      const LossType t = loss.type[k];
      const At type_at = at / "loss" / "type";
      if (std::find(allowed.begin(), allowed.end(), t) == allowed.end())
        error(type_at, fmt::format("loss type `{}` is not valid for {} (valid: {})", name_of(t), a_stage(s.kind),
                                   names_of(allowed)));
      if (std::find(loss.type.begin(), loss.type.begin() + k, t) != loss.type.begin() + k)
        error(type_at, fmt::format("loss type `{}` is listed twice", name_of(t)));
    }
    if (loss.weights.size() != loss.type.size())
      error(at / "loss" / "weights", fmt::format("has {} weight{} for {} loss type{}", loss.weights.size(),
                                                 loss.weights.size() == 1 ? "" : "s", loss.type.size(),
                                                 loss.type.size() == 1 ? "" : "s"));
    check_models_needed(i, at);
    if (uses_any(loss, {LossType::bco}) && !loss.udm_model.empty() && !r_.models.find(loss.udm_model))
      error(at / "loss" / "udm_model", fmt::format("unknown model `{}`; UDM needs a declared embedding model",
                                                   loss.udm_model));
  }

  // Which frozen models the loss types need, against which the stage names.
  void check_models_needed(size_t i, const At& at) {
    const StageConfig& s = r_.stages[i];
    const LossConfig& loss = s.loss;
    const auto types = names_of(loss.type);
    bool needs_reference = false;
    switch (s.kind) {
      case StageKind::preference:
      case StageKind::eval:
        needs_reference = std::any_of(loss.type.begin(), loss.type.end(), [](LossType t) { return !is_reference_free(t); });
        break;
      case StageKind::unpaired:
      case StageKind::negatives: needs_reference = true; break;
      case StageKind::distill:
        needs_reference = uses_any(loss, {LossType::adpa}) && (loss.kl_penalty_weight > 0 || loss.adpa_importance_sampling);
        break;
      case StageKind::online:  // f-DPG's base a(x); GRPO's and RLOO's KL term
        needs_reference = uses_any(loss, {LossType::fdpg}) ||
                          s.online.beta.value_or(default_online_beta(loss.type.front())) > 0;
        break;
      default: break;
    }
    const std::string online_why = s.kind != StageKind::online ? ""
                                   : uses_any(loss, {LossType::fdpg}) ? " (f-DPG's base model a(x))"
                                                                      : " for its KL term (online.beta > 0)";
    if (needs_reference && !s.reference)
      error(at / "reference", fmt::format("{} with loss type {} needs `reference` (a frozen model or "
                                          "earlier stage){}{}",
                                          a_stage(s.kind), types, online_why,
                                          s.kind == StageKind::preference ? "; only simpo, orpo, cpo and mapo need none"
                                                                          : ""));
    if (!needs_reference && s.reference)
      error(at / "reference", fmt::format("is not used by loss type {}{}; remove it", types,
                                          s.kind == StageKind::online ? " with online.beta 0" : ""));
    if (s.kind == StageKind::online && s.reference && s.reference->precompute)
      error(at / "reference" / "precompute", "an online stage scores samples drawn during training; its reference "
                                             "cannot be precomputed");
    if (s.kind != StageKind::distill) return;
    if (!s.teacher) error(at / "teacher", "a distill stage needs `teacher`");
    const bool needs_teacher_reference = uses_any(loss, {LossType::adpa, LossType::aligndistil});
    if (needs_teacher_reference && !s.teacher_reference)
      error(at / "teacher_reference", fmt::format("loss type {} needs `teacher_reference` (the teacher's own "
                                                  "reference: its SFT model for adpa, a reverse-DPO model for "
                                                  "aligndistil)",
                                                  types));
    if (!needs_teacher_reference && s.teacher_reference)
      error(at / "teacher_reference", fmt::format("is not used by loss type {}; remove it", types));
    const bool online_teacher = uses_any(loss, {LossType::kd, LossType::aligndistil});
    for (const auto& [field, ref] : {std::pair{"teacher", &s.teacher}, std::pair{"teacher_reference", &s.teacher_reference}}) {
      if (online_teacher && *ref && (*ref)->precompute)
        error(at / field / "precompute", fmt::format("loss type {} needs the teacher's full distribution online; "
                                                     "it cannot be precomputed",
                                                     types));
    }
  }

  // A data value: an earlier stage's output, or a non-empty regular file.
  // allow_empty: an empty file is left to the stage to report (a DataError when it reads the file).
  void check_data_source(size_t i, const At& at, const std::string& value, std::initializer_list<StageKind> producers,
                         bool allow_empty = false) {
    if (value.empty()) return;
    if (const StageConfig* producer = earlier_stage(r_, i, value)) {
      if (std::find(producers.begin(), producers.end(), producer->kind) == producers.end())
        error(at, fmt::format("`{}` is {}, which writes no data", value, a_stage(producer->kind)));
      return;
    }
    const std::string base = fs::path(value).filename().string();
    const int j = stage_index(base);
    std::error_code ec;
    if (is_parquet_source(value)) {
      // Parquet: a file, a folder of .parquet files or a glob of shards; the reader checks their contents.
      if (!data_source_files(value).empty()) return;
      if (fs::is_directory(value, ec))
        return error(at, "not a regular file, and no .parquet files in the folder " + value);
      if (value.find_first_of("*?[") != std::string::npos) return error(at, "no files match " + value);
      return error(at, "no such file: " + value);
    }
    if (!fs::exists(value, ec)) {
      if (j >= static_cast<int>(i))
        return error(at, fmt::format("`{}` is {} stage; data can only come from files and earlier stages", base,
                                     j == static_cast<int>(i) ? "this" : "a later"));
      return error(at, "no such file: " + value);
    }
    if (!fs::is_regular_file(value, ec)) return error(at, "not a regular file: " + value);
    if (!allow_empty && fs::file_size(value, ec) == 0) error(at, "the file is empty: " + value);
  }

  void check_data(size_t i, const At& at) {
    const StageConfig& s = r_.stages[i];
    const DataConfig& d = s.data;
    const bool needs_train = is_training(s.kind) || s.kind == StageKind::generate || s.kind == StageKind::select;
    if (needs_train && d.train.empty() && !r_.sources.is_invalid(at.canonical + ".data.train"))
      error(at / "data" / "train", fmt::format("{} needs `data.train`", a_stage(s.kind)));
    if (s.kind == StageKind::eval && d.eval.empty()) error(at / "data" / "eval", "an eval stage needs `data.eval`");
    if (s.kind == StageKind::negatives && d.samples.empty())
      error(at / "data" / "samples", "a negatives stage needs `data.samples` (self-generated samples: a JSONL file "
                                     "or an earlier generate stage)");
    check_data_source(i, at / "data" / "train", d.train, {StageKind::generate, StageKind::select});
    check_data_source(i, at / "data" / "eval", d.eval, {StageKind::generate, StageKind::select});
    check_data_source(i, at / "data" / "samples", d.samples, {StageKind::generate});
    if (s.kind == StageKind::negatives && d.num_samples) {
      const StageConfig* gen = earlier_stage(r_, i, d.samples);
      if (gen && gen->kind == StageKind::generate && *d.num_samples > gen->generation.num_samples)
        error(at / "data" / "num_samples", fmt::format("asks for {} samples per prompt but stage `{}` generates {}",
                                                       *d.num_samples, gen->name, gen->generation.num_samples));
    }
  }

  void check_training(const StageConfig& s, const At& at) {
    const BatchConfig& b = s.batch;
    if (b.micro > 0 && b.global % b.micro != 0)
      error(at / "batch" / "global", fmt::format("batch.global ({}) must be divisible by batch.micro ({})", b.global,
                                                 b.micro));
    if (b.max_prompt_length && *b.max_prompt_length >= b.max_length)
      error(at / "batch" / "max_prompt_length", fmt::format("must be less than batch.max_length ({}), got {}",
                                                            b.max_length, *b.max_prompt_length));
    if (s.train.epochs && s.train.steps) error(at / "train", "set one of `epochs` and `steps`, not both");
    if (s.schedule.warmup_steps > 0 && s.schedule.warmup_ratio > 0)
      error(at / "schedule", "set one of `warmup_steps` and `warmup_ratio`, not both");
    if (s.eval.every_steps > 0 && s.data.eval.empty())
      error(at / "eval" / "every_steps", "evaluation needs `data.eval`");
  }

  void check_select(size_t i, const At& at) {
    const SelectConfig& sel = r_.stages[i].select;
    if (sel.method == SelectMethod::zip_fit) {
      if (sel.target.empty()) error(at / "select" / "target", "zip_fit needs `select.target` (a JSONL file)");
      else check_data_source(i, at / "select" / "target", sel.target, {}, /*allow_empty=*/true);
    }
    if (sel.method == SelectMethod::isa) {
      if (sel.embedding_model.empty())
        error(at / "select" / "embedding_model", "isa needs `select.embedding_model` naming a declared model or an "
                                                 "earlier stage");
      else check_ref(i, at / "select" / "embedding_model", sel.embedding_model);
    }
    if (sel.keep && sel.keep_fraction)
      error(at / "select" / "keep", "set one of `keep` (a count) and `keep_fraction`, not both");
    if (!sel.text.empty()) {
      size_t start = 0;
      while (start <= sel.text.size()) {
        const size_t end = std::min(sel.text.find('+', start), sel.text.size());
        const std::string field = sel.text.substr(start, end - start);
        if (field != "prompt" && field != "completion" && field != "chosen" && field != "rejected") {
          error(at / "select" / "text", fmt::format("unknown field `{}` in `{}`: expected fields of prompt, "
                                                    "completion, chosen, rejected joined by `+` "
                                                    "(e.g. prompt+completion)", field, sel.text));
          break;
        }
        start = end + 1;
      }
    }
  }

  const Recipe& r_;
  Diagnostics out_;
};

}  // namespace

Diagnostics validate(const Recipe& recipe) { return Validator(recipe).run(); }

Diagnostics check_world(const Recipe& recipe, int world_size) {
  Diagnostics out;
  const int tp = recipe.parallel.tensor;
  const Location where = recipe.sources.find("parallel.tensor");
  if (world_size < 1 || tp < 1 || world_size % tp != 0) {
    out.push_back(make_diagnostic(where, "parallel.tensor",
                                  fmt::format("parallel.tensor ({}) must divide the world size ({})", tp, world_size)));
    return out;
  }
  const int dp = world_size / tp;
  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    const StageConfig& s = recipe.stages[i];
    if (!is_training(s.kind)) continue;
    const int per_step = s.batch.micro * dp;
    if (per_step > 0 && s.batch.global % per_step == 0) continue;
    const At at = stage_at(recipe, i) / "batch" / "global";
    out.push_back(make_diagnostic(
        recipe.sources.find(at.canonical), at.shown,
        fmt::format("batch.global ({}) must be divisible by batch.micro × data-parallel degree ({} × {} = {}; "
                    "world size {}, tensor {})",
                    s.batch.global, s.batch.micro, dp, per_step, world_size, tp)));
  }
  return out;
}

Diagnostics check_model_dims(int tp, int heads, int kv_heads, int intermediate, int vocab) {
  Diagnostics out;
  if (tp < 1) {
    out.push_back(Diagnostic{"", 0, 0, "parallel.tensor", fmt::format("must be >= 1 (got {})", tp)});
    return out;
  }
  for (const auto& [name, value] : {std::pair{"num_attention_heads", heads}, std::pair{"num_key_value_heads", kv_heads},
                                    std::pair{"intermediate_size", intermediate}, std::pair{"vocab_size", vocab}}) {
    if (value % tp != 0)
      out.push_back(Diagnostic{"", 0, 0, name,
                               fmt::format("{} ({}) is not divisible by parallel.tensor ({})", name, value, tp)});
  }
  return out;
}

}  // namespace aligntrain::config
