// TokenServer: a Docker registry token-auth server (the distribution token spec) on 127.0.0.1,
// built on FixtureServer and OpenSSL. It signs RS256 JWTs with a fresh RSA-2048 key whose
// self-signed certificate travels in the JWT header (`x5c`) and is written to cert_path() for
// the registry's `rootcertbundle`. Test-only.
//
//   GET /token?service=S&scope=repository:NAME:pull[,push]&scope=...   [Basic user:pass]
//   → 200 {"token": JWT, "access_token": JWT, "expires_in": N, "issued_at": RFC 3339}
//   → 401 when Basic credentials are given and wrong; 400 when `service` names another service.
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
};

class TokenServer {
 public:
  static Result<std::unique_ptr<TokenServer>> Start(TokenOptions options);
  ~TokenServer();

  std::string realm() const { return server_->url() + "/token"; }
  std::string cert_path() const { return dir_.path() + "/token-signer.pem"; }
  const TokenOptions& options() const { return options_; }
  std::vector<HttpRequest> requests() const { return server_->requests(); }
  // The number of tokens issued so far (successful /token answers).
  int tokens_issued() const;

  struct Signer;  // key and certificate; defined in token_server.cc

 private:
  TokenServer(TokenOptions options, TempDir dir);
  HttpResponse Handle(const HttpRequest& req);

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
