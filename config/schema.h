// The recipe schema: plain structs whose default member initialisers are the only home of defaults.
//
// A recipe is `run`, `parallel`, an ordered map of named `models` and an ordered list of `stages`
// (DESIGN.md §3). Fields whose default depends on another field (the loss types of a stage kind, a
// method's beta, a stage kind's learning rate, the run name) are std::optional here and are filled by
// resolve.cc from the tables at the end of this file, so the resolved recipe always shows the value
// in effect. Which key each field has, which stage kinds or loss types it applies to and its valid
// range are declared once, in fields.h.
#pragma once

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/diagnostic.h"

namespace aligntrain::config {

// ---------------------------------------------------------------------------------------------
// Enumerations. Each has a name table (EnumNames<E>::items) giving its spelling in YAML.

enum class Device { auto_, cpu, cuda };
enum class Precision { fp32, bf16 };
enum class StageKind { sft, preference, unpaired, negatives, distill, online, generate, select, eval };
enum class DataFormat { auto_, prompt_completion, messages };
enum class Truncate { left, right, drop };
enum class Decay { constant, linear, cosine };
enum class Divergence { forward_kl, reverse_kl, jsd, tvd };
enum class AlignDistilMode { published, theorem1, contrast, theorem1_adaptive };
enum class AlignDistilMask { standard, faithful };
enum class SelectMethod { zip_fit, isa };
enum class Covariance { diag, full };
enum class SelectPrefer { rare, common };
enum class LoraInit { default_, gaussian, zeros_b };
enum class LossType {
  sft,                                                         // token-mean NLL of the completion
  dpo, cdpo, robust, hinge, ipo, ln_dpo, bco_pair,             // preference, reference-based (METHODS C.1-C.6, C.11)
  simpo, orpo, cpo, mapo,                                      // preference, reference-free (C.7-C.9, C.13)
  kto, bco,                                                    // unpaired (C.10, C.11)
  d2o,                                                         // negatives (C.12)
  kd, dckd, adpa, aligndistil,                                 // distillation (D.1, A.3, A.4, B.2)
  grpo, rloo, fdpg,                                            // online, on the policy's own samples (G, D.2)
};
enum class RewardType { exact_match, regex, length, command, model };
enum class RewardScaling { group, batch, none };
enum class GrpoAggregation { grpo, bnpo, dapo, dr_grpo };
enum class ImportanceLevel { token, sequence };
enum class FdpgTarget { constraint, reward };

template <class E>
struct EnumNames;

#define ALIGNTRAIN_ENUM_NAMES(E, ...)                                   \
  template <>                                                           \
  struct EnumNames<E> {                                                 \
    static constexpr std::pair<E, std::string_view> items[] = {__VA_ARGS__}; \
  }

ALIGNTRAIN_ENUM_NAMES(Device, {Device::auto_, "auto"}, {Device::cpu, "cpu"}, {Device::cuda, "cuda"});
ALIGNTRAIN_ENUM_NAMES(Precision, {Precision::fp32, "fp32"}, {Precision::bf16, "bf16"});
ALIGNTRAIN_ENUM_NAMES(StageKind, {StageKind::sft, "sft"}, {StageKind::preference, "preference"},
                      {StageKind::unpaired, "unpaired"}, {StageKind::negatives, "negatives"},
                      {StageKind::distill, "distill"}, {StageKind::online, "online"},
                      {StageKind::generate, "generate"},
                      {StageKind::select, "select"}, {StageKind::eval, "eval"});
ALIGNTRAIN_ENUM_NAMES(DataFormat, {DataFormat::auto_, "auto"},
                      {DataFormat::prompt_completion, "prompt_completion"}, {DataFormat::messages, "messages"});
ALIGNTRAIN_ENUM_NAMES(Truncate, {Truncate::left, "left"}, {Truncate::right, "right"}, {Truncate::drop, "drop"});
ALIGNTRAIN_ENUM_NAMES(Decay, {Decay::constant, "constant"}, {Decay::linear, "linear"}, {Decay::cosine, "cosine"});
ALIGNTRAIN_ENUM_NAMES(Divergence, {Divergence::forward_kl, "forward_kl"}, {Divergence::reverse_kl, "reverse_kl"},
                      {Divergence::jsd, "jsd"}, {Divergence::tvd, "tvd"});
ALIGNTRAIN_ENUM_NAMES(AlignDistilMode, {AlignDistilMode::published, "published"},
                      {AlignDistilMode::theorem1, "theorem1"}, {AlignDistilMode::contrast, "contrast"},
                      {AlignDistilMode::theorem1_adaptive, "theorem1_adaptive"});
ALIGNTRAIN_ENUM_NAMES(AlignDistilMask, {AlignDistilMask::standard, "standard"}, {AlignDistilMask::faithful, "faithful"});
ALIGNTRAIN_ENUM_NAMES(SelectMethod, {SelectMethod::zip_fit, "zip_fit"}, {SelectMethod::isa, "isa"});
ALIGNTRAIN_ENUM_NAMES(Covariance, {Covariance::diag, "diag"}, {Covariance::full, "full"});
ALIGNTRAIN_ENUM_NAMES(SelectPrefer, {SelectPrefer::rare, "rare"}, {SelectPrefer::common, "common"});
ALIGNTRAIN_ENUM_NAMES(LoraInit, {LoraInit::default_, "default"}, {LoraInit::gaussian, "gaussian"},
                      {LoraInit::zeros_b, "zeros_b"});
ALIGNTRAIN_ENUM_NAMES(LossType, {LossType::sft, "sft"}, {LossType::dpo, "dpo"}, {LossType::cdpo, "cdpo"},
                      {LossType::robust, "robust"}, {LossType::hinge, "hinge"}, {LossType::ipo, "ipo"},
                      {LossType::ln_dpo, "ln_dpo"}, {LossType::bco_pair, "bco_pair"}, {LossType::simpo, "simpo"},
                      {LossType::orpo, "orpo"}, {LossType::cpo, "cpo"}, {LossType::mapo, "mapo"},
                      {LossType::kto, "kto"}, {LossType::bco, "bco"}, {LossType::d2o, "d2o"}, {LossType::kd, "kd"},
                      {LossType::dckd, "dckd"}, {LossType::adpa, "adpa"}, {LossType::aligndistil, "aligndistil"},
                      {LossType::grpo, "grpo"}, {LossType::rloo, "rloo"}, {LossType::fdpg, "fdpg"});
ALIGNTRAIN_ENUM_NAMES(RewardType, {RewardType::exact_match, "exact_match"}, {RewardType::regex, "regex"},
                      {RewardType::length, "length"}, {RewardType::command, "command"},
                      {RewardType::model, "model"});
ALIGNTRAIN_ENUM_NAMES(RewardScaling, {RewardScaling::group, "group"}, {RewardScaling::batch, "batch"},
                      {RewardScaling::none, "none"});
ALIGNTRAIN_ENUM_NAMES(GrpoAggregation, {GrpoAggregation::grpo, "grpo"}, {GrpoAggregation::bnpo, "bnpo"},
                      {GrpoAggregation::dapo, "dapo"}, {GrpoAggregation::dr_grpo, "dr_grpo"});
ALIGNTRAIN_ENUM_NAMES(ImportanceLevel, {ImportanceLevel::token, "token"}, {ImportanceLevel::sequence, "sequence"});
ALIGNTRAIN_ENUM_NAMES(FdpgTarget, {FdpgTarget::constraint, "constraint"}, {FdpgTarget::reward, "reward"});
#undef ALIGNTRAIN_ENUM_NAMES

template <class E>
std::string_view name_of(E value) {
  for (const auto& [v, name] : EnumNames<E>::items)
    if (v == value) return name;
  return "?";
}

template <class E, class = decltype(EnumNames<E>::items)>
std::string to_string(E value) {
  return std::string(name_of(value));
}

template <class E>
std::optional<E> parse_enum(std::string_view text) {
  for (const auto& [v, name] : EnumNames<E>::items)
    if (name == text) return v;
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// run, parallel

struct RunConfig {
  std::string name;        // empty: the recipe file's stem
  std::string output_dir;  // empty: runs/<name> beside the recipe; relative paths resolve against the recipe folder
  int seed = 1234;
  Device device = Device::auto_;
  Precision precision = Precision::fp32;
  int threads = 0;  // intra-op threads per rank; 0 = cores / ranks on the node
};

struct ParallelConfig {
  int tensor = 1;      // TP degree; data-parallel degree = world_size / tensor
  bool zero1 = false;  // shard optimizer state over the data-parallel group
  int bucket_mb = 25;  // gradient all-reduce bucket size
  bool overlap_grad_reduce = true;  // launch each bucket's all-reduce during the backward pass (bitwise the same)
  int logits_mb = 128;  // LM-head logits held at once, per chunk of positions (kernels::logits_chunk_rows)
};

// ---------------------------------------------------------------------------------------------
// models

// Random initialisation from an embedded preset; explicit fields override the preset's values.
struct InitSpec {
  std::string preset;
  int seed = 0;
  std::optional<int> hidden_size;
  std::optional<int> num_layers;
  std::optional<int> num_heads;
  std::optional<int> num_kv_heads;
  std::optional<int> intermediate_size;
  std::optional<int> vocab_size;
  std::optional<int> max_position_embeddings;
  std::optional<bool> tie_word_embeddings;
};

// LoRA adapters on a model (PEFT's LoraConfig): the base weights are frozen and only the adapters train.
// Each targeted linear map W becomes W x + scaling · B A dropout(x), scaling = alpha / rank (alpha / √rank with
// rslora). Defaults are PEFT's, except the targets (PEFT's Llama default is q_proj, v_proj, kept here).
struct LoraConfig {
  int rank = 8;
  double alpha = 8.0;
  double dropout = 0.0;  // on the adapter input only
  std::vector<std::string> targets = {"q_proj", "v_proj"};  // module names, or the single name all-linear
  bool rslora = false;
  // default: A ~ U(±1/√in) (kaiming-uniform, a = √5), B = 0 (PEFT's init_lora_weights=True); gaussian: A ~ N(0, std
  // 1/rank), B = 0 (PEFT's "gaussian"); zeros_b: an alias of default (the name says which factor starts at zero).
  LoraInit init = LoraInit::default_;
  bool merge = false;  // also write the merged model to <stage>/model (the adapter is always in <stage>/adapter)
};

// Exactly one of `path` (an HF model dir) and `init` is set.
struct ModelSpec {
  std::string path;
  std::optional<InitSpec> init;
  std::string revision;   // `path` naming a model in the Hugging Face cache (org/name): a ref or commit; empty: main
  std::string tokenizer;  // "byte" or a folder with tokenizer.json; empty: the model dir's own (path) or byte (init)
  std::string chat_template = "auto";  // auto (the model's own), chatml, llama3, plain, or a .jinja file
  std::optional<Precision> dtype;  // storage dtype of this model when frozen; unset: run.precision
  std::optional<LoraConfig> lora;  // train LoRA adapters on this model (exclusive with `adapter`)
  std::string adapter;             // a PEFT LoRA adapter folder on `path`; its adapter_config.json sets the LoRA
};

// A named model with insertion order kept (YAML maps are ordered in the recipe).
template <class T>
struct Ordered {
  std::vector<std::pair<std::string, T>> items;

  const T* find(std::string_view name) const {
    for (const auto& [n, v] : items)
      if (n == name) return &v;
    return nullptr;
  }
};

// ---------------------------------------------------------------------------------------------
// stages

// A frozen model used by a stage: a declared model or an earlier stage. In YAML either a plain name or
// `{model: NAME, precompute: true}`, which caches its per-example outputs before training.
struct ModelRef {
  std::string model;
  bool precompute = false;
};

// Free-form values kept as the text of a JSON object (a YAML map in the recipe), e.g. chat template variables.
struct JsonObject {
  std::string json = "{}";
  bool operator==(const JsonObject& other) const { return json == other.json; }
};

struct DataConfig {
  std::string train;  // a JSONL file, or the name of an earlier generate/select stage (its output)
  std::string eval;
  DataFormat format = DataFormat::auto_;
  bool skip_invalid = false;
  Truncate truncate = Truncate::right;
  bool train_on_prompt = false;  // sft: also take loss on prompt tokens
  bool assistant_only_loss = false;  // sft, message lists: loss on every assistant turn (TRL's), not only the last
  JsonObject chat_template_kwargs;   // extra chat template variables, e.g. {enable_thinking: false}
  bool packing = false;          // sft: pack several examples per row
  std::string samples;           // negatives: self-generated samples (JSONL or an earlier generate stage)
  std::optional<int> num_samples;  // negatives: K samples per prompt; unset: all (or the generate stage's K)
};

struct OptimizerConfig {  // AdamW
  std::optional<double> lr;  // unset: default_lr(kind)
  double weight_decay = 0.0;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8;
  double grad_clip = 1.0;  // global-norm clip; 0 = off
};

struct ScheduleConfig {
  int warmup_steps = 0;
  double warmup_ratio = 0.0;  // fraction of the stage's steps; exclusive with warmup_steps
  Decay decay = Decay::linear;
  double min_lr_ratio = 0.0;
};

struct BatchConfig {
  int global = 32;  // sequences per optimizer step over all data-parallel ranks
  int micro = 4;    // sequences per forward/backward on one rank
  int max_length = 1024;
  std::optional<int> max_prompt_length;  // unset: default_max_prompt_length(max_length)
};

struct TrainConfig {  // exactly one of epochs and steps; neither: epochs = 1
  std::optional<int> epochs;
  std::optional<int> steps;
};

struct EvalConfig {
  int every_steps = 0;       // training stages: 0 = evaluate at the end of the stage only
  bool exact_match = false;  // eval stages: greedy completions of data.eval's prompts compared with its completions
};

struct CheckpointConfig {
  int every_steps = 100;  // 0: only at the end of the stage
  int keep_last = 2;
};

struct LogConfig {
  int every_steps = 10;
  bool tensorboard = false;  // also write TensorBoard event files to <output_dir>/tensorboard/<stage>/
};

// Loss parameters, named as in TRL and the method papers (METHODS.md). A parameter is set only when one
// of the stage's loss types uses it (fields.h says which); the others keep these defaults and are not
// shown in the resolved recipe.
struct LossConfig {
  std::vector<LossType> type;  // YAML: a name or a list; unset: default_loss_types(kind)
  std::vector<double> weights;  // one per type; unset: all 1

  // preference / unpaired / negatives
  std::optional<double> beta;   // unset: default_beta(first type that uses beta)
  double label_smoothing = 0.0;  // cdpo, robust, cpo: epsilon in [0, 0.5)
  bool ipo_raw = false;          // ipo: unnormalised (h - 1/(2 beta))^2 instead of TRL's length-normalised form
  double gamma_beta_ratio = 0.25;  // simpo: target margin gamma / beta (official SimPO)
  double cpo_alpha = 1.0;          // cpo: weight of the NLL term (TRL)
  double alpha = 0.0;              // cpo: AlphaPO reward shape; 0 = off
  double orpo_lambda = 0.1;        // orpo: weight of the odds-ratio term (TRL `beta`)
  bool orpo_prompt_in_nll = true;  // orpo: NLL over prompt + response, as TRL and xfactlab/orpo do
  double mapo_snr = 0.5;           // mapo: s
  double mapo_timesteps = 1.0;     // mapo: T
  double desirable_weight = 1.0;   // kto
  double undesirable_weight = 1.0;  // kto
  std::string udm_model;            // bco: frozen embedding model for UDM; empty = no UDM
  int prompt_sample_size = 1024;    // bco UDM
  double min_density_ratio = 0.5;   // bco UDM
  double max_density_ratio = 10.0;  // bco UDM
  double d2o_alpha = 0.1;           // d2o: weight of the negative-response term

  // distillation
  Divergence divergence = Divergence::forward_kl;  // kd
  double jsd_beta = 0.5;                           // kd with divergence jsd (TRL GKD `beta`)
  double temperature = 1.0;                        // kd, aligndistil: softmax temperature of the loss
  double kd_ratio = 1.0;       // kd, aligndistil: loss = (1 - kd_ratio)·NLL + kd_ratio·distillation
  std::optional<double> lmbda;  // kd, aligndistil: fraction of steps on student samples; unset: 0.5 for kd (TRL
                                // GKD), 0 for aligndistil (off-policy, the published setting)
  double sft_weight = 1.0;     // dckd, adpa: weight of the NLL on the chosen response
  int top_k = 50;              // dckd, adpa: teacher table size
  double chosen_distil_weight = 0.1;    // dckd
  double rejected_distil_weight = 0.1;  // dckd
  double adpa_weight = 1.6;             // adpa
  bool adpa_clamp_targets = true;       // adpa: clamp advantages to [1e-8, 1-1e-8] as the released code does
  bool adpa_importance_sampling = false;  // adpa
  double kl_penalty_weight = 0.0;         // adpa: needs a reference
  AlignDistilMode aligndistil_mode = AlignDistilMode::published;
  double aligndistil_beta2 = 10.0;  // beta_2 (10 off-policy, 15 on-policy in the published scripts)
  AlignDistilMask aligndistil_mask = AlignDistilMask::standard;
  bool aligndistil_len_norm = true;  // seq-token mean (--reward_len_norm)
};

// Sampling for generate stages and for on-policy distillation.
struct GenerationConfig {
  int max_new_tokens = 128;
  double temperature = 1.0;  // 0 = greedy
  double top_p = 1.0;
  int top_k = 0;  // 0 = off
  int num_samples = 1;
  std::optional<int> seed;  // unset: run.seed
  std::string out;          // empty: <output_dir>/<stage>/generations.jsonl
};

// Data selection (METHODS.md E): data.train is the candidate pool; the stage writes the kept lines.
struct SelectConfig {
  SelectMethod method = SelectMethod::zip_fit;
  std::string target;           // zip_fit: JSONL of target examples
  std::string embedding_model;  // isa: a declared model or earlier stage
  std::optional<double> keep_fraction;  // unset: 0.1, unless `keep` is set
  std::optional<int> keep;              // a count instead of the fraction
  // Which fields make an example's text, '+'-joined, concatenated without separator ("prompt+completion"); empty:
  // by the file's kind (prompt+completion, prompt+chosen for pairs, prompt+rejected for negatives, prompt).
  std::string text;
  std::string out;  // empty: <output_dir>/<stage>/selected.jsonl
  // isa (METHODS.md E.2; its assumptions made options): the Gaussian mixture and the ranking.
  Covariance covariance = Covariance::diag;
  int components = 2;
  int max_iter = 100;
  double tol = 1e-3;
  double reg_covar = 1e-6;
  SelectPrefer prefer = SelectPrefer::rare;  // rare: highest entropy change (surprisal) first
  bool save_embeddings = false;              // <stage>/embeddings.safetensors

  double fraction() const { return keep_fraction.value_or(0.1); }
};

// One reward of an online stage; a sample's reward is the weighted sum of the stage's rewards.
struct RewardSpec {
  RewardType type = RewardType::exact_match;
  double weight = 1.0;
  std::string pattern;   // regex: ECMAScript pattern searched in the completion text
  double score = 1.0;    // regex: the reward when the pattern matches (0 otherwise)
  int target = 0;        // length: completion tokens aimed at
  double penalty = 0.01;  // length: reward −penalty·|tokens − target|
  std::string command;   // command: run by /bin/sh -c (objectives/command_reward.h)
  double timeout = 60;   // command: seconds for one step's samples
  std::string model;     // model: a key of `models:` naming an HF <Family>ForSequenceClassification folder
};

// Online stages (kind online): sampling, scoring and the clipped or f-divergence update (METHODS.md §G, §D.2).
// Named as TRL's GRPOConfig / RLOOConfig names them where they exist.
struct OnlineConfig {
  int num_samples = 8;        // completions per prompt (TRL num_generations)
  int updates_per_batch = 1;  // optimizer steps on each batch of samples (TRL num_iterations)
  double epsilon = 0.2;       // clip range low (and high unless epsilon_high)
  std::optional<double> epsilon_high;
  std::optional<double> beta;  // KL coefficient: grpo 0 (no reference), rloo 0.05; fdpg with target reward: the
                               // temperature of P = a·exp(r/β), default 0.1
  RewardScaling scale_rewards = RewardScaling::group;                 // grpo
  GrpoAggregation aggregation = GrpoAggregation::dapo;               // grpo (TRL loss_type)
  ImportanceLevel importance_sampling_level = ImportanceLevel::token;  // grpo
  bool normalize_advantages = false;                                   // rloo
  Divergence divergence = Divergence::jsd;         // fdpg: forward_kl, reverse_kl, jsd, tvd
  FdpgTarget target = FdpgTarget::constraint;      // fdpg: P = a·b (b = [reward > 0]) or a·exp(reward/β)
  int baseline_window = 1024;                      // fdpg: the moving-average baseline's window
  std::vector<RewardSpec> rewards;
};

struct StageConfig {
  std::string name;
  StageKind kind = StageKind::sft;
  std::string policy;
  std::optional<ModelRef> reference;
  std::optional<ModelRef> teacher;
  std::optional<ModelRef> teacher_reference;
  DataConfig data;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  BatchConfig batch;
  TrainConfig train;
  EvalConfig eval;
  CheckpointConfig checkpoint;
  LogConfig log;
  bool activation_checkpointing = false;
  // Training stages: fresh LoRA adapters on the policy (its settings replace those of a policy model's own `lora`);
  // unset: the policy's own adapters, if any.
  std::optional<LoraConfig> lora;
  LossConfig loss;
  GenerationConfig generation;
  SelectConfig select;
  OnlineConfig online;
};

struct Recipe {
  RunConfig run;
  ParallelConfig parallel;
  Ordered<ModelSpec> models;
  std::vector<StageConfig> stages;

  // Not part of the recipe's content (not emitted, not compared).
  std::string path;    // absolute path of the recipe file
  std::string folder;  // its folder: relative paths in the recipe resolve against it
  SourceMap sources;   // where each key came from, for diagnostics after loading
};

// ---------------------------------------------------------------------------------------------
// Defaults that depend on another field, and the stage-kind tables.

// Stage kinds that train the policy (and so make a model named after the stage).
inline constexpr StageKind kTrainingKinds[] = {StageKind::sft, StageKind::preference, StageKind::unpaired,
                                               StageKind::negatives, StageKind::distill, StageKind::online};

inline bool is_training(StageKind k) {
  for (StageKind t : kTrainingKinds)
    if (t == k) return true;
  return false;
}

// Loss types a stage of kind k may use (its loss.type list must be a subset).
inline std::vector<LossType> allowed_loss_types(StageKind k) {
  using L = LossType;
  switch (k) {
    case StageKind::sft: return {L::sft};
    case StageKind::preference:
      return {L::dpo, L::cdpo, L::robust, L::hinge, L::ipo, L::ln_dpo, L::bco_pair,
              L::simpo, L::orpo, L::cpo, L::mapo, L::sft};
    case StageKind::unpaired: return {L::kto, L::bco};
    case StageKind::negatives: return {L::d2o};
    case StageKind::distill: return {L::kd, L::dckd, L::adpa, L::aligndistil, L::sft};
    case StageKind::online: return {L::grpo, L::rloo, L::fdpg};
    case StageKind::eval:
      return {L::sft, L::dpo, L::cdpo, L::robust, L::hinge, L::ipo, L::ln_dpo, L::bco_pair,
              L::simpo, L::orpo, L::cpo, L::mapo};
    case StageKind::generate:
    case StageKind::select: return {};
  }
  return {};
}

// loss.type when the recipe leaves it out. Empty: the recipe must name one (distill).
inline std::vector<LossType> default_loss_types(StageKind k) {
  switch (k) {
    case StageKind::sft: return {LossType::sft};
    case StageKind::preference: return {LossType::dpo};
    case StageKind::unpaired: return {LossType::kto};
    case StageKind::negatives: return {LossType::d2o};
    case StageKind::eval: return {LossType::sft};
    case StageKind::online: return {LossType::grpo};
    default: return {};
  }
}

// Loss types that need no frozen reference model.
inline bool is_reference_free(LossType t) {
  return t == LossType::simpo || t == LossType::orpo || t == LossType::cpo || t == LossType::mapo ||
         t == LossType::sft;
}

// Loss types that use `beta`, with their default (METHODS.md: TRL defaults; SimPO's official 2.0).
inline std::optional<double> default_beta(LossType t) {
  switch (t) {
    case LossType::simpo: return 2.0;
    case LossType::sft:
    case LossType::orpo:
    case LossType::kd:
    case LossType::dckd:
    case LossType::adpa:
    case LossType::grpo:  // online losses: online.beta
    case LossType::rloo:
    case LossType::fdpg: return std::nullopt;
    default: return 0.1;  // DPO family, CPO, MaPO, KTO, BCO, D2O, AlignDistil
  }
}

// optimizer.lr when the recipe leaves it out (TRL's trainer defaults; ADPA's 5e-7 for distillation).
inline double default_lr(StageKind k) {
  switch (k) {
    case StageKind::sft: return 2e-5;
    case StageKind::distill: return 5e-7;
    default: return 1e-6;
  }
}

// "an sft stage", "a preference stage": for messages.
inline std::string a_stage(StageKind k) {
  const bool vowel_sound = k == StageKind::sft || k == StageKind::unpaired || k == StageKind::eval ||
                           k == StageKind::online;
  return std::string(vowel_sound ? "an " : "a ") + std::string(name_of(k)) + " stage";
}

// online.beta when the recipe leaves it out (TRL's GRPO 0.0 and RLOO 0.05; f-DPG's reward target 0.1).
inline double default_online_beta(LossType t) {
  return t == LossType::rloo ? 0.05 : t == LossType::fdpg ? 0.1 : 0.0;
}

// batch.max_prompt_length when the recipe leaves it out: half the sequence (TRL: 512 of 1024).
inline int default_max_prompt_length(int max_length) { return std::max(1, max_length / 2); }

inline constexpr std::string_view kByteTokenizer = "byte";

// `models.<name>.chat_template` values that name a template rather than a .jinja file.
inline bool is_named_chat_template(std::string_view value) {
  return value == "auto" || value == "chatml" || value == "llama3" || value == "plain";
}

// `reference: base`: the policy's own base model with its LoRA adapters off (no second copy of the weights), unless
// a model or stage is itself named `base`.
inline constexpr std::string_view kPolicyBase = "base";

inline bool is_policy_base(const Recipe& r, const std::string& name) {
  if (name != kPolicyBase || r.models.find(name)) return false;
  return std::none_of(r.stages.begin(), r.stages.end(), [&](const StageConfig& s) { return s.name == name; });
}

// True if the model `name` (a declared model, or a stage through its own `lora` or its policy) has LoRA adapters.
inline bool has_lora(const Recipe& r, const std::string& name, int depth = 0) {
  if (const ModelSpec* m = r.models.find(name)) return m->lora.has_value() || !m->adapter.empty();
  if (depth > static_cast<int>(r.stages.size())) return false;
  for (const auto& s : r.stages)
    if (s.name == name) return is_training(s.kind) && (s.lora.has_value() || has_lora(r, s.policy, depth + 1));
  return false;
}

// Where the model `name` gets trained LoRA adapters from: "models.<name>.adapter" (a PEFT folder), "stage `<s>`" (an
// earlier LoRA stage, which trains them); empty when it has none (no adapters, or a declared `lora` not yet trained).
inline std::string trained_adapters_of(const Recipe& r, const std::string& name) {
  if (const ModelSpec* m = r.models.find(name)) return m->adapter.empty() ? "" : "models." + name + ".adapter";
  for (const auto& s : r.stages)
    if (s.name == name) return is_training(s.kind) && has_lora(r, name) ? "stage `" + name + "`" : "";
  return "";
}

}  // namespace aligntrain::config
