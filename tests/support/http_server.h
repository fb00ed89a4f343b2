// FixtureServer: a tiny threaded HTTP/1.1 server on 127.0.0.1 for tests that need a registry
// (or token server) that misbehaves on purpose. Each connection carries one request: the
// server reads it, calls the handler, answers with `Connection: close` and closes. Test-only.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/unique_fd.h"
#include "hoist/status.h"

namespace hoist::testing {

struct HttpRequest {
  std::string method, target;                  // target as sent: "/v2/x/manifests/1?a=b"
  std::map<std::string, std::string> headers;  // lowercase names; a repeated header keeps the last
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers{};
  std::string body{};
  // Send at most this many body bytes, then close the connection: a dropped transfer. The
  // Content-Length still announces the whole body.
  size_t body_limit = std::string::npos;
  // Non-zero: send the body one byte at a time, this long apart (a server that trickles),
  // until it is all sent, the client goes away or the server stops.
  std::chrono::milliseconds byte_interval{0};
  // With body_limit: end the connection with a TCP reset (RST) instead of a graceful close.
  // With status 0: reset it at once, before anything is sent (a request cut off).
  bool reset = false;
  // Non-zero: after the headers (and the body bytes sent, when body_limit cuts the body), wait
  // this long, or until the client goes away or the server stops, before closing: a stall.
  std::chrono::milliseconds stall{0};
};

class FixtureServer {
 public:
  // Called on a connection thread, possibly concurrently with itself; must be thread-safe.
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // Listens on <address>:<free port> (an IPv4 address of this machine, e.g. another loopback
  // address such as 127.0.0.2) and serves until destroyed.
  static Result<std::unique_ptr<FixtureServer>> Start(Handler handler,
                                                      const std::string& address = "127.0.0.1");
  ~FixtureServer();  // stops accepting, joins every connection thread

  int port() const { return port_; }
  std::string host() const { return address_ + ":" + std::to_string(port_); }  // "127.0.0.1:PORT"
  std::string url() const { return "http://" + host(); }
  // Every request parsed so far, in arrival order (thread-safe copy).
  std::vector<HttpRequest> requests() const;

  // The response's framing: a handler header named Content-Length or Connection replaces the
  // server's own (so a test can announce a wrong length). HEAD gets the headers of the response
  // with Content-Length of its body, and no body. A request whose header block exceeds 64 KiB
  // gets 431, a malformed one 400, a body that is chunked 501, a body over 64 MiB 413.
  static constexpr size_t kMaxHeaderBytes = 64 << 10;
  static constexpr size_t kMaxBodyBytes = 64 << 20;

 private:
  struct Connection {
    std::thread thread;
    std::atomic<bool> done{false};
  };

  FixtureServer(Handler handler, UniqueFd listener, std::string address, int port)
      : handler_(std::move(handler)),
        listener_(std::move(listener)),
        address_(std::move(address)),
        port_(port) {}
  void AcceptLoop();
  void Serve(UniqueFd fd);
  void JoinFinished(bool all);

  Handler handler_;
  UniqueFd listener_;
  std::string address_;
  int port_;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::list<Connection> connections_;  // touched only by the acceptor thread (and ~)
  mutable std::mutex mu_;
  std::vector<HttpRequest> requests_;  // guarded by mu_
};

}  // namespace hoist::testing
