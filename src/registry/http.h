// One HTTP exchange at a time over a libcurl easy handle. The handle keeps its connections
// alive between requests, so each worker thread owns one HttpClient and reuses it.
//
// Redirects are NOT followed here: the registry layer follows them itself, so that it decides
// per hop which headers (Authorization) may travel to the new host.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hoist/status.h"

namespace hoist::registry {

// TLS material for one registry (from certs.d or --cert-dir).
struct TlsSettings {
  std::string extra_ca_pem;  // CAs trusted besides the system's
  std::string client_cert;   // client certificate and key files, or empty
  std::string client_key;
};

// How long a request may take, so that a server that stalls or trickles cannot hold a pull
// forever. Both limits end the request with Unavailable naming the host.
struct TransferLimits {
  // A transfer (waiting for the answer included) that moves fewer than low_speed_bytes bytes
  // per second, averaged over low_speed_seconds, is aborted. 0 in either disables this.
  int64_t low_speed_bytes = 1024;
  int64_t low_speed_seconds = 30;
  // A request whose answer is held in memory (no sink: manifests, tokens, HEAD, pings) must be
  // complete within this many seconds. Streamed bodies (blobs, with a sink) have no total limit:
  // their size is bounded by the caller (the descriptor's size), so the low-speed limit already
  // bounds their time, and a total limit would end a large layer on a slow but working link.
  // 0 disables.
  int64_t request_timeout_seconds = 120;
};

struct HttpResponse;

struct HttpRequest {
  // GET, HEAD, DELETE; POST, PUT and PATCH send `body` (token refresh, uploads).
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  // The body of a POST, PUT or PATCH, held whole (an upload sends one chunk at a time).
  std::string body;
  bool verify_tls = true;
  TlsSettings tls;
  // CURLOPT_RESOLVE entries ("host:port:addr[,addr]"): connect to these addresses, no DNS.
  std::vector<std::string> resolve;
  // A 2xx body goes to `sink` when set (streamed, never held whole), else into
  // HttpResponse::body up to `max_body` bytes; more is ResourceExhausted. Non-2xx bodies are
  // always kept in memory, truncated to 64 KiB, for error messages.
  std::function<Status(const char* data, size_t n)> sink;
  // With `sink`: called once, before the first byte of a 2xx body goes to the sink, with the
  // status and headers (body empty). An error it returns ends the transfer and is returned by
  // Do as is, like the sink's. Not called for a 2xx answer without a body.
  std::function<Status(const HttpResponse& head)> on_body_start;
  size_t max_body = 4 << 20;
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::vector<std::string>> headers;  // lowercase names
  std::string body;
  // First value of a header, or "".
  std::string Header(const std::string& lowercase_name) const;
};

class HttpClient {
 public:
  // The flags (optional) are polled during transfers; when either becomes true the request
  // fails with Cancelled. Typically: the caller's cancel flag, and a pull's first-error flag.
  // `limits` apply to every request made through this client.
  explicit HttpClient(const std::atomic<bool>* cancel = nullptr,
                      const std::atomic<bool>* also_cancel = nullptr, TransferLimits limits = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Performs the request. A transport failure (DNS, connect, TLS, reset) is Unavailable with
  // curl's message; so is a request over the TransferLimits, as "HOST: timed out: ...". An
  // error returned by the sink ends the transfer and is returned as is.
  // HTTP error statuses are not errors here: the caller reads `status`.
  Result<HttpResponse> Do(const HttpRequest& request);

  // The Retry-After header of the last answer Do received ("" when it had none, or when the
  // last request got no answer). Lets a caller that only sees a Status (a 429 or 503 several
  // layers down, a token server's) honour the server's wish.
  const std::string& last_retry_after() const;
  // Whether the last request failed at the transport in a way another attempt cannot mend: the
  // server's certificate or our TLS material was refused, the host name does not resolve, the
  // URL is unusable. Such errors are Unavailable (a mirror that fails so is passed over) but
  // are not retried.
  bool last_error_permanent() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Calls curl_global_init once per process; safe from any thread.
void InitHttpOnce();

// The system's CA bundle (PEM), read once; "" when there is none.
const std::string& SystemCaBundle();

}  // namespace hoist::registry
