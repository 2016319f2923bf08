// Fills derived defaults and absolute paths (see resolve.h).
#include "config/resolve.h"

#include <algorithm>

#include <cctype>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>

#include "common/hf_cache.h"

namespace aligntrain::config {
namespace fs = std::filesystem;

const StageConfig* earlier_stage(const Recipe& recipe, size_t before, const std::string& name) {
  for (size_t i = 0; i < before && i < recipe.stages.size(); ++i)
    if (recipe.stages[i].name == name) return &recipe.stages[i];
  return nullptr;
}

std::string data_file(const Recipe& recipe, const std::string& value) {
  for (const auto& s : recipe.stages) {
    if (s.name != value) continue;
    if (s.kind == StageKind::generate) return s.generation.out;
    if (s.kind == StageKind::select) return s.select.out;
  }
  return value;
}

namespace {

class Resolver {
 public:
  explicit Resolver(Recipe& r) : r_(r) {}

  void run() {
    resolve_run();
    for (auto& [name, model] : r_.models.items) resolve_model(name, model);
    for (size_t i = 0; i < r_.stages.size(); ++i) resolve_stage(i, r_.stages[i]);
  }

 private:
  // Absolute form of a path held at `canonical` (empty stays empty).
  std::string absolute(const std::string& value, const std::string& canonical) const {
    if (value.empty()) return value;
    fs::path p(value);
    if (p.is_relative()) {
      const bool from_command_line = r_.sources.find(canonical).file.rfind("--set ", 0) == 0;
      std::error_code ec;
      const fs::path base = from_command_line ? fs::current_path(ec) : fs::path(r_.folder);
      p = base / p;
    }
    return p.lexically_normal().string();
  }

  // The recipe file's stem as a run name: letters, digits, `_` and `-` (others become `_`).
  std::string name_from_file() const {
    std::string name = fs::path(r_.path).stem().string();
    if (name.empty()) return "recipe";
    for (char& c : name)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) c = '_';
    return name.substr(0, 128);
  }

  void resolve_run() {
    RunConfig& run = r_.run;
    if (run.name.empty()) run.name = name_from_file();
    if (run.output_dir.empty()) run.output_dir = (fs::path(r_.folder) / "runs" / run.name).lexically_normal().string();
    else run.output_dir = absolute(run.output_dir, "run.output_dir");
  }

  void resolve_model(const std::string& name, ModelSpec& m) {
    const std::string at = "models." + name;
    m.path = model_path(m, at);
    if (fs::path(m.chat_template).extension() == ".jinja") m.chat_template = absolute(m.chat_template, at + ".chat_template");
    if (m.tokenizer.empty()) m.tokenizer = m.init ? std::string(kByteTokenizer) : m.path;
    else if (m.tokenizer != kByteTokenizer) m.tokenizer = absolute(m.tokenizer, at + ".tokenizer");
    if (!m.dtype) m.dtype = r_.run.precision;
    if (!m.adapter.empty()) m.adapter = absolute(m.adapter, at + ".adapter");
  }

  // A model folder; an `org/name` that is no folder is looked up in the Hugging Face cache (kept as it is when it is
  // not there either: validation reports where it looked).
  std::string model_path(const ModelSpec& m, const std::string& at) const {
    const std::string local = absolute(m.path, at + ".path");
    std::error_code ec;
    if (local.empty() || !looks_like_repo_id(m.path) || fs::is_directory(local, ec)) return local;
    const auto found = find_in_hf_cache(m.path, m.revision);
    return found.snapshot ? *found.snapshot : m.path;
  }

  // A data value naming an earlier generate/select stage stays a name; anything else is a path.
  std::string data_path(size_t i, const std::string& value, const std::string& canonical) const {
    if (earlier_stage(r_, i, value)) return value;
    return absolute(value, canonical);
  }

  void resolve_stage(size_t i, StageConfig& s) {
    const std::string at = "stages[" + std::to_string(i) + "]";
    const std::string stage_dir = (fs::path(r_.run.output_dir) / s.name).string();
    s.data.train = data_path(i, s.data.train, at + ".data.train");
    s.data.eval = data_path(i, s.data.eval, at + ".data.eval");
    s.data.samples = data_path(i, s.data.samples, at + ".data.samples");
    if (s.kind == StageKind::negatives && !s.data.num_samples) {
      const StageConfig* gen = earlier_stage(r_, i, s.data.samples);
      if (gen && gen->kind == StageKind::generate) s.data.num_samples = gen->generation.num_samples;
    }
    if (!s.batch.max_prompt_length) s.batch.max_prompt_length = default_max_prompt_length(s.batch.max_length);
    if (is_training(s.kind)) {
      if (!s.optimizer.lr) s.optimizer.lr = default_lr(s.kind);
      if (!s.train.epochs && !s.train.steps) s.train.epochs = 1;
    }
    resolve_loss(s.kind, s.loss);
    if (s.kind == StageKind::online && !s.online.beta && !s.loss.type.empty())
      s.online.beta = default_online_beta(s.loss.type.front());
    if (!s.generation.seed) s.generation.seed = r_.run.seed;  // written only where generation applies
    if (s.kind == StageKind::generate) {
      s.generation.out = s.generation.out.empty() ? (fs::path(stage_dir) / "generations.jsonl").string()
                                                  : absolute(s.generation.out, at + ".generation.out");
    }
    if (s.kind == StageKind::select) {
      s.select.target = absolute(s.select.target, at + ".select.target");
      s.select.out = s.select.out.empty() ? (fs::path(stage_dir) / "selected.jsonl").string()
                                          : absolute(s.select.out, at + ".select.out");
    }
  }

  void resolve_loss(StageKind kind, LossConfig& loss) {
    if (loss.type.empty()) loss.type = default_loss_types(kind);
    if (loss.weights.empty()) loss.weights.assign(loss.type.size(), 1.0);
    const auto uses = [&](LossType t) { return std::find(loss.type.begin(), loss.type.end(), t) != loss.type.end(); };
    if (!loss.lmbda && uses(LossType::kd)) loss.lmbda = 0.5;
    if (!loss.lmbda && uses(LossType::aligndistil)) loss.lmbda = 0.0;
    if (!loss.beta) {
      for (LossType t : loss.type) {
        if (auto b = default_beta(t)) {
          loss.beta = *b;
          break;
        }
      }
    }
  }

  Recipe& r_;
};

}  // namespace

void resolve(Recipe& recipe) { Resolver(recipe).run(); }

double resolved_beta(const LossConfig& loss) {
  if (loss.beta) return *loss.beta;
  for (LossType t : loss.type) {
    if (default_beta(t)) {
      throw std::logic_error("loss.beta is unset although loss type " + std::string(name_of(t)) +
                             " uses it: the recipe has not been resolved (config::resolve)");
    }
  }
  return std::numeric_limits<double>::quiet_NaN();
}

}  // namespace aligntrain::config
