// Python's str case mapping for the Jinja engine (upper, lower, title, capitalize, isupper, islower) on UTF-8 text,
// for the scripts chat content commonly uses: ASCII, Latin-1, Latin Extended-A, Greek (without the final-sigma
// rule of lower()), Cyrillic and fullwidth Latin; ß upper-cases to "SS". Other characters are uncased and kept.
#pragma once

#include <string>
#include <string_view>

namespace aligntrain::data::jinja {

std::string case_upper(std::string_view s);
std::string case_lower(std::string_view s);
std::string case_title(std::string_view s);       // str.title()
std::string case_capitalize(std::string_view s);  // str.capitalize()
// The first character upper-cased, the rest lower-cased (Jinja2's title filter on each word).
std::string case_upper_first_lower_rest(std::string_view s);
bool case_is_upper(std::string_view s);  // str.isupper(): a cased character and no lower-case one
bool case_is_lower(std::string_view s);

}  // namespace aligntrain::data::jinja
