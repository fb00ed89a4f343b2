// Bounded parallel dispatch: the graph walk's worker pool.
#pragma once

#include <atomic>
#include <functional>

#include "hoist/status.h"
#include "registry/http.h"

namespace hoist::transfer {

// Calls fn(i, http) for every i in [0, count) on at most `jobs` worker threads. Each worker
// owns one HttpClient (connections are reused across that worker's items) that observes
// *cancel and *outside and applies `limits`. The first failure sets *cancel, no new item starts,
// and that failure is returned once every worker has stopped. If *outside (the caller's flag, may
// be null) is set, the result is Cancelled.
Status ForEachParallel(size_t count, int jobs, std::atomic<bool>* cancel,
                       const std::atomic<bool>* outside,
                       const std::function<Status(size_t, registry::HttpClient&)>& fn,
                       const registry::TransferLimits& limits = {});

}  // namespace hoist::transfer
