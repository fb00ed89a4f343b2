// hoist::Client: open, pull (the one orchestrator: resolve → manifests → blobs and layers in
// parallel → record), images, inspect.
#include "hoist/client.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <numeric>
#include <set>

#include "base/fs.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "client_impl.h"
#include "content/digester.h"
#include "content/store.h"
#include "hoist/reference.h"
#include "image/records.h"
#include "manifest/config.h"
#include "manifest/manifest.h"
#include "manifest/media_types.h"
#include "manifest/platform.h"
#include "pull/fetch.h"
#include "pull/inflight.h"
#include "pull/progress.h"
#include "pull/resolver.h"
#include "registry/auth.h"
#include "registry/registry.h"
#include "transfer/dispatch.h"
#include "unpack/layer.h"

namespace hoist {

std::string DefaultStoreDir() {
  if (const char* s = std::getenv("HOIST_STORE"); s != nullptr && *s != '\0') return s;
  if (geteuid() == 0) return "/var/lib/hoist";
  if (const char* x = std::getenv("XDG_DATA_HOME"); x != nullptr && *x != '\0') {
    return std::string(x) + "/hoist";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : ".") + "/.local/share/hoist";
}

Result<registry::Registry*> Client::Impl::RegistryFor(const config::RegistriesConf::Route& route) {
  registry::CredentialSource* credentials = CredentialsFor(route);
  const std::string key = route.registry + "|" + route.host + "|" +
                          (credentials == static_credentials.get() ? "creds" : "files");
  std::lock_guard<std::mutex> lock(mu);
  auto& r = registries[key];
  if (!r) {
    ASSIGN_OR_RETURN(
        registry::Endpoint endpoint,
        config::MakeEndpoint(route.registry, route.host, route.endpoint.insecure, tls));
    r = std::make_unique<registry::Registry>(route.registry, route.host, std::move(endpoint),
                                             authorizer.get(), credentials);
  }
  return r.get();
}

Result<std::vector<Client::Impl::Source>> Client::Impl::SourcesFor(const Reference& ref) {
  ASSIGN_OR_RETURN(auto routes, registries_conf.RoutesFor(ref));
  std::vector<Source> out;
  for (const auto& route : routes) {
    ASSIGN_OR_RETURN(registry::Registry * reg, RegistryFor(route));
    out.push_back({std::make_unique<registry::Repository>(reg, route.repository),
                   (route.endpoint.mirror ? "mirror " : "") + route.host});
  }
  return out;
}

registry::RetryPolicy Client::Impl::RetryPolicyOf(bool last_source) const {
  registry::RetryPolicy p;
  p.max_attempts = 1 + std::max(0, options.retries);
  if (!last_source) p.max_attempts = std::min(p.max_attempts, 2);
  p.max_time = std::chrono::seconds(std::max<int64_t>(0, options.retry_max_seconds));
  p.base_delay = std::chrono::milliseconds(std::max<int64_t>(0, options.retry_base_delay_ms));
  return p;
}

// Mirrors first, then the registry: a mirror that cannot be reached, fails
// (5xx) or does not have the image (404) is passed over with a notice. The
// image keeps the reference's name and digest whichever endpoint served it.
Result<Image> Client::Impl::Pull(const Reference& ref, const PullOptions& options) {
  ASSIGN_OR_RETURN(std::vector<Source> sources, SourcesFor(ref));
  for (size_t i = 0; i < sources.size(); ++i) {
    bool remote_failure = false;
    auto image = PullFrom(ref, *sources[i].repo, options, i + 1 == sources.size(), &remote_failure);
    // Only what the source did wrong passes it over, never a local fault.
    bool fall_back = !image.ok() && i + 1 < sources.size() && remote_failure &&
                     (image.status().code() == StatusCode::kUnavailable ||
                      image.status().code() == StatusCode::kNotFound);
    if (!fall_back) {
      if (!image.ok() && sources.size() > 1) {
        return image.status().WithContext(sources[i].describe);
      }
      return image;
    }
    if (options.notice) {
      options.notice(sources[i].describe + " failed (" + image.status().message() + "); trying " +
                     sources[i + 1].describe);
    }
  }
  return InternalError("no endpoint to pull from");
}

Status Client::Impl::CheckTrust(registry::HttpClient& http, registry::Repository& repo,
                                const Reference& ref, const Digest& top, const Digest& image) {
  Status checked = CheckSignaturePolicy(http, repo, ref, image);
  if (checked.ok() || top == image || checked.code() != StatusCode::kPermissionDenied) {
    return checked;
  }
  Status index = CheckSignaturePolicy(http, repo, ref, top);
  if (index.ok() || index.code() != StatusCode::kPermissionDenied) return index;
  // Both refused, under the same scope: one line, the index's reason after the manifest's.
  const std::string& a = checked.message();
  const std::string& b = index.message();
  size_t same = 0;
  while (same < a.size() && same < b.size() && a[same] == b[same]) ++same;
  size_t cut = same == b.size() ? b.size() : b.rfind(": ", same);
  cut = cut == std::string::npos ? 0 : std::min(b.size(), cut + 2);
  return PermissionDeniedError(a + " (platform manifest " + image.String() + "; index " +
                               top.String() + ": " +
                               (cut >= b.size() ? std::string("the same") : b.substr(cut)) + ")");
}

Result<Image> Client::Impl::PullFrom(const Reference& ref, registry::Repository& repo,
                                     const PullOptions& options, bool last_source,
                                     bool* remote_failure) {
  Platform want;
  if (options.platform.empty()) {
    want = manifest::HostPlatform();
  } else {
    ASSIGN_OR_RETURN(want, manifest::ParsePlatform(options.platform));
  }
  std::atomic<bool> cancel{false};
  std::atomic<bool> never{false};
  const std::atomic<bool>* outside = options.cancel != nullptr ? options.cancel : &never;
  const registry::TransferLimits limits{this->options.low_speed_bytes_per_second,
                                        this->options.low_speed_seconds,
                                        this->options.request_timeout_seconds};
  registry::HttpClient http(outside, nullptr, limits);
  registry::Fetcher fetcher(RetryPolicyOf(last_source), outside, &cancel);
  // Set on every way out: whether the registry or the network failed us.
  struct RemoteFailure {
    registry::Fetcher& fetcher;
    bool* out;
    ~RemoteFailure() { *out = fetcher.remote_failure(); }
  } remote_failure_report{fetcher, remote_failure};
  registry::RetryNotice notice;  // manifest retries
  if (options.notice) {
    notice = [&](const std::string& line) {
      options.notice(repo.registry().host() + "/" + repo.path() + ": " + line);
    };
  }

  // 1. Resolve: the digest the reference names, then the image manifest for our platform.
  pull::Resolver resolver(*store, repo, fetcher, notice);
  ASSIGN_OR_RETURN(Descriptor top, resolver.Resolve(http, ref));
  ASSIGN_OR_RETURN(pull::ResolvedImage resolved, resolver.ImageManifest(http, top.digest, want));
  const manifest::Decoded& decoded = resolved.decoded;
  Descriptor manifest_desc = resolved.manifest;
  bool downloaded = resolver.fetched();
  // The signature policy, before any blob is fetched and any record written (README
  // "Signatures"): the image manifest pulled, as containers/image checks a single-platform
  // pull; when the reference names an index, a signature of the index passes too (its digest
  // pins the platform manifest's).
  RETURN_IF_ERROR(CheckTrust(http, repo, ref, top.digest, manifest_desc.digest));

  // 2. The config first (its diff_ids name the layers), then every layer not yet in the store
  // and extracted, in parallel. Docker's lines: a layer already here is "Already exists", the
  // others "Pulling fs layer".
  pull::Progress progress(options.progress);
  unpack::ImageBudget budget(this->options.max_image_bytes);
  pull::FetchOptions fetch_options;
  fetch_options.limits.max_uncompressed = this->options.max_layer_bytes;
  fetch_options.limits.max_zstd_window = this->options.max_zstd_window_bytes;
  fetch_options.limits.image_budget = &budget;
  fetch_options.notice = options.notice;
  fetch_options.cancel = outside;
  fetch_options.also_cancel = &cancel;
  pull::BlobFetcher blobs(
      *store, pull::RegistrySources(repo, fetcher, progress, this->options.allow_foreign_urls),
      progress, fetch_options);
  std::vector<Descriptor> layers = manifest::Children(decoded);
  std::vector<Digest> diff_ids;  // empty for schema1, whose layers are stored, not extracted
  if (decoded.kind == manifest::Kind::kImageManifest) {
    layers.erase(layers.begin());  // the config
    const Descriptor& config = decoded.manifest.config;
    auto got = blobs.FetchClaimed(http, {config, std::nullopt, false}, blobs.ClaimOf(config));
    if (!got.ok()) return got.status().WithContext("config " + config.digest.String());
    downloaded |= *got;
    ASSIGN_OR_RETURN(std::string config_bytes,
                     store->ReadBlob(config.digest, manifest::kMaxManifestBytes));
    ASSIGN_OR_RETURN(manifest::ImageConfig cfg, manifest::ParseConfig(config_bytes));
    if (cfg.diff_ids.size() != layers.size()) {
      return DataLossError("config " + config.digest.String() + " lists " +
                           std::to_string(cfg.diff_ids.size()) + " diff_ids for " +
                           std::to_string(layers.size()) + " layers");
    }
    diff_ids = cfg.diff_ids;
    manifest_desc.platform = cfg.platform;
  }
  std::vector<pull::BlobJob> jobs;
  std::set<Digest> seen;
  for (size_t i = 0; i < layers.size(); ++i) {
    std::optional<Digest> diff_id;
    if (!diff_ids.empty()) diff_id = diff_ids[i];
    if (store->Has(layers[i].digest) && (!diff_id || unpack::LayerExists(*store, *diff_id))) {
      progress.Report(layers[i], ProgressState::kAlreadyExists);
    } else if (seen.insert(layers[i].digest).second) {
      progress.Report(layers[i], ProgressState::kWaiting);
      jobs.push_back({layers[i], diff_id});
    }
  }
  // Each blob is fetched under a claim, so that another pull of this process that has it is
  // waited for, not raced. Claimed up front, and what another pull has now goes last: the
  // workers start all of this pull's own work before any of them waits for someone else's.
  std::vector<pull::Claim> claims;
  for (const auto& job : jobs) claims.push_back(blobs.ClaimOf(job.blob));
  std::vector<size_t> order(jobs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_partition(order.begin(), order.end(), [&](size_t i) { return claims[i].owner(); });
  std::mutex mu;
  Status status = transfer::ForEachParallel(
      jobs.size(), options.jobs, &cancel, outside,
      [&](size_t n, registry::HttpClient& worker_http) {
        const size_t i = order[n];
        auto got = blobs.FetchClaimed(worker_http, jobs[i], std::move(claims[i]));
        if (!got.ok()) return got.status().WithContext("blob " + jobs[i].blob.digest.String());
        std::lock_guard<std::mutex> lock(mu);
        downloaded |= *got;
        return OkStatus();
      },
      limits);
  RETURN_IF_ERROR(status);
  // One sync for the whole pull makes the layers durable (see unpack/layer.h).
  RETURN_IF_ERROR(unpack::SyncLayers(*store, diff_ids).WithContext("sync the store"));

  // 3. The image record, last: nothing points at a blob that is not verified and in place.
  ASSIGN_OR_RETURN(Image image, image::Record(*store, ref, top.digest, manifest_desc, decoded));
  image.downloaded = downloaded;
  return image;
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Open(ClientOptions options) {
  if (options.store_dir.empty()) options.store_dir = DefaultStoreDir();
  auto impl = std::make_unique<Impl>();
  impl->docker_credentials =
      std::make_unique<config::DockerCredentials>(config::CredentialFiles::Default());
  if (!options.credentials.empty()) {
    ASSIGN_OR_RETURN(auto cred,
                     registry::StaticCredentials::ParseUserPassword(options.credentials));
    impl->static_credentials = std::make_unique<registry::StaticCredentials>(std::move(cred));
  }
  impl->authorizer = std::make_unique<registry::Authorizer>();
  if (options.registries_conf.empty()) {
    ASSIGN_OR_RETURN(impl->registries_conf, config::RegistriesConf::Load());
  } else {
    ASSIGN_OR_RETURN(impl->registries_conf,
                     config::RegistriesConf::LoadFile(options.registries_conf));
  }
  switch (options.tls_verify) {
    case ClientOptions::TlsVerify::kDefault:
      impl->tls.mode = config::TlsPolicy::Mode::kDefault;
      break;
    case ClientOptions::TlsVerify::kAlways:
      impl->tls.mode = config::TlsPolicy::Mode::kAlways;
      break;
    case ClientOptions::TlsVerify::kNever:
      impl->tls.mode = config::TlsPolicy::Mode::kNever;
      break;
  }
  impl->tls.insecure_registries = options.insecure_registries;
  impl->tls.cert_dir = options.cert_dir;
  impl->tls.certs_dirs = options.certs_dirs;
  auto store = content::Store::Open(options.store_dir);
  if (!store.ok()) return store.status();  // it names the store
  impl->store = std::move(store).value();
  impl->options = std::move(options);
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<Image> Client::Pull(std::string_view text, const PullOptions& options) {
  const std::string context = "pull " + std::string(text);
  auto ref = Reference::Parse(text);
  if (!ref.ok()) return ref.status().WithContext(context);
  // Held until the record is written: gc keeps what this pull fetched meanwhile.
  auto gc_guard = impl_->store->LockAgainstGc();
  if (!gc_guard.ok()) return gc_guard.status().WithContext(context);
  auto image = impl_->Pull(*ref, options);
  if (!image.ok()) return image.status().WithContext(context);
  return image;
}

Result<std::vector<ImageSummary>> Client::Images() {
  ASSIGN_OR_RETURN(std::vector<Descriptor> records, image::List(*impl_->store));
  std::vector<ImageSummary> out;
  for (const auto& r : records) {
    ImageSummary s;
    s.reference = image::NameOf(r);
    auto image = image::Load(*impl_->store, s.reference, r);
    if (!image.ok()) return image.status().WithContext("images: " + TerminalSafe(s.reference));
    s.digest = image->manifest.digest;
    s.repo_digest = image->repo_digest;
    s.created = image->created;
    s.size = image->manifest.size + std::max<int64_t>(0, image->config.size);
    for (const auto& l : image->layers) s.size += std::max<int64_t>(0, l.size);
    out.push_back(std::move(s));
  }
  return out;
}

Result<Image> Client::Inspect(std::string_view text) {
  const std::string context = "inspect " + std::string(text);
  auto ref = Reference::Parse(text);
  if (!ref.ok()) return ref.status().WithContext(context);
  auto image = image::Find(*impl_->store, *ref);
  if (!image.ok()) return image.status().WithContext(context);
  return image;
}

Status Client::Tag(std::string_view source, std::string_view target) {
  const std::string context = "tag " + std::string(source) + " " + std::string(target);
  auto src = Reference::Parse(source);
  if (!src.ok()) return src.status().WithContext(context);
  auto dst = Reference::Parse(target);
  if (!dst.ok()) return dst.status().WithContext(context);
  if (dst->digest()) {
    return InvalidArgumentError(context + ": the new name takes a tag, not a digest");
  }
  // Between reading the record and writing the new one, gc must not reclaim the manifest.
  auto gc_guard = impl_->store->LockAgainstGc();
  if (!gc_guard.ok()) return gc_guard.status().WithContext(context);
  return image::Tag(*impl_->store, *src, *dst).WithContext(context);
}

}  // namespace hoist
