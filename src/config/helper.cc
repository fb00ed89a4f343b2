#include "config/helper.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "base/strings.h"
#include "base/unique_fd.h"
#include "config/user_files.h"

extern char** environ;

namespace hoist::config {
namespace {

constexpr size_t kMaxOutput = 1 << 20;

using Clock = std::chrono::steady_clock;

// Writes all of `data` to the pipe `fd` without letting a reader that went away raise
// SIGPIPE in this process: SIGPIPE is blocked in this thread for the write, and one raised by
// it is consumed before the old mask comes back. EPIPE is not an error here (the program
// simply did not read its input).
Status WriteToPipe(int fd, std::string_view data) {
  sigset_t pipe_only, old_mask;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old_mask);
  sigset_t pending;
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;

  Status status;
  bool broken = false;
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE) {
        broken = true;
        break;
      }
      status = ErrnoError(errno, "write to credential helper");
      break;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (broken && !was_pending) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  return status;
}

// "30 s", "250 ms".
std::string DurationText(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
  return std::to_string(d.count()) + " ms";
}

// Reaps `pid`, waiting until `deadline` at most; then kills it and reaps it. Returns the exit
// status (128 + signal when killed) and whether the deadline passed.
int ReapChild(pid_t pid, Clock::time_point deadline, bool* timed_out) {
  int wstatus = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &wstatus, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return -1;
    if (Clock::now() >= deadline) {
      *timed_out = true;
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return -1;
}

}  // namespace

Result<std::string> FindInPath(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos) {
    return InvalidArgumentError("program name \"" + name + "\" must not contain '/'");
  }
  std::string path_env = GetEnv("PATH");
  for (std::string_view dir : Split(path_env, ':')) {
    // Empty and relative entries name the current directory or a place under it; a
    // credential lookup never runs a program from there.
    if (dir.empty() || dir.front() != '/') continue;
    std::string candidate = std::string(dir) + "/" + name;
    if (IsRegularFile(candidate) && ::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return NotFoundError(name + ": not found in PATH");
}

Result<ProgramOutput> RunProgram(const std::string& path, const std::vector<std::string>& args,
                                 std::string_view input, std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  int in_fds[2], out_fds[2], err_fds[2];
  if (::pipe2(in_fds, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe");
  UniqueFd in_read(in_fds[0]), in_write(in_fds[1]);
  if (::pipe2(out_fds, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe");
  UniqueFd out_read(out_fds[0]), out_write(out_fds[1]);
  if (::pipe2(err_fds, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe");
  UniqueFd err_read(err_fds[0]), err_write(err_fds[1]);

  std::vector<std::string> argv_strings;
  argv_strings.push_back(path);
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_read.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_write.get(), 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The child starts with no signal blocked and SIGPIPE at its default, whatever this
  // process has set up.
  sigset_t empty, pipe_only;
  sigemptyset(&empty);
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &pipe_only);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, path.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return ErrnoError(rc, "run " + path);
  in_read.reset();
  out_write.reset();
  err_write.reset();

  Status write_status = WriteToPipe(in_write.get(), input);
  in_write.reset();

  ProgramOutput result;
  bool too_much = false;
  bool timed_out = false;
  struct pollfd fds[2] = {{out_read.get(), POLLIN, 0}, {err_read.get(), POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_count = 2;
  while (open_count > 0 && write_status.ok()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    int n = ::poll(fds, 2, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (n < 0) {
      if (errno == EINTR) continue;
      write_status = ErrnoError(errno, "poll");
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      ssize_t r = ::read(fds[i].fd, buf, sizeof(buf));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        fds[i].fd = -1;  // EOF (or an error): this stream is done
        --open_count;
        continue;
      }
      if (sinks[i]->size() + static_cast<size_t>(r) > kMaxOutput) {
        too_much = true;
      } else {
        sinks[i]->append(buf, static_cast<size_t>(r));
      }
    }
    if (too_much) break;
  }
  if (timed_out || too_much || !write_status.ok()) {
    ::kill(pid, SIGKILL);
  }
  result.exit_code = ReapChild(pid, deadline, &timed_out);
  if (timed_out) {
    return UnavailableError("timed out after " + DurationText(timeout));
  }
  if (too_much) return ResourceExhaustedError("more than 1 MiB of output");
  if (!write_status.ok()) return write_status;
  return result;
}

}  // namespace hoist::config
