// Case mapping for the Jinja engine (see jinja_case.h): per-code-point tables for the covered blocks.
#include "data/jinja_case.h"

#include <cstdint>
#include <vector>

namespace aligntrain::data::jinja {

namespace {

struct CodePoint {
  uint32_t cp;
  size_t size;
};

CodePoint decode(std::string_view s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return {c | 0x80000000u, 1};  // an invalid byte: kept as is
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < n; ++k) {
    unsigned char d = static_cast<unsigned char>(s[i + k]);
    if ((d >> 6) != 2) return {c | 0x80000000u, 1};
    cp = (cp << 6) | (d & 0x3F);
  }
  return {cp, static_cast<size_t>(n)};
}

void append(std::string& out, uint32_t cp) {
  if (cp & 0x80000000u) {
    out += static_cast<char>(cp & 0xFF);
  } else if (cp < 0x80) {
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

// Latin Extended-A: pairs (upper, lower) at even/odd or odd/even code points.
bool latin_ext_a_upper_at_even(uint32_t cp) {
  return (cp >= 0x100 && cp <= 0x12F) || (cp >= 0x132 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177);
}
bool latin_ext_a_upper_at_odd(uint32_t cp) {
  return (cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E);
}

uint32_t lower_of(uint32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 32;
  if (cp < 0x80) return cp;
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 32;
  if (latin_ext_a_upper_at_even(cp)) return cp % 2 == 0 ? cp + 1 : cp;
  if (latin_ext_a_upper_at_odd(cp)) return cp % 2 == 1 ? cp + 1 : cp;
  if (cp == 0x178) return 0xFF;
  if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) return cp + 32;
  if (cp == 0x386) return 0x3AC;
  if (cp >= 0x388 && cp <= 0x38A) return cp + 37;
  if (cp == 0x38C) return 0x3CC;
  if (cp == 0x38E || cp == 0x38F) return cp + 63;
  if (cp >= 0x400 && cp <= 0x40F) return cp + 80;
  if (cp >= 0x410 && cp <= 0x42F) return cp + 32;
  if (((cp >= 0x460 && cp <= 0x481) || (cp >= 0x48A && cp <= 0x4BF)) && cp % 2 == 0) return cp + 1;
  if (cp >= 0xFF21 && cp <= 0xFF3A) return cp + 32;
  return cp;
}

uint32_t upper_of(uint32_t cp) {
  if (cp >= 'a' && cp <= 'z') return cp - 32;
  if (cp < 0x80) return cp;
  if (cp >= 0xE0 && cp <= 0xFE && cp != 0xF7) return cp - 32;
  if (cp == 0xFF) return 0x178;
  if (cp == 0xB5) return 0x39C;
  if (latin_ext_a_upper_at_even(cp)) return cp % 2 == 1 ? cp - 1 : cp;
  if (latin_ext_a_upper_at_odd(cp)) return cp % 2 == 0 ? cp - 1 : cp;
  if (cp == 0x131) return 'I';
  if (cp == 0x17F) return 'S';
  if (cp >= 0x3B1 && cp <= 0x3C9 && cp != 0x3C2) return cp - 32;
  if (cp == 0x3C2) return 0x3A3;
  if (cp == 0x3AC) return 0x386;
  if (cp >= 0x3AD && cp <= 0x3AF) return cp - 37;
  if (cp == 0x3CC) return 0x38C;
  if (cp == 0x3CD || cp == 0x3CE) return cp - 63;
  if (cp >= 0x430 && cp <= 0x44F) return cp - 32;
  if (cp >= 0x450 && cp <= 0x45F) return cp - 80;
  if (((cp >= 0x460 && cp <= 0x481) || (cp >= 0x48A && cp <= 0x4BF)) && cp % 2 == 1) return cp - 1;
  if (cp >= 0xFF41 && cp <= 0xFF5A) return cp - 32;
  return cp;
}

bool is_lower_cp(uint32_t cp) { return upper_of(cp) != cp || cp == 0xDF || cp == 0x138 || cp == 0x149; }
bool is_upper_cp(uint32_t cp) { return lower_of(cp) != cp || cp == 0x130; }
bool is_cased(uint32_t cp) { return is_lower_cp(cp) || is_upper_cp(cp); }

void append_upper(std::string& out, uint32_t cp) {
  if (cp == 0xDF) {
    out += "SS";
  } else if (cp == 0x149) {  // ŉ -> ʼN
    append(out, 0x2BC);
    out += 'N';
  } else {
    append(out, upper_of(cp));
  }
}

void append_lower(std::string& out, uint32_t cp) {
  if (cp == 0x130) {  // İ -> i + combining dot above
    out += 'i';
    append(out, 0x307);
  } else {
    append(out, lower_of(cp));
  }
}

}  // namespace

std::string case_upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    CodePoint c = decode(s, i);
    append_upper(out, c.cp);
    i += c.size;
  }
  return out;
}

std::string case_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    CodePoint c = decode(s, i);
    append_lower(out, c.cp);
    i += c.size;
  }
  return out;
}

std::string case_title(std::string_view s) {
  std::string out;
  bool previous_cased = false;
  for (size_t i = 0; i < s.size();) {
    CodePoint c = decode(s, i);
    if (previous_cased) append_lower(out, c.cp);
    else if (c.cp == 0xDF) out += "Ss";
    else append_upper(out, c.cp);
    previous_cased = is_cased(c.cp);
    i += c.size;
  }
  return out;
}

std::string case_capitalize(std::string_view s) {
  if (s.empty()) return "";
  CodePoint first = decode(s, 0);
  std::string out;
  if (first.cp == 0xDF) out += "Ss";
  else append_upper(out, first.cp);
  return out + case_lower(s.substr(first.size));
}

std::string case_upper_first_lower_rest(std::string_view s) {
  if (s.empty()) return "";
  CodePoint first = decode(s, 0);
  std::string out;
  append_upper(out, first.cp);
  return out + case_lower(s.substr(first.size));
}

bool case_is_upper(std::string_view s) {
  bool cased = false;
  for (size_t i = 0; i < s.size();) {
    CodePoint c = decode(s, i);
    if (is_lower_cp(c.cp)) return false;
    cased = cased || is_upper_cp(c.cp);
    i += c.size;
  }
  return cased;
}

bool case_is_lower(std::string_view s) {
  bool cased = false;
  for (size_t i = 0; i < s.size();) {
    CodePoint c = decode(s, i);
    if (is_upper_cp(c.cp)) return false;
    cased = cased || is_lower_cp(c.cp);
    i += c.size;
  }
  return cased;
}

}  // namespace aligntrain::data::jinja
