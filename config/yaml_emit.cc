// YAML emission of a Recipe through the field tables (see yaml_emit.h).
#include "config/yaml_emit.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <type_traits>

#include "config/fields.h"

namespace aligntrain::config {
namespace {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

// False for values that mean "none" and are not written.
template <class T>
bool present(const T& v) {
  if constexpr (is_optional<T>::value) return v.has_value();
  else if constexpr (std::is_same_v<T, std::string>) return !v.empty();
  else if constexpr (std::is_same_v<T, JsonObject>) return v.json != "{}";
  else return true;
}

class Emitter {
 public:
  explicit Emitter(YAML::Emitter& out) : out_(out) {}

  template <class T>
  void map(const T& value, StageKind kind) {
    out_ << YAML::BeginMap;
    Fields<T>::each(value, kind, [&](const Key& k, const auto& member) {
      if (!k.applies || !present(member)) return;
      out_ << YAML::Key << std::string(k.name) << YAML::Value;
      emit(member, k);
    });
    out_ << YAML::EndMap;
  }

 private:
  void emit(const std::string& v, const Key&) { out_ << v; }
  void emit(bool v, const Key&) { out_ << (v ? "true" : "false"); }
  void emit(int v, const Key&) { out_ << v; }
  // Shortest text that reads back as the same double.
  void emit(double v, const Key&) {
    std::string text = fmt::format("{}", v);
    if (text.find_first_of(".e") == std::string::npos) text += ".0";  // 1.0, not 1: visibly a real number
    out_ << text;
  }

  template <class E, std::enable_if_t<std::is_enum_v<E>, int> = 0>
  void emit(E v, const Key&) {
    out_ << std::string(name_of(v));
  }

  template <class T>
  void emit(const std::optional<T>& v, const Key& k) {
    emit(*v, k);
  }

  template <class T>
  void emit(const std::vector<T>& v, const Key& k) {
    if (k.scalar_or_list && v.size() == 1) return emit(v[0], k);
    out_ << YAML::Flow << YAML::BeginSeq;
    for (const auto& item : v) emit(item, k);
    out_ << YAML::EndSeq;
  }

  // In flow style, strings quoted: the object reads back with the same types.
  void emit(const JsonObject& v, const Key&) { emit_json(nlohmann::ordered_json::parse(v.json)); }

  void emit_json(const nlohmann::ordered_json& j) {
    if (j.is_object()) {
      out_ << YAML::Flow << YAML::BeginMap;
      for (const auto& [k, item] : j.items()) {
        out_ << YAML::Key << k << YAML::Value;
        emit_json(item);
      }
      out_ << YAML::EndMap;
    } else if (j.is_array()) {
      out_ << YAML::Flow << YAML::BeginSeq;
      for (const auto& item : j) emit_json(item);
      out_ << YAML::EndSeq;
    } else if (j.is_string()) {
      out_ << YAML::DoubleQuoted << j.get<std::string>();
    } else {
      out_ << j.dump();  // null, true/false, numbers
    }
  }

  void emit(const std::array<double, 2>& v, const Key& k) {
    out_ << YAML::Flow << YAML::BeginSeq;
    for (double x : v) emit(x, k);
    out_ << YAML::EndSeq;
  }

  void emit(const ModelRef& v, const Key& k) {
    if (!v.precompute) return emit(v.model, k);
    out_ << YAML::Flow;
    map(v, k.kind);
  }

  template <class T>
  void emit(const Ordered<T>& v, const Key& k) {
    out_ << YAML::BeginMap;
    for (const auto& [name, item] : v.items) {
      out_ << YAML::Key << name << YAML::Value;
      emit(item, k);
    }
    out_ << YAML::EndMap;
  }

  void emit(const std::vector<StageConfig>& stages, const Key& k) {
    out_ << YAML::BeginSeq;
    for (const auto& s : stages) map(s, k.kind);
    out_ << YAML::EndSeq;
  }

  template <class T, std::enable_if_t<has_fields<T>::value, int> = 0>
  void emit(const T& v, const Key& k) {
    map(v, k.kind);
  }

  YAML::Emitter& out_;
};

}  // namespace

std::string emit_yaml(const Recipe& recipe) {
  YAML::Emitter out;
  out.SetIndent(2);
  if (!recipe.path.empty()) out << YAML::Comment("resolved from " + recipe.path) << YAML::Newline;
  Emitter(out).map(recipe, StageKind::sft);
  return std::string(out.c_str()) + "\n";
}

}  // namespace aligntrain::config
