// load_tokenizer / save_byte_tokenizer and the special-token ids of a model directory (see tokenizer.h).
#include "data/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "data/chat_template.h"
#include "data/tokenizer_bpe.h"
#include "data/tokenizer_byte.h"
#include "data/tokenizer_json.h"
#include "data/tokenizer_sentencepiece.h"
#include "data/tokenizer_spm_bpe.h"

namespace aligntrain::data {
namespace {

namespace fs = std::filesystem;

constexpr const char* kByteTokenizerFile = "aligntrain_tokenizer.json";

// One special token as the config files name it: its field in tokenizer_config.json and in
// generation_config.json, and where its id goes.
struct SpecialTokenField {
  const char* config_key;
  const char* generation_key;
  std::optional<int32_t> SpecialTokenIds::*slot;
};

constexpr SpecialTokenField kSpecialTokenFields[] = {
    {"bos_token", "bos_token_id", &SpecialTokenIds::bos},
    {"eos_token", "eos_token_id", &SpecialTokenIds::eos},
    {"pad_token", "pad_token_id", &SpecialTokenIds::pad},
};

// tokenizer_config.json: "eos_token": "<|im_end|>" or {"content": "<|im_end|>", ...}.
void read_tokenizer_config(const std::string& path, const Tokenizer& tokenizer, SpecialTokenIds& ids,
                           std::set<std::string>& declared) {
  const nlohmann::json config = read_json_file(path);
  const JsonView root(config, path);
  root.object();
  for (const SpecialTokenField& field : kSpecialTokenFields) {
    // A key present with null ("bos_token": null, as Qwen2 writes) means "none": generation_config.json may
    // not fill it in later.
    if (config.contains(field.config_key)) declared.insert(field.config_key);
    const auto value = root.get(field.config_key);
    if (!value) continue;
    const JsonView content = value->is_string() ? *value : (*value)["content"];
    const auto id = tokenizer.token_to_id(content.string());
    if (!id) content.fail("'" + content.string() + "' is not a token of the tokenizer");
    ids.*field.slot = *id;
  }
}

// generation_config.json: "eos_token_id": 2 or [2, 7] (the first is taken); fills only ids that
// tokenizer_config.json did not declare.
void read_generation_config(const std::string& path, const Tokenizer& tokenizer, SpecialTokenIds& ids,
                            const std::set<std::string>& declared) {
  const nlohmann::json config = read_json_file(path);
  const JsonView root(config, path);
  root.object();
  for (const SpecialTokenField& field : kSpecialTokenFields) {
    const auto value = root.get(field.generation_key);
    if (!value || declared.count(field.config_key)) continue;
    const JsonView id = value->is_array() ? (*value)[0] : *value;
    if (id.integer() < 0 || id.integer() >= tokenizer.vocab_size()) {
      id.fail("id " + std::to_string(id.integer()) + " is outside the vocabulary (size " +
              std::to_string(tokenizer.vocab_size()) + ")");
    }
    ids.*field.slot = static_cast<int32_t>(id.integer());
  }
}

SpecialTokenIds read_special_ids(const fs::path& dir, const Tokenizer& tokenizer) {
  SpecialTokenIds ids;
  std::set<std::string> declared;
  if (fs::exists(dir / "tokenizer_config.json")) {
    read_tokenizer_config((dir / "tokenizer_config.json").string(), tokenizer, ids, declared);
  }
  if (fs::exists(dir / "generation_config.json")) {
    read_generation_config((dir / "generation_config.json").string(), tokenizer, ids, declared);
  }
  return ids;
}

// A tokenizer.model folder: as read_special_ids, with transformers' LlamaTokenizer defaults ("<s>", "</s>") for a
// BOS / EOS that tokenizer_config.json does not name.
SpecialTokenIds sentencepiece_special_ids(const fs::path& dir, const Tokenizer& tokenizer) {
  SpecialTokenIds ids = read_special_ids(dir, tokenizer);
  nlohmann::json config = nlohmann::json::object();
  if (fs::exists(dir / "tokenizer_config.json")) config = read_json_file((dir / "tokenizer_config.json").string());
  if (!ids.bos && !config.contains("bos_token")) ids.bos = tokenizer.token_to_id("<s>");
  if (!ids.eos && !config.contains("eos_token")) ids.eos = tokenizer.token_to_id("</s>");
  return ids;
}

std::unique_ptr<Tokenizer> load_aligntrain_tokenizer(const std::string& path) {
  const nlohmann::json spec = read_json_file(path);
  const JsonView root(spec, path);
  root.expect_only({"type"});
  const std::string type = root["type"].string();
  if (type != "byte") root["type"].fail("unknown tokenizer type '" + type + "' (known: byte)");
  return std::make_unique<ByteTokenizer>();
}

void write_json(const fs::path& path, const nlohmann::json& value) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << value.dump(2) << "\n";
  out.close();
  if (!out) throw std::runtime_error(path.string() + ": cannot write file");
}

}  // namespace

void Tokenizer::set_special_ids(const SpecialTokenIds& ids) {
  for (const auto& id : {ids.bos, ids.eos, ids.pad}) {
    if (id && (*id < 0 || *id >= vocab_size())) {
      throw std::out_of_range("special token id " + std::to_string(*id) + " is outside the vocabulary (size " +
                              std::to_string(vocab_size()) + ")");
    }
  }
  special_ids_ = ids;
}

namespace {

std::unique_ptr<Tokenizer> load_tokenizer_files(const std::string& model_dir) {
  const fs::path dir(model_dir);
  if (fs::exists(dir / kByteTokenizerFile)) return load_aligntrain_tokenizer((dir / kByteTokenizerFile).string());
  if (!fs::exists(dir / "tokenizer.json") && fs::exists(dir / "tokenizer.model")) {
    auto tokenizer = load_sentencepiece_tokenizer(model_dir);
    tokenizer->set_special_ids(sentencepiece_special_ids(dir, *tokenizer));
    return tokenizer;
  }
  if (!fs::exists(dir / "tokenizer.json")) {
    throw std::runtime_error(model_dir + ": no tokenizer: expected tokenizer.json (Hugging Face), tokenizer.model "
                             "(SentencePiece) or " + kByteTokenizerFile + " (aligntrain byte-level)");
  }
  const std::string path = (dir / "tokenizer.json").string();
  const nlohmann::json spec = read_json_file(path);
  std::unique_ptr<Tokenizer> tokenizer;
  if (is_byte_level_tokenizer(spec)) {
    tokenizer = std::make_unique<BpeTokenizer>(spec, path);
  } else {
    tokenizer = std::make_unique<SpmBpeTokenizer>(spec, path);
  }
  tokenizer->set_special_ids(read_special_ids(dir, *tokenizer));
  return tokenizer;
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir) {
  try {
    return load_tokenizer_files(model_dir);
  } catch (const DataError&) {
    throw;
  } catch (const std::exception& e) {
    throw DataError(e.what());  // an unusable tokenizer file is a data error (exit code 3)
  }
}

void save_byte_tokenizer(const std::string& model_dir) {
  const fs::path dir(model_dir);
  fs::create_directories(dir);
  write_json(dir / kByteTokenizerFile, {{"type", "byte"}});
  const auto& specials = ByteTokenizer::kSpecialTokens;
  write_json(dir / "tokenizer_config.json",
             {{"bos_token", specials[0]},
              {"eos_token", specials[1]},
              {"pad_token", specials[2]},
              {"additional_special_tokens", nlohmann::json::array({specials[3], specials[4]})},
              {"chat_template", plain_template_jinja()}});
}

}  // namespace aligntrain::data
