// FaultProxy: a plain-HTTP reverse proxy on 127.0.0.1 in front of a real registry (a
// TestRegistry) that injects network faults into chosen requests, and counts what it sent.
// Upload Locations that name the registry are rewritten to name the proxy.
// Built on FixtureServer: one request per connection; the upstream answer is read whole (test
// images are small), then sent on, or not, as the fault says. Test-only.
//
//   auto proxy = FaultProxy::Start(registry->host());
//   (*proxy)->Add({Fault::kReset, "/blobs/" + layer_digest, 1, -1, 0.5});
//   client->Pull((*proxy)->host() + "/app:1");
//   (*proxy)->BodyBytes("/blobs/")   // body bytes the client received for blobs
#pragma once

#include <chrono>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hoist/status.h"
#include "support/http_server.h"
#include "support/image_builder.h"
#include "support/registry.h"

namespace hoist::testing {

struct Fault {
  enum Kind {
    kStatus,       // answer `status` (e.g. 429, 503, 403) without asking upstream
    kReset,        // send the headers and `at` body bytes, then a TCP reset
    kShortBody,    // announce the whole body (Content-Length), send `at` bytes, close cleanly
    kStall,        // send the headers (and `at` body bytes), then nothing for `stall`
    kIgnoreRange,  // drop the Range header on the way up: the registry answers 200, whole
    kDelay,        // wait `stall` before answering, then answer in full (a slow server)
  };
  Kind kind = kStatus;
  // Requests whose path contains this ("" matches every request).
  std::string path_contains{};
  // How many matching requests get the fault (-1: all of them). Body faults (reset, short
  // body, stall) count only GETs with a 2xx body; kIgnoreRange only requests with a Range.
  // kReset also applies to uploads (PUT and PATCH): such a request is not sent upstream, and
  // its connection is reset before any answer.
  int count = 1;
  // kReset, kShortBody, kStall: how many body bytes go out first; negative: `fraction` of the
  // body.
  int64_t at = -1;
  double fraction = 0.5;
  int status = 503;           // kStatus
  std::string retry_after{};  // kStatus: a Retry-After header when non-empty
  std::chrono::milliseconds stall{std::chrono::seconds(20)};  // kStall, kDelay
};

// One request the proxy answered.
struct ProxiedRequest {
  std::string method, path, range;  // range: the client's Range header, "" if none
  int status = 0;                   // what the client was sent
  int64_t body_bytes = 0;           // body bytes sent to the client
  std::string fault;                // the fault applied ("" if none)
  std::chrono::steady_clock::time_point arrived{};
};

class FaultProxy {
 public:
  // Proxies to http://<upstream> ("127.0.0.1:PORT").
  static Result<std::unique_ptr<FaultProxy>> Start(const std::string& upstream);

  std::string host() const { return server_->host(); }
  // Adds a fault; faults are tried in the order added, the first that matches a request and
  // still has a count left applies.
  void Add(Fault fault);
  // Removes every fault (requests already answering keep theirs).
  void ClearFaults();
  // Every request so far, in arrival order.
  std::vector<ProxiedRequest> Requests() const;
  // Body bytes of 2xx answers sent to clients (the data fetched; injected error bodies are not
  // counted), over the requests whose path contains `path_contains`.
  int64_t BodyBytes(std::string_view path_contains = "") const;
  // How many requests (with this method, when non-empty) had a path containing `path_contains`.
  int Count(std::string_view path_contains, std::string_view method = "") const;
  // The longest time from a request that got a fault to the next request for the same path
  // (the client's time to recover); zero when no fault was followed by another request.
  std::chrono::milliseconds LongestRecovery() const;

 private:
  explicit FaultProxy(std::string upstream) : upstream_(std::move(upstream)) {}
  HttpResponse Handle(const HttpRequest& req);
  // The first fault of one of these kinds whose pattern matches `path` and whose count is not
  // used up (one is used); nullopt if none.
  std::optional<Fault> Take(const std::string& path, std::initializer_list<Fault::Kind> kinds);

  std::string upstream_;
  mutable std::mutex mu_;
  std::vector<Fault> faults_;        // guarded by mu_
  std::vector<int> left_;            // guarded by mu_: count left per fault
  std::vector<ProxiedRequest> log_;  // guarded by mu_
  std::unique_ptr<FixtureServer> server_;
};

// A TestRegistry holding `image` as repo:tag, and a FaultProxy in front of it.
struct ProxiedRegistry {
  std::unique_ptr<TestRegistry> registry;
  std::unique_ptr<FaultProxy> proxy;
};
Result<ProxiedRegistry> StartProxiedRegistry(const std::string& repo, const std::string& tag,
                                             const BuiltImage& image);

}  // namespace hoist::testing
