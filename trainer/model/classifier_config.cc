// See classifier_config.h.
#include "trainer/model/classifier_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/errors.h"
#include "trainer/model/architectures.h"

namespace aligntrain::model {

namespace {

int64_t num_labels_of(const nlohmann::json& j, const std::string& label) {
  // transformers writes id2label (and label2id) and derives num_labels from it; a hand-written config may say
  // num_labels instead.
  if (j.contains("id2label") && j.at("id2label").is_object()) return static_cast<int64_t>(j.at("id2label").size());
  if (j.contains("num_labels")) {
    if (!j.at("num_labels").is_number_integer()) throw DataError(label + ": num_labels: expected an integer");
    return j.at("num_labels").get<int64_t>();
  }
  return 2;
}

}  // namespace

std::string classifier_class_names() {
  std::string out;
  for (const auto& a : architectures()) out += (out.empty() ? "" : ", ") + std::string(a.hf_classifier_class);
  return out;
}

ClassifierConfig load_classifier_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open model config");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw DataError(path + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw DataError(path + ": expected a JSON object");
  ClassifierConfig c;
  const auto& archs = j.contains("architectures") ? j.at("architectures") : nlohmann::json();
  if (!archs.is_array() || archs.empty() || !archs.at(0).is_string()) {
    throw UsageError(path + ": architectures: missing, so this folder is not a sequence classifier (expected one of " +
                     classifier_class_names() + ")");
  }
  c.hf_class = archs.at(0).get<std::string>();
  bool known = false;
  for (const auto& a : architectures()) known = known || c.hf_class == a.hf_classifier_class;
  if (!known) {
    throw UsageError(path + ": architectures: `" + c.hf_class + "` is not a sequence classifier with a score head " +
                     "(supported: " + classifier_class_names() + ")");
  }
  c.decoder = parse_model_config(text.str(), path);
  const std::string want = architecture(c.decoder.arch).hf_classifier_class;
  if (c.hf_class != want) {
    throw DataError(path + ": architectures: `" + c.hf_class + "` does not match model_type `" +
                    c.decoder.model_type() + "` (expected " + want + ")");
  }
  c.num_labels = num_labels_of(j, path);
  return c;
}

ClassifierConfig load_reward_model_config(const std::string& dir) {
  ClassifierConfig c = load_classifier_config(dir);
  if (c.num_labels != 1) {
    throw UsageError(dir + "/config.json: num_labels: a reward model scores each sample with one label (TRL takes " +
                     "logits[:, 0]), but this " + c.hf_class + " has " + std::to_string(c.num_labels) +
                     " (id2label / num_labels)");
  }
  return c;
}

}  // namespace aligntrain::model
