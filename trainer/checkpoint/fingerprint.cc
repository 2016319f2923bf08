#include "trainer/checkpoint/fingerprint.h"

#include "config/resolve.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "common/data_source.h"
#include "config/recipe.h"

namespace aligntrain::checkpoint {

namespace fs = std::filesystem;

namespace {

void flatten(const YAML::Node& node, const std::string& prefix, nlohmann::json& out) {
  if (node.IsMap()) {
    for (const auto& kv : node) flatten(kv.second, prefix + "." + kv.first.as<std::string>(), out);
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) flatten(node[i], prefix + "[" + std::to_string(i) + "]", out);
  } else if (node.IsScalar()) {
    out[prefix] = node.as<std::string>();
  }
}

bool excluded(const std::string& key, const std::string& stage_prefix) {
  for (const char* k : {".name", ".log", ".checkpoint", ".eval"}) {
    const std::string p = stage_prefix + k;
    if (key == p || key.rfind(p + ".", 0) == 0) return true;
  }
  return false;
}

// The declared model at the root of a stage's policy chain.
std::string root_model(const config::Recipe& recipe, std::string name) {
  for (int guard = 0; guard < 1000; ++guard) {
    if (recipe.models.find(name)) return name;
    const config::StageConfig* found = nullptr;
    for (const auto& s : recipe.stages)
      if (s.name == name) found = &s;
    if (!found) return name;
    name = found->policy;
  }
  return name;
}

// The text of a model's chat template, as a digest: the .jinja file the recipe names, or (auto) the files of the
// model's folder that hold its own template; "" for a built-in template (its name is in the recipe).
std::string template_digest(const config::ModelSpec& spec);

std::string resolve(const config::Recipe& recipe, const std::string& path) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(recipe.folder) / path).string();
}

}  // namespace

namespace {

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;

uint64_t fnv1a(std::string_view bytes, uint64_t h) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string hex(uint64_t h) {
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

}  // namespace

std::string file_digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "missing";
  uint64_t h = kFnvOffset;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h = fnv1a(std::string_view(buf.data(), static_cast<size_t>(in.gcount())), h);
  }
  return hex(h);
}

std::string text_digest(std::string_view bytes) { return hex(fnv1a(bytes, kFnvOffset)); }

std::string weights_digest(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  std::string digests;
  for (const auto& f : files) digests += fs::path(f).filename().string() + ":" + file_digest(f) + "\n";
  return text_digest(digests);
}

namespace {

std::string template_digest(const config::ModelSpec& spec) {
  if (spec.chat_template != "auto") {
    return config::is_named_chat_template(spec.chat_template) ? "" : file_digest(spec.chat_template);
  }
  const std::string dir = spec.path.empty() ? spec.tokenizer : spec.path;
  if (dir.empty() || dir == config::kByteTokenizer) return "";
  std::string digests;
  for (const char* name : {"chat_template.jinja", "tokenizer_config.json"}) {
    const fs::path file = fs::path(dir) / name;
    if (fs::exists(file)) digests += std::string(name) + ":" + file_digest(file.string()) + "\n";
  }
  return digests.empty() ? "" : text_digest(digests);
}

}  // namespace

nlohmann::json stage_fingerprint(const config::Recipe& recipe, const config::StageConfig& stage) {
  const YAML::Node root = YAML::Load(config::to_yaml(recipe));
  nlohmann::json all = nlohmann::json::object();
  flatten(root, "", all);
  nlohmann::ordered_json fp;
  auto copy = [&](const std::string& key) {
    if (all.contains(key)) fp[key.substr(1)] = all[key];
  };
  copy(".run.seed");
  copy(".run.precision");
  copy(".run.device");
  // A select stage's model is its embedding model (isa); zip_fit uses none.
  const bool isa = stage.kind == config::StageKind::select && stage.select.method == config::SelectMethod::isa;
  const std::string model = root_model(recipe, isa ? stage.select.embedding_model : stage.policy);
  const std::string model_prefix = ".models." + model;
  size_t index = 0;
  for (; index < recipe.stages.size(); ++index)
    if (recipe.stages[index].name == stage.name) break;
  const std::string stage_prefix = ".stages[" + std::to_string(index) + "]";
  for (const auto& [key, value] : all.items()) {
    if (key.rfind(model_prefix + ".", 0) == 0) fp[key.substr(1)] = value;
  }
  // The template's text, not only its name or file name: editing a .jinja file changes what is trained on.
  if (const config::ModelSpec* spec = recipe.models.find(model); spec && !isa) {
    const std::string digest = template_digest(*spec);
    if (!digest.empty()) fp["models." + model + ".chat_template (text)"] = digest;
  }
  for (const auto& [key, value] : all.items()) {
    if (key.rfind(stage_prefix + ".", 0) == 0 && !excluded(key, stage_prefix)) {
      fp["stages." + stage.name + key.substr(stage_prefix.size())] = value;
    }
  }
  for (const auto& [field, path] : {std::pair{"data.train", stage.data.train}, std::pair{"data.samples", stage.data.samples},
                                     std::pair{"select.target", stage.kind == config::StageKind::select
                                                                    ? stage.select.target : std::string()}}) {
    if (path.empty()) continue;
    const std::string resolved = resolve(recipe, config::data_file(recipe, path));
    // Parquet may be a folder or a glob of shards: every file's name and contents count.
    const auto files = data_source_files(resolved);
    if (files.size() == 1 && files.front() == resolved) {
      fp["stages." + stage.name + "." + field + " (file contents)"] = file_digest(resolved);
    } else if (!files.empty()) {
      std::string all_files;
      for (const auto& f : files) all_files += fs::path(f).filename().string() + ":" + file_digest(f) + "\n";
      fp["stages." + stage.name + "." + field + " (file contents)"] = text_digest(all_files);
    }
  }
  return fp;
}

std::optional<std::string> fingerprint_difference(const nlohmann::json& stored, const nlohmann::json& current) {
  // Layout keys of fingerprints written before a checkpoint could resume on another layout.
  static const std::set<std::string> kLayoutKeys = {"parallel.tensor", "parallel.zero1",
                                                    "parallel.data (world size / tensor)"};
  auto show = [](const nlohmann::json& j, const std::string& key) {
    return j.contains(key) ? j[key].get<std::string>() : std::string("(not set)");
  };
  // The template-text digest came later still: a stored fingerprint without it predates it (the template's name or
  // file is compared as before).
  auto predates = [&](const std::string& key) {
    const std::string suffix = " (text)";
    return !stored.contains(key) && key.size() > suffix.size() &&
           key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  for (const auto& [key, value] : current.items()) {
    if (kLayoutKeys.count(key) || predates(key)) continue;
    if (!stored.contains(key) || stored[key] != value) return key + ": was " + show(stored, key) + ", now " + show(current, key);
  }
  for (const auto& [key, value] : stored.items()) {
    if (kLayoutKeys.count(key)) continue;
    if (!current.contains(key)) return key + ": was " + show(stored, key) + ", now " + show(current, key);
  }
  return std::nullopt;
}

}  // namespace aligntrain::checkpoint
