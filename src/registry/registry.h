// The Docker Registry HTTP API v2 / OCI distribution protocol, client side.
//
// Registry: one registry host. Chooses https (or, for loopback and insecure registries, plain
// http when https fails, as docker does), attaches credentials through the Authorizer, answers
// a 401 once, and follows redirects itself: Authorization goes only to the registry's own
// scheme://host:port, never to a CDN it redirects to. Thread-safe.
//
// Repository: the calls hoist makes on one repository of a registry.
#pragma once

#include <functional>
#include <initializer_list>
#include <mutex>
#include <string>
#include <vector>

#include "hoist/digest.h"
#include "registry/auth.h"
#include "registry/http.h"

namespace hoist::registry {

using BodySink = std::function<Status(const char*, size_t)>;
using BodyStart = std::function<Status(const HttpResponse& head)>;

// How to reach one registry host.
struct Endpoint {
  // Skip TLS verification, and fall back to plain http when https cannot be reached.
  bool insecure = false;
  TlsSettings tls;  // certs.d material, also used for the registry's token realm
};

class Registry {
 public:
  // name: the registry as credentials are looked up ("docker.io", a mirror's host:port);
  // host: where to connect ("registry-1.docker.io", "127.0.0.1:5000"); credentials: the
  // source asked for `name`'s credentials when the registry answers 401 (the only one this
  // registry ever gets credentials from). authorizer and credentials must outlive it.
  Registry(std::string name, std::string host, Endpoint endpoint, Authorizer* authorizer,
           CredentialSource* credentials);

  const std::string& name() const { return name_; }
  const std::string& host() const { return host_; }

  // The path (and query) at this registry that an upload's Location header names, resolved
  // against the request to `request_path` it answered. InvalidArgument when it leads anywhere
  // but this registry's own scheme://host:port (credentials and blob bytes go nowhere else), or
  // before any request reached the registry.
  Result<std::string> UploadPath(const std::string& request_path,
                                 const std::string& location) const;

  // Sends `request` to <scheme>://<host><path>. request.url is ignored; `path` starts with
  // "/v2/". `scope` is the token scope the call needs ("repository:library/alpine:pull").
  // The final response is returned whatever its status (after auth and redirects).
  Result<HttpResponse> Send(HttpClient& http, const std::string& path, const HttpRequest& request,
                            const std::string& scope);

 private:
  Result<HttpResponse> SendWithScheme(HttpClient& http, const std::string& scheme,
                                      const std::string& path, HttpRequest request,
                                      const std::string& scope, bool* body_started);

  std::string name_;
  std::string host_;
  Endpoint endpoint_;
  Authorizer* authorizer_;
  CredentialSource* credentials_;
  mutable std::mutex mu_;
  std::string scheme_;  // "" until the first request succeeds
};

struct ManifestResponse {
  std::string content_type;   // as sent, parameters stripped
  std::string digest_header;  // Docker-Content-Digest, may be empty
  int64_t content_length = -1;
  std::string body;  // empty for HEAD
};

class Repository {
 public:
  // path: the repository ("library/alpine"), already validated by the reference parser.
  Repository(Registry* registry, std::string path);

  const std::string& path() const { return path_; }
  const Registry& registry() const { return *registry_; }
  Registry& registry() { return *registry_; }
  std::string scope() const { return "repository:" + path_ + ":pull"; }

  // HEAD or GET /v2/<path>/manifests/<reference>. GET bodies over max_bytes are
  // ResourceExhausted. HTTP errors become Status (404 NotFound, 401 Unauthenticated, ...).
  Result<ManifestResponse> HeadManifest(HttpClient& http, const std::string& reference,
                                        const std::string& accept);
  Result<ManifestResponse> GetManifest(HttpClient& http, const std::string& reference,
                                       const std::string& accept, size_t max_bytes);

  // GET /v2/<path>/blobs/<digest>, the body streamed to sink. offset > 0 asks only for the
  // bytes from there on (Range: bytes=offset-). `start`, when set, sees the answer's status
  // (200 or 206) and headers before the first body byte, and may refuse them. A 2xx other
  // than 200 and 206 is an error.
  Status GetBlob(HttpClient& http, const Digest& digest, int64_t offset, const BodyStart& start,
                 const BodySink& sink);

 private:
  Result<ManifestResponse> Manifest(HttpClient& http, const std::string& method,
                                    const std::string& reference, const std::string& accept,
                                    size_t max_bytes);
  Registry* registry_;
  std::string path_;
};

// The push side of a Repository: the calls that write blobs and manifests (OCI distribution
// spec, "push"). Every call asks for the push scope (repository:<path>:pull,push), a mount
// also for pull on the repository it mounts from. An upload session is named by its path at
// the registry (Registry::UploadPath of the latest Location the registry sent).
class Uploader {
 public:
  explicit Uploader(Repository& repo) : repo_(repo) {}

  std::string scope() const { return "repository:" + repo_.path() + ":pull,push"; }

  // HEAD /v2/<path>/blobs/<digest>: true when the repository has the blob (200), false when
  // it does not (404); other answers are errors.
  Result<bool> HasBlob(HttpClient& http, const Digest& digest);

  // POST /v2/<path>/blobs/uploads/?mount=<digest>&from=<from>: true when the registry mounted
  // the blob from repository `from` (201). False when it started an upload session instead
  // (202, e.g. it would not mount): *session is that session.
  Result<bool> MountBlob(HttpClient& http, const Digest& digest, const std::string& from,
                         std::string* session);
  // POST /v2/<path>/blobs/uploads/: a new upload session.
  Result<std::string> StartUpload(HttpClient& http);
  // PATCH <session> with `chunk` as the blob's bytes from `offset` on (Content-Range), as
  // application/octet-stream. Returns the session to send the next request to (the registry
  // may move it with every answer).
  Result<std::string> PatchUpload(HttpClient& http, const std::string& session, int64_t offset,
                                  std::string chunk);
  // PUT <session>?digest=<digest> with the blob's last bytes (all of them for a monolithic
  // upload): 201, and the Docker-Content-Digest the registry reports, when it reports one,
  // must be `digest` (DataLoss otherwise).
  Status FinishUpload(HttpClient& http, const std::string& session, const Digest& digest,
                      std::string last);
  // DELETE <session>: abandons an upload (the registry keeps nothing of it).
  Status CancelUpload(HttpClient& http, const std::string& session);

  // PUT /v2/<path>/manifests/<reference> with `media_type` as Content-Type. 201, and the
  // Docker-Content-Digest the registry reports must be `digest` (DataLoss otherwise).
  Status PutManifest(HttpClient& http, const std::string& reference, const std::string& media_type,
                     const std::string& bytes, const Digest& digest);

 private:
  // Sends `req` to `path` with `scope`; the answer when its status is one of `want`, else
  // the error it means.
  Result<HttpResponse> Send(HttpClient& http, const std::string& path, HttpRequest req,
                            const std::string& scope, std::initializer_list<int> want);
  // The session an answer's Location header names, resolved against `request_path`.
  Result<std::string> SessionOf(const HttpResponse& r, const std::string& request_path) const;

  Repository& repo_;
};

// `path` with "name=value" (value URL-encoded) added to its query.
std::string WithQuery(const std::string& path, const std::string& name, const std::string& value);

// The path and query of `location` resolved against `origin` + `request_path` when that leads
// to `origin` ("https://host:port") itself; InvalidArgument otherwise (another scheme, host,
// port, user info, or not an http(s) URL). Registry::UploadPath with its origin.
Result<std::string> PathAtOrigin(const std::string& origin, const std::string& request_path,
                                 const std::string& location);

// GET of a foreign layer's URL, following up to 10 redirects, never with credentials of any
// registry (nor a registry's TLS client certificate); the 2xx body goes to sink. Each hop must
// pass CheckForeignUrl (foreign_url.h) with `registry_addresses` (those of the registry the
// manifest came from) and is pinned to the addresses it checked.
// offset and start as for Repository::GetBlob.
Status GetForeignUrl(HttpClient& http, const std::string& url,
                     const std::vector<std::string>& registry_addresses, int64_t offset,
                     const BodyStart& start, const BodySink& sink);

// A Status for a non-2xx response: the code follows the HTTP status (401 Unauthenticated,
// 403 PermissionDenied, 404 NotFound, 429 and 5xx Unavailable), the message carries the
// registry's own error code and text when it sent the standard JSON error body.
Status StatusFromResponse(const HttpResponse& response);

}  // namespace hoist::registry
