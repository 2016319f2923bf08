// See model_config.h.
#include "trainer/model/model_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/errors.h"
#include "trainer/model/architectures.h"

namespace aligntrain::model {

using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& label, const std::string& field, const std::string& what) {
  throw DataError(label + ": " + field + ": " + what);
}

template <typename T>
T get(const json& j, const char* key, const std::string& label) {
  if (!j.contains(key) || j.at(key).is_null()) fail(label, key, "missing required field");
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    fail(label, key, "has the wrong type (" + j.at(key).dump() + ")");
  }
}

template <typename T>
T get_or(const json& j, const char* key, T fallback, const std::string& label) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  return get<T>(j, key, label);
}

std::vector<int64_t> token_ids(const json& j, const char* key, const std::string& label) {
  if (!j.contains(key) || j.at(key).is_null()) return {};
  const json& v = j.at(key);
  if (v.is_number_integer()) return {v.get<int64_t>()};
  if (v.is_array()) {
    std::vector<int64_t> out;
    for (const auto& x : v) {
      if (!x.is_number_integer()) fail(label, key, "expected an integer or a list of integers");
      out.push_back(x.get<int64_t>());
    }
    return out;
  }
  fail(label, key, "expected an integer or a list of integers");
}

const Architecture& parse_arch(const json& j, const std::string& label) {
  const std::string type = get<std::string>(j, "model_type", label);
  if (const Architecture* a = find_architecture(type)) return *a;
  fail(label, "model_type", "unsupported architecture `" + type + "` (supported: " + architecture_names() + ")");
}

Activation parse_activation(const json& j, const std::string& label) {
  const std::string act = get_or<std::string>(j, "hidden_act", "silu", label);
  std::string names;
  for (const auto& a : activations()) {
    if (act == a.hf_name) return a.activation;
    names += (names.empty() ? "" : ", ") + std::string(a.hf_name);
  }
  fail(label, "hidden_act", "unsupported activation `" + act + "` (supported: " + names + ")");
}

// Rotary parameters: transformers 5 writes `rope_parameters` {rope_type, rope_theta, ...}; transformers 4 wrote
// `rope_theta` plus an optional `rope_scaling` {rope_type|type, factor, ...}.
void parse_rope(const json& j, ModelConfig& c, const std::string& label) {
  const json* scaling = nullptr;
  if (j.contains("rope_parameters") && j.at("rope_parameters").is_object()) {
    scaling = &j.at("rope_parameters");
    c.rope_theta = get_or<double>(*scaling, "rope_theta", get_or<double>(j, "rope_theta", c.rope_theta, label), label);
  } else {
    c.rope_theta = get_or<double>(j, "rope_theta", c.rope_theta, label);
    if (j.contains("rope_scaling") && !j.at("rope_scaling").is_null()) {
      if (!j.at("rope_scaling").is_object()) fail(label, "rope_scaling", "expected an object or null");
      scaling = &j.at("rope_scaling");
    }
  }
  if (scaling == nullptr) return;
  std::string type = get_or<std::string>(*scaling, "rope_type", get_or<std::string>(*scaling, "type", "default", label),
                                         label);
  RopeScaling& r = c.rope_scaling;
  r.type = type;
  if (type == "default") return;
  if (type != "linear" && type != "llama3") {
    fail(label, "rope_scaling.rope_type", "unsupported rope type `" + type + "` (supported: default, linear, llama3)");
  }
  r.factor = get<double>(*scaling, "factor", label + " rope_scaling");
  if (r.factor <= 0) fail(label, "rope_scaling.factor", "must be > 0");
  if (type == "llama3") {
    r.low_freq_factor = get<double>(*scaling, "low_freq_factor", label + " rope_scaling");
    r.high_freq_factor = get<double>(*scaling, "high_freq_factor", label + " rope_scaling");
    r.original_max_position_embeddings =
        get<int64_t>(*scaling, "original_max_position_embeddings", label + " rope_scaling");
    if (r.high_freq_factor <= r.low_freq_factor) {
      fail(label, "rope_scaling.high_freq_factor", "must be greater than low_freq_factor");
    }
  }
}

}  // namespace

std::string ModelConfig::model_type() const { return architecture(arch).model_type; }
bool ModelConfig::qkv_bias() const { return architecture(arch).qkv_bias || attention_bias; }
bool ModelConfig::qk_norm() const { return architecture(arch).qk_norm; }

ModelConfig parse_model_config(const std::string& text, const std::string& label) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw DataError(label + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw DataError(label + ": expected a JSON object");
  ModelConfig c;
  const Architecture& family = parse_arch(j, label);
  c.arch = family.arch;
  c.vocab_size = get<int64_t>(j, "vocab_size", label);
  c.hidden_size = get<int64_t>(j, "hidden_size", label);
  c.intermediate_size = get<int64_t>(j, "intermediate_size", label);
  c.num_layers = get<int64_t>(j, "num_hidden_layers", label);
  c.num_heads = get<int64_t>(j, "num_attention_heads", label);
  c.num_kv_heads = get_or<int64_t>(j, "num_key_value_heads", c.num_heads, label);
  if (c.num_heads <= 0) fail(label, "num_attention_heads", "must be > 0");
  c.head_dim = get_or<int64_t>(j, "head_dim", c.hidden_size / c.num_heads, label);
  c.rms_norm_eps = get_or<double>(j, "rms_norm_eps", c.rms_norm_eps, label);
  c.max_position_embeddings = get_or<int64_t>(j, "max_position_embeddings", c.max_position_embeddings, label);
  c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", false, label);
  c.initializer_range = get_or<double>(j, "initializer_range", c.initializer_range, label);
  c.torch_dtype = get_or<std::string>(j, "torch_dtype", get_or<std::string>(j, "dtype", c.torch_dtype, label), label);
  if (c.torch_dtype != "float32" && c.torch_dtype != "bfloat16" && c.torch_dtype != "float16") {
    fail(label, "torch_dtype", "unsupported dtype `" + c.torch_dtype + "` (supported: float32, bfloat16, float16)");
  }
  c.bos_token_ids = token_ids(j, "bos_token_id", label);
  c.eos_token_ids = token_ids(j, "eos_token_id", label);
  if (j.contains("pad_token_id") && j.at("pad_token_id").is_number_integer()) c.pad_token_id = j.at("pad_token_id").get<int64_t>();
  parse_rope(j, c, label);

  c.activation = parse_activation(j, label);
  if (j.contains("quantization_config")) fail(label, "quantization_config", "quantized checkpoints are not supported");
  if (get_or<int64_t>(j, "pretraining_tp", 1, label) != 1) fail(label, "pretraining_tp", "only 1 is supported");

  if (family.attention_bias) c.attention_bias = get_or<bool>(j, "attention_bias", false, label);
  if (family.mlp_bias) c.mlp_bias = get_or<bool>(j, "mlp_bias", false, label);
  switch (family.window) {
    case WindowField::kNone: break;
    case WindowField::kSlidingWindow:
      if (j.contains("sliding_window") && j.at("sliding_window").is_number_integer()) {
        c.sliding_window = j.at("sliding_window").get<int64_t>();
      }
      break;
    case WindowField::kUseSlidingWindow:
      if (get_or<bool>(j, "use_sliding_window", false, label)) {
        fail(label, "use_sliding_window", std::string(family.model_type) + " sliding-window attention is not supported");
      }
      break;
  }
  check_model_config(c, label);
  return c;
}

ModelConfig load_model_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open model config");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_model_config(ss.str(), path);
}

void check_model_config(const ModelConfig& c, const std::string& label) {
  auto positive = [&](int64_t v, const char* field) {
    if (v <= 0) fail(label, field, "must be > 0 (got " + std::to_string(v) + ")");
  };
  positive(c.vocab_size, "vocab_size");
  positive(c.hidden_size, "hidden_size");
  positive(c.intermediate_size, "intermediate_size");
  positive(c.num_layers, "num_hidden_layers");
  positive(c.num_heads, "num_attention_heads");
  positive(c.num_kv_heads, "num_key_value_heads");
  positive(c.head_dim, "head_dim");
  positive(c.max_position_embeddings, "max_position_embeddings");
  if (c.num_heads % c.num_kv_heads != 0) {
    fail(label, "num_key_value_heads",
         "must divide num_attention_heads (" + std::to_string(c.num_kv_heads) + " does not divide " +
             std::to_string(c.num_heads) + ")");
  }
  if (c.head_dim % 2 != 0) fail(label, "head_dim", "must be even for rotary embeddings");
  if (!(c.rms_norm_eps > 0)) fail(label, "rms_norm_eps", "must be > 0");
  if (!(c.rope_theta > 0)) fail(label, "rope_theta", "must be > 0");
}

std::string model_config_to_json(const ModelConfig& c) {
  const Architecture& family = architecture(c.arch);
  json j;
  j["architectures"] = {family.hf_class};
  j["model_type"] = c.model_type();
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = activation_name(c.activation);
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.type == "default") {
    j["rope_scaling"] = nullptr;
  } else {
    json r = {{"rope_type", c.rope_scaling.type}, {"factor", c.rope_scaling.factor}};
    if (c.rope_scaling.type == "llama3") {
      r["low_freq_factor"] = c.rope_scaling.low_freq_factor;
      r["high_freq_factor"] = c.rope_scaling.high_freq_factor;
      r["original_max_position_embeddings"] = c.rope_scaling.original_max_position_embeddings;
    }
    j["rope_scaling"] = r;
  }
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["initializer_range"] = c.initializer_range;
  j["torch_dtype"] = c.torch_dtype;
  if (family.attention_bias) j["attention_bias"] = c.attention_bias;
  if (family.mlp_bias) j["mlp_bias"] = c.mlp_bias;
  switch (family.window) {
    case WindowField::kNone: break;
    case WindowField::kSlidingWindow: j["sliding_window"] = c.sliding_window ? json(*c.sliding_window) : json(nullptr); break;
    case WindowField::kUseSlidingWindow: j["use_sliding_window"] = false; break;
  }
  auto ids = [](const std::vector<int64_t>& v) {
    if (v.empty()) return json(nullptr);
    if (v.size() == 1) return json(v[0]);
    return json(v);
  };
  j["bos_token_id"] = ids(c.bos_token_ids);
  j["eos_token_id"] = ids(c.eos_token_ids);
  j["pad_token_id"] = c.pad_token_id ? json(*c.pad_token_id) : json(nullptr);
  return j.dump(2) + "\n";
}

int64_t parameter_count(const ModelConfig& c) {
  const int64_t h = c.hidden_size, d = c.head_dim, q = c.num_heads * d, kv = c.num_kv_heads * d;
  const int64_t bias_qkv = c.qkv_bias() ? q + 2 * kv : 0;
  const int64_t attn = h * q + 2 * h * kv + q * h + bias_qkv + (c.attention_bias ? h : 0) + (c.qk_norm() ? 2 * d : 0);
  const int64_t mlp = 3 * h * c.intermediate_size + (c.mlp_bias ? 2 * c.intermediate_size + h : 0);
  const int64_t layer = attn + mlp + 2 * h;
  const int64_t embed = c.vocab_size * h;
  return embed + c.num_layers * layer + h + (c.tie_word_embeddings ? 0 : embed);
}

}  // namespace aligntrain::model
