#include "trainer/objectives/command_reward.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <tuple>

#include "common/errors.h"

extern char** environ;

namespace aligntrain::objectives {

namespace {

// 60, 2.5: a timeout as the recipe wrote it.
std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}


using Clock = std::chrono::steady_clock;
constexpr size_t kMaxOutputBytes = size_t{64} << 20;  // a reward program printing more is broken
constexpr size_t kStderrTail = 2000;

std::string quote(const std::string& s, size_t max = 120) {
  std::string out = s.size() > max ? s.substr(0, max) + "..." : s;
  return "'" + out + "'";
}

std::string stderr_tail(const std::string& err) {
  if (err.empty()) return "";
  const std::string tail = err.size() > kStderrTail ? "..." + err.substr(err.size() - kStderrTail) : err;
  return "; its standard error ends with:\n" + tail;
}

// Pipes, closed on exec in this process (the child gets dup2'ed copies) and closed on destruction.
struct Pipe {
  int fd[2] = {-1, -1};
  Pipe() {
    if (pipe2(fd, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  ~Pipe() {
    for (int f : fd)
      if (f >= 0) close(f);
  }
  void close_end(int i) {
    if (fd[i] >= 0) close(fd[i]);
    fd[i] = -1;
  }
};

// SIGPIPE blocked on this thread while we write to a child that may have exited; any pending one is consumed.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SigpipeBlock() {
    const timespec zero{0, 0};
    while (sigtimedwait(&set_, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t set_, old_;
};

}  // namespace

std::vector<double> run_command_reward(const CommandReward& reward, const std::vector<nlohmann::json>& samples) {
  const std::string who = "reward command " + quote(reward.command);
  std::string input;
  for (const auto& s : samples) input += s.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";

  Pipe in, out, err;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.fd[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out.fd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err.fd[1], 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);  // no MPI sockets or other files of ours
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);  // its own process group: a timeout kills its children too
  posix_spawnattr_setpgroup(&attr, 0);
  const char* argv[] = {"sh", "-c", reward.command.c_str(), nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, "/bin/sh", &actions, &attr, const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw DataError(who + ": cannot start /bin/sh: " + std::strerror(rc));
  in.close_end(0);
  out.close_end(1);
  err.close_end(1);
  fcntl(in.fd[1], F_SETFL, O_NONBLOCK);

  SigpipeBlock no_sigpipe;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(reward.timeout_seconds));
  auto kill_child = [&] {
    kill(-pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  };
  std::string stdout_text, stderr_text;
  size_t written = 0;
  if (input.empty()) in.close_end(1);
  char buf[65536];
  while (out.fd[0] >= 0 || err.fd[0] >= 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      kill_child();
      throw DataError(who + ": no answer within " + seconds_text(reward.timeout_seconds) + " s for " +
                      std::to_string(samples.size()) + " sample(s) (killed)" + stderr_tail(stderr_text));
    }
    pollfd fds[3];
    int n = 0;
    const int i_in = in.fd[1] >= 0 ? n : -1;
    if (i_in >= 0) fds[n++] = {in.fd[1], POLLOUT, 0};
    const int i_out = out.fd[0] >= 0 ? n : -1;
    if (i_out >= 0) fds[n++] = {out.fd[0], POLLIN, 0};
    const int i_err = err.fd[0] >= 0 ? n : -1;
    if (i_err >= 0) fds[n++] = {err.fd[0], POLLIN, 0};
    if (poll(fds, static_cast<nfds_t>(n), static_cast<int>(std::min<long long>(left, 1000))) < 0) {
      if (errno == EINTR) continue;
      kill_child();
      throw DataError(who + ": poll: " + std::strerror(errno));
    }
    if (i_in >= 0 && fds[i_in].revents) {
      const ssize_t w = write(in.fd[1], input.data() + written, input.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      // EPIPE: it stopped reading; what it printed decides.
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) in.close_end(1);
    }
    for (const auto& [index, pipe, text] : {std::tuple{i_out, &out, &stdout_text}, std::tuple{i_err, &err, &stderr_text}}) {
      if (index < 0 || !fds[index].revents) continue;
      const ssize_t r = read(pipe->fd[0], buf, sizeof buf);
      if (r > 0) {
        text->append(buf, static_cast<size_t>(r));
        if (text->size() > kMaxOutputBytes) {
          kill_child();
          throw DataError(who + ": printed more than " + std::to_string(kMaxOutputBytes >> 20) + " MiB for " +
                          std::to_string(samples.size()) + " sample(s) (killed)");
        }
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        pipe->close_end(0);
      }
    }
  }
  in.close_end(1);
  // Its output is closed; wait for the exit within what is left of the timeout.
  int status = 0;
  for (;;) {
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) throw DataError(who + ": waitpid: " + std::strerror(errno));
    if (Clock::now() > deadline) {
      kill_child();
      throw DataError(who + ": closed its output but did not exit within " + seconds_text(reward.timeout_seconds) +
                      " s (killed)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFSIGNALED(status)) {
    throw DataError(who + ": killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
                    strsignal(WTERMSIG(status)) + ")" + stderr_tail(stderr_text));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    throw DataError(who + ": exited with status " + std::to_string(WEXITSTATUS(status)) + stderr_tail(stderr_text));
  }

  std::vector<double> scores;
  size_t start = 0;
  int64_t line_no = 0;
  while (start < stdout_text.size()) {
    size_t end = stdout_text.find('\n', start);
    if (end == std::string::npos) end = stdout_text.size();
    std::string line = stdout_text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (static_cast<size_t>(line_no) > samples.size()) {
      throw DataError(who + ": printed more lines than the " + std::to_string(samples.size()) + " sample(s) it was " +
                      "given (line " + std::to_string(line_no) + ": " + quote(line) + ")");
    }
    nlohmann::json value;
    try {
      value = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
    }
    if (!value.is_number() || !std::isfinite(value.get<double>())) {
      throw DataError(who + ": line " + std::to_string(line_no) + " of its output, " + quote(line) +
                      ", is not a finite JSON number (the score of sample " + std::to_string(line_no) + ")");
    }
    scores.push_back(value.get<double>());
  }
  if (scores.size() != samples.size()) {
    throw DataError(who + ": printed " + std::to_string(scores.size()) + " score(s) for " +
                    std::to_string(samples.size()) + " sample(s); expected one JSON number per line" +
                    stderr_tail(stderr_text));
  }
  return scores;
}

}  // namespace aligntrain::objectives
