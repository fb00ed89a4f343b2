// Registry authentication: WWW-Authenticate challenge parsing, credential sources, and the
// Authorizer that answers 401s with basic credentials or bearer tokens (cached per registry
// host and scope until they expire).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hoist/status.h"
#include "registry/http.h"

namespace hoist::registry {

struct Challenge {
  std::string scheme;                         // lowercase: "bearer", "basic", "negotiate"
  std::string token68;                        // "abc==" of "Negotiate abc=="; "" with params
  std::map<std::string, std::string> params;  // lowercase names: realm, service, scope, error
};

// Parses one or more challenges from WWW-Authenticate header values (RFC 7235: several
// challenges in one value, a token68 or auth-params after each scheme, quoted strings with
// escapes, several header lines). Malformed parts are skipped up to the next comma, so a
// challenge hoist does not use never hides one it does ("Negotiate abc==, Bearer realm=...").
std::vector<Challenge> ParseChallenges(const std::vector<std::string>& header_values);

struct Credential {
  std::string username;
  std::string password;
  std::string identity_token;  // OAuth2 refresh token (docker's "identitytoken")
};

// Where credentials come from (the --creds flag now; docker config.json, credential helpers
// and auth.json plug in here). Implementations must be thread-safe.
class CredentialSource {
 public:
  virtual ~CredentialSource() = default;
  // Credentials for a registry named as in references ("docker.io", "127.0.0.1:5000"); nullopt
  // when there are none (anonymous).
  virtual Result<std::optional<Credential>> Lookup(const std::string& registry) = 0;
};

// The same credential for whichever registry is asked about (a `--creds user:pass` flag).
class StaticCredentials : public CredentialSource {
 public:
  explicit StaticCredentials(std::optional<Credential> credential)
      : credential_(std::move(credential)) {}
  // "user:password" (the password may contain ':'); empty text means none.
  static Result<std::optional<Credential>> ParseUserPassword(std::string_view text);
  Result<std::optional<Credential>> Lookup(const std::string&) override { return credential_; }

 private:
  std::optional<Credential> credential_;
};

// How a registry's token realm is reached over TLS.
struct RealmTls {
  bool registry_insecure = false;  // the registry skips verification (loopback, configured)
  TlsSettings tls;
};

// Answers 401s. Thread-safe; one per client, shared by all registries. Holds no credentials
// itself: each call names the source that applies to the registry it answers for.
class Authorizer {
 public:
  Authorizer() = default;

  // The Authorization header ("Authorization: Bearer …") to send to `host` (host:port the
  // request goes to) for `scope` on behalf of `credentials`, or "" when nothing is known yet.
  // `scope` may hold several scopes separated by spaces (a token is asked for all of them).
  // What was obtained with one source's credentials is never sent on behalf of another, even
  // to the same host (a mirror gets nothing of --creds).
  std::string HeaderFor(const std::string& host, const CredentialSource& credentials,
                        const std::string& scope);

  // Called with a 401 response from `host` (serving `registry`). Reads its challenges and
  // obtains what the next HeaderFor needs: a bearer token from the realm, or basic
  // credentials, both from `credentials`' entry for `registry` (and nothing else). A Bearer
  // challenge is preferred, then Basic; other schemes are passed over. Unauthenticated when
  // no challenge can be met (no credentials for a basic challenge, the token server refuses,
  // ...). The realm is reached with the registry's TLS material (its private CA usually signs
  // both), verified unless the realm is on the host of a registry configured as insecure.
  Status OnUnauthorized(const std::string& registry, CredentialSource& credentials,
                        const std::string& host, const RealmTls& tls, const std::string& scope,
                        const HttpResponse& response, HttpClient& http);

 private:
  struct Token {
    std::string value;
    std::chrono::steady_clock::time_point expires;
  };
  Result<Token> FetchToken(const std::string& registry, CredentialSource& credentials,
                           const std::string& host, const RealmTls& tls, const std::string& scope,
                           const Challenge& challenge, HttpClient& http);

  std::mutex mu_;
  // Keyed by host and the credential source they were obtained with.
  using Key = std::pair<std::string, const CredentialSource*>;
  std::map<Key, std::string> basic_;                     // → header
  std::map<std::pair<Key, std::string>, Token> tokens_;  // (key, scope) → token
};

// Host part of an URL's authority without the port ("127.0.0.1" for "http://127.0.0.1:5000/x");
// "" when the URL cannot be parsed.
std::string UrlHostname(const std::string& url);
// "host:port" as written in the URL, "" when it cannot be parsed.
std::string UrlAuthority(const std::string& url);
// True for localhost, 127.0.0.0/8 and ::1 (with or without a port, IPv6 in brackets).
bool IsLoopbackHost(std::string_view host_port);

}  // namespace hoist::registry
