#include "registry/registry.h"

#include <curl/curl.h>

#include <nlohmann/json.hpp>

#include "base/json.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "registry/foreign_url.h"

namespace hoist::registry {
namespace {

constexpr int kMaxRedirects = 10;

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// Resolves a Location header against the URL it came from; "" when it is not http(s).
std::string ResolveLocation(const std::string& base, const std::string& location) {
  CURLU* u = curl_url();
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, base.c_str(), 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_URL, location.c_str(), 0) == CURLUE_OK) {
    char* full = nullptr;
    if (curl_url_get(u, CURLUPART_URL, &full, 0) == CURLUE_OK) out = full;
    curl_free(full);
  }
  curl_url_cleanup(u);
  if (!out.starts_with("https://") && !out.starts_with("http://")) return "";
  return out;
}

std::string RangeHeader(int64_t offset) { return "Range: bytes=" + std::to_string(offset) + "-"; }

std::string StripParameters(std::string_view content_type) {
  return std::string(TrimSpace(content_type.substr(0, content_type.find(';'))));
}

}  // namespace

Status StatusFromResponse(const HttpResponse& r) {
  std::string message = "HTTP " + std::to_string(r.status);
  auto doc = ParseJson(r.body, "error body");
  if (doc.ok() && doc->is_object() && doc->contains("errors") && (*doc)["errors"].is_array() &&
      !(*doc)["errors"].empty() && (*doc)["errors"][0].is_object()) {
    const auto& e = (*doc)["errors"][0];
    std::string code =
        e.contains("code") && e["code"].is_string() ? e["code"].get<std::string>() : "";
    std::string text =
        e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>() : "";
    if (text.size() > 200) text.resize(200);
    if (!code.empty() || !text.empty())
      message += " (" + TerminalSafe(code) + (text.empty() ? "" : ": " + TerminalSafe(text)) + ")";
  }
  switch (r.status) {
    case 401:
      return UnauthenticatedError(message);
    case 403:
      return PermissionDeniedError(message);
    case 404:
      return NotFoundError(message);
    case 408:
    case 429:
      return UnavailableError(message);
    default:
      break;
  }
  if (r.status >= 500) return UnavailableError(message);
  if (r.status >= 400) return InvalidArgumentError(message);
  return InternalError("unexpected " + message);
}

Registry::Registry(std::string name, std::string host, Endpoint endpoint, Authorizer* authorizer,
                   CredentialSource* credentials)
    : name_(std::move(name)),
      host_(std::move(host)),
      endpoint_(std::move(endpoint)),
      authorizer_(authorizer),
      credentials_(credentials) {}

Result<HttpResponse> Registry::Send(HttpClient& http, const std::string& path,
                                    const HttpRequest& request, const std::string& scope) {
  std::string scheme;
  {
    std::lock_guard<std::mutex> lock(mu_);
    scheme = scheme_;
  }
  bool body_started = false;
  if (!scheme.empty()) return SendWithScheme(http, scheme, path, request, scope, &body_started);

  auto r = SendWithScheme(http, "https", path, request, scope, &body_started);
  if (r.ok() || !endpoint_.insecure || body_started ||
      r.status().code() != StatusCode::kUnavailable) {
    if (r.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      scheme_ = "https";
    }
    return r;
  }
  auto plain = SendWithScheme(http, "http", path, request, scope, &body_started);
  // http's own answer (a 401, a refused token) is the error; https is worth mentioning only
  // when neither could be reached.
  if (!plain.ok() && plain.status().code() == StatusCode::kUnavailable && !body_started) {
    return plain.status().WithContext("https failed (" + r.status().message() + "), then http");
  }
  if (!plain.ok()) return plain;
  std::lock_guard<std::mutex> lock(mu_);
  scheme_ = "http";
  return plain;
}

Result<HttpResponse> Registry::SendWithScheme(HttpClient& http, const std::string& scheme,
                                              const std::string& path, HttpRequest request,
                                              const std::string& scope, bool* body_started) {
  const std::string origin = scheme + "://" + host_;
  std::string url = origin + path;
  const std::vector<std::string> base_headers = request.headers;
  if (request.sink) {
    auto inner = request.sink;
    request.sink = [inner, body_started](const char* d, size_t n) {
      *body_started = true;
      return inner(d, n);
    };
  }
  bool answered_challenge = false;
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    // Credentials only to the registry itself: same scheme, host and port.
    bool at_registry = url.starts_with(origin + "/");
    request.url = url;
    request.headers = base_headers;
    if (at_registry) {
      std::string auth = authorizer_->HeaderFor(host_, *credentials_, scope);
      if (!auth.empty()) request.headers.push_back(std::move(auth));
    }
    // TLS is verified everywhere except on the insecure registry itself, and the registry's
    // own CAs and client certificate are for the registry only.
    request.verify_tls = !(endpoint_.insecure && at_registry);
    request.tls = at_registry ? endpoint_.tls : TlsSettings{};
    ASSIGN_OR_RETURN(HttpResponse r, http.Do(request));
    if (r.status == 401 && at_registry && !answered_challenge) {
      answered_challenge = true;
      RETURN_IF_ERROR(authorizer_->OnUnauthorized(name_, *credentials_, host_,
                                                  RealmTls{endpoint_.insecure, endpoint_.tls},
                                                  scope, r, http));
      --hop;  // the retry is not a redirect
      continue;
    }
    if (IsRedirect(r.status)) {
      std::string location = r.Header("location");
      std::string next = location.empty() ? "" : ResolveLocation(url, location);
      if (next.empty()) {
        return UnavailableError("redirect from " + TerminalSafe(url) +
                                " with an unusable Location");
      }
      url = next;
      continue;
    }
    return r;
  }
  return UnavailableError("more than " + std::to_string(kMaxRedirects) + " redirects from " +
                          TerminalSafe(origin + path));
}

Status GetForeignUrl(HttpClient& http, const std::string& first,
                     const std::vector<std::string>& registry_addresses, int64_t offset,
                     const BodyStart& start, const BodySink& sink) {
  std::string url = first;
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    ASSIGN_OR_RETURN(std::string pinned, CheckForeignUrl(url, registry_addresses));
    HttpRequest req;
    req.url = url;
    req.sink = sink;
    req.on_body_start = start;
    if (offset > 0) req.headers.push_back(RangeHeader(offset));
    if (!pinned.empty()) req.resolve.push_back(std::move(pinned));
    ASSIGN_OR_RETURN(HttpResponse r, http.Do(req));
    if (IsRedirect(r.status)) {
      url = ResolveLocation(url, r.Header("location"));
      if (url.empty())
        return UnavailableError("redirect from " + TerminalSafe(first) + " to a non-http(s) URL");
      continue;
    }
    if (r.status != 200 && r.status != 206) {
      return StatusFromResponse(r).WithContext("GET " + TerminalSafe(url));
    }
    return OkStatus();
  }
  return UnavailableError("more than " + std::to_string(kMaxRedirects) + " redirects from " +
                          TerminalSafe(first));
}

Result<std::string> PathAtOrigin(const std::string& origin, const std::string& request_path,
                                 const std::string& location) {
  const std::string url = ResolveLocation(origin + request_path, location);
  if (location.empty() || url.empty() || !url.starts_with(origin + "/")) {
    return InvalidArgumentError("upload location " + Quote(location) + " is not at " +
                                TerminalSafe(origin));
  }
  return url.substr(origin.size());
}

std::string WithQuery(const std::string& path, const std::string& name, const std::string& value) {
  return path + (path.find('?') == std::string::npos ? "?" : "&") + name + "=" + UrlEncode(value);
}

Result<std::string> Registry::UploadPath(const std::string& request_path,
                                         const std::string& location) const {
  std::string scheme;
  {
    std::lock_guard<std::mutex> lock(mu_);
    scheme = scheme_;
  }
  if (scheme.empty()) return InvalidArgumentError("upload location before any answer");
  return PathAtOrigin(scheme + "://" + host_, request_path, location);
}

Repository::Repository(Registry* registry, std::string path)
    : registry_(registry), path_(std::move(path)) {}

Result<ManifestResponse> Repository::HeadManifest(HttpClient& http, const std::string& reference,
                                                  const std::string& accept) {
  return Manifest(http, "HEAD", reference, accept, 0);
}

Result<ManifestResponse> Repository::GetManifest(HttpClient& http, const std::string& reference,
                                                 const std::string& accept, size_t max_bytes) {
  return Manifest(http, "GET", reference, accept, max_bytes);
}

Result<ManifestResponse> Repository::Manifest(HttpClient& http, const std::string& method,
                                              const std::string& reference,
                                              const std::string& accept, size_t max_bytes) {
  HttpRequest req;
  req.method = method;
  req.headers.push_back("Accept: " + accept);
  req.max_body = max_bytes;
  ASSIGN_OR_RETURN(HttpResponse r, registry_->Send(http, "/v2/" + path_ + "/manifests/" + reference,
                                                   std::move(req), scope()));
  if (r.status != 200) return StatusFromResponse(r);
  ManifestResponse m;
  m.content_type = StripParameters(r.Header("content-type"));
  m.digest_header = r.Header("docker-content-digest");
  std::string length = r.Header("content-length");
  if (!length.empty() && length.size() < 19 &&
      length.find_first_not_of("0123456789") == std::string::npos) {
    m.content_length = std::stoll(length);
  }
  m.body = std::move(r.body);
  return m;
}

Status Repository::GetBlob(HttpClient& http, const Digest& digest, int64_t offset,
                           const BodyStart& start, const BodySink& sink) {
  HttpRequest req;
  req.method = "GET";
  req.sink = sink;
  req.on_body_start = start;
  if (offset > 0) req.headers.push_back(RangeHeader(offset));
  ASSIGN_OR_RETURN(
      HttpResponse r,
      registry_->Send(http, "/v2/" + path_ + "/blobs/" + digest.String(), std::move(req), scope()));
  if (r.status != 200 && r.status != 206) return StatusFromResponse(r);
  return OkStatus();
}

}  // namespace hoist::registry

namespace hoist::registry {

Result<HttpResponse> Uploader::Send(HttpClient& http, const std::string& path, HttpRequest req,
                                    const std::string& scope, std::initializer_list<int> want) {
  const std::string method = req.method;
  ASSIGN_OR_RETURN(HttpResponse r, repo_.registry().Send(http, path, std::move(req), scope));
  for (int w : want) {
    if (r.status == w) return r;
  }
  const std::string what = method + " " + TerminalSafe(path.substr(0, path.find('?')));
  if (r.status / 100 == 2) {
    return UnavailableError(what + ": unexpected HTTP " + std::to_string(r.status));
  }
  Status s = StatusFromResponse(r).WithContext(what);
  if (r.status == 401 || r.status == 403) {
    return s.WithContext("no push access to " + repo_.registry().name() + "/" + repo_.path());
  }
  return s;
}

Result<std::string> Uploader::SessionOf(const HttpResponse& r,
                                        const std::string& request_path) const {
  return repo_.registry().UploadPath(request_path, r.Header("location"));
}

Result<bool> Uploader::HasBlob(HttpClient& http, const Digest& digest) {
  HttpRequest req;
  req.method = "HEAD";
  ASSIGN_OR_RETURN(HttpResponse r, Send(http, "/v2/" + repo_.path() + "/blobs/" + digest.String(),
                                        std::move(req), scope(), {200, 404}));
  return r.status == 200;
}

Result<bool> Uploader::MountBlob(HttpClient& http, const Digest& digest, const std::string& from,
                                 std::string* session) {
  HttpRequest req;
  req.method = "POST";
  const std::string path = WithQuery(
      WithQuery("/v2/" + repo_.path() + "/blobs/uploads/", "mount", digest.String()), "from", from);
  ASSIGN_OR_RETURN(HttpResponse r, Send(http, path, std::move(req),
                                        scope() + " repository:" + from + ":pull", {201, 202}));
  if (r.status == 201) return true;
  ASSIGN_OR_RETURN(*session, SessionOf(r, path));
  return false;
}

Result<std::string> Uploader::StartUpload(HttpClient& http) {
  HttpRequest req;
  req.method = "POST";
  const std::string path = "/v2/" + repo_.path() + "/blobs/uploads/";
  ASSIGN_OR_RETURN(HttpResponse r, Send(http, path, std::move(req), scope(), {202}));
  return SessionOf(r, path);
}

Result<std::string> Uploader::PatchUpload(HttpClient& http, const std::string& session,
                                          int64_t offset, std::string chunk) {
  HttpRequest req;
  req.method = "PATCH";
  req.headers = {"Content-Type: application/octet-stream",
                 "Content-Range: " + std::to_string(offset) + "-" +
                     std::to_string(offset + static_cast<int64_t>(chunk.size()) - 1)};
  req.body = std::move(chunk);
  ASSIGN_OR_RETURN(HttpResponse r, Send(http, session, std::move(req), scope(), {202}));
  return SessionOf(r, session);
}

Status Uploader::FinishUpload(HttpClient& http, const std::string& session, const Digest& digest,
                              std::string last) {
  HttpRequest req;
  req.method = "PUT";
  req.headers = {"Content-Type: application/octet-stream"};
  req.body = std::move(last);
  ASSIGN_OR_RETURN(HttpResponse r, Send(http, WithQuery(session, "digest", digest.String()),
                                        std::move(req), scope(), {201}));
  const std::string reported = r.Header("docker-content-digest");
  if (!reported.empty() && reported != digest.String()) {
    return DataLossError("the registry stored blob " + Quote(reported) + " for " + digest.String());
  }
  return OkStatus();
}

Status Uploader::CancelUpload(HttpClient& http, const std::string& session) {
  HttpRequest req;
  req.method = "DELETE";
  return Send(http, session, std::move(req), scope(), {200, 202, 204, 404}).status();
}

Status Uploader::PutManifest(HttpClient& http, const std::string& reference,
                             const std::string& media_type, const std::string& bytes,
                             const Digest& digest) {
  HttpRequest req;
  req.method = "PUT";
  req.headers = {"Content-Type: " + media_type};
  req.body = bytes;
  ASSIGN_OR_RETURN(HttpResponse r, Send(http, "/v2/" + repo_.path() + "/manifests/" + reference,
                                        std::move(req), scope(), {201}));
  const std::string reported = r.Header("docker-content-digest");
  if (!reported.empty() && reported != digest.String()) {
    return DataLossError("the registry reports manifest digest " + Quote(reported) + " for " +
                         digest.String());
  }
  return OkStatus();
}

}  // namespace hoist::registry
