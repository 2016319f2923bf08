// See distill.h.
#include "trainer/stages/distill.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "data/collate.h"
#include "data/example.h"
#include "kernels/kd_divergence.h"
#include "trainer/errors.h"
#include "trainer/generation/generator.h"
#include "trainer/generation/completions.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/safetensors_torch.h"
#include "trainer/objectives/distill.h"
#include "trainer/parallel/vocab_parallel.h"
#include "trainer/stages/models.h"
#include "trainer/stages/preference.h"
#include "trainer/stages/responses.h"
#include "trainer/stages/train_loop.h"

namespace aligntrain::stages {

namespace {

namespace fs = std::filesystem;

using config::LossType;

enum class Method { kd, dckd, adpa, aligndistil };

Method method_of(const config::StageConfig& stage) {
  std::optional<Method> m;
  for (LossType t : stage.loss.type) {
    Method x = Method::kd;
    switch (t) {
      case LossType::kd: x = Method::kd; break;
      case LossType::dckd: x = Method::dckd; break;
      case LossType::adpa: x = Method::adpa; break;
      case LossType::aligndistil: x = Method::aligndistil; break;
      default:
        throw UsageError("stage '" + stage.name + "': loss type " + config::to_string(t) +
                         " in a distill stage: the NLL term is each method's own weight (kd_ratio, sft_weight)");
    }
    if (m) throw UsageError("stage '" + stage.name + "': one distillation loss type per stage (got several)");
    m = x;
  }
  if (!m) throw UsageError("stage '" + stage.name + "': a distill stage needs loss.type (kd, dckd, adpa or aligndistil)");
  return *m;
}

// Teacher and student must number tokens alike: same tokenizer (every token string and the special ids) and the
// same vocabulary width (distributions are compared id by id on sharded logits).
void check_shared_tokenizer(const config::StageConfig& stage, const ModelSource& student, const ModelSource& teacher,
                            const char* role) {
  const auto a = data::load_tokenizer(student.tokenizer_dir), b = data::load_tokenizer(teacher.tokenizer_dir);
  std::string why;
  if (a->vocab_size() != b->vocab_size()) {
    why = "its tokenizer has " + std::to_string(b->vocab_size()) + " tokens, the student's " +
          std::to_string(a->vocab_size());
  } else if (a->bos_id() != b->bos_id() || a->eos_id() != b->eos_id() || a->pad_id() != b->pad_id()) {
    why = "its BOS/EOS/PAD ids differ from the student's";
  } else {
    for (int id = 0; id < a->vocab_size() && why.empty(); ++id) {
      const auto x = a->id_to_token(id), y = b->id_to_token(id);
      if (x != y) {
        why = "token id " + std::to_string(id) + " is '" + y.value_or("(none)") + "' for it and '" +
              x.value_or("(none)") + "' for the student";
      }
    }
  }
  if (why.empty() && teacher.config.vocab_size != student.config.vocab_size) {
    why = "its vocab_size is " + std::to_string(teacher.config.vocab_size) + ", the student's " +
          std::to_string(student.config.vocab_size);
  }
  if (!why.empty()) {
    throw UsageError("stage '" + stage.name + "': " + role + " '" + teacher.name + "' does not share the student's ('" +
                     student.name + "') tokenizer: " + why +
                     ". Distillation compares the two distributions token id by token id, so teacher and student "
                     "must use one tokenizer");
  }
}

// Whether the first non-empty line of a JSONL file is an object with `field` (false when unreadable: the reader
// reports that).
bool first_line_has(const std::string& path, const char* field) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      return j.is_object() && j.contains(field);
    } catch (const nlohmann::json::exception&) {
      return false;
    }
  }
  return false;
}

// The examples of a distill stage: responses (NLL/KD target, second response) per method.
ResponseSet load_distill_data(const std::string& path, const config::StageConfig& stage, Method method,
                              const data::Tokenizer& tok, const ModelSource& src) {
  if (method == Method::dckd) return load_pair_data(path, stage, tok, src.chat_template, src.weights_dir);
  if (method == Method::adpa) {
    // The student's response ŷ is "completion" (what a generate stage adds to a pairs file); a file without it is
    // read as pairs whose "rejected" holds ŷ, the layout of the released ADPA code.
    if (!first_line_has(path, "completion")) {
      return encode_responses(path, stage, tok, src.chat_template, src.weights_dir,
                              read_stage_examples(path, stage, data::DataKind::kPreference), 2,
                              [](const data::Example& ex) {
                                return std::vector<const data::Text*>{&*ex.chosen, &*ex.rejected};
                              });
    }
    const auto examples = read_stage_examples(path, stage, data::DataKind::kSft);
    for (const auto& ex : examples) {
      if (!ex.chosen) {
        throw DataError(path + ":" + std::to_string(ex.line) +
                        ": chosen: missing field (ADPA trains NLL on the reference answer \"chosen\" and the "
                        "advantage term on the student's own \"completion\")");
      }
    }
    return encode_responses(path, stage, tok, src.chat_template, src.weights_dir, examples, 2,
                            [](const data::Example& ex) {
                              return std::vector<const data::Text*>{&*ex.chosen, &*ex.completion};
                            });
  }
  // kd, aligndistil: completions, or the chosen responses of pairs.
  const auto examples = read_stage_examples(path, stage, data::DataKind::kAuto);
  for (const auto& ex : examples) {
    if (!ex.completion && !ex.chosen) {
      throw DataError(path + ":" + std::to_string(ex.line) + ": completion: missing field (or \"chosen\" of a pair)");
    }
  }
  return encode_responses(path, stage, tok, src.chat_template, src.weights_dir, examples, 1,
                          [](const data::Example& ex) {
                            return std::vector<const data::Text*>{ex.completion ? &*ex.completion : &*ex.chosen};
                          });
}

uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

at::Tensor as_tensor(const std::vector<int64_t>& v, int64_t rows, int64_t length, const at::Device& device) {
  return at::tensor(v, at::kLong).view({rows, length}).to(device);
}

struct Sums {
  double nll = 0, distill0 = 0, distill1 = 0;
};

// A teacher's top-k tables at every response-token position of the responses it is needed for, computed once before
// training (DCKD, ADPA with `precompute: true`). Rows of item (example i, column c) start at offsets[i·width + c].
struct TableStore {
  std::vector<int64_t> offsets;  // set.size()·width + 1
  at::Tensor indices, probs, remaining;  // [P, k] int64, [P, k] fp32, [P] fp32 (CPU)

  objectives::TeacherTable rows(const at::Tensor& row_ids, const at::Device& device) const {
    return {indices.index_select(0, row_ids).to(device), probs.index_select(0, row_ids).to(device),
            remaining.index_select(0, row_ids).to(device)};
  }
};

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

// Table rows of the response positions of examples `index` in column c, in the order the stage selects them.
at::Tensor table_rows(const std::vector<int64_t>& offsets, const ResponseSet& set, const std::vector<int64_t>& index,
                      int64_t c) {
  std::vector<int64_t> rows;
  for (int64_t i : index) {
    const size_t k = static_cast<size_t>(i * set.width + c);
    for (int64_t r = offsets[k]; r < offsets[k + 1]; ++r) rows.push_back(r);
  }
  return at::tensor(rows, at::kLong);
}

// Computes (DP-parallel) or reads the tables of `teacher_src` for `columns` of `set`. Collective over the world.
TableStore precompute_tables(StageEnv& env, const config::StageConfig& stage, const ModelSource& teacher_src,
                             const ResponseSet& set, const std::vector<int64_t>& columns, int32_t pad) {
  TableStore t;
  t.offsets = table_offsets(set, columns);
  const int64_t rows = t.offsets.back(), k = stage.loss.top_k;
  const auto dtype = frozen_dtype(env.recipe, teacher_src.name);
  std::string cols;
  for (int64_t c : columns) cols += std::to_string(c) + ",";
  const std::string key = frozen_outputs_key(env.recipe, stage, teacher_src, set, dtype,
                                             "teacher-table|k:" + std::to_string(k) + "|columns:" + cols);
  const fs::path file = fs::path(env.recipe.run.output_dir) / "cache" / ("teacher-" + key + ".safetensors");
  auto read = [&]() -> bool {
    if (!fs::exists(file)) return false;
    try {
      for (const auto& [name, x] : model::load_safetensors(file.string())) {
        if (name == "indices") t.indices = x.to(at::kLong);
        if (name == "probs") t.probs = x.to(at::kFloat);
        if (name == "remaining") t.remaining = x.to(at::kFloat);
      }
    } catch (const std::exception& e) {
      spdlog::warn("ignoring unreadable teacher table cache {}: {}", file.string(), e.what());
      return false;
    }
    return t.indices.defined() && t.probs.defined() && t.remaining.defined() && t.indices.size(0) == rows &&
           t.indices.size(1) == k && t.probs.sizes() == t.indices.sizes() && t.remaining.size(0) == rows;
  };
  if (env.world.all_ok(read())) {
    spdlog::info("[{}] top-{} tables of '{}' on {} from cache {}", stage.name, k, teacher_src.name, set.path,
                 file.string());
    return t;
  }
  spdlog::info("[{}] precomputing top-{} tables of '{}' on {} ({} positions)", stage.name, k, teacher_src.name, set.path,
               rows);
  auto loaded = load_model(teacher_src, env.groups, env.device, dtype);
  at::NoGradGuard no_grad;
  t.indices = at::zeros({rows, k}, at::kLong);
  t.probs = at::zeros({rows, k}, at::kFloat);
  t.remaining = at::zeros({rows}, at::kFloat);
  const int dp = env.groups.layout.dp;
  std::vector<int64_t> mine;
  auto flush = [&] {
    for (int64_t c : columns) {
      if (mine.empty()) break;
      std::vector<std::vector<const data::Encoded*>> batch_rows;
      for (int64_t i : mine) batch_rows.push_back({&set.at(i, c)});
      const auto b = data::collate(batch_rows, data::CollateOptions{pad, false});
      const auto ids = as_tensor(b.input_ids, b.rows, b.length, env.device);
      model::ForwardInput in{ids, std::nullopt, std::nullopt, std::nullopt};
      if (b.tokens < b.rows * b.length) in.attention_mask = as_tensor(b.attention_mask, b.rows, b.length, env.device);
      const auto labels = model::shift_labels(ids, as_tensor(b.loss_mask, b.rows, b.length, env.device));
      const auto sel = labels.ne(model::kIgnoreIndex).reshape({-1}).nonzero().squeeze(-1);
      const auto h = loaded.lm->hidden_states(in);
      const auto h_sel = h.reshape({-1, h.size(-1)}).index_select(0, sel);
      const auto dest = table_rows(t.offsets, set, mine, c);
      const auto table = objectives::teacher_table(loaded.lm->lm_head_forward(h_sel), k, *env.groups.tp);
      t.indices.index_copy_(0, dest, table.indices.to(at::kCPU));
      t.probs.index_copy_(0, dest, table.probs.to(at::kCPU, at::kFloat));
      t.remaining.index_copy_(0, dest, table.remaining.to(at::kCPU, at::kFloat));
    }
    mine.clear();
  };
  for (int64_t i = env.groups.layout.dp_rank; i < set.size(); i += dp) {
    mine.push_back(i);
    if (static_cast<int64_t>(mine.size()) == stage.batch.micro) flush();
  }
  flush();
  if (dp > 1) {  // every row was computed by exactly one replica
    for (at::Tensor* x : {&t.indices, &t.probs, &t.remaining}) {
      auto d = x->to(env.device);
      env.groups.dp->all_reduce(d, runtime::ReduceOp::kSum);
      *x = d.to(at::kCPU);
    }
  }
  if (env.world.is_root()) {
    fs::create_directories(file.parent_path());
    model::save_safetensors(file.string(), {{"indices", t.indices}, {"probs", t.probs}, {"remaining", t.remaining}},
                            {{"key", key}, {"data", set.path}, {"teacher", teacher_src.name}});
  }
  env.world.barrier();
  return t;  // the teacher model is freed here
}

// A frozen teacher of a stage: resident (its final hidden states at the selected positions are computed per
// micro-batch) or precomputed tables of the training and eval sets.
struct Teacher {
  model::CausalLM* lm = nullptr;
  std::optional<TableStore> train, eval;
};

class DistillObjective : public TrainObjective {
 public:
  DistillObjective(StageEnv& env, const config::StageConfig& stage, Method method, model::CausalLM& student,
                   const Teacher& teacher, const Teacher* teacher_ref, const ResponseSet& train,
                   const data::Tokenizer& tok)
      : env_(env), stage_(stage), method_(method), lm_(student), teacher_(teacher), ref_(teacher_ref), train_(train),
        tok_(tok), pad_(collate_options(tok, stage).pad_id) {}

  int64_t num_examples() const override { return train_.size(); }
  const std::vector<int64_t>& lengths() const override { return no_lengths_; }

  void begin_step(const data::StepRows& step) override {
    samples_.clear();
    on_policy_ = false;
    const double lmbda = stage_.loss.lmbda.value_or(0.0);
    if ((method_ == Method::kd || method_ == Method::aligndistil) && lmbda > 0) {
      const uint64_t seed = static_cast<uint64_t>(stage_.generation.seed.value_or(0));
      const double u = static_cast<double>(mix(seed ^ mix(static_cast<uint64_t>(step.begin))) >> 11) * 0x1.0p-53;
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

  StepMetrics end_step() override {
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
    std::vector<int64_t> mine;
    auto flush = [&] {
      for (int64_t c = 0; c < set.width && !mine.empty(); ++c) column(set, mine, c, /*train=*/false, sums);
      mine.clear();
    };
    for (int64_t i = r; i < set.size(); i += dp) {
      mine.push_back(i);
      if (static_cast<int64_t>(mine.size()) == stage_.batch.micro) flush();
    }
    flush();
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

  double nll_weight(int64_t c) const {
    switch (method_) {
      case Method::kd:
      case Method::aligndistil: return c == 0 ? 1.0 - stage_.loss.kd_ratio : 0.0;
      case Method::dckd:
      case Method::adpa: return c == 0 ? stage_.loss.sft_weight : 0.0;
    }
    return 0.0;
  }
  double distill_weight(int64_t c) const {
    const auto& l = stage_.loss;
    switch (method_) {
      case Method::kd:
      case Method::aligndistil: return c == 0 ? l.kd_ratio : 0.0;
      case Method::dckd: return c == 0 ? l.chosen_distil_weight : l.rejected_distil_weight;
      case Method::adpa: return c == 1 ? l.adpa_weight : 0.0;
    }
    return 0.0;
  }

  // Loss terms of response column c of examples `index`: adds each term's share of the global mean to `sums` and,
  // when training, back-propagates the weighted sum (scaled for the data-parallel gradient average).
  void column(const ResponseSet& set, const std::vector<int64_t>& index, int64_t c, bool train, Sums& sums) {
    const double w_nll = nll_weight(c), w_dist = distill_weight(c);
    const bool want_nll = c == 0, want_dist = w_dist > 0 || (method_ == Method::adpa ? c == 1 : c == 0);
    std::vector<std::vector<const data::Encoded*>> rows;
    for (int64_t i : index) rows.push_back({&item(set, i, c)});
    const auto b = data::collate(rows, data::CollateOptions{pad_, false});
    const auto& dev = env_.device;
    const auto ids = as_tensor(b.input_ids, b.rows, b.length, dev);
    model::ForwardInput in{ids, std::nullopt, std::nullopt, std::nullopt};
    if (b.tokens < b.rows * b.length) in.attention_mask = as_tensor(b.attention_mask, b.rows, b.length, dev);
    const auto loss_mask = as_tensor(b.loss_mask, b.rows, b.length, dev);
    const auto labels = model::shift_labels(ids, loss_mask);
    auto& tp = *env_.groups.tp;
    const double tokens = static_cast<double>(std::max<int64_t>(tokens_[static_cast<size_t>(c)], 1));

    const auto hidden = lm_.hidden_states(in);
    at::Tensor total = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(dev));
    if (want_nll) {
      // Only a metric when its weight is 0: no graph, so its log-softmax blocks are not kept for a backward.
      std::optional<at::NoGradGuard> metric_only;
      if (w_nll <= 0) metric_only.emplace();
      const auto nll = -parallel::token_logprobs(lm_, hidden, labels, tp).sum() / tokens;
      sums.nll += nll.item<double>();
      if (w_nll > 0) total = total + w_nll * nll;
    }
    if (want_dist) {
      // Positions whose distributions the divergence compares: those predicting a response token, or (AlignDistil's
      // faithful mask) the response tokens' own positions.
      const bool faithful = method_ == Method::aligndistil && stage_.loss.aligndistil_mask == config::AlignDistilMask::faithful;
      const auto pos_mask = faithful ? loss_mask.to(at::kBool) : labels.ne(model::kIgnoreIndex);
      const auto sel = pos_mask.reshape({-1}).nonzero().squeeze(-1);
      const int64_t h = hidden.size(-1);
      const auto h_sel = hidden.reshape({-1, h}).index_select(0, sel);
      at::Tensor t_sel, r_sel;
      {
        at::NoGradGuard no_grad;
        if (teacher_.lm) {
          auto th = teacher_.lm->hidden_states(in);
          t_sel = th.reshape({-1, th.size(-1)}).index_select(0, sel);
        }
        if (ref_ && ref_->lm) {
          auto rh = ref_->lm->hidden_states(in);
          r_sel = rh.reshape({-1, rh.size(-1)}).index_select(0, sel);
        }
      }
      // Top-k tables of positions [start, start + n): from precomputed tables, or from the resident teacher.
      const at::Tensor rows = (teacher_.lm && (!ref_ || ref_->lm)) ? at::Tensor() : table_rows(offsets_of(teacher_), set, index, c);
      auto table_of = [&](const Teacher& who, const at::Tensor& who_sel, int64_t start, int64_t n) {
        if (who.lm) return objectives::teacher_table(who.lm->lm_head_forward(who_sel.narrow(0, start, n)), stage_.loss.top_k, tp);
        const auto& store = evaluating_ ? *who.eval : *who.train;
        return store.rows(rows.narrow(0, start, n), dev);
      };
      // Per-position weights: token mean over the global batch, or AlignDistil's mean over sequences of each
      // sequence's token mean (aligndistil_len_norm) or token sum.
      at::Tensor weights;
      if (method_ == Method::aligndistil) {
        const auto per_row = pos_mask.sum(1, /*keepdim=*/true).to(at::kFloat).clamp_min(1.0);  // [B, 1]
        auto w = stage_.loss.aligndistil_len_norm ? 1.0 / per_row : at::ones_like(per_row);
        w = (w / static_cast<double>(std::max<int64_t>(seqs_, 1))).expand_as(pos_mask);
        weights = w.reshape({-1}).index_select(0, sel).contiguous();
      } else {
        weights = at::full({sel.size(0)}, 1.0 / tokens, at::TensorOptions().dtype(at::kFloat).device(dev));
      }
      const auto& l = stage_.loss;
      const int64_t vocab = lm_.config().vocab_size;
      objectives::ChunkTerm term;
      objectives::ChunkGradTerm fused_term;  // kd: the fused kernel writes its own gradient
      switch (method_) {
        case Method::kd: {
          const auto div = static_cast<objectives::Divergence>(static_cast<int>(l.divergence));
          // The teacher's logits of every chunk go into one buffer (a frozen head: a plain product of its rows).
          const auto t_weight = teacher_.lm->lm_head->weight().detach();
          const int64_t rows = std::min(model::default_chunk_positions(lm_.lm_head->weight().size(0)), t_sel.size(0));
          const auto t_buffer = at::empty({rows, t_weight.size(0)}, t_weight.options());
          fused_term = [&, div, t_weight, t_buffer](at::Tensor& q, const at::Tensor& grad_weights, int64_t start,
                                                    int64_t n) {
            auto p = n <= t_buffer.size(0) ? t_buffer.narrow(0, 0, n) : at::empty({n, t_weight.size(0)}, t_weight.options());
            at::mm_out(p, t_sel.narrow(0, start, n).to(t_weight.scalar_type()), t_weight.t());
            return kernels::kd_divergence_rows(p, q, grad_weights, div, l.jsd_beta, l.temperature, tp);
          };
          break;
        }
        case Method::dckd:
          term = [&](const at::Tensor& q, int64_t start, int64_t n) {
            return objectives::dckd_kl(q, table_of(teacher_, t_sel, start, n), vocab, tp);
          };
          break;
        case Method::adpa:
          term = [&](const at::Tensor& q, int64_t start, int64_t n) {
            const auto dpo = table_of(teacher_, t_sel, start, n), ref = table_of(*ref_, r_sel, start, n);
            return objectives::adpa_term(q, objectives::adpa_advantages(dpo, ref), {l.adpa_clamp_targets, 1.0}, tp);
          };
          break;
        case Method::aligndistil: {
          objectives::AlignDistilOptions o;
          switch (l.aligndistil_mode) {
            case config::AlignDistilMode::published: o.mode = objectives::AlignDistilMode::aligndistil; break;
            case config::AlignDistilMode::theorem1: o.mode = objectives::AlignDistilMode::theorem1; break;
            case config::AlignDistilMode::contrast: o.mode = objectives::AlignDistilMode::theorem1_contrast; break;
            case config::AlignDistilMode::theorem1_adaptive:
              o.mode = objectives::AlignDistilMode::theorem1_adaptive;
              break;
          }
          o.beta = l.beta.value_or(0.1);
          o.beta2 = l.aligndistil_beta2;
          o.temperature = l.temperature;
          term = [&, o](const at::Tensor& q, int64_t start, int64_t n) {
            return objectives::aligndistil(q, teacher_.lm->lm_head_forward(t_sel.narrow(0, start, n)),
                                           ref_->lm->lm_head_forward(r_sel.narrow(0, start, n)), o, tp);
          };
          break;
        }
      }
      const auto d = fused_term ? objectives::chunked_token_loss(h_sel, *lm_.lm_head, weights, fused_term, tp)
                                : objectives::chunked_token_loss(h_sel, *lm_.lm_head, weights, term, tp);
      (c == 0 ? sums.distill0 : sums.distill1) += d.item<double>();
      if (w_dist > 0) total = total + w_dist * d;
    }
    if (train && total.requires_grad()) (total * static_cast<double>(env_.groups.layout.dp)).backward();
  }

  // Sums over the DP group into the metrics of the global batch.
  StepMetrics reduce(const Sums& s, const std::string& prefix) {
    auto t = at::tensor({s.nll, s.distill0, s.distill1}, at::kDouble).to(env_.device);
    env_.groups.dp->all_reduce(t, runtime::ReduceOp::kSum);
    t = t.to(at::kCPU);
    const double nll = t[0].item<double>(), d0 = t[1].item<double>(), d1 = t[2].item<double>();
    const auto& l = stage_.loss;
    StepMetrics m;
    switch (method_) {
      case Method::kd:
        m = {{"loss", (1 - l.kd_ratio) * nll + l.kd_ratio * d0}, {"nll", nll},
             {"kd/" + std::string(config::name_of(l.divergence)), d0}};
        break;
      case Method::aligndistil:
        m = {{"loss", (1 - l.kd_ratio) * nll + l.kd_ratio * d0}, {"nll", nll}, {"aligndistil", d0}};
        break;
      case Method::dckd:
        m = {{"loss", l.sft_weight * nll + l.chosen_distil_weight * d0 + l.rejected_distil_weight * d1},
             {"nll", nll}, {"kl/chosen", d0}, {"kl/rejected", d1}};
        break;
      case Method::adpa:
        m = {{"loss", l.sft_weight * nll + l.adpa_weight * d1}, {"nll", nll}, {"adpa", d1}};
        break;
    }
    if (!prefix.empty())
      for (auto& [k, v] : m) k = prefix + k;
    return m;
  }

  StageEnv& env_;
  const config::StageConfig& stage_;
  Method method_;
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
  const Method method = method_of(stage);
  const auto& l = stage.loss;
  if (method == Method::adpa && (l.adpa_importance_sampling || l.kl_penalty_weight > 0)) {
    throw UsageError("stage '" + stage.name + "': adpa_importance_sampling and kl_penalty_weight (off in the released "
                     "recipes) are not built yet; leave them unset");
  }
  for (const auto* ref : {&stage.teacher, &stage.teacher_reference}) {
    if (*ref && (*ref)->precompute && method != Method::dckd && method != Method::adpa) {
      throw UsageError("stage '" + stage.name + "': loss type " + config::to_string(l.type.front()) +
                       " needs the teacher's full distribution online; drop `precompute: true`");
    }
  }
  const ModelSource src = resolve_model(env.recipe, stage.policy);
  const ModelSource teacher_src = resolve_model(env.recipe, stage.teacher->model);
  check_shared_tokenizer(stage, src, teacher_src, "teacher");
  std::optional<ModelSource> ref_src;
  if (stage.teacher_reference) {
    ref_src = resolve_model(env.recipe, stage.teacher_reference->model);
    check_shared_tokenizer(stage, src, *ref_src, "teacher_reference");
  }
  const auto tok = data::load_tokenizer(src.tokenizer_dir);
  const auto train_set = load_distill_data(stage.data.train, stage, method, *tok, src);
  std::optional<ResponseSet> eval;
  if (!stage.data.eval.empty()) eval = load_distill_data(stage.data.eval, stage, method, *tok, src);
  spdlog::info("[{}] {} training example(s){}; student '{}', teacher '{}'{}, loss {}", stage.name, train_set.size(),
               eval ? fmt::format(", {} eval example(s)", eval->size()) : "", stage.policy, stage.teacher->model,
               ref_src ? ", teacher_reference '" + ref_src->name + "'" : "", config::to_string(l.type.front()));

  // Precomputed tables first, so that a large teacher is loaded, used and freed before the student is loaded.
  const int32_t pad = collate_options(*tok, stage).pad_id;
  const std::vector<int64_t> table_columns =
      method == Method::dckd ? std::vector<int64_t>{0, 1} : std::vector<int64_t>{1};
  Teacher teacher, teacher_ref;
  auto prepare = [&](Teacher& t, const ModelSource& s, const config::ModelRef& ref) {
    if (!ref.precompute) return;
    t.train = precompute_tables(env, stage, s, train_set, table_columns, pad);
    if (eval) t.eval = precompute_tables(env, stage, s, *eval, table_columns, pad);
  };
  prepare(teacher, teacher_src, *stage.teacher);
  if (ref_src) prepare(teacher_ref, *ref_src, *stage.teacher_reference);

  auto student = load_model(src, env.groups, env.device, policy_dtype(env.recipe));
  student.lm->set_activation_checkpointing(stage.activation_checkpointing);
  std::vector<LoadedModel> resident;
  auto frozen = [&](Teacher& t, const ModelSource& s, const config::ModelRef& ref) {
    if (ref.precompute) return;
    resident.push_back(load_model(s, env.groups, env.device, frozen_dtype(env.recipe, s.name)));
    for (auto& p : resident.back().lm->parameters()) p.set_requires_grad(false);
    t.lm = resident.back().lm.get();
  };
  frozen(teacher, teacher_src, *stage.teacher);
  if (ref_src) frozen(teacher_ref, *ref_src, *stage.teacher_reference);

  DistillObjective objective(env, stage, method, *student.lm, teacher, ref_src ? &teacher_ref : nullptr, train_set,
                             *tok);
  TrainContext ctx{env.recipe, stage, env.groups, env.device, env.metrics, *student.lm, src.tokenizer_dir, {}};
  if (eval) {
    ctx.evaluate = [&]() -> StepMetrics {
      auto m = objective.evaluate(*eval);
      return m;
    };
  }
  const TrainOutcome outcome = train(ctx, objective);
  if (outcome.stopped) return {{}, true};
  save_model(*student.lm, env.groups, stage_model_dir(env.recipe, stage.name), src.tokenizer_dir);
  spdlog::info("[{}] model saved to {}", stage.name, stage_model_dir(env.recipe, stage.name).string());
  return {summary_of(stage, outcome), false};
}

}  // namespace aligntrain::stages
