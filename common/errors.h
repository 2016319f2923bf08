// The error types that map to aligntrain's exit codes (DESIGN.md §2). Code throws these with a message that names
// the file, the field or tensor and what was expected; main() prints the message and exits with the code.
#pragma once

#include <stdexcept>
#include <string>

namespace aligntrain {

// A user's input is unusable: a bad model file, tokenizer file or data file (exit code 3).
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The command line or recipe asks for something invalid or unsupported (exit code 2).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace aligntrain
