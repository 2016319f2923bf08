// Values of the Jinja engine (data/jinja.h), with Python's semantics as Jinja2 gives them to chat templates: none,
// bool, int (64-bit; overflow is an error), float, str (UTF-8; lengths, indices and slices count code points),
// list / tuple / generator (what selectattr, map, reverse... return: always true, no length), dict (insertion
// order, like Python's), namespace (a mutable dict shared by reference), callable, and Jinja2's default Undefined
// (prints as "", iterates as empty, is false; arithmetic, attribute access and calls on it are errors).
// Also: Python's truthiness, ==, <, str() and repr(), and transformers' tojson (json.dumps, ensure_ascii=False).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aligntrain::data::jinja {

// An error while evaluating (a type error, an undefined value used, a bad argument). The evaluator adds the
// template position where it catches one.
class ValueError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Value;
struct List;
struct Dict;
struct CallArgs;
using Function = std::function<Value(CallArgs&)>;

class Value {
 public:
  enum class Kind : uint8_t { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };

  Value() : kind_(Kind::kUndefined) {}  // undefined, no name
  static Value undefined(std::string hint);  // hint: what the error says if it is used, e.g. "'x' is undefined"
  static Value none() { return Value(Kind::kNone); }
  Value(bool b) : kind_(Kind::kBool), b_(b) {}
  Value(int v) : kind_(Kind::kInt), i_(v) {}
  Value(int64_t v) : kind_(Kind::kInt), i_(v) {}
  Value(double v) : kind_(Kind::kFloat), f_(v) {}
  Value(std::string s);
  Value(const char* s) : Value(std::string(s)) {}
  explicit Value(std::shared_ptr<List> list);
  explicit Value(std::shared_ptr<Dict> dict, bool is_namespace = false);
  static Value function(std::string name, Function fn);
  static Value list(std::vector<Value> items);
  static Value tuple(std::vector<Value> items);
  static Value generator(std::vector<Value> items);  // a Python iterator: truthy, no len, prints as a generator
  // A generator whose iteration fails with `error` (a Jinja2 filter that is a Python generator fails lazily).
  static Value failing_generator(std::string error);
  static Value dict();
  static Value from_json(const nlohmann::ordered_json& json);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }  // list, tuple or generator
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return kind_ == Kind::kBool ? (b_ ? 1 : 0) : i_; }  // int or bool
  double as_double() const;                                                    // any number
  const std::string& str() const { return *str_; }                             // string (or undefined's hint)
  List& list_ref() const { return *list_; }
  Dict& dict_ref() const { return *dict_; }  // dict or namespace
  const Function& fn() const { return *fn_; }
  const std::string& fn_name() const { return *str_; }

  bool truthy() const;
  // Python's str(): "None", "True", "1.5", repr() of containers; Undefined -> "".
  std::string to_str() const;
  std::string repr() const;
  // Python's type name, for messages: 'int', 'str', 'dict', 'NoneType', ...
  std::string type_name() const;
  // Throws ValueError with the undefined's message (used where Jinja2's Undefined raises).
  [[noreturn]] void fail_undefined() const;

  // Python's ==, and < (ValueError for unorderable types).
  bool equals(const Value& other) const;
  bool less(const Value& other) const;

  // The items of anything iterable: list/tuple/generator items, dict keys, a string's characters; undefined -> none.
  // ValueError for the rest.
  std::vector<Value> iterate() const;
  // Python's len(): ValueError for what has none.
  int64_t length() const;

  // transformers' tojson: json.dumps(x, ensure_ascii, indent, separators, sort_keys). `indent` < 0: none;
  // `indent_str` when the indent was given as a string. Separators empty: the defaults.
  struct JsonOptions {
    bool ensure_ascii = false;
    bool has_indent = false;
    std::string indent;
    bool has_separators = false;
    std::string item_separator, key_separator;
    bool sort_keys = false;
  };
  std::string to_json(const JsonOptions& options) const;

 private:
  explicit Value(Kind kind) : kind_(kind) {}
  void json_into(std::string& out, const JsonOptions& options, int level, int depth) const;
  void repr_into(std::string& out, int depth) const;

  Kind kind_;
  union {
    bool b_;
    int64_t i_ = 0;
    double f_;
  };
  std::shared_ptr<const std::string> str_;
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<const Function> fn_;
};

struct List {
  enum class Form : uint8_t { kList, kTuple, kGenerator };
  std::vector<Value> items;
  Form form = Form::kList;
  std::string error;  // a failing generator: iterating it throws this
  std::string view;   // "dict_keys", "dict_values", "dict_items": a dict view (its repr; not JSON serializable)
};

// Insertion-ordered, keys compared with Python's == (small dicts: linear search).
struct Dict {
  std::vector<std::pair<Value, Value>> items;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(const Value& key, Value value);
};

// Arguments of a call: positional, then keyword.
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
  std::string callee;  // for messages

  // The argument at `position` or named `name` (ValueError if both are given), else `fallback`.
  Value get(size_t position, const std::string& name, Value fallback = Value());
  bool has(size_t position, const std::string& name) const;
};

// Python's float repr: shortest round-trip form, "1.0", "1e+16", "inf", "nan".
std::string python_float_repr(double value);
// Python's repr of a str.
std::string python_string_repr(std::string_view s);

// UTF-8 helpers (invalid bytes count as one code point each).
size_t utf8_length(std::string_view s);
std::vector<size_t> utf8_offsets(std::string_view s);  // byte offset of each code point, plus s.size()
// Python's str.isspace() for the code point starting at s[i]; `size` gets its byte length.
bool utf8_is_space_at(std::string_view s, size_t i, size_t* size);
std::string python_strip(std::string_view s, bool left, bool right);  // whitespace
std::string python_strip_chars(std::string_view s, std::string_view chars, bool left, bool right);

}  // namespace aligntrain::data::jinja
