#include "registry/http.h"

#include <curl/curl.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <mutex>

#include "base/strings.h"
#include "registry/auth.h"

namespace hoist::registry {
namespace {

constexpr size_t kMaxErrorBody = 64 << 10;
constexpr size_t kMaxHeaderBytes = 256 << 10;

struct Transfer {
  const HttpRequest* request;
  HttpResponse* response;
  CURL* curl;
  Status sink_status;
  size_t header_bytes = 0;
  bool too_big = false;
  bool body_started = false;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  t->header_bytes += len;
  if (t->header_bytes > kMaxHeaderBytes) return 0;
  std::string_view line(data, len);
  if (line.starts_with("HTTP/")) {
    t->response->headers.clear();  // a new response (e.g. after 100 Continue)
    return len;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return len;
  std::string name = ToLower(TrimSpace(line.substr(0, colon)));
  t->response->headers[name].emplace_back(TrimSpace(line.substr(colon + 1)));
  return len;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  long code = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
  bool success = code >= 200 && code < 300;
  if (success && t->request->sink) {
    if (!t->body_started) {
      t->body_started = true;
      if (t->request->on_body_start) {
        t->response->status = static_cast<int>(code);
        t->sink_status = t->request->on_body_start(*t->response);
        if (!t->sink_status.ok()) return 0;
      }
    }
    t->sink_status = t->request->sink(data, len);
    return t->sink_status.ok() ? len : 0;
  }
  size_t cap = success ? t->request->max_body : kMaxErrorBody;
  std::string& body = t->response->body;
  if (body.size() + len > cap) {
    if (success) {
      t->too_big = true;
      return 0;
    }
    body.append(data, cap - body.size());  // keep the start of an error body, drop the rest
    return len;
  }
  body.append(data, len);
  return len;
}

// Transport failures that the same request would meet again.
bool IsPermanent(CURLcode rc) {
  switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
      return true;
    default:
      return false;
  }
}

struct CancelFlags {
  const std::atomic<bool>* a;
  const std::atomic<bool>* b;
  bool Set() const {
    return (a != nullptr && a->load(std::memory_order_relaxed)) ||
           (b != nullptr && b->load(std::memory_order_relaxed));
  }
};

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const CancelFlags*>(user)->Set() ? 1 : 0;
}

}  // namespace

void InitHttpOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

const std::string& SystemCaBundle() {
  static const std::string bundle = [] {
    for (const char* path :
         {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"}) {
      std::ifstream in(path, std::ios::binary);
      if (in) return std::string(std::istreambuf_iterator<char>(in), {});
    }
    return std::string();
  }();
  return bundle;
}

std::string HttpResponse::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() || it->second.empty() ? "" : it->second.front();
}

struct HttpClient::State {
  CURL* curl = nullptr;
  CancelFlags cancel;
  TransferLimits limits;
  std::string last_retry_after;
  bool last_error_permanent = false;
};

HttpClient::HttpClient(const std::atomic<bool>* cancel, const std::atomic<bool>* also_cancel,
                       TransferLimits limits)
    : state_(std::make_unique<State>()) {
  InitHttpOnce();
  state_->curl = curl_easy_init();
  state_->cancel = CancelFlags{cancel, also_cancel};
  state_->limits = limits;
}

HttpClient::~HttpClient() {
  if (state_->curl != nullptr) curl_easy_cleanup(state_->curl);
}

const std::string& HttpClient::last_retry_after() const { return state_->last_retry_after; }
bool HttpClient::last_error_permanent() const { return state_->last_error_permanent; }

Result<HttpResponse> HttpClient::Do(const HttpRequest& request) {
  CURL* curl = state_->curl;
  if (curl == nullptr) return InternalError("curl_easy_init failed");
  state_->last_retry_after.clear();
  state_->last_error_permanent = false;
  if (state_->cancel.Set()) return CancelledError("cancelled");
  curl_easy_reset(curl);

  HttpResponse response;
  Transfer t{&request, &response, curl, OkStatus()};
  char error[CURL_ERROR_SIZE] = {0};

  curl_slist* headers = nullptr;
  for (const auto& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  // Never let curl add "Expect: 100-continue" or follow redirects on its own.
  headers = curl_slist_append(headers, "Expect:");

  curl_slist* resolve = nullptr;
  for (const auto& r : request.resolve) resolve = curl_slist_append(resolve, r.c_str());
  curl_easy_setopt(curl, CURLOPT_RESOLVE, resolve);
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "hoist/0.1");
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
  const TransferLimits& limits = state_->limits;
  if (limits.low_speed_bytes > 0 && limits.low_speed_seconds > 0) {
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, static_cast<long>(limits.low_speed_bytes));
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, static_cast<long>(limits.low_speed_seconds));
  }
  const bool time_limited = !request.sink && limits.request_timeout_seconds > 0;
  if (time_limited) {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(limits.request_timeout_seconds));
  }
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &state_->cancel);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, request.verify_tls ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, request.verify_tls ? 2L : 0L);
  std::string ca_blob;
  if (!request.tls.extra_ca_pem.empty()) {
    // The registry's own CAs trusted as well as the system's, as docker's certs.d does.
    ca_blob = SystemCaBundle() + "\n" + request.tls.extra_ca_pem;
    curl_blob blob{ca_blob.data(), ca_blob.size(), CURL_BLOB_COPY};
    curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &blob);
  }
  if (!request.tls.client_cert.empty()) {
    curl_easy_setopt(curl, CURLOPT_SSLCERT, request.tls.client_cert.c_str());
    curl_easy_setopt(curl, CURLOPT_SSLKEY, request.tls.client_key.c_str());
  }
  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.method == "POST" || request.method == "PUT" || request.method == "PATCH") {
    // The body is sent as is (binary safe), with its Content-Length; curl's default
    // Content-Type for POST is replaced when the caller names one.
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    if (request.method != "POST") {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
  } else if (request.method == "DELETE") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "DELETE");
  } else if (request.method != "GET") {
    curl_slist_free_all(headers);
    curl_slist_free_all(resolve);
    return InternalError("unsupported HTTP method " + request.method);
  }

  const auto started = std::chrono::steady_clock::now();
  CURLcode rc = curl_easy_perform(curl);
  const auto elapsed = std::chrono::steady_clock::now() - started;
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(headers);
  curl_slist_free_all(resolve);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl, CURLOPT_RESOLVE, nullptr);
  if (code != 0) state_->last_retry_after = response.Header("retry-after");

  if (!t.sink_status.ok()) return t.sink_status;
  if (t.too_big) {
    return ResourceExhaustedError("response from " + TerminalSafe(request.url) + " exceeds " +
                                  std::to_string(request.max_body) + " bytes");
  }
  if (rc == CURLE_ABORTED_BY_CALLBACK) return CancelledError("cancelled");
  if (rc != CURLE_OK) {
    std::string why = error[0] != '\0' ? std::string(error) : curl_easy_strerror(rc);
    while (!why.empty() && (why.back() == '\n' || why.back() == '\r')) why.pop_back();
    // A TLS alert from the peer (certificate required, unknown CA, ...) is its decision too.
    state_->last_error_permanent = IsPermanent(rc) || why.find(" alert ") != std::string::npos;
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      // The total limit, not the low-speed one, when its time has come (curl's own clock may
      // fire a little early, hence the margin).
      if (time_limited && elapsed + std::chrono::milliseconds(100) >=
                              std::chrono::seconds(limits.request_timeout_seconds)) {
        why = "no complete answer within " + std::to_string(limits.request_timeout_seconds) + " s";
      }
      return UnavailableError(TerminalSafe(UrlAuthority(request.url)) +
                              ": timed out: " + TerminalSafe(why) + " (" + request.method + " " +
                              TerminalSafe(request.url) + ")");
    }
    return UnavailableError(request.method + " " + TerminalSafe(request.url) + ": " +
                            TerminalSafe(why));
  }
  response.status = static_cast<int>(code);
  return response;
}

}  // namespace hoist::registry
