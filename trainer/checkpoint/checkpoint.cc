#include "trainer/checkpoint/checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/Context.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/safetensors_torch.h"

namespace aligntrain::checkpoint {

namespace fs = std::filesystem;

namespace {

// A copy of `src` at `dst`, written durably (tokenizer files, which a checkpoint must hold once COMPLETE exists).
void copy_file_durably(const fs::path& src, const fs::path& dst) {
  std::ifstream in(src, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + src.string());
  std::stringstream bytes;
  bytes << in.rdbuf();
  write_file_atomic(dst.string(), bytes.str());
}

// step-<N> → N, or -1 for anything else.
int64_t step_of(const fs::path& p) {
  static const std::regex re("step-([0-9]+)");
  std::smatch m;
  const std::string name = p.filename().string();
  if (!std::regex_match(name, m, re)) return -1;
  return std::stoll(m[1]);
}

at::Tensor rng_tensor(const at::Generator& gen) { return gen.get_state().clone(); }

}  // namespace

std::string rank_file_name(int rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "rank-%05d.safetensors", rank);
  return buf;
}

bool fault_requested(const char* where, int64_t step) {
  const char* v = std::getenv("ALIGNTRAIN_FAULT");
  if (!v) return false;
  return std::string(v) == std::string(where) + ":" + std::to_string(step);
}

Written write_checkpoint(const fs::path& stage_dir, const TrainState& state, const RankState& mine,
                         const model::ModelConfig& config, const std::string& tokenizer_dir,
                         runtime::Communicator& world, int keep_last) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path final_dir = stage_dir / ("step-" + std::to_string(state.step));
  const fs::path tmp_dir = stage_dir / ("step-" + std::to_string(state.step) + ".tmp");
  if (world.rank() == 0) {
    fs::create_directories(stage_dir);
    fs::remove_all(tmp_dir);
    fs::remove_all(final_dir);  // an incomplete folder of the same step from a killed run
    fs::create_directories(tmp_dir);
  }
  world.barrier();

  model::NamedTensors tensors;
  for (const auto& [name, t] : mine.model) tensors.emplace_back("model." + name, t.detach().to(at::kCPU).contiguous());
  for (const auto& [name, t] : mine.optimizer) tensors.emplace_back("optim." + name, t.detach().to(at::kCPU).contiguous());
  tensors.emplace_back("rng.cpu", rng_tensor(at::detail::getDefaultCPUGenerator()));
  if (at::hasCUDA() && at::globalContext().hasCUDA()) {
    tensors.emplace_back("rng.cuda", rng_tensor(at::globalContext().defaultGenerator(at::Device(at::kCUDA))));
  }
  const fs::path file = tmp_dir / rank_file_name(world.rank());
  model::save_safetensors(file.string(), tensors);  // written to a temporary name, fsynced, renamed
  Written w;
  w.bytes = static_cast<int64_t>(fs::file_size(file));
  world.barrier();

  if (world.rank() == 0) {
    if (fault_requested("checkpoint", state.step)) std::_Exit(137);
    nlohmann::ordered_json j;
    j["step"] = state.step;
    j["total_steps"] = state.total_steps;
    j["cursor"] = state.cursor;
    j["tp"] = state.tp;
    j["dp"] = state.dp;
    j["zero1"] = state.zero1;
    j["world"] = world.size();
    j["objective"] = state.objective;
    j["fingerprint"] = state.fingerprint;
    nlohmann::json params = nlohmann::json::array();
    for (const auto& p : state.parameters) {
      params.push_back({{"name", p.name}, {"shape", p.shape}, {"split", model::split_name(p.split)}});
    }
    j["parameters"] = params;
    if (state.lora_scaling > 0) j["lora_scaling"] = state.lora_scaling;
    if (!state.frozen_base.is_null()) j["frozen_base"] = state.frozen_base;
    // Each file below is written durably (atomic_file.h: temp file, fsync, rename, fsync its folder).
    write_file_atomic((tmp_dir / "state.json").string(), j.dump(2) + "\n");
    write_file_atomic((tmp_dir / "config.json").string(), model::model_config_to_json(config));
    if (!tokenizer_dir.empty()) {
      fs::create_directories(tmp_dir / "tokenizer");
      for (const auto& name : model::tokenizer_file_names()) {
        const fs::path src = fs::path(tokenizer_dir) / name;
        if (fs::exists(src)) copy_file_durably(src, tmp_dir / "tokenizer" / name);
      }
    }
    sync_folder(tmp_dir.string());  // the tokenizer/ entry
    fs::rename(tmp_dir, final_dir);
    sync_folder(stage_dir.string());
    write_file_atomic((final_dir / "COMPLETE").string(), "step " + std::to_string(state.step) + "\n");
    prune(stage_dir, keep_last);
  }
  world.barrier();
  w.dir = final_dir;
  w.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return w;
}

std::optional<fs::path> latest_complete(const fs::path& stage_dir) {
  std::optional<fs::path> best;
  int64_t best_step = -1;
  std::error_code ec;
  if (!fs::is_directory(stage_dir, ec)) return std::nullopt;
  for (const auto& entry : fs::directory_iterator(stage_dir)) {
    const int64_t s = step_of(entry.path());
    if (s > best_step && fs::exists(entry.path() / "COMPLETE")) {
      best_step = s;
      best = entry.path();
    }
  }
  return best;
}

void prune(const fs::path& stage_dir, int keep_last) {
  std::vector<std::pair<int64_t, fs::path>> complete;
  std::vector<fs::path> incomplete;
  for (const auto& entry : fs::directory_iterator(stage_dir)) {
    const int64_t s = step_of(entry.path());
    if (s >= 0 && fs::exists(entry.path() / "COMPLETE")) {
      complete.emplace_back(s, entry.path());
    } else {
      incomplete.push_back(entry.path());
    }
  }
  std::sort(complete.begin(), complete.end());
  const size_t keep = static_cast<size_t>(std::max(1, keep_last));
  for (size_t i = 0; i + keep < complete.size(); ++i) fs::remove_all(complete[i].second);
  for (const auto& p : incomplete) fs::remove_all(p);
}

TrainState read_state(const fs::path& dir) {
  const fs::path p = dir / "state.json";
  std::ifstream in(p);
  if (!in) throw DataError(p.string() + ": cannot read the checkpoint's train state");
  nlohmann::json j;
  try {
    in >> j;
    TrainState s;
    s.step = j.at("step").get<int64_t>();
    s.total_steps = j.at("total_steps").get<int64_t>();
    s.cursor = j.at("cursor").get<int64_t>();
    s.tp = j.at("tp").get<int>();
    s.dp = j.at("dp").get<int>();
    s.zero1 = j.value("zero1", false);
    s.fingerprint = j.at("fingerprint");
    s.objective = j.value("objective", nlohmann::json::object());
    s.lora_scaling = j.value("lora_scaling", 0.0);
    s.frozen_base = j.value("frozen_base", nlohmann::json());
    for (const auto& item : j.value("parameters", nlohmann::json::array())) {
      model::TensorSpec spec;
      spec.name = item.at("name").get<std::string>();
      spec.shape = item.at("shape").get<std::vector<int64_t>>();
      const auto split = model::split_from_name(item.at("split").get<std::string>());
      if (!split) {
        throw DataError(dir.string() + "/state.json: parameters: " + spec.name + ": unknown split '" +
                        item.at("split").get<std::string>() + "' (expected replicated, rows or columns)");
      }
      spec.split = *split;
      s.parameters.push_back(std::move(spec));
    }
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw DataError(p.string() + ": " + e.what());
  }
}

void restore_rng(const at::Tensor& cpu_state, const at::Tensor& cuda_state) {
  if (cpu_state.defined()) {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(cpu_state);
  }
  if (cuda_state.defined() && at::globalContext().hasCUDA()) {
    at::Generator gen = at::globalContext().defaultGenerator(at::Device(at::kCUDA));
    gen.set_state(cuda_state);
  }
}

NamedTensors load_rank(const fs::path& dir, int rank, const NamedTensors& model) {
  const fs::path file = dir / rank_file_name(rank);
  if (!fs::exists(file)) {
    throw DataError(file.string() + ": missing (the checkpoint was written by a different number of ranks?)");
  }
  const auto loaded = model::load_safetensors(file.string());
  std::map<std::string, at::Tensor> by_name(loaded.begin(), loaded.end());
  at::NoGradGuard no_grad;
  for (const auto& [name, param] : model) {
    const auto it = by_name.find("model." + name);
    if (it == by_name.end()) throw DataError(file.string() + ": no tensor model." + name);
    if (it->second.sizes() != param.sizes()) throw DataError(file.string() + ": model." + name + " has the wrong shape");
    param.detach().copy_(it->second);
  }
  NamedTensors optim;
  for (const auto& [name, t] : loaded) {
    if (name.rfind("optim.", 0) == 0) optim.emplace_back(name.substr(6), t);
  }
  const auto rng = [&](const char* name) {
    const auto it = by_name.find(name);
    return it == by_name.end() ? at::Tensor() : it->second;
  };
  restore_rng(rng("rng.cpu"), rng("rng.cuda"));
  return optim;
}

}  // namespace aligntrain::checkpoint
