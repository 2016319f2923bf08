// libFuzzer target for the safetensors parser (trainer/model/safetensors.h). Each input is tried two ways:
//   1. as the JSON text of a header (parse_header_json);
//   2. as a whole file image (parse_header): when accepted, every tensor's bytes are touched (ASan checks the bounds
//      the parser promised) and the header is re-encoded with encode_header; the re-encoded file must parse back to
//      the same tensors, bytes and metadata.
// The only exception allowed out of the parser is SafetensorsError; anything else escapes and is reported as a crash.
//
// Build and run (from the repository root):
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined fuzz/safetensors_fuzz.cc \
//       trainer/model/safetensors.cc -I. -o /tmp/st_fuzz
//   /tmp/st_fuzz -max_total_time=60 fuzz/corpus-safetensors/
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "trainer/model/safetensors.h"

namespace {

using aligntrain::model::EncodedHeader;
using aligntrain::model::Header;
using aligntrain::model::SafetensorsError;
using aligntrain::model::TensorInfo;
using aligntrain::model::TensorView;

void require(bool condition) {
  if (!condition) __builtin_trap();
}

// Reads the first and last byte of every tensor, so that ASan flags any range the parser let past the buffer.
unsigned touch_tensor_bytes(const uint8_t* data, size_t size, const Header& header) {
  unsigned sum = 0;
  for (const TensorInfo& t : header.tensors) {
    require(header.data_offset + t.end <= size);
    if (t.nbytes() > 0) sum += data[header.data_offset + t.begin] + data[header.data_offset + t.end - 1];
  }
  return sum;
}

// encode_header + the tensors' bytes, parsed again, describe the same file.
void check_round_trip(const uint8_t* data, const Header& header) {
  std::vector<TensorView> views;
  for (const TensorInfo& t : header.tensors) {
    if (t.name.empty()) return;  // the reader accepts an empty name (as the Python library does); the writer refuses
    views.push_back({t.name, t.dtype, t.shape, data + header.data_offset + t.begin});
  }
  const EncodedHeader encoded = aligntrain::model::encode_header(views, header.metadata, "fuzz-reencoded");
  std::string image = encoded.bytes;
  for (size_t i : encoded.order) image.append(static_cast<const char*>(views[i].data), header.tensors[i].nbytes());

  const auto* bytes = reinterpret_cast<const uint8_t*>(image.data());
  const Header again = aligntrain::model::parse_header(bytes, image.size(), "fuzz-reencoded");
  require(again.metadata == header.metadata);
  require(again.tensors.size() == header.tensors.size());
  for (const TensorInfo& t : header.tensors) {
    const TensorInfo* match = nullptr;
    for (const TensorInfo& u : again.tensors) {
      if (u.name == t.name) match = &u;
    }
    require(match != nullptr && match->dtype == t.dtype && match->shape == t.shape && match->nbytes() == t.nbytes());
    require(std::equal(data + header.data_offset + t.begin, data + header.data_offset + t.end,
                       bytes + again.data_offset + match->begin));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    aligntrain::model::parse_header_json(reinterpret_cast<const char*>(data), size, "fuzz-json");
  } catch (const SafetensorsError&) {
  }

  Header header;
  try {
    header = aligntrain::model::parse_header(data, size, "fuzz-file");
  } catch (const SafetensorsError&) {
    return 0;
  }
  volatile unsigned sink = touch_tensor_bytes(data, size, header);
  (void)sink;
  check_round_trip(data, header);
  return 0;
}
