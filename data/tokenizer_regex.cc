// PCRE2 wrapper for the pre-tokenizer patterns, translating Oniguruma's dialect (see tokenizer_regex.h).
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include "data/tokenizer_regex.h"

#include <pcre2.h>

#include <stdexcept>

#include "data/tokenizer_unicode.h"

namespace aligntrain::data {
namespace {

std::string pcre2_message(int error_code) {
  PCRE2_UCHAR buffer[256];
  const int length = pcre2_get_error_message(error_code, buffer, sizeof(buffer));
  return length < 0 ? "PCRE2 error " + std::to_string(error_code)
                    : std::string(reinterpret_cast<const char*>(buffer), length);
}

// Match data holding one (start, end) pair; one per thread, reused across calls.
pcre2_match_data* thread_match_data() {
  struct Holder {
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    ~Holder() { pcre2_match_data_free(data); }
  };
  thread_local Holder holder;
  if (holder.data == nullptr) throw std::bad_alloc();
  return holder.data;
}

// Oniguruma's \s: U+0009..U+000D, U+0085 and the separators (Zs, Zl, Zp), as items of a character class.
constexpr std::string_view kOnigurumaSpace = R"(\t\n\x{0B}\f\r\x{85}\p{Z})";

[[noreturn]] void refuse(std::size_t offset, const std::string& what) {
  throw std::invalid_argument("unsupported at offset " + std::to_string(offset) + ": " + what +
                              " (Oniguruma and PCRE2 read it differently)");
}

// Rewrites the escapes and classes of an Oniguruma pattern whose PCRE2 reading differs; see tokenizer_regex.h.
std::string translate_oniguruma(std::string_view pattern) {
  std::string out;
  bool in_class = false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char escaped = pattern[++i];
      if (escaped == 's') {
        out += in_class ? std::string(kOnigurumaSpace) : "[" + std::string(kOnigurumaSpace) + "]";
      } else if (escaped == 'S' && !in_class) {
        out += "[^" + std::string(kOnigurumaSpace) + "]";
      } else if (std::string_view("SwWbBhH").find(escaped) != std::string_view::npos) {
        refuse(i - 1, std::string("\\") + escaped + (in_class ? " inside a character class" : ""));
      } else {
        out += c;
        out += escaped;
      }
      continue;
    }
    if (in_class && c == '[') refuse(i, "a nested or POSIX character class");
    if (in_class && c == '&' && i + 1 < pattern.size() && pattern[i + 1] == '&') refuse(i, "class intersection &&");
    out += c;
    if (!in_class && c == '[') {
      in_class = true;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];  // a literal ']'
    } else if (in_class && c == ']') {
      in_class = false;
    }
  }
  return out;
}

}  // namespace

Regex::Regex(std::string_view pattern, Syntax syntax) : pattern_(pattern) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  const bool literal = syntax == Syntax::kLiteral;
  const uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP | PCRE2_MULTILINE);
  const std::string compiled = literal ? pattern_ : translate_oniguruma(pattern_);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(compiled.data()), compiled.size(), options,
                                   &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    throw std::invalid_argument("invalid regular expression at offset " + std::to_string(error_offset) + ": " +
                                pcre2_message(error_code));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // Without JIT (e.g. no executable memory) the interpreter runs.
  code_ = std::shared_ptr<void>(code, [](void* p) { pcre2_code_free(static_cast<pcre2_code*>(p)); });
}

bool Regex::find(std::string_view subject, std::size_t start, uint32_t options, Match& match) const {
  const auto* code = static_cast<const pcre2_code*>(code_.get());
  pcre2_match_data* data = thread_match_data();
  const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
  int rc = pcre2_match(code, text, subject.size(), start, options | PCRE2_NO_UTF_CHECK, data, nullptr);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {  // The interpreter keeps its backtracking frames on the heap.
    rc = pcre2_match(code, text, subject.size(), start, options | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, data,
                     nullptr);
  }
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) throw std::runtime_error("regular expression /" + pattern_ + "/ failed: " + pcre2_message(rc));
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
  match = {ovector[0], ovector[1]};
  return true;
}

void Regex::split_isolated(std::string_view subject, std::vector<std::string_view>& out) const {
  if (!is_valid_utf8(subject)) throw std::invalid_argument("Regex::split_isolated: subject is not valid UTF-8");
  // Oniguruma's find_iter: an empty match right where the previous match ended is skipped by searching again one
  // character further on; any other empty match is kept (it separates the text around it) and the next search
  // starts at it, where it is then skipped.
  std::size_t search_from = 0, gap_start = 0;
  std::size_t last_match_end = std::string_view::npos;
  Match match{};
  while (search_from <= subject.size() && find(subject, search_from, 0, match)) {
    if (match.start == match.end && match.end == last_match_end) {
      search_from = match.end < subject.size() ? match.end + utf8_step(subject, match.end).length : match.end + 1;
      continue;
    }
    if (match.start > gap_start) out.push_back(subject.substr(gap_start, match.start - gap_start));
    if (match.end > match.start) out.push_back(subject.substr(match.start, match.end - match.start));
    gap_start = search_from = last_match_end = match.end;
  }
  if (gap_start < subject.size()) out.push_back(subject.substr(gap_start));
}

bool Regex::matches_entirely(std::string_view subject) const {
  if (!is_valid_utf8(subject)) throw std::invalid_argument("Regex::matches_entirely: subject is not valid UTF-8");
  Match match{};
  return find(subject, 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED, match);
}

}  // namespace aligntrain::data
