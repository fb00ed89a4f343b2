#include "trust/lookaside.h"

#include "base/status_macros.h"
#include "base/strings.h"
#include "config/user_files.h"
#include "registry/registry.h"
#include "trust/registries_d.h"

namespace hoist::trust {

namespace {

constexpr int kMaxRedirects = 5;

// One signature; nullopt when there is none at `url`.
Result<std::optional<std::string>> FetchOne(registry::HttpClient& http, const std::string& url) {
  if (url.starts_with("file://")) {
    auto text = config::ReadUserFile(url.substr(7), kMaxSignatureBytes);
    if (text.status().code() == StatusCode::kNotFound) return std::optional<std::string>();
    if (!text.ok()) return text.status().WithContext("signature " + Quote(url));
    return std::optional<std::string>(std::move(*text));
  }
  std::string at = url;
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    registry::HttpRequest req;
    req.url = at;
    req.max_body = kMaxSignatureBytes;
    auto r = http.Do(req);
    if (!r.ok()) return r.status().WithContext("signature " + Quote(at));
    if (r->status == 404) return std::optional<std::string>();
    if (r->status == 200) return std::optional<std::string>(std::move(r->body));
    if (r->status == 301 || r->status == 302 || r->status == 303 || r->status == 307 ||
        r->status == 308) {
      at = r->Header("location");
      if (!at.starts_with("http://") && !at.starts_with("https://")) {
        return UnavailableError("signature " + Quote(url) + ": redirect to " + Quote(at) +
                                ", not an absolute http(s) URL");
      }
      continue;
    }
    return registry::StatusFromResponse(*r).WithContext("signature " + Quote(at));
  }
  return UnavailableError("signature " + Quote(url) + ": more than 5 redirects");
}

}  // namespace

Result<std::vector<std::string>> FetchLookasideSignatures(registry::HttpClient& http,
                                                          const std::string& base,
                                                          const Reference& ref,
                                                          const Digest& digest) {
  std::vector<std::string> out;
  for (int i = 1; i <= kMaxSignatures; ++i) {
    ASSIGN_OR_RETURN(std::optional<std::string> sig,
                     FetchOne(http, LookasideUrl(base, ref, digest, i)));
    if (!sig) break;
    out.push_back(std::move(*sig));
  }
  return out;
}

}  // namespace hoist::trust
