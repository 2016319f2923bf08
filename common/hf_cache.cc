// See hf_cache.h.
#include "common/hf_cache.h"

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace aligntrain {
namespace fs = std::filesystem;

namespace {

bool repo_part(const std::string& s) {
  if (s.empty() || s.size() > 96 || s[0] == '.' || s[0] == '-') return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return s.find("..") == std::string::npos;
}

std::vector<fs::path> cache_roots() {
  std::vector<fs::path> roots;
  if (const char* v = std::getenv("HF_HUB_CACHE"); v && *v) roots.emplace_back(v);
  if (const char* v = std::getenv("HF_HOME"); v && *v) roots.push_back(fs::path(v) / "hub");
  if (const char* v = std::getenv("HOME"); v && *v) roots.push_back(fs::path(v) / ".cache" / "huggingface" / "hub");
  return roots;
}

std::string first_line(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  return line;
}

}  // namespace

bool looks_like_repo_id(const std::string& value) {
  const auto slash = value.find('/');
  if (slash == std::string::npos || value.find('/', slash + 1) != std::string::npos) return false;
  return repo_part(value.substr(0, slash)) && repo_part(value.substr(slash + 1));
}

HfCacheLookup find_in_hf_cache(const std::string& repo_id, const std::string& revision) {
  HfCacheLookup out;
  const std::string rev = revision.empty() ? "main" : revision;
  const auto slash = repo_id.find('/');
  const std::string folder = "models--" + repo_id.substr(0, slash) + "--" + repo_id.substr(slash + 1);
  std::error_code ec;
  for (const fs::path& root : cache_roots()) {
    const fs::path repo = root / folder;
    const fs::path ref = repo / "refs" / rev;
    std::string hash = fs::is_regular_file(ref, ec) ? first_line(ref) : rev;
    const fs::path snapshot = repo / "snapshots" / hash;
    out.searched.push_back(snapshot.string() + (hash == rev ? "" : " (" + ref.string() + ")"));
    if (!hash.empty() && repo_part(hash) && fs::is_directory(snapshot, ec)) {
      out.snapshot = snapshot.lexically_normal().string();
      return out;
    }
  }
  return out;
}

std::string hf_cache_miss_message(const std::string& repo_id, const std::string& revision,
                                  const HfCacheLookup& lookup) {
  std::string msg = "`" + repo_id + "` is neither a model folder nor in the Hugging Face cache at revision " +
                    (revision.empty() ? std::string("main") : revision) + "; looked in:";
  if (lookup.searched.empty()) msg += " nowhere (none of HF_HUB_CACHE, HF_HOME, HOME is set)";
  for (const auto& s : lookup.searched) msg += "\n  " + s;
  msg += "\n(download it where the network is reachable, e.g. `huggingface-cli download " + repo_id +
         "`, and copy the cache here)";
  return msg;
}

}  // namespace aligntrain
