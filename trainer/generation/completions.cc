// See completions.h.
#include "trainer/generation/completions.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <fstream>

#include "common/errors.h"

namespace aligntrain::generation {

namespace fs = std::filesystem;

std::vector<int64_t> stop_ids(const model::ModelConfig& config, const data::Tokenizer& tokenizer) {
  std::vector<int64_t> ids = config.eos_token_ids;
  if (tokenizer.eos_id() && std::find(ids.begin(), ids.end(), *tokenizer.eos_id()) == ids.end())
    ids.push_back(*tokenizer.eos_id());
  return ids;
}

std::vector<Completion> complete(model::CausalLM& lm, runtime::Groups& groups, const data::Tokenizer& tokenizer,
                                 const data::Encoder& encoder, const std::vector<data::Example>& examples,
                                 const std::string& data_path, int num_samples, GenerateOptions options,
                                 const at::Device& device, const std::string& what) {
  if (options.eos_ids.empty()) options.eos_ids = stop_ids(lm.config(), tokenizer);
  if (options.pad_id == 0 && tokenizer.pad_id()) options.pad_id = *tokenizer.pad_id();
  if (options.vocab_limit == 0) options.vocab_limit = tokenizer.vocab_size();
  const int k = std::max(num_samples, 1);
  std::vector<Request> requests;
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto prompt = encoder.encode_prompt(examples[i].prompt, examples[i].template_vars);
    if (prompt.empty()) {
      throw DataError(data_path + ":" + std::to_string(examples[i].line) +
                      ": prompt: tokenises to nothing and the tokenizer has no BOS token to start from");
    }
    for (int s = 0; s < k; ++s) requests.push_back({prompt, static_cast<uint64_t>(i) * k + static_cast<uint64_t>(s)});
  }
  const auto start = std::chrono::steady_clock::now();
  size_t last_logged = 0;
  const auto results = generate_sharded(lm, groups, requests, options, device, [&](size_t done, size_t total) {
    if (done != total && done - last_logged < std::max<size_t>(total / 10, 1)) return;
    last_logged = done;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spdlog::info("{}: {}/{} completions ({:.1f} s)", what, done, total, s);
  });
  std::vector<Completion> out;
  out.reserve(results.size());
  for (size_t r = 0; r < results.size(); ++r) {
    Completion c;
    c.example = r / static_cast<size_t>(k);
    c.sample = static_cast<int>(r % static_cast<size_t>(k));
    c.text = tokenizer.decode(results[r].tokens, /*skip_special=*/true);
    c.ids = results[r].tokens;
    c.stopped = results[r].stopped;
    out.push_back(std::move(c));
  }
  return out;
}

nlohmann::ordered_json output_object(const data::Example& example, const Completion& c, int num_samples,
                                     bool with_ids) {
  auto obj = nlohmann::ordered_json::parse(example.raw);
  if (example.prompt.conversational) {
    obj["completion"] = nlohmann::ordered_json::array({{{"role", "assistant"}, {"content", c.text}}});
  } else {
    obj["completion"] = c.text;
  }
  if (num_samples > 1) obj["sample"] = c.sample;
  if (with_ids) obj["completion_ids"] = c.ids;
  return obj;
}

void write_completions(const fs::path& path, const std::vector<data::Example>& examples,
                       const std::vector<Completion>& completions, int num_samples, bool with_ids) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream os(tmp, std::ios::binary | std::ios::trunc);
    if (!os) throw std::runtime_error("cannot write " + tmp.string());
    for (const auto& c : completions) os << output_object(examples[c.example], c, num_samples, with_ids).dump() << "\n";
    os.flush();
    if (!os) throw std::runtime_error("failed writing " + tmp.string());
  }
  fs::rename(tmp, path);
}

}  // namespace aligntrain::generation
