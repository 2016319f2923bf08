// See peft_io.h.
#include "trainer/model/peft_io.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/errors.h"
#include "trainer/model/safetensors.h"
#include "trainer/model/safetensors_torch.h"

namespace aligntrain::model {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool set_and_not_empty(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return false;
  if (j[key].is_array() || j[key].is_object() || j[key].is_string()) return !j[key].empty();
  return true;
}

// "model.layers.0.self_attn.q_proj" or "q_proj" → "q_proj"; PEFT matches a list entry as a name suffix.
std::string module_of(const std::string& entry) {
  const auto dot = entry.rfind('.');
  return dot == std::string::npos ? entry : entry.substr(dot + 1);
}

std::string shape_str(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

LoraSettings read_adapter_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "adapter_config.json").string();
  std::ifstream in(path);
  if (!in) throw DataError(path + ": cannot read the PEFT adapter config");
  json j;
  try {
    j = json::parse(in);
  } catch (const std::exception& e) {
    throw DataError(path + ": not valid JSON (" + e.what() + ")");
  }
  auto fail = [&](const std::string& field, const std::string& problem) {
    throw DataError(path + ": field `" + field + "`: " + problem);
  };
  const std::string type = j.value("peft_type", "");
  if (type != "LORA") fail("peft_type", "is \"" + type + "\"; only LORA adapters are supported");
  if (j.value("use_dora", false)) fail("use_dora", "DoRA is not supported (expected false)");
  if (set_and_not_empty(j, "modules_to_save")) fail("modules_to_save", "is not supported (expected null)");
  if (j.value("bias", std::string("none")) != "none") fail("bias", "only \"none\" is supported");
  if (j.value("lora_bias", false)) fail("lora_bias", "is not supported (expected false)");
  if (j.value("fan_in_fan_out", false)) fail("fan_in_fan_out", "is not supported (expected false)");
  if (j.value("use_qalora", false)) fail("use_qalora", "is not supported (expected false)");
  for (const char* key : {"rank_pattern", "alpha_pattern", "layers_to_transform", "layer_replication",
                          "trainable_token_indices", "target_parameters", "exclude_modules"}) {
    if (set_and_not_empty(j, key)) fail(key, "is not supported (expected null or empty)");
  }
  LoraSettings s;
  if (!j.contains("r") || !j["r"].is_number_integer() || j["r"].get<int64_t>() <= 0)
    fail("r", "expected a positive integer");
  s.rank = j["r"].get<int64_t>();
  if (!j.contains("lora_alpha") || !j["lora_alpha"].is_number()) fail("lora_alpha", "expected a number");
  s.alpha = j["lora_alpha"].get<double>();
  s.dropout = j.value("lora_dropout", 0.0);
  s.rslora = j.value("use_rslora", false);
  const json& t = j.contains("target_modules") ? j["target_modules"] : json();
  std::vector<std::string> targets;
  if (t.is_string() && t.get<std::string>() == "all-linear") {
    targets = all_linear_targets();
  } else if (t.is_array()) {
    for (const auto& e : t) {
      if (!e.is_string()) fail("target_modules", "expected a list of module names");
      const std::string m = module_of(e.get<std::string>());
      const auto& known = all_linear_targets();
      if (std::find(known.begin(), known.end(), m) == known.end())
        fail("target_modules", "\"" + e.get<std::string>() + "\" is not one of q_proj, k_proj, v_proj, o_proj, "
                               "gate_proj, up_proj, down_proj");
      if (std::find(targets.begin(), targets.end(), m) == targets.end()) targets.push_back(m);
    }
  } else {
    fail("target_modules", "expected a list of module names or \"all-linear\" (regular expressions are not supported)");
  }
  if (targets.empty()) fail("target_modules", "names no module");
  // Keep the model's order, so the parameter order does not depend on the file's list order.
  for (const auto& m : all_linear_targets())
    if (std::find(targets.begin(), targets.end(), m) != targets.end()) s.targets.push_back(m);
  return s;
}

void load_adapter_weights(CausalLM& model, const std::string& dir, int64_t tp_rank, int64_t tp_size) {
  const std::string path = (fs::path(dir) / "adapter_model.safetensors").string();
  if (!fs::exists(path)) throw DataError(path + ": missing (a PEFT adapter folder holds adapter_model.safetensors)");
  const auto file = SafetensorsFile::open(path);
  std::set<std::string> expected;
  for (const auto& p : model.parameter_set())
    if (is_adapter_name(p.name())) expected.insert(kPeftPrefix + p.name());
  for (const auto& info : file.tensors()) {
    if (!expected.count(info.name))
      throw DataError(path + ": unexpected tensor \"" + info.name + "\" (not an adapter of the configured targets "
                             "of this model)");
  }
  at::NoGradGuard no_grad;
  for (const auto& p : model.parameter_set()) {
    if (!is_adapter_name(p.name())) continue;
    const std::string name = kPeftPrefix + p.name();
    const TensorInfo* info = file.find(name);
    if (!info) throw DataError(path + ": missing tensor \"" + name + "\"");
    if (info->shape != p.spec.shape)
      throw DataError(path + ": tensor \"" + name + "\" has shape " + shape_str(info->shape) + ", expected " +
                      shape_str(p.spec.shape));
    at::Tensor full = to_tensor(file, *info);
    const int dim = split_dim(p.spec.split);
    if (dim >= 0 && tp_size > 1) {
      const int64_t n = full.size(dim) / tp_size;
      full = full.narrow(dim, tp_rank * n, n);
    }
    at::Tensor dst = p.tensor;
    dst.copy_(full);
  }
}

void save_adapter(const std::string& dir, const LoraSettings& s, const std::string& base_model,
                  const std::vector<std::pair<std::string, at::Tensor>>& adapters) {
  json c;
  c["peft_type"] = "LORA";
  c["task_type"] = "CAUSAL_LM";
  c["base_model_name_or_path"] = base_model.empty() ? json() : json(base_model);
  c["r"] = s.rank;
  c["lora_alpha"] = s.alpha;
  c["lora_dropout"] = s.dropout;
  c["target_modules"] = s.targets;
  c["use_rslora"] = s.rslora;
  c["use_dora"] = false;
  c["bias"] = "none";
  c["fan_in_fan_out"] = false;
  c["init_lora_weights"] = s.init == LoraInitKind::kGaussian ? json("gaussian") : json(true);
  c["inference_mode"] = true;
  c["modules_to_save"] = nullptr;
  c["layers_to_transform"] = nullptr;
  c["layers_pattern"] = nullptr;
  c["rank_pattern"] = json::object();
  c["alpha_pattern"] = json::object();
  c["revision"] = nullptr;

  const fs::path target = fs::absolute(dir);
  const fs::path staging = target.string() + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::create_directories(staging);
  {
    std::ofstream out(staging / "adapter_config.json", std::ios::trunc);
    out << c.dump(2) << "\n";
    if (!out.flush()) throw std::runtime_error("cannot write " + (staging / "adapter_config.json").string());
  }
  NamedTensors cpu;
  for (const auto& [name, t] : adapters) cpu.emplace_back(kPeftPrefix + name, t.detach().to(at::kCPU).contiguous());
  save_safetensors((staging / "adapter_model.safetensors").string(), cpu, {{"format", "pt"}});
  const fs::path old = target.string() + ".old-" + std::to_string(::getpid());
  if (fs::exists(target)) fs::rename(target, old);
  fs::rename(staging, target);
  fs::remove_all(old, ec);
}

}  // namespace aligntrain::model
