// Progress of a pull, reported per blob as its state changes.
#pragma once

#include <cstdint>
#include <functional>

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
};

struct ProgressEvent {
  Descriptor descriptor;  // the layer (or config) concerned
  ProgressState state = ProgressState::kWaiting;
  int64_t current = 0;  // bytes so far (kDownloading)
  int64_t total = 0;    // expected bytes
};

// Called from worker threads, one call at a time (the client serializes them). Must not
// block for long and must not call back into the Client.
using ProgressCallback = std::function<void(const ProgressEvent&)>;

}  // namespace hoist
