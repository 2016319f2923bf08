// "Did you mean ...?": the nearest candidate to a misspelt word by edit distance, offered only when it is
// close enough to be a likely typo.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace aligntrain::config {

// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
int edit_distance(std::string_view a, std::string_view b);

// The closest candidate within distance 1 for words of up to 4 characters, 2 up to 8, 3 beyond.
std::optional<std::string> nearest(std::string_view word, const std::vector<std::string>& candidates);

// " (did you mean `beta`?)" or "".
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace aligntrain::config
