// Values of the Jinja engine: construction, Python's truthiness / str / repr / == / <, iteration and len, and
// json.dumps as transformers' tojson calls it.
#include "data/jinja_value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace aligntrain::data::jinja {

namespace {

constexpr int kMaxNesting = 512;  // deeper values are refused by repr / tojson (Python would recurse too)
// repr() and tojson text longer than this is refused (a list of many references to one long string would otherwise
// print to terabytes); the renderer's own output limit is usually far lower.
constexpr size_t kMaxTextBytes = size_t{256} << 20;

void check_text_size(const std::string& out) {
  if (out.size() > kMaxTextBytes) {
    throw ValueError("value too large to print: more than " + std::to_string(kMaxTextBytes) + " bytes");
  }
}

// Decodes the code point at s[i]; `size` gets its length (1 for an invalid byte, whose value is returned).
uint32_t decode_at(std::string_view s, size_t i, size_t* size) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) {
    *size = 1;
    return c;
  }
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < n; ++k) {
    unsigned char d = static_cast<unsigned char>(s[i + k]);
    if ((d >> 6) != 2) {
      *size = 1;
      return c;
    }
    cp = (cp << 6) | (d & 0x3F);
  }
  *size = n;
  return cp;
}

bool is_space_cp(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

void json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    size_t n;
    uint32_t cp = decode_at(s, i, &n);
    switch (cp) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default: {
        char buf[16];
        if (cp < 0x20 || (ensure_ascii && cp >= 0x7F && cp != 0x7F)) {
          if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000;
            std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
          } else {
            std::snprintf(buf, sizeof buf, "\\u%04x", cp);
          }
          out += buf;
        } else {
          out.append(s.substr(i, n));
        }
      }
    }
    i += n;
  }
  out += '"';
}

}  // namespace

// ---- UTF-8 and Python string helpers ----

size_t utf8_length(std::string_view s) {
  size_t count = 0;
  for (size_t i = 0; i < s.size();) {
    size_t n;
    decode_at(s, i, &n);
    i += n;
    ++count;
  }
  return count;
}

std::vector<size_t> utf8_offsets(std::string_view s) {
  std::vector<size_t> offsets;
  offsets.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size();) {
    offsets.push_back(i);
    size_t n;
    decode_at(s, i, &n);
    i += n;
  }
  offsets.push_back(s.size());
  return offsets;
}

bool utf8_is_space_at(std::string_view s, size_t i, size_t* size) { return is_space_cp(decode_at(s, i, size)); }

std::string python_strip(std::string_view s, bool left, bool right) {
  size_t begin = 0, end = s.size();
  if (left) {
    while (begin < end) {
      size_t n;
      if (!utf8_is_space_at(s, begin, &n)) break;
      begin += n;
    }
  }
  if (right) {
    std::vector<size_t> offsets = utf8_offsets(s.substr(begin, end - begin));
    size_t k = offsets.size() - 1;
    while (k > 0) {
      size_t n;
      if (!utf8_is_space_at(s, begin + offsets[k - 1], &n)) break;
      --k;
    }
    end = begin + offsets[k];
  }
  return std::string(s.substr(begin, end - begin));
}

std::string python_strip_chars(std::string_view s, std::string_view chars, bool left, bool right) {
  std::vector<size_t> set_offsets = utf8_offsets(chars);
  auto in_set = [&](std::string_view cp) {
    for (size_t k = 0; k + 1 < set_offsets.size(); ++k) {
      if (chars.substr(set_offsets[k], set_offsets[k + 1] - set_offsets[k]) == cp) return true;
    }
    return false;
  };
  std::vector<size_t> offsets = utf8_offsets(s);
  size_t b = 0, e = offsets.size() - 1;
  if (left) {
    while (b < e && in_set(s.substr(offsets[b], offsets[b + 1] - offsets[b]))) ++b;
  }
  if (right) {
    while (e > b && in_set(s.substr(offsets[e - 1], offsets[e] - offsets[e - 1]))) --e;
  }
  return std::string(s.substr(offsets[b], offsets[e] - offsets[b]));
}

std::string python_float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0) return std::signbit(value) ? "-0.0" : "0.0";
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*e", precision - 1, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  // buf: d.ddddde[+-]XX; rebuild in Python's repr style.
  std::string s(buf);
  size_t e = s.find('e');
  std::string mantissa = s.substr(0, e);
  int exponent = std::atoi(s.c_str() + e + 1);
  bool negative = mantissa[0] == '-';
  if (negative) mantissa.erase(0, 1);
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits += c;
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = negative ? "-" : "";
  if (exponent < -4 || exponent >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp[16];
    std::snprintf(exp, sizeof exp, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += exp;
  } else if (exponent < 0) {
    out += "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
  } else {
    if (digits.size() <= static_cast<size_t>(exponent) + 1) {
      out += digits + std::string(static_cast<size_t>(exponent) + 1 - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, exponent + 1) + "." + digits.substr(exponent + 1);
    }
  }
  return out;
}

std::string python_string_repr(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (size_t i = 0; i < s.size();) {
    size_t n;
    uint32_t cp = decode_at(s, i, &n);
    char buf[16];
    if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || (n == 1 && cp >= 0x80)) {
      std::snprintf(buf, sizeof buf, "\\x%02x", cp);
      out += buf;
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  out += quote;
  return out;
}

// ---- Value ----

Value Value::undefined(std::string hint) {
  Value v;
  v.str_ = std::make_shared<const std::string>(std::move(hint));
  return v;
}

Value::Value(std::string s) : kind_(Kind::kString), str_(std::make_shared<const std::string>(std::move(s))) {}

Value::Value(std::shared_ptr<List> list) : kind_(Kind::kList), list_(std::move(list)) {}

Value::Value(std::shared_ptr<Dict> dict, bool is_namespace)
    : kind_(is_namespace ? Kind::kNamespace : Kind::kDict), dict_(std::move(dict)) {}

Value Value::function(std::string name, Function fn) {
  Value v(Kind::kCallable);
  v.str_ = std::make_shared<const std::string>(std::move(name));
  v.fn_ = std::make_shared<const Function>(std::move(fn));
  return v;
}

Value Value::list(std::vector<Value> items) {
  auto l = std::make_shared<List>();
  l->items = std::move(items);
  return Value(std::move(l));
}

Value Value::tuple(std::vector<Value> items) {
  auto l = std::make_shared<List>();
  l->items = std::move(items);
  l->form = List::Form::kTuple;
  return Value(std::move(l));
}

Value Value::generator(std::vector<Value> items) {
  auto l = std::make_shared<List>();
  l->items = std::move(items);
  l->form = List::Form::kGenerator;
  return Value(std::move(l));
}

Value Value::failing_generator(std::string error) {
  auto l = std::make_shared<List>();
  l->form = List::Form::kGenerator;
  l->error = std::move(error);
  return Value(std::move(l));
}

Value Value::dict() { return Value(std::make_shared<Dict>()); }

Value Value::from_json(const nlohmann::ordered_json& json) {
  switch (json.type()) {
    case nlohmann::ordered_json::value_t::null: return none();
    case nlohmann::ordered_json::value_t::boolean: return Value(json.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(json.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = json.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
      return Value(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value(json.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(json.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(from_json(item));
      return list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      auto d = std::make_shared<Dict>();
      for (auto it = json.begin(); it != json.end(); ++it) d->set(Value(it.key()), from_json(it.value()));
      return Value(std::move(d));
    }
    default: return none();
  }
}

double Value::as_double() const {
  switch (kind_) {
    case Kind::kBool: return b_ ? 1 : 0;
    case Kind::kInt: return static_cast<double>(i_);
    case Kind::kFloat: return f_;
    default: return 0;
  }
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return b_;
    case Kind::kInt: return i_ != 0;
    case Kind::kFloat: return f_ != 0;
    case Kind::kString: return !str_->empty();
    case Kind::kList: return list_->form == List::Form::kGenerator || !list_->items.empty();
    case Kind::kDict: return !dict_->items.empty();
    case Kind::kNamespace:
    case Kind::kCallable: return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined: return "Undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList:
      return list_->form == List::Form::kTuple ? "tuple" : list_->form == List::Form::kGenerator ? "generator" : "list";
    case Kind::kDict: return "dict";
    case Kind::kNamespace: return "Namespace";
    case Kind::kCallable: return "function";
  }
  return "object";
}

void Value::fail_undefined() const {
  throw ValueError(str_ && !str_->empty() ? *str_ : std::string("undefined value"));
}

std::string Value::to_str() const {
  switch (kind_) {
    case Kind::kUndefined: return "";
    case Kind::kNone: return "None";
    case Kind::kBool: return b_ ? "True" : "False";
    case Kind::kInt: return std::to_string(i_);
    case Kind::kFloat: return python_float_repr(f_);
    case Kind::kString: return *str_;
    default: return repr();
  }
}

std::string Value::repr() const {
  std::string out;
  repr_into(out, 0);
  return out;
}

void Value::repr_into(std::string& out, int depth) const {
  if (depth > kMaxNesting) throw ValueError("maximum recursion depth exceeded while getting the repr of an object");
  check_text_size(out);
  switch (kind_) {
    case Kind::kString: out += python_string_repr(*str_); return;
    case Kind::kList: {
      if (list_->form == List::Form::kGenerator) {
        out += "<generator object>";
        return;
      }
      bool tuple = list_->form == List::Form::kTuple;
      if (!list_->view.empty()) out += list_->view + "(";
      out += tuple ? '(' : '[';
      for (size_t k = 0; k < list_->items.size(); ++k) {
        if (k) out += ", ";
        list_->items[k].repr_into(out, depth + 1);
      }
      if (tuple && list_->items.size() == 1) out += ',';
      out += tuple ? ')' : ']';
      if (!list_->view.empty()) out += ")";
      return;
    }
    case Kind::kDict: {
      out += '{';
      for (size_t k = 0; k < dict_->items.size(); ++k) {
        if (k) out += ", ";
        dict_->items[k].first.repr_into(out, depth + 1);
        out += ": ";
        dict_->items[k].second.repr_into(out, depth + 1);
      }
      out += '}';
      return;
    }
    case Kind::kNamespace: {
      out += "<Namespace {";
      for (size_t k = 0; k < dict_->items.size(); ++k) {
        if (k) out += ", ";
        dict_->items[k].first.repr_into(out, depth + 1);
        out += ": ";
        dict_->items[k].second.repr_into(out, depth + 1);
      }
      out += "}>";
      return;
    }
    case Kind::kCallable: out += "<function " + *str_ + ">"; return;
    default: out += to_str(); return;
  }
}

bool Value::equals(const Value& other) const {
  if (is_number() && other.is_number()) {
    if (kind_ == Kind::kFloat || other.kind_ == Kind::kFloat) return as_double() == other.as_double();
    return as_int() == other.as_int();
  }
  if (kind_ != other.kind_) return false;
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return true;
    case Kind::kString: return *str_ == *other.str_;
    case Kind::kList: {
      if (list_ == other.list_) return true;
      if ((list_->form == List::Form::kTuple) != (other.list_->form == List::Form::kTuple)) return false;
      if (list_->form == List::Form::kGenerator || other.list_->form == List::Form::kGenerator) return false;
      if (list_->items.size() != other.list_->items.size()) return false;
      for (size_t k = 0; k < list_->items.size(); ++k) {
        if (!list_->items[k].equals(other.list_->items[k])) return false;
      }
      return true;
    }
    case Kind::kDict: {
      if (dict_ == other.dict_) return true;
      if (dict_->items.size() != other.dict_->items.size()) return false;
      for (const auto& [key, value] : dict_->items) {
        const Value* found = other.dict_->find(key);
        if (!found || !value.equals(*found)) return false;
      }
      return true;
    }
    case Kind::kNamespace: return dict_ == other.dict_;
    case Kind::kCallable: return fn_ == other.fn_;
    default: return false;
  }
}

bool Value::less(const Value& other) const {
  if (is_number() && other.is_number()) {
    if (kind_ == Kind::kFloat || other.kind_ == Kind::kFloat) return as_double() < other.as_double();
    return as_int() < other.as_int();
  }
  if (is_undefined()) fail_undefined();
  if (other.is_undefined()) other.fail_undefined();
  if (kind_ == Kind::kString && other.kind_ == Kind::kString) return *str_ < *other.str_;  // UTF-8 order = code points
  if (kind_ == Kind::kList && other.kind_ == Kind::kList && list_->form == other.list_->form &&
      list_->form != List::Form::kGenerator) {
    const auto& a = list_->items;
    const auto& b = other.list_->items;
    for (size_t k = 0; k < a.size() && k < b.size(); ++k) {
      if (!a[k].equals(b[k])) return a[k].less(b[k]);
    }
    return a.size() < b.size();
  }
  throw ValueError("'<' not supported between instances of '" + type_name() + "' and '" + other.type_name() + "'");
}

std::vector<Value> Value::iterate() const {
  switch (kind_) {
    case Kind::kUndefined: return {};
    case Kind::kList:
      if (!list_->error.empty()) throw ValueError(list_->error);
      return list_->items;
    case Kind::kDict: {
      std::vector<Value> keys;
      keys.reserve(dict_->items.size());
      for (const auto& item : dict_->items) keys.push_back(item.first);
      return keys;
    }
    case Kind::kString: {
      std::vector<Value> chars;
      const std::string& s = *str_;
      for (size_t i = 0; i < s.size();) {
        size_t n;
        decode_at(s, i, &n);
        chars.emplace_back(s.substr(i, n));
        i += n;
      }
      return chars;
    }
    default: throw ValueError("'" + type_name() + "' object is not iterable");
  }
}

int64_t Value::length() const {
  switch (kind_) {
    case Kind::kUndefined: return 0;
    case Kind::kString: return static_cast<int64_t>(utf8_length(*str_));
    case Kind::kList:
      if (list_->form == List::Form::kGenerator) break;
      return static_cast<int64_t>(list_->items.size());
    case Kind::kDict: return static_cast<int64_t>(dict_->items.size());
    default: break;
  }
  throw ValueError("object of type '" + type_name() + "' has no len()");
}

std::string Value::to_json(const JsonOptions& options) const {
  std::string out;
  json_into(out, options, 0, 0);
  return out;
}

void Value::json_into(std::string& out, const JsonOptions& o, int level, int depth) const {
  if (depth > kMaxNesting) throw ValueError("maximum recursion depth exceeded while encoding a JSON object");
  check_text_size(out);
  std::string item_sep = o.has_separators ? o.item_separator : (o.has_indent ? "," : ", ");
  std::string key_sep = o.has_separators ? o.key_separator : ": ";
  auto newline = [&](int lvl) {
    out += '\n';
    for (int k = 0; k < lvl; ++k) out += o.indent;
    check_text_size(out);
  };
  switch (kind_) {
    case Kind::kNone: out += "null"; return;
    case Kind::kBool: out += b_ ? "true" : "false"; return;
    case Kind::kInt: out += std::to_string(i_); return;
    case Kind::kFloat:
      if (std::isnan(f_)) out += "NaN";
      else if (std::isinf(f_)) out += f_ > 0 ? "Infinity" : "-Infinity";
      else out += python_float_repr(f_);
      return;
    case Kind::kString: json_string(out, *str_, o.ensure_ascii); return;
    case Kind::kList: {
      if (list_->form == List::Form::kGenerator || !list_->view.empty()) break;
      if (list_->items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t k = 0; k < list_->items.size(); ++k) {
        if (k) out += item_sep;
        if (o.has_indent) newline(level + 1);
        list_->items[k].json_into(out, o, level + 1, depth + 1);
      }
      if (o.has_indent) newline(level);
      out += ']';
      return;
    }
    case Kind::kDict: {
      if (dict_->items.empty()) {
        out += "{}";
        return;
      }
      std::vector<std::pair<std::string, const Value*>> entries;
      for (const auto& [key, value] : dict_->items) {
        std::string k;
        switch (key.kind_) {
          case Kind::kString: k = *key.str_; break;
          case Kind::kFloat: k = key.to_json({}); break;
          case Kind::kInt: k = std::to_string(key.i_); break;
          case Kind::kBool: k = key.b_ ? "true" : "false"; break;
          case Kind::kNone: k = "null"; break;
          default: throw ValueError("keys must be str, int, float, bool or None, not " + key.type_name());
        }
        entries.emplace_back(std::move(k), &value);
      }
      if (o.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      }
      out += '{';
      for (size_t k = 0; k < entries.size(); ++k) {
        if (k) out += item_sep;
        if (o.has_indent) newline(level + 1);
        json_string(out, entries[k].first, o.ensure_ascii);
        out += key_sep;
        entries[k].second->json_into(out, o, level + 1, depth + 1);
      }
      if (o.has_indent) newline(level);
      out += '}';
      return;
    }
    default: break;
  }
  throw ValueError("Object of type " + (kind_ == Kind::kList && !list_->view.empty() ? list_->view : type_name()) +
                   " is not JSON serializable");
}

// ---- Dict, CallArgs ----

const Value* Dict::find(const Value& key) const {
  for (const auto& item : items) {
    if (item.first.equals(key)) return &item.second;
  }
  return nullptr;
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& item : items) {
    if (item.first.is_string() && item.first.str() == key) return &item.second;
  }
  return nullptr;
}

void Dict::set(const Value& key, Value value) {
  for (auto& item : items) {
    if (item.first.equals(key)) {
      item.second = std::move(value);
      return;
    }
  }
  items.emplace_back(key, std::move(value));
}

Value CallArgs::get(size_t position, const std::string& name, Value fallback) {
  Value* positional = position < args.size() ? &args[position] : nullptr;
  for (auto& [key, value] : kwargs) {
    if (key == name) {
      if (positional) throw ValueError(callee + "() got multiple values for argument '" + name + "'");
      return value;
    }
  }
  return positional ? *positional : fallback;
}

bool CallArgs::has(size_t position, const std::string& name) const {
  if (position < args.size()) return true;
  for (const auto& kw : kwargs) {
    if (kw.first == name) return true;
  }
  return false;
}

}  // namespace aligntrain::data::jinja
