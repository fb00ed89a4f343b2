// TokenServer: a Docker registry token-auth server (the distribution token spec) on 127.0.0.1,
// built on FixtureServer and OpenSSL. It signs RS256 JWTs with a fresh RSA-2048 key whose
// self-signed certificate travels in the JWT header (`x5c`) and is written to cert_path() for
// the registry's `rootcertbundle`. Test-only.
//
//   GET /token?service=S&scope=repository:NAME:pull[,push]&scope=...   [Basic user:pass]
//   → 200 {"token": JWT, "access_token": JWT, "expires_in": N, "issued_at": RFC 3339}
//   → 401 when Basic credentials are given and wrong; 400 when `service` names another service.
//
//   POST /token   (OAuth2, application/x-www-form-urlencoded: what docker sends for identity
//                  tokens) grant_type=refresh_token&refresh_token=R&service=S&scope=...
//                  &client_id=C, or grant_type=password&username=U&password=P&...
//   → 200 {"access_token": JWT, "expires_in": N, "issued_at": RFC 3339, "scope": "..."}
//   → 401 for an unknown refresh token or wrong password; 400 for another grant type.
//
// Grants: an authenticated user gets every requested action on every requested repository;
// anonymous callers get `pull` on public repositories only, and otherwise an empty access list.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "hoist/status.h"
#include "support/http_server.h"
#include "support/process.h"

namespace hoist::testing {

struct TokenOptions {
  std::string service = "hoist-test-registry";
  std::string issuer = "hoist-test-issuer";
  std::map<std::string, std::string> users;  // user → password
  std::set<std::string> public_repos;        // anonymous callers may pull these
  int expires_in = 300;                      // seconds
  // Refresh tokens (docker's identity tokens) accepted by POST /token: token → user.
  std::map<std::string, std::string> refresh_tokens;
  // Seconds taken off the JWT's `exp` claim (expires_in is unchanged). distribution accepts a
  // token until 60 s after its exp claim; a skew of 60 makes the registry refuse it as soon as
  // expires_in has passed.
  int exp_claim_skew = 0;
  // The host name written in realm() ("127.0.0.1" by default). The server listens on
  // 127.0.0.1 whatever this says, so the name must lead there: "localhost" makes the realm
  // "another host" than a registry addressed as 127.0.0.1.
  std::string realm_host = "127.0.0.1";
};

class TokenServer {
 public:
  static Result<std::unique_ptr<TokenServer>> Start(TokenOptions options);
  ~TokenServer();

  std::string realm() const {
    return "http://" + options_.realm_host + ":" + std::to_string(server_->port()) + "/token";
  }
  std::string cert_path() const { return dir_.path() + "/token-signer.pem"; }
  const TokenOptions& options() const { return options_; }
  std::vector<HttpRequest> requests() const { return server_->requests(); }
  // The number of tokens issued so far (successful /token answers).
  int tokens_issued() const;

  struct Signer;  // key and certificate; defined in token_server.cc

 private:
  TokenServer(TokenOptions options, TempDir dir);
  HttpResponse Handle(const HttpRequest& req);
  // Answers for `subject` ("" = anonymous) with the scopes and service of `params`.
  HttpResponse Issue(const std::string& subject,
                     const std::vector<std::pair<std::string, std::string>>& params, bool oauth);

  TokenOptions options_;
  TempDir dir_;
  std::unique_ptr<Signer> signer_;
  std::atomic<int> tokens_issued_{0};
  std::unique_ptr<FixtureServer> server_;  // last: stops before the rest is destroyed
};

// Pieces of the implementation exposed for the harness's own tests.
namespace token_internal {
// Decodes application/x-www-form-urlencoded text ('+' is a space); false on a bad escape.
bool FormDecode(std::string_view in, std::string* out);
// Base64url without padding.
std::string Base64Url(std::string_view bytes);
}  // namespace token_internal

}  // namespace hoist::testing
