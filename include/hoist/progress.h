// Progress of a pull, reported per blob as its state changes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "hoist/descriptor.h"

namespace hoist {

enum class ProgressState {
  kWaiting,           // "Pulling fs layer": known, not started
  kDownloading,       // bytes are arriving (current/total updated)
  kVerifying,         // all bytes in, checking size and digest
  kDownloadComplete,  // verified and committed to the store
  kAlreadyExists,     // already in the store (and extracted): nothing to do
  kExtracting,        // extracting a stored blob that was not extracted yet
  kPullComplete,      // the layer is extracted and committed in the store
  kRetrying,          // a transfer failed and is tried again; `message` says when and why
  // Another pull (in this or another process) downloads or extracts this blob now: this one
  // waits for it, then uses its result, or resumes from its partial data if it died.
  kWaitingForOther,
};

struct ProgressEvent {
  Descriptor descriptor;  // the layer (or config) concerned
  ProgressState state = ProgressState::kWaiting;
  int64_t current = 0;  // bytes so far (kDownloading)
  int64_t total = 0;    // expected bytes
  // kRetrying: one line, e.g. "Retrying in 2s (connection reset after 41.2 MB)"; the download
  // then continues from `current` bytes (or from zero, when the server cannot resume).
  std::string message;
};

// Called from worker threads, one call at a time (the client serializes them). Must not
// block for long and must not call back into the Client.
using ProgressCallback = std::function<void(const ProgressEvent&)>;

}  // namespace hoist
