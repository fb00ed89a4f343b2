// Progress reporting shared by the stages of a pull: one serialized callback, and byte counts
// rate-limited so that a fast pull is not slowed by its own progress.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "hoist/progress.h"

namespace hoist::pull {

// Serializes progress callbacks coming from several workers.
class Progress {
 public:
  explicit Progress(const ProgressCallback& cb) : cb_(cb) {}
  bool enabled() const { return static_cast<bool>(cb_); }
  void Report(const Descriptor& d, ProgressState state, int64_t current = 0,
              std::string message = "") {
    if (!cb_) return;
    std::lock_guard<std::mutex> lock(mu_);
    cb_(ProgressEvent{d, state, current, d.size, std::move(message)});
  }

 private:
  const ProgressCallback& cb_;
  std::mutex mu_;
};

// One blob's byte count, passed on to the Progress as data flows (download or extraction) but
// at most once every kInterval unless kStep bytes came since the last report, so that a fast
// pull is not slowed by its own progress (Update costs a clock read when it reports nothing),
// and a count shown during a stall lags by less than kStep. Used by one thread at a time (one
// per blob and stage); the reports go through Progress, which serializes them.
class ByteProgress {
 public:
  static constexpr std::chrono::milliseconds kInterval{50};
  static constexpr int64_t kStep = 1 << 20;
  ByteProgress(Progress& progress, const Descriptor& d, ProgressState state)
      : progress_(progress), d_(d), state_(state), last_(std::chrono::steady_clock::now()) {}
  // `current` bytes so far: reported when the count moved and kInterval has passed or kStep
  // bytes came since the last report; always when `force` (the final count).
  void Update(int64_t current, bool force = false) {
    if (current == reported_ || !progress_.enabled()) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < kInterval && current - reported_ < kStep) return;
    last_ = now;
    reported_ = current;
    progress_.Report(d_, state_, current);
  }

 private:
  Progress& progress_;
  const Descriptor& d_;
  const ProgressState state_;
  std::chrono::steady_clock::time_point last_;
  int64_t reported_ = 0;
};

}  // namespace hoist::pull
