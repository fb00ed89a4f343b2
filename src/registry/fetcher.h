// The fetch stage: one home for retries, backoff and Range resume. Every request of a pull
// (manifests, HEADs, token requests made on their behalf, blobs from a registry, a mirror or a
// foreign URL) goes through a Fetcher.
//
// What is retried: Unavailable from the remote side only, i.e. connection errors, resets,
// timeouts, stalls (TransferLimits), short bodies, and the HTTP statuses 408, 429 and 5xx
// (StatusFromResponse). Never: any other status (400, 403, 404, a 401 after the auth flow has
// run, a digest or size mismatch), transport failures that would come again
// (HttpClient::last_error_permanent: a refused certificate, a name that does not resolve), and
// never an error of the caller's own sink (a local write), whatever its code.
//
// Backoff: base_delay doubled for each retry, capped at max_delay, with jitter (a random value in
// [delay/2, delay]); a Retry-After header (seconds or HTTP-date) of the failed answer replaces
// it, capped at max_delay too. Attempts stop after max_attempts, or when the next one would
// start more than max_time after the first. Waits end early when the pull is cancelled.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hoist/descriptor.h"
#include "hoist/status.h"
#include "registry/http.h"
#include "registry/registry.h"

namespace hoist::registry {

struct RetryPolicy {
  int max_attempts = 6;  // tries in all, the first included; 1: never retried
  std::chrono::milliseconds max_time{std::chrono::minutes(10)};
  std::chrono::milliseconds base_delay{std::chrono::seconds(1)};
  std::chrono::milliseconds max_delay{std::chrono::seconds(60)};
};

// True for an error worth another attempt (see above): Unavailable.
bool IsRetryable(const Status& s);

// A Retry-After value: delay-seconds ("120") or an HTTP-date, relative to `now` (a date in the
// past is 0). nullopt when empty or not understood.
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now);

// The wait before retry number `retry` (1 for the second attempt): Retry-After when given,
// else the jittered exponential backoff; both capped at policy.max_delay. `random` picks the
// jitter (any value).
std::chrono::milliseconds RetryDelay(const RetryPolicy& policy, int retry,
                                     std::optional<std::chrono::milliseconds> retry_after,
                                     uint64_t random);

// Where the body of an answer to a GET from `offset` (Range: bytes=offset- when > 0) starts in
// a blob of `size` bytes (size < 0: unknown): 0 for a 200, whatever was asked (the server sent
// the whole blob); `offset` for a 206 whose Content-Range is exactly
// "bytes offset-(size-1)/size" (or ".../*" when size is unknown). Anything else (a 206 for
// other bytes, a malformed Content-Range, another status) is Unavailable.
Result<int64_t> BodyOffset(const HttpResponse& head, int64_t offset, int64_t size);

// Receives one blob's bytes from a fetch that may be interrupted and resumed. The fetcher calls
// `restart` when the source starts again from byte 0 (a server that ignored Range, or a bad
// Content-Range): everything written so far is to be forgotten, hashing included. Otherwise
// every `write` continues where the previous one ended, across attempts. An error from either
// is local: it ends the fetch at once, without a retry. `held`: the bytes the sink holds
// already when the fetch starts (data kept from an earlier fetch): the first request asks for
// the rest.
struct BlobSink {
  std::function<Status()> restart;
  std::function<Status(const char*, size_t)> write;
  int64_t held = 0;
};

// One source of a blob: a GET from `offset` (a Range request when > 0) whose answer head goes
// to `start` before the first body byte and whose body goes to `sink`.
using BlobSource = std::function<Status(HttpClient& http, int64_t offset, const BodyStart& start,
                                        const BodySink& sink)>;

// One line per retry, e.g. "Retrying in 2s (connection reset after 41.2 MB)".
using RetryNotice = std::function<void(const std::string&)>;

// Thread-safe: one Fetcher serves every worker of a pull (each with its own HttpClient).
class Fetcher {
 public:
  // The flags (either may be null) end waits between attempts with Cancelled; they are the
  // same ones the HttpClients observe.
  Fetcher(RetryPolicy policy, const std::atomic<bool>* cancel,
          const std::atomic<bool>* also_cancel);

  // Calls `op` (requests through `http`) until it succeeds or fails for good. The last error
  // is returned, with "(gave up after N attempts)" when it was retryable.
  Status Call(HttpClient& http, const RetryNotice& notice, const std::function<Status()>& op);
  template <typename T>
  Result<T> Call(HttpClient& http, const RetryNotice& notice,
                 const std::function<Result<T>()>& op) {
    std::optional<Result<T>> last;
    Status s = Call(http, notice, [&]() -> Status {
      last.emplace(op());
      return last->ok() ? OkStatus() : last->status();
    });
    if (!s.ok()) return s;
    return std::move(*last);
  }

  // As Call, but `op` may set *final before it returns an error to end the retries with it
  // (an error another attempt cannot mend, or one already retried further down).
  Status CallUnlessFinal(HttpClient& http, const RetryNotice& notice,
                         const std::function<Status(bool* final)>& op);

  // Streams a blob of `size` bytes (-1: unknown) from `source` into `sink`. After a failure
  // that is retried, the next attempt asks for the bytes the sink does not have yet (Range);
  // a 200 answer then makes the sink restart. When the sink already holds all `size` bytes,
  // no further request is made. The caller verifies what the sink got.
  Status FetchBlob(HttpClient& http, const BlobSource& source, int64_t size, const BlobSink& sink,
                   const RetryNotice& notice);

  // Streams one source's bytes of a blob into a sink, through FetchBlob.
  using SourceFetch = std::function<Status(const BlobSink&)>;
  // Gets blob `d` from each of its sources in turn until one succeeds: `urls` (a foreign
  // layer's, when the caller allows them; each hop checked by CheckForeignUrl, where the
  // registry's own addresses are allowed), then `repo`. Each source is one call of `attempt`,
  // which must start from nothing (the source before may have sent other bytes), call the
  // SourceFetch with its sink and verify what came. The registry's result is returned; when it
  // failed too, with what went wrong at the URLs as context.
  Status FetchFromSources(Repository& repo, HttpClient& http, const Descriptor& d,
                          const std::vector<std::string>& urls, const RetryNotice& notice,
                          const std::function<Status(const SourceFetch&)>& attempt);

  // True once an operation gave up on an error of the registry or the network (not a local
  // one, not a cancellation): what justifies passing over to another source.
  bool remote_failure() const { return remote_failure_.load(); }

 private:
  // The retry loop. attempt(&held) makes one try and reports how many bytes the caller holds
  // (for the notice); *local is set by the attempt when its error is the caller's own.
  Status Retry(HttpClient& http, const RetryNotice& notice,
               const std::function<Status(int64_t* held)>& attempt, const bool* local);
  // Waits `delay`, in short slices, unless cancelled (then Cancelled).
  Status Wait(std::chrono::milliseconds delay) const;

  const RetryPolicy policy_;
  const std::atomic<bool>* cancel_;
  const std::atomic<bool>* also_cancel_;
  std::atomic<bool> remote_failure_{false};
};

}  // namespace hoist::registry
