// See frozen_cache.h.
#include "trainer/stages/frozen_cache.h"

#include <c10/core/ScalarType.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "trainer/checkpoint/fingerprint.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/safetensors_torch.h"

namespace aligntrain::stages {

namespace fs = std::filesystem;

namespace {

// The encoded responses in order: ids and prompt length of each.
std::string encoded_digest(const ResponseSet& set) {
  std::string bytes;
  for (const auto& e : set.items) {
    const int64_t head[2] = {static_cast<int64_t>(e.ids.size()), e.prompt_len};
    bytes.append(reinterpret_cast<const char*>(head), sizeof head);
    bytes.append(reinterpret_cast<const char*>(e.ids.data()), e.ids.size() * sizeof(e.ids[0]));
  }
  return checkpoint::text_digest(bytes);
}

}  // namespace

FrozenCache frozen_cache(const config::Recipe& recipe, const std::string& kind, const ModelSource& model,
                         const ResponseSet& set, at::ScalarType dtype, const std::string& extra) {
  std::string text = "v3|" + kind + "|config:" + model::model_config_to_json(model.config);
  if (model.init) {
    text += "|init:" + model.init->preset + ":" + std::to_string(model.init->seed);
  } else {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(model.weights_dir)) {
      if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) text += "|w:" + fs::path(f).filename().string() + ":" + checkpoint::file_digest(f);
  }
  if (model.lora) {  // adapters on the base: their settings and weights (or their initialisation seed)
    text += "|lora:" + std::to_string(model.lora->rank) + ":" + std::to_string(model.lora->scaling());
    for (const auto& t : model.lora->targets) text += ":" + t;
    if (model.adapter_dir.empty())
      text += "|lora-seed:" + std::to_string(model.lora_seed) + ":" + std::to_string(static_cast<int>(model.lora->init));
    else text += "|adapter:" + checkpoint::file_digest((fs::path(model.adapter_dir) / "adapter_model.safetensors").string());
  }
  for (const auto& name : model::tokenizer_file_names()) {
    const fs::path p = fs::path(model.tokenizer_dir) / name;
    if (fs::exists(p)) text += "|tok:" + name + ":" + checkpoint::file_digest(p.string());
  }
  text += "|examples:" + std::to_string(set.size()) + "x" + std::to_string(set.width) + ":" + encoded_digest(set) +
          "|dtype:" + std::string(c10::toString(dtype)) + "|tp:" + std::to_string(recipe.parallel.tensor) + "|" + extra;
  FrozenCache out;
  out.key = checkpoint::text_digest(text);
  out.file = fs::path(recipe.run.output_dir) / "cache" / (kind + "-" + out.key + ".safetensors");
  return out;
}

std::optional<CachedTensors> read_frozen(const runtime::World& world, const FrozenCache& cache,
                                         const std::function<bool(const CachedTensors&)>& valid) {
  std::optional<CachedTensors> got;
  if (fs::exists(cache.file)) {
    try {
      CachedTensors t;
      for (auto& [name, x] : model::load_safetensors(cache.file.string())) t[name] = x;
      if (valid(t)) {
        got = std::move(t);
      } else {
        spdlog::warn("ignoring cache {}: its tensors do not have the expected shapes", cache.file.string());
      }
    } catch (const std::exception& e) {
      spdlog::warn("ignoring unreadable cache {}: {}", cache.file.string(), e.what());
    }
  }
  if (!world.all_ok(got.has_value())) return std::nullopt;
  return got;
}

void write_frozen(const runtime::World& world, const FrozenCache& cache,
                  const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata) {
  if (world.is_root()) {
    fs::create_directories(cache.file.parent_path());
    auto meta = metadata;
    meta["key"] = cache.key;
    model::save_safetensors(cache.file.string(), tensors, meta);
  }
  world.barrier();
}

}  // namespace aligntrain::stages
