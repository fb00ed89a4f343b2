#include "serve/server.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "base/fs.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "content/digester.h"
#include "hoist/digest.h"
#include "hoist/reference.h"
#include "image/records.h"
#include "manifest/manifest.h"
#include "serve/store_view.h"

namespace hoist::serve {
namespace {

constexpr size_t kMaxHtpasswdBytes = 1 << 20;
constexpr size_t kMaxHtpasswdEntries = 10000;
constexpr size_t kMaxPemBytes = 1 << 20;
constexpr size_t kMaxAcceptedCredentials = 4096;

// One request: made by the URI log callback, logged and freed when the request ends.
struct Request {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::string uri;  // as the client sent it (not decoded)
  std::string method;
  unsigned status = 0;
  uint64_t bytes = 0;  // the body length of the response (0 for HEAD)
  bool seen = false;   // the handler was called for it once
};

// A response to queue: either bytes or a blob's fd range.
struct Reply {
  unsigned status = MHD_HTTP_OK;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  UniqueFd fd;  // with fd: the body is fd_length bytes from fd_offset
  uint64_t fd_offset = 0, fd_length = 0;
  bool auth_challenge = false;
};

Reply ErrorReply(unsigned status, std::string_view code, std::string_view message,
                 std::string_view detail = "") {
  nlohmann::json j = {{"errors", {{{"code", code}, {"message", message}, {"detail", detail}}}}};
  Reply r;
  r.status = status;
  r.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  r.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
  return r;
}

// The repository name of a request, if it satisfies the reference grammar (a path that parses
// back to itself under a fixed host).
bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  auto ref = Reference::Parse("serve.invalid/" + std::string(name));
  return ref.ok() && ref->path() == name;
}

bool IsValidTag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128) return false;
  return Reference::Parse("serve.invalid/x:" + std::string(tag)).ok();
}

// One "bytes=" range of a blob of `size` bytes: [first, last], or nullopt when it is not
// satisfiable or not one plain range.
std::optional<std::pair<uint64_t, uint64_t>> ParseRange(std::string_view header, uint64_t size) {
  constexpr std::string_view kUnit = "bytes=";
  if (header.substr(0, kUnit.size()) != kUnit) return std::nullopt;
  std::string_view spec = header.substr(kUnit.size());
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos || spec.find('-', dash + 1) != std::string_view::npos) {
    return std::nullopt;  // also refuses a list: "0-1,3-4" has two dashes
  }
  auto number = [](std::string_view s) { return s.size() > 18 ? std::nullopt : ParseDigits(s); };
  std::string_view a = spec.substr(0, dash), b = spec.substr(dash + 1);
  if (size == 0) return std::nullopt;
  if (a.empty()) {  // the last b bytes
    auto n = number(b);
    if (!n || *n == 0) return std::nullopt;
    uint64_t len = std::min(*n, size);
    return std::make_pair(size - len, size - 1);
  }
  auto first = number(a);
  if (!first || *first >= size) return std::nullopt;
  if (b.empty()) return std::make_pair(*first, size - 1);
  auto last = number(b);
  if (!last || *last < *first) return std::nullopt;
  return std::make_pair(*first, std::min(*last, size - 1));
}

// A manifest blob's bytes from its fd, at most kMaxManifestBytes, checked against its digest.
Result<std::string> ReadManifest(int fd, const Digest& want) {
  ASSIGN_OR_RETURN(std::string out,
                   ReadFdToString(fd, manifest::kMaxManifestBytes, "manifest " + want.String()));
  ASSIGN_OR_RETURN(Digest got, content::DigestOf(want.algorithm(), out));
  if (got != want) return DataLossError("manifest " + want.String() + ": damaged on disk");
  return out;
}

Result<std::string> ReadSmallFile(const std::string& path, size_t max_bytes, const char* what) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(errno, std::string(what) + " " + Quote(path));
  std::string out;
  char buf[8192];
  while (true) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, std::string(what) + " " + Quote(path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      return ResourceExhaustedError(std::string(what) + " " + Quote(path) + ": larger than " +
                                    std::to_string(max_bytes) + " bytes");
    }
  }
  return out;
}

// user → bcrypt hash, from an htpasswd file.
Result<std::map<std::string, std::string>> ReadHtpasswd(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path, kMaxHtpasswdBytes, "htpasswd"));
  std::map<std::string, std::string> users;
  int line_no = 0;
  for (std::string_view line : Split(text, '\n')) {
    ++line_no;
    line = TrimSpace(line);
    if (line.empty() || line[0] == '#') continue;
    size_t colon = line.find(':');
    std::string_view hash = colon == std::string_view::npos ? "" : line.substr(colon + 1);
    const std::string_view scheme = hash.substr(0, 4);
    if (colon == 0 || (scheme != "$2y$" && scheme != "$2b$" && scheme != "$2a$")) {
      return InvalidArgumentError("htpasswd " + Quote(path) + ": line " + std::to_string(line_no) +
                                  ": not user:bcrypt-hash (make it with htpasswd -B)");
    }
    if (users.size() >= kMaxHtpasswdEntries) {
      return ResourceExhaustedError("htpasswd " + Quote(path) + ": more than " +
                                    std::to_string(kMaxHtpasswdEntries) + " entries");
    }
    users[std::string(line.substr(0, colon))] = std::string(hash);
  }
  if (users.empty()) return InvalidArgumentError("htpasswd " + Quote(path) + ": no entries");
  return users;
}

// Parses "ADDR:PORT" / "[ADDR]:PORT" with a numeric address.
Result<sockaddr_storage> ParseListen(const std::string& listen, bool* loopback, bool* ipv6) {
  auto bad = [&](std::string_view why) {
    return InvalidArgumentError("serve: --listen " + Quote(listen) + ": " + std::string(why));
  };
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return bad("want ADDR:PORT");
  std::string host = listen.substr(0, colon), port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  auto port_number = port.size() > 5 ? std::nullopt : ParseDigits(port);
  if (!port_number || *port_number > 65535) {
    return bad("the port is not a number from 0 to 65535");
  }

  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
    return bad("the address is not a numeric IPv4 or IPv6 address");
  }
  sockaddr_storage ss{};
  std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  *ipv6 = ss.ss_family == AF_INET6;
  if (*ipv6) {
    *loopback = IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr);
  } else {
    *loopback = (ntohl(reinterpret_cast<sockaddr_in*>(&ss)->sin_addr.s_addr) >> 24) == 127;
  }
  return ss;
}

std::string PeerOf(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (info == nullptr || info->client_addr == nullptr) return "-";
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  socklen_t len =
      info->client_addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (getnameinfo(info->client_addr, len, host, sizeof host, serv, sizeof serv,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "-";
  }
  return std::string(host) + ":" + serv;
}

}  // namespace

struct Server::State {
  StoreView* view = nullptr;
  std::unique_ptr<StoreView> own_view;  // Start(store, options): a view of that store
  ServeOptions options;
  UniqueFd listen_fd;                        // bound and listening; the daemon's once it started
  std::map<std::string, std::string> users;  // htpasswd; empty: no auth
  std::string tls_cert, tls_key, tls_client_ca;  // PEM text, alive as long as the daemon
  FILE* log = nullptr;                           // access log; stderr is not closed
  bool close_log = false;
  std::mutex log_mu;
  MHD_Daemon* daemon = nullptr;
  int port = 0;

  // Credentials that passed the bcrypt check (SHA-256 of user, NUL, password), so that a client
  // making many requests costs one bcrypt; forgotten all at once past kMaxAcceptedCredentials.
  std::mutex accepted_mu;
  std::set<Digest> accepted;

  ~State() {
    if (daemon != nullptr) MHD_stop_daemon(daemon);
    if (close_log && log != nullptr) std::fclose(log);
  }

  bool Authorized(MHD_Connection* connection) {
    if (users.empty()) return true;
    char* password = nullptr;
    char* user = MHD_basic_auth_get_username_password(connection, &password);
    bool ok = false;
    std::optional<Digest> key;  // of user and password, for the cache of accepted ones
    if (user != nullptr && password != nullptr) {
      if (auto d = content::Digester::New("sha256"); d.ok()) {
        d->Update(std::string_view(user));
        d->Update(std::string_view("\0", 1));
        d->Update(std::string_view(password));
        key = d->Finish();
        std::lock_guard<std::mutex> lock(accepted_mu);
        if (accepted.contains(*key)) ok = true;
      }
    }
    if (!ok && user != nullptr && password != nullptr) {
      // An unknown user costs a bcrypt too (against the first entry), so that the time taken
      // does not tell which users exist.
      auto it = users.find(user);
      const std::string& want = it != users.end() ? it->second : users.begin()->second;
      auto data = std::make_unique<crypt_data>();
      const char* hash = crypt_r(password, want.c_str(), data.get());
      ok = it != users.end() && hash != nullptr && std::strlen(hash) == want.size() &&
           CRYPTO_memcmp(hash, want.data(), want.size()) == 0;
    }
    if (ok && key) {
      std::lock_guard<std::mutex> lock(accepted_mu);
      if (accepted.size() >= kMaxAcceptedCredentials) accepted.clear();
      accepted.insert(*key);
    }
    if (user != nullptr) MHD_free(user);
    if (password != nullptr) MHD_free(password);
    return ok;
  }

  Reply Manifest(const std::string& name, const std::string& ref, const char* ns) {
    std::optional<Digest> want;
    if (auto d = Digest::Parse(ref); d.ok()) {
      want = *d;
    } else if (ref.find(':') != std::string::npos) {
      return ErrorReply(400, "DIGEST_INVALID", "invalid digest", ref);
    } else if (!IsValidTag(ref)) {
      return ErrorReply(400, "TAG_INVALID", "invalid tag", ref);
    } else {
      auto records = view->Records();
      if (!records.ok()) return ErrorReply(500, "UNKNOWN", "cannot read the store's records");
      std::set<Digest> found;
      for (const Descriptor& record : **records) {
        auto r = Reference::Parse(image::NameOf(record));
        if (!r.ok() || r->path() != name || r->tag() != ref) continue;
        if (ns != nullptr && r->domain() != ns) continue;
        Digest top = record.digest;
        for (const char* key : {image::kRepoDigestAnnotation, image::kManifestDigestAnnotation}) {
          auto it = record.annotations.find(key);
          if (it == record.annotations.end()) continue;
          if (auto d = Digest::Parse(it->second); d.ok()) {
            top = *d;
            break;
          }
        }
        found.insert(top);
      }
      if (found.empty()) return ErrorReply(404, "MANIFEST_UNKNOWN", "manifest unknown", ref);
      if (found.size() > 1) {
        return ErrorReply(404, "MANIFEST_UNKNOWN",
                          "ambiguous: images of several registries have this name and tag "
                          "(ask with ?ns=REGISTRY)",
                          ref);
      }
      want = *found.begin();
    }
    auto fd = view->OpenBlob(*want);
    if (!fd.ok()) {
      return fd.status().code() == StatusCode::kNotFound
                 ? ErrorReply(404, "MANIFEST_UNKNOWN", "manifest unknown", ref)
                 : ErrorReply(500, "UNKNOWN", "cannot read the store");
    }
    auto bytes = ReadManifest(fd->get(), *want);
    if (!bytes.ok()) return ErrorReply(404, "MANIFEST_UNKNOWN", "manifest unknown", ref);
    auto decoded = manifest::Decode("", *bytes);
    if (!decoded.ok()) {  // a config or layer: a blob, not a manifest
      return ErrorReply(404, "MANIFEST_UNKNOWN", "manifest unknown", ref);
    }
    Reply r;
    r.body = std::move(*bytes);
    r.headers.emplace_back("Content-Type", decoded->media_type);
    r.headers.emplace_back("Docker-Content-Digest", want->String());
    r.headers.emplace_back("ETag", "\"" + want->String() + "\"");
    return r;
  }

  // The tags of the records of `name` (of registry `ns` when given), sorted. As the
  // distribution spec pages them: with `n`, at most n tags and a Link to the next page when
  // there are more; with `last`, only the tags after it.
  Reply Tags(const std::string& name, const char* ns, const char* n, const char* last) {
    size_t limit = SIZE_MAX;
    if (n != nullptr) {
      std::string_view text(n);
      auto value = text.size() > 6 ? std::nullopt : ParseDigits(text);
      if (!value) {
        return ErrorReply(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested",
                          text);
      }
      limit = *value;
    }
    auto records = view->Records();
    if (!records.ok()) return ErrorReply(500, "UNKNOWN", "cannot read the store's records");
    std::set<std::string> tags;
    for (const Descriptor& record : **records) {
      auto r = Reference::Parse(image::NameOf(record));
      if (!r.ok() || r->path() != name || r->tag().empty()) continue;
      if (ns != nullptr && r->domain() != ns) continue;
      tags.insert(r->tag());
    }
    if (tags.empty()) return ErrorReply(404, "NAME_UNKNOWN", "repository name not known", name);
    std::vector<std::string> page;
    auto it = last != nullptr ? tags.upper_bound(last) : tags.begin();
    for (; it != tags.end() && page.size() < limit; ++it) page.push_back(*it);
    Reply r;
    r.body = nlohmann::json{{"name", name}, {"tags", page}}.dump();
    r.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
    if (it != tags.end() && !page.empty()) {
      // Name, tag and ns (a record's registry) are all of the reference grammar: nothing to
      // escape.
      r.headers.emplace_back("Link", "</v2/" + name + "/tags/list?n=" + std::to_string(limit) +
                                         "&last=" + page.back() +
                                         (ns != nullptr ? "&ns=" + std::string(ns) : "") +
                                         ">; rel=\"next\"");
    }
    return r;
  }

  Reply Blob(const std::string& text, const char* range) {
    auto d = Digest::Parse(text);
    if (!d.ok()) return ErrorReply(400, "DIGEST_INVALID", "invalid digest", text);
    auto fd = view->OpenBlob(*d);
    if (!fd.ok()) {
      return fd.status().code() == StatusCode::kNotFound
                 ? ErrorReply(404, "BLOB_UNKNOWN", "blob unknown to registry", text)
                 : ErrorReply(500, "UNKNOWN", "cannot read the store");
    }
    struct stat st {};
    if (fstat(fd->get(), &st) != 0) return ErrorReply(500, "UNKNOWN", "cannot read the store");
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    Reply r;
    r.headers.emplace_back("Content-Type", "application/octet-stream");
    r.headers.emplace_back("Docker-Content-Digest", d->String());
    r.headers.emplace_back("ETag", "\"" + d->String() + "\"");
    r.headers.emplace_back("Accept-Ranges", "bytes");
    r.fd_length = size;
    if (range != nullptr) {
      auto span = ParseRange(range, size);
      if (!span) {
        Reply bad = ErrorReply(416, "UNSUPPORTED", "range not satisfiable", range);
        bad.headers.emplace_back("Content-Range", "bytes */" + std::to_string(size));
        return bad;
      }
      r.status = 206;
      r.fd_offset = span->first;
      r.fd_length = span->second - span->first + 1;
      r.headers.emplace_back("Content-Range", "bytes " + std::to_string(span->first) + "-" +
                                                  std::to_string(span->second) + "/" +
                                                  std::to_string(size));
    }
    r.fd = std::move(*fd);
    return r;
  }

  // With --tls-client-ca: the client presented a certificate that verifies against it (MHD
  // asks for one, and loads the CA as the session's trust, but leaves the verdict to us).
  bool ClientCertified(MHD_Connection* connection) {
    if (tls_client_ca.empty()) return true;
    const MHD_ConnectionInfo* info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (info == nullptr || info->tls_session == nullptr) return false;
    auto session = static_cast<gnutls_session_t>(info->tls_session);
    unsigned count = 0;
    if (gnutls_certificate_get_peers(session, &count) == nullptr || count == 0) return false;
    unsigned status = 0;
    return gnutls_certificate_verify_peers2(session, &status) == GNUTLS_E_SUCCESS && status == 0;
  }

  Reply Route(MHD_Connection* connection, std::string_view url, std::string_view method) {
    if (!ClientCertified(connection)) {
      return ErrorReply(403, "DENIED",
                        "a client certificate issued by the server's CA is required");
    }
    if (!Authorized(connection)) {
      Reply r = ErrorReply(401, "UNAUTHORIZED", "authentication required");
      r.auth_challenge = true;
      return r;
    }
    if (method != MHD_HTTP_METHOD_GET && method != MHD_HTTP_METHOD_HEAD) {
      Reply r = ErrorReply(405, "UNSUPPORTED", "this registry is read-only", std::string(method));
      r.headers.emplace_back("Allow", "GET, HEAD");
      return r;
    }
    if (url == "/v2/" || url == "/v2") {
      Reply r;
      r.body = "{}";
      r.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
      return r;
    }
    constexpr std::string_view kPrefix = "/v2/";
    if (url.substr(0, kPrefix.size()) != kPrefix) {
      return ErrorReply(404, "UNSUPPORTED", "not a distribution API path");
    }
    std::string_view rest = url.substr(kPrefix.size());
    size_t last = rest.rfind('/');
    size_t kind_at =
        last == std::string_view::npos ? std::string_view::npos : rest.rfind('/', last - 1);
    if (last == std::string_view::npos || kind_at == std::string_view::npos || last == 0) {
      return ErrorReply(404, "UNSUPPORTED", "not a distribution API path");
    }
    std::string name(rest.substr(0, kind_at));
    std::string_view kind = rest.substr(kind_at + 1, last - kind_at - 1);
    std::string ref(rest.substr(last + 1));
    if (kind == "tags" && ref == "list") {
      if (!IsValidName(std::string(rest.substr(0, kind_at)))) {
        return ErrorReply(400, "NAME_INVALID", "invalid repository name");
      }
      auto arg = [&](const char* key) {
        return MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, key);
      };
      return Tags(std::string(rest.substr(0, kind_at)), arg("ns"), arg("n"), arg("last"));
    }
    if (kind != "manifests" && kind != "blobs") {
      return ErrorReply(404, "UNSUPPORTED", "not a distribution API path");
    }
    if (!IsValidName(name)) return ErrorReply(400, "NAME_INVALID", "invalid repository name");
    if (kind == "manifests") {
      return Manifest(name, ref,
                      MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "ns"));
    }
    return Blob(ref, MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Range"));
  }

  void Log(MHD_Connection* connection, const Request& req, MHD_RequestTerminationCode toe) {
    if (log == nullptr) return;
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - req.start);
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    std::string line = std::string(when) + " " + PeerOf(connection) + " " +
                       TerminalSafe(req.method.empty() ? "-" : req.method) + " " +
                       TerminalSafe(req.uri.substr(0, 1024)) + " " + std::to_string(req.status) +
                       " " + std::to_string(req.bytes) + " " +
                       std::to_string(elapsed.count()).substr(0, 8) + "s" +
                       (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted") + "\n";
    std::lock_guard<std::mutex> lock(log_mu);
    std::fputs(line.c_str(), log);
    std::fflush(log);
  }
};

namespace {

void* OnUri(void* cls, const char* uri, MHD_Connection*) {
  (void)cls;
  auto* req = new Request;
  req->uri = uri != nullptr ? uri : "";
  return req;
}

void OnCompleted(void* cls, MHD_Connection* connection, void** con_cls,
                 MHD_RequestTerminationCode toe) {
  auto* state = static_cast<Server::State*>(cls);
  auto* req = static_cast<Request*>(*con_cls);
  if (req == nullptr) return;
  state->Log(connection, *req, toe);
  delete req;
  *con_cls = nullptr;
}

MHD_Result OnRequest(void* cls, MHD_Connection* connection, const char* url, const char* method,
                     const char*, const char*, size_t* upload_data_size, void** con_cls) {
  auto* state = static_cast<Server::State*>(cls);
  auto* req = static_cast<Request*>(*con_cls);
  if (req == nullptr) {  // no URI callback ran (should not happen); keep the bookkeeping anyway
    req = new Request;
    *con_cls = req;
  }
  req->method = method;
  if (req->status != 0) {  // answered already; drop any upload
    *upload_data_size = 0;
    return MHD_YES;
  }
  // A GET or HEAD is answered on the second call, once the whole request is read, so that the
  // connection stays open for the next request; anything else at once (the connection is then
  // closed without reading a body).
  const std::string_view m(method);
  if (!req->seen && (m == MHD_HTTP_METHOD_GET || m == MHD_HTTP_METHOD_HEAD)) {
    req->seen = true;
    return MHD_YES;
  }
  if (*upload_data_size != 0) {  // a GET with a body: drop it
    *upload_data_size = 0;
    return MHD_YES;
  }
  // The path reaches us percent-decoded as a C string: a %00 would cut it short unseen.
  Reply r = ToLower(req->uri).find("%00") != std::string::npos
                ? ErrorReply(400, "UNSUPPORTED", "NUL in the request path")
                : state->Route(connection, url, method);
  const bool head = std::string_view(method) == MHD_HTTP_METHOD_HEAD;
  MHD_Response* response = nullptr;
  if (r.fd.valid()) {
    response = MHD_create_response_from_fd_at_offset64(r.fd_length, r.fd.get(), r.fd_offset);
    if (response != nullptr) r.fd.release();  // the response closes it
    req->bytes = head ? 0 : r.fd_length;
  } else {
    response = MHD_create_response_from_buffer(r.body.size(), r.body.data(), MHD_RESPMEM_MUST_COPY);
    req->bytes = head ? 0 : r.body.size();
  }
  if (response == nullptr) return MHD_NO;
  MHD_add_response_header(response, "Docker-Distribution-API-Version", "registry/2.0");
  for (const auto& [key, value] : r.headers) {
    MHD_add_response_header(response, key.c_str(), value.c_str());
  }
  req->status = r.status;
  MHD_Result ret = r.auth_challenge
                       ? MHD_queue_basic_auth_fail_response(connection, "hoist", response)
                       : MHD_queue_response(connection, r.status, response);
  MHD_destroy_response(response);
  return ret;
}

}  // namespace

Server::Server(std::unique_ptr<State> state) : state_(std::move(state)) {}
Server::~Server() = default;
int Server::port() const { return state_->port; }

namespace {

// A TCP socket bound to `addr` and listening, non-blocking, for the daemon to take over.
Result<UniqueFd> Listen(const sockaddr_storage& addr, const std::string& where) {
  const bool ipv6 = addr.ss_family == AF_INET6;
  UniqueFd fd(socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError(errno, "serve: socket");
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ipv6) setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  const socklen_t len = ipv6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0 ||
      ::listen(fd.get(), SOMAXCONN) != 0) {
    return UnavailableError("serve: cannot listen on " + Quote(where) + ": " +
                            std::strerror(errno));
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<Server>> Server::Bind(ServeOptions options) {
  bool loopback = false, ipv6 = false;
  ASSIGN_OR_RETURN(sockaddr_storage addr, ParseListen(options.listen, &loopback, &ipv6));
  const bool tls = !options.tls_cert.empty() || !options.tls_key.empty();
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return InvalidArgumentError("serve: --tls-cert and --tls-key go together");
  }
  if (!loopback && options.htpasswd.empty() && options.tls_client_ca.empty() &&
      !options.allow_anonymous_remote) {
    return InvalidArgumentError(
        "serve: refusing to serve the store beyond this host without --htpasswd or "
        "--tls-client-ca "
        "(or give --anonymous to serve it to anyone who can reach " +
        Quote(options.listen) + ")");
  }
  auto state = std::make_unique<State>();
  if (!options.htpasswd.empty()) {
    ASSIGN_OR_RETURN(state->users, ReadHtpasswd(options.htpasswd));
  }
  if (tls) {
    if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
      return FailedPreconditionError("serve: this libmicrohttpd was built without TLS");
    }
    ASSIGN_OR_RETURN(state->tls_cert, ReadSmallFile(options.tls_cert, kMaxPemBytes, "TLS cert"));
    ASSIGN_OR_RETURN(state->tls_key, ReadSmallFile(options.tls_key, kMaxPemBytes, "TLS key"));
  }
  if (!options.tls_client_ca.empty()) {
    if (!tls) return InvalidArgumentError("serve: --tls-client-ca needs --tls-cert and --tls-key");
    ASSIGN_OR_RETURN(state->tls_client_ca,
                     ReadSmallFile(options.tls_client_ca, kMaxPemBytes, "TLS client CA"));
  }
  if (options.access_log == "-") {
    state->log = stderr;
  } else if (!options.access_log.empty()) {
    int fd = open(options.access_log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return ErrnoError(errno, "serve: access log " + Quote(options.access_log));
    state->log = fdopen(fd, "a");
    if (state->log == nullptr) {
      close(fd);
      return ErrnoError(errno, "serve: access log " + Quote(options.access_log));
    }
    state->close_log = true;
  }
  ASSIGN_OR_RETURN(state->listen_fd, Listen(addr, options.listen));
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof bound;
  if (getsockname(state->listen_fd.get(), reinterpret_cast<sockaddr*>(&bound), &bound_len) == 0) {
    state->port = ntohs(ipv6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                             : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  state->options = std::move(options);
  return std::unique_ptr<Server>(new Server(std::move(state)));
}

Status Server::Start(StoreView& view) {
  State* state = state_.get();
  if (state->daemon != nullptr || !state->listen_fd.valid()) {
    return FailedPreconditionError("serve: started already");
  }
  state->view = &view;
  const ServeOptions& options = state->options;
  const bool tls = !state->tls_cert.empty();
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
  if (tls) flags |= MHD_USE_TLS;
  std::vector<MHD_OptionItem> items = {
      {MHD_OPTION_LISTEN_SOCKET, state->listen_fd.get(), nullptr},
      {MHD_OPTION_THREAD_POOL_SIZE, static_cast<intptr_t>(std::max(1u, options.threads)), nullptr},
      {MHD_OPTION_CONNECTION_LIMIT, static_cast<intptr_t>(options.max_connections), nullptr},
      {MHD_OPTION_PER_IP_CONNECTION_LIMIT, static_cast<intptr_t>(options.max_connections_per_ip),
       nullptr},
      {MHD_OPTION_CONNECTION_TIMEOUT, static_cast<intptr_t>(options.timeout_seconds), nullptr},
      {MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<intptr_t>(options.header_memory), nullptr},
      {MHD_OPTION_URI_LOG_CALLBACK, reinterpret_cast<intptr_t>(&OnUri), state},
      {MHD_OPTION_NOTIFY_COMPLETED, reinterpret_cast<intptr_t>(&OnCompleted), state},
  };
  if (tls) {
    items.push_back({MHD_OPTION_HTTPS_MEM_CERT, 0, state->tls_cert.data()});
    items.push_back({MHD_OPTION_HTTPS_MEM_KEY, 0, state->tls_key.data()});
    if (!state->tls_client_ca.empty()) {
      items.push_back({MHD_OPTION_HTTPS_MEM_TRUST, 0, state->tls_client_ca.data()});
    }
  }
  items.push_back({MHD_OPTION_END, 0, nullptr});
  state->daemon = MHD_start_daemon(flags, 0, nullptr, nullptr, &OnRequest, state, MHD_OPTION_ARRAY,
                                   items.data(), MHD_OPTION_END);
  if (state->daemon == nullptr) {
    return UnavailableError("serve: cannot serve on " + Quote(options.listen) +
                            " (a bad TLS cert or key?)");
  }
  state->listen_fd.release();  // the daemon closes it when it stops
  return OkStatus();
}

Result<std::unique_ptr<Server>> Server::Start(const content::Store& store, ServeOptions options) {
  ASSIGN_OR_RETURN(std::unique_ptr<Server> server, Bind(std::move(options)));
  server->state_->own_view = OpenStoreView(store);
  RETURN_IF_ERROR(server->Start(*server->state_->own_view));
  return server;
}

}  // namespace hoist::serve
