// Lexer of the Jinja engine: mirrors jinja2/lexer.py's root / comment / block / variable / raw states with
// transformers' settings (see jinja_lexer.h).
#include "data/jinja_lexer.h"

#include <cctype>
#include <cstring>

#include "data/jinja_error.h"
#include "data/jinja_value.h"

namespace aligntrain::data::jinja {

namespace {

class Lexer {
 public:
  explicit Lexer(const std::string& src) : s_(src) {}

  std::vector<Token> run() {
    while (pos_ < s_.size()) root_step();
    push(Token::Type::kEof, "", pos_);
    return std::move(tokens_);
  }

 private:
  // Line and column (1-based, in code points) of byte offset `at`.
  void position(size_t at, int* line, int* column) {
    while (scan_ < at && scan_ < s_.size()) {
      unsigned char c = static_cast<unsigned char>(s_[scan_]);
      if (c == '\n') {
        ++line_;
        column_ = 1;
      } else if ((c & 0xC0) != 0x80) {
        ++column_;
      }
      ++scan_;
    }
    *line = line_;
    *column = column_;
  }

  [[noreturn]] void fail(const std::string& message, size_t at) {
    int line, column;
    position(at, &line, &column);
    throw JinjaError(message, line, column);
  }

  void push(Token::Type type, std::string text, size_t at) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    position(at, &t.line, &t.column);
    tokens_.push_back(std::move(t));
  }

  bool starts(size_t at, const char* lit) const { return s_.compare(at, std::strlen(lit), lit) == 0; }

  size_t skip_space(size_t at) const {
    while (at < s_.size()) {
      size_t n;
      if (!utf8_is_space_at(s_, at, &n)) break;
      at += n;
    }
    return at;
  }

  // Strips text before a tag the way OptionalLStrip does; returns the kept text.
  std::string strip_before(std::string text, char sign, bool is_variable) {
    if (sign == '-') return python_strip(text, false, true);
    if (sign != '+' && !is_variable) {
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if (l_pos > 0 || line_starting_) {
        bool all_space = l_pos < text.size();
        for (size_t i = l_pos; i < text.size() && all_space;) {
          size_t n;
          if (!utf8_is_space_at(text, i, &n)) all_space = false;
          i += n;
        }
        if (all_space) text.resize(l_pos);
      }
    }
    return text;
  }

  void root_step() {
    // The earliest "{{", "{%" or "{#".
    size_t at = pos_;
    while (true) {
      at = s_.find('{', at);
      if (at == std::string::npos || at + 1 >= s_.size()) {
        push(Token::Type::kData, s_.substr(pos_), pos_);
        pos_ = s_.size();
        return;
      }
      char c = s_[at + 1];
      if (c == '{' || c == '%' || c == '#') break;
      ++at;
    }
    char kind = s_[at + 1];
    char sign = at + 2 < s_.size() && (s_[at + 2] == '-' || s_[at + 2] == '+') ? s_[at + 2] : 0;
    std::string text = s_.substr(pos_, at - pos_);
    size_t after_open = at + 2 + (sign ? 1 : 0);

    // {% raw %}: the raw_begin rule is tried first at this position.
    if (kind == '%') {
      size_t p = skip_space(after_open);
      if (starts(p, "raw")) {
        size_t q = skip_space(p + 3);
        size_t end = 0;
        if (starts(q, "-%}")) end = skip_space(q + 3);
        else if (starts(q, "%}")) end = q + 2;
        if (end) {
          emit_data(strip_before(text, sign, false), pos_);
          raw(end);
          return;
        }
      }
    }
    emit_data(strip_before(text, sign, kind == '{'), pos_);
    line_starting_ = false;
    if (kind == '#') {
      comment(after_open, at);
    } else {
      tag(kind == '{', after_open, at);
    }
  }

  void emit_data(std::string text, size_t at) {
    if (!text.empty()) push(Token::Type::kData, std::move(text), at);
  }

  void raw(size_t body) {
    // (.*?)({%[-+]?\s*endraw\s*(?:+%}|-%}\s*|%}\n?)), with the text stripped before the endraw tag.
    size_t at = body;
    while (true) {
      at = s_.find("{%", at);
      if (at == std::string::npos) fail("Missing end of raw directive", body);
      char sign = at + 2 < s_.size() && (s_[at + 2] == '-' || s_[at + 2] == '+') ? s_[at + 2] : 0;
      size_t p = skip_space(at + 2 + (sign ? 1 : 0));
      if (starts(p, "endraw")) {
        size_t q = skip_space(p + 6);
        size_t end = 0;
        if (starts(q, "+%}")) end = q + 3;
        else if (starts(q, "-%}")) end = skip_space(q + 3);
        else if (starts(q, "%}")) end = q + 2 + (q + 2 < s_.size() && s_[q + 2] == '\n' ? 1 : 0);
        if (end) {
          emit_data(strip_before(s_.substr(body, at - body), sign, false), body);
          line_starting_ = s_[end - 1] == '\n';
          pos_ = end;
          return;
        }
      }
      at += 2;
    }
  }

  void comment(size_t body, size_t open) {
    for (size_t at = body; at < s_.size(); ++at) {
      size_t end = 0;
      if (starts(at, "+#}")) end = at + 3;
      else if (starts(at, "-#}")) end = skip_space(at + 3);
      else if (starts(at, "#}")) end = at + 2 + (at + 2 < s_.size() && s_[at + 2] == '\n' ? 1 : 0);
      if (end) {
        line_starting_ = s_[end - 1] == '\n';
        pos_ = end;
        return;
      }
    }
    fail("Missing end of comment tag", open);
  }

  void tag(bool is_variable, size_t at, size_t open) {
    push(is_variable ? Token::Type::kVariableBegin : Token::Type::kBlockBegin, "", open);
    std::string balance;
    while (true) {
      if (at >= s_.size()) fail(is_variable ? "unexpected end of template, expected '}}'" :
                                              "unexpected end of template, expected '%}'", at);
      if (balance.empty()) {
        size_t end = 0;
        if (is_variable) {
          if (starts(at, "-}}")) end = skip_space(at + 3);
          else if (starts(at, "}}")) end = at + 2;
        } else {
          if (starts(at, "+%}")) end = at + 3;
          else if (starts(at, "-%}")) end = skip_space(at + 3);
          else if (starts(at, "%}")) end = at + 2 + (at + 2 < s_.size() && s_[at + 2] == '\n' ? 1 : 0);
        }
        if (end) {
          push(is_variable ? Token::Type::kVariableEnd : Token::Type::kBlockEnd, "", at);
          line_starting_ = s_[end - 1] == '\n';
          pos_ = end;
          return;
        }
      }
      size_t n;
      if (utf8_is_space_at(s_, at, &n)) {
        at += n;
        continue;
      }
      unsigned char c = static_cast<unsigned char>(s_[at]);
      if (std::isdigit(c)) {
        at = number(at);
      } else if (std::isalpha(c) || c == '_') {
        size_t b = at;
        while (at < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[at])) || s_[at] == '_')) ++at;
        push(Token::Type::kName, s_.substr(b, at - b), b);
      } else if (c == '\'' || c == '"') {
        at = string(at);
      } else {
        static const char* const kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
                                           "]",  "(",  ")",  "{",  "}",  ">",  "<", "=", ".", ":", "|", ",", ";"};
        const char* op = nullptr;
        for (const char* candidate : kOps) {
          if (starts(at, candidate)) {
            op = candidate;
            break;
          }
        }
        if (!op) {
          size_t len;
          utf8_is_space_at(s_, at, &len);
          fail("unexpected char " + python_string_repr(s_.substr(at, len)), at);
        }
        char o = op[0];
        if (op[1] == 0 && (o == '{' || o == '(' || o == '[')) {
          balance += o == '{' ? '}' : o == '(' ? ')' : ']';
        } else if (op[1] == 0 && (o == '}' || o == ')' || o == ']')) {
          if (balance.empty()) fail(std::string("unexpected '") + o + "'", at);
          if (balance.back() != o) fail(std::string("unexpected '") + o + "', expected '" + balance.back() + "'", at);
          balance.pop_back();
        }
        push(Token::Type::kOperator, op, at);
        at += std::strlen(op);
      }
    }
  }

  size_t number(size_t at) {
    size_t b = at;
    auto digits = [&](size_t p) {  // (\d+_)*\d+ ; returns the end, or p if none
      size_t q = p;
      while (q < s_.size() && std::isdigit(static_cast<unsigned char>(s_[q]))) {
        ++q;
        if (q + 1 < s_.size() && s_[q] == '_' && std::isdigit(static_cast<unsigned char>(s_[q + 1]))) ++q;
      }
      return q;
    };
    size_t int_end = digits(at);
    bool after_dot = b > 0 && s_[b - 1] == '.';
    if (!after_dot) {
      size_t p = int_end;
      bool is_float = false;
      if (p < s_.size() && s_[p] == '.' && p + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[p + 1]))) {
        p = digits(p + 1);
        is_float = true;
      }
      if (p < s_.size() && (s_[p] == 'e' || s_[p] == 'E')) {
        size_t q = p + 1;
        if (q < s_.size() && (s_[q] == '+' || s_[q] == '-')) ++q;
        if (q < s_.size() && std::isdigit(static_cast<unsigned char>(s_[q]))) {
          p = digits(q);
          is_float = true;
        }
      }
      if (is_float) {
        std::string text;
        for (size_t k = b; k < p; ++k) {
          if (s_[k] != '_') text += s_[k];
        }
        push(Token::Type::kFloat, text, b);
        return p;
      }
    }
    // Integer: [1-9](_?\d)* or 0(_?0)*.
    size_t p = b;
    if (s_[b] == '0') {
      ++p;
      while (p < s_.size() && (s_[p] == '0' || (s_[p] == '_' && p + 1 < s_.size() && s_[p + 1] == '0'))) ++p;
    } else {
      p = int_end;
    }
    std::string text;
    for (size_t k = b; k < p; ++k) {
      if (s_[k] != '_') text += s_[k];
    }
    push(Token::Type::kInteger, text, b);
    return p;
  }

  size_t string(size_t at) {
    char quote = s_[at];
    std::string out;
    size_t p = at + 1;
    while (true) {
      if (p >= s_.size()) fail("unexpected char " + python_string_repr(std::string(1, quote)), at);
      char c = s_[p];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++p;
        continue;
      }
      if (p + 1 >= s_.size()) fail("unexpected char " + python_string_repr(std::string(1, quote)), at);
      char e = s_[p + 1];
      p += 2;
      auto hex = [&](int count) {
        uint32_t v = 0;
        for (int k = 0; k < count; ++k) {
          if (p >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[p]))) {
            fail("truncated \\xXX escape", at);
          }
          char h = s_[p++];
          v = v * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
        }
        return v;
      };
      switch (e) {
        case '\n': break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x': append_cp(out, hex(2), at); break;
        case 'u': append_cp(out, hex(4), at); break;
        case 'U': append_cp(out, hex(8), at); break;
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = e - '0';
            for (int k = 0; k < 2 && p < s_.size() && s_[p] >= '0' && s_[p] <= '7'; ++k) v = v * 8 + (s_[p++] - '0');
            append_cp(out, v, at);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    push(Token::Type::kString, out, at);
    return p + 1;
  }

  void append_cp(std::string& out, uint32_t cp, size_t at) {
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) fail("illegal Unicode character in string", at);
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  const std::string& s_;
  size_t pos_ = 0;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
  size_t scan_ = 0;
  int line_ = 1;
  int column_ = 1;
};

}  // namespace

std::string normalize_template_source(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::vector<Token> tokenize_template(const std::string& normalized_source) {
  return Lexer(normalized_source).run();
}

}  // namespace aligntrain::data::jinja
