// Test helper: the message of the exception a callable throws, for checking that errors name what they should.
#pragma once

#include <exception>
#include <string>

namespace aligntrain::data::testing {

// The what() of the std::exception `f` throws, or "(no exception)".
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace aligntrain::data::testing
