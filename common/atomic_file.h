// Writing a file durably, in one place: the bytes go to PATH.tmp, which is fsynced, closed and renamed over PATH,
// and then PATH's folder is fsynced. After a crash at any moment PATH holds either its old contents or the whole new
// ones, and once the write returns it survives a power loss. The safetensors writer, checkpoints (state.json,
// config.json, COMPLETE) and the pipeline's DONE markers all write through it.
//
// POSIX calls (fsync needs file descriptors) and no LibTorch, so that anything can depend on it.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace aligntrain {

// A failed create, write, fsync, close or rename. what() is "PATH: PROBLEM" (PROBLEM ends with strerror). It is a
// runtime failure (exit code 1); a caller for whom a failed write means something else rethrows with problem().
class FileWriteError : public std::runtime_error {
 public:
  FileWriteError(std::string path, std::string problem);
  const std::string& path() const noexcept { return path_; }
  const std::string& problem() const noexcept { return problem_; }

 private:
  std::string path_;
  std::string problem_;
};

// A file written to PATH.tmp and moved to PATH by commit(); PATH.tmp is removed if commit() is never reached (an
// exception while writing), so a failed write leaves PATH as it was. Not copyable.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // creates PATH.tmp (replacing a stale one)
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  void write(const void* data, size_t size);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // fsync, close, rename PATH.tmp over PATH, fsync PATH's folder.
  void commit();

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Writes `text` as the whole of file `path`, atomically and durably (an AtomicFile written in one go). Throws
// FileWriteError.
void write_file_atomic(const std::string& path, std::string_view text);

// fsyncs folder `dir`, which makes the entries created, renamed or removed in it durable. A file system that cannot
// fsync a folder (EINVAL) is not an error. Throws FileWriteError.
void sync_folder(const std::string& dir);

}  // namespace aligntrain
