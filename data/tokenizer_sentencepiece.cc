// tokenizer.model -> the tokenizer transformers builds from it (see tokenizer_sentencepiece.h). libsentencepiece
// loads and checks the model and gives the pieces; the piece types and the model type are read from its
// serialized ModelProto with a minimal protobuf walk (the .pb.h header is not installed).
#include "data/tokenizer_sentencepiece.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include <sentencepiece_processor.h>

#include "data/tokenizer_json.h"
#include "data/tokenizer_spm_bpe.h"
#include "data/tokenizer_unicode.h"

namespace aligntrain::data {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// sentencepiece_model.proto: ModelProto.pieces = 1, ModelProto.trainer_spec = 2, SentencePiece.type = 3
// (NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6), TrainerSpec.model_type = 3 (UNIGRAM 1,
// BPE 2, WORD 3, CHAR 4).
struct ProtoFacts {
  std::vector<int> piece_types;
  int model_type = 1;
};

class ProtoReader {
 public:
  ProtoReader(std::string_view bytes, const std::string& file) : bytes_(bytes), file_(file) {}
  bool done() const { return pos_ >= bytes_.size(); }

  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (done()) fail("truncated varint");
      const auto byte = static_cast<uint8_t>(bytes_[pos_++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if (!(byte & 0x80)) return value;
    }
    fail("varint too long");
  }

  // The next field: its number and wire type; `payload` gets a length-delimited field's bytes.
  bool next(uint32_t& field, uint32_t& wire, std::string_view& payload) {
    if (done()) return false;
    const uint64_t key = varint();
    field = static_cast<uint32_t>(key >> 3);
    wire = static_cast<uint32_t>(key & 7);
    switch (wire) {
      case 0:
        payload = std::string_view();
        last_varint_ = varint();
        break;
      case 1:
      case 5:
        skip(wire == 1 ? 8 : 4);
        break;
      case 2: {
        const uint64_t length = varint();
        if (length > bytes_.size() - pos_) fail("truncated field");
        payload = bytes_.substr(pos_, length);
        pos_ += length;
        break;
      }
      default:
        fail("unsupported protobuf wire type " + std::to_string(wire));
    }
    return true;
  }
  uint64_t last_varint() const { return last_varint_; }

 private:
  void skip(std::size_t n) {
    if (n > bytes_.size() - pos_) fail("truncated field");
    pos_ += n;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(file_ + ": not a valid SentencePiece model (" + what + ")");
  }

  std::string_view bytes_;
  const std::string& file_;
  std::size_t pos_ = 0;
  uint64_t last_varint_ = 0;
};

ProtoFacts read_proto_facts(std::string_view model, const std::string& file) {
  ProtoFacts facts;
  ProtoReader reader(model, file);
  uint32_t field = 0, wire = 0;
  std::string_view payload;
  while (reader.next(field, wire, payload)) {
    if (field == 1 && wire == 2) {
      int type = 1;
      ProtoReader piece(payload, file);
      while (piece.next(field, wire, payload)) {
        if (field == 3 && wire == 0) type = static_cast<int>(piece.last_varint());
      }
      facts.piece_types.push_back(type);
    } else if (field == 2 && wire == 2) {
      ProtoReader spec(payload, file);
      while (spec.next(field, wire, payload)) {
        if (field == 3 && wire == 0) facts.model_type = static_cast<int>(spec.last_varint());
      }
    }
  }
  return facts;
}

// transformers' generate_merges(vocab): for each piece in id order, its splits into two pieces, the shorter left
// part first.
nlohmann::json generate_merges(const std::vector<std::string>& pieces,
                               const std::unordered_map<std::string, int32_t>& ids) {
  nlohmann::json merges = nlohmann::json::array();
  for (const std::string& piece : pieces) {
    for (std::size_t cut = 1; cut < piece.size(); ++cut) {
      if ((static_cast<uint8_t>(piece[cut]) & 0xC0) == 0x80) continue;  // inside a character
      const std::string left = piece.substr(0, cut), right = piece.substr(cut);
      if (ids.count(left) && ids.count(right)) merges.push_back({left, right});
    }
  }
  return merges;
}

nlohmann::json added_token(const std::string& content, int32_t id, bool special) {
  return {{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},   {"normalized", false}, {"special", special}};
}

// A special token named in tokenizer_config.json: a string, or an AddedToken object {"content": ...}.
std::string token_text(const JsonView& value) { return value.is_string() ? value.string() : value["content"].string(); }

}  // namespace

nlohmann::json sentencepiece_to_tokenizer_json(const std::string& model_dir) {
  const fs::path dir(model_dir);
  const std::string model_path = (dir / "tokenizer.model").string();
  sentencepiece::SentencePieceProcessor processor;
  const auto status = processor.Load(model_path);
  if (!status.ok()) throw std::runtime_error(model_path + ": cannot load the SentencePiece model: " + status.ToString());
  const ProtoFacts facts = read_proto_facts(processor.serialized_model_proto(), model_path);
  if (facts.model_type != 2) {
    throw std::runtime_error(model_path + ": trainer_spec.model_type " + std::to_string(facts.model_type) +
                             " is not supported (only BPE, 2; Unigram models need their tokenizer.json)");
  }
  const int size = processor.GetPieceSize();
  if (static_cast<int>(facts.piece_types.size()) != size) {
    throw std::runtime_error(model_path + ": the model's pieces could not be read");
  }

  nlohmann::json config = nlohmann::json::object();
  const std::string config_path = (dir / "tokenizer_config.json").string();
  if (fs::exists(config_path)) config = read_json_file(config_path);
  const JsonView root(config, config_path);
  root.object();
  // Without a class transformers builds another pipeline (TokenizersBackend); only LlamaTokenizer's is here.
  const auto cls = root.get("tokenizer_class");
  const std::string name = cls ? cls->string() : "";
  if (name != "LlamaTokenizer" && name != "LlamaTokenizerFast") {
    JsonView(config, config_path, "tokenizer_class")
        .fail("a tokenizer.model without tokenizer.json is supported for tokenizer_class LlamaTokenizer only, got " +
              (cls ? "'" + name + "'" : std::string("none")));
  }
  // transformers 5's defaults when the keys are absent: no BOS or EOS added, legacy false, add_prefix_space true.
  const bool legacy = root.boolean_or("legacy", false);
  const bool add_prefix_space = root.boolean_or("add_prefix_space", true);
  const bool add_bos = root.boolean_or("add_bos_token", false), add_eos = root.boolean_or("add_eos_token", false);
  const auto named = [&](const char* key, const char* fallback) {
    const auto value = root.get(key);
    return value ? token_text(*value) : std::string(fallback);
  };

  std::vector<std::string> pieces(size);
  std::unordered_map<std::string, int32_t> ids;
  nlohmann::json vocab = nlohmann::json::object();
  for (int id = 0; id < size; ++id) {
    pieces[id] = processor.IdToPiece(id);
    if (!is_valid_utf8(pieces[id])) throw std::runtime_error(model_path + ": piece " + std::to_string(id) + " is not UTF-8");
    ids.emplace(pieces[id], id);
    vocab[pieces[id]] = id;
  }
  const auto id_of = [&](const std::string& token, const char* key) {
    const auto it = ids.find(token);
    if (it == ids.end()) root[key].fail("'" + token + "' is not a piece of tokenizer.model");
    return it->second;
  };

  // Added tokens: the configured unk / bos / eos, then control (special) and user-defined (not special) pieces.
  nlohmann::json added = nlohmann::json::array();
  std::unordered_map<std::string, bool> listed;
  const auto add = [&](const std::string& content, int32_t id, bool special) {
    if (listed.count(content)) return;
    listed[content] = true;
    added.push_back(added_token(content, id, special));
  };
  const std::string unk = named("unk_token", "<unk>"), bos = named("bos_token", "<s>"), eos = named("eos_token", "</s>");
  for (const auto& [token, key] : {std::pair{unk, "unk_token"}, {bos, "bos_token"}, {eos, "eos_token"}}) {
    if (ids.count(token) || root.get(key)) add(token, id_of(token, key), true);
  }
  for (int id = 0; id < size; ++id) {
    if (facts.piece_types[id] == 3) add(pieces[id], id, true);
    if (facts.piece_types[id] == 4) add(pieces[id], id, false);
  }

  nlohmann::json single = nlohmann::json::array(), pair = nlohmann::json::array(),
                 specials = nlohmann::json::object();
  const auto special_piece = [&](const std::string& token, int type_id, const char* key) {
    specials[token] = {{"id", token}, {"ids", {id_of(token, key)}}, {"tokens", {token}}};
    return nlohmann::json{{"SpecialToken", {{"id", token}, {"type_id", type_id}}}};
  };
  const auto sequence = [](const char* name, int type_id) {
    return nlohmann::json{{"Sequence", {{"id", name}, {"type_id", type_id}}}};
  };
  for (int type_id = 0; type_id < 2; ++type_id) {
    if (add_bos) pair.push_back(special_piece(bos, type_id, "bos_token"));
    pair.push_back(sequence(type_id == 0 ? "A" : "B", type_id));
    if (add_eos) pair.push_back(special_piece(eos, type_id, "eos_token"));
    if (type_id == 0) single = pair;
  }

  nlohmann::json decoders = nlohmann::json::array(
      {{{"type", "Replace"}, {"pattern", {{"String", kSpace}}}, {"content", " "}}, {{"type", "ByteFallback"}},
       {{"type", "Fuse"}}});
  if (add_prefix_space) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  return {
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Metaspace"},
        {"replacement", kSpace},
        {"prepend_scheme", !add_prefix_space ? "never" : legacy ? "always" : "first"},
        {"split", false}}},
      {"post_processor", {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair},
                          {"special_tokens", specials}}},
      {"decoder", {{"type", "Sequence"}, {"decoders", decoders}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"fuse_unk", true}, {"byte_fallback", true},
        {"ignore_merges", false}, {"vocab", vocab}, {"merges", generate_merges(pieces, ids)}}},
  };
}

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_dir) {
  const nlohmann::json spec = sentencepiece_to_tokenizer_json(model_dir);
  return std::make_unique<SpmBpeTokenizer>(spec, (fs::path(model_dir) / "tokenizer.model").string());
}

}  // namespace aligntrain::data
