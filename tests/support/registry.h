// TestRegistry: the real CNCF distribution registry (Debian's /usr/bin/docker-registry, 2.8)
// started as a child process on 127.0.0.1:<free port> (or another local address), with
// filesystem storage, optional htpasswd or token auth, optional TLS (and client certificates),
// or as a pull-through cache. The child gets none of this process's REGISTRY_* variables
// (the registry would read them as configuration). Test-only.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
  // With proxy_remote_url: the account used at the remote registry (proxy.username/password).
  std::string proxy_username, proxy_password;

  // The local address to listen on (any address of this machine; "127.0.0.1" by default).
  std::string listen_address = "127.0.0.1";
  // Non-empty: serve https with this PEM certificate and key (http.tls); url() is then https.
  std::string tls_cert_path, tls_key_path;
  // Non-empty (with TLS): require client certificates issued by this PEM CA
  // (http.tls.clientcas). The harness's own requests (the readiness probe, CountRequests)
  // then present tls_probe_cert_path/tls_probe_key_path, which must be given.
  std::string tls_client_ca_path;
  std::string tls_probe_cert_path, tls_probe_key_path;
  // Regular expressions a layer's `urls` must match for a manifest to be accepted
  // (validation.manifests.urls.allow). Empty: the registry refuses manifests with urls.
  std::vector<std::string> manifest_urls_allow;
};

class TestRegistry {
 public:
  // Starts the registry and waits (≤ 15 s) until GET /v2/ answers 200 or 401 (over TLS
  // without verifying the server: the probe checks readiness, not the certificate). Retries on a
  // port lost to a race a few times. FailedPrecondition if the binary is missing.
  static Result<std::unique_ptr<TestRegistry>> Start(RegistryOptions opts = {});
  // True if /usr/bin/docker-registry exists and is executable.
  static bool Available();
  static constexpr char kBinary[] = "/usr/bin/docker-registry";

  ~TestRegistry();  // SIGTERM, up to 5 s, SIGKILL, reap; removes its temp dirs

  // listen_address:port ("127.0.0.1:5000"; an IPv6 address in brackets).
  std::string host() const;
  std::string url() const { return (tls() ? "https://" : "http://") + host(); }
  bool tls() const { return !opts_.tls_cert_path.empty(); }
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
  // GET url() + path as the harness itself (TLS unverified, probe client pair); the status.
  Result<int> Probe(const std::string& path) const;

  RegistryOptions opts_;
  TempDir dir_;  // config, htpasswd, log; and storage when not given
  std::string storage_dir_;
  std::string log_path_;
  int port_ = 0;
  std::optional<ChildProcess> child_;
  mutable std::atomic<int> markers_{0};
};

}  // namespace hoist::testing
