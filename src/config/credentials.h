// Registry credentials where docker and podman keep them: docker's config.json (its
// `credHelpers`, `credsStore` and `auths`) and podman's auth.json files, including the
// external credential helpers ("docker-credential-<name>") they name.
//
// Lookup order: the auth.json files (podman's order), then docker's config.json; the first
// file that yields a credential for the registry wins. Within one file `credHelpers[registry]`
// beats `credsStore`, which beats `auths`. `hoist login`/`logout` (Store/Erase) change
// docker's config.json only, the way `docker login`/`docker logout` do.
//
// No secret ever appears in an error message or in Describe's text.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/registries_conf.h"
#include "hoist/status.h"
#include "registry/auth.h"

namespace hoist::config {

// Where to look for credentials.
struct CredentialFiles {
  // docker's config.json. Default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
  std::string docker_config;
  // podman's auth.json files, consulted in order before docker_config. Default:
  // $REGISTRY_AUTH_FILE alone when it is set; otherwise ${XDG_RUNTIME_DIR}/containers/auth.json
  // (when XDG_RUNTIME_DIR is set) and ${XDG_CONFIG_HOME:-~/.config}/containers/auth.json.
  std::vector<std::string> auth_files;

  // The defaults above, from the environment.
  static CredentialFiles Default();
};

// Reads (and for login/logout, writes) credentials the way docker and podman do.
// Implements registry::CredentialSource. Files are read on every call (nothing is cached), so
// a login by another process is seen at once. Thread-safe, except set_helper_timeout, which
// is called before the object is shared.
class DockerCredentials : public registry::CredentialSource {
 public:
  explicit DockerCredentials(CredentialFiles files);

  // How long a credential helper may run before it is killed (default 30 s).
  void set_helper_timeout(std::chrono::milliseconds timeout) { helper_timeout_ = timeout; }

  // registry: as references name it ("docker.io", "ghcr.io", "127.0.0.1:5000").
  // nullopt when no file has a credential for it, or its helper says it has none
  // ("credentials not found in native keychain"). Errors: a malformed file (naming it), a
  // helper that is missing from PATH, fails or overruns its time (naming the helper).
  Result<std::optional<registry::Credential>> Lookup(const std::string& registry) override;

  // Where the credential for `registry` comes from, never the secret:
  // "credential helper docker-credential-pass", "auths in /root/.docker/config.json", "none".
  // Helpers are named, not run. A file that cannot be read is described as
  // "error: <why>".
  std::string Describe(const std::string& registry);

  // `hoist login`: stores `c` (username/password, or an identity token) for `registry` in
  // docker's config.json. When a credHelpers entry or credsStore applies, through
  // `docker-credential-<name> store`; otherwise in `auths` under the registry's server URL
  // (ServerUrl) as base64 "user:password", replacing any entry that names the same registry,
  // keeping every other key and entry of the file. The file is written atomically (temporary
  // file + rename, through a symlink to its target) with mode 0600; its directory is
  // created (0700) when missing. A malformed existing file is an error and is left alone.
  Status Store(const std::string& registry, const registry::Credential& c);

  // `hoist logout`: removes the credential for `registry` from docker's config.json (helper
  // `erase`, or every `auths` entry naming the registry). NotFound when there is none.
  Status Erase(const std::string& registry);

  // The key docker uses for `registry` in `auths` and the server URL it gives helpers:
  // "https://index.docker.io/v1/" for Docker Hub, else the host[:port] itself.
  static std::string ServerUrl(const std::string& registry);

  // The registry a config key or registry name designates: scheme and path dropped,
  // lowercased, Docker Hub's aliases ("https://index.docker.io/v1/", "index.docker.io",
  // "registry-1.docker.io", "registry.hub.docker.com") turned into "docker.io".
  // With podman_rules (podman's auth.json rules), a key without scheme that has a path
  // ("quay.io/org") names a namespace, not a registry, and gives "".
  static std::string RegistryOfKey(std::string_view key, bool podman_rules = false);

 private:
  CredentialFiles files_;
  std::chrono::milliseconds helper_timeout_{30000};
  std::mutex write_mu_;  // serializes Store/Erase within this process
};

// The credential source for one endpoint of a pull; its credentials are looked up under
// route.registry, the registry that endpoint contacts. `given` (--creds or HOIST_CREDS; null
// when absent) is the reference's own registry's: it goes to the route that is not a mirror,
// which is where the reference lives (after a [[registry]] location rewrite), and nowhere
// else. Mirrors, and every route when nothing is given, get `files`: each the credentials
// configured for its own host, and nothing else.
registry::CredentialSource* CredentialsForRoute(const RegistriesConf::Route& route,
                                                registry::CredentialSource* given,
                                                registry::CredentialSource* files);

}  // namespace hoist::config
