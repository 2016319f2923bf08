// What the Jinja engine (data/jinja.h) knows by name, as transformers' sandboxed environment offers it:
//   - attribute and item access with Jinja2's sandbox rules (a dict's methods first, then its keys; `_`-prefixed
//     and mutating attributes are unsafe; a missing attribute or item is Undefined with Jinja2's message);
//   - the methods of str (strip, split, startswith, format, ...), dict (items, keys, values, get) and list
//     (index, count) that templates call;
//   - Jinja2's filters and tests (with transformers' tojson), and the globals range, namespace, dict,
//     raise_exception and strftime_now.
#pragma once

#include <cstddef>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/jinja_value.h"

namespace aligntrain::data::jinja {

// Thrown by raise_exception(message); the evaluator adds the call's position (JinjaRaisedError).
struct TemplateRaise {
  std::string message;
};

// Limits and inputs the builtins need.
struct BuiltinEnv {
  size_t max_string_bytes = 64u << 20;  // strings and lists built by filters / methods / operators
  std::optional<std::time_t> now;       // strftime_now's time (local time, like Python's datetime.now()); unset = now
  // Every namespace() made during the render, so that the renderer can empty them at its end: a namespace is the
  // only mutable value, so every reference cycle (`{% set ns.me = [ns] %}`) passes through one.
  std::shared_ptr<std::vector<std::weak_ptr<Dict>>> namespaces = std::make_shared<std::vector<std::weak_ptr<Dict>>>();
};

// ValueError if `bytes` exceeds the limit.
void check_size(const BuiltinEnv& env, size_t bytes);

Value get_attribute(const Value& object, const std::string& name);
Value get_item(const Value& object, const Value& key);
// Python's slicing of a list, tuple or string (start / stop / step: int or none).
Value slice_value(const Value& object, const Value& start, const Value& stop, const Value& step);

// `input|name(args)`. ValueError for bad arguments.
Value apply_filter(const BuiltinEnv& env, const std::string& name, const Value& input, CallArgs& args);
// `value is name(args)`.
bool apply_test(const std::string& name, const Value& value, CallArgs& args);
// range, namespace, dict, raise_exception, strftime_now (nullopt: not a global).
std::optional<Value> get_global(const BuiltinEnv& env, const std::string& name);

// `a op b` for + - * / // % ** (Python semantics; int overflow is an error).
Value binary_op(const BuiltinEnv& env, const std::string& op, const Value& a, const Value& b);
// `a in b`.
bool contains(const Value& container, const Value& item);

}  // namespace aligntrain::data::jinja
