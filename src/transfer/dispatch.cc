#include "transfer/dispatch.h"

#include <algorithm>
#include <mutex>
#include <thread>
#include <vector>

namespace hoist::transfer {

Status ForEachParallel(size_t count, int jobs, std::atomic<bool>* cancel,
                       const std::atomic<bool>* outside,
                       const std::function<Status(size_t, registry::HttpClient&)>& fn,
                       const registry::TransferLimits& limits) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status first_error;

  auto worker = [&] {
    registry::HttpClient http(cancel, outside, limits);
    while (!cancel->load() && (outside == nullptr || !outside->load())) {
      size_t i = next.fetch_add(1);
      if (i >= count) return;
      Status s = fn(i, http);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        // A cancellation caused by the first error is not itself the error to report.
        if (first_error.ok() ||
            (first_error.code() == StatusCode::kCancelled && s.code() != StatusCode::kCancelled)) {
          first_error = s;
        }
        cancel->store(true);
        return;
      }
    }
  };

  size_t n = std::min<size_t>(count, static_cast<size_t>(std::max(1, jobs)));
  std::vector<std::thread> threads;
  for (size_t t = 1; t < n; ++t) threads.emplace_back(worker);
  if (n > 0) worker();
  for (auto& t : threads) t.join();
  if (!first_error.ok()) return first_error;
  if (outside != nullptr && outside->load()) return CancelledError("cancelled");
  if (cancel->load() && next.load() < count) return CancelledError("cancelled");
  return OkStatus();
}

}  // namespace hoist::transfer
