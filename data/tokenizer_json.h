// Reading the tokenizer's JSON files (tokenizer.json, tokenizer_config.json, ...) with errors that name the file
// and the field: a JsonView is a value plus where it came from, and every accessor that finds the wrong thing
// throws std::runtime_error("FILE: field 'model.merges[3]': expected a string, got number").
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace aligntrain::data {

// Parses a JSON file; throws std::runtime_error naming the file if it cannot be read or parsed.
nlohmann::json read_json_file(const std::string& path);

class JsonView {
 public:
  // `value` must outlive the view; `file` is used in messages.
  JsonView(const nlohmann::json& value, std::string file, std::string path = "");

  // A member that must be present (null counts as present).
  JsonView operator[](std::string_view key) const;
  // A member that may be absent or null.
  std::optional<JsonView> get(std::string_view key) const;
  JsonView operator[](std::size_t index) const;

  bool is_null() const { return value_->is_null(); }
  bool is_string() const { return value_->is_string(); }
  bool is_object() const { return value_->is_object(); }
  bool is_array() const { return value_->is_array(); }

  const nlohmann::json& object() const;  // checks that the value is an object
  const nlohmann::json& array() const;   // checks that the value is an array
  std::string string() const;
  bool boolean() const;
  int64_t integer() const;

  // A boolean member whose absence or null means `if_absent` (the Hugging Face format's own defaults).
  bool boolean_or(std::string_view key, bool if_absent) const;
  // Fails if the object has a member not in `known`.
  void expect_only(std::initializer_list<std::string_view> known) const;

  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }
  [[noreturn]] void fail(const std::string& message) const;

 private:
  std::string child_path(std::string_view key) const;

  const nlohmann::json* value_;
  std::string file_;
  std::string path_;
};

}  // namespace aligntrain::data
