// Models by name: a Hugging Face repo id (`org/name`) found offline in the local Hugging Face hub cache, the way
// huggingface_hub lays it out:
//   <cache>/models--org--name/refs/<revision>        the commit hash a ref (main, a branch or tag) points to
//   <cache>/models--org--name/snapshots/<hash>/       the model folder of that commit
// The caches searched, in order: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub (each only when set).
// A revision that is not a ref may be a commit hash with its own snapshot folder.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace aligntrain {

// Whether `value` has the shape of a repo id: `org/name`, one slash, letters, digits, `-`, `_` and `.` (not
// starting with `.`), as the Hub allows.
bool looks_like_repo_id(const std::string& value);

struct HfCacheLookup {
  std::optional<std::string> snapshot;  // the model folder found
  std::vector<std::string> searched;    // the places looked at, for a miss's message
};

// Looks `repo_id` up at `revision` (empty: main) in the caches above; no network.
HfCacheLookup find_in_hf_cache(const std::string& repo_id, const std::string& revision);

// The message of a miss: what was looked for and every place searched.
std::string hf_cache_miss_message(const std::string& repo_id, const std::string& revision,
                                  const HfCacheLookup& lookup);

}  // namespace aligntrain
