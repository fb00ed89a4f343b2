// TestRegistry: the real CNCF distribution registry (Debian's /usr/bin/docker-registry, 2.8)
// started as a child process on 127.0.0.1:<free port>, with filesystem storage and optional
// htpasswd or token auth, or as a pull-through cache. Test-only.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "hoist/digest.h"
#include "hoist/status.h"
#include "support/process.h"

namespace hoist::testing {

struct RegistryOptions {
  enum class Auth { kNone, kHtpasswd, kToken } auth = Auth::kNone;
  std::string user, password;  // kHtpasswd: the one account (bcrypt, via `htpasswd -Bbn`)
  // kToken: the token server's realm URL, service, issuer and signing-certificate bundle.
  std::string token_realm, token_service, token_issuer, token_cert_path;
  // Empty: a fresh temp dir, removed with the registry. Otherwise this directory is used and
  // kept, so one registry can serve what another pushed.
  std::string storage_dir;
  // Non-empty: run as a pull-through cache of this registry URL ("http://127.0.0.1:PORT").
  std::string proxy_remote_url;
};

class TestRegistry {
 public:
  // Starts the registry and waits (≤ 15 s) until GET /v2/ answers 200 or 401. Retries on a
  // port lost to a race a few times. FailedPrecondition if the binary is missing.
  static Result<std::unique_ptr<TestRegistry>> Start(RegistryOptions opts = {});
  // True if /usr/bin/docker-registry exists and is executable.
  static bool Available();
  static constexpr char kBinary[] = "/usr/bin/docker-registry";

  ~TestRegistry();  // SIGTERM, up to 5 s, SIGKILL, reap; removes its temp dirs

  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string url() const { return "http://" + host(); }
  int port() const { return port_; }
  std::string storage_dir() const { return storage_dir_; }
  const RegistryOptions& options() const { return opts_; }
  // The registry's stdout and stderr so far.
  std::string log() const;
  // How many requests the registry's access log shows with this exact method and a request
  // URI containing `path_part`. First waits (≤ 2 s) until a marker request of its own shows
  // up in the log, so every request answered before the call is counted.
  int CountRequests(std::string_view method, std::string_view path_part) const;
  // The blob's data file in the storage dir, for tests that corrupt or delete it:
  // <storage>/docker/registry/v2/blobs/<alg>/<hex[0:2]>/<hex>/data.
  std::string BlobDataPath(const Digest& d) const;

 private:
  TestRegistry(RegistryOptions opts, TempDir dir) : opts_(std::move(opts)), dir_(std::move(dir)) {}
  Status WriteConfig();
  Status Launch();

  RegistryOptions opts_;
  TempDir dir_;  // config, htpasswd, log; and storage when not given
  std::string storage_dir_;
  std::string log_path_;
  int port_ = 0;
  std::optional<ChildProcess> child_;
  mutable std::atomic<int> markers_{0};
};

}  // namespace hoist::testing
