// JSON access with file- and field-naming errors (see tokenizer_json.h).
#include "data/tokenizer_json.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace aligntrain::data {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
}

JsonView::JsonView(const nlohmann::json& value, std::string file, std::string path)
    : value_(&value), file_(std::move(file)), path_(std::move(path)) {}

std::string JsonView::child_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

void JsonView::fail(const std::string& message) const {
  throw std::runtime_error(file_ + (path_.empty() ? ": " : ": field '" + path_ + "': ") + message);
}

const nlohmann::json& JsonView::object() const {
  if (!value_->is_object()) fail(std::string("expected an object, got ") + value_->type_name());
  return *value_;
}

const nlohmann::json& JsonView::array() const {
  if (!value_->is_array()) fail(std::string("expected an array, got ") + value_->type_name());
  return *value_;
}

JsonView JsonView::operator[](std::string_view key) const {
  const auto it = object().find(std::string(key));
  if (it == value_->end()) JsonView(*value_, file_, child_path(key)).fail("missing");
  return JsonView(*it, file_, child_path(key));
}

std::optional<JsonView> JsonView::get(std::string_view key) const {
  const auto it = object().find(std::string(key));
  if (it == value_->end() || it->is_null()) return std::nullopt;
  return JsonView(*it, file_, child_path(key));
}

JsonView JsonView::operator[](std::size_t index) const {
  if (index >= array().size()) fail("index " + std::to_string(index) + " out of range");
  return JsonView((*value_)[index], file_, path_ + "[" + std::to_string(index) + "]");
}

std::string JsonView::string() const {
  if (!value_->is_string()) fail(std::string("expected a string, got ") + value_->type_name());
  return value_->get<std::string>();
}

bool JsonView::boolean() const {
  if (!value_->is_boolean()) fail(std::string("expected true or false, got ") + value_->type_name());
  return value_->get<bool>();
}

int64_t JsonView::integer() const {
  if (!value_->is_number_integer()) fail(std::string("expected an integer, got ") + value_->type_name());
  return value_->get<int64_t>();
}

bool JsonView::boolean_or(std::string_view key, bool if_absent) const {
  const auto member = get(key);
  return member ? member->boolean() : if_absent;
}

void JsonView::expect_only(std::initializer_list<std::string_view> known) const {
  for (const auto& item : object().items()) {
    bool found = false;
    for (std::string_view k : known) found = found || item.key() == k;
    if (!found) JsonView(item.value(), file_, child_path(item.key())).fail("unknown field");
  }
}

}  // namespace aligntrain::data
