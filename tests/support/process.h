// Processes and scratch directories for the integration-test harness: a temp directory removed
// with its owner, a child process killed and reaped with its owner, and a bounded one-shot
// command runner. Test-only code.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "hoist/status.h"

namespace hoist::testing {

// A fresh directory under $TMPDIR (or /tmp), removed recursively on destruction. Move-only.
class TempDir {
 public:
  // `prefix` becomes the start of the directory's name.
  static Result<TempDir> Create(const std::string& prefix = "hoist-test-");
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  void Remove();
  std::string path_;  // empty once moved from
};

// A running child whose stdout and stderr go to one file. The destructor (and Stop) sends
// SIGTERM, waits up to `grace_s` seconds, then SIGKILLs, and always reaps. Move-only.
class ChildProcess {
 public:
  // Starts argv[0] (searched in PATH) with stdin from /dev/null and stdout+stderr appended to
  // `output_path`. The child gets SIGKILL when the thread that spawned it exits (so a crashed
  // test leaves no registry behind): spawn from a thread that outlives the child, such as the
  // test's main thread.
  static Result<ChildProcess> Spawn(const std::vector<std::string>& argv,
                                    const std::string& output_path);
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { Stop(); }

  pid_t pid() const { return pid_; }
  // True while the child has not exited. Reaps it if it has; never blocks.
  bool Running();
  // Terminates and reaps the child (no-op when already gone). Bounded by grace_s + a moment.
  void Stop(int grace_s = 5);

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;  // -1 once reaped or moved from
};

// True if `name` is an executable file: an absolute path, or found in PATH.
bool FindExecutable(const std::string& name, std::string* path = nullptr);

// Runs argv (argv[0] searched in PATH) with stdin from /dev/null, capturing stdout and stderr
// together (at most 16 MiB). Returns the output when the command exits 0. Otherwise an error
// whose message holds the exit status (or signal) and the output; a command still running
// after `timeout_s` seconds is killed and reported as Unavailable.
Result<std::string> RunCommand(std::vector<std::string> argv, int timeout_s);

struct CliRun {
  int exit_code = -1;  // -1 when killed by a signal (e.g. the 120 s timeout)
  std::string out, err;
};

// Runs `binary` with `args` (through the shell, each argument quoted; the environment is this
// process's), `input` on stdin, at most 120 s; stdout and stderr captured separately through
// files under `dir`.
CliRun RunCli(const std::string& binary, const std::vector<std::string>& args,
              const std::string& dir, const std::string& input = "");

// A 127.0.0.1 TCP port that was free a moment ago (bound to port 0, read back, closed).
Result<int> PickFreePort();

// Writes `data` to `path` (replacing it), creating its parent directories.
Status WriteFile(const std::string& path, std::string_view data);

// Polls `done` every 50 ms for up to `seconds`; its last answer.
template <typename F>
bool WaitFor(F done, int seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

}  // namespace hoist::testing
