// How `hoist pull` shows its progress (--progress): live bars on a terminal, one line per
// state change in a log, or one JSON object per event for programs. The JSON form is documented
// in the README ("Progress as JSON"); its field names are stable.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "hoist/image.h"
#include "hoist/progress.h"
#include "hoist/reference.h"
#include "hoist/status.h"

namespace hoist::cli {

// Docker's decimal sizes: "7.8MB".
std::string HumanSize(int64_t bytes);

enum class ProgressMode {
  kTty,    // one line per layer redrawn in place, a summary line (ANSI cursor movement)
  kPlain,  // one line per state change, with sizes; no carriage return or escape sequence
  kJson,   // one JSON object per line
};

// The mode --progress names: "tty", "plain", "json", or "auto" (tty when `fd` is a terminal,
// else plain).
ProgressMode ProgressModeFor(const std::string& flag, int fd);

// Renders one pull on `out` (stdout). Event comes from libhoist's workers (one call at a time),
// Notice from any thread: every method is thread-safe. Text from outside (references, retry
// reasons, error messages) is made terminal-safe.
class ProgressView {
 public:
  static std::unique_ptr<ProgressView> Create(ProgressMode mode, FILE* out);
  virtual ~ProgressView() = default;

  // The pull starts: "TAG: Pulling from PATH".
  virtual void Start(const Reference& ref) = 0;
  virtual void Event(const ProgressEvent& e) = 0;
  // A line for stderr ("hoist: " is prefixed) that must not tear the live frame.
  virtual void Notice(const std::string& line) = 0;
  // The pull succeeded: the final frame stays, then the digest and status (or the result).
  virtual void Done(const Reference& ref, const Image& image) = 0;
  // The pull failed (or was interrupted): the final frame stays and the cursor is at the start
  // of a fresh line, for the caller's stderr line. JSON adds an error event.
  virtual void Failed(const Status& s) = 0;
};

}  // namespace hoist::cli
