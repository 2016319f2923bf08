// See select.h.
#include "trainer/stages/select.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/atomic_file.h"
#include "common/data_source.h"
#include "common/errors.h"
#include "data/dealing.h"
#include "data/parquet_rows.h"
#include "data/select_text.h"
#include "data/zip_fit.h"
#include "trainer/metrics/metrics.h"
#include "trainer/model/safetensors.h"
#include "trainer/objectives/gmm.h"
#include "trainer/parallel/data_parallel.h"
#include "trainer/stages/embed.h"
#include "trainer/stages/models.h"

namespace aligntrain::stages {

namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Every line of `path` as read, without its "\n" (a "\r" before it is kept), so that kept lines are copied byte for
// byte. lines[i] is line i + 1. A Parquet pool's lines are its rows as JSON objects (data/parquet_rows.h), so the
// selection of a Parquet pool is JSONL.
std::vector<std::string> raw_lines(const std::string& path) {
  std::vector<std::string> lines;
  if (is_parquet_source(path)) {
    data::for_each_parquet_row(path, [&](const data::ParquetRow& row) { lines.push_back(row.json); });
    return lines;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open data file");
  for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
  return lines;
}

// Logs "[stage] what: done/total (p%), elapsed, ETA" at most every 10 seconds, from an estimate of this rank's share.
class Progress {
 public:
  Progress(std::string prefix, int64_t total, bool root) : prefix_(std::move(prefix)), total_(total), root_(root) {}
  void update(int64_t done) {
    const double secs = seconds_since(t0_);
    if (!root_ || done <= 0 || done >= total_ || secs - last_ < 10) return;
    last_ = secs;
    const double eta = secs / static_cast<double>(done) * static_cast<double>(total_ - done);
    spdlog::info("{} {}/{} ({:.0f}%), {} elapsed, ETA {}", prefix_, done, total_,
                 100.0 * static_cast<double>(done) / static_cast<double>(total_), metrics::format_duration(secs),
                 metrics::format_duration(eta));
  }

 private:
  std::string prefix_;
  int64_t total_;
  bool root_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
  double last_ = 0;
};

// A table of per-candidate values whose entries each rank filled for its own rows, summed over the world.
std::vector<double> sum_over_world(StageEnv& env, const std::vector<double>& mine) {
  auto t = at::tensor(mine, at::kDouble).unsqueeze(1);
  t = parallel::sum_dealt_rows(t, *env.groups.world, env.device).squeeze(1).contiguous();
  return {t.data_ptr<double>(), t.data_ptr<double>() + t.numel()};
}

std::vector<double> zip_fit_scores(StageEnv& env, const config::StageConfig& stage,
                                   const data::SelectionTexts& pool) {
  const auto& sel = stage.select;
  const auto target = data::read_selection_texts(sel.target, sel.text, false);
  const int64_t n = static_cast<int64_t>(pool.texts.size());
  const auto rows = data::rank_share(n, env.world.rank(), env.world.size());
  const int threads = at::get_num_threads();
  spdlog::info("[{}] ZIP-FIT: {} candidates x {} targets (text: {}), gzip level 1, {} rank(s) x {} thread(s)",
               stage.name, n, target.texts.size(), data::join_fields(pool.fields), env.world.size(), threads);
  Progress progress("[" + stage.name + "] ZIP-FIT: candidates", n, env.world.is_root());
  const double share = static_cast<double>(n) / static_cast<double>(std::max<size_t>(1, rows.size()));
  const auto mine = data::zip_fit_align(pool.texts, target.texts, rows, threads, [&](size_t done) {
    progress.update(static_cast<int64_t>(static_cast<double>(done) * share));
  });
  std::vector<double> table(static_cast<size_t>(n), 0.0);
  for (size_t i = 0; i < rows.size(); ++i) table[static_cast<size_t>(rows[i])] = mine[i];
  return sum_over_world(env, table);
}

nlohmann::ordered_json tensor_json(const at::Tensor& t) {
  const auto c = t.to(at::kDouble).contiguous();
  if (c.dim() == 1) return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (int64_t i = 0; i < c.size(0); ++i) rows.push_back(tensor_json(c[i]));
  return rows;
}

std::vector<double> isa_scores(StageEnv& env, const config::StageConfig& stage, const data::SelectionTexts& pool,
                               const fs::path& dir, nlohmann::ordered_json& summary) {
  const auto& sel = stage.select;
  const ModelSource src = resolve_model(env.recipe, sel.embedding_model);
  const auto tok = data::load_tokenizer(src.tokenizer_dir);
  const int32_t eos = tok->eos_id().value_or(0);
  std::vector<std::vector<int32_t>> sequences;
  sequences.reserve(pool.texts.size());
  int64_t truncated = 0;
  for (const auto& text : pool.texts) {
    auto ids = tok->encode(text);
    if (static_cast<int64_t>(ids.size()) > stage.batch.max_length) {
      ids.resize(static_cast<size_t>(stage.batch.max_length));
      ++truncated;
    }
    if (ids.empty()) ids.push_back(eos);
    sequences.push_back(std::move(ids));
  }
  const int64_t n = static_cast<int64_t>(sequences.size());
  spdlog::info("[{}] ISA: embedding {} candidates with '{}' (mean final hidden state; {} truncated to {} tokens)",
               stage.name, n, src.name, truncated, stage.batch.max_length);
  at::Tensor emb;
  {
    auto loaded = load_frozen_model(src, env.groups, env.device, frozen_dtype(env.recipe, src.name));
    Progress progress("[" + stage.name + "] ISA: embedded", n, env.world.is_root());
    const double dp = env.groups.layout.dp;
    emb = mean_hidden_states(env, *loaded.lm, sequences, stage.batch.micro,
                             tok->pad_id().value_or(eos),
                             [&](int64_t done) { progress.update(static_cast<int64_t>(static_cast<double>(done) * dp)); });
  }
  objectives::GmmOptions o;
  o.components = sel.components;
  o.full = sel.covariance == config::Covariance::full;
  o.max_iter = sel.max_iter;
  o.tol = sel.tol;
  o.reg_covar = sel.reg_covar;
  objectives::GaussianMixture g;
  try {
    g = objectives::fit_gmm(emb, o, objectives::farthest_point_init(emb, o));
  } catch (const std::runtime_error& e) {
    throw DataError(stage.data.train + ": ISA: " + e.what());
  }
  const auto logp = g.log_density(emb);
  const double entropy = -logp.mean().item<double>();
  // ΔH_i = H(D) − H(D∖{i}) with the mixture held fixed (METHODS.md E.2): −(log p_i + H(D)) / (N − 1).
  const auto delta = n > 1 ? -(logp + entropy) / static_cast<double>(n - 1) : at::zeros_like(logp);
  spdlog::info("[{}] ISA: {}-component {} Gaussian mixture over {} dimensions: {} after {} EM iteration(s), mean "
               "log-likelihood {:.6g}, entropy {:.6g}", stage.name, o.components, config::name_of(sel.covariance),
               emb.size(1), g.converged ? "converged" : "NOT converged (raise select.max_iter or select.tol)",
               g.n_iter, g.lower_bound, entropy);
  if (env.world.is_root()) {
    nlohmann::ordered_json j;
    j["covariance"] = config::name_of(sel.covariance);
    j["components"] = o.components;
    j["weights"] = tensor_json(g.weights);
    j["means"] = tensor_json(g.means);
    j["covariances"] = tensor_json(g.covariances);
    j["n_iter"] = g.n_iter;
    j["converged"] = g.converged;
    j["lower_bound"] = g.lower_bound;
    j["entropy"] = entropy;
    write_file_atomic((dir / "gmm.json").string(), j.dump(1) + "\n");
    if (sel.save_embeddings) {
      const auto c = emb.contiguous();
      model::write_safetensors((dir / "embeddings.safetensors").string(),
                                            {{"embeddings", model::Dtype::kF64, {c.size(0), c.size(1)},
                                              c.data_ptr<double>()}});
    }
  }
  summary["gmm_converged"] = g.converged;
  summary["gmm_iterations"] = g.n_iter;
  const auto d = delta.contiguous();
  return {d.data_ptr<double>(), d.data_ptr<double>() + d.numel()};
}

}  // namespace

StageResult run_select(StageEnv& env, const config::StageConfig& stage) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto& sel = stage.select;
  const fs::path dir = fs::path(env.recipe.run.output_dir) / stage.name;
  const auto pool = data::read_selection_texts(stage.data.train, sel.text, stage.data.skip_invalid);
  const int64_t n = static_cast<int64_t>(pool.texts.size());
  const int64_t k = sel.keep ? *sel.keep : std::max<int64_t>(1, std::llround(sel.fraction() * static_cast<double>(n)));
  if (k > n) {
    throw DataError(stage.data.train + ": select.keep is " + std::to_string(k) + " but the pool has only " +
                    std::to_string(n) + " candidate(s)");
  }
  if (env.world.is_root()) fs::create_directories(dir);
  nlohmann::ordered_json summary;
  summary["kind"] = "select";
  const bool zip = sel.method == config::SelectMethod::zip_fit;
  const auto scores = zip ? zip_fit_scores(env, stage, pool) : isa_scores(env, stage, pool, dir, summary);
  const bool highest = zip || sel.prefer == config::SelectPrefer::rare;
  const auto kept = data::top_k(scores, static_cast<size_t>(k), highest);

  double sum_all = 0, sum_kept = 0, threshold = highest ? INFINITY : -INFINITY;
  for (double s : scores) sum_all += s;
  for (int64_t i : kept) {
    const double s = scores[static_cast<size_t>(i)];
    sum_kept += s;
    threshold = highest ? std::min(threshold, s) : std::max(threshold, s);
  }
  if (env.world.is_root()) {
    const auto lines = raw_lines(stage.data.train);
    std::string selected, table;
    for (int64_t i : kept) {
      const int64_t line = pool.lines[static_cast<size_t>(i)];
      if (line < 1 || line > static_cast<int64_t>(lines.size()))
        throw DataError(stage.data.train + " changed while the stage ran (line " + std::to_string(line) + " is gone)");
      selected += lines[static_cast<size_t>(line - 1)] + "\n";
    }
    for (int64_t i = 0; i < n; ++i) {
      nlohmann::ordered_json row;
      row["line"] = pool.lines[static_cast<size_t>(i)];
      row["score"] = scores[static_cast<size_t>(i)];
      table += row.dump() + "\n";
    }
    fs::create_directories(fs::path(sel.out).parent_path());
    write_file_atomic((dir / "scores.jsonl").string(), table);
    write_file_atomic(sel.out, selected);
  }
  env.world.barrier();
  const double secs = seconds_since(t0);
  nlohmann::ordered_json line;
  line["stage"] = stage.name;
  line["step"] = 0;
  line["select/candidates"] = n;
  line["select/kept"] = static_cast<int64_t>(kept.size());
  line["select/score_mean"] = n ? sum_all / static_cast<double>(n) : 0.0;
  line["select/score_mean_kept"] = kept.empty() ? 0.0 : sum_kept / static_cast<double>(kept.size());
  line["select/score_threshold"] = threshold;
  line["elapsed_sec"] = secs;
  env.metrics.truncate_after(stage.name, -1);
  env.metrics.write(line);
  spdlog::info("[{}] kept {} of {} candidates ({}: mean score {:.6f} kept vs {:.6f} overall, threshold {:.6f}) -> {} "
               "({})", stage.name, kept.size(), n, zip ? "ZIP-FIT alignment" : "ISA entropy change",
               line["select/score_mean_kept"].get<double>(), line["select/score_mean"].get<double>(), threshold,
               sel.out, metrics::format_duration(secs));
  summary["candidates"] = n;
  summary["kept"] = static_cast<int64_t>(kept.size());
  summary["seconds"] = secs;
  return {summary, false};
}

}  // namespace aligntrain::stages
