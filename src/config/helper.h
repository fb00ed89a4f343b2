// Running a docker credential helper ("docker-credential-<name>"): a program found in $PATH,
// started directly (no shell), fed on stdin, its output collected, killed when it overruns
// its time.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "hoist/status.h"

namespace hoist::config {

struct ProgramOutput {
  int exit_code = 0;  // the exit status; 128 + signal number when killed by a signal
  std::string out;    // stdout
  std::string err;    // stderr
};

// The full path of the first executable regular file named `name` in the absolute
// directories of $PATH (empty and relative entries are skipped). NotFound when there is none; InvalidArgument when `name` contains a '/'.
Result<std::string> FindInPath(const std::string& name);

// Runs `path` with arguments `args` (argv[0] is `path`), writes `input` to its stdin and
// closes it, and collects stdout and stderr (each capped at 1 MiB; more is an error). The
// environment is inherited. The child is killed (SIGKILL) and reaped when it has not exited
// within `timeout`; that is Unavailable "timed out". Only a failure to run the program (or a
// timeout) is an error; a non-zero exit is reported in the output. Thread-safe.
Result<ProgramOutput> RunProgram(const std::string& path, const std::vector<std::string>& args,
                                 std::string_view input, std::chrono::milliseconds timeout);

}  // namespace hoist::config
