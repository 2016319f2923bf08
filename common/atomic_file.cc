// See atomic_file.h.
#include "common/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace aligntrain {
namespace {

// The folder part of `path`: "a/b" -> "a", "b" -> ".", "/b" -> "/".
std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Throws FileWriteError for `path` with errno's text; call right after the failing call.
[[noreturn]] void fail_errno(const std::string& path, const std::string& what) {
  throw FileWriteError(path, what + ": " + std::strerror(errno));
}

// fsyncs folder `dir`; errors name `path` (the file whose entry in `dir` is being made durable, or `dir` itself).
void sync_folder_of(const std::string& path, const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail_errno(path, "cannot open folder " + dir + " to fsync it");
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0 && errno != EINVAL) fail_errno(path, "cannot fsync folder " + dir);
}

}  // namespace

FileWriteError::FileWriteError(std::string path, std::string problem)
    : std::runtime_error(path + ": " + problem), path_(std::move(path)), problem_(std::move(problem)) {}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_errno(path_, "cannot create " + tmp_);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const size_t chunk = std::min<size_t>(size, size_t{1} << 30);
    const ssize_t n = ::write(fd_, p, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail_errno(path_, "cannot write " + tmp_);
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) fail_errno(path_, "cannot fsync " + tmp_);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail_errno(path_, "cannot close " + tmp_);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail_errno(path_, "cannot rename " + tmp_ + " to it");
  committed_ = true;
  sync_folder_of(path_, parent_dir(path_));
}

void write_file_atomic(const std::string& path, std::string_view text) {
  AtomicFile out(path);
  out.write(text);
  out.commit();
}

void sync_folder(const std::string& dir) { sync_folder_of(dir, dir); }

}  // namespace aligntrain
