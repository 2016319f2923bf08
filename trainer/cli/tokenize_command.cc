// `aligntrain tokenize`: what a training stage sees of each example -- the rendered text, the token ids and the 0/1
// loss mask -- through the stages' own encoder (data::Encoder::encode_example, as load_sft_data and
// encode_responses call it), truncation included. One JSON line per example, in input order:
//   {"index": 0, "text": ..., "input_ids": [...], "loss_mask": [...]}            sft / unpaired (the completion)
//   {"index": 0, "chosen": {"text", "input_ids", "loss_mask"}, "rejected": {...}} pairs
//   {"index": 0, "dropped": "..."}                                               an example the stage would drop
// loss_mask marks the tokens whose prediction carries loss (TRL's assistant_masks / completion_mask); the trainer
// also never takes loss on a sequence's first token, which nothing predicts. Needs only the tokenizer and the chat
// template of --model (no weights, no MPI collectives; rank 0 does the work).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/hf_cache.h"
#include "data/collate.h"
#include "data/encode.h"
#include "data/example.h"
#include "data/tokenizer.h"
#include "trainer/cli/commands.h"

namespace aligntrain::cli {

namespace {

data::Truncate truncate_named(const std::string& name) {
  if (name == "left") return data::Truncate::kLeft;
  if (name == "drop") return data::Truncate::kDrop;
  return data::Truncate::kRight;
}

// --model: a folder, or an `org/name` in the Hugging Face cache.
std::string model_folder(const std::string& model) {
  std::error_code ec;
  if (std::filesystem::is_directory(model, ec) || !looks_like_repo_id(model)) return model;
  const auto found = find_in_hf_cache(model, "");
  if (!found.snapshot) throw UsageError("--model: " + hf_cache_miss_message(model, "", found));
  return *found.snapshot;
}

void append_ids(std::string& out, const std::vector<int32_t>& ids) {
  out += '[';
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  out += ']';
}

void append_mask(std::string& out, const std::vector<uint8_t>& mask) {
  out += '[';
  for (size_t i = 0; i < mask.size(); ++i) {
    if (i) out += ',';
    out += mask[i] ? '1' : '0';
  }
  out += ']';
}

// "text": ..., "input_ids": [...], "loss_mask": [...] (without braces).
void append_encoded(std::string& out, const data::Encoded& e) {
  out += "\"text\":";
  out += nlohmann::json(e.text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out += ",\"input_ids\":";
  append_ids(out, e.ids);
  out += ",\"loss_mask\":";
  append_mask(out, data::loss_mask_of(e));
}

}  // namespace

int tokenize(const runtime::World& world, const TokenizeArgs& args) {
  if (!world.is_root()) return kExitOk;
  if (args.max_length < 0) throw UsageError("--max-length: must be >= 0");
  data::DataKind kind = data::DataKind::kAuto;
  const auto examples = data::read_examples(args.data, {}, nullptr, &kind);
  const std::string dir = model_folder(args.model);
  const auto tokenizer = data::load_tokenizer(dir);
  data::EncodeOptions eo;
  eo.max_length = args.max_length;
  eo.truncate = truncate_named(args.truncate);
  eo.assistant_only_loss = args.assistant_only_loss && kind == data::DataKind::kSft;  // as the sft stage
  eo.chat_template_kwargs = args.chat_template_kwargs;
  eo.keep_text = true;
  const data::Encoder encoder(*tokenizer, args.chat_template, dir, eo);

  std::ofstream file;
  if (!args.out.empty()) {
    file.open(args.out, std::ios::binary);
    if (!file) throw UsageError(args.out + ": cannot write");
  }
  std::ostream& out = args.out.empty() ? std::cout : file;
  std::string line;
  for (const auto& ex : examples) {
    line.clear();
    line += "{\"index\":" + std::to_string(ex.index);
    const bool pair = ex.chosen && ex.rejected;
    const data::Text* single = ex.completion ? &*ex.completion : ex.rejected ? &*ex.rejected : nullptr;
    if (pair || single) {
      std::vector<std::pair<const char*, const data::Text*>> parts;
      if (pair) parts = {{"chosen", &*ex.chosen}, {"rejected", &*ex.rejected}};
      else parts = {{"", single}};
      std::vector<std::optional<data::Encoded>> encoded;
      bool dropped = false;
      for (const auto& [field, text] : parts) {
        encoded.push_back(encoder.encode_example(ex, *text, args.data));
        dropped = dropped || !encoded.back() || data::loss_tokens(*encoded.back(), false) <= 0;
      }
      if (dropped) {
        line += ",\"dropped\":\"longer than --max-length with --truncate " + args.truncate +
                ", or no loss token left\"";
      } else {
        for (size_t i = 0; i < parts.size(); ++i) {
          if (*parts[i].first) line += std::string(",\"") + parts[i].first + "\":{";
          else line += ',';
          append_encoded(line, *encoded[i]);
          if (*parts[i].first) line += '}';
        }
      }
    } else {  // prompts: what generation starts from
      data::Encoded e;
      e.ids = encoder.encode_prompt(ex.prompt, ex.template_vars);
      e.prompt_len = static_cast<int64_t>(e.ids.size());
      line += ",\"input_ids\":";
      append_ids(line, e.ids);
      line += ",\"loss_mask\":";
      append_mask(line, data::loss_mask_of(e));
    }
    line += "}\n";
    out.write(line.data(), static_cast<std::streamsize>(line.size()));
  }
  out.flush();
  if (!out) throw std::runtime_error((args.out.empty() ? std::string("stdout") : args.out) + ": write failed");
  return kExitOk;
}

}  // namespace aligntrain::cli
