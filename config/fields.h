// The field tables: for every recipe struct, each field declared once with its YAML key, its valid range,
// and the stage kinds or loss types it applies to.
//
// `Fields<T>::each(obj, kind, f)` calls `f(key, member)` for every field of `obj` in YAML order. The
// strict loader, the YAML emitter, the did-you-mean key list and equality all walk these tables, so a
// field added here is loaded, emitted, suggested and compared with no other change. `kind` is the kind of
// the enclosing stage (ignored outside stages). Applicability is computed from `obj` at call time, so it
// sees fields visited earlier in the same call (a stage's `kind`, a loss's `type`).
#pragma once

#include <algorithm>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/schema.h"

namespace aligntrain::config {

inline constexpr double kInf = std::numeric_limits<double>::infinity();

struct Bound {
  double lo = -kInf;
  bool lo_open = false;
  double hi = kInf;
  bool hi_open = false;

  bool contains(double v) const {
    return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  }
};

struct Key {
  std::string_view name;
  bool applies = true;           // false: setting the key is an error and it is not emitted
  std::string why_not;           // when !applies: "does not apply to generate stages (only to ...)"
  std::optional<Bound> bound;    // numbers (and each element of a list of numbers)
  bool required = false;         // an error when absent (and applicable)
  bool discriminator = false;    // other fields' applicability depends on it
  bool scalar_or_list = false;   // a list field that also accepts a single value
  bool identifier = false;       // a name made of letters, digits, `_` and `-`
  StageKind kind = StageKind::sft;  // the enclosing stage's kind, handed to nested structs

  Key& require() { required = true; return *this; }
  Key& discriminates() { discriminator = true; return *this; }
  Key& one_or_many() { scalar_or_list = true; return *this; }
  Key& ident() { identifier = true; return *this; }
  Key& within(StageKind k) { kind = k; return *this; }
  Key& positive() { return range(0, kInf, false, true); }
  Key& non_negative() { return range(0, kInf); }
  Key& range(double lo, double hi, bool hi_open = false, bool lo_open = false) {
    bound = Bound{lo, lo_open, hi, hi_open};
    return *this;
  }
  template <class Kinds = std::initializer_list<StageKind>>
  Key& only_kinds(StageKind current, const Kinds& kinds) {
    applies = std::find(std::begin(kinds), std::end(kinds), current) != std::end(kinds);
    if (!applies)
      why_not = "does not apply to " + std::string(name_of(current)) + " stages (only to " + join_names(kinds) +
                " stages)";
    return *this;
  }
  Key& only_if(bool yes, std::string why) {
    applies = yes;
    if (!applies) why_not = std::move(why);
    return *this;
  }
  Key& only_training(StageKind current) { return only_kinds(current, kTrainingKinds); }
  // With no loss type in effect (a distill stage that names none) every parameter is accepted; the
  // missing type is reported by validation.
  Key& only_losses(const std::vector<LossType>& current, std::initializer_list<LossType> types) {
    if (current.empty()) return *this;
    applies = std::any_of(current.begin(), current.end(), [&](LossType t) {
      return std::find(types.begin(), types.end(), t) != types.end();
    });
    if (!applies)
      why_not = "has no effect with loss type " + join_names(current) + " (it is used by loss type " +
                join_names(types) + ")";
    return *this;
  }

  template <class List>
  static std::string join_names(const List& values) {
    std::string out;
    for (auto v : values) out += (out.empty() ? "" : ", ") + std::string(name_of(v));
    return out;
  }
};

inline Key key(std::string_view name) {
  Key k;
  k.name = name;
  return k;
}

template <class T>
struct Fields;  // specialised below for every struct that is a YAML map

template <>
struct Fields<RunConfig> {
  template <class S, class F>
  static void each(S& o, StageKind, F&& f) {
    f(key("name").ident(), o.name);
    f(key("output_dir"), o.output_dir);
    f(key("seed"), o.seed);
    f(key("device"), o.device);
    f(key("precision"), o.precision);
    f(key("threads").non_negative(), o.threads);
  }
};

template <>
struct Fields<ParallelConfig> {
  template <class S, class F>
  static void each(S& o, StageKind, F&& f) {
    f(key("tensor").positive(), o.tensor);
    f(key("zero1"), o.zero1);
    f(key("bucket_mb").positive(), o.bucket_mb);
    f(key("overlap_grad_reduce"), o.overlap_grad_reduce);
    f(key("logits_mb").positive(), o.logits_mb);
  }
};

template <>
struct Fields<InitSpec> {
  template <class S, class F>
  static void each(S& o, StageKind, F&& f) {
    f(key("preset").require(), o.preset);
    f(key("seed"), o.seed);
    f(key("hidden_size").positive(), o.hidden_size);
    f(key("num_layers").positive(), o.num_layers);
    f(key("num_heads").positive(), o.num_heads);
    f(key("num_kv_heads").positive(), o.num_kv_heads);
    f(key("intermediate_size").positive(), o.intermediate_size);
    f(key("vocab_size").positive(), o.vocab_size);
    f(key("max_position_embeddings").positive(), o.max_position_embeddings);
    f(key("tie_word_embeddings"), o.tie_word_embeddings);
  }
};

template <>
struct Fields<LoraConfig> {
  template <class S, class F>
  static void each(S& o, StageKind, F&& f) {
    f(key("rank").positive(), o.rank);
    f(key("alpha").positive(), o.alpha);
    f(key("dropout").range(0, 1, true), o.dropout);
    f(key("targets").one_or_many(), o.targets);
    f(key("rslora"), o.rslora);
    f(key("init"), o.init);
    f(key("merge"), o.merge);
  }
};

template <>
struct Fields<ModelSpec> {
  template <class S, class F>
  static void each(S& o, StageKind, F&& f) {
    f(key("path"), o.path);
    f(key("revision"), o.revision);
    f(key("init"), o.init);
    f(key("tokenizer"), o.tokenizer);
    f(key("chat_template"), o.chat_template);
    f(key("dtype"), o.dtype);
    f(key("lora"), o.lora);
    f(key("adapter"), o.adapter);
  }
};

template <>
struct Fields<ModelRef> {
  template <class S, class F>
  static void each(S& o, StageKind, F&& f) {
    f(key("model").require(), o.model);
    f(key("precompute"), o.precompute);
  }
};

template <>
struct Fields<DataConfig> {
  template <class S, class F>
  static void each(S& o, StageKind k, F&& f) {
    using K = StageKind;
    f(key("train").only_kinds(k, {K::sft, K::preference, K::unpaired, K::negatives, K::distill, K::online,
                                   K::generate, K::select}),
      o.train);
    f(key("eval").only_kinds(k, {K::sft, K::preference, K::unpaired, K::negatives, K::distill, K::eval}), o.eval);
    f(key("format"), o.format);
    f(key("skip_invalid"), o.skip_invalid);
    f(key("truncate"), o.truncate);
    f(key("train_on_prompt").only_kinds(k, {K::sft}), o.train_on_prompt);
    f(key("assistant_only_loss").only_kinds(k, {K::sft}), o.assistant_only_loss);
    f(key("chat_template_kwargs"), o.chat_template_kwargs);
    f(key("packing").only_kinds(k, {K::sft}), o.packing);
    f(key("samples").only_kinds(k, {K::negatives}), o.samples);
    f(key("num_samples").positive().only_kinds(k, {K::negatives}), o.num_samples);
  }
};

template <>
struct Fields<OptimizerConfig> {
  template <class S, class F>
  static void each(S& o, StageKind, F&& f) {
    f(key("lr").positive(), o.lr);
    f(key("weight_decay").non_negative(), o.weight_decay);
    f(key("betas").range(0, 1, true), o.betas);
    f(key("eps").positive(), o.eps);
    f(key("grad_clip").non_negative(), o.grad_clip);
  }
};

template <>
struct Fields<ScheduleConfig> {
  template <class S, class F>
  static void each(S& o, StageKind, F&& f) {
    f(key("warmup_steps").non_negative(), o.warmup_steps);
    f(key("warmup_ratio").range(0, 1, true), o.warmup_ratio);
    f(key("decay"), o.decay);
    f(key("min_lr_ratio").range(0, 1), o.min_lr_ratio);
  }
};

template <>
struct Fields<BatchConfig> {
  template <class S, class F>
  static void each(S& o, StageKind k, F&& f) {
    f(key("global").positive().only_training(k), o.global);
    f(key("micro").positive(), o.micro);
    f(key("max_length").positive(), o.max_length);
    f(key("max_prompt_length").positive(), o.max_prompt_length);
  }
};

template <>
struct Fields<TrainConfig> {
  template <class S, class F>
  static void each(S& o, StageKind, F&& f) {
    f(key("epochs").positive(), o.epochs);
    f(key("steps").positive(), o.steps);
  }
};

template <>
struct Fields<EvalConfig> {
  template <class S, class F>
  static void each(S& o, StageKind k, F&& f) {
    f(key("every_steps").non_negative().only_training(k), o.every_steps);
    f(key("exact_match").only_kinds(k, {StageKind::eval}), o.exact_match);
  }
};

template <>
struct Fields<CheckpointConfig> {
  template <class S, class F>
  static void each(S& o, StageKind, F&& f) {
    f(key("every_steps").non_negative(), o.every_steps);
    f(key("keep_last").positive(), o.keep_last);
  }
};

template <>
struct Fields<LogConfig> {
  template <class S, class F>
  static void each(S& o, StageKind, F&& f) {
    f(key("every_steps").positive(), o.every_steps);
    f(key("tensorboard"), o.tensorboard);
  }
};

template <>
struct Fields<LossConfig> {
  template <class S, class F>
  static void each(S& o, StageKind k, F&& f) {
    using L = LossType;
    f(key("type").one_or_many().discriminates(), o.type);
    // Applicability follows the types in effect: the recipe's, or the stage kind's default.
    const std::vector<LossType> t = o.type.empty() ? default_loss_types(k) : o.type;
    f(key("weights").non_negative(), o.weights);
    f(key("beta").positive().only_losses(t, {L::dpo, L::cdpo, L::robust, L::hinge, L::ipo, L::ln_dpo, L::bco_pair,
                                              L::simpo, L::cpo, L::mapo, L::kto, L::bco, L::d2o, L::aligndistil}),
      o.beta);
    f(key("label_smoothing").range(0, 0.5, true).only_losses(t, {L::cdpo, L::robust, L::cpo}), o.label_smoothing);
    f(key("ipo_raw").only_losses(t, {L::ipo}), o.ipo_raw);
    f(key("gamma_beta_ratio").non_negative().only_losses(t, {L::simpo}), o.gamma_beta_ratio);
    f(key("cpo_alpha").non_negative().only_losses(t, {L::cpo}), o.cpo_alpha);
    f(key("alpha").only_losses(t, {L::cpo}), o.alpha);
    f(key("orpo_lambda").positive().only_losses(t, {L::orpo}), o.orpo_lambda);
    f(key("orpo_prompt_in_nll").only_losses(t, {L::orpo}), o.orpo_prompt_in_nll);
    f(key("mapo_snr").positive().only_losses(t, {L::mapo}), o.mapo_snr);
    f(key("mapo_timesteps").positive().only_losses(t, {L::mapo}), o.mapo_timesteps);
    f(key("desirable_weight").positive().only_losses(t, {L::kto}), o.desirable_weight);
    f(key("undesirable_weight").positive().only_losses(t, {L::kto}), o.undesirable_weight);
    f(key("udm_model").only_losses(t, {L::bco}), o.udm_model);
    f(key("prompt_sample_size").positive().only_losses(t, {L::bco}), o.prompt_sample_size);
    f(key("min_density_ratio").positive().only_losses(t, {L::bco}), o.min_density_ratio);
    f(key("max_density_ratio").positive().only_losses(t, {L::bco}), o.max_density_ratio);
    f(key("d2o_alpha").non_negative().only_losses(t, {L::d2o}), o.d2o_alpha);
    f(key("divergence").only_losses(t, {L::kd}), o.divergence);
    f(key("jsd_beta").range(0, 1).only_losses(t, {L::kd}), o.jsd_beta);
    f(key("temperature").positive().only_losses(t, {L::kd, L::aligndistil}), o.temperature);
    f(key("kd_ratio").range(0, 1).only_losses(t, {L::kd, L::aligndistil}), o.kd_ratio);
    f(key("lmbda").range(0, 1).only_losses(t, {L::kd, L::aligndistil}), o.lmbda);
    f(key("sft_weight").non_negative().only_losses(t, {L::dckd, L::adpa}), o.sft_weight);
    f(key("top_k").positive().only_losses(t, {L::dckd, L::adpa}), o.top_k);
    f(key("chosen_distil_weight").non_negative().only_losses(t, {L::dckd}), o.chosen_distil_weight);
    f(key("rejected_distil_weight").non_negative().only_losses(t, {L::dckd}), o.rejected_distil_weight);
    f(key("adpa_weight").non_negative().only_losses(t, {L::adpa}), o.adpa_weight);
    f(key("adpa_clamp_targets").only_losses(t, {L::adpa}), o.adpa_clamp_targets);
    f(key("adpa_importance_sampling").only_losses(t, {L::adpa}), o.adpa_importance_sampling);
    f(key("kl_penalty_weight").non_negative().only_losses(t, {L::adpa}), o.kl_penalty_weight);
    f(key("aligndistil_mode").only_losses(t, {L::aligndistil}), o.aligndistil_mode);
    f(key("aligndistil_beta2").positive().only_losses(t, {L::aligndistil}), o.aligndistil_beta2);
    f(key("aligndistil_mask").only_losses(t, {L::aligndistil}), o.aligndistil_mask);
    f(key("aligndistil_len_norm").only_losses(t, {L::aligndistil}), o.aligndistil_len_norm);
  }
};

template <>
struct Fields<GenerationConfig> {
  template <class S, class F>
  static void each(S& o, StageKind k, F&& f) {
    f(key("max_new_tokens").positive(), o.max_new_tokens);
    f(key("temperature").non_negative(), o.temperature);
    f(key("top_p").range(0, 1, false, true), o.top_p);
    f(key("top_k").non_negative(), o.top_k);
    f(key("num_samples").positive().only_kinds(k, {StageKind::generate}), o.num_samples);
    f(key("seed"), o.seed);
    f(key("out").only_kinds(k, {StageKind::generate}), o.out);
  }
};

template <>
struct Fields<SelectConfig> {
  template <class S, class F>
  static void each(S& o, StageKind, F&& f) {
    f(key("method").discriminates(), o.method);
    const bool isa = o.method == SelectMethod::isa;  // after `method` is loaded
    const std::string only_isa = "is an option of method isa";
    f(key("target").only_if(!isa, "is an option of method zip_fit"), o.target);
    f(key("embedding_model").only_if(isa, only_isa), o.embedding_model);
    f(key("keep_fraction").range(0, 1, false, true), o.keep_fraction);
    f(key("keep").positive(), o.keep);
    f(key("text"), o.text);
    f(key("out"), o.out);
    f(key("covariance").only_if(isa, only_isa), o.covariance);
    f(key("components").range(1, 64).only_if(isa, only_isa), o.components);
    f(key("max_iter").positive().only_if(isa, only_isa), o.max_iter);
    f(key("tol").positive().only_if(isa, only_isa), o.tol);
    f(key("reg_covar").non_negative().only_if(isa, only_isa), o.reg_covar);
    f(key("prefer").only_if(isa, only_isa), o.prefer);
    f(key("save_embeddings").only_if(isa, only_isa), o.save_embeddings);
  }
};

template <>
struct Fields<RewardSpec> {
  template <class S, class F>
  static void each(S& o, StageKind, F&& f) {
    using R = RewardType;
    f(key("type").require().discriminates(), o.type);
    const R t = o.type;
    const auto only = [&](R want) { return t == want; };
    const std::string why = "is not an option of reward type " + std::string(name_of(t));
    f(key("weight"), o.weight);
    f(key("pattern").only_if(only(R::regex), why), o.pattern);
    f(key("score").only_if(only(R::regex), why), o.score);
    f(key("target").non_negative().only_if(only(R::length), why), o.target);
    f(key("penalty").non_negative().only_if(only(R::length), why), o.penalty);
    f(key("command").only_if(only(R::command), why), o.command);
    f(key("timeout").positive().only_if(only(R::command), why), o.timeout);
    f(key("model").only_if(only(R::model), why), o.model);
  }
};

template <>
struct Fields<OnlineConfig> {
  template <class S, class F>
  static void each(S& o, StageKind, F&& f) {
    f(key("num_samples").positive(), o.num_samples);
    f(key("updates_per_batch").positive(), o.updates_per_batch);
    f(key("epsilon").range(0, 1, true), o.epsilon);
    f(key("epsilon_high").non_negative(), o.epsilon_high);
    f(key("beta").non_negative(), o.beta);
    f(key("scale_rewards"), o.scale_rewards);
    f(key("aggregation"), o.aggregation);
    f(key("importance_sampling_level"), o.importance_sampling_level);
    f(key("normalize_advantages"), o.normalize_advantages);
    f(key("divergence"), o.divergence);
    f(key("target"), o.target);
    f(key("baseline_window").positive(), o.baseline_window);
    f(key("rewards"), o.rewards);
  }
};

template <>
struct Fields<StageConfig> {
  template <class S, class F>
  static void each(S& o, StageKind, F&& f) {
    using K = StageKind;
    f(key("name").require().ident(), o.name);
    f(key("kind").require().discriminates(), o.kind);
    const K k = o.kind;
    f(key("policy").require().only_kinds(k, {K::sft, K::preference, K::unpaired, K::negatives, K::distill,
                                             K::online, K::generate, K::eval}),
      o.policy);
    f(key("reference").only_kinds(k, {K::preference, K::unpaired, K::negatives, K::distill, K::online, K::eval}),
      o.reference);
    f(key("teacher").only_kinds(k, {K::distill}), o.teacher);
    f(key("teacher_reference").only_kinds(k, {K::distill}), o.teacher_reference);
    f(key("data").within(k), o.data);
    f(key("optimizer").only_training(k), o.optimizer);
    f(key("schedule").only_training(k), o.schedule);
    f(key("batch").within(k).only_kinds(k, {K::sft, K::preference, K::unpaired, K::negatives, K::distill,
                                            K::online, K::generate, K::eval, K::select}),
      o.batch);
    f(key("train").only_training(k), o.train);
    f(key("eval").within(k).only_kinds(k, {K::sft, K::preference, K::unpaired, K::negatives, K::distill, K::eval}),
      o.eval);
    f(key("checkpoint").only_training(k), o.checkpoint);
    f(key("log").only_training(k), o.log);
    f(key("activation_checkpointing").only_training(k), o.activation_checkpointing);
    f(key("lora").only_training(k), o.lora);
    f(key("loss").within(k).only_kinds(k, {K::sft, K::preference, K::unpaired, K::negatives, K::distill, K::online,
                                           K::eval}),
      o.loss);
    // Sampling settings: generate stages, eval stages with exact match, and distill stages whose kd or aligndistil
    // loss samples from the student (lmbda).
    const auto uses = [&](LossType t) { return std::count(o.loss.type.begin(), o.loss.type.end(), t) > 0; };
    const bool samples = k == K::generate || k == K::online || (k == K::eval && o.eval.exact_match) ||
                         (k == K::distill && (uses(LossType::kd) || uses(LossType::aligndistil)));
    f(key("generation").within(k).only_if(samples, "applies only to generate and online stages, eval stages with "
                                                   "eval.exact_match and distill stages with loss type kd or "
                                                   "aligndistil"),
      o.generation);
    f(key("select").only_kinds(k, {K::select}), o.select);
    f(key("online").only_kinds(k, {K::online}), o.online);
  }
};

template <>
struct Fields<Recipe> {
  template <class S, class F>
  static void each(S& o, StageKind, F&& f) {
    f(key("run"), o.run);
    f(key("parallel"), o.parallel);
    f(key("models"), o.models);
    f(key("stages").require(), o.stages);
  }
};

// True for the structs above (YAML maps walked through their field table).
template <class T, class = void>
struct has_fields : std::false_type {};
template <class T>
struct has_fields<T, std::void_t<decltype(sizeof(Fields<T>))>> : std::true_type {};

}  // namespace aligntrain::config
