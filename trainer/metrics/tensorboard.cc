#include "trainer/metrics/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "trainer/metrics/tfrecord.h"

namespace aligntrain::metrics {

namespace fs = std::filesystem;

namespace {

// Protobuf wire format: a key is (field << 3 | wire type); 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void key(std::string& out, int field, int wire_type) { varint(out, (static_cast<uint64_t>(field) << 3) | wire_type); }

void fixed(std::string& out, uint64_t bits, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
}

void field_varint(std::string& out, int field, uint64_t v) {
  key(out, field, 0);
  varint(out, v);
}

void field_double(std::string& out, int field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  key(out, field, 1);
  fixed(out, bits, 8);
}

void field_float(std::string& out, int field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  key(out, field, 5);
  fixed(out, bits, 4);
}

void field_bytes(std::string& out, int field, const std::string& bytes) {
  key(out, field, 2);
  varint(out, bytes.size());
  out += bytes;
}

std::string event_head(double wall_time, int64_t step) {
  std::string e;
  field_double(e, 1, wall_time);
  field_varint(e, 2, static_cast<uint64_t>(step));  // int64: two's complement as a varint
  return e;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The Unix time in the name of an event file ("events.out.tfevents.<T>...."), or -1.
long long name_time(const std::string& name) {
  static const std::string prefix = "events.out.tfevents.";
  if (name.compare(0, prefix.size(), prefix) != 0) return -1;
  size_t i = prefix.size();
  long long t = 0;
  bool digits = false;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i) {
    t = t * 10 + (name[i] - '0');
    digits = true;
  }
  return digits ? t : -1;
}

}  // namespace

std::string file_version_event(double wall_time) {
  std::string e = event_head(wall_time, 0);
  field_bytes(e, 3, "brain.Event:2");
  return e;
}

std::string session_start_event(double wall_time, int64_t step) {
  std::string log;
  field_varint(log, 1, 1);  // status: START
  std::string e = event_head(wall_time, step);
  field_bytes(e, 7, log);
  return e;
}

std::string scalars_event(double wall_time, int64_t step, const Scalars& values) {
  std::string summary;
  for (const auto& [tag, v] : values) {
    std::string value;
    field_bytes(value, 1, tag);
    field_float(value, 2, v);
    field_bytes(summary, 1, value);
  }
  std::string e = event_head(wall_time, step);
  field_bytes(e, 5, summary);
  return e;
}

std::string text_event(double wall_time, int64_t step, const std::string& tag, const std::string& markdown) {
  std::string plugin_data, metadata, tensor, value, summary;
  field_bytes(plugin_data, 1, "text");
  field_bytes(metadata, 1, plugin_data);
  field_varint(tensor, 1, 7);       // dtype: DT_STRING
  field_bytes(tensor, 2, "");       // tensor_shape: a scalar
  field_bytes(tensor, 8, markdown);  // string_val
  field_bytes(value, 1, tag);
  field_bytes(value, 8, tensor);
  field_bytes(value, 9, metadata);
  field_bytes(summary, 1, value);
  std::string e = event_head(wall_time, step);
  field_bytes(e, 5, summary);
  return e;
}

EventFileWriter::EventFileWriter(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create TensorBoard folder " + dir + ": " + ec.message());
  long long t = static_cast<long long>(now_seconds());
  for (const auto& entry : fs::directory_iterator(dir)) t = std::max(t, name_time(entry.path().filename().string()) + 1);
  char host[256] = "localhost";
  if (gethostname(host, sizeof host) != 0) std::strcpy(host, "localhost");
  host[sizeof host - 1] = '\0';
  path_ = (fs::path(dir) / ("events.out.tfevents." + std::to_string(t) + "." + host + "." + std::to_string(getpid()) +
                            ".0"))
              .string();
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("cannot create " + path_ + ": " + std::strerror(errno));
  write_event(file_version_event(now_seconds()));
}

EventFileWriter::~EventFileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void EventFileWriter::session_start(int64_t step) { write_event(session_start_event(now_seconds(), step)); }

void EventFileWriter::add_scalars(int64_t step, const Scalars& values) {
  write_event(scalars_event(now_seconds(), step, values));
}

void EventFileWriter::add_text(int64_t step, const std::string& tag, const std::string& markdown) {
  write_event(text_event(now_seconds(), step, tag, markdown));
}

void EventFileWriter::write_event(const std::string& event) {
  const std::string record = tfrecord(event);
  size_t done = 0;
  while (done < record.size()) {
    const ssize_t n = ::write(fd_, record.data() + done, record.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("cannot write " + path_ + ": " + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
}

}  // namespace aligntrain::metrics
