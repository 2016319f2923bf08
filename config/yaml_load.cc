// Strict conversion of a YAML tree into a Recipe, driven by the field tables in fields.h.
#include "config/yaml_load.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <sstream>
#include <type_traits>

#include "config/fields.h"
#include "config/suggest.h"

namespace aligntrain::config {

std::optional<std::string> NodeOrigins::find(const YAML::Node& node) const {
  for (const auto& [n, label] : nodes_) {
    try {
      if (n.is(node)) return label;
    } catch (const YAML::Exception&) {
    }
  }
  return std::nullopt;
}

Location locate(const YAML::Node& node, const std::string& file, const NodeOrigins& origins) {
  try {
    const YAML::Mark m = node.Mark();
    if (!m.is_null()) return Location{file, m.line + 1, m.column + 1};
  } catch (const YAML::Exception&) {
  }
  if (auto label = origins.find(node)) return Location{*label, 0, 0};
  return Location{file, 0, 0};
}

// ---------------------------------------------------------------------------------------------
// Parsing

// Deepest nesting of flow collections and compact sequences (`- - x`), outside quoted scalars and
// comments. A quote opens a quoted scalar only where YAML allows one to start (after a space, an
// indicator or at the start of a line); inside a plain scalar such as `it's` it is an ordinary character.
int yaml_nesting_depth(const std::string& text) {
  int depth = 0, deepest = 0, compact = 0;
  char quote = 0;
  bool comment = false, line_start = true;
  char prev = '\n';
  for (size_t i = 0; i < text.size(); prev = text[i], ++i) {
    const char c = text[i];
    if (quote) {
      if (c == quote) quote = 0;
      else if (c == '\\' && quote == '"') ++i;
      continue;
    }
    if (c == '\n') {
      comment = false;
      line_start = true;
      compact = 0;
      continue;
    }
    if (comment) continue;
    if (line_start && c == '-' && (i + 1 == text.size() || text[i + 1] == ' ')) {
      deepest = std::max(deepest, depth + ++compact);
      continue;
    }
    if (c != ' ' && c != '\t') line_start = false;
    const bool after_separator = std::strchr(" \t\n[{,:-", prev) != nullptr;
    switch (c) {
      case '#': comment = prev == ' ' || prev == '\t' || prev == '\n'; break;
      case '"':
      case '\'': if (after_separator) quote = c; break;
      case '[':
      case '{': deepest = std::max(deepest, ++depth); break;
      case ']':
      case '}': depth = std::max(0, depth - 1); break;
      default: break;
    }
  }
  return deepest;
}

namespace {

struct DocumentCount {
  int documents = 0;      // documents seen (at most kMaxDocuments)
  int with_content = 0;   // documents holding at least one node
  int second_line = 0;    // 1-based line where the second document starts
};

// Counts the documents in `text` with yaml-cpp's event parser. YAML::LoadAll is not used: on some inputs
// (a lone `,`) yaml-cpp 0.7 reports empty documents forever, so the count stops at a small limit.
class DocumentCounter : public YAML::EventHandler {
 public:
  explicit DocumentCounter(DocumentCount& count) : count_(count) {}
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++count_.documents == 2) count_.second_line = mark.line + 1;
    nodes_ = 0;
  }
  void OnDocumentEnd() override { count_.with_content += nodes_ > 0; }
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { ++nodes_; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override { ++nodes_; }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    ++nodes_;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    ++nodes_;
  }
  void OnMapEnd() override {}

 private:
  DocumentCount& count_;
  int nodes_ = 0;
};

DocumentCount count_documents(const std::string& text) {
  constexpr int kMaxDocuments = 4;
  DocumentCount count;
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocumentCounter counter(count);
  while (count.documents < kMaxDocuments && parser.HandleNextDocument(counter)) {
  }
  return count;
}

}  // namespace

std::optional<YAML::Node> parse_recipe_yaml(const std::string& text, const std::string& file, Diagnostics& out) {
  const Location top{file, 0, 0};
  if (yaml_nesting_depth(text) > kMaxYamlNesting) {
    out.push_back(make_diagnostic(top, "", fmt::format("nesting deeper than {} levels; a recipe is never this deep",
                                                        kMaxYamlNesting)));
    return std::nullopt;
  }
  DocumentCount count;
  YAML::Node root;
  try {
    count = count_documents(text);
    if (count.with_content == 1 && count.documents == 1) root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    Location where = top;
    if (!e.mark.is_null()) where = Location{file, e.mark.line + 1, e.mark.column + 1};
    out.push_back(make_diagnostic(where, "", "not valid YAML: " + e.msg));
    return std::nullopt;
  }
  if (count.with_content == 0) {
    out.push_back(make_diagnostic(top, "", "the recipe is empty; it needs at least `stages` (and usually `models`)"));
    return std::nullopt;
  }
  if (count.documents > 1) {
    out.push_back(make_diagnostic(Location{file, count.second_line, 0}, "",
                                  "the text after this point is another YAML document (a `---` separator, or a stray "
                                  "`,`, `]` or `}` at the top level); a recipe is one document"));
    return std::nullopt;
  }
  if (!root.IsMap()) {
    const char* got = root.IsSequence() ? "a list" : "a single value";
    out.push_back(make_diagnostic(locate(root, file, {}), "",
                                  fmt::format("the top level must be a map with keys run, parallel, models, stages "
                                              "(got {})",
                                              got)));
    return std::nullopt;
  }
  return root;
}

// ---------------------------------------------------------------------------------------------
// Conversion

namespace {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};

bool is_identifier(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

// Shortened, printable rendering of user text inside messages.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 60)) out += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  if (s.size() > 60) out += "...";
  return out;
}

std::string quoted(const std::string& s) { return "`" + printable(s) + "`"; }

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return n.Scalar().empty() ? "an empty string" : quoted(n.Scalar());
    default: return "nothing";
  }
}

template <class E>
std::vector<std::string> enum_names() {
  std::vector<std::string> names;
  for (const auto& item : EnumNames<E>::items) names.emplace_back(item.second);
  return names;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

template <class T>
std::string expected() {
  if constexpr (std::is_same_v<T, std::string>) return "a string";
  else if constexpr (std::is_same_v<T, bool>) return "true or false";
  else if constexpr (std::is_same_v<T, int>) return "an integer";
  else if constexpr (std::is_same_v<T, double>) return "a number";
  else if constexpr (std::is_enum_v<T>) return "one of: " + join(enum_names<T>());
  else if constexpr (is_optional<T>::value) return expected<typename T::value_type>();
  else if constexpr (std::is_same_v<T, ModelRef>) return "a model name or a map {model, precompute}";
  else if constexpr (std::is_same_v<T, JsonObject>) return "a map";
  else if constexpr (std::is_same_v<T, std::array<double, 2>>) return "a list of two numbers";
  else if constexpr (is_vector<T>::value) return "a list";
  else return "a map";
}

std::string bound_text(const Bound& b) {
  const bool has_lo = std::isfinite(b.lo), has_hi = std::isfinite(b.hi);
  if (has_lo && has_hi)
    return fmt::format("in {}{}, {}{}", b.lo_open ? '(' : '[', b.lo, b.hi, b.hi_open ? ')' : ']');
  if (has_lo) return fmt::format("{} {}", b.lo_open ? ">" : ">=", b.lo);
  return fmt::format("{} {}", b.hi_open ? "<" : "<=", b.hi);
}

struct Path {
  std::string shown;      // names stages by name: stages.dpo.loss.beta
  std::string canonical;  // names stages by index: stages[1].loss.beta (SourceMap keys)

  Path child(std::string_view key) const {
    const std::string k = printable(key);
    return {shown.empty() ? k : shown + "." + k, canonical.empty() ? std::string(key) : canonical + "." + std::string(key)};
  }
  Path index(size_t i) const { return {fmt::format("{}[{}]", shown, i), fmt::format("{}[{}]", canonical, i)}; }
  // A stage: `stages.NAME` when it has a usable name, `stages[i]` otherwise.
  Path item(size_t i, const std::string& name) const {
    Path p = index(i);
    if (is_identifier(name)) p.shown = shown + "." + name;
    return p;
  }
};

std::string peek_name(const YAML::Node& item) {
  if (!item.IsMap()) return "";
  for (const auto& kv : item)
    if (kv.first.IsScalar() && kv.first.Scalar() == "name" && kv.second.IsScalar()) return kv.second.Scalar();
  return "";
}

std::optional<long long> parse_integer(std::string s) {
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  long long v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<double> parse_number(std::string s) {
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty() || !std::isfinite(v)) return std::nullopt;
  return v;
}

class Converter {
 public:
  Converter(const std::string& file, const NodeOrigins& origins, SourceMap& sources, Diagnostics& diags)
      : file_(file), origins_(origins), sources_(sources), diags_(diags) {}

  template <class T>
  void load_map(const YAML::Node& node, T& out, const Path& path, const Key& self) {
    if (!node.IsMap()) {
      fail(node, path, fmt::format("expected a map, got {}", describe(node)));
      return;
    }
    const bool saved_lenient = lenient_;
    std::vector<std::string> known, applicable;
    Fields<T>::each(out, self.kind, [&](const Key& k, auto& member) {
      known.emplace_back(k.name);
      const bool applies = k.applies || lenient_;
      if (applies) applicable.emplace_back(k.name);
      load_field(node, k, applies, member, path.child(k.name));
    });
    check_keys(node, path, known, applicable);
    lenient_ = saved_lenient;
  }

 private:
  Location where(const YAML::Node& n) const { return locate(n, file_, origins_); }

  // A null value's mark points past it, at the next token: use its key's, unless --set made the value.
  Location where_value(const YAML::Node& key, const YAML::Node& value) const {
    if (!value.IsNull() || origins_.find(value)) return where(value);
    return where(key);
  }

  // Reports a problem at `p`; checks that depend on the value at `p` are skipped later.
  void fail_at(const Location& at, const Path& p, std::string message) {
    sources_.mark_invalid(p.canonical);
    diags_.push_back(make_diagnostic(at, p.shown, std::move(message)));
  }
  void fail(const YAML::Node& n, const Path& p, std::string message) { fail_at(where(n), p, std::move(message)); }

  template <class M>
  void load_field(const YAML::Node& map, const Key& k, bool applies, M& member, const Path& p) {
    std::optional<YAML::Node> found_key, found_value;
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == k.name) {
        found_key.emplace(it->first);
        found_value.emplace(it->second);
        break;
      }
    }
    if (!found_value) {
      if (k.required && applies) fail(map, p, fmt::format("missing required key `{}`", k.name));
      return;
    }
    const YAML::Node& key_copy = *found_key;
    const YAML::Node& value_copy = *found_value;
    if (!applies) {
      fail(key_copy, p, fmt::format("`{}` {}", k.name, k.why_not));
      return;
    }
    sources_.set(p.canonical, where_value(key_copy, value_copy));
    const size_t before = diags_.size();
    if (value_copy.IsNull()) {
      if constexpr (is_optional<M>::value) member.reset();
      else fail_at(where_value(key_copy, value_copy), p, fmt::format("missing value (expected {})", expected<M>()));
    } else {
      load(value_copy, member, p, k);
    }
    // Do not judge other keys by a value that could not be read.
    if (diags_.size() != before && k.discriminator) lenient_ = true;
  }

  void check_keys(const YAML::Node& map, const Path& path, const std::vector<std::string>& known,
                  const std::vector<std::string>& applicable) {
    std::map<std::string, Location> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node k = it->first;
      if (!k.IsScalar()) {
        fail(k, path, fmt::format("a key must be a plain name, got {}", describe(k)));
        continue;
      }
      const std::string name = k.Scalar();
      const Path p = path.child(name);
      auto first = seen.find(name);
      if (first != seen.end()) {
        fail(k, p, first->second.line > 0 ? fmt::format("duplicate key (first at line {})", first->second.line)
                                          : std::string("duplicate key"));
        continue;
      }
      seen.emplace(name, where(k));
      if (std::find(known.begin(), known.end(), name) != known.end()) continue;
      std::string hint = did_you_mean(name, applicable);
      if (hint.empty()) hint = did_you_mean(name, known);
      if (hint.empty() && applicable.size() <= 12) hint = "; valid keys: " + join(applicable);
      fail(k, p, "unknown key" + hint);
    }
  }

  void check_bound(const YAML::Node& n, const Path& p, const Key& k, double v) {
    if (k.bound && !k.bound->contains(v)) fail(n, p, fmt::format("must be {} (got {})", bound_text(*k.bound), v));
  }

  // --- scalars ---

  void load(const YAML::Node& n, std::string& out, const Path& p, const Key& k) {
    if (!n.IsScalar()) return fail(n, p, fmt::format("expected a string, got {}", describe(n)));
    out = n.Scalar();
    if (k.identifier && !is_identifier(out))
      fail(n, p, fmt::format("must be a name of letters, digits, `_` and `-` (got {})", describe(n)));
  }

  void load(const YAML::Node& n, bool& out, const Path& p, const Key&) {
    const std::string s = n.IsScalar() ? n.Scalar() : "";
    if (s == "true" || s == "True" || s == "TRUE") out = true;
    else if (s == "false" || s == "False" || s == "FALSE") out = false;
    else fail(n, p, fmt::format("expected true or false, got {}", describe(n)));
  }

  void load(const YAML::Node& n, int& out, const Path& p, const Key& k) {
    auto v = n.IsScalar() ? parse_integer(n.Scalar()) : std::nullopt;
    if (!v || *v < std::numeric_limits<int>::min() || *v > std::numeric_limits<int>::max())
      return fail(n, p, fmt::format("expected an integer, got {}", describe(n)));
    out = static_cast<int>(*v);
    check_bound(n, p, k, out);
  }

  void load(const YAML::Node& n, double& out, const Path& p, const Key& k) {
    auto v = n.IsScalar() ? parse_number(n.Scalar()) : std::nullopt;
    if (!v) return fail(n, p, fmt::format("expected a number, got {}", describe(n)));
    out = *v;
    check_bound(n, p, k, out);
  }

  template <class E, std::enable_if_t<std::is_enum_v<E>, int> = 0>
  void load(const YAML::Node& n, E& out, const Path& p, const Key&) {
    auto v = n.IsScalar() ? parse_enum<E>(n.Scalar()) : std::nullopt;
    if (v) {
      out = *v;
      return;
    }
    const auto names = enum_names<E>();
    const std::string hint = n.IsScalar() ? did_you_mean(n.Scalar(), names) : "";
    fail(n, p, fmt::format("expected one of: {}; got {}{}", join(names), describe(n), hint));
  }

  // --- containers ---

  template <class T>
  void load(const YAML::Node& n, std::optional<T>& out, const Path& p, const Key& k) {
    T value{};
    const size_t before = diags_.size();
    load(n, value, p, k);
    if (diags_.size() == before) out = std::move(value);
  }

  template <class T>
  void load(const YAML::Node& n, std::vector<T>& out, const Path& p, const Key& k) {
    out.clear();
    if (n.IsScalar() && k.scalar_or_list) {
      T value{};
      const size_t before = diags_.size();
      load(n, value, p, k);
      if (diags_.size() == before) out.push_back(std::move(value));
      return;
    }
    if (!n.IsSequence()) return fail(n, p, fmt::format("expected a list, got {}", describe(n)));
    size_t i = 0;
    for (auto it = n.begin(); it != n.end(); ++it, ++i) {
      T value{};
      const size_t before = diags_.size();
      load(*it, value, p.index(i), k);
      if (diags_.size() == before) out.push_back(std::move(value));
    }
  }

  // A YAML map as a JSON object; plain scalars typed as YAML reads them (null, true/false, numbers), quoted ones
  // stay strings.
  void load(const YAML::Node& n, JsonObject& out, const Path& p, const Key&) {
    if (!n.IsMap()) return fail(n, p, fmt::format("expected a map, got {}", describe(n)));
    out.json = to_json(n).dump();
  }

  static nlohmann::ordered_json to_json(const YAML::Node& n) {
    if (n.IsMap()) {
      nlohmann::ordered_json o = nlohmann::ordered_json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = to_json(kv.second);
      return o;
    }
    if (n.IsSequence()) {
      nlohmann::ordered_json a = nlohmann::ordered_json::array();
      for (const auto& item : n) a.push_back(to_json(item));
      return a;
    }
    if (!n.IsScalar()) return nullptr;
    const std::string& s = n.Scalar();
    if (n.Tag() == "!") return s;  // quoted
    if (s == "null" || s == "Null" || s == "NULL" || s == "~" || s.empty()) return nullptr;
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    if (const auto i = parse_integer(s)) return *i;
    if (const auto d = parse_number(s)) return *d;
    return s;
  }

  void load(const YAML::Node& n, std::array<double, 2>& out, const Path& p, const Key& k) {
    if (!n.IsSequence() || n.size() != 2)
      return fail(n, p, fmt::format("expected a list of two numbers, got {}", describe(n)));
    for (size_t i = 0; i < 2; ++i) load(n[i], out[i], p.index(i), k);
  }

  void load(const YAML::Node& n, ModelRef& out, const Path& p, const Key& k) {
    if (n.IsScalar()) return load(n, out.model, p, key("model").ident());
    if (!n.IsMap()) return fail(n, p, fmt::format("expected {}, got {}", expected<ModelRef>(), describe(n)));
    load_map(n, out, p, k);
    if (!out.model.empty() && !is_identifier(out.model)) fail(n, p.child("model"), "must be a model or stage name");
  }

  template <class T>
  void load(const YAML::Node& n, Ordered<T>& out, const Path& p, const Key& k) {
    if (!n.IsMap()) return fail(n, p, fmt::format("expected a map of names to models, got {}", describe(n)));
    for (auto it = n.begin(); it != n.end(); ++it) {
      const YAML::Node name_node = it->first, value = it->second;
      if (!name_node.IsScalar() || !is_identifier(name_node.Scalar())) {
        fail(name_node, p, fmt::format("a name must be letters, digits, `_` and `-` (got {})", describe(name_node)));
        continue;
      }
      const std::string name = name_node.Scalar();
      const Path ip = p.child(name);
      if (out.find(name)) {
        fail(name_node, ip, "duplicate key");
        continue;
      }
      sources_.set(ip.canonical, where(value.IsNull() ? name_node : value));
      out.items.emplace_back(name, T{});
      if (value.IsNull()) fail(name_node, ip, fmt::format("missing value (expected {})", expected<T>()));
      else load(value, out.items.back().second, ip, k);
    }
  }

  void load(const YAML::Node& n, std::vector<StageConfig>& out, const Path& p, const Key& k) {
    if (!n.IsSequence()) return fail(n, p, fmt::format("expected a list of stages, got {}", describe(n)));
    if (n.size() == 0) return fail(n, p, "needs at least one stage");
    size_t i = 0;
    for (auto it = n.begin(); it != n.end(); ++it, ++i) {
      const Path ip = p.item(i, peek_name(*it));
      sources_.set(ip.canonical, where(*it));
      out.emplace_back();
      load_map(*it, out.back(), ip, k);
    }
  }

  template <class T, std::enable_if_t<has_fields<T>::value, int> = 0>
  void load(const YAML::Node& n, T& out, const Path& p, const Key& k) {
    load_map(n, out, p, k);
  }

  const std::string& file_;
  const NodeOrigins& origins_;
  SourceMap& sources_;
  Diagnostics& diags_;
  bool lenient_ = false;  // a discriminator (stage kind, loss type) failed: accept every key of this map
};

}  // namespace

void convert_recipe(const YAML::Node& root, const std::string& file, const NodeOrigins& origins, Recipe& recipe,
                    Diagnostics& out) {
  recipe.sources.set("", Location{file, 1, 1});
  Converter converter(file, origins, recipe.sources, out);
  try {
    converter.load_map(root, recipe, Path{}, key(""));
  } catch (const YAML::Exception& e) {
    out.push_back(make_diagnostic(Location{file, e.mark.line + 1, e.mark.column + 1}, "", "invalid YAML: " + e.msg));
  }
}

}  // namespace aligntrain::config
