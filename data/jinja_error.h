// The errors of the Jinja engine (data/jinja.h).
//   JinjaError         the template is wrong: a syntax error, an unknown filter or test, or an error while rendering
//                      (an undefined value used, a type error, a limit reached); carries the template line and
//                      column. A UsageError (exit code 2) unless the caller knows the data is at fault.
//   JinjaRaisedError   the template called raise_exception(message): what() is exactly the message (the template's
//                      verdict on the data, e.g. "Conversation roles must alternate user/assistant/...").
#pragma once

#include <string>

#include "common/errors.h"

namespace aligntrain::data {

class JinjaError : public UsageError {
 public:
  JinjaError(const std::string& detail, int line, int column)
      : UsageError("chat template line " + std::to_string(line) + ", column " + std::to_string(column) + ": " +
                   detail),
        detail_(detail),
        line_(line),
        column_(column) {}
  const std::string& detail() const { return detail_; }
  int line() const { return line_; }
  int column() const { return column_; }

 private:
  std::string detail_;
  int line_;
  int column_;
};

class JinjaRaisedError : public std::runtime_error {
 public:
  JinjaRaisedError(const std::string& message, int line, int column)
      : std::runtime_error(message), line_(line), column_(column) {}
  int line() const { return line_; }
  int column() const { return column_; }

 private:
  int line_;
  int column_;
};

}  // namespace aligntrain::data
