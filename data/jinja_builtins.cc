// Attribute / item access, methods, filters, tests, globals and operators of the Jinja engine (see
// jinja_builtins.h). Each mirrors its Jinja2 / Python original; differences are noted where they are.
// Case mapping follows data/jinja_case.h.
#include "data/jinja_builtins.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_set>

#include "data/jinja_case.h"
#include "data/jinja_parser.h"

namespace aligntrain::data::jinja {

namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

// ---- small helpers ----

std::string replace_all(const BuiltinEnv& env, const std::string& s, const std::string& from, const std::string& to,
                        int64_t count) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` before every character and at the end.
    std::vector<size_t> offsets = utf8_offsets(s);
    int64_t done = 0;
    for (size_t k = 0; k + 1 < offsets.size(); ++k) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      out.append(s, offsets[k], offsets[k + 1] - offsets[k]);
      check_size(env, out.size());
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t at = s.find(from, pos);
    if (at == std::string::npos) break;
    out.append(s, pos, at - pos);
    out += to;
    check_size(env, out.size());
    pos = at + from.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  check_size(env, out.size());
  return out;
}

std::vector<std::string> python_split(const std::string& s, const Value& sep, int64_t maxsplit) {
  std::vector<std::string> parts;
  if (sep.is_none() || sep.is_undefined()) {
    size_t i = 0, n = s.size();
    auto skip_ws = [&](size_t p) {
      while (p < n) {
        size_t len;
        if (!utf8_is_space_at(s, p, &len)) break;
        p += len;
      }
      return p;
    };
    i = skip_ws(i);
    while (i < n) {
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        parts.push_back(s.substr(i));
        return parts;
      }
      size_t j = i;
      while (j < n) {
        size_t len;
        if (utf8_is_space_at(s, j, &len)) break;
        j += len;
      }
      parts.push_back(s.substr(i, j - i));
      i = skip_ws(j);
    }
    return parts;
  }
  if (!sep.is_string()) throw ValueError("must be str or None, not " + sep.type_name());
  const std::string& d = sep.str();
  if (d.empty()) throw ValueError("empty separator");
  size_t pos = 0;
  while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
    size_t at = s.find(d, pos);
    if (at == std::string::npos) break;
    parts.push_back(s.substr(pos, at - pos));
    pos = at + d.size();
  }
  parts.push_back(s.substr(pos));
  return parts;
}

std::vector<std::string> python_rsplit(const std::string& s, const Value& sep, int64_t maxsplit) {
  if (maxsplit < 0) return python_split(s, sep, maxsplit);
  if (sep.is_none() || sep.is_undefined()) {
    // CPython's rsplit_whitespace: words from the end; the remainder keeps its leading whitespace.
    std::vector<size_t> offsets = utf8_offsets(s);
    auto space = [&](int64_t k) {
      size_t n;
      return utf8_is_space_at(s, offsets[static_cast<size_t>(k)], &n);
    };
    std::vector<std::string> parts;
    int64_t i = static_cast<int64_t>(offsets.size()) - 2;
    while (i >= 0 && space(i)) --i;
    while (i >= 0 && static_cast<int64_t>(parts.size()) < maxsplit) {
      int64_t j = i;
      while (i >= 0 && !space(i)) --i;
      parts.insert(parts.begin(), s.substr(offsets[i + 1], offsets[j + 1] - offsets[i + 1]));
      while (i >= 0 && space(i)) --i;
    }
    if (i >= 0) parts.insert(parts.begin(), s.substr(0, offsets[i + 1]));
    return parts;
  }
  if (!sep.is_string()) throw ValueError("must be str or None, not " + sep.type_name());
  const std::string& d = sep.str();
  if (d.empty()) throw ValueError("empty separator");
  std::vector<std::string> parts;
  size_t end = s.size();
  while (static_cast<int64_t>(parts.size()) < maxsplit) {
    if (end < d.size()) break;
    size_t at = s.rfind(d, end - d.size());
    if (at == std::string::npos) break;
    parts.insert(parts.begin(), s.substr(at + d.size(), end - at - d.size()));
    end = at;
  }
  parts.insert(parts.begin(), s.substr(0, end));
  return parts;
}

// Python's str.splitlines() (keepends=False).
std::vector<std::string> python_splitlines(const std::string& s) {
  std::vector<std::string> lines;
  size_t start = 0, i = 0;
  while (i < s.size()) {
    size_t n = 1;
    unsigned char c = static_cast<unsigned char>(s[i]);
    bool is_break = false;
    size_t break_len = 1;
    if (c == '\n' || c == '\v' || c == '\f' || c == 0x1C || c == 0x1D || c == 0x1E) {
      is_break = true;
    } else if (c == '\r') {
      is_break = true;
      if (i + 1 < s.size() && s[i + 1] == '\n') break_len = 2;
    } else if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x85) {
      is_break = true;
      break_len = 2;
    } else if (c == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
               (static_cast<unsigned char>(s[i + 2]) == 0xA8 || static_cast<unsigned char>(s[i + 2]) == 0xA9)) {
      is_break = true;
      break_len = 3;
    }
    if (is_break) {
      lines.push_back(s.substr(start, i - start));
      i += break_len;
      start = i;
    } else {
      i += n;
    }
  }
  if (start < s.size()) lines.push_back(s.substr(start));
  return lines;
}

std::vector<Value> to_values(const std::vector<std::string>& parts) {
  std::vector<Value> out;
  out.reserve(parts.size());
  for (const auto& p : parts) out.emplace_back(p);
  return out;
}

const std::string& need_string(const Value& v, const std::string& what) {
  if (!v.is_string()) throw ValueError(what + " must be str, not " + v.type_name());
  return v.str();
}

int64_t need_int(const Value& v, const std::string& what) {
  if (v.is_int() || v.is_bool()) return v.as_int();
  throw ValueError("'" + v.type_name() + "' object cannot be interpreted as an integer (" + what + ")");
}

// soft_str: Python str() (Undefined -> "").
std::string soft_str(const Value& v) { return v.to_str(); }

// Python's printf-style `format % args` for %s %r %d %i %f %x %%, with optional width / precision.
std::string percent_format(const BuiltinEnv& env, const std::string& format, const Value& args) {
  std::vector<Value> values;
  const Dict* mapping = nullptr;
  if (args.is_list() && args.list_ref().form == List::Form::kTuple) values = args.list_ref().items;
  else if (args.is_dict()) mapping = &args.dict_ref();
  else values.push_back(args);
  size_t next_arg = 0;
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out += format[i];
      continue;
    }
    ++i;
    if (i >= format.size()) throw ValueError("incomplete format");
    if (format[i] == '%') {
      out += '%';
      continue;
    }
    const Value* arg = nullptr;
    Value keyed;
    if (format[i] == '(') {
      size_t close = format.find(')', i);
      if (close == std::string::npos || !mapping) throw ValueError("format requires a mapping");
      const Value* found = mapping->find(std::string_view(format).substr(i + 1, close - i - 1));
      if (!found) throw ValueError("KeyError in format: " + format.substr(i + 1, close - i - 1));
      keyed = *found;
      arg = &keyed;
      i = close + 1;
    }
    std::string spec = "%";
    while (i < format.size() && std::strchr("-+ #0123456789.", format[i])) spec += format[i++];
    if (i >= format.size()) throw ValueError("incomplete format");
    char conv = format[i];
    if (!arg) {
      if (next_arg >= values.size()) throw ValueError("not enough arguments for format string");
      arg = &values[next_arg++];
    }
    char buf[512];
    switch (conv) {
      case 's':
      case 'r': {
        std::string s = conv == 's' ? arg->to_str() : arg->repr();
        spec += 's';
        if (spec == "%s") out += s;
        else {
          if (std::snprintf(buf, sizeof buf, spec.c_str(), s.c_str()) < 0) {
            throw ValueError("format field too wide");
          }
          out += buf;
        }
        break;
      }
      case 'd':
      case 'i':
      case 'x':
      case 'X': {
        if (!arg->is_number()) throw ValueError("%" + std::string(1, conv) + " format: a real number is required");
        int64_t v = arg->is_float() ? static_cast<int64_t>(arg->as_double()) : arg->as_int();
        spec += "ll";
        spec += conv == 'i' ? 'd' : conv;
        if (std::snprintf(buf, sizeof buf, spec.c_str(), static_cast<long long>(v)) < 0) {
          throw ValueError("format field too wide");
        }
        out += buf;
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'g': {
        if (!arg->is_number()) throw ValueError("must be real number, not " + arg->type_name());
        spec += conv;
        if (std::snprintf(buf, sizeof buf, spec.c_str(), arg->as_double()) < 0) {
          throw ValueError("format field too wide");
        }
        out += buf;
        break;
      }
      default: throw ValueError(std::string("unsupported format character '") + conv + "'");
    }
    check_size(env, out.size());
  }
  if (!mapping && next_arg < values.size()) throw ValueError("not all arguments converted during string formatting");
  return out;
}

// str.format with {} / {0} / {name} fields and !s / !r conversions (no format specs).
std::string brace_format(const BuiltinEnv& env, const std::string& format, CallArgs& call) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < format.size(); ++i) {
    char c = format[i];
    if (c == '}') {
      if (i + 1 < format.size() && format[i + 1] == '}') {
        out += '}';
        ++i;
        continue;
      }
      throw ValueError("Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < format.size() && format[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    size_t close = format.find('}', i);
    if (close == std::string::npos) throw ValueError("Single '{' encountered in format string");
    std::string field = format.substr(i + 1, close - i - 1);
    char conversion = 's';
    size_t bang = field.find('!');
    if (bang != std::string::npos) {
      if (bang + 2 != field.size()) throw ValueError("invalid conversion in format string");
      conversion = field[bang + 1];
      field.resize(bang);
    }
    if (field.find(':') != std::string::npos) throw ValueError("format specs in str.format are not supported");
    Value v;
    if (field.empty()) {
      if (auto_index >= call.args.size()) throw ValueError("Replacement index out of range for positional args");
      v = call.args[auto_index++];
    } else if (std::all_of(field.begin(), field.end(), [](char d) { return std::isdigit(static_cast<unsigned char>(d)); })) {
      size_t k = std::strtoul(field.c_str(), nullptr, 10);
      if (k >= call.args.size()) throw ValueError("Replacement index out of range for positional args");
      v = call.args[k];
    } else {
      bool found = false;
      for (auto& [key, value] : call.kwargs) {
        if (key == field) {
          v = value;
          found = true;
        }
      }
      if (!found) throw ValueError("KeyError: '" + field + "'");
    }
    out += conversion == 'r' ? v.repr() : v.to_str();
    check_size(env, out.size());
    i = close;
  }
  return out;
}

bool tuple_or_str_prefix(const std::string& s, const Value& what, bool suffix) {
  auto one = [&](const Value& p) {
    const std::string& x = need_string(p, suffix ? "endswith arg" : "startswith arg");
    if (x.size() > s.size()) return false;
    return suffix ? s.compare(s.size() - x.size(), x.size(), x) == 0 : s.compare(0, x.size(), x) == 0;
  };
  if (what.is_list() && what.list_ref().form == List::Form::kTuple) {
    for (const auto& p : what.list_ref().items) {
      if (one(p)) return true;
    }
    return false;
  }
  return one(what);
}

void expect_args(const CallArgs& call, size_t max_positional, std::initializer_list<const char*> names) {
  if (call.args.size() > max_positional) {
    throw ValueError(call.callee + "() takes at most " + std::to_string(max_positional) + " argument(s) (" +
                     std::to_string(call.args.size()) + " given)");
  }
  for (const auto& kw : call.kwargs) {
    bool known = false;
    for (const char* n : names) known = known || kw.first == n;
    if (!known) throw ValueError(call.callee + "() got an unexpected keyword argument '" + kw.first + "'");
  }
}

Value string_method(const BuiltinEnv& env, const std::string& s, const std::string& name, CallArgs& call) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    expect_args(call, 1, {"chars"});
    Value chars = call.get(0, "chars", Value::none());
    bool left = name != "rstrip", right = name != "lstrip";
    if (chars.is_none() || chars.is_undefined()) return Value(python_strip(s, left, right));
    return Value(python_strip_chars(s, need_string(chars, "strip arg"), left, right));
  }
  if (name == "startswith" || name == "endswith") {
    expect_args(call, 1, {});
    if (call.args.empty()) throw ValueError(name + "() takes at least 1 argument (0 given)");
    return Value(tuple_or_str_prefix(s, call.args[0], name == "endswith"));
  }
  if (name == "split" || name == "rsplit") {
    expect_args(call, 2, {"sep", "maxsplit"});
    Value sep = call.get(0, "sep", Value::none());
    int64_t maxsplit = need_int(call.get(1, "maxsplit", Value(int64_t{-1})), "maxsplit");
    auto parts = name == "split" ? python_split(s, sep, maxsplit) : python_rsplit(s, sep, maxsplit);
    return Value::list(to_values(parts));
  }
  if (name == "splitlines") {
    expect_args(call, 0, {});
    return Value::list(to_values(python_splitlines(s)));
  }
  if (name == "upper") return Value(case_upper(s));
  if (name == "lower") return Value(case_lower(s));
  if (name == "title") return Value(case_title(s));
  if (name == "capitalize") return Value(case_capitalize(s));
  if (name == "replace") {
    expect_args(call, 3, {"count"});
    if (call.args.size() < 2) throw ValueError("replace expected at least 2 arguments");
    int64_t count = need_int(call.get(2, "count", Value(int64_t{-1})), "count");
    return Value(replace_all(env, s, need_string(call.args[0], "replace arg"), need_string(call.args[1], "replace arg"),
                             count));
  }
  if (name == "format") return Value(brace_format(env, s, call));
  if (name == "join") {
    expect_args(call, 1, {});
    if (call.args.empty()) throw ValueError("join() takes exactly one argument (0 given)");
    std::string out;
    bool first = true;
    for (const auto& item : call.args[0].iterate()) {
      if (!item.is_string()) throw ValueError("sequence item: expected str instance, " + item.type_name() + " found");
      if (!first) out += s;
      first = false;
      out += item.str();
      check_size(env, out.size());
    }
    return Value(out);
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    expect_args(call, 1, {});
    if (call.args.empty()) throw ValueError(name + "() takes at least 1 argument (0 given)");
    const std::string& sub = need_string(call.args[0], name + " arg");
    if (name == "count") {
      if (sub.empty()) return Value(static_cast<int64_t>(utf8_length(s) + 1));
      int64_t n = 0;
      for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
      return Value(n);
    }
    size_t at = (name == "find" || name == "index") ? s.find(sub) : s.rfind(sub);
    if (at == std::string::npos) {
      if (name == "index" || name == "rindex") throw ValueError("substring not found");
      return Value(int64_t{-1});
    }
    return Value(static_cast<int64_t>(utf8_length(std::string_view(s).substr(0, at))));
  }
  auto all_of = [&](auto pred) {
    if (s.empty()) return Value(false);
    for (char c : s) {
      if (!pred(static_cast<unsigned char>(c))) return Value(false);
    }
    return Value(true);
  };
  if (name == "isdigit") return all_of([](unsigned char c) { return std::isdigit(c) != 0; });
  if (name == "isalpha") return all_of([](unsigned char c) { return std::isalpha(c) != 0; });
  if (name == "isalnum") return all_of([](unsigned char c) { return std::isalnum(c) != 0; });
  if (name == "isspace") {
    if (s.empty()) return Value(false);
    return Value(python_strip(s, true, false).empty());
  }
  if (name == "islower") return Value(case_is_lower(s));
  if (name == "isupper") return Value(case_is_upper(s));
  throw ValueError("'str' object has no attribute '" + name + "'");
}

const std::unordered_set<std::string>& string_methods() {
  static const std::unordered_set<std::string> names = {
      "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "rsplit", "splitlines", "upper", "lower",
      "title", "capitalize", "replace", "format", "join", "find", "rfind", "index", "rindex", "count", "isdigit",
      "isalpha", "isalnum", "isspace", "islower", "isupper"};
  return names;
}

Value dict_method(const Value& self, const std::string& name, CallArgs& call) {
  const Dict& d = self.dict_ref();
  if (name == "items" || name == "keys" || name == "values") {
    expect_args(call, 0, {});
    std::vector<Value> out;
    for (const auto& [k, v] : d.items) {
      if (name == "items") out.push_back(Value::tuple({k, v}));
      else out.push_back(name == "keys" ? k : v);
    }
    Value view = Value::list(std::move(out));
    view.list_ref().view = "dict_" + name;
    return view;
  }
  if (name == "get") {
    expect_args(call, 2, {});
    if (call.args.empty()) throw ValueError("get expected at least 1 argument, got 0");
    const Value* found = d.find(call.args[0]);
    if (found) return *found;
    return call.args.size() > 1 ? call.args[1] : Value::none();
  }
  if (name == "copy") return Value(std::make_shared<Dict>(d));
  throw ValueError("'dict' object has no attribute '" + name + "'");
}

Value list_method(const Value& self, const std::string& name, CallArgs& call) {
  const auto& items = self.list_ref().items;
  expect_args(call, 1, {});
  if (call.args.empty()) throw ValueError(name + "() takes exactly one argument (0 given)");
  if (name == "count") {
    int64_t n = 0;
    for (const auto& item : items) n += item.equals(call.args[0]) ? 1 : 0;
    return Value(n);
  }
  for (size_t k = 0; k < items.size(); ++k) {
    if (items[k].equals(call.args[0])) return Value(static_cast<int64_t>(k));
  }
  throw ValueError(call.args[0].repr() + " is not in list");
}

bool is_mutating(const Value& object, const std::string& name) {
  static const std::unordered_set<std::string> list_ops = {"append", "extend", "insert", "pop", "remove", "clear",
                                                           "reverse", "sort", "__setitem__", "__delitem__"};
  static const std::unordered_set<std::string> dict_ops = {"clear", "pop", "popitem", "setdefault", "update"};
  if (object.is_list() && object.list_ref().form == List::Form::kList) return list_ops.count(name) > 0;
  if (object.is_dict()) return dict_ops.count(name) > 0;
  return false;
}

Value bound(const std::string& name, Function fn) { return Value::function(name, std::move(fn)); }

// Python's object description in Jinja2's "has no attribute" messages: 'dict object', 'str object'...
std::string object_desc(const Value& v) { return "'" + v.type_name() + " object'"; }

// ---- filters ----

// environment.getitem with a dotted attribute path ("a.b.0"): make_attrgetter.
Value attr_path(const Value& item, const Value& attribute, const Value& fallback = Value()) {
  Value cur = item;
  std::vector<Value> parts;
  if (attribute.is_string()) {
    for (const auto& p : python_split(attribute.str(), Value("."), -1)) {
      bool digits = !p.empty() && std::all_of(p.begin(), p.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
      if (digits) parts.emplace_back(static_cast<int64_t>(std::strtoll(p.c_str(), nullptr, 10)));
      else parts.emplace_back(p);
    }
  } else if (!attribute.is_none() && !attribute.is_undefined()) {
    parts.push_back(attribute);
  }
  for (const auto& part : parts) {
    cur = get_item(cur, part);
    if (!fallback.is_undefined() && !fallback.is_none() && cur.is_undefined()) cur = fallback;
  }
  return cur;
}

Value lower_if_string(const Value& v) { return v.is_string() ? Value(case_lower(v.str())) : v; }

std::vector<Value> select_items(const Value& input, CallArgs& call, bool reject, bool by_attr) {
  std::vector<Value> out;
  if (!input.truthy()) return out;
  size_t off = by_attr ? 1 : 0;
  if (by_attr && call.args.empty()) throw ValueError("Missing parameter for attribute name");
  bool has_test = call.args.size() > off;
  std::string test = has_test ? need_string(call.args[off], "test name") : "";
  if (has_test && !is_known_test(test)) throw ValueError("No test named '" + test + "'.");
  CallArgs test_args;
  test_args.callee = test;
  for (size_t k = off + 1; k < call.args.size(); ++k) test_args.args.push_back(call.args[k]);
  test_args.kwargs = call.kwargs;
  for (const auto& item : input.iterate()) {
    Value v = by_attr ? attr_path(item, call.args[0]) : item;
    bool ok = has_test ? apply_test(test, v, test_args) : v.truthy();
    if (ok != reject) out.push_back(item);
  }
  return out;
}

std::string do_indent(const BuiltinEnv& env, const std::string& s, const Value& width, bool first, bool blank) {
  size_t spaces = width.is_string() ? 0 : static_cast<size_t>(std::max<int64_t>(0, need_int(width, "width")));
  check_size(env, spaces);
  std::string indention = width.is_string() ? width.str() : std::string(spaces, ' ');
  std::vector<std::string> lines_probe = python_splitlines(s + "\n");
  check_size(env, s.size() + indention.size() * (lines_probe.size() + 1));
  std::vector<std::string> lines = python_splitlines(s + "\n");
  std::string rv;
  if (blank) {
    for (size_t k = 0; k < lines.size(); ++k) {
      if (k) rv += "\n" + indention;
      rv += lines[k];
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    if (lines.size() > 1) {
      rv += "\n";
      for (size_t k = 1; k < lines.size(); ++k) {
        if (k > 1) rv += "\n";
        if (!lines[k].empty()) rv += indention;
        rv += lines[k];
      }
    }
  }
  if (first) rv = indention + rv;
  return rv;
}

Value do_round(const Value& value, const Value& precision_v, const std::string& method) {
  if (method != "common" && method != "ceil" && method != "floor") {
    throw ValueError("method must be common, ceil or floor");
  }
  int64_t precision = need_int(precision_v, "precision");
  if (!value.is_number()) throw ValueError("type " + value.type_name() + " doesn't define __round__ method");
  if (method == "common") {
    if (!value.is_float()) return Value(value.as_int());  // round(int, n) is the int
    double x = value.as_double();
    if (!std::isfinite(x)) return value;
    if (precision == 0) return Value(std::nearbyint(x));
    if (precision < 0 || precision > 300) return Value(x);
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), x);  // correctly rounded, half-even
    return Value(std::strtod(buf, nullptr));
  }
  double scale = std::pow(10.0, static_cast<double>(precision));
  double x = value.as_double() * scale;
  return Value((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

// Python int(str): optional sign, digits with single underscores, surrounding whitespace.
bool parse_python_int(const std::string& text, int64_t* out) {
  std::string s = python_strip(text, true, true);
  if (s.empty()) return false;
  size_t i = 0;
  bool neg = false;
  if (s[0] == '+' || s[0] == '-') {
    neg = s[0] == '-';
    i = 1;
  }
  if (i >= s.size()) return false;
  __int128 v = 0;
  bool prev_digit = false;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c == '_' && prev_digit && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      prev_digit = false;
      continue;
    }
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    v = v * 10 + (c - '0');
    if (v > static_cast<__int128>(INT64_MAX) + 1) return false;
    prev_digit = true;
  }
  if (neg) v = -v;
  if (v > INT64_MAX || v < INT64_MIN) return false;
  *out = static_cast<int64_t>(v);
  return true;
}

bool parse_python_float(const std::string& text, double* out) {
  std::string s = python_strip(text, true, true);
  if (s.empty()) return false;
  std::string lower = case_lower(s);
  std::string body = lower[0] == '+' || lower[0] == '-' ? lower.substr(1) : lower;
  if (body == "inf" || body == "infinity" || body == "nan") {
    double v = body == "nan" ? NAN : INFINITY;
    *out = lower[0] == '-' ? -v : v;
    return true;
  }
  for (char c : body) {
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.' && c != 'e' && c != '+' && c != '-' && c != '_') {
      return false;
    }
  }
  std::string clean;
  for (char c : s) {
    if (c != '_') clean += c;
  }
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(clean.c_str(), &end);
  if (end != clean.c_str() + clean.size()) return false;
  *out = v;
  return true;
}

std::vector<Value> sorted_values(std::vector<Value> items, bool reverse, const std::function<Value(const Value&)>& key) {
  std::vector<std::pair<Value, Value>> keyed;
  keyed.reserve(items.size());
  for (auto& item : items) keyed.emplace_back(key(item), std::move(item));
  auto cmp = [](const std::pair<Value, Value>& a, const std::pair<Value, Value>& b) { return a.first.less(b.first); };
  if (reverse) {
    // Python's sorted(reverse=True) keeps equal items in their original order.
    std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) { return cmp(b, a); });
  } else {
    std::stable_sort(keyed.begin(), keyed.end(), cmp);
  }
  std::vector<Value> out;
  out.reserve(keyed.size());
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return out;
}

Value value_tojson(const Value& input, CallArgs& call) {
  expect_args(call, 4, {"ensure_ascii", "indent", "separators", "sort_keys"});
  Value::JsonOptions o;
  o.ensure_ascii = call.get(0, "ensure_ascii", Value(false)).truthy();
  Value indent = call.get(1, "indent", Value::none());
  if (indent.is_string()) {
    o.has_indent = true;
    o.indent = indent.str();
  } else if (indent.is_int() || indent.is_bool()) {
    o.has_indent = true;
    o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(indent.as_int(), 0, 1000)), ' ');
  } else if (!indent.is_none() && !indent.is_undefined()) {
    throw ValueError("tojson indent must be an int or a string");
  }
  Value separators = call.get(2, "separators", Value::none());
  if (separators.is_list() && separators.list_ref().items.size() == 2 && separators.list_ref().items[0].is_string() &&
      separators.list_ref().items[1].is_string()) {
    o.has_separators = true;
    o.item_separator = separators.list_ref().items[0].str();
    o.key_separator = separators.list_ref().items[1].str();
  } else if (!separators.is_none() && !separators.is_undefined()) {
    throw ValueError("tojson separators must be a pair of strings");
  }
  o.sort_keys = call.get(3, "sort_keys", Value(false)).truthy();
  if (input.is_undefined()) throw ValueError("Object of type Undefined is not JSON serializable");
  return Value(input.to_json(o));
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

void check_size(const BuiltinEnv& env, size_t bytes) {
  if (bytes > env.max_string_bytes) {
    throw ValueError("value too large: more than " + std::to_string(env.max_string_bytes) + " bytes");
  }
}

// ---- attribute / item access ----

Value get_attribute(const Value& object, const std::string& name) {
  if (object.is_undefined()) object.fail_undefined();
  if (!name.empty() && name[0] == '_') {
    return Value::undefined("access to attribute '" + name + "' of '" + object.type_name() + "' object is unsafe.");
  }
  if (is_mutating(object, name)) {
    return Value::undefined("access to attribute '" + name + "' of '" + object.type_name() + "' object is unsafe.");
  }
  switch (object.kind()) {
    case Value::Kind::kDict: {
      if (name == "items" || name == "keys" || name == "values" || name == "get" || name == "copy") {
        Value self = object;
        return bound(name, [self, name](CallArgs& call) { return dict_method(self, name, call); });
      }
      const Value* found = object.dict_ref().find(std::string_view(name));
      if (found) return *found;
      break;
    }
    case Value::Kind::kNamespace: {
      const Value* found = object.dict_ref().find(std::string_view(name));
      if (found) return *found;
      break;
    }
    case Value::Kind::kString:
      if (string_methods().count(name)) {
        std::string s = object.str();
        return bound(name, [s, name](CallArgs& call) {
          static const BuiltinEnv kEnv;
          return string_method(kEnv, s, name, call);
        });
      }
      break;
    case Value::Kind::kList:
      if (object.list_ref().form != List::Form::kGenerator && (name == "index" || name == "count")) {
        Value self = object;
        return bound(name, [self, name](CallArgs& call) { return list_method(self, name, call); });
      }
      break;
    default: break;
  }
  return Value::undefined(object_desc(object) + " has no attribute '" + name + "'");
}

Value get_item(const Value& object, const Value& key) {
  if (object.is_undefined()) object.fail_undefined();
  switch (object.kind()) {
    case Value::Kind::kDict: {
      const Value* found = object.dict_ref().find(key);
      if (found) return *found;
      break;
    }
    case Value::Kind::kList:
    case Value::Kind::kString: {
      if (object.is_list() && object.list_ref().form == List::Form::kGenerator) break;
      if (key.is_int() || key.is_bool()) {
        int64_t n = object.is_list() ? static_cast<int64_t>(object.list_ref().items.size()) : object.length();
        int64_t i = key.as_int();
        if (i < 0) i += n;
        if (i < 0 || i >= n) {
          return Value::undefined(object_desc(object) + " has no element " + key.to_str());
        }
        if (object.is_list()) return object.list_ref().items[static_cast<size_t>(i)];
        std::vector<size_t> offsets = utf8_offsets(object.str());
        return Value(object.str().substr(offsets[i], offsets[i + 1] - offsets[i]));
      }
      break;
    }
    default: break;
  }
  if (key.is_string()) return get_attribute(object, key.str());
  return Value::undefined(object_desc(object) + " has no element " + key.repr());
}

Value slice_value(const Value& object, const Value& start_v, const Value& stop_v, const Value& step_v) {
  if (object.is_undefined()) object.fail_undefined();
  auto index = [](const Value& v, bool* given) -> int64_t {
    if (v.is_none()) {
      *given = false;
      return 0;
    }
    if (!v.is_int() && !v.is_bool()) {
      throw ValueError("slice indices must be integers or None or have an __index__ method");
    }
    *given = true;
    return v.as_int();
  };
  bool has_start, has_stop, has_step;
  int64_t start = index(start_v, &has_start), stop = index(stop_v, &has_stop), step = index(step_v, &has_step);
  if (!has_step) step = 1;
  if (step == 0) throw ValueError("slice step cannot be zero");
  int64_t n;
  std::vector<size_t> offsets;
  if (object.is_string()) {
    offsets = utf8_offsets(object.str());
    n = static_cast<int64_t>(offsets.size()) - 1;
  } else if (object.is_list() && object.list_ref().form != List::Form::kGenerator) {
    n = static_cast<int64_t>(object.list_ref().items.size());
  } else if (object.is_dict()) {
    throw ValueError("unhashable type: 'slice'");
  } else {
    throw ValueError("'" + object.type_name() + "' object is not subscriptable");
  }
  // PySlice_AdjustIndices.
  auto adjust = [&](int64_t v, bool given, int64_t fallback) {
    if (!given) return fallback;
    if (v < 0) {
      v += n;
      if (v < 0) v = step < 0 ? -1 : 0;
    } else if (v >= n) {
      v = step < 0 ? n - 1 : n;
    }
    return v;
  };
  start = adjust(start, has_start, step < 0 ? n - 1 : 0);
  stop = adjust(stop, has_stop, step < 0 ? -1 : n);
  std::vector<int64_t> picks;
  if (step > 0) {
    for (int64_t i = start; i < stop; i += step) picks.push_back(i);
  } else {
    for (int64_t i = start; i > stop; i += step) picks.push_back(i);
  }
  if (object.is_string()) {
    std::string out;
    if (step == 1) {
      if (!picks.empty()) out = object.str().substr(offsets[start], offsets[stop] - offsets[start]);
    } else {
      for (int64_t i : picks) out.append(object.str(), offsets[i], offsets[i + 1] - offsets[i]);
    }
    return Value(out);
  }
  std::vector<Value> out;
  out.reserve(picks.size());
  for (int64_t i : picks) out.push_back(object.list_ref().items[static_cast<size_t>(i)]);
  return object.list_ref().form == List::Form::kTuple ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

// ---- filters ----

bool is_known_filter(const std::string& name) {
  static const std::unordered_set<std::string> names = {
      "abs", "attr", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
      "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max",
      "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string",
      "sum", "title", "tojson", "trim", "unique", "upper", "wordcount"};
  return names.count(name) > 0;
}

Value apply_filter_now(const BuiltinEnv& env, const std::string& name, const Value& input, CallArgs& call);

// Jinja2's items, select, reject, selectattr, rejectattr, map and unique are Python generators: their errors
// surface only when the result is iterated.
Value apply_filter(const BuiltinEnv& env, const std::string& name, const Value& input, CallArgs& call) {
  static const std::unordered_set<std::string> lazy = {"items", "select", "reject", "selectattr", "rejectattr",
                                                       "map", "unique"};
  if (!lazy.count(name)) return apply_filter_now(env, name, input, call);
  try {
    return apply_filter_now(env, name, input, call);
  } catch (const ValueError& e) {
    return Value::failing_generator(e.what());
  }
}

Value apply_filter_now(const BuiltinEnv& env, const std::string& name, const Value& input, CallArgs& call) {
  call.callee = name;
  if (name == "default" || name == "d") {
    expect_args(call, 2, {"default_value", "boolean"});
    Value fallback = call.get(0, "default_value", Value(""));
    bool boolean = call.get(1, "boolean", Value(false)).truthy();
    if (input.is_undefined() || (boolean && !input.truthy())) return fallback;
    return input;
  }
  if (name == "length" || name == "count") {
    expect_args(call, 0, {});
    return Value(input.length());
  }
  if (name == "trim") {
    expect_args(call, 1, {"chars"});
    Value chars = call.get(0, "chars", Value::none());
    std::string s = soft_str(input);
    if (chars.is_none() || chars.is_undefined()) return Value(python_strip(s, true, true));
    return Value(python_strip_chars(s, need_string(chars, "strip arg"), true, true));
  }
  if (name == "tojson") return value_tojson(input, call);
  if (name == "upper") return Value(case_upper(soft_str(input)));
  if (name == "lower") return Value(case_lower(soft_str(input)));
  if (name == "capitalize") return Value(case_capitalize(soft_str(input)));
  if (name == "title") {
    // jinja2: split on runs of [-\s({[<]; each word's first character upper-cased, the rest lower-cased.
    std::string s = soft_str(input), out, word;
    for (size_t i = 0; i < s.size();) {
      size_t n;
      bool sep = utf8_is_space_at(s, i, &n) || (s[i] != 0 && std::strchr("-({[<", s[i]) != nullptr);
      if (sep) {
        out += case_upper_first_lower_rest(word);
        word.clear();
        out.append(s, i, n);
      } else {
        word.append(s, i, n);
      }
      i += n;
    }
    return Value(out + case_upper_first_lower_rest(word));
  }
  if (name == "string") return Value(soft_str(input));
  if (name == "safe") return input.is_string() ? input : Value(soft_str(input));
  if (name == "e" || name == "escape" || name == "forceescape") return Value(html_escape(soft_str(input)));
  if (name == "replace") {
    expect_args(call, 3, {"old", "new", "count"});
    std::string s = soft_str(input);
    Value old_v = call.get(0, "old"), new_v = call.get(1, "new");
    Value count_v = call.get(2, "count", Value::none());
    int64_t count = count_v.is_none() || count_v.is_undefined() ? -1 : need_int(count_v, "count");
    return Value(replace_all(env, s, soft_str(old_v), soft_str(new_v), count));
  }
  if (name == "join") {
    expect_args(call, 2, {"d", "attribute"});
    std::string d = soft_str(call.get(0, "d", Value("")));
    Value attribute = call.get(1, "attribute", Value::none());
    std::string out;
    bool first = true;
    for (const auto& item : input.iterate()) {
      if (!first) out += d;
      first = false;
      out += (attribute.is_none() ? item : attr_path(item, attribute)).to_str();
      check_size(env, out.size());
    }
    return Value(out);
  }
  if (name == "items") {
    if (input.is_undefined()) return Value::generator({});
    if (!input.is_dict()) throw ValueError("Can only get item pairs from a mapping.");
    std::vector<Value> out;
    for (const auto& [k, v] : input.dict_ref().items) out.push_back(Value::tuple({k, v}));
    return Value::generator(std::move(out));
  }
  if (name == "list") return Value::list(input.iterate());
  if (name == "first") {
    auto items = input.iterate();
    if (items.empty()) return Value::undefined("No first item, sequence was empty.");
    return items.front();
  }
  if (name == "last") {
    if (input.is_list() && input.list_ref().form == List::Form::kGenerator) {
      throw ValueError("'generator' object is not reversible");
    }
    auto items = input.iterate();
    if (items.empty()) return Value::undefined("No last item, sequence was empty.");
    return items.back();
  }
  if (name == "reverse") {
    if (input.is_string()) return slice_value(input, Value::none(), Value::none(), Value(int64_t{-1}));
    auto items = input.iterate();
    std::reverse(items.begin(), items.end());
    return Value::generator(std::move(items));
  }
  if (name == "selectattr" || name == "rejectattr" || name == "select" || name == "reject") {
    bool by_attr = name == "selectattr" || name == "rejectattr";
    bool reject = name == "rejectattr" || name == "reject";
    return Value::generator(select_items(input, call, reject, by_attr));
  }
  if (name == "map") {
    std::vector<Value> out;
    if (call.args.empty() && call.has(0, "attribute")) {
      Value attribute, fallback;
      for (const auto& [k, v] : call.kwargs) {
        if (k == "attribute") attribute = v;
        else if (k == "default") fallback = v;
        else throw ValueError("Unexpected keyword argument '" + k + "'");
      }
      for (const auto& item : input.iterate()) out.push_back(attr_path(item, attribute, fallback));
    } else {
      if (call.args.empty()) throw ValueError("map requires a filter argument");
      std::string filter = need_string(call.args[0], "filter name");
      if (!is_known_filter(filter)) throw ValueError("No filter named '" + filter + "'.");
      for (const auto& item : input.iterate()) {
        CallArgs inner;
        inner.args.assign(call.args.begin() + 1, call.args.end());
        inner.kwargs = call.kwargs;
        out.push_back(apply_filter(env, filter, item, inner));
      }
    }
    return Value::generator(std::move(out));
  }
  if (name == "unique") {
    expect_args(call, 2, {"case_sensitive", "attribute"});
    bool case_sensitive = call.get(0, "case_sensitive", Value(false)).truthy();
    Value attribute = call.get(1, "attribute", Value::none());
    std::vector<Value> seen, out;
    for (const auto& item : input.iterate()) {
      Value key = attr_path(item, attribute);
      if (!case_sensitive) key = lower_if_string(key);
      if (!key.is_undefined() && !key.is_none() && !key.is_number() && !key.is_string() &&
          !(key.is_list() && key.list_ref().form == List::Form::kTuple)) {
        throw ValueError("unhashable type: '" + key.type_name() + "'");
      }
      bool dup = false;
      for (const auto& s : seen) dup = dup || s.equals(key);
      if (!dup) {
        seen.push_back(key);
        out.push_back(item);
      }
    }
    return Value::generator(std::move(out));
  }
  if (name == "dictsort") {
    expect_args(call, 3, {"case_sensitive", "by", "reverse"});
    bool case_sensitive = call.get(0, "case_sensitive", Value(false)).truthy();
    std::string by = soft_str(call.get(1, "by", Value("key")));
    bool reverse = call.get(2, "reverse", Value(false)).truthy();
    if (by != "key" && by != "value") throw ValueError("You can only sort by either \"key\" or \"value\"");
    if (!input.is_dict()) throw ValueError("dictsort needs a mapping");
    std::vector<Value> items;
    for (const auto& [k, v] : input.dict_ref().items) items.push_back(Value::tuple({k, v}));
    size_t pos = by == "key" ? 0 : 1;
    return Value::list(sorted_values(std::move(items), reverse, [&](const Value& item) {
      Value v = item.list_ref().items[pos];
      return case_sensitive ? v : lower_if_string(v);
    }));
  }
  if (name == "sort") {
    expect_args(call, 3, {"reverse", "case_sensitive", "attribute"});
    bool reverse = call.get(0, "reverse", Value(false)).truthy();
    bool case_sensitive = call.get(1, "case_sensitive", Value(false)).truthy();
    Value attribute = call.get(2, "attribute", Value::none());
    return Value::list(sorted_values(input.iterate(), reverse, [&](const Value& item) {
      Value v = attr_path(item, attribute);
      return case_sensitive ? v : lower_if_string(v);
    }));
  }
  if (name == "min" || name == "max") {
    expect_args(call, 2, {"case_sensitive", "attribute"});
    bool case_sensitive = call.get(0, "case_sensitive", Value(false)).truthy();
    Value attribute = call.get(1, "attribute", Value::none());
    auto items = input.iterate();
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    size_t best = 0;
    Value best_key;
    for (size_t k = 0; k < items.size(); ++k) {
      Value key = attr_path(items[k], attribute);
      if (!case_sensitive) key = lower_if_string(key);
      if (k == 0 || (name == "min" ? key.less(best_key) : best_key.less(key))) {
        best = k;
        best_key = key;
      }
    }
    return items[best];
  }
  if (name == "sum") {
    expect_args(call, 2, {"attribute", "start"});
    Value attribute = call.get(0, "attribute", Value::none());
    Value total = call.get(1, "start", Value(int64_t{0}));
    for (const auto& item : input.iterate()) total = binary_op(env, "+", total, attr_path(item, attribute));
    return total;
  }
  if (name == "int") {
    expect_args(call, 2, {"default", "base"});
    if (input.is_undefined()) input.fail_undefined();  // int(Undefined) raises
    Value fallback = call.get(0, "default", Value(int64_t{0}));
    if (input.is_string()) {
      int64_t v;
      if (parse_python_int(input.str(), &v)) return Value(v);
      double f;
      if (parse_python_float(input.str(), &f) && std::isfinite(f) && std::fabs(f) < 9.2e18) {
        return Value(static_cast<int64_t>(f));
      }
      return fallback;
    }
    if (input.is_int() || input.is_bool()) return Value(input.as_int());
    if (input.is_float()) {
      double f = input.as_double();
      if (!std::isfinite(f) || std::fabs(f) >= 9.2e18) return fallback;
      return Value(static_cast<int64_t>(f));
    }
    return fallback;
  }
  if (name == "float") {
    expect_args(call, 1, {"default"});
    if (input.is_undefined()) input.fail_undefined();
    Value fallback = call.get(0, "default", Value(0.0));
    if (input.is_number()) return Value(input.as_double());
    if (input.is_string()) {
      double f;
      if (parse_python_float(input.str(), &f)) return Value(f);
    }
    return fallback;
  }
  if (name == "abs") {
    if (input.is_float()) return Value(std::fabs(input.as_double()));
    if (input.is_int() || input.is_bool()) {
      int64_t v = input.as_int();
      if (v == INT64_MIN) throw ValueError("integer overflow");
      return Value(v < 0 ? -v : v);
    }
    throw ValueError("bad operand type for abs(): '" + input.type_name() + "'");
  }
  if (name == "round") {
    expect_args(call, 2, {"precision", "method"});
    return do_round(input, call.get(0, "precision", Value(int64_t{0})), soft_str(call.get(1, "method", Value("common"))));
  }
  if (name == "indent") {
    expect_args(call, 3, {"width", "first", "blank"});
    if (!input.is_string()) {  // jinja2 appends "\n" to the value itself
      throw ValueError("unsupported operand type(s) for +=: '" + input.type_name() + "' and 'str'");
    }
    std::string s = do_indent(env, soft_str(input), call.get(0, "width", Value(int64_t{4})),
                              call.get(1, "first", Value(false)).truthy(), call.get(2, "blank", Value(false)).truthy());
    check_size(env, s.size());
    return Value(s);
  }
  if (name == "center") {
    expect_args(call, 1, {"width"});
    std::string s = soft_str(input);
    int64_t width = need_int(call.get(0, "width", Value(int64_t{80})), "width");
    int64_t len = static_cast<int64_t>(utf8_length(s));
    if (width <= len) return Value(s);
    check_size(env, static_cast<size_t>(width));
    int64_t pad = width - len;
    int64_t left = pad / 2 + (pad & width & 1);  // CPython's pad(): odd padding puts the extra space left when width is odd
    return Value(std::string(static_cast<size_t>(left), ' ') + s + std::string(static_cast<size_t>(pad - left), ' '));
  }
  if (name == "format") {
    if (!call.args.empty() && !call.kwargs.empty()) {
      throw ValueError("can't handle positional and keyword arguments at the same time");
    }
    if (!call.kwargs.empty()) {
      auto d = std::make_shared<Dict>();
      for (const auto& [k, v] : call.kwargs) d->set(Value(k), v);
      return Value(percent_format(env, soft_str(input), Value(d)));
    }
    return Value(percent_format(env, soft_str(input), Value::tuple(call.args)));
  }
  if (name == "wordcount") {
    // len(re.findall(r"\w+", s)); non-ASCII characters other than whitespace count as word characters.
    std::string s = soft_str(input);
    int64_t words = 0;
    bool in_word = false;
    for (size_t i = 0; i < s.size();) {
      size_t n;
      unsigned char c = static_cast<unsigned char>(s[i]);
      bool word = c >= 0x80 ? !utf8_is_space_at(s, i, &n) : (std::isalnum(c) || c == '_');
      if (c < 0x80) n = 1;
      if (word && !in_word) ++words;
      in_word = word;
      i += n;
    }
    return Value(words);
  }
  if (name == "attr") {
    expect_args(call, 1, {"name"});
    return get_attribute(input, soft_str(call.get(0, "name")));
  }
  throw ValueError("No filter named '" + name + "'.");
}

// ---- tests ----

bool is_known_test(const std::string& name) {
  static const std::unordered_set<std::string> names = {
      "odd", "even", "divisibleby", "defined", "undefined", "none", "boolean", "false", "true", "integer", "float",
      "lower", "upper", "string", "mapping", "number", "sequence", "iterable", "callable", "sameas", "escaped", "in",
      "==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", "ge", ">=", "<", "lt", "lessthan", "<=", "le",
      "filter", "test"};
  return names.count(name) > 0;
}

bool apply_test(const std::string& name, const Value& v, CallArgs& call) {
  static const std::unordered_set<std::string> one_argument = {
      "divisibleby", "sameas", "in", "==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", "ge", ">=",
      "<", "lt", "lessthan", "<=", "le"};
  size_t given = call.args.size() + call.kwargs.size();
  size_t wanted = one_argument.count(name) ? 1 : 0;
  if (given != wanted) {
    throw ValueError("test '" + name + "' takes " + std::to_string(wanted) + " argument(s) (" +
                     std::to_string(given) + " given)");
  }
  auto arg = [&]() -> const Value& { return call.args.empty() ? call.kwargs[0].second : call.args[0]; };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "sequence") {  // has len() and __getitem__ (Undefined has both)
    return v.is_string() || v.is_dict() || v.is_undefined() ||
           (v.is_list() && v.list_ref().form != List::Form::kGenerator);
  }
  if (name == "iterable") return v.is_string() || v.is_dict() || v.is_list() || v.is_undefined();
  if (name == "callable") return v.is_callable();
  if (name == "lower") return case_is_lower(v.to_str());
  if (name == "upper") return case_is_upper(v.to_str());
  if (name == "odd" || name == "even") {  // value % 2 == 1 / == 0
    static const BuiltinEnv kEnv;
    Value r = binary_op(kEnv, "%", v, Value(int64_t{2}));
    return r.equals(Value(int64_t{name == "odd" ? 1 : 0}));
  }
  if (name == "divisibleby") {
    const Value& d = arg();
    if (!v.is_number() || !d.is_number()) throw ValueError("divisibleby needs numbers");
    if (v.is_float() || d.is_float()) {
      if (d.as_double() == 0) throw ValueError("float modulo");
      return std::fmod(v.as_double(), d.as_double()) == 0;
    }
    if (d.as_int() == 0) throw ValueError("integer division or modulo by zero");
    if (d.as_int() == -1) return true;
    return v.as_int() % d.as_int() == 0;
  }
  if (name == "escaped") return false;
  if (name == "sameas") {
    const Value& o = arg();
    if (v.kind() != o.kind()) return false;
    if (v.is_none() || v.is_undefined()) return true;
    if (v.is_bool()) return v.as_bool() == o.as_bool();
    if (v.is_list()) return &v.list_ref() == &o.list_ref();
    if (v.is_dict() || v.is_namespace()) return &v.dict_ref() == &o.dict_ref();
    return v.equals(o) && (v.is_int() ? v.as_int() >= -5 && v.as_int() <= 256 : false);
  }
  if (name == "in") return contains(arg(), v);
  if (name == "==" || name == "eq" || name == "equalto") return v.equals(arg());
  if (name == "!=" || name == "ne") return !v.equals(arg());
  if (name == ">" || name == "gt" || name == "greaterthan") return arg().less(v);
  if (name == ">=" || name == "ge") return !v.less(arg());
  if (name == "<" || name == "lt" || name == "lessthan") return v.less(arg());
  if (name == "<=" || name == "le") return !arg().less(v);
  if (name == "filter") return v.is_string() && is_known_filter(v.str());
  if (name == "test") return v.is_string() && is_known_test(v.str());
  throw ValueError("No test named '" + name + "'.");
}

// ---- operators ----

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined: return false;  // Undefined iterates as empty
    case Value::Kind::kString:
      if (!item.is_string()) {
        throw ValueError("'in <string>' requires string as left operand, not " + item.type_name());
      }
      return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::kList:
      for (const auto& x : container.iterate()) {
        if (x.equals(item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      if (item.is_dict() || item.is_namespace() || item.is_undefined() ||
          (item.is_list() && item.list_ref().form == List::Form::kList)) {
        throw ValueError("unhashable type: '" + item.type_name() + "'");
      }
      return container.dict_ref().find(item) != nullptr;
    default: throw ValueError("argument of type '" + container.type_name() + "' is not iterable");
  }
}

Value binary_op(const BuiltinEnv& env, const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) a.fail_undefined();
  if (b.is_undefined()) b.fail_undefined();
  auto unsupported = [&]() -> ValueError {
    return ValueError("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() +
                      "'");
  };
  bool ints = (a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool());
  bool nums = a.is_number() && b.is_number();
  if (op == "+") {
    if (ints) {
      int64_t r;
      if (__builtin_add_overflow(a.as_int(), b.as_int(), &r)) throw ValueError("integer overflow");
      return Value(r);
    }
    if (nums) return Value(a.as_double() + b.as_double());
    if (a.is_string() && b.is_string()) {
      check_size(env, a.str().size() + b.str().size());
      return Value(a.str() + b.str());
    }
    if (a.is_list() && b.is_list() && a.list_ref().form == b.list_ref().form &&
        a.list_ref().form != List::Form::kGenerator) {
      std::vector<Value> items = a.list_ref().items;
      items.insert(items.end(), b.list_ref().items.begin(), b.list_ref().items.end());
      check_size(env, items.size() * sizeof(Value));
      return a.list_ref().form == List::Form::kTuple ? Value::tuple(std::move(items)) : Value::list(std::move(items));
    }
    if (a.is_string() || b.is_string()) {
      throw ValueError("can only concatenate str (not \"" + (a.is_string() ? b : a).type_name() + "\") to str");
    }
    throw unsupported();
  }
  if (op == "-") {
    if (ints) {
      int64_t r;
      if (__builtin_sub_overflow(a.as_int(), b.as_int(), &r)) throw ValueError("integer overflow");
      return Value(r);
    }
    if (nums) return Value(a.as_double() - b.as_double());
    throw unsupported();
  }
  if (op == "*") {
    if (ints) {
      int64_t r;
      if (__builtin_mul_overflow(a.as_int(), b.as_int(), &r)) throw ValueError("integer overflow");
      return Value(r);
    }
    if (nums) return Value(a.as_double() * b.as_double());
    const Value* seq = a.is_string() || a.is_list() ? &a : &b;
    const Value* count = seq == &a ? &b : &a;
    if ((seq->is_string() || (seq->is_list() && seq->list_ref().form != List::Form::kGenerator)) &&
        (count->is_int() || count->is_bool())) {
      int64_t n = std::max<int64_t>(0, count->as_int());
      if (seq->is_string()) {
        size_t unit = seq->str().size();
        if (unit == 0) return Value("");  // however many times (the loop below would spin n times)
        if (unit && static_cast<uint64_t>(n) > env.max_string_bytes / unit) check_size(env, env.max_string_bytes + 1);
        std::string out;
        out.reserve(unit * static_cast<size_t>(n));
        for (int64_t k = 0; k < n; ++k) out += seq->str();
        return Value(out);
      }
      size_t unit = seq->list_ref().items.size() * sizeof(Value);
      if (unit == 0) {
        return seq->list_ref().form == List::Form::kTuple ? Value::tuple({}) : Value::list({});
      }
      if (unit && static_cast<uint64_t>(n) > env.max_string_bytes / unit) check_size(env, env.max_string_bytes + 1);
      std::vector<Value> items;
      for (int64_t k = 0; k < n; ++k) {
        items.insert(items.end(), seq->list_ref().items.begin(), seq->list_ref().items.end());
      }
      return seq->list_ref().form == List::Form::kTuple ? Value::tuple(std::move(items)) : Value::list(std::move(items));
    }
    throw unsupported();
  }
  if (op == "/") {
    if (!nums) throw unsupported();
    if (b.as_double() == 0) throw ValueError("division by zero");
    return Value(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    if (op == "%" && a.is_string()) return Value(percent_format(env, a.str(), b));
    if (!nums) throw unsupported();
    if (ints) {
      int64_t x = a.as_int(), y = b.as_int();
      if (y == 0) throw ValueError("integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) {
        if (op == "%") return Value(int64_t{0});
        throw ValueError("integer overflow");
      }
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {
        --q;
        r += y;
      }
      return Value(op == "//" ? q : r);
    }
    // CPython's float divmod.
    double x = a.as_double(), y = b.as_double();
    if (y == 0) throw ValueError(op == "%" ? "float modulo" : "float floor division by zero");
    double mod = std::fmod(x, y);
    double div = (x - mod) / y;
    if (mod != 0) {
      if ((y < 0) != (mod < 0)) {
        mod += y;
        div -= 1.0;
      }
    } else {
      mod = std::copysign(0.0, y);
    }
    if (op == "%") return Value(mod);
    double floordiv;
    if (div != 0) {
      floordiv = std::floor(div);
      if (div - floordiv > 0.5) floordiv += 1.0;
    } else {
      floordiv = std::copysign(0.0, x / y);
    }
    return Value(floordiv);
  }
  if (op == "**") {
    if (!nums) throw unsupported();
    if (ints && b.as_int() >= 0) {
      int64_t base = a.as_int(), e = b.as_int(), r = 1;
      while (e > 0) {
        if (e & 1) {
          if (__builtin_mul_overflow(r, base, &r)) throw ValueError("integer overflow");
        }
        e >>= 1;
        if (e > 0 && __builtin_mul_overflow(base, base, &base)) throw ValueError("integer overflow");
      }
      return Value(r);
    }
    if (a.as_double() == 0 && b.as_double() < 0) throw ValueError("0.0 cannot be raised to a negative power");
    return Value(std::pow(a.as_double(), b.as_double()));
  }
  throw ValueError("unknown operator " + op);
}

// ---- globals ----

std::optional<Value> get_global(const BuiltinEnv& env, const std::string& name) {
  if (name == "range") {
    return Value::function("range", [](CallArgs& call) {
      expect_args(call, 3, {});
      if (call.args.empty()) throw ValueError("range expected at least 1 argument, got 0");
      int64_t start = 0, stop, step = 1;
      if (call.args.size() == 1) {
        stop = need_int(call.args[0], "range");
      } else {
        start = need_int(call.args[0], "range");
        stop = need_int(call.args[1], "range");
        if (call.args.size() == 3) step = need_int(call.args[2], "range");
      }
      if (step == 0) throw ValueError("range() arg 3 must not be zero");
      __int128 count = 0;
      if (step > 0 && stop > start) count = (static_cast<__int128>(stop) - start + step - 1) / step;
      if (step < 0 && stop < start) count = (static_cast<__int128>(start) - stop - step - 1) / -step;
      if (count > kMaxRange) {
        throw ValueError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
      }
      std::vector<Value> out;
      for (int64_t k = 0; k < static_cast<int64_t>(count); ++k) out.emplace_back(start + k * step);
      return Value::list(std::move(out));
    });
  }
  if (name == "namespace" || name == "dict") {
    bool ns = name == "namespace";
    auto registry = env.namespaces;
    return Value::function(name, [ns, registry](CallArgs& call) {
      auto d = std::make_shared<Dict>();
      if (call.args.size() > 1) throw ValueError("expected at most 1 positional argument");
      if (!call.args.empty()) {
        const Value& init = call.args[0];
        if (init.is_dict() || init.is_namespace()) {
          d->items = init.dict_ref().items;
        } else {
          for (const auto& pair : init.iterate()) {
            auto kv = pair.iterate();
            if (kv.size() != 2) throw ValueError("dictionary update sequence element has wrong length");
            d->set(kv[0], kv[1]);
          }
        }
      }
      for (const auto& [k, v] : call.kwargs) d->set(Value(k), v);
      if (ns) {
        for (const auto& [k, v] : d->items) {
          if (k.is_string() && !k.str().empty() && k.str()[0] == '_') {
            throw ValueError("Chat templates cannot store underscore-prefixed attributes on a namespace, but got " +
                             k.repr() + ". Please rename the attribute.");
          }
        }
        registry->push_back(d);
      }
      return Value(d, ns);
    });
  }
  if (name == "raise_exception") {
    return Value::function("raise_exception", [](CallArgs& call) -> Value {
      std::string message = call.args.empty() ? (call.kwargs.empty() ? "" : call.kwargs[0].second.to_str())
                                              : call.args[0].to_str();
      throw TemplateRaise{message};
    });
  }
  if (name == "strftime_now") {
    std::optional<std::time_t> fixed = env.now;
    return Value::function("strftime_now", [fixed](CallArgs& call) {
      if (call.args.size() != 1 || !call.args[0].is_string()) throw ValueError("strftime_now(format) needs a string");
      std::time_t t = fixed ? *fixed : std::time(nullptr);
      std::tm tm{};
      localtime_r(&t, &tm);
      const std::string& format = call.args[0].str();
      if (format.empty()) return Value("");
      std::vector<char> buf(format.size() * 16 + 256);
      size_t n = std::strftime(buf.data(), buf.size(), format.c_str(), &tm);
      return Value(std::string(buf.data(), n));
    });
  }
  return std::nullopt;
}

}  // namespace aligntrain::data::jinja
