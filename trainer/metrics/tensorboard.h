// TensorBoard event files written without TensorFlow or protobuf: the Event messages of TensorFlow's event.proto and
// summary.proto are encoded by hand (only the fields used here) and framed as TFRecords (tfrecord.h).
//
//   Event        { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
//                  SessionLog session_log = 7; }   (6 is the deprecated LogMessage)
//   SessionLog   { enum status = 1 (START = 1); }
//   Summary      { repeated Value value = 1; }
//   Value        { string tag = 1; float simple_value = 2; TensorProto tensor = 8; SummaryMetadata metadata = 9; }
//   SummaryMetadata { PluginData plugin_data = 1 { string plugin_name = 1; } }
//   TensorProto  { DataType dtype = 1 (DT_STRING = 7); TensorShapeProto tensor_shape = 2; repeated bytes string_val = 8; }
//
// A file starts with the file_version event "brain.Event:2". A SessionLog START at step S makes TensorBoard drop
// the events with step >= S that it read from earlier files of the folder: a resumed run writes one at the first
// step after its checkpoint, so the steps logged after the checkpoint by the interrupted run do not show twice.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace aligntrain::metrics {

using Scalars = std::vector<std::pair<std::string, float>>;

// Serialized Event messages (without the record framing).
std::string file_version_event(double wall_time);
std::string session_start_event(double wall_time, int64_t step);
std::string scalars_event(double wall_time, int64_t step, const Scalars& values);
// A text summary (TensorBoard's text plugin renders `markdown`): a scalar DT_STRING tensor.
std::string text_event(double wall_time, int64_t step, const std::string& tag, const std::string& markdown);

// One new event file in a folder, appended to record by record. Every record is handed to the kernel before the
// call returns (write(2) on an O_APPEND descriptor), so a killed process leaves a readable file.
class EventFileWriter {
 public:
  // Creates `dir` if needed and a new file events.out.tfevents.<T>.<host>.<pid>.0 in it, where T is the Unix time
  // in seconds, raised above the time of every event file already there so that TensorBoard, which reads a
  // folder's files in name order, reads this one last. Writes the file_version event. Throws std::runtime_error.
  explicit EventFileWriter(const std::string& dir);
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;
  ~EventFileWriter();

  void session_start(int64_t step);
  void add_scalars(int64_t step, const Scalars& values);
  void add_text(int64_t step, const std::string& tag, const std::string& markdown);

  const std::string& path() const { return path_; }

 private:
  void write_event(const std::string& event);

  std::string path_;
  int fd_ = -1;
};

}  // namespace aligntrain::metrics
