// Internal to libhoist: the state behind hoist::Client, shared by the files
// that implement its methods (client.cc: open, pull, images, inspect;
// client_rootfs.cc: unpack, mount; client_registry.cc: login, logout, config;
// client_lifecycle.cc: rmi, gc, verify, df).
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

namespace hoist {
namespace unpack {
class ImageBudget;
}  // namespace unpack

// Index annotation recording what the reference resolved to when that differs
// from the image manifest (a multi-platform index).
constexpr char kRepoDigestAnnotation[] = "io.hoist.repo.digest";
// Index annotation naming the registry's own manifest when the record points to
// a rendition of it (the OCI form of a Docker schema2 manifest).
constexpr char kManifestDigestAnnotation[] = "io.hoist.manifest.digest";

// The name an image is recorded under: name:tag, or name@digest when pulled by
// digest.
inline std::string RecordName(const Reference& ref) {
  return ref.digest() ? ref.Name() + "@" + ref.digest()->String() : ref.Name() + ":" + ref.tag();
}

// Serializes progress callbacks coming from several workers.
class Progress {
 public:
  explicit Progress(const ProgressCallback& cb) : cb_(cb) {}
  bool enabled() const { return static_cast<bool>(cb_); }
  void Report(const Descriptor& d, ProgressState state, int64_t current = 0,
              std::string message = "") {
    if (!cb_) return;
    std::lock_guard<std::mutex> lock(mu_);
    cb_(ProgressEvent{d, state, current, d.size, std::move(message)});
  }

 private:
  const ProgressCallback& cb_;
  std::mutex mu_;
};

// One blob's byte count, passed on to the Progress as data flows (download or extraction) but
// at most once every kInterval unless kStep bytes came since the last report, so that a fast
// pull is not slowed by its own progress (Update costs a clock read when it reports nothing),
// and a count shown during a stall lags by less than kStep. Used by one thread at a time (one
// per blob and stage); the reports go through Progress, which serializes them.
class ByteProgress {
 public:
  static constexpr std::chrono::milliseconds kInterval{50};
  static constexpr int64_t kStep = 1 << 20;
  ByteProgress(Progress& progress, const Descriptor& d, ProgressState state)
      : progress_(progress), d_(d), state_(state), last_(std::chrono::steady_clock::now()) {}
  // `current` bytes so far: reported when the count moved and kInterval has passed or kStep
  // bytes came since the last report; always when `force` (the final count).
  void Update(int64_t current, bool force = false) {
    if (current == reported_ || !progress_.enabled()) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < kInterval && current - reported_ < kStep) return;
    last_ = now;
    reported_ = current;
    progress_.Report(d_, state_, current);
  }

 private:
  Progress& progress_;
  const Descriptor& d_;
  const ProgressState state_;
  std::chrono::steady_clock::time_point last_;
  int64_t reported_ = 0;
};

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
  // One source's pull. Every request goes through one registry::Fetcher (retries, Range
  // resume); manifest retries are told to options.notice, blob retries to the progress.
  // *remote_failure: whether it failed because of the registry or the network (what passes a
  // mirror over), not a local fault. `last_source`: false for a mirror with another source
  // after it, which gets one retry per request at most before it is passed over.
  Result<Image> PullFrom(const Reference& ref, registry::Repository& repo,
                         const PullOptions& options, bool last_source, bool* remote_failure);
  // The retry policy of this client's options (see PullFrom for `last_source`).
  registry::RetryPolicy RetryPolicyOf(bool last_source) const;
  // Streams a blob's bytes from one source into a sink, through the fetcher: the sink is told
  // when the source restarts from zero, and otherwise continues across retries.
  using Fetch = registry::Fetcher::SourceFetch;
  // Gets blob `d` by calling `attempt` once per source in turn until one succeeds: a foreign
  // layer's `urls` (when the options allow them), then the registry. `attempt` must start
  // from nothing each time (new writer, new staging: every digest recomputed from byte zero),
  // call the Fetch with its sink, and verify what came; a failed attempt at a URL falls back
  // to the next source. `progress` (optional) gets the retry lines.
  Status Download(registry::Repository& repo, registry::HttpClient& http,
                  registry::Fetcher& fetcher, const Descriptor& d, Progress* progress,
                  const std::function<Status(const Fetch&)>& attempt);
  // The manifest with this digest, decoded: from the store, or fetched, verified and stored
  // first (then *downloaded is set). *bytes: the document as stored.
  Result<manifest::Decoded> FetchManifest(registry::Repository& repo, registry::HttpClient& http,
                                          registry::Fetcher& fetcher,
                                          const registry::RetryNotice& notice, const Digest& digest,
                                          std::string* bytes, bool* downloaded);
  // `report_states`: whether `progress` hears of the blob's states (not for the config, as in
  // docker); its retries are reported either way.
  Status FetchBlob(registry::Repository& repo, registry::HttpClient& http,
                   registry::Fetcher& fetcher, const Descriptor& d, Progress& progress,
                   bool report_states, bool* downloaded);
  // `notice`: told about device nodes the layer holds that could not be created. `budget`:
  // the image-wide cap the pull's layers share.
  Status FetchLayer(registry::Repository& repo, registry::HttpClient& http,
                    registry::Fetcher& fetcher, const Descriptor& d, const Digest& diff_id,
                    Progress& progress, bool* downloaded,
                    const std::function<void(const std::string&)>& notice,
                    unpack::ImageBudget* budget);
  Result<Image> Load(const std::string& name, const Descriptor& record);
  Result<Image> Find(const Reference& ref);
  Status ApplyLayers(const Image& image, int root_fd, bool from_blobs);
};

}  // namespace hoist
