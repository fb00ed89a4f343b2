// Internal to libhoist: the state behind hoist::Client, shared by the files
// that implement its methods (client.cc: open, pull, images, inspect;
// client_rootfs.cc: unpack, mount; client_registry.cc: login, logout, config;
// client_lifecycle.cc: rmi, gc, verify, df; client_transport.cc: load, save, copy, push).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/credentials.h"
#include "config/endpoint.h"
#include "config/registries_conf.h"
#include "content/store.h"
#include "hoist/client.h"
#include "hoist/reference.h"
#include "manifest/manifest.h"
#include "registry/auth.h"
#include "registry/fetcher.h"
#include "registry/registry.h"
#include "transport/registry.h"
#include "transport/transport.h"

namespace hoist {

struct Client::Impl {
  ClientOptions options;
  std::unique_ptr<content::Store> store;
  config::RegistriesConf registries_conf;
  config::TlsPolicy tls;
  std::unique_ptr<config::DockerCredentials> docker_credentials;   // login, logout, describe
  std::unique_ptr<registry::CredentialSource> static_credentials;  // --creds, when given
  std::unique_ptr<registry::Authorizer> authorizer;
  std::mutex mu;
  // by name|host|credential source
  std::map<std::string, std::unique_ptr<registry::Registry>> registries;

  // The credentials one endpoint of a pull gets (config::CredentialsForRoute): --creds for
  // the reference's own registry only, the configured ones of its own host for a mirror.
  registry::CredentialSource* CredentialsFor(const config::RegistriesConf::Route& route) const {
    return config::CredentialsForRoute(route, static_credentials.get(), docker_credentials.get());
  }
  // The Registry for a route, created once per client (it remembers http vs https) for each
  // registry name, host and credential source.
  Result<registry::Registry*> RegistryFor(const config::RegistriesConf::Route& route);

  // The repositories to try for `ref`, in order (mirrors first), per
  // registries.conf.
  struct Source {
    std::unique_ptr<registry::Repository> repo;
    std::string describe;  // "mirror 127.0.0.1:5001" / "127.0.0.1:5000"
  };
  Result<std::vector<Source>> SourcesFor(const Reference& ref);

  Result<Image> Pull(const Reference& ref, const PullOptions& options);
  // One source's pull, sequencing the stages: resolve (pull::Resolver), the config and the
  // layers in parallel (pull::BlobFetcher under pull::Claims), the image record. Every request
  // goes through one registry::Fetcher (retries, Range resume); manifest retries are told to
  // options.notice, blob retries to the progress.
  // *remote_failure: whether it failed because of the registry or the network (what passes a
  // mirror over), not a local fault. `last_source`: false for a mirror with another source
  // after it, which gets one retry per request at most before it is passed over.
  Result<Image> PullFrom(const Reference& ref, registry::Repository& repo,
                         const PullOptions& options, bool last_source, bool* remote_failure);
  // The retry policy of this client's options (see PullFrom for `last_source`).
  registry::RetryPolicy RetryPolicyOf(bool last_source) const;
  Status ApplyLayers(const Image& image, int root_fd, bool from_blobs);

  // The signature policy (client_trust.cc): OK when `ref`, whose image manifest pulled is
  // `manifest` (in the store), satisfies the policy in force. Signatures are fetched (from the
  // registries.d lookaside without credentials, and `repo`'s sigstore attachments) only when a
  // requirement needs them; otherwise nothing is requested or read.
  // `manifest_bytes`: the manifest's bytes when they are not in the store (null: read there).
  // The policy for a pull of `ref` that resolved to `top` and pulls the image manifest
  // `image`: `image` passes, or (when top is an index) the index passes.
  Status CheckTrust(registry::HttpClient& http, registry::Repository& repo, const Reference& ref,
                    const Digest& top, const Digest& image);
  Status CheckSignaturePolicy(registry::HttpClient& http, registry::Repository& repo,
                              const Reference& ref, const Digest& manifest,
                              const std::string* manifest_bytes = nullptr);
  // `source` (a docker:// image, `ref` in `repo`) with the policy checked for every image
  // manifest it gives (the top one, or each instance of an index that is read), before the
  // manifest is returned and so before any blob of it is read. Indexes are not checked, as in
  // a pull.
  std::unique_ptr<transport::ImageSource> WithSignaturePolicy(
      std::unique_ptr<transport::ImageSource> source, const Reference& ref,
      std::unique_ptr<registry::Repository> repo);

  // The transports (client_transport.cc): a source or destination for a parsed location, one
  // case per Location::Kind. A store destination extracts layers with this client's limits and
  // reports them to `progress`; the caller holds gc's lock (store->LockAgainstGc()) while it
  // uses either.
  Result<std::unique_ptr<transport::ImageSource>> OpenSource(const transport::Location& location);
  Result<std::unique_ptr<transport::ImageDestination>> OpenDestination(
      const transport::Location& location, const CopyOptions& options = {});
  // The path of a private directory for spooling archives (ingest/), created if missing.
  Result<std::string> SpoolDir();
  // For a docker:// location: *ref parsed, and the registry's own repository (never a mirror)
  // with this client's retry policy and limits.
  Result<std::pair<std::unique_ptr<registry::Repository>, transport::RegistryTransportOptions>>
  RegistryTransport(const transport::Location& location, Reference* ref,
                    const std::atomic<bool>* cancel = nullptr,
                    const std::function<void(const std::string&)>& notice = nullptr);
};

}  // namespace hoist
