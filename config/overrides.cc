// --set KEY=VALUE: path parsing, walking the YAML tree, and splicing in the parsed value.
#include "config/overrides.h"

#include <fmt/format.h>

#include <iterator>
#include <optional>

#include "config/suggest.h"

namespace aligntrain::config {
namespace {

struct Step {
  std::string text;
  bool bracket = false;  // written `[N]`
};

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() < 10 && s.find_first_not_of("0123456789") == std::string::npos;
}

// "stages[0].loss.beta" → stages, [0], loss, beta. Returns an error message on a malformed path.
std::optional<std::string> split_path(const std::string& key, std::vector<Step>& steps) {
  std::string part;
  size_t i = 0;
  auto flush = [&]() -> bool {
    if (part.empty()) return false;
    steps.push_back({part, false});
    part.clear();
    return true;
  };
  while (i < key.size()) {
    const char c = key[i];
    if (c == '.') {
      if (!flush() && (steps.empty() || !steps.back().bracket)) return "empty component in the key path";
      ++i;
    } else if (c == '[') {
      const size_t close = key.find(']', i);
      if (close == std::string::npos) return "`[` without `]` in the key path";
      const std::string index = key.substr(i + 1, close - i - 1);
      if (!all_digits(index)) return fmt::format("`[{}]` is not a list index", index);
      flush();
      if (steps.empty()) return "the key path cannot start with an index";
      steps.push_back({index, true});
      i = close + 1;
    } else {
      part += c;
      ++i;
    }
  }
  if (!flush() && (steps.empty() || !steps.back().bracket)) return "empty component in the key path";
  return std::nullopt;
}

// A copy of `n` made of fresh nodes (no file position), each recorded as coming from `label`.
std::optional<YAML::Node> rebuild(const YAML::Node& n, const std::string& label, NodeOrigins& origins, int depth) {
  if (depth > kMaxYamlNesting) return std::nullopt;
  YAML::Node out;
  switch (n.Type()) {
    case YAML::NodeType::Scalar: out = YAML::Node(n.Scalar()); break;
    case YAML::NodeType::Sequence:
      out = YAML::Node(YAML::NodeType::Sequence);
      for (auto it = n.begin(); it != n.end(); ++it) {
        auto item = rebuild(*it, label, origins, depth + 1);
        if (!item) return std::nullopt;
        out.push_back(*item);
      }
      break;
    case YAML::NodeType::Map:
      out = YAML::Node(YAML::NodeType::Map);
      for (auto it = n.begin(); it != n.end(); ++it) {
        auto k = rebuild(it->first, label, origins, depth + 1);
        auto v = rebuild(it->second, label, origins, depth + 1);
        if (!k || !v) return std::nullopt;
        out.force_insert(*k, *v);
      }
      break;
    default: out = YAML::Node(YAML::NodeType::Null); break;
  }
  origins.add(out, label);
  return out;
}

class Applier {
 public:
  Applier(const std::string& text, NodeOrigins& origins, Diagnostics& out)
      : label_("--set " + (text.size() > 120 ? text.substr(0, 120) + "..." : text)), origins_(origins), out_(out) {}

  void apply(YAML::Node& root, const std::string& text) {
    const size_t eq = text.find('=');
    if (eq == std::string::npos) return fail("", "expected KEY=VALUE (e.g. stages.dpo.loss.beta=0.05)");
    std::vector<Step> steps;
    if (auto bad = split_path(text.substr(0, eq), steps)) return fail(text.substr(0, eq), *bad);
    auto value = parse_value(text.substr(eq + 1));
    if (!value) return;
    walk(root, steps, *value);
  }

 private:
  void fail(const std::string& path, std::string message) {
    out_.push_back(make_diagnostic(Location{label_, 0, 0}, path, std::move(message)));
  }

  std::optional<YAML::Node> parse_value(const std::string& text) {
    if (yaml_nesting_depth(text) > kMaxYamlNesting) {
      fail("", fmt::format("the value is nested deeper than {} levels", kMaxYamlNesting));
      return std::nullopt;
    }
    YAML::Node parsed;
    try {
      parsed = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      fail("", "the value is not valid YAML: " + e.msg);
      return std::nullopt;
    }
    auto fresh = rebuild(parsed, label_, origins_, 0);
    if (!fresh) fail("", fmt::format("the value is nested deeper than {} levels", kMaxYamlNesting));
    return fresh;
  }

  // Follows `steps` from `root`, creating maps as needed, and puts `value` at the end.
  void walk(YAML::Node& root, const std::vector<Step>& steps, const YAML::Node& value) {
    YAML::Node cur;
    cur.reset(root);
    std::string walked;
    for (size_t i = 0; i < steps.size(); ++i) {
      const Step& step = steps[i];
      const bool last = i + 1 == steps.size();
      const std::string here = walked.empty() ? step.text : walked + (step.bracket ? "[" + step.text + "]" : "." + step.text);
      std::optional<YAML::Node> next;
      if (cur.IsSequence()) {
        next = list_item(cur, step, walked);
        if (!next) return;
      } else if (cur.IsMap() || cur.IsNull()) {
        if (step.bracket) return fail(here, fmt::format("`{}` is a map, not a list", walked));
        next = map_value(cur, step.text, last);
      } else {
        return fail(here, fmt::format("`{}` is a single value, so it has no `{}`", walked, step.text));
      }
      if (last) {
        YAML::Node target = *next;
        target = value;  // assigns in place: the tree now holds the override's value
        return;
      }
      cur.reset(*next);
      walked = here;
    }
  }

  std::optional<YAML::Node> list_item(const YAML::Node& list, const Step& step, const std::string& walked) {
    if (step.bracket || all_digits(step.text)) {
      const size_t index = std::stoul(step.text);
      if (index >= list.size()) {
        fail(walked, fmt::format("index {} is out of range: `{}` has {} item{}", index, walked, list.size(),
                                 list.size() == 1 ? "" : "s"));
        return std::nullopt;
      }
      auto it = list.begin();
      std::advance(it, static_cast<std::ptrdiff_t>(index));
      return *it;
    }
    std::vector<std::string> names;
    for (auto it = list.begin(); it != list.end(); ++it) {
      if (!it->IsMap()) continue;
      for (auto kv = it->begin(); kv != it->end(); ++kv) {
        if (!kv->first.IsScalar() || kv->first.Scalar() != "name" || !kv->second.IsScalar()) continue;
        if (kv->second.Scalar() == step.text) return *it;
        names.push_back(kv->second.Scalar());
      }
    }
    std::string message = fmt::format("no item named `{}` in `{}`", step.text, walked);
    if (!names.empty()) {
      std::string all;
      for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
      message += fmt::format(" (names: {}){}", all, did_you_mean(step.text, names));
    }
    fail(walked + "." + step.text, message);
    return std::nullopt;
  }

  // The value under `key`, created (as a map, or null for the final step) when missing.
  YAML::Node map_value(YAML::Node& map, const std::string& key, bool last) {
    for (auto it = map.begin(); it != map.end(); ++it)
      if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
    YAML::Node k(key);
    YAML::Node v(last ? YAML::NodeType::Null : YAML::NodeType::Map);
    origins_.add(k, label_);
    origins_.add(v, label_);
    map.force_insert(k, v);
    return v;
  }

  std::string label_;
  NodeOrigins& origins_;
  Diagnostics& out_;
};

}  // namespace

void apply_overrides(YAML::Node& root, const std::vector<std::string>& overrides, NodeOrigins& origins,
                     Diagnostics& out) {
  for (const auto& text : overrides) {
    try {
      Applier(text, origins, out).apply(root, text);
    } catch (const YAML::Exception& e) {
      out.push_back(make_diagnostic(Location{"--set " + text.substr(0, 120), 0, 0}, "", "cannot apply: " + e.msg));
    }
  }
}

}  // namespace aligntrain::config
