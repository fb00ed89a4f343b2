// Progress of a pull, reported per blob as its state changes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "hoist/descriptor.h"

namespace hoist {

// A layer goes Waiting → Downloading → Verifying → DownloadComplete → PullComplete, or
// Waiting → Extracting → PullComplete (its blob was stored, not extracted), or is
// AlreadyExists from the start; Retrying may come between Downloading events.
enum class ProgressState {
  kWaiting,           // "Pulling fs layer": known, not started
  kDownloading,       // bytes are arriving (current/total updated as they flow)
  kVerifying,         // all bytes in, checking size and digest
  kDownloadComplete,  // verified and committed to the store
  kAlreadyExists,     // already in the store (and extracted): nothing to do
  kExtracting,        // extracting a stored blob that was not extracted yet (current/total
                      // updated as it is read)
  kPullComplete,      // the layer is extracted and committed in the store
  kRetrying,          // a transfer failed and is tried again; `message` says when and why
  // Another pull (in this or another process) downloads or extracts this blob now: this one
  // waits for it, then uses its result, or resumes from its partial data if it died.
  kWaitingForOther,
};

struct ProgressEvent {
  Descriptor descriptor;  // the layer (or config) concerned
  ProgressState state = ProgressState::kWaiting;
  // Bytes of the blob so far, of `total`:
  //  - kDownloading: received (a layer is inflated and extracted as it arrives, so this is
  //    also how far its extraction got); kVerifying: all received;
  //  - kExtracting: read from the stored blob into the extractor (compressed bytes);
  //  - kDownloadComplete, kPullComplete: `total`; otherwise 0.
  // kDownloading and kExtracting repeat as the bytes flow, per blob at most every 50 ms or
  // 1 MiB, whichever comes first (a shown count lags by less than 1 MiB). The
  // count goes back to 0 when a source restarts the blob from zero.
  int64_t current = 0;
  int64_t total = 0;  // expected bytes: the blob's size (descriptor.size)
  // kRetrying: one line, e.g. "Retrying in 2s (connection reset after 41.2 MB)"; the download
  // then continues from `current` bytes (or from zero, when the server cannot resume).
  std::string message;
};

// Called from worker threads, one call at a time (the client serializes them). Must not
// block for long and must not call back into the Client.
using ProgressCallback = std::function<void(const ProgressEvent&)>;

}  // namespace hoist
